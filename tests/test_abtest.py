"""Retention A/B test: stratified seeded assignment and the two-proportion analysis (hand-computed)."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from prospects.core import tables
from prospects.core.errors import JobError
from prospects.usecases import abtest

ARMS = {"a": 0.5, "b": 0.3, "control": 0.2}


def customers(spark):
    rows = [(f"C{i:04d}", "high") for i in range(100)] + [(f"C{i:04d}", "medium") for i in range(100, 131)]
    return spark.createDataFrame(rows, "id string, tier string")


def counts(df):
    return {(r["tier"], r["arm"]): r["count"] for r in df.groupBy("tier", "arm").count().collect()}


def test_assign_splits_each_tier_exactly_up_to_rounding(spark):
    out = abtest.assign(customers(spark), "id", "tier", ARMS, seed=11)
    # high, 100: cut at round(0.5*100)=50 and round(0.8*100)=80 -> 50 / 30 / 20
    # medium, 31: cut at round(15.5)=16 and round(24.8)=25 -> 16 / 9 / 6
    assert counts(out) == {("high", "a"): 50, ("high", "b"): 30, ("high", "control"): 20,
                           ("medium", "a"): 16, ("medium", "b"): 9, ("medium", "control"): 6}
    assert out.select("id").distinct().count() == 131


def test_assign_is_seeded_and_independent_of_row_order(spark):
    df = customers(spark)
    first = {r["id"]: r["arm"] for r in abtest.assign(df, "id", "tier", ARMS, 11).collect()}
    shuffled = df.orderBy(F.col("id").desc()).repartition(3)
    again = {r["id"]: r["arm"] for r in abtest.assign(shuffled, "id", "tier", ARMS, 11).collect()}
    other = {r["id"]: r["arm"] for r in abtest.assign(df, "id", "tier", ARMS, 12).collect()}
    assert first == again
    assert sum(first[k] != other[k] for k in first) > 30  # another seed, another draw
    # random, not by id order: arm a of the high tier spreads over the whole id range
    ids_a = sorted(int(k[1:]) for k, v in first.items() if v == "a" and int(k[1:]) < 100)
    assert 30 < sum(ids_a) / len(ids_a) < 70


def test_assign_rejects_bad_shares(spark):
    with pytest.raises(ValueError, match="sum to 1"):
        abtest.assign(customers(spark), "id", "tier", {"a": 0.5, "control": 0.4}, 1)
    with pytest.raises(ValueError, match="empty"):
        abtest.assign(customers(spark), "id", "tier", {}, 1)
    with pytest.raises(ValueError, match="segment"):
        abtest.assign(customers(spark), "id", "segment", ARMS, 1)


def outcomes(spark, groups):
    rows = []
    for arm, n, kept in groups:
        rows += [(arm, 1)] * kept + [(arm, 0)] * (n - kept)
    return spark.createDataFrame(rows, "arm string, retained int")


def test_analyze_against_hand_computed_example(spark):
    df = outcomes(spark, [("control", 1000, 600), ("data_bonus", 1000, 650), ("contract_discount", 500, 310)])
    out = {r["arm"]: r for r in abtest.analyze(df, "arm", "retained", "control", 0.05).collect()}
    bonus = out["data_bonus"]
    # p_t = 0.65, p_c = 0.60, lift 0.05, relative 0.05 / 0.60 = 0.083333
    assert (bonus["n"], bonus["retained"]) == (1000, 650)
    assert bonus["lift_abs"] == pytest.approx(0.05)
    assert bonus["lift_rel"] == pytest.approx(0.0833333, rel=1e-5)
    # pooled p0 = 1250 / 2000 = 0.625; SE0 = sqrt(0.625 * 0.375 * (1/1000 + 1/1000)) = 0.0216506
    # z = 0.05 / 0.0216506 = 2.309401; two-sided p = 2 * (1 - Phi(2.3094)) = 2 * 0.0104607 = 0.0209213
    assert bonus["z"] == pytest.approx(2.309401, rel=1e-6)
    assert bonus["p_value"] == pytest.approx(0.0209213, rel=1e-4)
    # unpooled SE = sqrt(0.6*0.4/1000 + 0.65*0.35/1000) = sqrt(0.0004675) = 0.0216217
    # 95% CI = 0.05 -/+ 1.959964 * 0.0216217 = [0.0076222, 0.0923778]
    assert bonus["ci_low"] == pytest.approx(0.0076222, abs=1e-6)
    assert bonus["ci_high"] == pytest.approx(0.0923778, abs=1e-6)
    assert bonus["significant"] is True
    disc = out["contract_discount"]
    # p_t = 310/500 = 0.62; p0 = 910/1500 = 0.606667; SE0 = sqrt(0.606667*0.393333*(1/500+1/1000)) = 0.0267557
    # z = 0.02 / 0.0267557 = 0.747505; p = 0.454759 (not significant)
    assert disc["z"] == pytest.approx(0.747505, rel=1e-5)
    assert disc["p_value"] == pytest.approx(0.454759, rel=1e-4)
    assert disc["significant"] is False
    ctrl = out["control"]
    assert ctrl["is_control"] and ctrl["retention_rate"] == pytest.approx(0.6) and ctrl["p_value"] is None


def test_two_proportion_matches_formula_and_alpha_widens_ci():
    s95 = abtest.two_proportion(650, 1000, 600, 1000, 0.05)
    s99 = abtest.two_proportion(650, 1000, 600, 1000, 0.01)
    assert s99["ci_low"] < s95["ci_low"] and s99["ci_high"] > s95["ci_high"]
    assert s95["p_value"] == pytest.approx(math.erfc(2.309401076758505 / math.sqrt(2)), rel=1e-9)
    same = abtest.two_proportion(0, 10, 0, 10)  # no variance: z undefined
    assert same["z"] is None and same["p_value"] is None


def test_analyze_rejects_missing_control_and_bad_outcomes(spark):
    with pytest.raises(ValueError, match="control arm 'control'"):
        abtest.analyze(outcomes(spark, [("a", 10, 5)]), "arm", "retained")
    bad = spark.createDataFrame([("control", 1), ("a", None), ("a", 2)], "arm string, retained int")
    with pytest.raises(ValueError, match="0/1"):
        abtest.analyze(bad, "arm", "retained")


def test_assign_and_analyze_jobs_write_delta(spark, make_cfg, tmp_path):
    cfg = make_cfg("telco_churn", overrides=["run.id=ab1"])
    scores = spark.createDataFrame([(f"C{i:04d}", "high" if i < 300 else "low") for i in range(400)],
                                   "customerID string, tier string")
    summary = abtest.run_assign(cfg, spark, scores=scores)
    assert summary["customers"] == 300  # only the high tier enters (abtest.tiers)
    assert summary["by_tier_arm"] == {"high/data_bonus": 102, "high/contract_discount": 99, "high/control": 99}
    abtest.run_assign(cfg, spark, scores=scores)  # a re-run replaces its run
    assigned, _ = tables.read_run(spark, cfg.table("ab_assignments"), cfg.run_id)
    assert assigned.count() == 300

    # observed outcomes from a CSV: everybody retained in treatment arms, nobody in control
    csv = tmp_path / "outcomes.csv"
    rows = assigned.select("customerID", "arm").collect()
    csv.write_text("customerID,retained\n" + "".join(
        f"{r['customerID']},{0 if r['arm'] == 'control' else 1}\n" for r in rows))
    cfg2 = make_cfg("telco_churn", overrides=["run.id=ab1", f"abtest.outcomes_path={csv}"])
    res = abtest.run_analyze(cfg2, spark)
    assert res["arms"]["data_bonus"]["lift_abs"] == pytest.approx(1.0)
    assert res["arms"]["control"]["retention_rate"] == 0.0
    written, _ = tables.read_run(spark, cfg.table("ab_results"), cfg.run_id)
    assert written.count() == 3

    # simulated outcomes (demo): known retention rates per arm are recovered roughly
    cfg3 = make_cfg("telco_churn", overrides=["run.id=ab1"], extra={"abtest": {"simulated_retention": {
        "control": 0.5, "data_bonus": 0.5, "contract_discount": 0.95}}})
    sim = abtest.run_analyze(cfg3, spark)["arms"]
    assert sim["contract_discount"]["retention_rate"] > 0.85 and sim["contract_discount"]["p_value"] < 0.001

    # outcomes missing for assigned customers: a clear error
    csv.write_text("customerID,retained\nC0000,1\n")
    with pytest.raises(JobError, match="no outcome"):
        abtest.run_analyze(cfg2, spark)
