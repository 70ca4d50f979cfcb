"""Churn analytics (SPEC 2.1): risk tiers, global drivers, per-customer reasons, K-means segments.

Every function takes and returns Spark DataFrames; only small aggregates (one row per tier, per
feature, per category value or per segment) reach the driver. No Python UDF: per-customer work is
done with Spark SQL expressions and higher-order functions (``transform``, ``filter``,
``sort_array``). The methods are described in docs/use_cases.md.

Per-customer reasons, two documented methods:

* ``ablation`` (model-agnostic, the default): for each customer and each raw feature ``j``, the
  feature is replaced by reference values ``v`` (five quantiles of a number, every frequent value of
  a category, weighted by frequency) and the customer re-scored with the same fitted model;
  ``contribution_j = p(x) - sum_v w_v p(x with x_j := v)``. The (customer x variant) rows are one
  DataFrame scored in one Spark job.
* ``linear``: for a logistic-regression-style model on a (scaled) feature vector,
  ``contribution_j = coef_j * (x_j - mean_j)`` (log-odds units), computed on the vector.

In both, a customer's reasons are the ``top_n`` largest positive contributions.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import KMeans
from pyspark.ml.feature import (
    OneHotEncoder,
    StandardScaler,
    StringIndexer,
    StringIndexerModel,
    VectorAssembler,
)
from pyspark.ml.functions import vector_to_array
from pyspark.ml.linalg import VectorUDT
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from prospects.core import runlog, tables
from prospects.core.config import Config, join_path
from prospects.core.dictionary import ColumnDictionary
from prospects.core.figures import Folder, pyplot
from prospects.ml import features as fe
from prospects.ml import persistence
from prospects.ml.evaluation import importances
from prospects.ml.features import positive_probability
from prospects.scoring.scores import LOW_TIER, tier_column

log = logging.getLogger(__name__)

SEGMENTATION_DIR = "churn_segmentation"   # the fitted segmentation, under the churn model's folder

DEFAULT_TIERS = {"high": 0.6, "medium": 0.3}


# ---------------------------------------------------------------------------------------------
# Probabilities and risk tiers
# ---------------------------------------------------------------------------------------------
def tier_cutoffs(scored: DataFrame, prob_col: str, tiers: Mapping[str, float] | None = None,
                 method: str = "probability") -> dict[str, float]:
    """Probability cut-off of each tier, highest tier first.

    Args:
        scored: frame with ``prob_col`` (double).
        tiers: tier -> value, highest-risk tier first (default ``{high: 0.6, medium: 0.3}``).
            ``probability``: the value is the lowest probability of the tier.
            ``quantile``: the value is the cumulative share of customers, riskiest first
            (``{high: 0.1, medium: 0.3}``: top 10% high, next 20% medium); cut-offs are the matching
            quantiles of ``prob_col`` (approxQuantile, relative error 1e-4; a tier holds the
            probabilities strictly above its quantile).
        method: ``probability`` | ``quantile``.

    Returns:
        tier -> lowest probability of that tier; customers below every cut-off are ``low``.
    """
    tiers = dict(tiers or DEFAULT_TIERS)
    values = list(tiers.values())
    if not tiers or any(not 0.0 <= float(v) <= 1.0 for v in values):
        raise ValueError(f"churn.tiers must map tier names to values in [0, 1], got {tiers}")
    if LOW_TIER in tiers:
        raise ValueError(f"churn.tiers: '{LOW_TIER}' is the implicit last tier, do not list it")
    if method == "probability":
        if values != sorted(values, reverse=True):
            raise ValueError(f"churn.tiers: probability cut-offs must decrease (highest tier first), got {tiers}")
        return {k: float(v) for k, v in tiers.items()}
    if method == "quantile":
        if values != sorted(values):
            raise ValueError(f"churn.tiers: cumulative shares must increase (highest tier first), got {tiers}")
        qs = scored.approxQuantile(prob_col, [1.0 - float(v) for v in values], 1e-4)
        # the tier is "above the quantile": the cut-off is the next double above it
        return {t: math.nextafter(q, math.inf) for t, q in zip(tiers, qs)}
    raise ValueError(f"churn.tier_method must be probability or quantile, got {method!r}")


def with_tier(df: DataFrame, prob_col: str, cutoffs: Mapping[str, float], tier_col: str = "tier") -> DataFrame:
    """Add ``tier_col``: the tier of the highest cut-off ``prob_col`` reaches, else ``low``
    (:func:`scoring.scores.tier_column`)."""
    return df.withColumn(tier_col, tier_column(prob_col, cutoffs))


def risk_tiers(scored: DataFrame, prob_col: str, label_col: str | None,
               cutoffs: Mapping[str, float], tier_col: str = "tier") -> DataFrame:
    """Customers, churners, churn rate and share of each risk tier.

    Args:
        scored: one row per customer with ``prob_col`` (double) and, when known, ``label_col`` (0/1).
            A ``tier_col`` already present is used as is, else it is derived from ``cutoffs``.
        label_col: observed churn flag, or None (churners and churn_rate are then null).
        cutoffs: tier -> lowest probability, highest tier first (see :func:`tier_cutoffs`).

    Returns:
        tier, tier_order (0 = riskiest), cutoff, customers, churners, churn_rate, share,
        min_probability, mean_probability, max_probability; one row per tier (empty tiers included).
    """
    if tier_col not in scored.columns:
        scored = with_tier(scored, prob_col, cutoffs, tier_col)
    label = F.col(label_col).cast("double") if label_col else F.lit(None).cast("double")
    agg = (scored.groupBy(tier_col)
           .agg(F.count(F.lit(1)).alias("customers"), F.sum(label).cast("long").alias("churners"),
                F.min(prob_col).alias("min_probability"), F.avg(prob_col).alias("mean_probability"),
                F.max(prob_col).alias("max_probability")))
    order = [*cutoffs, LOW_TIER]
    spark = scored.sparkSession
    frame = spark.createDataFrame(
        [(t, i, float(cutoffs[t]) if t in cutoffs else 0.0) for i, t in enumerate(order)],
        "tier string, tier_order int, cutoff double")
    total = F.sum("customers").over(_whole())
    out = (frame.join(agg.withColumnRenamed(tier_col, "tier"), "tier", "left")
           .fillna(0, ["customers"])
           .withColumn("churn_rate", F.when(F.col("customers") > 0, F.col("churners") / F.col("customers")))
           .withColumn("share", F.col("customers") / total))
    return out.select("tier", "tier_order", "cutoff", "customers", "churners", "churn_rate", "share",
                      "min_probability", "mean_probability", "max_probability").orderBy("tier_order")


def _whole():
    return Window.partitionBy()


# ---------------------------------------------------------------------------------------------
# Global drivers
# ---------------------------------------------------------------------------------------------
def _attr_names(df: DataFrame, col: str) -> list[str]:
    attrs = df.schema[col].metadata.get("ml_attr", {}).get("attrs", {})
    return [name for _, name in sorted((a["idx"], a.get("name", f"f{a['idx']}"))
                                       for group in attrs.values() for a in group)]


def slot_names(df: DataFrame, vector_col: str, size: int | None = None) -> list[str]:
    """Names of the slots of a Spark ML vector column, from its ML attribute metadata.

    Scalers drop that metadata: when ``vector_col`` has none, the names come from the last other
    vector column of ``df`` that has them and the same size (e.g. the assembler's output before
    scaling); else ``f0, f1, ...`` (``size`` slots, or the size in the metadata).
    """
    names = _attr_names(df, vector_col)
    if names and (size is None or len(names) == size):
        return names
    if size is None:
        size = int(df.schema[vector_col].metadata.get("ml_attr", {}).get("num_attrs", 0)) or None
    if size is None:
        first = df.select(vector_col).where(F.col(vector_col).isNotNull()).first()
        size = first[0].size if first else 0
    for f in reversed(df.schema.fields):
        if f.name != vector_col and isinstance(f.dataType, VectorUDT):
            other = _attr_names(df, f.name)
            if other and len(other) == size:
                return other
    return [f"f{i}" for i in range(size)]


def source_column(slot: str, codes: Sequence[str]) -> str:
    """Raw column a vector slot comes from: the longest code that starts the slot name
    (``Contract_ohe_Month-to-month`` -> ``Contract``); the slot itself when none does."""
    best = ""
    for code in codes:
        if slot.startswith(code) and len(code) > len(best):
            best = code
    return best or slot


def _trainer_feature_names(model: Any) -> list[str] | None:
    """Slot names of the training stage's feature vector (prospects.ml.features), when it built the model."""
    try:
        from prospects.ml.features import feature_names
        return list(feature_names(model))
    except Exception:  # noqa: BLE001 - another pipeline: fall back on the vector's metadata
        return None


def readable_slot(columns: ColumnDictionary, slot: str, codes: Sequence[str]) -> str:
    """Readable name of a vector slot: ``Contract_ohe_Month-to-month`` -> ``contract=Month-to-month``
    (the source column's readable name, then the category after the encoder's suffix)."""
    code = source_column(slot, codes)
    if code == slot:
        return columns.readable(code)
    rest = slot[len(code):].lstrip("_")
    if "_" in rest:
        rest = rest.split("_", 1)[1]
    return f"{columns.readable(code)}={columns.value_label(code, rest)}" if rest else columns.readable(code)


def model_importances(model: PipelineModel, transformed: DataFrame, codes: Sequence[str],
                      names: Sequence[str] | None = None) -> dict[str, float]:
    """Importance of each raw column from a fitted pipeline's last classifier, normalised to sum 1.

    Tree models: ``featureImportances`` (XGBoost: total gain); linear models: ``|coefficient|``
    (:func:`evaluation.importances`). Slot importances are summed per raw column (:func:`source_column`).

    Args:
        model: fitted PipelineModel (or a single model).
        transformed: ``model.transform(...)`` output (its features column carries the slot names).
        codes: raw column codes (the dictionary's features).
        names: slot names when known (e.g. ``prospects.ml.features.feature_names``); default: the
            ML attribute metadata of the classifier's features column.

    Returns:
        code -> importance; empty when the model exposes neither.
    """
    stages = model.stages if isinstance(model, PipelineModel) else [model]
    for stage in reversed(stages):
        values = importances(stage)
        if not values:
            continue
        fcol = stage.getFeaturesCol() if hasattr(stage, "getFeaturesCol") else "features"
        slots = list(names) if names and len(names) == len(values) else (
            slot_names(transformed, fcol, len(values)) if fcol in transformed.columns else [])
        if len(slots) != len(values):
            slots = [f"f{i}" for i in range(len(values))]
        out: dict[str, float] = {}
        for name, v in zip(slots, values):
            key = source_column(name, codes)
            out[key] = out.get(key, 0.0) + float(v)
        total = sum(out.values()) or 1.0
        return {k: v / total for k, v in out.items()}
    return {}


def _melt_categories(df: DataFrame, cats: Sequence[str], keep: Sequence[str]) -> DataFrame:
    pairs = F.explode(F.array(*[F.struct(F.lit(c).alias("feature"), F.col(c).cast("string").alias("value"))
                                for c in cats]))
    return df.select(*keep, pairs.alias("_p")).select(*keep, "_p.feature", "_p.value")


def _numeric_directions(df: DataFrame, columns: ColumnDictionary, nums: Sequence[str],
                        target: Column) -> list[dict[str, Any]]:
    """Per numeric feature: mean target above against at most the median (one aggregation)."""
    meds = dict(zip(nums, [q[0] if q else None for q in df.approxQuantile(list(nums), [0.5], 1e-4)]))
    aggs = []
    for c in nums:
        hi = F.col(c) > F.lit(meds[c])
        aggs += [F.avg(F.when(hi, target)).alias(f"{c}__hi"), F.avg(F.when(~hi, target)).alias(f"{c}__lo")]
    r = df.agg(*aggs).first()
    rows = []
    for c in nums:
        hi, lo = r[f"{c}__hi"], r[f"{c}__lo"]
        effect = (hi - lo) if hi is not None and lo is not None else 0.0
        name = columns.readable(c)
        rows.append(dict(
            feature=c, kind="numeric", effect=effect,
            direction=(f"higher {name} -> more churn" if effect > 0 else f"higher {name} -> less churn"
                       if effect < 0 else "no effect"),
            high_risk_value=f"> {meds[c]:g}" if effect >= 0 else f"<= {meds[c]:g}",
            rate_high_risk=hi if effect >= 0 else lo,
            low_risk_value=f"<= {meds[c]:g}" if effect >= 0 else f"> {meds[c]:g}",
            rate_low_risk=lo if effect >= 0 else hi))
    return rows


def _categorical_directions(df: DataFrame, columns: ColumnDictionary, cats: Sequence[str], target: Column,
                            min_share: float) -> list[dict[str, Any]]:
    """Per text feature: the categories (of at least ``min_share`` of the customers) with the highest
    and the lowest mean target."""
    melted = _melt_categories(df.select(*cats, target.alias("_t")), cats, ["_t"])
    stats = (melted.groupBy("feature", "value")
             .agg(F.count(F.lit(1)).alias("n"), F.avg("_t").alias("rate"))
             .withColumn("share", F.col("n") / F.sum("n").over(Window.partitionBy("feature")))
             .where(F.col("share") >= min_share).collect())  # one row per category value
    by: dict[str, list] = {}
    for s in stats:
        by.setdefault(s["feature"], []).append(s)
    rows = []
    for c in cats:
        vals = sorted(by.get(c, []), key=lambda s: (s["rate"] or 0.0))
        if not vals:
            continue
        top, bottom = vals[-1], vals[0]
        label_top = columns.value_label(c, top["value"])
        rows.append(dict(
            feature=c, kind="categorical", effect=(top["rate"] or 0.0) - (bottom["rate"] or 0.0),
            direction=f"{columns.readable(c)} = {label_top} -> more churn",
            high_risk_value=label_top, rate_high_risk=top["rate"],
            low_risk_value=columns.value_label(c, bottom["value"]), rate_low_risk=bottom["rate"]))
    return rows


def global_drivers(df: DataFrame, columns: ColumnDictionary, features: Sequence[str], target_col: str,
                   importances: Mapping[str, float] | None = None, min_share: float = 0.01) -> DataFrame:
    """Global churn drivers: importance and direction of each raw feature.

    Direction is measured on ``target_col`` (the observed churn flag, or the churn probability):
    numeric feature: ``effect = mean(target | x > median) - mean(target | x <= median)`` (sign =
    direction); text feature: the categories with the highest and lowest mean target (categories
    holding less than ``min_share`` of the customers are ignored), ``effect`` = their difference.

    Args:
        df: one row per customer: the raw ``features`` and ``target_col``.
        columns: column dictionary (types and readable names).
        features: raw codes to describe.
        target_col: 0/1 churn flag or probability.
        importances: code -> model importance (:func:`model_importances`); when empty, ``|effect|``
            normalised is used and ``importance_source`` says ``effect``.
        min_share: smallest category share considered for the direction of a text feature.

    Returns:
        feature, name, group, kind (numeric|categorical), importance, importance_source, rank,
        effect, direction (text), high_risk_value, rate_high_risk, low_risk_value, rate_low_risk;
        ordered by rank.
    """
    missing = [c for c in [*features, target_col] if c not in df.columns]
    if missing:
        raise ValueError(f"global_drivers: columns {missing} not in the frame ({df.columns})")
    target = F.col(target_col).cast("double")
    nums = [c for c in features if columns[c].type != "string"] if features else []
    cats = [c for c in features if columns[c].type == "string"]
    rows = (_numeric_directions(df, columns, nums, target) if nums else []) + \
        (_categorical_directions(df, columns, cats, target, min_share) if cats else [])
    imp = dict(importances or {})
    source = "model" if imp else "effect"
    if not imp:
        total = sum(abs(r["effect"]) for r in rows) or 1.0
        imp = {r["feature"]: abs(r["effect"]) / total for r in rows}
    for r in rows:
        spec = columns[r["feature"]]
        r.update(name=spec.name, group=spec.group, importance=float(imp.get(r["feature"], 0.0)),
                 importance_source=source, effect=float(r["effect"]))
    rows.sort(key=lambda r: (-r["importance"], r["feature"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    schema = ("feature string, name string, group string, kind string, importance double, "
              "importance_source string, rank int, effect double, direction string, high_risk_value string, "
              "rate_high_risk double, low_risk_value string, rate_low_risk double")
    order = [f.split()[0] for f in schema.split(", ")]
    return tables.small_frame(df.sparkSession, [tuple(r.get(k) for k in order) for r in rows], schema)


# ---------------------------------------------------------------------------------------------
# Per-customer reasons
# ---------------------------------------------------------------------------------------------
REASON_TYPE = "array<struct<contribution:double,feature:string,name:string,value:string>>"


def _top_positive(arr: Column, top_n: int) -> Column:
    """The ``top_n`` structs of ``arr`` with the largest positive ``contribution``."""
    positive = F.filter(arr, lambda r: r["contribution"] > 0)
    return F.slice(F.sort_array(positive, asc=False), 1, top_n)


def _reason_texts(df: DataFrame, top_n: int, unit: str = "") -> DataFrame:
    for i in range(top_n):
        r = F.element_at(F.col("reasons"), i + 1)
        text = F.when(r.isNotNull(), F.format_string(f"%s = %s (+%.3f{unit})", r["name"], r["value"],
                                                     r["contribution"]))
        df = df.withColumn(f"reason_{i + 1}", F.when(F.size("reasons") > i, text))
    return df


NUMERIC_POINTS = (0.1, 0.3, 0.5, 0.7, 0.9)


def baselines(df: DataFrame, columns: ColumnDictionary, features: Sequence[str],
              points: Sequence[float] = NUMERIC_POINTS, min_share: float = 0.01) -> dict[str, list[tuple[Any, float]]]:
    """Reference distribution of each feature for the substitution attribution: ``(value, weight)``.

    Numbers: the quantiles ``points`` of the feature (approxQuantile), equal weights (integers
    rounded); text categories: every value holding at least ``min_share`` of the customers,
    weighted by its frequency (weights renormalised to sum 1).
    """
    nums = [c for c in features if columns[c].type != "string"]
    cats = [c for c in features if columns[c].type == "string"]
    out: dict[str, list[tuple[Any, float]]] = {}
    if nums:
        for c, qs in zip(nums, df.approxQuantile(nums, list(points), 1e-4)):
            vals = [int(round(q)) if columns[c].type == "int" else float(q) for q in qs]
            if vals:
                out[c] = [(v, 1.0 / len(vals)) for v in vals]
    if cats:
        counts = (_melt_categories(df.select(*cats), cats, []).where(F.col("value").isNotNull())
                  .groupBy("feature", "value").count()
                  .withColumn("share", F.col("count") / F.sum("count").over(Window.partitionBy("feature")))
                  .where(F.col("share") >= min_share).orderBy("feature", F.col("count").desc(), "value")
                  .collect())  # one row per category value
        for r in counts:
            out.setdefault(r["feature"], []).append((r["value"], float(r["share"])))
        for c in cats:
            total = sum(w for _, w in out.get(c, [])) or 1.0
            out[c] = [(v, w / total) for v, w in out.get(c, [])]
    return out


def _literal_text(value: Any, type_name: str) -> str:
    if type_name == "int":
        return str(int(round(float(value))))
    if type_name == "float":
        return repr(float(value))
    return str(value)


def _with_variants(df: DataFrame, columns: ColumnDictionary, features: Sequence[str],
                   refs: Mapping[str, Any]) -> tuple[DataFrame, list[str]]:
    """Each customer, then one copy per (feature, reference value) with that feature set to the
    value: columns ``_feature`` (null for the customer as is), ``_value`` (the customer's own value
    of ``_feature``) and ``_w`` (the reference's weight); and the features that have references."""
    spec: list[tuple[str, str, float]] = []
    for c in features:
        ref = refs.get(c)
        if ref is None or ref == []:
            continue
        pairs = ref if isinstance(ref, list) else [(ref, 1.0)]
        spec += [(c, _literal_text(v, columns[c].type), float(w)) for v, w in pairs if v is not None]
    feats = sorted({c for c, _, _ in spec}, key=list(features).index)
    variants = F.array(F.struct(F.lit(None).cast("string").alias("f"), F.lit(None).cast("string").alias("v"),
                                F.lit(1.0).alias("w")),
                       *[F.struct(F.lit(c).alias("f"), F.lit(v).alias("v"), F.lit(w).alias("w")) for c, v, w in spec])
    exploded = df.select("*", F.explode(variants).alias("_var")).select(
        "*", F.col("_var.f").alias("_feature"), F.col("_var.v").alias("_ref"), F.col("_var.w").alias("_w")
    ).drop("_var")
    exploded = exploded.withColumn(
        "_value", F.coalesce(*[F.when(F.col("_feature") == c, F.col(c).cast("string")) for c in feats]))
    for c in feats:
        typ = columns[c].spark_type
        exploded = exploded.withColumn(
            c, F.when(F.col("_feature") == c, F.col("_ref").cast(typ)).otherwise(F.col(c).cast(typ)))
    return exploded, feats


def ablation_reasons(df: DataFrame, model: Any, id_col: str, features: Sequence[str],
                     columns: ColumnDictionary, base_values: Mapping[str, Any] | None = None,
                     prob_col: str = "probability", top_n: int = 3) -> DataFrame:
    """Per-customer reasons by substitution (model-agnostic).

    For each customer ``x`` and feature ``j``, with reference values ``v`` of weights ``w_v``
    (:func:`baselines`: quantiles of a number, the observed mix of a category):
    ``contribution_j = p(x) - sum_v w_v p(x with x_j := v)``: how much higher the customer's churn
    probability is with its own value of ``j`` than with a typical one, everything else unchanged.
    With one reference value of weight 1 it is plain baseline substitution. The customer and all its
    variants are one DataFrame (``explode``) scored by one ``model.transform``; the weighted
    probabilities are summed per (customer, feature) and gathered per customer.

    Args:
        df: one row per customer: ``id_col`` and every column the model reads.
        model: fitted Transformer (PipelineModel) producing ``prob_col`` (vector or double).
        id_col: customer key.
        features: raw codes to attribute (typically the dictionary's features).
        columns: column dictionary (types, readable names and value labels).
        base_values: code -> a baseline value, or a list of ``(value, weight)``; default
            :func:`baselines` of ``df``.
        prob_col: probability column written by ``model``.
        top_n: reasons kept per customer.

    Returns:
        ``id_col``, churn_probability, reasons (array of struct contribution, feature, name, value;
        largest first, positive only, at most ``top_n``), reason_1 .. reason_<top_n> (text).
    """
    refs = dict(base_values) if base_values is not None else baselines(df, columns, features)
    exploded, feats = _with_variants(df, columns, features, refs)
    scored = model.transform(exploded)
    p = positive_probability(scored, prob_col)
    names = F.create_map(*[x for c in feats for x in (F.lit(c), F.lit(columns.readable(c)))])
    per_feature = (scored.select(id_col, "_feature", "_value", "_w", p.alias("_p"))
                   .groupBy(id_col, "_feature")
                   .agg(F.sum(F.col("_w") * F.col("_p")).alias("_p"), F.first("_value").alias("_value")))
    labels = _value_label_expr(columns, feats)
    per = (per_feature.groupBy(id_col)
           .agg(F.max(F.when(F.col("_feature").isNull(), F.col("_p"))).alias("churn_probability"),
                F.collect_list(F.when(F.col("_feature").isNotNull(), F.struct(
                    F.col("_p").alias("p"), F.col("_feature").alias("feature"),
                    labels.alias("value")))).alias("_variants")))
    reasons = F.transform(F.col("_variants"), lambda v: F.struct(
        (F.col("churn_probability") - v["p"]).alias("contribution"), v["feature"].alias("feature"),
        names[v["feature"]].alias("name"), v["value"].alias("value")))
    out = per.withColumn("reasons", _top_positive(reasons, top_n).cast(REASON_TYPE)).drop("_variants")
    return _reason_texts(out, top_n)


def _value_label_expr(columns: ColumnDictionary, feats: Sequence[str]) -> Column:
    """Readable value of ``_value`` for feature ``_feature`` (dictionary labels, e.g. Chinese -> English)."""
    expr = F.coalesce(F.col("_value"), F.lit("missing"))
    for c in feats:
        for raw, label in columns[c].labels.items():
            expr = F.when((F.col("_feature") == c) & (F.col("_value") == raw), F.lit(label)).otherwise(expr)
    return expr


def linear_reasons(df: DataFrame, id_col: str, features_col: str, feature_names: Sequence[str],
                   coefficients: Sequence[float], means: Sequence[float] | None = None,
                   top_n: int = 3, prob_col: str | None = None) -> DataFrame:
    """Per-customer reasons of a linear (logistic) model: ``contribution_j = coef_j * (x_j - mean_j)``.

    Computed on the feature vector with Spark higher-order functions (no UDF).

    Args:
        df: ``id_col`` and ``features_col`` (a Spark ML vector, e.g. the scaled vector the LR read).
        feature_names: one readable name per slot (e.g. :func:`slot_names`).
        coefficients: one coefficient per slot (LogisticRegressionModel.coefficients).
        means: mean of each slot over the customers (default: computed with Summarizer).
        prob_col: optional probability column (vector or double) kept as churn_probability.

    Returns:
        ``id_col``, [churn_probability], reasons (array of struct contribution (log-odds),
        feature, name, value), reason_1 .. reason_<top_n>.
    """
    n = len(feature_names)
    if len(coefficients) != n:
        raise ValueError(f"linear_reasons: {len(coefficients)} coefficients for {n} feature names")
    if means is None:
        from pyspark.ml.stat import Summarizer
        means = list(df.select(Summarizer.mean(F.col(features_col)).alias("m")).first()["m"].toArray())
    x = vector_to_array(F.col(features_col))
    coef = F.array(*[F.lit(float(c)) for c in coefficients])
    mu = F.array(*[F.lit(float(m)) for m in means])
    name = F.array(*[F.lit(str(s)) for s in feature_names])
    contrib = F.transform(F.sequence(F.lit(0), F.lit(n - 1)), lambda i: F.struct(
        (coef[i] * (x[i] - mu[i])).alias("contribution"), name[i].alias("feature"), name[i].alias("name"),
        F.format_number(x[i], 3).alias("value")))
    keep = [id_col] + ([positive_probability(df, prob_col).alias("churn_probability")] if prob_col else [])
    out = df.select(*keep, _top_positive(contrib, top_n).cast(REASON_TYPE).alias("reasons"))
    return _reason_texts(out, top_n, unit=" log-odds")


# ---------------------------------------------------------------------------------------------
# K-means segmentation
# ---------------------------------------------------------------------------------------------
def segmentation_pipeline(columns: ColumnDictionary, features: Sequence[str], k: int, seed: int) -> Pipeline:
    """The segmentation as one Spark ML pipeline: numeric features imputed by their dictionary rule
    (``zero`` -> 0, any other -> the median; :class:`features.RuleImputer`), text features indexed
    (values in alphabetical order, a missing value in none) and one-hot encoded, all assembled into
    ``_seg_vec``, standardised (with mean) and clustered by K-means into ``segment``."""
    nums = [c for c in features if columns[c].type != "string"]
    cats = [c for c in features if columns[c].type == "string"]
    stages: list = []
    if nums:
        stages.append(fe.RuleImputer(rules={c: "zero" if columns[c].impute == "zero" else "median" for c in nums}))
    if cats:
        stages += [StringIndexer(inputCols=cats, outputCols=[f"_idx_{c}" for c in cats], handleInvalid="keep",
                                 stringOrderType="alphabetAsc"),
                   OneHotEncoder(inputCols=[f"_idx_{c}" for c in cats], outputCols=[f"_hot_{c}" for c in cats],
                                 dropLast=True)]  # the last slot is the missing value's: left out
    return Pipeline(stages=[
        *stages,
        VectorAssembler(inputCols=[*nums, *[f"_hot_{c}" for c in cats]], outputCol="_seg_vec", handleInvalid="keep"),
        StandardScaler(inputCol="_seg_vec", outputCol="_seg_scaled", withMean=True, withStd=True),
        KMeans(featuresCol="_seg_scaled", predictionCol="segment", k=k, seed=seed, maxIter=50),
    ])


def segment_slots(model: PipelineModel, columns: ColumnDictionary, features: Sequence[str]) -> list[str]:
    """The names of ``_seg_vec``'s slots: numeric codes, then ``code=value`` per text value."""
    nums = [c for c in features if columns[c].type != "string"]
    cats = [c for c in features if columns[c].type == "string"]
    indexer = next((st for st in model.stages if isinstance(st, StringIndexerModel)), None)
    labels = indexer.labelsArray if indexer is not None else []
    return nums + [f"{c}={v}" for c, values in zip(cats, labels) for v in values]


def archetype_score(z: Mapping[str, float], traits: Sequence[str]) -> float | None:
    """Mean standardised difference of a segment over an archetype's traits (``-code``: negated);
    None when none of the traits is a slot of the profile."""
    vals = [(-z[t[1:]] if t.startswith("-") else z[t]) for t in traits if (t[1:] if t.startswith("-") else t) in z]
    return sum(vals) / len(vals) if vals else None


def name_segments(zs: Sequence[Mapping[str, float]],
                  archetypes: Mapping[str, Sequence[str]]) -> list[tuple[str, float | None]]:
    """Name each segment after an archetype, each archetype used once, maximising the total score
    (exhaustive over assignments: k and the archetypes are few). Segments left over (more segments
    than archetypes, or a best score <= 0) take their best archetype with a number, or ``segment i``.

    Returns:
        (name, score) per segment, in the order of ``zs``.
    """
    names = list(archetypes)
    score = [[archetype_score(z, archetypes[a]) for a in names] for z in zs]
    k, n = len(zs), len(names)
    best, best_total = {}, -math.inf
    if n and math.perm(max(k, n), min(k, n)) <= 200_000:
        if n >= k:  # perm[s] = archetype of segment s
            combos = ({s: perm[s] for s in range(k)} for perm in itertools.permutations(range(n), k))
        else:       # perm[j] = segment of archetype j
            combos = ({perm[j]: j for j in range(n)} for perm in itertools.permutations(range(k), n))
        for pairs in combos:
            total = sum(score[s][j] for s, j in pairs.items() if score[s][j] is not None and score[s][j] > 0)
            if total > best_total:
                best, best_total = pairs, total
    out: list[tuple[str, float | None]] = []
    used: dict[str, int] = {}
    for s in range(k):
        j = best.get(s)
        if j is not None and score[s][j] is not None and score[s][j] > 0:
            used[names[j]] = used.get(names[j], 0) + 1
            out.append((names[j], score[s][j]))
        else:
            out.append(("", None))
    for s in range(k):
        if out[s][0]:
            continue
        cands = [(score[s][j], names[j]) for j in range(n) if score[s][j] is not None and score[s][j] > 0]
        if cands:
            sc, name = max(cands)
            used[name] = used.get(name, 0) + 1
            out[s] = (f"{name} {used[name]}", sc)
        else:
            out[s] = (f"segment {s}", None)
    return out


def _trait(columns: ColumnDictionary, slot: str, z: float) -> str:
    """``high monthly_charges`` / ``more contract=Month-to-month`` (z > 0), ``low`` / ``fewer`` else."""
    if "=" in slot:
        return f"{'more' if z > 0 else 'fewer'} {_slot_label(columns, slot)}"
    return f"{'high' if z > 0 else 'low'} {_slot_label(columns, slot)}"


def _slot_label(columns: ColumnDictionary, slot: str) -> str:
    if "=" in slot:
        code, value = slot.split("=", 1)
        return f"{columns.readable(code)}={columns.value_label(code, value)}"
    return columns.readable(slot)


def _segment_rows(clustered: DataFrame, columns: ColumnDictionary, slots: Sequence[str],
                  label_col: str | None, prob_col: str | None) -> list[list]:
    """Per segment: customers, share, churn rate, mean probability, traits, slot means and z-scores
    (the name and the archetype score left for :func:`name_segments`)."""
    seg_cols = [f"_seg_{i}" for i in range(len(slots))]
    overall = clustered.agg(*[F.avg(c).alias(f"m{i}") for i, c in enumerate(seg_cols)],
                            *[F.stddev_pop(c).alias(f"s{i}") for i, c in enumerate(seg_cols)],
                            F.count(F.lit(1)).alias("n")).first()
    label = F.col(label_col).cast("double") if label_col else F.lit(None).cast("double")
    prob = F.col(prob_col).cast("double") if prob_col else F.lit(None).cast("double")
    per = (clustered.groupBy("segment")
           .agg(F.count(F.lit(1)).alias("customers"), F.avg(label).alias("churn_rate"),
                F.avg(prob).alias("mean_probability"), *[F.avg(c).alias(f"m{i}") for i, c in enumerate(seg_cols)])
           .orderBy("segment").collect())  # k rows
    rows = []
    for r in per:
        profile = {s: float(r[f"m{i}"]) for i, s in enumerate(slots)}
        z = {s: ((r[f"m{i}"] - overall[f"m{i}"]) / overall[f"s{i}"]) if overall[f"s{i}"] else 0.0
             for i, s in enumerate(slots)}
        top = sorted(slots, key=lambda s: -abs(z[s]))[:3]
        rows.append([int(r["segment"]), f"segment {r['segment']}", int(r["customers"]), r["customers"] / overall["n"],
                     r["churn_rate"], r["mean_probability"], None, ", ".join(_trait(columns, s, z[s]) for s in top),
                     profile, z])
    return rows


def segment_customers(df: DataFrame, id_col: str, columns: ColumnDictionary, features: Sequence[str],
                      k: int = 4, seed: int = 7, label_col: str | None = None,
                      prob_col: str | None = None,
                      archetypes: Mapping[str, Sequence[str]] | None = None
                      ) -> tuple[DataFrame, DataFrame, PipelineModel]:
    """K-means segmentation of customers and each segment's profile, churn rate and name.

    Features: numeric codes (imputed) and text codes one-hot (``code=value``), standardised
    (StandardScaler with mean), clustered with ``pyspark.ml.clustering.KMeans(k, seed)``: one
    fitted pipeline (:func:`segmentation_pipeline`), returned to be saved.
    Profile: each slot's mean in the segment and its standardised difference from the whole base,
    ``z = (segment mean - overall mean) / overall std``. Name: an archetype, scored by the mean z
    over its traits (``"-code"``: the trait counts negatively), each archetype given to one segment
    so that the total score is highest (:func:`name_segments`). Traits: the three slots with the
    largest ``|z|``.

    Args:
        df: one row per customer: ``id_col``, ``features`` and optionally ``label_col``/``prob_col``.
        archetypes: name -> traits (slots such as ``MonthlyCharges`` or ``Contract=Month-to-month``).

    Returns:
        (assignments: ``id_col``, segment (int), segment_name;
         profiles: segment, segment_name, customers, share, churn_rate, mean_probability,
         archetype_score, traits (text), profile (map slot -> segment mean), z (map slot -> z);
         the fitted segmentation pipeline).
    """
    if not features:
        raise ValueError("churn.segments.features is empty: list the dictionary codes to cluster")
    unknown = [c for c in features if c not in columns or c not in df.columns]
    if unknown:
        raise ValueError(f"churn.segments.features: {unknown} not in the dictionary or the frame")
    model = segmentation_pipeline(columns, features, k, seed).fit(df)
    slots = segment_slots(model, columns, features)
    values = vector_to_array(F.col("_seg_vec"))
    clustered = (model.transform(df)
                 .select("*", *[values[i].alias(f"_seg_{i}") for i in range(len(slots))]).cache())
    rows = _segment_rows(clustered, columns, slots, label_col, prob_col)
    for i, (name, score) in enumerate(name_segments([r[9] for r in rows], archetypes or {})):
        rows[i][1], rows[i][6] = name, score
    spark = df.sparkSession
    profiles = tables.small_frame(spark, [tuple(r) for r in rows], (
        "segment int, segment_name string, customers long, share double, churn_rate double, "
        "mean_probability double, archetype_score double, traits string, profile map<string,double>, "
        "z map<string,double>")).sortWithinPartitions("segment")   # one partition: the whole order
    names = F.create_map(*[x for r in rows for x in (F.lit(r[0]), F.lit(r[1]))])
    assignments = clustered.select(id_col, F.col("segment").cast("int").alias("segment"),
                                   names[F.col("segment").cast("int")].alias("segment_name"))
    return assignments, profiles, model


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
def plot_tiers(tiers_rows: list):
    """Bar chart: share of customers and churn rate per risk tier."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    names = [r["tier"] for r in tiers_rows]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [r["share"] or 0 for r in tiers_rows], width=0.4, label="share of customers")
    ax.bar([i + 0.2 for i in x], [r["churn_rate"] or 0 for r in tiers_rows], width=0.4, label="churn rate")
    ax.set_xticks(list(x), names)
    ax.set_xlabel("risk tier")
    ax.set_ylabel("share")
    ax.set_title("Churn risk tiers: size and observed churn rate")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_drivers(driver_rows: list, top: int = 12):
    """Horizontal bars: importance of the top drivers, red when the driver raises churn."""
    plt = pyplot()
    rows = driver_rows[:top][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.5))
    colors = ["tab:red" if r["kind"] == "categorical" or r["effect"] > 0 else "tab:blue" for r in rows]
    ax.barh([r["name"] for r in rows], [r["importance"] for r in rows], color=colors)
    for i, r in enumerate(rows):
        ax.text(r["importance"], i, "  " + r["direction"].split(" -> ")[0]
                if r["kind"] == "categorical" else ("  higher -> more churn" if r["effect"] > 0
                                                    else "  higher -> less churn"), va="center", fontsize=7)
    ax.set_xlabel(f"importance ({rows[0]['importance_source'] if rows else ''})")
    ax.set_title("Global churn drivers (red: raises churn, blue: higher value lowers churn)")
    ax.set_xlim(0, max([r["importance"] for r in rows] + [0.01]) * 1.6)
    fig.tight_layout()
    return fig


def plot_segments(profile_rows: list):
    """Bars: share of customers and churn rate per K-means segment."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    names = [f"{r['segment']}: {r['segment_name']}" for r in profile_rows]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], [r["share"] for r in profile_rows], width=0.4, label="share of customers")
    ax.bar([i + 0.2 for i in x], [r["churn_rate"] or 0 for r in profile_rows], width=0.4, label="churn rate")
    ax.set_xticks(list(x), names, rotation=15, fontsize=8)
    ax.set_xlabel("segment")
    ax.set_ylabel("share")
    ax.set_title("Customer segments (K-means): size and churn rate")
    ax.legend()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Stage
# ---------------------------------------------------------------------------------------------
def customer_reasons(cfg: Config, model: Any, base: DataFrame, feats: Sequence[str]) -> DataFrame:
    """Each customer's churn probability and top reasons, by ``churn.reason_method``: ``ablation``
    (any model) or ``linear`` (the logistic regression's coefficients)."""
    columns, id_col = cfg.columns, cfg.columns.id_column
    top_n = int(cfg.get("churn.top_reasons"))
    method = cfg.get("churn.reason_method")
    if method == "ablation":
        return ablation_reasons(base, model, id_col, feats, columns, top_n=top_n)
    if method == "linear":
        scored_vec = model.transform(base)
        lr = next(st for st in reversed(model.stages) if hasattr(st, "coefficients"))
        fcol = lr.getFeaturesCol()
        coefs = list(lr.coefficients.toArray())
        names = [readable_slot(columns, s, feats) for s in slot_names(scored_vec, fcol, len(coefs))]
        return linear_reasons(scored_vec, id_col, fcol, names, coefs, top_n=top_n, prob_col="probability")
    raise ValueError(f"churn.reason_method must be ablation or linear, got {method!r}")


def write_drivers(cfg: Config, model: Any, scores: DataFrame, base: DataFrame, feats: Sequence[str],
                  has_label: bool) -> DataFrame:
    """The global drivers (:func:`global_drivers`: the model's importances, directions measured on
    the churn flag when known, else on the probability), written to churn_drivers."""
    id_col, label_col = cfg.columns.id_column, cfg.columns.label_column
    importances = model_importances(model, model.transform(base.limit(1)), feats, names=_trainer_feature_names(model))
    target = label_col if has_label else "churn_probability"
    drivers = global_drivers(scores.join(base.drop(*([label_col] if has_label else [])), id_col),
                             cfg.columns, feats, target, importances)
    tables.write_run(drivers, cfg, "churn_drivers")
    return drivers


def write_segments(cfg: Config, scores: DataFrame, base: DataFrame, has_label: bool, model_dir: str) -> DataFrame:
    """Segment the scored customers (:func:`segment_customers`), write churn_segments and
    churn_segment_profiles, save the segmentation pipeline under ``model_dir``; returns the profiles."""
    id_col, label_col = cfg.columns.id_column, cfg.columns.label_column
    label = [label_col] if has_label else []
    assignments, profiles, model = segment_customers(
        scores.select(id_col, "churn_probability", *label).join(base.drop(*label), id_col),
        id_col, cfg.columns, list(cfg.get("churn.segments.features") or []), k=int(cfg.get("churn.segments.k")),
        seed=int(cfg.get("churn.segments.seed")), label_col=label_col if has_label else None,
        prob_col="churn_probability", archetypes=cfg.get("churn.segments.archetypes") or {})
    tables.write_run(assignments, cfg, "churn_segments")
    tables.write_run(profiles, cfg, "churn_segment_profiles")
    model.write().overwrite().save(join_path(model_dir, SEGMENTATION_DIR))
    return profiles


def run(cfg: Config, spark: SparkSession, model: Any, customers: DataFrame | None = None,
        model_dir: str | None = None) -> dict:
    """The churn insights stage: score the customers with ``model`` and write tiers, drivers,
    per-customer reasons and segments (tables churn_scores, churn_tiers, churn_drivers,
    churn_segments, churn_segment_profiles), the fitted segmentation and three figures.

    Args:
        cfg: configuration (``churn.*``, the dictionary, ``dataset.label_column``).
        model: fitted PipelineModel reading the bronze columns and writing ``probability``.
        customers: the customers to analyse (default: the latest run of ``bronze_users``).
        model_dir: where the segmentation pipeline is saved (``<model_dir>/churn_segmentation``):
            the churn model's version folder; default ``<paths.models>/churn_insights/<run_id>``.
    """
    columns = cfg.columns
    id_col, label_col = cfg.columns.id_column, cfg.columns.label_column
    if customers is None:
        customers, _ = runlog.read_latest(spark, cfg, cfg.table("bronze_users"), "ingest")
    feats = [s.column for s in columns.features if s.column in customers.columns]
    if id_col not in customers.columns:
        raise ValueError(f"churn: id column '{id_col}' not in the customers table ({customers.columns})")
    has_label = label_col in customers.columns
    base = customers.select(id_col, *feats, *([label_col] if has_label else [])).cache()
    reasons = customer_reasons(cfg, model, base, feats).cache()
    tiers = cfg.get("churn.tiers") or cfg.get("score.tiers") or DEFAULT_TIERS
    cutoffs = tier_cutoffs(reasons, "churn_probability", tiers, cfg.get("churn.tier_method"))
    scores = with_tier(reasons, "churn_probability", cutoffs)
    if has_label:
        scores = scores.join(base.select(id_col, label_col), id_col)
    tables.write_run(scores, cfg, "churn_scores")
    scores = tables.read_run(spark, cfg.table("churn_scores"), cfg.run_id)[0]
    tiers = risk_tiers(scores, "churn_probability", label_col if has_label else None, cutoffs)
    tables.write_run(tiers, cfg, "churn_tiers")

    drivers = write_drivers(cfg, model, scores, base, feats, has_label)
    profiles = write_segments(cfg, scores, base, has_label,
                              model_dir or join_path(cfg.path("models"), "churn_insights", cfg.run_id))

    tier_rows, driver_rows, prof_rows = tiers.collect(), drivers.collect(), profiles.collect()
    base.unpersist()
    reasons.unpersist()
    folder = Folder(spark, join_path(cfg.path("reports"), cfg.run_id, "churn"))
    figures = [folder.save(plot(rows), name, tight=False) for plot, rows, name in (
        (plot_tiers, tier_rows, "risk_tiers.png"), (plot_drivers, driver_rows, "drivers.png"),
        (plot_segments, prof_rows, "segments.png"))]
    summary = {
        "customers": sum(r["customers"] for r in tier_rows),
        "cutoffs": cutoffs,
        "tiers": {r["tier"]: {"customers": r["customers"], "churn_rate": r["churn_rate"], "share": r["share"]}
                  for r in tier_rows},
        "top_drivers": [r["feature"] for r in driver_rows[:5]],
        "segments": {r["segment_name"]: {"customers": r["customers"], "churn_rate": r["churn_rate"]}
                     for r in prof_rows},
        "figures": figures,
    }
    log.info("churn insights %s", summary)
    return summary


@runlog.logged("churn_insights")
def run_job(cfg: Config, spark: SparkSession, version: str | None = None, model_path: str | None = None) -> dict:
    """Job entry: the churn model from ``model_path`` (a saved PipelineModel) or the registry
    (``version``, default the latest chosen model of the use case), then :func:`run`."""
    from prospects.core.errors import JobError
    if model_path:
        model = persistence.load_model(model_path)
        source = model_path
    else:
        try:
            from prospects.ml import registry
            registered = registry.load(spark, cfg, version=version)
        except Exception as exc:  # noqa: BLE001 - one clear message for the operator
            raise JobError(f"churn_insights: no churn model ({exc}): run the train job for this use case "
                           "first, or pass --model-path") from exc
        model, source = registered.model, registered.version
    model_dir = None if model_path else join_path(cfg.path("models"), str(source))
    summary = run(cfg, spark, model, model_dir=model_dir)
    summary["model"] = source
    return summary
