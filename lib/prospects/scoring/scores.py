"""Scoring stage: every sales region's users scored by a registered model into Delta (SPEC 1.3).

Outputs (locations from ``tables.*`` in conf, all carrying ``run_id``):

* ``gold_scores`` (partitioned by run_id, region): one row per scored user with probability,
  prediction at the model's threshold, decile and rank within the region, tier, model version;
  written in one pass and one commit that replaces this run's rows (``replaceWhere``), or, with
  ``score.only_regions``, only those regions' rows of the run, so that runs for different
  regions can write at once without conflicting. Ranks and deciles come from one sort across all
  tasks (:func:`rank_in_regions`), never from a window that puts a whole region in one task.
* ``gold_region_summary``: per run and region, users scored, prospects above the threshold and
  their share, mean probability, expected switchers, users per tier.
* segment profiles, marketing actions, campaign list and drift: see :mod:`prospects.scoring.segments`.

Everything is validated (columns present in every region, configuration rules parse) before the
first write, so bad input stops the job with a clear error and no partial output.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.ml import PipelineModel, Transformer
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from prospects.core import runlog, tables
from prospects.core.config import Config
from prospects.core.errors import JobError
from prospects.ml import drift
from prospects.ml.features import positive_probability

log = logging.getLogger(__name__)

SCORE_PARTITIONS = ["run_id", "region"]
SCORE_COLUMNS = ["user_id", "region", "probability", "prediction", "decile", "rank", "tier",
                 "model_version", "run_id", "scored_at"]
# Columns a fitted pipeline produces itself; never required from the input.
_MODEL_OUTPUTS = {"probability", "prediction", "rawPrediction", "features"}


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreSettings:
    """What the scoring transforms need, taken from conf (``score.*``) and the model.

    Attributes:
        threshold: a user is a prospect when ``probability > threshold``.
        version: model version written to every row.
        run_id: run id written to every row.
        scored_at: timestamp written to every row (one per run).
        tiers: cut-offs, e.g. ``{"high": 0.6, "medium": 0.3}`` (probability >= cut-off).
        deciles: number of quantile groups within a region (10: deciles).
        id_column: user key.
    """

    threshold: float
    version: str
    run_id: str
    scored_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
    tiers: dict = field(default_factory=lambda: {"high": 0.6, "medium": 0.3})
    deciles: int = 10
    id_column: str = "user_id"

    @classmethod
    def from_config(cls, cfg: Config, threshold: float, version: str,
                    scored_at: dt.datetime | None = None) -> ScoreSettings:
        tiers = dict(cfg.get("score.tiers") or {})
        if not 0.0 <= float(tiers.get("medium", 0)) <= float(tiers.get("high", 1)) <= 1.0:
            raise JobError(f"score.tiers must satisfy 0 <= medium <= high <= 1, got {tiers}")
        kwargs: dict[str, Any] = dict(threshold=float(threshold), version=str(version), run_id=cfg.run_id,
                                      tiers=tiers, deciles=int(cfg.get("score.deciles")),
                                      id_column=cfg.columns.id_column)
        if scored_at is not None:
            kwargs["scored_at"] = scored_at
        return cls(**kwargs)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def model_input_columns(model: Transformer) -> list[str]:
    """Raw columns a fitted pipeline reads: every stage's inputCol(s) not produced by an earlier stage.

    Args:
        model: a PipelineModel (or a single transformer).

    Returns:
        column names in first-use order (empty when the stages do not declare their inputs).
    """
    stages = model.stages if isinstance(model, PipelineModel) else [model]
    produced: set[str] = set()
    needed: list[str] = []
    for stage in stages:
        inputs: list[str] = []
        outputs: list[str] = []
        for name in ("inputCol", "featuresCol"):
            if stage.hasParam(name) and stage.isDefined(stage.getParam(name)):
                inputs.append(stage.getOrDefault(stage.getParam(name)))
        if stage.hasParam("inputCols") and stage.isDefined(stage.getParam("inputCols")):
            inputs.extend(stage.getOrDefault(stage.getParam("inputCols")) or [])
        for name in ("outputCol", "predictionCol", "probabilityCol", "rawPredictionCol"):
            if stage.hasParam(name) and stage.isDefined(stage.getParam(name)):
                outputs.append(stage.getOrDefault(stage.getParam(name)))
        if stage.hasParam("outputCols") and stage.isDefined(stage.getParam("outputCols")):
            outputs.extend(stage.getOrDefault(stage.getParam("outputCols")) or [])
        for col in inputs:
            if col not in produced and col not in needed and col not in _MODEL_OUTPUTS:
                needed.append(col)
        produced.update(outputs)
    return needed


def validate_regions(regions: DataFrame, required: Sequence[str], may_be_empty: Iterable[str] = (),
                     min_users: int = 50, id_column: str = "user_id") -> dict[str, int]:
    """Check the region frame before anything is written; return users per region.

    A column absent from the frame fails for every region. A column present but entirely null in a
    region of at least ``min_users`` users (its file lacked the column) fails naming that region,
    unless the column is in ``may_be_empty`` (columns where missing means 0, e.g. 5G data).
    One aggregation over the frame (one row per region reaches the driver).

    Args:
        regions: columns ``region``, ``id_column`` and the ``required`` columns.
        required: columns the model reads.
        may_be_empty: required columns allowed to be all null.
        min_users: regions smaller than this are not checked for all-null columns.

    Raises:
        JobError: naming the region(s) and the column(s) at fault.
    """
    absent = [c for c in ["region", id_column, *required] if c not in regions.columns]
    if absent:
        raise JobError(f"bronze regions: column(s) {absent} missing in every region "
                       f"(columns present: {regions.columns})")
    checked = [c for c in required if c not in set(may_be_empty) and c != id_column]
    aggs = [F.count(F.lit(1)).alias("_users"), F.count(id_column).alias("_ids")]
    aggs += [F.count(F.col(c)).alias(f"_nn{i}") for i, c in enumerate(checked)]
    rows = regions.groupBy("region").agg(*aggs).collect()
    problems = []
    for row in rows:
        if row["region"] is None:
            problems.append(f"{row['_users']} user(s) have no region")
            continue
        if row["_ids"] != row["_users"]:
            problems.append(f"region {row['region']}: {row['_users'] - row['_ids']} user(s) without {id_column}")
        if row["_users"] >= min_users:
            empty = [c for i, c in enumerate(checked) if row[f"_nn{i}"] == 0]
            if empty:
                problems.append(f"region {row['region']}: column(s) {empty} missing (all {row['_users']} values null)")
    if problems:
        raise JobError("bronze regions: " + "; ".join(problems) + ": nothing was written")
    return {row["region"]: int(row["_users"]) for row in rows}


# ---------------------------------------------------------------------------------------------
# The scoring transform
# ---------------------------------------------------------------------------------------------
LOW_TIER = "low"


def tier_column(probability: str, cutoffs: Mapping[str, float]) -> Column:
    """The risk tier of ``probability``: the tier whose cut-off is the highest one it reaches
    (``{high: 0.6, medium: 0.3}``; of equal cut-offs, the one listed first), else ``low``. Scoring's
    tiers and churn's risk tiers both."""
    p, tier = F.col(probability), F.lit(LOW_TIER)
    ordered = sorted(enumerate(cutoffs.items()), key=lambda t: (float(t[1][1]), -t[0]))
    for _, (name, cut) in ordered:      # lowest cut-off first: each higher one overrides
        tier = F.when(p >= F.lit(float(cut)), F.lit(name)).otherwise(tier)
    return tier


def probabilities(model: Transformer, id_column: str) -> Callable[[DataFrame], DataFrame]:
    """Curried transform: bronze-shaped region users -> ``user_id``, ``region``, ``probability``
    (of the positive class)."""
    def _apply(df: DataFrame) -> DataFrame:
        out = model.transform(df.drop(*[c for c in _MODEL_OUTPUTS if c in df.columns]))
        return out.select(F.col(id_column).alias("user_id"), F.col("region").cast("string"),
                          positive_probability(out).alias("probability"))
    return _apply


def decile_sql(rank: str, users: str, deciles: int) -> str:
    """SQL of the quantile group (1 = top) of the row at ``rank`` among ``users`` rows: the groups
    of Spark's ``ntile`` (sizes differ by at most one, the larger ones first)."""
    q, rem = f"({users} div {deciles})", f"({users} % {deciles})"
    return (f"CAST(CASE WHEN {rank} <= {rem} * ({q} + 1) THEN ({rank} - 1) div ({q} + 1) + 1 "
            f"ELSE {rem} + ({rank} - {rem} * ({q} + 1) - 1) div {q} + 1 END AS INT)")


def rank_in_regions(scored: DataFrame, deciles: int) -> tuple[DataFrame, DataFrame]:
    """``scored`` with ``rank`` (1 = highest probability in the region, ties by user_id) and
    ``decile`` (Spark's ``ntile``), without a window over a whole region.

    A window partitioned by region sorts each region in one task: at operator scale one province
    on one core. Instead the users are sorted once across all tasks (range partitioning on region,
    probability, user_id); each task numbers its rows in order; one small aggregation gives each
    task's first number and rows per region, from which every row's rank follows (the rows of a
    region in earlier tasks, plus its place in its own).

    Returns:
        (the ranked rows, the cached sorted rows to unpersist once the ranked rows are written).
    """
    ordered = (scored.orderBy("region", F.col("probability").desc(), "user_id")
               .withColumn("_task", F.spark_partition_id()).withColumn("_pos", F.monotonically_increasing_id())
               .persist(StorageLevel.MEMORY_AND_DISK))
    parts = ordered.groupBy("_task", "region").agg(F.min("_pos").alias("_first"), F.count(F.lit(1)).alias("_n"))
    offsets, users = [], {}
    for r in sorted(parts.collect(), key=lambda r: (r["region"], r["_task"])):
        offsets.append((r["_task"], r["region"], r["_first"], users.get(r["region"], 0)))
        users[r["region"]] = users.get(r["region"], 0) + r["_n"]
    table = ordered.sparkSession.createDataFrame(
        [(*o, users[o[1]]) for o in offsets], "_task int, region string, _first long, _before long, _users long")
    ranked = (ordered.join(F.broadcast(table), ["_task", "region"])
              .withColumn("rank", (F.col("_before") + F.col("_pos") - F.col("_first") + 1).cast("long")))
    ranked = ranked.withColumn("decile", F.expr(decile_sql("rank", "_users", deciles)))
    return ranked.drop("_task", "_pos", "_first", "_before", "_users"), ordered


def gold_rows(s: ScoreSettings) -> Callable[[DataFrame], DataFrame]:
    """Curried transform: ranked users -> ``SCORE_COLUMNS``: user_id, region, probability,
    prediction (probability > threshold), decile, rank, tier, model_version, run_id, scored_at."""
    def _apply(df: DataFrame) -> DataFrame:
        return df.select(
            "user_id", "region", "probability",
            (F.col("probability") > F.lit(s.threshold)).cast("int").alias("prediction"),
            "decile", "rank", tier_column("probability", s.tiers).alias("tier"),
            F.lit(s.version).cast("string").alias("model_version"),
            F.lit(s.run_id).cast("string").alias("run_id"),
            F.lit(s.scored_at).cast("timestamp").alias("scored_at"))
    return _apply


def delete_other_regions(spark: SparkSession, path: str, run_id: str, keep: Iterable[str]) -> None:
    """Remove this run's rows of regions not scored now (a re-run with fewer regions replaces)."""
    from delta.tables import DeltaTable

    if not tables.is_delta(spark, path):
        return
    cond = F.col("run_id") == F.lit(run_id)
    if keep:
        cond = cond & ~F.col("region").isin(sorted(set(keep)))
    DeltaTable.forPath(spark, path).delete(cond)


def score_regions(spark: SparkSession, cfg: Config, model: Transformer, threshold: float, version: str,
                  regions: DataFrame, required: Sequence[str] | None = None,
                  scored_at: dt.datetime | None = None, validated: dict[str, int] | None = None) -> dict:
    """Score every region of ``regions`` with ``model`` into ``tables.gold_scores``, in one pass and
    one commit.

    The commit replaces this run's rows (``replaceWhere`` on the run id), and a region of this run
    no longer present is removed. With ``score.only_regions`` it replaces only those regions' rows
    (run id and region), so runs for different regions can write at once without conflicting.

    Args:
        spark: the session.
        cfg: configuration (``score.*``, ``tables.gold_scores``, run id).
        model: fitted pipeline taking bronze-shaped rows and adding ``probability``.
        threshold: prospects are users with probability > threshold.
        version: model version written to every row.
        regions: bronze-shaped users with a ``region`` column (one run).
        required: raw columns the model reads (default: derived from the pipeline's stages).
        scored_at: timestamp for every row (default: now).
        validated: users per region when the caller already ran :func:`validate_regions`.

    Returns:
        ``{"regions": {region: users}, "seconds", "rows", "scored_at"}``.

    Raises:
        JobError: a column missing (before any write).
    """
    s = ScoreSettings.from_config(cfg, threshold, version, scored_at)
    path = cfg.table("gold_scores")
    if validated is None:
        required = list(required) if required is not None else model_input_columns(model)
        validated = validate_regions(regions, required, may_be_empty=zero_filled(cfg),
                                     min_users=int(cfg.get("score.missing_column_min_users")),
                                     id_column=s.id_column)
    found = sorted(r for r, n in validated.items() if n > 0)
    restricted = bool(cfg.get("score.only_regions"))  # other regions of the run are left as they are
    try:  # the whole plan must analyse (every column the model reads is there) before any write
        regions.limit(0).transform(probabilities(model, s.id_column)).schema
    except Exception as exc:  # noqa: BLE001 - reported as one clear error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(f"bronze regions cannot be scored by model {version}: {first}: nothing was written") from exc
    started, rows = time.time(), 0
    if found:
        scored = regions.where(F.col("region").isin(found)).transform(probabilities(model, s.id_column))
        ranked, cached = rank_in_regions(scored, s.deciles)
        try:
            where = {"run_id": s.run_id, **({"region": found} if restricted else {})}
            metrics = tables.replace_partition(ranked.transform(gold_rows(s)), path, where=where,
                                               partition_by=SCORE_PARTITIONS, metrics=True)
            rows = tables.rows_written(metrics)
        finally:
            cached.unpersist()
    if not restricted:
        delete_other_regions(spark, path, s.run_id, found)
    seconds = round(time.time() - started, 3)
    log.info("scored %s users in %d region(s), %.1f s", sum(validated.values()), len(found), seconds)
    return {"regions": dict(sorted(validated.items())), "seconds": seconds, "rows": rows,
            "scored_at": s.scored_at.isoformat()}


def zero_filled(cfg: Config) -> list[str]:
    """Feature codes whose missing value means 0/absent (dictionary impute ``zero``)."""
    return [c.column for c in cfg.columns.features if c.impute == "zero"]


# ---------------------------------------------------------------------------------------------
# Region summary
# ---------------------------------------------------------------------------------------------
def region_summary(scores: DataFrame, threshold: float, expected_regions: Iterable[str] = ()) -> DataFrame:
    """Per run and region: users, prospects, prospect_share, mean_probability, expected_switchers.

    Args:
        scores: gold score rows (run_id, region, probability, prediction, tier, model_version, scored_at).
        threshold: the threshold used (recorded in every row).
        expected_regions: regions to report even when they have no users (0 users, null means).

    Returns:
        columns run_id, region, users (long), prospects (long), prospect_share (prospects / users),
        mean_probability, expected_switchers (sum of probabilities), high, medium, low (users per
        tier), threshold, model_version, scored_at.
    """
    agg = scores.groupBy("run_id", "region").agg(
        F.count(F.lit(1)).alias("users"),
        F.sum("prediction").cast("long").alias("prospects"),
        F.avg("probability").alias("mean_probability"),
        F.sum("probability").alias("expected_switchers"),
        *[F.sum((F.col("tier") == t).cast("long")).alias(t) for t in ("high", "medium", "low")],
        F.first("model_version").alias("model_version"),
        F.max("scored_at").alias("scored_at"),
    )
    expected = sorted(set(expected_regions))
    if expected:
        spark = scores.sparkSession
        runs = scores.select("run_id").distinct()
        missing = spark.createDataFrame([(r,) for r in expected], "region string")
        zero = (missing.crossJoin(runs).join(agg.select("run_id", "region"), ["run_id", "region"], "left_anti")
                .select("run_id", "region", F.lit(0).cast("long").alias("users"),
                        F.lit(0).cast("long").alias("prospects"),
                        F.lit(None).cast("double").alias("mean_probability"),
                        F.lit(0.0).alias("expected_switchers"),
                        *[F.lit(0).cast("long").alias(t) for t in ("high", "medium", "low")],
                        F.lit(None).cast("string").alias("model_version"),
                        F.lit(None).cast("timestamp").alias("scored_at")))
        agg = agg.unionByName(zero)
    return agg.select(
        "run_id", "region", "users", "prospects",
        F.when(F.col("users") > 0, F.col("prospects") / F.col("users")).otherwise(F.lit(0.0)).alias("prospect_share"),
        "mean_probability", "expected_switchers", "high", "medium", "low",
        F.lit(float(threshold)).alias("threshold"), "model_version", "scored_at",
    )


def empty_summary(spark: SparkSession, run_id: str, regions: Iterable[str], threshold: float,
                  version: str) -> DataFrame:
    """Summary rows with 0 users for ``regions`` (the result of scoring nothing)."""
    rows = [(run_id, r, 0, 0, 0.0, None, 0.0, 0, 0, 0, float(threshold), version, None) for r in sorted(set(regions))]
    schema = ("run_id string, region string, users long, prospects long, prospect_share double, "
              "mean_probability double, expected_switchers double, high long, medium long, low long, "
              "threshold double, model_version string, scored_at timestamp")
    return tables.small_frame(spark, rows, schema)


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------
def load_model(spark: SparkSession, cfg: Config, version: str | None = None):
    """The registered model (``registry.load``), with a clear error when there is none."""
    try:
        from prospects.ml import registry
    except ImportError as exc:  # pragma: no cover - the registry ships with the training stage
        raise JobError(f"no model registry available ({exc}): run the train stage first") from exc
    try:
        return registry.load(spark, cfg, version=version)
    except JobError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to find a model is one clear message
        what = f"version {version!r}" if version else "any version"
        where = cfg.table("model_registry") if "model_registry" in cfg["tables"] else "the model registry"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise JobError(f"no registered model ({what}) found in {where}: run the train stage first "
                       f"({type(exc).__name__}: {reason})") from exc


def read_regions(spark: SparkSession, cfg: Config) -> tuple[DataFrame, str | None]:
    """The latest run of ``bronze_regions`` (an empty frame when the table holds no run)."""
    path = cfg.table("bronze_regions")
    if not tables.is_delta(spark, path):
        raise JobError(f"no bronze regions table at {path}: run the ingest stage first")
    try:
        return runlog.read_latest(spark, cfg, path, "ingest")
    except ValueError:
        log.warning("bronze regions table %s holds no rows: nothing to score", path)
        return tables.read(spark, path).limit(0), None


def _training_users(spark: SparkSession, cfg: Config, row: dict | None) -> tuple[DataFrame | None, str]:
    """Training users for the drift check: the model's training data when the registry names it."""
    path = cfg.table("bronze_users")
    if not tables.is_delta(spark, path):
        return None, f"no bronze users table at {path}"
    row = row or {}
    same_table = row.get("training_table") in (None, path)
    version = next((row[k] for k in ("training_table_version", "bronze_users_version", "data_version")
                    if row.get(k) is not None), None) if same_table else None
    run = next((row[k] for k in ("train_run_id", "training_run_id", "bronze_run_id", "data_run_id")
                if row.get(k)), None)
    if run is None:
        try:
            run = runlog.read_latest(spark, cfg, path, "ingest")[1]
        except ValueError:
            return None, f"{path} holds no run"
    df = tables.read(spark, path, int(version) if version is not None else None)
    what = f"{path} run {run}" + (f" (version {version})" if version is not None else "")
    return df.where(F.col("run_id") == run), what


def drift_reference(spark: SparkSession, cfg: Config, reg: Any) -> tuple[drift.Reference | None, str]:
    """The drift reference saved with the model version; for a version saved without one, fitted
    now on its training users. Returns (the reference or None, which users it describes or why
    there is none)."""
    row = getattr(reg, "row", None) or {}
    saved = drift.Reference.load(spark, drift.reference_path(cfg, str(reg.version)))
    if saved is not None:
        return saved, (f"{row.get('training_table')} run {row.get('training_run_id')} "
                       f"(version {row.get('training_table_version')}), reference of model {reg.version}")
    train, what = _training_users(spark, cfg, row)
    if train is None:
        return None, what
    return drift.fit_reference(train, [c.column for c in cfg.columns.features], int(cfg.get("score.psi_bins")),
                               int(cfg.get("score.categorical_max_values")),
                               int(cfg.get("score.drift_sample_rows"))), what


@dataclass
class ScoringInputs:
    """The regions to score, checked before any write."""

    regions: DataFrame
    bronze_run: str
    validated: dict[str, int]     # region -> users (0 for an expected region without users)
    rules: Any                    # the segment and action rules, parsed
    only: list[str]               # score.only_regions
    expected: list[str]           # score.regions


def scoring_inputs(spark: SparkSession, cfg: Config, reg: Any) -> ScoringInputs:
    """Read the latest bronze regions run and check it, and the segment/action rules, against the
    model's raw input columns."""
    from prospects.scoring import segments as seg

    regions, bronze_run = read_regions(spark, cfg)
    only = [str(r) for r in cfg.get("score.only_regions") or []]
    if only:
        regions = regions.where(F.col("region").isin(only))
    features = [c.column for c in cfg.columns.features]
    # raw columns the model reads: declared by its stages or listed by the registry, if dictionary features
    required = [c for c in dict.fromkeys([*model_input_columns(reg.model), *(getattr(reg, "features", None) or [])])
                if c in features]
    rules = seg.validate_rules(cfg, regions)
    validated = validate_regions(regions, required, may_be_empty=zero_filled(cfg),
                                 min_users=int(cfg.get("score.missing_column_min_users")),
                                 id_column=cfg.columns.id_column)
    expected = list(cfg.get("score.regions") or [])
    for r in expected:
        validated.setdefault(r, 0)
    return ScoringInputs(regions, bronze_run, validated, rules, only, expected)


def write_region_summary(spark: SparkSession, cfg: Config, scored_any: bool, threshold: float,
                         expected: list[str], model_version: str) -> tuple[DataFrame | None, list[dict]]:
    """``gold_region_summary`` of this run, from its scores; returns (the scores, the summary rows)."""
    path = cfg.table("gold_region_summary")
    scores = tables.read_run(spark, cfg.table("gold_scores"), cfg.run_id)[0] if scored_any else None
    summary = (region_summary(scores, threshold, expected) if scored_any
               else empty_summary(spark, cfg.run_id, expected, threshold, model_version))
    tables.write_run(summary, cfg, "gold_region_summary")
    rows = [r.asDict() for r in tables.read_run(spark, path, cfg.run_id)[0].orderBy("region").collect()]
    return scores, rows


@runlog.logged("score")
def run(cfg: Config, spark: SparkSession, version: str | None = None) -> dict:
    """Job entry: score every region of the latest bronze regions run with the registered model.

    Steps: load the model (``score.model_version``, default latest) -> read and validate the
    regions and the configured segment/action rules (before any write) -> gold scores ->
    region summary -> segment profiles, actions, campaign list, drift -> figures.

    Returns:
        a JSON-able summary: model version, per-region users/prospects/share, seconds,
        drift warnings, figures.
    """
    from prospects.scoring import segments as seg

    t0 = time.time()
    version = version or cfg.get("score.model_version")
    reg = load_model(spark, cfg, None if version in (None, "", "latest") else str(version))
    threshold, model_version = float(reg.threshold), str(reg.version)
    inputs = scoring_inputs(spark, cfg, reg)
    scored = score_regions(spark, cfg, reg.model, threshold, model_version, inputs.regions,
                           validated=inputs.validated)
    timings = {"score": scored["seconds"]}
    if inputs.only:  # run-level outputs (summary, segments, ...) are refreshed by an unrestricted run
        return {"model_version": model_version, "only_regions": inputs.only, "bronze_run_id": inputs.bronze_run,
                "regions": {r: scored["regions"].get(r, 0) for r in inputs.only}}
    t = time.time()
    found = any(n > 0 for n in scored["regions"].values())
    scores, summary_rows = write_region_summary(spark, cfg, found, threshold, inputs.expected, model_version)
    timings["summary"] = round(time.time() - t, 3)
    reference, train_what = drift_reference(spark, cfg, reg)
    extra = seg.run_outputs(spark, cfg, inputs.regions if found else None, scores, summary_rows, inputs.rules,
                            reference, train_what)
    timings.update(extra.pop("seconds", {}))
    result = {
        "model_version": model_version, "threshold": threshold,
        "bronze_run_id": inputs.bronze_run, "users": sum(scored["regions"].values()),
        "regions": {r["region"]: {"users": r["users"], "prospects": r["prospects"],
                                  "prospect_share": round(r["prospect_share"], 4),
                                  "expected_switchers": round(r["expected_switchers"] or 0.0, 1)}
                    for r in summary_rows},
        "seconds": {**timings, "total": round(time.time() - t0, 3)},
        **extra,
    }
    if not result["users"]:
        result["warning"] = "no users to score: every output of this run is empty"
        log.warning("no users to score in %s", cfg.table("bronze_regions"))
    return result
