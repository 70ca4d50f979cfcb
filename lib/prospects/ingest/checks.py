"""Checks across rows: duplicate ids, and users meeting their labels.

Rows come from :mod:`prospects.ingest.rows` (``reason`` null = accepted so far). Every rejected row
keeps its reason here too; nothing is dropped.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

DUPLICATE_ROW = "duplicate_row"
CONFLICTING_ID = "conflicting_duplicate_id"
USER_WITHOUT_LABEL = "user_without_label"
LABEL_WITHOUT_USER = "label_without_user"


def mark_duplicates(df: DataFrame, id_col: str, partition: list[str] | None = None) -> DataFrame:
    """Duplicate ids among rows without a reason: exact copies keep one, conflicting rows keep none.

    First one aggregate (ids only) looks for any duplicate id; ``df`` itself is returned when there
    is none, the usual case. Otherwise one window (one shuffle and sort of the rows) per id: the row
    count and the smallest and largest line.
    """
    keys = (partition or []) + [id_col]
    ok = F.col("reason").isNull()
    if df.where(ok).groupBy(*keys).count().where(F.col("count") > 1).limit(1).count() == 0:
        return df
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
