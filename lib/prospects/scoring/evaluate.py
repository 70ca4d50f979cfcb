"""The evaluate job: a registered model measured on a labelled delivery (the operator's monthly loop).

Last month's prospects were scored into ``gold_scores``; this month the outcomes arrive (who did
switch). The job joins the scores of one scoring run with those outcomes and writes, per region
and over all regions (``region = "all"``):

* ``gold_evaluation`` (long format): users matched, positives, base rate, ROC AUC and PR AUC
  (exact), lift and capture at the top shares (``train.lift_shares``; by each user's rank in its
  region, so a region's top 10% is its campaign list at that share), scored users without an
  outcome and outcomes without a score;
* ``gold_calibration``: per region and decile (1 = the region's top tenth), users, expected
  positives (the sum of the probabilities), observed positives, mean probability, observed rate;
  ``all`` sums each decile over the regions;

and a figure ``reports/<run_id>/evaluate/evaluation.png`` (calibration and gains per region).

Outcomes come from the label column of the bronze regions (a region file delivered with the label,
e.g. a labelled hold-out), or from ``evaluate.outcomes_path``: a CSV (header; the dataset's
encoding, delimiter and label values), Parquet or Delta table holding the id column and the label
column (and ``region`` if ids repeat across regions).
"""

from __future__ import annotations

import logging
import math

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from prospects.core import figures, runlog, storage, tables
from prospects.core.config import Config, join_path
from prospects.core.errors import JobError
from prospects.ml import evaluation as ev

log = logging.getLogger(__name__)

ALL = "all"
OUTCOME = "_label"
METRICS_SCHEMA = "region string, metric string, value double"
CALIBRATION_SCHEMA = T.StructType([
    T.StructField("region", T.StringType()), T.StructField("decile", T.IntegerType()),
    T.StructField("users", T.LongType()), T.StructField("observed", T.LongType()),
    T.StructField("expected", T.DoubleType()), T.StructField("mean_probability", T.DoubleType()),
    T.StructField("observed_rate", T.DoubleType()),
])


def scores_run(spark: SparkSession, cfg: Config) -> str:
    """The scoring run judged: ``evaluate.scores_run_id``, else this run's, else the latest scoring run."""
    path = cfg.table("gold_scores")
    if not tables.is_delta(spark, path):
        raise JobError(f"no gold scores at {path}: run the score stage first")
    wanted = cfg.get("evaluate.scores_run_id")
    if wanted:
        return str(wanted)
    try:
        return runlog.read_latest(spark, cfg, path, "score")[1]
    except ValueError:
        raise JobError(f"{path} holds no scoring run of use case '{cfg.use_case}'") from None


def read_outcomes(spark: SparkSession, cfg: Config, run: str) -> DataFrame:
    """Outcomes: ``user_id`` (the id as in gold scores), ``_label`` (0/1), and ``region`` when known."""
    d = cfg.columns
    path = cfg.get("evaluate.outcomes_path")
    if not path:
        bronze = cfg.table("bronze_regions")
        if not tables.is_delta(spark, bronze) or d.label_column not in tables.read(spark, bronze).columns:
            raise JobError(f"no labelled delivery: {bronze} has no '{d.label_column}' column (deliver a region "
                           "file with the label, or set evaluate.outcomes_path)")
        df, _ = runlog.read_latest(spark, cfg, bronze, "ingest", prefer=run)
        return df.where(F.col(d.label_column).isNotNull()).select(
            "region", F.col(d.id_column).alias("user_id"), F.col(d.label_column).cast("double").alias(OUTCOME))
    df = _read_table_or_file(spark, cfg, path)
    for col in (d.id.code if d.id else d.id_column, d.label_code):
        if col not in df.columns:
            raise JobError(f"{path}: no column '{col}' (columns: {df.columns})")
    from prospects.ingest.rows import label_value

    label = df[d.label_code]
    value = label.cast("double") if isinstance(df.schema[d.label_code].dataType, T.NumericType) else \
        label_value(F.trim(label), cfg.get("dataset.label_values")).cast("double")
    keep = [F.col("region").cast("string")] if "region" in df.columns else []
    return df.select(*keep, F.col(d.id.code if d.id else d.id_column).alias("user_id"), value.alias(OUTCOME)) \
        .where(F.col(OUTCOME).isin(0.0, 1.0))


def _read_table_or_file(spark: SparkSession, cfg: Config, path: str) -> DataFrame:
    if tables.is_delta(spark, path):
        return tables.read(spark, path)
    if path.endswith(".csv") or not storage.is_dir(spark, path):
        return (spark.read.option("header", True).option("encoding", cfg.get("dataset.encoding"))
                .option("sep", cfg.get("dataset.delimiter")).option("quote", cfg.get("dataset.quote"))
                .option("escape", cfg.get("dataset.quote")).option("multiLine", True).csv(path))
    return spark.read.parquet(path)


def joined(scores: DataFrame, outcomes: DataFrame) -> tuple[DataFrame, dict[str, int]]:
    """Scores with their outcome (``_label``, ``p``), and how many on each side found no partner."""
    keys = ["region", "user_id"] if "region" in outcomes.columns else ["user_id"]
    s = scores.select("region", "user_id", "rank", "decile", F.col("probability").alias(ev.P_COL))
    both = s.join(outcomes.select(*keys, OUTCOME), keys, "inner").withColumnRenamed(OUTCOME, ev.LABEL)
    counts = {"scored_without_outcome": s.join(outcomes, keys, "left_anti").count(),
              "outcomes_without_score": outcomes.join(s, keys, "left_anti").count()}
    return both, counts


def calibration(both: DataFrame) -> list[dict]:
    """Per region and decile: users, observed and expected positives (one aggregation); ``all`` sums
    each decile over the regions."""
    rows = both.groupBy("region", "decile").agg(
        F.count(F.lit(1)).alias("users"), F.sum(F.col(ev.LABEL).cast("long")).alias("observed"),
        F.sum(ev.P_COL).alias("expected")).collect()
    out = [r.asDict() for r in rows]
    per_decile: dict[int, dict] = {}
    for r in out:
        agg = per_decile.setdefault(r["decile"], {"region": ALL, "decile": r["decile"], "users": 0, "observed": 0,
                                                  "expected": 0.0})
        for k in ("users", "observed", "expected"):
            agg[k] += r[k]
    out += list(per_decile.values())
    for r in out:
        r["mean_probability"] = r["expected"] / r["users"] if r["users"] else None
        r["observed_rate"] = r["observed"] / r["users"] if r["users"] else None
    return sorted(out, key=lambda r: (r["region"] != ALL, r["region"], r["decile"]))


def region_metrics(both: DataFrame, regions: list[str], shares: list[float], users: dict[str, int]) -> list[tuple]:
    """ROC / PR AUC, lift and capture at ``shares`` per region (the top ``share`` by rank)."""
    rows: list[tuple] = []
    tops = {r: [max(1, math.ceil(s * users[r])) for s in shares] for r in regions}
    aggs = [F.count(F.lit(1)).alias("n"), F.sum(F.col(ev.LABEL).cast("long")).alias("pos")]
    for i in range(len(shares)):
        k = F.create_map(*[x for r in regions for x in (F.lit(r), F.lit(tops[r][i]))])[F.col("region")]
        top = F.col("rank") <= k
        aggs += [F.count_if(top).alias(f"n{i}"), F.count_if(top & (F.col(ev.LABEL) == 1)).alias(f"p{i}")]
    counts = {r["region"]: r for r in both.groupBy("region").agg(*aggs).collect()}
    for region in regions:
        c = counts[region]
        base = c["pos"] / c["n"] if c["n"] else 0.0
        rows += [(region, "users", float(c["n"])), (region, "positives", float(c["pos"])),
                 (region, "base_rate", base)]
        if 0 < c["pos"] < c["n"]:
            rows += [(region, k, v) for k, v in ev.aucs(both.where(F.col("region") == region)).items()]
        for i, s in enumerate(shares):
            key = f"top{round(s * 100):d}"
            capture = c[f"p{i}"] / c["pos"] if c["pos"] else 0.0
            lift = (c[f"p{i}"] / c[f"n{i}"]) / base if c[f"n{i}"] and base else 0.0
            rows += [(region, f"capture_{key}", capture), (region, f"lift_{key}", lift)]
    return rows


def overall_metrics(both: DataFrame, shares: list[float]) -> list[tuple]:
    """The same over all regions at once (top shares of the whole base, by probability)."""
    res = ev.evaluate(both, 0.5, shares, 1000)
    keep = ("areaUnderROC", "areaUnderPR", "rows", "positives", "base_rate")
    out = [(ALL, "users" if k == "rows" else k, float(v)) for k, v in res.metrics.items()
           if k in keep or k.startswith(("lift_", "capture_"))]
    return out


def plot(cal: list[dict], path: str, spark: SparkSession, title: str) -> str:
    """Calibration (observed against expected rate per decile) and gains per region, side by side."""
    plt = figures.pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.8))
    for region in sorted({r["region"] for r in cal}, key=lambda x: (x != ALL, x)):
        pts = sorted((r for r in cal if r["region"] == region and r["users"]), key=lambda r: r["decile"])
        style = dict(lw=2.2, color="black") if region == ALL else dict(lw=1.2, alpha=0.8)
        a.plot([r["mean_probability"] for r in pts], [r["observed_rate"] for r in pts], "o-", ms=3, label=region,
               **style)
        total_users, total_pos = sum(r["users"] for r in pts), sum(r["observed"] for r in pts)
        xs, ys, cu, cp = [0.0], [0.0], 0, 0
        for r in pts:
            cu, cp = cu + r["users"], cp + r["observed"]
            xs.append(cu / total_users)
            ys.append(cp / total_pos if total_pos else 0.0)
        b.plot(xs, ys, "o-", ms=3, label=region, **style)
    hi = max([0.05] + [max(r["mean_probability"] or 0, r["observed_rate"] or 0) for r in cal]) * 1.05
    a.plot([0, hi], [0, hi], ":", color="grey", label="perfect calibration")
    a.set(xlabel="mean predicted probability (decile)", ylabel="observed rate (decile)",
          title="Calibration by decile", xlim=(0, hi), ylim=(0, hi))
    b.plot([0, 1], [0, 1], ":", color="grey", label="random")
    b.set(xlabel="share of users contacted (by decile, top first)", ylabel="share of positives captured",
          title="Gains by region", xlim=(0, 1), ylim=(0, 1.01))
    for ax in (a, b):
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return figures.save(spark, fig, path)


@runlog.logged("evaluate")
def run(cfg: Config, spark: SparkSession) -> dict:
    """Job entry: judge one scoring run on its outcomes (module doc)."""
    run_id = scores_run(spark, cfg)
    scores = tables.read(spark, cfg.table("gold_scores")).where(F.col("run_id") == run_id)
    both, unmatched = joined(scores, read_outcomes(spark, cfg, run_id))
    both = both.cache()
    try:
        cal = calibration(both)
        if not cal:
            raise JobError(f"no scored user of run {run_id} has an outcome ({unmatched})")
        regions = sorted({r["region"] for r in cal if r["region"] != ALL})
        users = {reg: sum(r["users"] for r in cal if r["region"] == reg) for reg in regions}
        shares = [float(s) for s in cfg.get("train.lift_shares") or []]
        metrics = region_metrics(both, regions, shares, users) + overall_metrics(both, shares)
    finally:
        both.unpersist()
    metrics += [(ALL, k, float(v)) for k, v in unmatched.items()]
    version = scores.select("model_version").first()["model_version"]
    meta = [F.lit(cfg.run_id).alias("run_id"), F.lit(run_id).alias("scores_run_id"),
            F.lit(version).alias("model_version")]
    tables.write_run(tables.small_frame(spark, metrics, METRICS_SCHEMA).select(*meta, "*"), cfg, "gold_evaluation")
    cal_rows = [tuple(r[f.name] for f in CALIBRATION_SCHEMA.fields) for r in cal]
    tables.write_run(tables.small_frame(spark, cal_rows, CALIBRATION_SCHEMA).select(*meta, "*"), cfg,
                     "gold_calibration")
    figure = plot(cal, join_path(cfg.path("reports"), cfg.run_id, "evaluate", "evaluation.png"), spark,
                  f"Model {version} on the outcomes of scoring run {run_id}")
    table = {(r, m): v for r, m, v in metrics}
    summary = {"scores_run_id": run_id, "model_version": version, "regions": {
        r: {m: round(table[(r, m)], 4) for m in ("users", "positives", "areaUnderROC", "areaUnderPR")
            if (r, m) in table} for r in [*regions, ALL]}, **unmatched, "figure": figure}
    log.info("evaluate %s: %s", run_id, summary)
    return summary
