"""The run log (``tables.run_log``): one row per (job, run id), what it read, wrote and checked.

Jobs write their row when they finish; a re-run of the same run id replaces it. The log is also
how "the latest run" of a stage is found: the run whose row finished last, not the greatest run id
(an ad-hoc ``--run-id backfill-x`` would otherwise be "latest" for good).
"""

from __future__ import annotations

import datetime as dt
import json

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from prospects.core import tables
from prospects.core.config import Config

SCHEMA = T.StructType([
    T.StructField("job", T.StringType()), T.StructField("run_id", T.StringType()),
    T.StructField("use_case", T.StringType()), T.StructField("started_at", T.TimestampType()),
    T.StructField("finished_at", T.TimestampType()), T.StructField("status", T.StringType()),
    T.StructField("rows_read", T.LongType()), T.StructField("rows_accepted", T.LongType()),
    T.StructField("rows_quarantined", T.LongType()), T.StructField("reconciled", T.BooleanType()),
    T.StructField("details", T.StringType()),
])


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def write(spark: SparkSession, cfg: Config, job: str, started: dt.datetime, summary: dict) -> None:
    """One row per (job, run_id) in the run log; a re-run replaces its row."""
    row = (job, cfg.run_id, cfg.use_case, started.replace(tzinfo=None), utc_now(),
           "ok" if summary.get("reconciled", True) else "not_reconciled",
           summary.get("rows_read"), summary.get("rows_accepted"), summary.get("rows_quarantined"),
           summary.get("reconciled"), json.dumps(summary, default=str, sort_keys=True))
    tables.upsert(spark.createDataFrame([row], SCHEMA), cfg.table("run_log"), ["job", "run_id"])


def latest_run(spark: SparkSession, cfg: Config, job: str) -> str | None:
    """The run id of ``job``'s most recently finished successful run of this use case, or None."""
    path = cfg.table("run_log")
    if not tables.is_delta(spark, path):
        return None
    row = (tables.read(spark, path)
           .where((F.col("job") == job) & (F.col("use_case") == cfg.use_case) & (F.col("status") == "ok"))
           .orderBy(F.col("finished_at").desc()).select("run_id").first())
    return row["run_id"] if row else None
