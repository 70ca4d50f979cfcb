"""Credit-card use case: demand and risk labels from known probabilities, label files, target list."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from jobs import credit_labels as labels_job
from jobs import credit_targets as targets_job
from prospects import pipeline
from prospects.core import tables
from prospects.synthetic import generator as g
from prospects.usecases import credit
from tests.conftest import TEST_SPARK, run_job


@pytest.fixture(scope="module")
def labelled(spark):
    df = credit.with_credit_labels(g.users(spark, 1, 6000, seed=7, partitions=2), seed=7, offset=1000)
    return df.drop("product_no", "_eta").cache()


def test_labels_are_deterministic_and_partition_independent(spark, labelled):
    other = credit.with_credit_labels(g.users(spark, 1, 6000, seed=7, partitions=5), seed=7, offset=1000)
    joined = labelled.select("user_id", "demand_label", "risk_label").join(
        other.select("user_id", F.col("demand_label").alias("d2"), F.col("risk_label").alias("r2")), "user_id")
    assert joined.count() == 6000
    assert joined.where("demand_label != d2 OR risk_label != r2").count() == 0
    # another offset: independent draws, same probabilities
    shifted = credit.with_credit_labels(g.users(spark, 1, 6000, seed=7, partitions=2), seed=7, offset=2000)
    diff = labelled.select("user_id", "demand_label", "demand_probability").join(
        shifted.select("user_id", F.col("demand_label").alias("d2"), F.col("demand_probability").alias("p2")),
        "user_id")
    assert diff.where("demand_probability != p2").count() == 0
    assert diff.where("demand_label != d2").count() > 500


def test_label_rates_follow_the_known_probabilities(labelled):
    r = labelled.agg(F.avg("demand_label").alias("d"), F.avg("demand_probability").alias("pd"),
                     F.avg("risk_label").alias("r"), F.avg("risk_probability").alias("pr")).first()
    assert 0.2 < r["pd"] < 0.4 and 0.06 < r["pr"] < 0.18
    # labels drawn from the probabilities: rates agree within ~3 standard errors on 6,000 users
    assert r["d"] == pytest.approx(r["pd"], abs=0.018)
    assert r["r"] == pytest.approx(r["pr"], abs=0.012)


def rate(df, cond, label):
    return df.where(cond).agg(F.avg(label)).first()[0]


def test_known_effects_show_in_the_labels(labelled):
    # risk: balance arrears (+1.6 on the logit) at least doubles the default rate
    assert rate(labelled, "X24 > 0", "risk_label") > 2 * rate(labelled, "X24 = 0", "risk_label")
    assert rate(labelled, "X4 <= 1", "risk_label") > rate(labelled, "X4 > 3", "risk_label")
    # demand: 25-45 year olds and company users want cards more than the over-60s and rural users
    assert rate(labelled, "X2 BETWEEN 25 AND 45", "demand_label") > rate(labelled, "X2 > 60", "demand_label") + 0.1
    assert rate(labelled, "X5 = '集团用户'", "demand_label") > rate(labelled, "X5 = '农村用户'", "demand_label")
    # higher ARPU, higher demand probability (exactly monotone in the formula, other terms equal)
    hi = rate(labelled, "X15 > 60", "demand_probability")
    lo = rate(labelled, "X15 < 25", "demand_probability")
    assert hi > lo


def test_write_labels_beside_the_train_set(spark, make_cfg, tmp_path):
    cfg = make_cfg("credit", overrides=["generator.n_train=1500", "generator.regions={A: 300, B: null}",
                                        "generator.seed=5"])
    summary = credit.write_labels(cfg, spark)
    raw = Path(cfg.path("raw"))
    with open(raw / "credit_demand_label.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["user_id", "label"] and len(rows) == 1501
    assert sorted(int(r[0]) for r in rows[1:]) == list(range(1, 1501))
    expected = credit.with_credit_labels(g.users(spark, 1, 1500, 5, 1), 5, 1000)
    want = {r["user_id"]: r["risk_label"] for r in expected.select("user_id", "risk_label").collect()}
    with open(raw / "credit_risk_label.csv", newline="") as fh:
        got = {int(r[0]): int(r[1]) for r in list(csv.reader(fh))[1:]}
    assert got == want
    assert summary["risk_rate"] == pytest.approx(sum(want.values()) / 1500, abs=1e-4)
    oracle = spark.read.parquet(str(raw / "credit_oracle_probability"))
    assert oracle.count() == 1800 and oracle.where("region = 'A'").count() == 300
    assert oracle.where("region = 'A'").agg(F.min("user_id")).first()[0] == 1501


def test_target_list_on_explicit_scores(spark):
    demand = spark.createDataFrame([(1, "A", 0.9), (2, "A", 0.8), (3, "A", 0.4), (4, "B", 0.7), (5, "B", 0.95),
                                    (6, "B", 0.7)], "user_id long, region string, probability double")
    risk = spark.createDataFrame([(1, "A", 0.05), (2, "A", 0.30), (3, "A", 0.01), (4, "B", 0.10),
                                  (5, "B", 0.15), (6, "B", 0.02)], "user_id long, region string, probability double")
    out = credit.target_list(demand, risk, demand_min=0.5, risk_max=0.15)
    got = [(r["region"], r["user_id"], r["rank"]) for r in out.orderBy("region", "rank").collect()]
    # 2: risk too high; 3: demand too low; B: 5 first (0.95), then 6 and 4 tie at 0.7 -> lower risk first
    assert got == [("A", 1, 1), ("B", 5, 1), ("B", 6, 2), ("B", 4, 3)]
    summary = {r["region"]: r for r in credit.target_summary(demand, out).collect()}
    assert summary["A"]["users"] == 3 and summary["A"]["targets"] == 1
    assert summary["B"]["target_share"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lack columns"):
        credit.target_list(demand.drop("region"), risk, 0.5, 0.1)


def test_run_targets_writes_the_table(spark, make_cfg):
    cfg = make_cfg("credit", overrides=["run.id=c1"])
    demand = spark.createDataFrame([(1, "A", 0.9), (2, "A", 0.2)], "user_id long, region string, probability double")
    risk = spark.createDataFrame([(1, "A", 0.05), (2, "A", 0.01)], "user_id long, region string, probability double")
    summary = credit.run_targets(cfg, spark, demand=demand, risk=risk)
    assert summary["regions"]["A"]["targets"] == 1
    written, run = tables.read_run(spark, cfg.table("credit_targets"), cfg.run_id)
    assert run == "c1" and [r["user_id"] for r in written.collect()] == [1]


ROOT = Path(__file__).resolve().parents[1]


def makefile_risk_settings() -> list[str]:
    """The ``--set`` values of CREDIT_RISK in the Makefile (the risk run of ``make credit``)."""
    text = (ROOT / "Makefile").read_text().replace("\\\n", " ")
    line = next(x for x in text.splitlines() if x.startswith("CREDIT_RISK :="))
    words = shlex.split(line.split(":=", 1)[1])
    return [w for prev, w in zip(words, words[1:]) if prev == "--set"]


def test_credit_pipeline_end_to_end(spark, make_cfg, tmp_path):
    """labels (user base generated first) -> ingest, train, score for demand and for risk -> targets,
    on a tiny base with one fast model; the settings of the risk run are the Makefile's. The labels
    and targets steps run through their jobs' entry points."""
    demand_lh, risk_lh = tmp_path / "credit_demand", tmp_path / "credit_risk"
    common = ["generator.n_train=3000", "generator.regions={A: 800, B: 1200}", "generator.seed=3",
              "train.model_types=[logistic_regression]",
              "train.models.logistic_regression={regParam: [0.01], elasticNetParam: [0.0], maxIter: [50]}",
              "score.figures=false", "score.segments={}", "run.id=t1",
              f"credit.demand_lakehouse={demand_lh}", f"credit.risk_lakehouse={risk_lh}"]
    demand_cfg = make_cfg("credit", overrides=common + [f"paths.lakehouse={demand_lh}"])
    risk_sets = makefile_risk_settings()
    assert "generator.oracle_file=credit_risk_oracle" in risk_sets
    risk_cfg = make_cfg("credit", overrides=common + [s for s in risk_sets if not s.startswith("paths.lakehouse=")]
                        + [f"paths.lakehouse={risk_lh}"])
    assert demand_cfg.get("dataset.columns") == make_cfg("fiveg").get("dataset.columns")

    demand_settings = [*common, f"paths.raw={demand_cfg.path('raw')}", f"paths.lakehouse={demand_lh}"]
    labels = run_job(labels_job, "credit", demand_settings, tmp_path / "labels.json", "--generate")
    assert labels["user_base"]["generated"] and labels["train_users"] == 3000
    # the job's own spark.conf (conf/local.yml) did not stay on the tests' session
    assert spark.conf.get("spark.sql.shuffle.partitions") == str(TEST_SPARK["conf"]["spark.sql.shuffle.partitions"])
    raw = Path(demand_cfg.path("raw"))
    assert {"train_set.csv", "train_label.csv", "result_predict_A.csv", "oracle_probability",
            "credit_demand_label.csv", "credit_demand_oracle", "credit_risk_oracle"} <= {p.name for p in raw.iterdir()}
    assert not credit.ensure_user_base(demand_cfg, spark)["generated"]  # same settings: kept
    other = make_cfg("credit", overrides=common + ["generator.regions={A: 900, B: 1200}"])
    assert "other settings" in credit.user_base_status(other, spark)  # would be generated again

    runs = {name: pipeline.run(cfg, spark, ["ingest", "train", "score"])
            for name, cfg in (("demand", demand_cfg), ("risk", risk_cfg))}
    for name, res in runs.items():
        assert res["ingest"]["files"], name
        # the oracle AUC is the known credit probability's (the 5G oracle's would be near 0.5)
        assert res["train"]["oracle_auc"] > 0.62, (name, res["train"])
        assert res["train"]["models"]["logistic_regression"]["test_auc"] > 0.58, (name, res["train"])
    risk_label = spark.read.format("delta").load(risk_cfg.table("bronze_users")).agg(F.avg("label")).first()[0]
    assert risk_label == pytest.approx(labels["risk_rate"], abs=1e-3)  # the risk run trained on the risk label

    summary = run_job(targets_job, "credit", demand_settings, tmp_path / "targets.json")
    targets, run = tables.read_run(spark, demand_cfg.table("credit_targets"), demand_cfg.run_id)
    assert run == "t1" and targets.count() > 0
    dmin, rmax = demand_cfg.get("credit.demand_min"), demand_cfg.get("credit.risk_max")
    bad = targets.where((F.col("demand_probability") < dmin) | (F.col("risk_probability") > rmax)).count()
    assert bad == 0
    assert summary["known_probabilities"] and set(summary["regions"]) == {"A", "B"}
    for region, f in summary["regions"].items():
        assert f["users"] == {"A": 800, "B": 1200}[region] and f["targets"] > 0, (region, f)
        assert f["true_demand_targets"] > f["true_demand_all"] + 0.1, (region, f)
        assert f["true_risk_targets"] < f["true_risk_all"], (region, f)
