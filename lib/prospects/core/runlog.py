"""The run log (``tables.run_log``): a row per finished run of a job, what it read, wrote and checked.

Every stage appends its row when it finishes (an append: no read of the log, one small commit);
a re-run of a run id adds a row, and the latest row of a (job, run id) is the current one. The log
is also how a stage finds the run to read from the stage before it (:func:`read_latest`): this
run's rows when that table has them, else the run whose producing job finished last, not the
greatest run id (an ad-hoc ``--run-id backfill-x`` would otherwise be "latest" for good), and a
run that died half-way has no row, so it is never read as the latest.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from prospects.core import tables
from prospects.core.config import Config

log = logging.getLogger(__name__)

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
    """Append the row of ``job``'s run ``cfg.run_id`` to the run log."""
    row = (job, cfg.run_id, cfg.use_case, started.replace(tzinfo=None), utc_now(),
           "ok" if summary.get("reconciled", True) else "not_reconciled",
           summary.get("rows_read"), summary.get("rows_accepted"), summary.get("rows_quarantined"),
           summary.get("reconciled"), json.dumps(summary, default=str, sort_keys=True))
    tables.append(tables.small_frame(spark, [row], SCHEMA), cfg.table("run_log"), metrics=False)


def logged(job: str) -> Callable:
    """Decorator of a stage's ``run(cfg, spark, ...) -> dict``: its run log row when it succeeds."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(cfg: Config, spark: SparkSession, *args, **kwargs):
            started = utc_now()
            result = fn(cfg, spark, *args, **kwargs)
            write(spark, cfg, job, started, result or {})
            return result
        return run
    return wrap


def latest_run(spark: SparkSession, cfg: Config, job: str, log_path: str | None = None) -> list[str]:
    """Run ids of ``job``'s successful runs of this use case, the most recently finished first."""
    path = log_path or cfg.table("run_log")
    if not tables.is_delta(spark, path):
        return []
    rows = (tables.read(spark, path)
            .where((F.col("job") == job) & (F.col("use_case") == cfg.use_case) & (F.col("status") == "ok"))
            .groupBy("run_id").agg(F.max("finished_at").alias("at")).orderBy(F.col("at").desc()).collect())
    return [r["run_id"] for r in rows]


def read_latest(spark: SparkSession, cfg: Config, path: str, job: str, log_path: str | None = None,
                prefer: str | None = None) -> tuple[DataFrame, str]:
    """Rows of the run to read in the table at ``path``, written by ``job`` (module doc), and its id.

    Args:
        prefer: the run read when the table has it (default: this run, ``cfg.run_id``).

    Raises:
        ValueError: the table holds no run.
    """
    df = tables.read(spark, path)
    prefer = prefer or cfg.run_id
    if _holds(df, prefer):
        return df.where(F.col("run_id") == prefer), prefer
    logged = latest_run(spark, cfg, job, log_path)
    held = {r["run_id"] for r in df.where(F.col("run_id").isin(logged)).select("run_id").distinct().collect()
            } if logged else set()   # the logged runs' partitions only, in one job
    run = next((r for r in logged if r in held), None)
    if run is None:  # a table written without a run log (by hand, or by another tool)
        runs = [r["run_id"] for r in df.select("run_id").distinct().collect()]
        if not runs:
            raise ValueError(f"{path} holds no run yet")
        run = max(runs)
        log.warning("%s: no run of job %s in the run log: reading the greatest run id, %s", path, job, run)
    return df.where(F.col("run_id") == run), run


def _holds(df: DataFrame, run: str) -> bool:
    """Whether the table has rows of ``run``: a job on that run's partition only, where listing every
    run the table holds would read a footer of every file of every month."""
    return not df.where(F.col("run_id") == run).isEmpty()
