"""Delta table I/O shared by every stage: idempotent partition replacement, latest-run reads.

Every output table carries ``run_id``. Writing a run replaces exactly that run's rows (and, for
per-region outputs, that region's rows) with Delta's ``replaceWhere``, in one atomic commit, so a
re-run replaces rather than duplicates, other runs stay untouched, and concurrent writers of
different partitions do not conflict.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

log = logging.getLogger(__name__)


def sql_literal(value: Any) -> str:
    """A value as a Spark SQL literal (strings quoted and escaped)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def predicate(where: Mapping[str, Any]) -> str:
    """``{"run_id": "r1", "region": ["A", "B"]}`` -> ``run_id = 'r1' AND region IN ('A', 'B')``."""
    return " AND ".join(f"`{k}` IN ({', '.join(sql_literal(x) for x in v)})" if isinstance(v, (list, tuple))
                        else f"`{k}` = {sql_literal(v)}" for k, v in where.items())


def small_frame(spark: SparkSession, rows: Iterable, schema: StructType | str) -> DataFrame:
    """Rows held by the driver (a summary, a registry row, a curve's points) as a DataFrame of one
    partition.

    ``createDataFrame`` spreads a list over ``spark.default.parallelism`` partitions, so a table of a
    few rows would get that many files per run, each written by its own task; in one partition it
    gets one file and one task, and its readers open one file per run.
    """
    return spark.createDataFrame(list(rows), schema).coalesce(1)


def is_delta(spark: SparkSession, path: str) -> bool:
    return DeltaTable.isDeltaTable(spark, path)


def replace_partition(
    df: DataFrame,
    path: str,
    where: Mapping[str, Any],
    partition_by: list[str] | None = None,
    schema_evolution: bool = False,
    metrics: bool = False,
) -> dict | None:
    """Write ``df`` as the rows of ``path`` matching ``where``; other rows stay.

    Args:
        df: rows to write; every row must match ``where`` (Delta checks it).
        path: Delta table location (created on first write, partitioned by ``partition_by``).
        where: column -> value identifying the slice this write owns (e.g. run_id, region).
        partition_by: partition columns used when the table is created.
        schema_evolution: allow new columns (``mergeSchema``).
        metrics: read the commit's operation metrics back (one more history read: asked for only
            where the counts are used). The commit is found by a tag in its ``userMetadata``.

    Returns:
        with ``metrics``, Delta's operation metrics of the commit (numOutputRows, numFiles, ...);
        else None.
    """
    writer = (df.write.format("delta").mode("overwrite")
              .option("replaceWhere", predicate(where)))
    if schema_evolution:
        writer = writer.option("mergeSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    return save(df.sparkSession, writer, path, metrics)


def write_run(df: DataFrame | None, cfg, key: str, *, sub_partitions: Sequence[str] = (),
              schema_evolution: bool = False, metrics: bool = False) -> dict | None:
    """This run's rows of table ``key`` (``cfg.table(key)``), the one way every stage writes them.

    ``df``, with a ``run_id`` column added when it has none, replaces the rows of ``cfg.run_id``;
    other runs stay, and a rerun of a run id is idempotent. ``df`` None deletes the run's rows (an
    empty result). The table is partitioned by ``run_id`` and then ``sub_partitions``.

    Returns:
        with ``metrics``, the commit's operation metrics (:func:`replace_partition`); else None.
    """
    path = cfg.table(key)
    if df is None:
        spark = SparkSession.builder.getOrCreate()    # the active session is per thread
        if is_delta(spark, path):
            DeltaTable.forPath(spark, path).delete(F.col("run_id") == F.lit(cfg.run_id))
        return None
    if "run_id" not in df.columns:
        df = df.withColumn("run_id", F.lit(cfg.run_id))
    return replace_partition(df, path, where={"run_id": cfg.run_id}, partition_by=["run_id", *sub_partitions],
                             schema_evolution=schema_evolution, metrics=metrics)


def append(df: DataFrame, path: str, partition_by: list[str] | None = None, metrics: bool = True) -> dict | None:
    """Append ``df`` to ``path`` (created on first write); the commit's metrics when ``metrics``."""
    writer = df.write.format("delta").mode("append").option("mergeSchema", "true")
    if partition_by:
        writer = writer.partitionBy(*partition_by)
    return save(df.sparkSession, writer, path, metrics)


def save(spark: SparkSession, writer: DataFrameWriter, path: str, metrics: bool) -> dict | None:
    """Commit ``writer`` to ``path``; with ``metrics``, return the commit's operation metrics.

    The commit carries a tag of its own as ``userMetadata`` and the metrics are read from the commit
    with that tag: the latest commit may be another writer's (two runs writing their partitions of
    one table at the same time).
    """
    if not metrics:
        writer.save(path)
        return None
    tag = f"prospects-write-{uuid.uuid4().hex}"
    writer.option("userMetadata", tag).save(path)
    return commit_metrics(spark, path, tag)


def upsert(df: DataFrame, path: str, keys: list[str], partition_by: list[str] | None = None) -> None:
    """MERGE ``df`` into ``path`` on ``keys`` (update matches, insert the rest)."""
    spark = df.sparkSession
    if not is_delta(spark, path):
        writer = df.write.format("delta").mode("overwrite")
        if partition_by:
            writer = writer.partitionBy(*partition_by)
        writer.save(path)
        return
    cond = " AND ".join(f"t.`{k}` = s.`{k}`" for k in keys)
    (DeltaTable.forPath(spark, path).alias("t").merge(df.alias("s"), cond)
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())


# How many of the latest commits are read to find a tagged one, widening while it is not found: the
# latest commit is the write's own unless another run committed to the table in between (each
# commit read is one file of the log, a request on an object store).
HISTORY_WINDOWS = (1, 10, 100)


def commit_metrics(spark: SparkSession, path: str, tag: str) -> dict:
    """Operation metrics of the commit of ``path`` whose ``userMetadata`` is ``tag`` (as ints where
    they are numbers), with its ``version``; ``{"version": None}`` (no rows) when no commit has the
    tag: Delta commits nothing for a write that adds and removes no file (no rows replacing none)."""
    for window in HISTORY_WINDOWS:
        history = DeltaTable.forPath(spark, path).history(window).select("version", "operationMetrics",
                                                                          "userMetadata").collect()
        row = next((r for r in history if r["userMetadata"] == tag), None)
        if row is not None:
            metrics = {k: int(v) if str(v).isdigit() else v for k, v in (row["operationMetrics"] or {}).items()}
            metrics["version"] = row["version"]
            return metrics
        if len(history) < window:       # the whole log was read
            break
    return {"version": None}


def rows_written(metrics: dict) -> int:
    """Rows a write committed, from its operation metrics (Delta omits the count for no rows)."""
    return int(metrics.get("numOutputRows", 0))


def table_version(spark: SparkSession, path: str) -> int:
    """Current Delta version of ``path`` (for time travel and lineage)."""
    return DeltaTable.forPath(spark, path).history(1).first()["version"]


def read(spark: SparkSession, path: str, version: int | None = None) -> DataFrame:
    """Read a Delta table, optionally at a version (time travel)."""
    if not is_delta(spark, path):
        raise FileNotFoundError(f"no Delta table at {path}: run the stage that writes it first")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(path)


def read_run(spark: SparkSession, path: str, run_id: str) -> tuple[DataFrame, str]:
    """Rows of run ``run_id`` of a run-partitioned table (the latest run of a stage is
    :func:`prospects.core.runlog.read_latest`'s).

    Returns:
        (rows of that run, the run id).
    """
    return read(spark, path).where(F.col("run_id") == run_id), run_id


def write_concurrently(writes: Mapping[str, Callable[[], Any]], workers: int = 4) -> dict[str, Any]:
    """Run independent table writes from a thread pool: Spark runs their jobs side by side, and the
    fixed cost of each Delta commit (log read, checkpoint check, JSON write) overlaps the others'.

    Only for writes to different tables (two writers of one table would conflict). The first
    failure is raised after every write has ended.

    Returns:
        name -> what each write returned.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="write") as pool:
        futures = {name: pool.submit(fn) for name, fn in writes.items()}
    return {name: f.result() for name, f in futures.items()}

