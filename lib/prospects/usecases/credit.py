"""Credit-card prospects (SPEC 2.2): demand and risk labels for the generated users, and the target list.

The generated users (``prospects.synthetic.generator.users``: same ids, same attributes as the 5G files for a
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

import copy
import dataclasses
import json
import logging
import math
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window

from prospects.core import runlog, storage, tables
from prospects.core.config import Config, join_path, load_config, raw_name
from prospects.core.errors import JobError
from prospects.synthetic import generator as g

log = logging.getLogger(__name__)

DEMAND_INTERCEPT = -1.9
RISK_INTERCEPT = -2.9
DEMAND_STREAM = 1
RISK_STREAM = 2
BASE_USE_CASE = "fiveg"                     # the generated user base is this use case's raw files
USER_BASE_MARKER = "credit_user_base.json"  # in paths.raw: settings and files of the base generated here


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
    demand_probability, risk_probability) for every user, never read by training; and the same
    probabilities one target at a time, ``credit.demand_oracle_file`` and ``credit.risk_oracle_file``
    (parquet: user_id, file, region, probability: the layout of the generator's oracle file), which
    the train stage of each run reads as its ``generator.oracle_file`` for the oracle AUC.

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
    oracle = oracle.cache()
    oracle.write.mode("overwrite").parquet(join_path(out_dir, cfg.get("credit.oracle_file")))
    summary["oracle"] = cfg.get("credit.oracle_file")
    for kind in ("demand", "risk"):
        name = cfg.get(f"credit.{kind}_oracle_file")
        (oracle.select(id_col, "file", "region", F.col(f"{kind}_probability").alias("probability"))
         .write.mode("overwrite").parquet(join_path(out_dir, name)))
        summary[f"{kind}_oracle"] = name
    oracle.unpersist()
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
    return runlog.read_latest(spark, cfg, path, "score", log_path=join_path(root, cfg["tables"]["run_log"]))


@runlog.logged("credit_targets")
def run_targets(cfg: Config, spark: SparkSession, demand: DataFrame | None = None,
                risk: DataFrame | None = None) -> dict:
    """Job entry: the target list from the latest scores of the demand and risk runs
    (``credit.demand_lakehouse``, ``credit.risk_lakehouse``), written to table ``credit_targets``
    under this run's lakehouse.

    Returns:
        ``regions``: per region, users scored, targets, target share and the targets' mean model
        probabilities; with the known probabilities (``credit.oracle_file`` in ``paths.raw``) also
        the true mean demand and risk probability of the targets (``true_demand_targets``,
        ``true_risk_targets``) and of all the region's scored users (``true_demand_all``,
        ``true_risk_all``). Each region is also logged as one readable line.
    """
    runs = {}
    if demand is None:
        demand, runs["demand"] = _scores(spark, cfg, "demand_lakehouse")
    if risk is None:
        risk, runs["risk"] = _scores(spark, cfg, "risk_lakehouse")
    targets = target_list(demand, risk, float(cfg.get("credit.demand_min")), float(cfg.get("credit.risk_max")))
    out = targets.withColumn("run_id", F.lit(cfg.run_id))
    tables.write_run(out, cfg, "credit_targets")
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
    summary["known_probabilities"] = oracle is not None
    if oracle is not None:
        ids = written.select("user_id").distinct().withColumn("_target", F.lit(1))
        truth = (demand.select("user_id", "region")
                 .join(oracle.select("user_id", "demand_probability", "risk_probability"), "user_id")
                 .join(ids, "user_id", "left"))
        is_target = F.col("_target") == 1
        rows = truth.groupBy("region").agg(
            F.avg("demand_probability").alias("true_demand_all"), F.avg("risk_probability").alias("true_risk_all"),
            F.avg(F.when(is_target, F.col("demand_probability"))).alias("true_demand_targets"),
            F.avg(F.when(is_target, F.col("risk_probability"))).alias("true_risk_targets")).collect()
        for r in rows:
            per_region.setdefault(r["region"], {}).update(
                {k: None if r[k] is None else round(r[k], 4)
                 for k in ("true_demand_targets", "true_demand_all", "true_risk_targets", "true_risk_all")})
    for region, f in sorted(per_region.items()):
        line = (f"credit targets, region {region}: {f.get('targets', 0)} targets of {f.get('users', 0)} users "
                f"({100 * (f.get('target_share') or 0):.1f}%)")
        if f.get("true_demand_all") is not None:
            line += (f"; true demand {_num(f['true_demand_targets'])} (all users {_num(f['true_demand_all'])}), "
                     f"true risk {_num(f['true_risk_targets'])} (all users {_num(f['true_risk_all'])})")
        log.info("%s", line)
    log.info("credit targets %s", summary)
    return summary


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


# ---------------------------------------------------------------------------------------------
# The generated user base under paths.raw
# ---------------------------------------------------------------------------------------------
def user_base_config(cfg: Config) -> Config:
    """The configuration that generates the user base of a credit run: this run's generator and
    file settings (``generator.*``, ``paths.raw``, ``dataset.format`` ...) with the 5G label and
    oracle file names of conf/fiveg.yml, so that the files are exactly the fiveg use case's."""
    fiveg = load_config(BASE_USE_CASE, env=cfg.env, conf_dir=cfg.conf_dir)
    data = copy.deepcopy(cfg.data)
    data["dataset"]["label_file"] = fiveg.get("dataset.label_file")
    data["generator"]["oracle_file"] = fiveg.get("generator.oracle_file")
    return dataclasses.replace(cfg, data=data, use_case=BASE_USE_CASE)


def _read_text(spark: SparkSession, path: str) -> str | None:
    """The first line of a small text file, None when it is absent or unreadable."""
    try:
        text = storage.read_text(spark, path)
    except Exception:  # noqa: BLE001 - an unreadable record means: generate again
        log.warning("could not read %s: ignored", path)
        return None
    return None if text is None else (text.splitlines() or [""])[0]


def _user_base_state(spark: SparkSession, base: Config) -> dict:
    """What the generated base depends on (settings) and what is there now (files: bytes and
    modification time, None when absent)."""
    settings = {k: base.get(f"generator.{k}") for k in ("seed", "n_train", "regions", "switch_rate",
                                                          "malformed_rate", "region_shift")}
    settings.update({k: base.get(f"dataset.{k}") for k in ("format", "delimiter", "train_file", "label_file",
                                                            "region_pattern", "region_files")})
    raw, fmt = base.path("raw"), base.get("dataset.format")
    files = {}
    for name in [p.name for p in g.plan(base)] + [base.get("dataset.label_file")]:
        found = storage.size_and_time(spark, join_path(raw, raw_name(name, fmt)))
        files[name] = list(found) if found else None
    return {"settings": settings, "files": files}


def user_base_status(cfg: Config, spark: SparkSession) -> str | None:
    """None when ``paths.raw`` holds the user base generated there by :func:`ensure_user_base` for
    this run's settings, unchanged since (``credit_user_base.json`` records both); else why not."""
    base = user_base_config(cfg)
    raw = base.path("raw")
    state = _user_base_state(spark, base)
    missing = [name for name, f in state["files"].items() if f is None]
    if missing:
        return f"missing in {raw}: {', '.join(missing)}"
    recorded = _read_text(spark, join_path(raw, USER_BASE_MARKER))
    if recorded is None:
        return f"no {USER_BASE_MARKER} in {raw} (not generated by credit_labels --generate)"
    if json.loads(recorded) != json.loads(json.dumps(state)):
        return f"{raw} was generated with other settings or has changed since"
    return None


def ensure_user_base(cfg: Config, spark: SparkSession) -> dict:
    """Generate the user base under ``paths.raw`` (conf/fiveg.yml's files, this run's
    ``generator.*`` settings) unless :func:`user_base_status` finds it there already.

    Files there without the record (e.g. from ``make demo``) are generated again once: the
    generator is deterministic, so for the same settings they come out the same.

    Returns:
        ``generated`` (bool), ``reason`` and, when generated, the generator's summary.
    """
    reason = user_base_status(cfg, spark)
    if reason is None:
        log.info("user base in %s is the one generated for these settings: kept", cfg.path("raw"))
        return {"generated": False, "reason": "present, same settings"}
    log.info("generating the user base: %s", reason)
    base = user_base_config(cfg)
    summary = g.generate(base, spark)
    storage.write_text(spark, join_path(base.path("raw"), USER_BASE_MARKER),
                json.dumps(_user_base_state(spark, base), sort_keys=True))
    return {"generated": True, "reason": reason, "generator": summary}


def run_labels(cfg: Config, spark: SparkSession, generate: bool = False) -> dict:
    """Job entry: write the credit label files (see :func:`write_labels`); with ``generate``, first
    the user base when it is not there for these settings (see :func:`ensure_user_base`)."""
    base = ensure_user_base(cfg, spark) if generate else None
    summary = write_labels(cfg, spark)
    if base is not None:
        summary["user_base"] = base
    return summary
