"""Checks across rows: duplicate ids, and users meeting their labels.

Rows come from :mod:`prospects.ingest.rows` (``reason`` null = accepted so far). Every rejected row
keeps its reason here too; nothing is dropped.
"""

from __future__ import annotations

import functools

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

DUPLICATE_ROW = "duplicate_row"
CONFLICTING_ID = "conflicting_duplicate_id"
USER_WITHOUT_LABEL = "user_without_label"
LABEL_WITHOUT_USER = "label_without_user"


def parts_with_duplicates(parts: dict[str, tuple[DataFrame, list[str]]]) -> set[str]:
    """The names of the parts (rows, key columns) in which a key is on two rows without a reason.

    One Spark job for all the parts: a count per hash of the key. Equal keys have equal hashes, so no
    duplicate is missed; two keys sharing a hash (odds about n^2 / 2^65) only send their part through
    :func:`mark_duplicates`, which compares the keys themselves.
    """
    ok = F.col("reason").isNull()
    hashed = [df.where(ok).select(F.lit(name).alias("_part"), F.xxhash64(*keys).alias("_key"))
              for name, (df, keys) in parts.items()]
    every = functools.reduce(DataFrame.unionByName, hashed)
    found = every.groupBy("_part", "_key").count().where(F.col("count") > 1).select("_part").distinct().collect()
    return {r["_part"] for r in found}


def mark_duplicates(df: DataFrame, keys: list[str]) -> DataFrame:
    """Duplicate keys among rows without a reason: exact copies keep one, conflicting rows keep none.

    One window (one shuffle and sort of the rows) per key: the row count and the smallest and
    largest line. Worth it only where :func:`parts_with_duplicates` found a duplicate.
    """
    id_col = keys[-1]
    ok = F.col("reason").isNull()
    by_id = Window.partitionBy(*keys).orderBy("line", "source_file")
    whole = by_id.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    flagged = df.where(ok).select("*", F.count(F.lit(1)).over(whole).alias("_n"),
                                  (F.min("line").over(whole) == F.max("line").over(whole)).alias("_same"),
                                  F.row_number().over(by_id).alias("_rn"))
    twice = F.col("_n") > 1
    reason = (F.when(twice & ~F.col("_same"), F.lit(CONFLICTING_ID))
              .when(twice & (F.col("_rn") > 1), F.lit(DUPLICATE_ROW)))
    detail = (F.when(twice & ~F.col("_same"), F.format_string(f"{id_col} appears in %d rows that differ", F.col("_n")))
              .when(twice & (F.col("_rn") > 1), F.lit("exact copy of an earlier row (one kept)")))
    flagged = flagged.withColumn("reason", reason).withColumn("detail", detail).drop("_n", "_same", "_rn")
    return flagged.unionByName(df.where(~ok))


def join_labels(users: DataFrame, labels: DataFrame, id_col: str, label_col: str, broadcast: bool,
                label_file: str, train_file: str) -> tuple[DataFrame, DataFrame, DataFrame]:
    """Users meet their labels by id.

    With ``broadcast``, the (id, label) pairs and the user ids are broadcast, so the wide user rows
    are never shuffled; otherwise sort-merge joins.

    Args:
        users: accepted training rows (no label column).
        labels: accepted label rows (``id_col``, ``label_col``).

    Returns:
        (users with their label; users without a label; labels without a user), the last two with
        their ``reason`` and ``detail`` set.
    """
    pairs = labels.select(F.col(id_col).alias("_lid"), F.col(label_col).alias("_label"))
    user_ids = users.select(F.col(id_col).alias("_uid"))
    if broadcast:
        pairs, user_ids = F.broadcast(pairs), F.broadcast(user_ids)
    on = users[id_col] == pairs["_lid"]
    accepted = users.join(pairs, on, "inner").withColumn(label_col, F.col("_label")).drop("_lid", "_label")
    no_label = (users.join(pairs, on, "left_anti")
                .withColumn("reason", F.lit(USER_WITHOUT_LABEL))
                .withColumn("detail", F.lit(f"no valid row in {label_file} for this {id_col}")))
    no_user = (labels.join(user_ids, labels[id_col] == user_ids["_uid"], "left_anti")
               .withColumn("reason", F.lit(LABEL_WITHOUT_USER))
               .withColumn("detail", F.lit(f"no valid row in {train_file} for this {id_col}")))
    return accepted, no_label, no_user
