"""Who the prospects are and what to do about them: segment profiles, marketing actions, campaign
list and drift (population stability) of each region against the training users.

Configuration (``score.*``, the fiveg defaults in conf/fiveg.yml):

* ``score.segments``: dimension name -> ``{column, bands | values, label}`` or ``{expr, label}``.
  ``bands: [e1, .., ek]`` cuts a numeric column into ``<e1``, ``e1-e2``, .., ``ek+``;
  ``values: {raw: label}`` keeps the listed values (others -> ``other``); neither: every value,
  Chinese text mapped to English by the column dictionary; ``expr``: a Spark SQL expression.
* ``score.actions``: ordered rules ``{name, when: Spark SQL condition over raw codes, action}``.
* ``score.campaign_budget`` / ``score.campaign_split``: the campaign list (see :func:`campaign_budgets`).
* ``score.psi_warn``, ``score.psi_bins``, ``score.categorical_max_values``: the drift check.

Heavy work stays in Spark: one projection of the scored users carries every segment value and
rule flag; profiles, action counts and the campaign list are aggregations or filters of it. Only
aggregates (one row per region x segment, per rule, per feature bin) reach the driver.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from prospects.core import tables
from prospects.core.config import Config, join_path
from prospects.core.dictionary import ColumnDictionary
from prospects.core.errors import JobError
from prospects.core.figures import Folder, pyplot
from prospects.ml.drift import MISSING, Reference, against, as_text

log = logging.getLogger(__name__)



# ---------------------------------------------------------------------------------------------
# Rules from conf
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """One profiling dimension: ``name``, readable ``label``, the ``value`` column (string) and
    ``order`` column (band index, for plotting bands in order)."""

    name: str
    label: str
    value: Column
    order: Column


@dataclass(frozen=True)
class Action:
    """One marketing rule: ``name``, Spark SQL condition ``when`` over raw codes, ``action`` text."""

    name: str
    when: str
    action: str


@dataclass(frozen=True)
class Rules:
    segments: list[Segment]
    actions: list[Action]


def _band_label(lo: float | None, hi: float | None, integer: bool) -> str:
    def fmt(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else f"{v:g}"
    if lo is None:
        return f"<{fmt(hi)}"
    if hi is None:
        return f"{fmt(lo)}+"
    if integer and float(lo).is_integer() and float(hi).is_integer():
        return fmt(lo) if hi - lo == 1 else f"{fmt(lo)}-{fmt(hi - 1)}"
    return f"{fmt(lo)} to <{fmt(hi)}"


def segment_from_spec(name: str, spec: dict, columns: ColumnDictionary) -> Segment:
    """Build a :class:`Segment` from its conf record.

    Raises:
        JobError: naming the dimension when the record is malformed.
    """
    where = f"score.segments.{name}"
    if not isinstance(spec, dict) or ("column" in spec) == ("expr" in spec):
        raise JobError(f"{where}: needs exactly one of 'column' or 'expr', got {spec!r}")
    unknown = set(spec) - {"column", "expr", "bands", "values", "label"}
    if unknown:
        raise JobError(f"{where}: unknown field(s) {sorted(unknown)}")
    if "expr" in spec:
        value = F.coalesce(F.expr(str(spec["expr"])).cast("string"), F.lit(MISSING))
        return Segment(name, str(spec.get("label") or name.replace("_", " ")), value, F.lit(0))
    code = str(spec["column"])
    col = F.col(code)
    label = str(spec.get("label") or (columns.readable(code).replace("_", " ") if code in columns else code))
    if "bands" in spec:
        edges = spec["bands"]
        if (not isinstance(edges, list) or not edges or
                not all(isinstance(e, (int, float)) for e in edges) or sorted(edges) != edges):
            raise JobError(f"{where}: bands must be an increasing list of numbers, got {edges!r}")
        integer = code in columns and columns[code].type == "int"
        bounds = [None, *edges, None]
        value: Any = F.when(col.isNull(), F.lit(MISSING))
        order: Any = F.when(col.isNull(), F.lit(len(bounds) - 1))
        for i in range(len(bounds) - 1):
            lo, hi = bounds[i], bounds[i + 1]
            cond = F.lit(True)
            if lo is not None:
                cond = cond & (col >= F.lit(lo))
            if hi is not None:
                cond = cond & (col < F.lit(hi))
            value = value.when(cond, F.lit(_band_label(lo, hi, integer)))
            order = order.when(cond, F.lit(i))
        return Segment(name, label, value, order)
    text = as_text(col)
    if "values" in spec:
        mapping = spec["values"]
        if not isinstance(mapping, dict) or not mapping:
            raise JobError(f"{where}: values must be a mapping raw value -> label, got {mapping!r}")
        keys = list(mapping)
        value = F.when(col.isNull(), F.lit(MISSING))
        order = F.when(col.isNull(), F.lit(len(keys) + 1))
        for i, k in enumerate(keys):
            raw = str(int(k)) if isinstance(k, float) and k.is_integer() else str(k)
            value = value.when(text == F.lit(raw), F.lit(str(mapping[k])))
            order = order.when(text == F.lit(raw), F.lit(i))
        return Segment(name, label, value.otherwise(F.lit("other")), order.otherwise(F.lit(len(keys))))
    labels = columns[code].labels if code in columns else {}
    if labels:
        pairs = [x for k, v in labels.items() for x in (F.lit(k), F.lit(v))]
        text = F.coalesce(F.element_at(F.create_map(*pairs), text), text)
    return Segment(name, label, F.coalesce(text, F.lit(MISSING)), F.lit(0))


def validate_rules(cfg: Config, regions: DataFrame) -> Rules:
    """Parse ``score.segments`` and ``score.actions`` and check them against the regions' columns.

    Every expression is analysed on an empty projection of ``regions`` (no data read), so a bad
    rule stops the job before anything is written.

    Raises:
        JobError: naming the segment or rule and the problem.
    """
    segs = [segment_from_spec(name, spec, cfg.columns) for name, spec in (cfg.get("score.segments") or {}).items()]
    actions = []
    for i, rec in enumerate(cfg.get("score.actions") or []):
        if not isinstance(rec, dict) or not {"name", "when", "action"} <= set(rec):
            raise JobError(f"score.actions[{i}]: needs name, when and action, got {rec!r}")
        actions.append(Action(str(rec["name"]), str(rec["when"]), str(rec["action"])))
    names = [a.name for a in actions]
    if len(set(names)) != len(names):
        raise JobError(f"score.actions: duplicate rule names {names}")
    empty = regions.limit(0)
    for s in segs:
        try:
            empty.select(s.value, s.order).schema
        except Exception as exc:  # noqa: BLE001
            raise JobError(f"score.segments.{s.name}: cannot be computed on the regions ({_first_line(exc)})") from exc
    for a in actions:
        try:
            empty.select(F.expr(a.when).cast("boolean")).schema
        except Exception as exc:  # noqa: BLE001
            raise JobError(f"score.actions '{a.name}': condition {a.when!r} is invalid ({_first_line(exc)})") from exc
    return Rules(segs, actions)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------
def rule_flag(a: Action) -> Column:
    """1 when the rule's condition holds (null counts as not holding), else 0."""
    return F.coalesce(F.expr(a.when).cast("boolean"), F.lit(False)).cast("int")


def first_action(actions: Sequence[Action]) -> tuple[Column, Column]:
    """(name, text) of the first rule that holds, null when none."""
    name: Any = None
    text: Any = None
    for a in actions:
        cond = F.coalesce(F.expr(a.when).cast("boolean"), F.lit(False))
        name = F.when(cond, F.lit(a.name)) if name is None else name.when(cond, F.lit(a.name))
        text = F.when(cond, F.lit(a.action)) if text is None else text.when(cond, F.lit(a.action))
    if name is None:
        return F.lit(None).cast("string"), F.lit(None).cast("string")
    return name, text


def scored_users(scores: DataFrame, regions: DataFrame, rules: Rules, id_column: str = "user_id") -> DataFrame:
    """Scores joined to the users' raw columns, projected to what the profiles need.

    Args:
        scores: gold score rows of one run (region, user_id, probability, prediction, rank, tier).
        regions: bronze-shaped users of the regions (region, id column, raw codes).

    Returns:
        region, user_id, probability, prediction, rank, tier, ``seg`` (array of struct dimension,
        segment, segment_order), ``act_<i>`` (0/1 per rule), action_name, action.
    """
    name, text = first_action(rules.actions)
    raw = regions.withColumnRenamed(id_column, "user_id") if id_column != "user_id" else regions
    seg = F.array(*[F.struct(F.lit(s.name).alias("dimension"), s.value.alias("segment"),
                             s.order.cast("int").alias("segment_order")) for s in rules.segments]) \
        if rules.segments else F.array().cast("array<struct<dimension:string,segment:string,segment_order:int>>")
    raw = raw.select("region", "user_id", seg.alias("seg"),
                     *[rule_flag(a).alias(f"act_{i}") for i, a in enumerate(rules.actions)],
                     name.alias("action_name"), text.alias("action"))
    return scores.select("region", "user_id", "probability", "prediction", "rank", "tier").join(
        raw, ["region", "user_id"], "inner")


def segment_profiles(users: DataFrame, rules: Rules) -> DataFrame:
    """Prospects versus all users of each region, per dimension and segment.

    Args:
        users: output of :func:`scored_users`.

    Returns:
        region, dimension, dimension_label, segment, segment_order, users, prospects,
        expected_switchers, user_share (segment users / region users), prospect_share (segment
        prospects / region prospects), prospect_rate (prospects / users), lift (prospect_rate /
        region prospect rate; null when the region has no prospect).
    """
    labels = F.create_map(*[x for s in rules.segments for x in (F.lit(s.name), F.lit(s.label))]) \
        if rules.segments else F.create_map().cast("map<string,string>")
    counts = (users.select("region", "prediction", "probability", F.explode("seg").alias("s"))
              .groupBy("region", F.col("s.dimension").alias("dimension"), F.col("s.segment").alias("segment"))
              .agg(F.min("s.segment_order").alias("segment_order"), F.count(F.lit(1)).alias("users"),
                   F.sum("prediction").cast("long").alias("prospects"),
                   F.sum("probability").alias("expected_switchers")))
    w = Window.partitionBy("region", "dimension")
    region_users = F.sum("users").over(w)
    region_prospects = F.sum("prospects").over(w)
    return counts.select(
        "region", "dimension", F.element_at(labels, F.col("dimension")).alias("dimension_label"),
        "segment", "segment_order", "users", "prospects", "expected_switchers",
        (F.col("users") / region_users).alias("user_share"),
        F.when(region_prospects > 0, F.col("prospects") / region_prospects).alias("prospect_share"),
        (F.col("prospects") / F.col("users")).alias("prospect_rate"),
        F.when(region_prospects > 0, (F.col("prospects") / F.col("users")) / (region_prospects / region_users))
        .alias("lift"),
    )


def action_counts(users: DataFrame, rules: Rules) -> DataFrame:
    """Per region and rule: users and prospects the rule applies to (rules may overlap).

    Args:
        users: output of :func:`scored_users`.

    Returns:
        region, rule_order, action_name, action, condition, users, prospects, expected_switchers,
        prospect_share (of the region's prospects); plus one row ``action_name = "(none)"``
        counting the prospects no rule applies to.
    """
    aggs = [F.count(F.lit(1)).alias("_users"), F.sum("prediction").cast("long").alias("_prospects")]
    none_flag = F.col("action_name").isNull().cast("int")
    for i, _ in enumerate([*rules.actions, None]):
        flag = F.col(f"act_{i}") if i < len(rules.actions) else none_flag
        aggs += [F.sum(flag).cast("long").alias(f"u{i}"),
                 F.sum(flag * F.col("prediction")).cast("long").alias(f"p{i}"),
                 F.sum(flag * F.col("probability")).alias(f"e{i}")]
    wide = users.groupBy("region").agg(*aggs)
    entries = [(a.name, a.action, a.when) for a in rules.actions] + [("(none)", "no rule applies", None)]
    long = F.explode(F.array(*[F.struct(
        F.lit(i).alias("rule_order"), F.lit(n).alias("action_name"), F.lit(t).alias("action"),
        F.lit(c).cast("string").alias("condition"), F.col(f"u{i}").alias("users"),
        F.col(f"p{i}").alias("prospects"), F.coalesce(F.col(f"e{i}"), F.lit(0.0)).alias("expected_switchers"))
        for i, (n, t, c) in enumerate(entries)]))
    return (wide.select("region", "_prospects", long.alias("r"))
            .select("region", "r.*", F.when(F.col("_prospects") > 0, F.col("r.prospects") / F.col("_prospects"))
                    .alias("prospect_share")))


def campaign_budgets(summary: Sequence[dict], budget: int, split: str) -> dict[str, int]:
    """Users to contact per region.

    ``per_region``: ``budget`` users in every region. ``expected``: ``budget`` users in total,
    split across regions in proportion to their expected switchers (largest remainder, so the
    parts sum to the budget). A region never gets more than its prospects (users above the
    threshold); what a region cannot use is not moved elsewhere.

    Args:
        summary: region summary rows (region, prospects, expected_switchers).
    """
    if budget <= 0:
        return {}
    if split == "per_region":
        parts = {r["region"]: budget for r in summary}
    elif split == "expected":
        total = sum((r["expected_switchers"] or 0.0) for r in summary)
        if total <= 0:
            return {r["region"]: 0 for r in summary}
        raw = {r["region"]: budget * (r["expected_switchers"] or 0.0) / total for r in summary}
        parts = {k: int(math.floor(v)) for k, v in raw.items()}
        left = budget - sum(parts.values())
        for k in sorted(raw, key=lambda k: (-(raw[k] - parts[k]), k))[:left]:
            parts[k] += 1
    else:
        raise JobError(f"score.campaign_split must be per_region or expected, got {split!r}")
    return {r["region"]: min(parts[r["region"]], int(r["prospects"] or 0)) for r in summary}


def campaign_list(users: DataFrame, budgets: dict[str, int]) -> DataFrame:
    """Top prospects of each region within its budget.

    Args:
        users: output of :func:`scored_users`.
        budgets: region -> users to contact (see :func:`campaign_budgets`).

    Returns:
        region, user_id, rank, probability, tier, action_name, action (first rule that applies),
        budget: the users with prediction 1 and rank <= the region's budget.
    """
    spark = users.sparkSession
    b = spark.createDataFrame([(k, int(v)) for k, v in budgets.items()], "region string, budget long")
    return (users.join(F.broadcast(b), "region")
            .where((F.col("prediction") == 1) & (F.col("rank") <= F.col("budget")))
            .select("region", "user_id", "rank", "probability", "tier", "action_name", "action", "budget"))


# ---------------------------------------------------------------------------------------------
# Figures (small aggregates only)
# ---------------------------------------------------------------------------------------------
def plot_region_segments(profile, region: str, title: str | None = None):
    """Grid of bar charts: share of all users vs share of prospects per segment, one panel per dimension.

    Args:
        profile: pandas frame of the segment profile rows (any regions; ``region`` selects).
    """
    plt = pyplot()
    import numpy as np

    rows = profile[profile["region"] == region]
    dims = list(dict.fromkeys(rows.sort_values("dimension")["dimension"]))
    n = max(1, len(dims))
    ncols = 2 if n > 1 else 1
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(7 * ncols, 3.4 * nrows), squeeze=False)
    for ax, dim in zip(axes.flat, dims):
        d = rows[rows["dimension"] == dim].sort_values(["segment_order", "segment"])
        y = np.arange(len(d))
        ax.barh(y - 0.2, d["user_share"].fillna(0) * 100, height=0.4, label="all users", color="#9bb7d4")
        ax.barh(y + 0.2, d["prospect_share"].fillna(0) * 100, height=0.4, label="prospects", color="#d9534f")
        ax.set_yticks(y)
        ax.set_yticklabels(d["segment"].astype(str))
        ax.invert_yaxis()
        ax.set_xlabel("share of region (%)")
        label = d["dimension_label"].iloc[0] if len(d) and d["dimension_label"].iloc[0] else dim
        ax.set_title(str(label))
        ax.legend(fontsize=8, loc="best")
    for ax in list(axes.flat)[len(dims):]:
        ax.axis("off")
    fig.suptitle(title or f"Region {region}: prospects vs all users by segment")
    fig.tight_layout()
    return fig


def plot_region_comparison(summary):
    """Two panels: prospect share per region (with counts), users per tier per region.

    Args:
        summary: pandas frame of region summary rows.
    """
    plt = pyplot()

    s = summary.sort_values("region")
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4))
    bars = a1.bar(s["region"].astype(str), s["prospect_share"] * 100, color="#d9534f")
    for bar, (_, r) in zip(bars, s.iterrows()):
        a1.annotate(f"{int(r['prospects']):,}/{int(r['users']):,}", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize=8)
    thr = s["threshold"].iloc[0] if len(s) else float("nan")
    a1.set_title(f"Prospects (probability > {thr:g}) per region")
    a1.set_xlabel("region")
    a1.set_ylabel("share of users (%)")
    bottom = None
    for tier, color in (("high", "#d9534f"), ("medium", "#f0ad4e"), ("low", "#9bb7d4")):
        vals = s[tier].fillna(0)
        a2.bar(s["region"].astype(str), vals, bottom=bottom, label=tier, color=color)
        bottom = vals if bottom is None else bottom + vals
    a2.set_title("Users per tier")
    a2.set_xlabel("region")
    a2.set_ylabel("users")
    a2.legend()
    fig.tight_layout()
    return fig


def plot_drift(rows, warn: float, columns: ColumnDictionary | None = None, top: int = 15):
    """Horizontal bars of the features with the largest PSI (max over regions), one bar per region."""
    plt = pyplot()
    import numpy as np

    best = rows.groupby("feature")["psi"].max().sort_values(ascending=False).head(top)
    feats = list(best.index)
    regions = sorted(rows["region"].unique())
    fig, ax = plt.subplots(figsize=(9, 0.35 * max(4, len(feats)) + 1.5))
    h = 0.8 / max(1, len(regions))
    for i, region in enumerate(regions):
        r = rows[rows["region"] == region].set_index("feature").reindex(feats)
        ax.barh(np.arange(len(feats)) + i * h, r["psi"].fillna(0), height=h, label=f"region {region}")
    names = [f"{columns.readable(f).replace('_', ' ')} ({f})" if columns else f for f in feats]
    ax.set_yticks(np.arange(len(feats)) + h * (len(regions) - 1) / 2)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.axvline(warn, color="k", linestyle="--", linewidth=1, label=f"warning ({warn:g})")
    ax.set_xlabel("population stability index vs training users")
    ax.set_title("Feature drift per region (largest PSI first)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------
# Stage outputs
# ---------------------------------------------------------------------------------------------
def _segment_outputs(spark: SparkSession, cfg: Config, regions: DataFrame | None, scores: DataFrame | None,
                     summary_rows: list[dict], rules: Rules, out: dict, seconds: dict) -> None:
    """Segment profiles, action counts and the campaign list of the run (``run_outputs``' first half)."""
    t = time.time()
    users = None
    if scores is not None and regions is not None:
        users = scored_users(scores, regions, rules, cfg.columns.id_column).persist()
    profiles = segment_profiles(users, rules) if users is not None and rules.segments else None
    tables.write_run(profiles, cfg, "gold_segments")
    actions = action_counts(users, rules) if users is not None else None
    tables.write_run(actions, cfg, "gold_actions")
    seconds["segments_actions"] = round(time.time() - t, 3)

    t = time.time()
    budgets = campaign_budgets(summary_rows, int(cfg.get("score.campaign_budget")), cfg.get("score.campaign_split"))
    campaign = campaign_list(users, budgets) if users is not None and budgets else None
    tables.write_run(campaign, cfg, "gold_campaign")
    out["campaign"] = {"split": cfg.get("score.campaign_split"), "users": budgets}
    seconds["campaign"] = round(time.time() - t, 3)
    if users is not None:
        users.unpersist()


def _drift_output(spark: SparkSession, cfg: Config, regions: DataFrame | None, scores: DataFrame | None,
                  reference: Reference | None, train_what: str, out: dict, seconds: dict) -> list[dict]:
    """PSI of every feature per region against the training users' reference, written to ``gold_drift``."""
    t = time.time()
    warn = float(cfg.get("score.psi_warn"))
    drift_rows: list[dict] = []
    if reference is not None and regions is not None and scores is not None:
        drift_rows = against(reference, regions, int(cfg.get("score.drift_sample_rows")))
        for r in drift_rows:
            r["feature_name"] = cfg.columns.readable(r["feature"])
            r["level"] = "shift" if r["psi"] >= warn else ("moderate" if r["psi"] >= 0.1 else "stable")
            r["training"] = train_what
        warnings = [r for r in drift_rows if r["psi"] >= warn]
        for r in warnings:
            log.warning("drift: region %s feature %s (%s) PSI %.3f above %.2f (training: %s)", r["region"],
                        r["feature"], r["feature_name"], r["psi"], warn, train_what)
        out["drift_warnings"] = [f"{r['region']}:{r['feature']}={r['psi']:.3f}" for r in warnings]
        schema = ("region string, feature string, feature_name string, kind string, bins int, psi double, "
                  "level string, training string")
        df = tables.small_frame(spark, [tuple(r[k] for k in ("region", "feature", "feature_name", "kind", "bins", "psi",
                                                             "level", "training")) for r in drift_rows], schema)
        tables.write_run(df, cfg, "gold_drift")
    else:
        reason = train_what if reference is None else "nothing scored"
        log.warning("drift check skipped: %s", reason)
        out["drift_skipped"] = reason
        tables.write_run(None, cfg, "gold_drift")
    seconds["drift"] = round(time.time() - t, 3)
    return drift_rows


def run_outputs(spark: SparkSession, cfg: Config, regions: DataFrame | None, scores: DataFrame | None,
                summary_rows: list[dict], rules: Rules, reference: Reference | None, train_what: str) -> dict:
    """Write segment profiles, action counts, campaign list and drift of one run, then the figures.

    The drift check runs in a second thread beside the other outputs; ``seconds`` gives each part's
    own time (the parts overlap).

    Args:
        regions: bronze-shaped users of the run's regions (None when nothing was scored).
        scores: gold score rows of the run (None when nothing was scored).
        summary_rows: region summary rows of the run (driver-side, one per region).
        rules: parsed segment and action rules (:func:`validate_rules`).
        reference: the training users' drift reference (None: drift skipped); ``train_what`` says
            which users it describes, or why there is none.

    Returns:
        counts per output, campaign budgets, drift warnings, figure paths and ``seconds``.
    """
    seconds: dict[str, float] = {}
    out: dict[str, Any] = {}
    # Drift reads its own sample of the region users: it runs beside the segment,
    # action and campaign outputs (Spark interleaves the two threads' jobs, so one side's small jobs
    # and driver-side work fill the cores the other leaves idle).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift") as pool:
        drifting = pool.submit(_drift_output, spark, cfg, regions, scores, reference, train_what, out, seconds)
        _segment_outputs(spark, cfg, regions, scores, summary_rows, rules, out, seconds)
        drift_rows = drifting.result()

    t = time.time()
    warn = float(cfg.get("score.psi_warn"))
    out["figures"] = write_figures(spark, cfg, summary_rows, drift_rows, warn) if cfg.get("score.figures") else []
    seconds["figures"] = round(time.time() - t, 3)
    out["seconds"] = seconds
    return out


def write_figures(spark: SparkSession, cfg: Config, summary_rows: list[dict], drift_rows: list[dict],
                  warn: float) -> list[str]:
    """Region comparison, one segment figure per region, drift; PNGs under reports/<run_id>/score."""
    import pandas as pd

    folder = Folder(spark, join_path(cfg.path("reports"), cfg.run_id, "score"))
    paths: list[str] = []
    scored = [r for r in summary_rows if r["users"]]
    if not scored:
        return []
    paths.append(folder.save(plot_region_comparison(pd.DataFrame(summary_rows)), "regions.png", tight=False))
    seg_path = cfg.table("gold_segments")
    if tables.is_delta(spark, seg_path):
        prof, _ = tables.read_run(spark, seg_path, cfg.run_id)
        pdf = prof.toPandas()  # one row per region x segment: small
        for r in scored:
            if (pdf["region"] == r["region"]).any():
                paths.append(folder.save(plot_region_segments(pdf, r["region"]), f"segments_{r['region']}.png",
                                         tight=False))
    if drift_rows:
        paths.append(folder.save(plot_drift(pd.DataFrame(drift_rows), warn, cfg.columns), "drift.png", tight=False))
    return paths
