"""Training job: split, feature pipeline, tuned models, evaluation, figures, registry.

Reads the current snapshot of ``bronze_users``, checks it, splits it (stratified by label, seeded),
fits the feature pipeline (:mod:`prospects.ml.features`) ONCE on the training split, transforms the
three splits once (cached), then tunes each configured model type on top (grid search on the
validation split, or k-fold cross-validation on the training split, ``train.parallelism`` fits at
once), picks each type's best and the overall best by the validation metric, evaluates every best
model on the held-out test split (:mod:`prospects.ml.evaluation`; the oracle AUC beside it on generated
data) and saves each as one PipelineModel ``feature stages + model`` registered in
:mod:`prospects.ml.registry`. Class imbalance is handled with balanced class weights.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pyspark import StorageLevel
from pyspark.ml import PipelineModel
from pyspark.ml.classification import (
    DecisionTreeClassifier,
    GBTClassifier,
    LogisticRegression,
    RandomForestClassifier,
)
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from prospects.core import runlog, storage, tables
from prospects.core.config import Config, join_path
from prospects.core.errors import TrainingInputError
from prospects.core.figures import Folder
from prospects.ml import drift, persistence, registry
from prospects.ml import evaluation as ev
from prospects.ml import features as fe

log = logging.getLogger(__name__)

def xgboost_rf(featuresCol: str = "features", labelCol: str = "label", predictionCol: str = "prediction"):
    """A random forest trained by XGBoost on Spark (``xgboost.spark.SparkXGBClassifier``).

    Random-forest mode: ONE boosting round (``n_estimators=1``, ``learning_rate=1``) growing
    ``num_parallel_tree`` trees at once, each on a 63.2% row subsample (``subsample=0.632``, the
    share of distinct rows in a bootstrap sample) with per-node column sampling
    (``colsample_bynode``; :func:`make_estimator` sets sqrt(p)/p like Spark's and scikit-learn's
    ``sqrt`` rule), histogram split finding (``tree_method=hist``). The grid of
    ``train.models.xgboost_rf`` sets ``max_depth``, ``num_parallel_tree`` and ``max_bin`` (32 in
    conf/base.yml, as Spark's ``maxBins``: less fitting time than XGBoost's 256 for the same
    validation AUC, docs/benchmarks/NOTES.md). Same model family as ``random_forest``, faster
    (docs/benchmarks/README.md). ``probability`` is a vector
    like Spark's classifiers; the saved model's last stage (:class:`features.Decision`) sets
    ``prediction`` from it at the chosen threshold, as for every trainer.
    """
    from xgboost.spark import SparkXGBClassifier

    return SparkXGBClassifier(features_col=featuresCol, label_col=labelCol, prediction_col=predictionCol,
                              n_estimators=1, learning_rate=1.0, subsample=0.632, tree_method="hist",
                              num_parallel_tree=100, max_depth=10)


ESTIMATORS = {
    "logistic_regression": LogisticRegression,
    "decision_tree": DecisionTreeClassifier,
    "random_forest": RandomForestClassifier,
    "gbt": GBTClassifier,
    "xgboost_rf": xgboost_rf,
}
WEIGHT_COL = "_weight"
SPLIT_COL = "_split"
META_COLUMNS = ("run_id", "ingested_at")
SELECTION_METRICS = ("areaUnderROC", "areaUnderPR")




# ---------------------------------------------------------------------------------------------
# Input checks and split
# ---------------------------------------------------------------------------------------------
def validate_input(df: DataFrame, cfg: Config, source: str) -> dict[int, int]:
    """Check a bronze-shaped training frame before anything is fitted.

    Checks: the label column exists; every column is known to the column dictionary (or is
    ``run_id`` / ``ingested_at``); every feature the model uses is present; labels are 0/1, none
    missing, both classes present.

    Returns:
        label value -> rows.

    Raises:
        TrainingInputError: naming ``source``, the column and the problem.
    """
    label = cfg.columns.label_column
    id_col = cfg.columns.id_column
    if label not in df.columns:
        raise TrainingInputError(f"{source}: no label column '{label}' (columns: {', '.join(df.columns)})")
    known = set(cfg.columns.table_columns) | {label, id_col, *META_COLUMNS}
    unknown = [c for c in df.columns if c not in known]
    if unknown:
        raise TrainingInputError(
            f"{source}: column(s) {unknown} are not in the column dictionary of use case '{cfg.use_case}' "
            "(add them to dataset.columns, with role ignore to leave them out)")
    if id_col not in df.columns:
        raise TrainingInputError(f"{source}: no id column '{id_col}'")
    absent = [c for c in fe.feature_codes(cfg) if c not in df.columns]
    if absent:
        raise TrainingInputError(f"{source}: feature column(s) {absent} of the dictionary are absent")
    counts = {r[0]: int(r[1]) for r in df.groupBy(label).count().collect()}
    if None in counts:
        raise TrainingInputError(f"{source}: {counts[None]} row(s) have no value in label column '{label}'")
    bad = sorted(str(v) for v in counts if v not in (0, 1))
    if bad:
        raise TrainingInputError(f"{source}: label column '{label}' holds values {bad}; expected 0 and 1")
    if len(counts) < 2:
        only = next(iter(counts), None)
        raise TrainingInputError(
            f"{source}: label column '{label}' has a single class ({only}) in {sum(counts.values())} rows; "
            "a classifier needs both 0 and 1")
    return {int(k): v for k, v in counts.items()}


def split(df: DataFrame, label_col: str, id_col: str, fractions: dict[str, float], seed: int) -> DataFrame:
    """Add ``_split`` (train | validation | test), stratified by label and deterministic for ``seed``.

    Each user gets a uniform from a hash of (seed, id); within each class the cut points are the
    class's approximate quantiles of that uniform at the train and train + validation fractions,
    so every split holds the same share of each class (one aggregation, no window, no shuffle of
    the users).
    """
    f_train, f_val = float(fractions.get("train", 0)), float(fractions.get("validation", 0))
    f_test = float(fractions.get("test", 0))
    if min(f_train, f_val, f_test) <= 0 or abs(f_train + f_val + f_test - 1.0) > 1e-6:
        raise ValueError(f"train.fractions must be three positive shares summing to 1, got {fractions}")
    u = (F.abs(F.xxhash64(F.lit(seed), F.col(id_col))) % F.lit(1 << 53)).cast("double") / F.lit(float(1 << 53))
    with_u = df.withColumn("_u", u)
    cuts = {r[0]: r[1] for r in with_u.groupBy(label_col).agg(
        F.percentile_approx("_u", [f_train, f_train + f_val], 100000)).collect()}
    c1 = F.lit(None).cast("double")
    c2 = F.lit(None).cast("double")
    for value, (a, b) in cuts.items():
        c1 = F.when(F.col(label_col) == F.lit(value), F.lit(a)).otherwise(c1)
        c2 = F.when(F.col(label_col) == F.lit(value), F.lit(b)).otherwise(c2)
    part = (F.when(F.col("_u") <= c1, F.lit("train")).when(F.col("_u") <= c2, F.lit("validation"))
            .otherwise(F.lit("test")))
    return with_u.withColumn(SPLIT_COL, part).drop("_u")


# ---------------------------------------------------------------------------------------------
# Models and grids
# ---------------------------------------------------------------------------------------------
def xgboost_workers(spark: SparkSession) -> int:
    """Barrier tasks for XGBoost: the cores of a local master, else Spark's default parallelism."""
    master = spark.sparkContext.master
    m = re.match(r"local\[(\d+|\*)", master)
    if m:
        return (os.cpu_count() or 1) if m.group(1) == "*" else int(m.group(1))
    if master == "local":
        return 1
    return max(1, spark.sparkContext.defaultParallelism)


def make_estimator(model_type: str, cfg: Config, weighted: bool, n_features: int | None = None):
    """An unfitted classifier on ``features`` / the label column (weights when ``weighted``).

    ``n_features`` (slots of ``features``) sets XGBoost's per-node column share to sqrt(p)/p.
    """
    if model_type not in ESTIMATORS:
        raise ValueError(f"train.model_types: unknown model '{model_type}' (known: {sorted(ESTIMATORS)})")
    est = ESTIMATORS[model_type](featuresCol=fe.FEATURES_COL, labelCol=cfg.columns.label_column,
                                 predictionCol="prediction")
    for name, value in (("probabilityCol", "probability"), ("rawPredictionCol", "rawPrediction")):
        if est.hasParam(name):
            est.set(est.getParam(name), value)
    if weighted:
        est.set(est.getParam("weightCol"), WEIGHT_COL)
    if est.hasParam("seed"):
        est.setSeed(int(cfg.get("train.seed")))
    if model_type == "xgboost_rf":
        est.set(est.getParam("random_state"), int(cfg.get("train.seed")))
        est.set(est.getParam("num_workers"), xgboost_workers(SparkSession.getActiveSession()))
        if n_features:
            est.set(est.getParam("colsample_bynode"), min(1.0, math.sqrt(n_features) / n_features))
    return est


def param_grid(est, grid: dict[str, list]) -> list[dict]:
    """Spark param maps from a conf grid (``{param: [values]}``; empty list: Spark's default)."""
    builder = ParamGridBuilder()
    for name, values in (grid or {}).items():
        if not est.hasParam(name):
            raise ValueError(f"train.models: {type(est).__name__} has no parameter '{name}'")
        if values is None or values == []:
            continue
        values = values if isinstance(values, list) else [values]
        param = est.getParam(name)
        builder.addGrid(param, [param.typeConverter(v) for v in values])
    return builder.build()


def describe_params(param_map: dict) -> dict[str, Any]:
    return {p.name: v for p, v in sorted(param_map.items(), key=lambda kv: kv[0].name)}


@dataclass
class Candidate:
    """The best model of one model type and how it was found."""

    model_type: str
    model: Any
    params: dict[str, Any]
    validation_score: float
    fit_seconds: float
    grid: list[dict] = field(default_factory=list)  # {"params", "score", "seconds"} per param map
    # the chosen model's validation users scored (``_label``, ``p``), cached: the decision threshold
    # is learnt from them without predicting the validation users again; unpersisted by the caller
    validation_scores: DataFrame | None = None


def tune(model_type: str, cfg: Config, train: DataFrame, validation: DataFrame, weighted: bool,
         n_features: int | None = None,
         predict: Callable[[Any, DataFrame], DataFrame] | None = None) -> Candidate:
    """Grid-search one model type; the score is ``train.selection_metric`` on ``validation``.

    ``predict(model, df)`` scores users (default ``model.transform``; train passes the transform
    followed by the prior correction, a monotone map that leaves the AUCs unchanged). The best
    model's validation scores stay cached in ``Candidate.validation_scores``.

    ``train.tuning``: ``validation`` fits every param map on ``train`` and scores it on
    ``validation``; ``cv`` runs Spark's CrossValidator (``train.folds``) on ``train`` and scores its
    best model on ``validation``. Either way ``train.parallelism`` models are fitted at once.
    """
    metric = cfg.get("train.selection_metric")
    if metric not in SELECTION_METRICS:
        raise ValueError(f"train.selection_metric must be one of {SELECTION_METRICS}, got {metric!r}")
    est = make_estimator(model_type, cfg, weighted, n_features)
    maps = param_grid(est, (cfg.get("train.models") or {}).get(model_type, {})) or [{}]
    parallelism = max(1, int(cfg.get("train.parallelism")))
    label = cfg.columns.label_column

    def val_score(model) -> tuple[float, DataFrame]:
        """The selection metric on the validation users, and their scores (cached)."""
        scores = ev.scored(predict(model, validation) if predict else model.transform(validation), label).cache()
        return ev.auc(scores, metric), scores

    started = time.time()
    mode = cfg.get("train.tuning")
    if mode == "cv":
        evaluator = BinaryClassificationEvaluator(rawPredictionCol="probability", labelCol=label, metricName=metric)
        cv = CrossValidator(estimator=est, estimatorParamMaps=maps, evaluator=evaluator,
                            numFolds=int(cfg.get("train.folds")), parallelism=parallelism,
                            seed=int(cfg.get("train.seed")))
        cv_model = cv.fit(train)
        best_i = max(range(len(maps)), key=lambda i: cv_model.avgMetrics[i])
        model = cv_model.bestModel
        grid = [{"params": describe_params(m), "score": float(s), "seconds": None}
                for m, s in zip(maps, cv_model.avgMetrics)]
        score, scores = val_score(model)
    elif mode == "validation":
        best_i, model, score, scores, grid = _search_on_validation(est, maps, train, val_score, parallelism)
    else:
        raise ValueError(f"train.tuning must be validation or cv, got {mode!r}")
    best_params = describe_params(maps[best_i])
    seconds = time.time() - started
    log.info("%s: best %s = %.4f with %s (%d param maps, %.1fs)", model_type, metric, score, best_params,
             len(maps), seconds)
    return Candidate(model_type, model, best_params, score, seconds, grid, scores)


def _search_on_validation(est, maps: list[dict], train: DataFrame, val_score: Callable, parallelism: int):
    """Fit every param map on ``train`` (``parallelism`` at once) and score it with ``val_score``.

    Returns:
        (best map's index, its model, its score, its cached validation scores, the grid's rows);
        the other maps' validation scores are unpersisted.
    """
    def fit_one(i: int):
        t0 = time.time()
        m = est.copy(maps[i]).fit(train)
        s, scored_users = val_score(m)
        return i, m, s, time.time() - t0, scored_users

    with ThreadPoolExecutor(max_workers=min(parallelism, len(maps))) as pool:
        results = sorted(pool.map(fit_one, range(len(maps))), key=lambda r: r[0])
    grid = [{"params": describe_params(maps[i]), "score": s, "seconds": round(sec, 2)}
            for i, _, s, sec, _ in results]
    best_i, model, score, _, scores = max(results, key=lambda r: (r[2], -r[0]))
    for r in results:
        if r[4] is not scores:
            r[4].unpersist()
    return best_i, model, score, scores, grid


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------
def read_oracle(spark: SparkSession, cfg: Config) -> DataFrame | None:
    """The generator's oracle probabilities (``user_id``, ``probability``), when the file exists."""
    name = cfg.get("generator.oracle_file")
    if not name:
        return None
    path = join_path(cfg.path("raw"), name)
    if not storage.exists(spark, path):
        log.info("no oracle file at %s: oracle AUC not computed", path)
        return None
    return spark.read.parquet(path)


@runlog.logged("train")
def run(cfg: Config, spark: SparkSession) -> dict:
    """Job entry: train on the latest run of ``bronze_users`` and register the models."""
    path = cfg.table("bronze_users")
    df, bronze_run = runlog.read_latest(spark, cfg, path, "ingest")
    source = {"table": path, "version": tables.table_version(spark, path), "run_id": bronze_run}
    return train(cfg, spark, df, source)


def check_settings(cfg: Config) -> list[str]:
    """The configured model types, after checking them and the threshold rule (before any Spark job)."""
    model_types = list(cfg.get("train.model_types") or [])
    for m in model_types:
        if m not in ESTIMATORS:
            raise ValueError(f"train.model_types: unknown model '{m}' (known: {sorted(ESTIMATORS)})")
    if not model_types:
        raise ValueError("train.model_types is empty")
    rule = cfg.get("train.threshold_rule")
    if rule not in ev.THRESHOLD_RULES:
        raise ValueError(f"train.threshold_rule must be one of {ev.THRESHOLD_RULES}, got {rule!r}")
    return model_types


@dataclass
class Prepared:
    """The three splits as feature vectors (persisted), and what the feature pipeline learnt."""

    parts: dict[str, DataFrame]
    rows: dict[str, int]
    positives_train: int
    feature_model: PipelineModel
    names: list[str]
    dropped: list[str]
    correction: Any       # fe.PriorCorrection when class weights are undone after the model, else None
    weighted: bool
    seconds: float

    def predict(self, model: Any, df: DataFrame) -> DataFrame:
        """``model``'s scores of ``df``, brought back to the population's scale when weighted."""
        out = model.transform(df)
        return self.correction.transform(out) if self.correction is not None else out

    def unpersist(self) -> None:
        for part in self.parts.values():
            part.unpersist()


def prepare(cfg: Config, df: DataFrame, table: str) -> Prepared:
    """Split, fit the feature pipeline on the training split, weight the classes, persist the splits."""
    t0 = time.time()
    label, id_col = cfg.columns.label_column, cfg.columns.id_column
    keep = [c for c in df.columns if c not in META_COLUMNS]
    # not cached: the wide rows are read three times (imputer fit, indexer fit, assembling), which
    # costs little, while a cached copy of every raw column adds heap pressure at tens of millions
    # of users; only the assembled vectors are cached
    base = split(df.select(*keep), label, id_col, cfg.get("train.fractions"), int(cfg.get("train.seed")))
    feature_model, transformed, assembled = fe.fit_transform(
        fe.build_feature_pipeline(cfg), base, F.col(SPLIT_COL) == "train", [id_col, label, SPLIT_COL])
    names = fe.feature_names(feature_model)
    dropped = [d["drop"] for d in fe.dropped_by_correlation(feature_model) if d.get("drop")]
    transformed = transformed.withColumn(label, F.col(label).cast("double"))
    parts = {part: transformed.where(F.col(SPLIT_COL) == part).drop(SPLIT_COL)
             for part in ("train", "validation", "test")}
    n_train, pos_train = parts["train"].agg(F.count(F.lit(1)), F.sum(label)).first()
    n_train, pos_train = int(n_train), int(pos_train or 0)
    if pos_train in (0, n_train):
        raise TrainingInputError(f"{table}: the training split has a single class; add data")
    weighted = cfg.get("train.class_weights") == "balanced"
    correction = None
    if weighted:
        w1, w0 = n_train / (2.0 * pos_train), n_train / (2.0 * (n_train - pos_train))
        parts["train"] = parts["train"].withColumn(
            WEIGHT_COL, F.when(F.col(label) == 1, F.lit(w1)).otherwise(F.lit(w0)))
        if cfg.get("train.prior_correction"):
            correction = fe.PriorCorrection(weightPositive=w1, weightNegative=w0)
    for part in parts:           # one after the other, as in fe.fit_transform: bounded heap at any size
        parts[part] = parts[part].persist(StorageLevel.MEMORY_AND_DISK)
    rows = {part: parts[part].count() for part in parts}
    assembled.unpersist()
    log.info("feature pipeline: %d features, dropped by correlation %s; split rows %s (train positives %d)",
             len(names), dropped, rows, pos_train)
    return Prepared(parts, rows, pos_train, feature_model, names, dropped, correction, weighted,
                    round(time.time() - t0, 1))


def choose_threshold(cfg: Config, cand: Candidate) -> float:
    """The decision threshold of a candidate, by ``train.threshold_rule`` on its (cached, then
    released) validation scores."""
    t = ev.choose_threshold(cand.validation_scores, cfg.get("train.threshold_rule"),
                            float(cfg.get("train.threshold_top_share")), int(cfg.get("train.curve_bins")))
    cand.validation_scores.unpersist()
    return t


def final_model(prep: Prepared, cand: Candidate, threshold: float) -> PipelineModel:
    """The saved model: feature stages, the classifier, the prior correction when the classes were
    weighted, and the decision at ``threshold`` (``prediction`` = p > threshold)."""
    correction = [prep.correction] if prep.correction is not None else []
    return PipelineModel(stages=[*prep.feature_model.stages, cand.model, *correction,
                                 fe.Decision(threshold=threshold)])


def fit_drift_reference(cfg: Config, df: DataFrame) -> drift.Reference:
    """The drift reference of the training users (``score.psi_bins``, ``score.categorical_max_values``,
    ``score.drift_sample_rows``), saved with the model version for scoring's drift check."""
    return drift.fit_reference(df, fe.feature_codes(cfg), int(cfg.get("score.psi_bins")),
                               int(cfg.get("score.categorical_max_values")), int(cfg.get("score.drift_sample_rows")))


def evaluate_on_test(cfg: Config, prep: Prepared, candidates: list[Candidate], thresholds: dict[str, float],
                     oracle: DataFrame | None) -> tuple[dict[str, ev.Evaluation], ev.Evaluation | None]:
    """Every candidate's metrics and curves on the test users; the oracle's when its file covers them."""
    label, id_col = cfg.columns.label_column, cfg.columns.id_column
    bins = int(cfg.get("train.curve_bins"))
    shares = [float(s) for s in cfg.get("train.lift_shares") or []]
    results: dict[str, ev.Evaluation] = {}
    oracle_scores = None
    for cand in candidates:
        test_scores = ev.scored(prep.predict(cand.model, prep.parts["test"]), label, keep=(id_col,)).cache()
        results[cand.model_type] = ev.evaluate(test_scores, thresholds[cand.model_type], shares, bins)
        if oracle is not None and oracle_scores is None:
            oracle_scores = ev.oracle_scores(test_scores, oracle, id_col).cache()
        test_scores.unpersist()
    oracle_eval = None
    if oracle_scores is not None:
        if oracle_scores.count() == prep.rows["test"]:
            oracle_eval = ev.evaluate(oracle_scores, 0.5, shares, bins)
        else:
            log.warning("oracle file does not cover the test users: oracle AUC not computed")
        oracle_scores.unpersist()
    return results, oracle_eval


def train(cfg: Config, spark: SparkSession, df: DataFrame, source: dict) -> dict:
    """Train, evaluate, save and register on a bronze-shaped frame.

    Args:
        df: bronze-shaped users (id, raw feature codes, label; ``run_id``/``ingested_at`` allowed).
        source: lineage: ``table`` (path), ``version`` (Delta version), ``run_id`` (bronze run).

    Returns:
        JSON-able summary: version, chosen model, per-model validation and test metrics, oracle AUC,
        rows, seconds, figures.
    """
    started = time.time()
    table = source.get("table", "input")
    log.info("training input %s: %s rows by label", table, validate_input(df, cfg, table))
    model_types = check_settings(cfg)
    prep = prepare(cfg, df, table)
    phases = {"features": prep.seconds}
    t1 = time.time()
    candidates = [tune(m, cfg, prep.parts["train"], prep.parts["validation"], prep.weighted, len(prep.names),
                       prep.predict) for m in model_types]
    phases["tuning"] = round(time.time() - t1, 1)
    t1 = time.time()
    chosen = max(candidates, key=lambda c: c.validation_score)
    thresholds = {c.model_type: choose_threshold(cfg, c) for c in candidates}
    version, number = registry.next_version(spark, cfg)
    save_all = bool(cfg.get("train.save_candidates"))
    to_save = {c.model_type: final_model(prep, c, thresholds[c.model_type])
               for c in candidates if save_all or c is chosen}

    def save_models() -> tuple[dict[str, str], float]:
        t0 = time.time()
        paths = {m: persistence.save_model(full, registry.model_path(cfg, version, m)) for m, full in to_save.items()}
        fit_drift_reference(cfg, df).save(spark, drift.reference_path(cfg, version))
        return paths, round(time.time() - t0, 1)

    # the models and the drift reference are written by a second thread while the test users are evaluated
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="save-models") as pool:
        saving = pool.submit(save_models)
        results, oracle_eval = evaluate_on_test(cfg, prep, candidates, thresholds, read_oracle(spark, cfg))
        phases["evaluation"] = round(time.time() - t1, 1)
        saved, phases["save_models"] = saving.result()
    t1 = time.time()
    reg_rows = _registry_rows(cfg, prep, candidates, chosen, results, oracle_eval, version, number, saved, source)
    registry.write_rows(spark, cfg, reg_rows)
    _write_metrics(spark, cfg, version, candidates, results, oracle_eval)
    phases["registry_tables"] = round(time.time() - t1, 1)
    t1 = time.time()
    figures = _figures(spark, cfg, candidates, results, oracle_eval, prep.names)
    phases["figures"] = round(time.time() - t1, 1)
    prep.unpersist()
    summary = _summary(cfg, prep, candidates, chosen, results, oracle_eval, version, saved)
    summary.update(figures=figures, feature_seconds=prep.seconds, phase_seconds=phases,
                   seconds=round(time.time() - started, 1))
    log.info("train summary %s", json.dumps(summary, default=str))
    return summary


def _registry_rows(cfg: Config, prep: Prepared, candidates: list[Candidate], chosen: Candidate,
                   results: dict[str, ev.Evaluation], oracle_eval: ev.Evaluation | None, version: str,
                   number: int, saved: dict[str, str], source: dict) -> list[dict]:
    """One registry row per candidate: parameters, metrics, threshold, features and lineage."""
    metric = cfg.get("train.selection_metric")
    oracle_auc = oracle_eval.metrics["areaUnderROC"] if oracle_eval else None
    trained_at = registry.now()
    out = []
    for cand in candidates:
        res = results[cand.model_type]
        m = res.metrics
        metrics = {f"test_{k}": float(v) for k, v in m.items()}
        metrics[f"validation_{metric}"] = cand.validation_score
        if oracle_auc is not None:
            metrics["oracle_auc"] = oracle_auc
        out.append({
            "run_id": cfg.run_id, "version": version, "version_number": number, "use_case": cfg.use_case,
            "model_type": cand.model_type, "is_chosen": cand is chosen,
            "status": "chosen" if cand is chosen else "candidate",
            "params": registry.params_map(cand.params), "metrics": metrics, "selection_metric": metric,
            "validation_score": cand.validation_score, "test_auc": m["areaUnderROC"], "test_pr_auc": m["areaUnderPR"],
            "test_accuracy": m["accuracy"], "test_precision": m["precision_1"], "test_recall": m["recall_1"],
            "test_f1": m["f1_1"], "oracle_auc": oracle_auc, "threshold": float(res.threshold),
            "threshold_rule": cfg.get("train.threshold_rule"), "features": prep.names,
            "dropped_features": prep.dropped, "label_column": cfg.columns.label_column,
            "model_path": saved.get(cand.model_type), "training_table": source.get("table", "input"),
            "training_table_version": source.get("version"),
            "training_run_id": source.get("run_id"), "rows_train": prep.rows["train"],
            "rows_validation": prep.rows["validation"], "rows_test": prep.rows["test"],
            "positives_train": prep.positives_train,
            "fit_seconds": round(cand.fit_seconds, 3), "trained_at": trained_at,
        })
    return out


def _summary(cfg: Config, prep: Prepared, candidates: list[Candidate], chosen: Candidate,
             results: dict[str, ev.Evaluation], oracle_eval: ev.Evaluation | None, version: str,
             saved: dict[str, str]) -> dict:
    """The job's JSON-able summary (without timings and figures)."""
    oracle_auc = oracle_eval.metrics["areaUnderROC"] if oracle_eval else None

    def model_summary(c: Candidate) -> dict:
        m = results[c.model_type].metrics
        return {"validation_score": round(c.validation_score, 4),
                **{f"test_{k}": round(m[key], 4) for k, key in (
                    ("auc", "areaUnderROC"), ("pr_auc", "areaUnderPR"), ("accuracy", "accuracy"),
                    ("recall_1", "recall_1"), ("recall_0", "recall_0"), ("f1_1", "f1_1"))},
                "threshold": round(results[c.model_type].threshold, 4),
                "params": c.params, "fit_seconds": round(c.fit_seconds, 1)}

    return {"version": version, "chosen": chosen.model_type, "selection_metric": cfg.get("train.selection_metric"),
            "oracle_auc": None if oracle_auc is None else round(oracle_auc, 4),
            "rows": prep.rows, "positives_train": prep.positives_train, "features": len(prep.names),
            "dropped_by_correlation": prep.dropped, "models": {c.model_type: model_summary(c) for c in candidates},
            "model_paths": saved}


def _write_metrics(spark: SparkSession, cfg: Config, version: str, candidates: list[Candidate],
                   results: dict[str, ev.Evaluation], oracle_eval: ev.Evaluation | None) -> None:
    """This run's long-format metrics (``model_metrics``) and curve points (``model_curves``), after
    the registry rows: one commit after the other (side by side, the three small commits saved about
    0.6 s of the stage: docs/benchmarks/NOTES.md)."""
    rows = []
    for cand in candidates:
        for k, v in results[cand.model_type].metrics.items():
            rows.append((cand.model_type, "test", k, float(v), None))
        for g in cand.grid:
            rows.append((cand.model_type, "grid", cfg.get("train.selection_metric"), float(g["score"]),
                         json.dumps(g["params"], sort_keys=True, default=str)))
        rows.append((cand.model_type, "validation", cfg.get("train.selection_metric"),
                     float(cand.validation_score), json.dumps(cand.params, sort_keys=True, default=str)))
    if oracle_eval is not None:
        rows += [("oracle", "test", k, float(v), None) for k, v in oracle_eval.metrics.items()
                 if k in ("areaUnderROC", "areaUnderPR", "rows", "positives", "base_rate")
                 or k.startswith(("lift_", "capture_"))]
    schema = T.StructType([T.StructField("model_type", T.StringType()), T.StructField("split", T.StringType()),
                           T.StructField("metric", T.StringType()), T.StructField("value", T.DoubleType()),
                           T.StructField("params", T.StringType())])
    meta = [F.lit(cfg.run_id).alias("run_id"), F.lit(version).alias("version"), F.lit(cfg.use_case).alias("use_case")]
    metrics_df = tables.small_frame(spark, rows, schema).select(*meta, "*")
    points = []
    evals = {c.model_type: results[c.model_type] for c in candidates}
    if oracle_eval is not None:
        evals["oracle"] = oracle_eval
    for name, res in evals.items():
        for curve, pts in res.curves.items():
            points += [(name, curve, i, float(x), float(y), float(t)) for i, (x, y, t) in enumerate(pts)]
    cschema = T.StructType([T.StructField("model_type", T.StringType()), T.StructField("curve", T.StringType()),
                            T.StructField("point", T.IntegerType()), T.StructField("x", T.DoubleType()),
                            T.StructField("y", T.DoubleType()), T.StructField("threshold", T.DoubleType())])
    curves_df = tables.small_frame(spark, points, cschema).select(*meta, "*")
    tables.write_run(metrics_df, cfg, "model_metrics")
    tables.write_run(curves_df, cfg, "model_curves")


def _figures(spark: SparkSession, cfg: Config, candidates: list[Candidate], results: dict[str, ev.Evaluation],
             oracle_eval: ev.Evaluation | None, names: list[str]) -> list[str]:
    """ROC, PR and gains curves of all models, confusion matrices, feature importances."""
    out = Folder(spark, join_path(cfg.path("reports"), cfg.run_id, "train"))
    curves = {c.model_type: results[c.model_type] for c in candidates}
    if oracle_eval is not None:
        curves["oracle"] = oracle_eval
    roc = {k: v.curves["roc"] for k, v in curves.items()}
    pr = {k: v.curves["pr"] for k, v in curves.items()}
    gains = {k: v.curves["gains"] for k, v in curves.items()}
    aucs = {k: v.metrics["areaUnderROC"] for k, v in curves.items()}
    pr_aucs = {k: v.metrics["areaUnderPR"] for k, v in curves.items()}
    base_rate = next(iter(results.values())).metrics["base_rate"]
    figs = [
        out.save(ev.plot_roc(roc, aucs), "roc.png", tight=False),
        out.save(ev.plot_pr(pr, pr_aucs, base_rate), "pr.png", tight=False),
        out.save(ev.plot_gains(gains), "gains.png", tight=False),
        out.save(ev.plot_confusions({c.model_type: results[c.model_type].confusion for c in candidates},
                                    {c.model_type: results[c.model_type].threshold for c in candidates}),
                 "confusion_matrices.png", tight=False),
    ]
    readable = [fe.readable_feature(cfg, n) for n in names]
    for cand in candidates:
        values = ev.importances(cand.model)
        if len(values) == len(readable):
            lr = cand.model_type == "logistic_regression"
            fig = ev.plot_importances(
                readable, values, title=f"{cand.model_type}: " + ("|coefficient| on min-max scaled features" if lr
                                                                   else "feature importance (impurity decrease)"),
                xlabel="|coefficient|" if lr else "importance")
            figs.append(out.save(fig, f"importance_{cand.model_type}.png", tight=False))
    return figs
