"""Credit-card prospects (SPEC 2.2): demand and risk labels for the generated users, and the target list.

The generated users (``prospects.generator.users``: same ids, same attributes as the 5G files for a
seed) get two more labels, each drawn from a **known probability** (logistic in a linear predictor
written below), with uniforms from ``Uniforms(generator.seed + credit.label_seed_offset)``: a
different seed from the 5G label, so the draws are independent of it, and deterministic.

Demand for a credit card (``demand_eta``), before the intercept ``DEMAND_INTERCEPT``:

* age: 25-45 +0.9; 18-24 +0.3; 46-60 0; over 60 -0.8; under 18 -3.0
* ARPU: +0.5 x z, z = (ln(1 + three-month mean ARPU X15) - 3.6) / 0.45 clipped to [-2, 2] (0 when missing)
* market segment: company +0.6, campus -0.2, rural -0.5, public 0
* heavy data use (ln(1 + DOU X16) > 8.5) +0.4; VIP class 3 or more +0.3; family user +0.2

Credit risk (``risk_eta``), before ``RISK_INTERCEPT``:

* balance arrears X24 > 0 +1.6; data arrears X25 > 0 +1.0 (missing: 0)
* time in network X4: 1 year +0.8, 2-3 years +0.3
* age under 25 +0.6, over 65 +0.3
* data overage fees (X21 + X22 + X23 > 0) +0.4
* VIP class 4 or more -0.5; company segment -0.3

``probability = 1 / (1 + exp(-(eta + intercept)))``: on 20,000 generated users (seed 42), 26.3% demand,
12.5% risk, 3.0% both.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from prospects import generator as g
from prospects import tables
from prospects.cli import JobError
from prospects.config import Config, join_path

log = logging.getLogger(__name__)

DEMAND_INTERCEPT = -1.9
RISK_INTERCEPT = -2.9
DEMAND_STREAM = 1
RISK_STREAM = 2


def demand_eta() -> Column:
    """Linear predictor of credit-card demand over the raw generator columns (see module doc)."""
    age = F.col("X2")
    age_term = (F.when(age < 18, -3.0).when(age < 25, 0.3).when(age <= 45, 0.9)
                .when(age <= 60, 0.0).otherwise(-0.8))
    z_arpu = F.coalesce((F.log1p(F.col("X15")) - 3.6) / 0.45, F.lit(0.0))
    z_arpu = F.least(F.greatest(z_arpu, F.lit(-2.0)), F.lit(2.0))
    seg = F.col("X5")
    seg_term = (F.when(seg == g.SEGMENTS[3], 0.6).when(seg == g.SEGMENTS[2], -0.2)
                .when(seg == g.SEGMENTS[1], -0.5).otherwise(0.0))
    heavy = F.when(F.log1p(F.col("X16")) > 8.5, 0.4).otherwise(0.0)
    vip = F.when(F.col("X3") >= 3, 0.3).otherwise(0.0)
    family = F.when(F.col("X29") == 1, 0.2).otherwise(0.0)
    return age_term + 0.5 * z_arpu + seg_term + heavy + vip + family


def risk_eta() -> Column:
    """Linear predictor of credit risk (default) over the raw generator columns (see module doc)."""
    arrears = (F.when(F.coalesce(F.col("X24"), F.lit(0.0)) > 0, 1.6).otherwise(0.0)
               + F.when(F.coalesce(F.col("X25"), F.lit(0.0)) > 0, 1.0).otherwise(0.0))
    ten = F.col("X4")
    tenure = F.when(ten <= 1, 0.8).when(ten <= 3, 0.3).otherwise(0.0)
    age = F.col("X2")
    age_term = F.when(age < 25, 0.6).when(age > 65, 0.3).otherwise(0.0)
    overage = F.when(F.coalesce(F.col("X21") + F.col("X22") + F.col("X23"), F.lit(0.0)) > 0, 0.4).otherwise(0.0)
    vip = F.when(F.col("X3") >= 4, -0.5).otherwise(0.0)
    company = F.when(F.col("X5") == g.SEGMENTS[3], -0.3).otherwise(0.0)
    return arrears + tenure + age_term + overage + vip + company


def with_credit_labels(users: DataFrame, seed: int, offset: int = 1000) -> DataFrame:
    """Add the known probabilities and the labels drawn from them.

    Args:
        users: ``generator.users`` output (user_id, X1..X43).
        seed: the generator seed (``generator.seed``).
        offset: added to the seed for the label draws (``credit.label_seed_offset``).

    Returns:
        ``users`` plus demand_probability, demand_label (int 0/1), risk_probability, risk_label.
    """
    rnd = g.Uniforms(seed + offset, "user_id")
    pd_ = 1 / (1 + F.exp(-(demand_eta() + F.lit(DEMAND_INTERCEPT))))
    pr = 1 / (1 + F.exp(-(risk_eta() + F.lit(RISK_INTERCEPT))))
    return (users.withColumn("demand_probability", pd_)
            .withColumn("demand_label", (rnd.u(DEMAND_STREAM) < F.col("demand_probability")).cast("int"))
            .withColumn("risk_probability", pr)
            .withColumn("risk_label", (rnd.u(RISK_STREAM) < F.col("risk_probability")).cast("int")))


def write_labels(cfg: Config, spark: SparkSession, out_dir: str | None = None) -> dict:
    """Write the credit label files beside the generated train_set, and the known probabilities.

    For the users of ``generator.plan(cfg)`` (the same ids and attributes as the generated files
    for ``generator.seed``): ``credit.demand_label_file`` and ``credit.risk_label_file``
    (``user_id,<dataset.label_column>``) for the training users, in the format of
    ``dataset.format``; ``credit.oracle_file`` (parquet: user_id, file, region,
    demand_probability, risk_probability) for every user, never read by training.

    Returns:
        files written, users, label rates.
    """
    out_dir = out_dir or cfg.path("raw")
    seed = int(cfg.get("generator.seed"))
    offset = int(cfg.get("credit.label_seed_offset"))
    per_part = int(cfg.get("generator.rows_per_partition"))
    fmt = cfg.get("dataset.format") or "csv"
    id_col, label_col = "user_id", cfg.get("dataset.label_column")
    delimiter = cfg.get("dataset.delimiter")
    summary: dict = {"files": {}, "out_dir": out_dir, "seed": seed + offset}
    oracle = None
    for part in g.plan(cfg):
        partitions = max(1, math.ceil(part.users / per_part))
        df = with_credit_labels(g.users(spark, part.first_id, part.users, seed, partitions), seed, offset)
        if part.labelled:
            df = df.cache()
            for kind in ("demand", "risk"):
                name = cfg.get(f"credit.{kind}_label_file")
                labels = df.select(id_col, F.col(f"{kind}_label").alias(label_col))
                if fmt == "parquet":
                    labels.write.mode("overwrite").parquet(join_path(out_dir, name.rsplit(".", 1)[0]))
                else:
                    lines = labels.select(F.concat_ws(delimiter, F.col(id_col).cast("string"),
                                                      F.col(label_col).cast("string")).alias("line"))
                    g.write_lines(spark, lines, delimiter.join([id_col, label_col]), join_path(out_dir, name),
                                  partitions == 1)
                summary["files"][name] = {"users": part.users}
            rates = df.agg(F.avg("demand_label").alias("d"), F.avg("risk_label").alias("r"),
                           F.avg(F.col("demand_label") * F.col("risk_label")).alias("both")).first()
            summary.update(train_users=part.users, demand_rate=round(rates["d"], 4), risk_rate=round(rates["r"], 4),
                           demand_and_risk_rate=round(rates["both"], 4))
            df.unpersist()
        probs = df.select(id_col, F.lit(part.name).alias("file"), F.lit(part.region).cast("string").alias("region"),
                          "demand_probability", "risk_probability")
        oracle = probs if oracle is None else oracle.unionByName(probs)
    oracle.write.mode("overwrite").parquet(join_path(out_dir, cfg.get("credit.oracle_file")))
    summary["oracle"] = cfg.get("credit.oracle_file")
    log.info("credit labels %s", summary)
    return summary


def target_list(demand_scores: DataFrame, risk_scores: DataFrame, demand_min: float, risk_max: float,
                id_col: str = "user_id", region_col: str = "region", prob_col: str = "probability") -> DataFrame:
    """Per region, the users with high credit-card demand and low credit risk.

    Args:
        demand_scores: ``id_col``, ``region_col``, ``prob_col`` (demand model's probability).
        risk_scores: the same columns from the risk model.
        demand_min: keep users with demand probability >= this.
        risk_max: keep users with risk probability <= this.

    Returns:
        region, ``id_col``, demand_probability, risk_probability, rank (1 = highest demand in the
        region; ties by lower risk, then id); users scored by both models only.
    """
    for name, df in (("demand", demand_scores), ("risk", risk_scores)):
        missing = [c for c in (id_col, region_col, prob_col) if c not in df.columns]
        if missing:
            raise ValueError(f"target_list: {name} scores lack columns {missing} (have {df.columns})")
    d = demand_scores.select(id_col, region_col, F.col(prob_col).alias("demand_probability"))
    r = risk_scores.select(id_col, region_col, F.col(prob_col).alias("risk_probability"))
    both = d.join(r, [id_col, region_col])
    keep = both.where((F.col("demand_probability") >= F.lit(float(demand_min)))
                      & (F.col("risk_probability") <= F.lit(float(risk_max))))
    w = Window.partitionBy(region_col).orderBy(F.col("demand_probability").desc(),
                                               F.col("risk_probability").asc(), F.col(id_col).asc())
    return keep.select(F.col(region_col).alias("region"), id_col, "demand_probability", "risk_probability",
                       F.row_number().over(w).alias("rank"))


def target_summary(demand_scores: DataFrame, targets: DataFrame, region_col: str = "region") -> DataFrame:
    """Per region: users scored, targets, target share, mean demand and risk probability of the targets."""
    scored = demand_scores.groupBy(F.col(region_col).alias("region")).agg(F.count(F.lit(1)).alias("users"))
    t = targets.groupBy("region").agg(F.count(F.lit(1)).alias("targets"),
                                      F.avg("demand_probability").alias("mean_demand_probability"),
                                      F.avg("risk_probability").alias("mean_risk_probability"))
    return (scored.join(t, "region", "left").fillna(0, ["targets"])
            .withColumn("target_share", F.col("targets") / F.col("users")).orderBy("region"))


def _scores(spark: SparkSession, cfg: Config, lakehouse_key: str) -> tuple[DataFrame, str]:
    lakehouse = cfg.get(f"credit.{lakehouse_key}")
    rel = cfg["tables"]["gold_scores"]
    root = lakehouse if "://" in lakehouse or lakehouse.startswith("/") else str(Path(lakehouse).absolute())
    path = join_path(root, rel)
    if not tables.is_delta(spark, path):
        raise JobError(f"credit targets: no scores at {path} (credit.{lakehouse_key}): run ingest, train and "
                       "score for that label first (docs/use_cases.md)")
    return tables.read_run(spark, path)


def run_targets(cfg: Config, spark: SparkSession, demand: DataFrame | None = None,
                risk: DataFrame | None = None) -> dict:
    """Job entry: the target list from the latest scores of the demand and risk runs
    (``credit.demand_lakehouse``, ``credit.risk_lakehouse``), written to table ``credit_targets``
    under this run's lakehouse; with the known probabilities (``credit.oracle_file`` in
    ``paths.raw``) the summary also gives the true mean demand and risk of the targets vs all users."""
    runs = {}
    if demand is None:
        demand, runs["demand"] = _scores(spark, cfg, "demand_lakehouse")
    if risk is None:
        risk, runs["risk"] = _scores(spark, cfg, "risk_lakehouse")
    targets = target_list(demand, risk, float(cfg.get("credit.demand_min")), float(cfg.get("credit.risk_max")))
    out = targets.withColumn("run_id", F.lit(cfg.run_id))
    tables.replace_partition(out, cfg.table("credit_targets"), where={"run_id": cfg.run_id}, partition_by=["run_id"])
    written, _ = tables.read_run(spark, cfg.table("credit_targets"), cfg.run_id)
    per_region = {r["region"]: {k: r[k] for k in ("users", "targets", "target_share", "mean_demand_probability",
                                                  "mean_risk_probability")}
                  for r in target_summary(demand, written).collect()}
    summary: dict = {"regions": per_region, "score_runs": runs, "table": cfg.table("credit_targets")}
    oracle_path = join_path(cfg.path("raw"), cfg.get("credit.oracle_file"))
    try:
        oracle = spark.read.parquet(oracle_path)
    except Exception:  # noqa: BLE001 - real data has no known probabilities
        oracle = None
    if oracle is not None:
        ids = written.select("user_id").distinct()
        truth = (demand.select("user_id", "region").join(oracle.select("user_id", "demand_probability",
                                                                       "risk_probability"), "user_id")
                 .join(ids.withColumn("_target", F.lit(1)), "user_id", "left"))
        rows = truth.groupBy(F.coalesce("_target", F.lit(0)).alias("t")).agg(
            F.avg("demand_probability").alias("demand"), F.avg("risk_probability").alias("risk"),
            F.count(F.lit(1)).alias("n")).collect()
        summary["known_probabilities"] = {("targets" if r["t"] else "others"): {
            "users": r["n"], "true_demand": round(r["demand"], 4), "true_risk": round(r["risk"], 4)} for r in rows}
    log.info("credit targets %s", summary)
    return summary


def run_labels(cfg: Config, spark: SparkSession) -> dict:
    """Job entry: write the credit label files (see :func:`write_labels`)."""
    return write_labels(cfg, spark)
