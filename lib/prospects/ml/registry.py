"""Model registry: saved PipelineModels by version, and a Delta table describing every trained model.

Each training run gets a version ``v<NNNN>-<run_id>`` (NNNN increases by one per run; a re-run of
the same run id keeps its number). Its models are saved under
``<paths.models>/<version>/<model_type>`` and described by one row each in the Delta table
``tables.model_registry`` (partitioned by run_id, replaced on re-run); exactly one row per run has
``is_chosen = true``: the model scoring uses by default.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

from delta.exceptions import (
    ConcurrentAppendException,
    ConcurrentDeleteDeleteException,
    ConcurrentDeleteReadException,
    ConcurrentTransactionException,
    ConcurrentWriteException,
    DeltaConcurrentModificationException,
    MetadataChangedException,
    ProtocolChangedException,
)
from delta.tables import DeltaTable
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from prospects.core import tables
from prospects.core.config import Config, join_path
from prospects.core.errors import RegistryError
from prospects.ml import persistence
from prospects.ml.features import Decision

log = logging.getLogger(__name__)

# Delta's conflicts between two commits to one table: the loser may try again
CONCURRENT_COMMITS = (ConcurrentAppendException, ConcurrentDeleteDeleteException, ConcurrentDeleteReadException,
                      ConcurrentTransactionException, ConcurrentWriteException, DeltaConcurrentModificationException,
                      MetadataChangedException, ProtocolChangedException)

VERSIONS_SCHEMA = T.StructType([
    T.StructField("version_number", T.IntegerType()), T.StructField("run_id", T.StringType()),
    T.StructField("use_case", T.StringType()), T.StructField("reserved_at", T.TimestampType()),
])

SCHEMA = T.StructType([
    T.StructField("run_id", T.StringType(), False),
    T.StructField("version", T.StringType(), False),
    T.StructField("version_number", T.IntegerType(), False),
    T.StructField("use_case", T.StringType(), False),
    T.StructField("model_type", T.StringType(), False),
    T.StructField("is_chosen", T.BooleanType(), False),
    T.StructField("status", T.StringType(), False),
    T.StructField("params", T.MapType(T.StringType(), T.StringType()), False),
    T.StructField("metrics", T.MapType(T.StringType(), T.DoubleType()), False),
    T.StructField("selection_metric", T.StringType(), False),
    T.StructField("validation_score", T.DoubleType(), True),
    T.StructField("test_auc", T.DoubleType(), True),
    T.StructField("test_pr_auc", T.DoubleType(), True),
    T.StructField("test_accuracy", T.DoubleType(), True),
    T.StructField("test_precision", T.DoubleType(), True),
    T.StructField("test_recall", T.DoubleType(), True),
    T.StructField("test_f1", T.DoubleType(), True),
    T.StructField("oracle_auc", T.DoubleType(), True),
    T.StructField("threshold", T.DoubleType(), False),
    T.StructField("threshold_rule", T.StringType(), False),
    T.StructField("features", T.ArrayType(T.StringType()), False),
    T.StructField("dropped_features", T.ArrayType(T.StringType()), False),
    T.StructField("label_column", T.StringType(), False),
    T.StructField("model_path", T.StringType(), True),
    T.StructField("training_table", T.StringType(), False),
    T.StructField("training_table_version", T.LongType(), True),
    T.StructField("training_run_id", T.StringType(), True),
    T.StructField("rows_train", T.LongType(), False),
    T.StructField("rows_validation", T.LongType(), False),
    T.StructField("rows_test", T.LongType(), False),
    T.StructField("positives_train", T.LongType(), False),
    T.StructField("fit_seconds", T.DoubleType(), True),
    T.StructField("trained_at", T.TimestampType(), False),
])




@dataclass
class RegisteredModel:
    """A model loaded from the registry.

    Attributes:
        version: registry version (``v0003-2026-11-21``).
        model: the full PipelineModel (bronze-shaped frame in; ``probability``, ``prediction`` out).
        threshold: decision threshold on the positive probability (``p > threshold`` is positive).
        model_type: logistic_regression | decision_tree | random_forest | gbt.
        features: feature names the model uses (codes or three-month group names).
        row: the full registry row as a dict.
    """

    version: str
    model: PipelineModel
    threshold: float
    model_type: str
    features: list[str]
    row: dict


def read_registry(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """The registry table, or None when nothing was registered yet."""
    path = cfg.table("model_registry")
    return tables.read(spark, path) if tables.is_delta(spark, path) else None


def next_version(spark: SparkSession, cfg: Config, attempts: int = 20) -> tuple[str, int]:
    """Version for ``cfg.run_id``, reserved in ``tables.model_versions`` before any model is fitted.

    A re-run of a run id keeps its number; a new run id takes the highest number + 1. The number is
    reserved by a Delta MERGE that inserts ``(number, run id)`` unless either is taken: two
    trainings that pick the same number at once both read the table, so Delta lets the first
    commit and makes the second fail (a concurrent append), which then picks again. Numbers are
    therefore unique whatever runs at the same time.

    Raises:
        RuntimeError: no number could be reserved in ``attempts`` tries.
    """
    path = cfg.table("model_versions")
    _create_versions_table(spark, path, attempts)
    for attempt in range(1, attempts + 1):
        taken = {r["run_id"]: r["version_number"] for r in tables.read(spark, path).collect()}
        if cfg.run_id in taken:
            return version_name(taken[cfg.run_id], cfg.run_id), taken[cfg.run_id]
        number = max([*taken.values(), *_registered_numbers(spark, cfg, taken)], default=0) + 1
        row = spark.createDataFrame([(number, cfg.run_id, cfg.use_case, now())], VERSIONS_SCHEMA)
        try:
            (DeltaTable.forPath(spark, path).alias("t")
             .merge(row.alias("s"), "t.version_number = s.version_number OR t.run_id = s.run_id")
             .whenNotMatchedInsertAll().execute())
        except CONCURRENT_COMMITS as exc:   # only Delta's concurrent-commit conflicts are retried
            log.info("version %d: another training committed first (%s), attempt %d", number,
                     type(exc).__name__, attempt)
            time.sleep(0.2 * attempt)
    raise RuntimeError(f"no model version could be reserved in {path} after {attempts} attempts")


def _create_versions_table(spark: SparkSession, path: str, attempts: int) -> None:
    """Create the reservation table unless it exists. Two trainings on a new lakehouse may create it
    at once: the one that loses sees a folder that is not a Delta table yet (Delta refuses a
    non-empty location) until the winner's first commit lands, so it waits for that commit."""
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        if tables.is_delta(spark, path):
            return
        try:
            DeltaTable.createIfNotExists(spark).location(path).addColumns(VERSIONS_SCHEMA).execute()
            return
        except Exception as exc:  # noqa: BLE001 - another training is creating it; re-checked above
            log.info("%s is being created by another training (%s), attempt %d", path, type(exc).__name__, attempt)
            last = exc
            time.sleep(0.2 * attempt)
    if not tables.is_delta(spark, path):
        raise RuntimeError(f"the model version table {path} could not be created in {attempts} attempts") from last


def _registered_numbers(spark: SparkSession, cfg: Config, taken: dict) -> list[int]:
    """Numbers in the registry before the reservation table existed (a lakehouse of older runs)."""
    if taken:
        return []
    reg = read_registry(spark, cfg)
    return [] if reg is None else [r[0] for r in reg.select("version_number").distinct().collect()]


def version_name(number: int, run_id: str) -> str:
    return f"v{number:04d}-{re.sub(r'[^A-Za-z0-9._-]', '_', run_id)}"


def model_path(cfg: Config, version: str, model_type: str) -> str:
    """Where a model of a version is saved."""
    return join_path(cfg.path("models"), version, model_type)


def write_rows(spark: SparkSession, cfg: Config, rows: list[dict]) -> None:
    """Replace this run's rows of the registry table with ``rows`` (dicts with SCHEMA's fields)."""
    missing = [f.name for f in SCHEMA.fields if not f.nullable and any(r.get(f.name) is None for r in rows)]
    if missing:
        raise ValueError(f"registry rows lack required fields {sorted(set(missing))}")
    chosen = [r for r in rows if r["is_chosen"]]
    if len(chosen) != 1:
        raise ValueError(f"exactly one registry row per run must be chosen, got {len(chosen)}")
    df = tables.small_frame(spark, [tuple(r.get(f.name) for f in SCHEMA.fields) for r in rows], SCHEMA)
    tables.write_run(df, cfg, "model_registry")


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


def load(spark: SparkSession, cfg: Config, version: str | None = None,
         model_type: str | None = None) -> RegisteredModel:
    """Load a registered model of the use case.

    Args:
        version: registry version (or a run id); default the latest version.
        model_type: a candidate of that version; default the version's chosen model.

    Raises:
        RegistryError: nothing registered, or no such version / model type (lists what exists).
    """
    reg = read_registry(spark, cfg)
    if reg is None:
        raise RegistryError(f"no model registry at {cfg.table('model_registry')}: run the train job first")
    reg = reg.where(F.col("use_case") == cfg.use_case)
    if version is not None:
        reg = reg.where((F.col("version") == version) | (F.col("run_id") == version))
    if model_type is not None:
        reg = reg.where(F.col("model_type") == model_type)
    else:
        reg = reg.where(F.col("is_chosen"))
    row = reg.orderBy(F.col("version_number").desc(), F.col("trained_at").desc()).first()
    if row is None:
        known = [r["version"] for r in read_registry(spark, cfg).where(F.col("use_case") == cfg.use_case)
                 .select("version").distinct().orderBy("version").collect()]
        raise RegistryError(
            f"no registered model for use case '{cfg.use_case}'"
            + (f", version '{version}'" if version else "")
            + (f", model type '{model_type}'" if model_type else "")
            + f" (versions: {known or 'none'})")
    if not row["model_path"]:
        raise RegistryError(f"model {row['model_type']} of version {row['version']} was not saved "
                            "(train.save_candidates was false)")
    model = persistence.load_model(row["model_path"])
    log.info("loaded model %s %s from %s", row["version"], row["model_type"], row["model_path"])
    # the threshold the saved model decides with (its last stage); the registry's copy for models
    # saved without one
    last = model.stages[-1] if model.stages else None
    threshold = last.getThreshold() if isinstance(last, Decision) else float(row["threshold"])
    return RegisteredModel(version=row["version"], model=model, threshold=threshold,
                           model_type=row["model_type"], features=list(row["features"]),
                           row=row.asDict(recursive=True))


def params_map(params: dict[str, Any]) -> dict[str, str]:
    """Parameters as strings for the ``params`` map column."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in sorted(params.items())}
