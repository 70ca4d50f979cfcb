"""Row numbers within a file, in file order, without sorting the file.

A file is read in splits (byte ranges); each split is read by one task, in order. Spark's
``monotonically_increasing_id`` numbers a task's rows in that order, so a row's place in its file
is the number of rows in the file's earlier splits plus its place in its own split. One small
aggregation (a row per split) gives both; the rows are never shuffled or sorted.

The frame must be numbered where its rows come straight from a file scan (or from a cache of one):
the ids follow the order in which a task produces its rows.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def number_rows(df: DataFrame, out_col: str) -> DataFrame:
    """``df`` with ``out_col``: the row's 1-based number within its file.

    Args:
        df: rows in scan order, with ``source_file`` and ``_split`` (the split's first byte).
        out_col: name of the number column (long).
    """
    df = df.withColumn("_mid", F.monotonically_increasing_id())
    splits = (df.groupBy("source_file", "_split")
              .agg(F.min("_mid").alias("_mid0"), F.count(F.lit(1)).alias("_rows")).collect())
    offsets = []
    done: dict[str, int] = {}
    for r in sorted(splits, key=lambda r: (r["source_file"], r["_split"])):
        before = done.get(r["source_file"], 0)
        offsets.append((r["source_file"], int(r["_split"]), int(r["_mid0"]), before))
        done[r["source_file"]] = before + int(r["_rows"])
    spark = df.sparkSession
    table = spark.createDataFrame(offsets, "source_file string, _split long, _mid0 long, _before long")
    numbered = df.join(F.broadcast(table), ["source_file", "_split"], "left")
    number = F.col("_before") + F.col("_mid") - F.col("_mid0") + F.lit(1)
    return numbered.withColumn(out_col, number.cast("long")).drop("_mid", "_mid0", "_before")
