"""Churn analytics: tiers, drivers, reasons and segments on explicit frames and on the IBM Telco file."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.feature import OneHotEncoder, SQLTransformer, StandardScaler, StringIndexer, VectorAssembler
from pyspark.ml.linalg import Vectors
from pyspark.sql import functions as F

from prospects.core import tables
from prospects.core.dictionary import ColumnDictionary
from prospects.usecases import churn

TELCO = Path(__file__).resolve().parents[2] / "shared" / "data" / "telco_churn" / "telco_customer_churn.csv"


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def small_dictionary() -> ColumnDictionary:
    return ColumnDictionary.from_config({"id_column": "id", "label_file": "x", "columns": [
        {"code": "id", "type": "int", "role": "id"},
        {"code": "x", "name": "charges", "type": "float", "impute": "median"},
        {"code": "c", "name": "plan", "type": "string", "impute": "mode", "labels": {"a": "alpha"}},
    ]})


# -- tiers ------------------------------------------------------------------------------------
def test_risk_tiers_counts_rates_and_shares(spark):
    rows = [(1, 0.95, 1), (2, 0.70, 1), (3, 0.60, 0), (4, 0.59, 1), (5, 0.40, 0),
            (6, 0.30, 0), (7, 0.29, 0), (8, 0.10, 1), (9, 0.05, 0), (10, 0.01, 0)]
    df = spark.createDataFrame(rows, "id int, p double, churn int")
    out = {r["tier"]: r for r in churn.risk_tiers(df, "p", "churn", {"high": 0.6, "medium": 0.3}).collect()}
    # high: p >= 0.6 -> ids 1,2,3 (2 churners); medium: 0.3 <= p < 0.6 -> 4,5,6 (1); low: 7..10 (1)
    assert [out[t]["customers"] for t in ("high", "medium", "low")] == [3, 3, 4]
    assert [out[t]["churners"] for t in ("high", "medium", "low")] == [2, 1, 1]
    assert out["high"]["churn_rate"] == pytest.approx(2 / 3)
    assert out["low"]["churn_rate"] == pytest.approx(0.25)
    assert out["medium"]["share"] == pytest.approx(0.3)
    assert out["high"]["tier_order"] == 0 and out["low"]["tier_order"] == 2
    assert out["high"]["min_probability"] == pytest.approx(0.60)


def test_risk_tiers_keeps_empty_tier_and_works_without_label(spark):
    df = spark.createDataFrame([(1, 0.9), (2, 0.1)], "id int, p double")
    out = {r["tier"]: r for r in churn.risk_tiers(df, "p", None, {"high": 0.6, "medium": 0.3}).collect()}
    assert out["medium"]["customers"] == 0 and out["medium"]["churn_rate"] is None
    assert out["high"]["churners"] is None and out["high"]["share"] == pytest.approx(0.5)


def test_tier_cutoffs_quantile_and_validation(spark):
    df = spark.createDataFrame([(i, i / 100) for i in range(100)], "id int, p double")
    cut = churn.tier_cutoffs(df, "p", {"high": 0.1, "medium": 0.3}, "quantile")
    tiered = churn.with_tier(df, "p", cut)
    counts = {r["tier"]: r["count"] for r in tiered.groupBy("tier").count().collect()}
    assert counts == {"high": 10, "medium": 20, "low": 70}
    with pytest.raises(ValueError, match="decrease"):
        churn.tier_cutoffs(df, "p", {"high": 0.3, "medium": 0.6})
    with pytest.raises(ValueError, match="tier_method"):
        churn.tier_cutoffs(df, "p", {"high": 0.6}, "deciles")


# -- drivers ----------------------------------------------------------------------------------
def test_global_drivers_direction_and_effect(spark):
    # c: a -> ids 1,3,4,5 churn 0,1,1,1 = 3/4 ; b -> ids 2,6 churn 0,1 = 1/2: a raises churn by 1/4
    rows = [(1, 1.0, "a", 0), (2, 2.0, "b", 0), (3, 2.0, "a", 1), (4, 3.0, "a", 1), (5, 4.0, "a", 1),
            (6, 1.0, "b", 1)]
    df = spark.createDataFrame(rows, "id int, x double, c string, churn int")
    out = {r["feature"]: r for r in churn.global_drivers(df, small_dictionary(), ["x", "c"], "churn",
                                                         {"x": 0.7, "c": 0.3}).collect()}
    # x median of (1,2,2,3,4,1) = 2: above {3,4} -> churn 1,1 ; <= 2 {1,2,2,1} -> 0,0,1,1 = 1/2
    assert out["x"]["effect"] == pytest.approx(1.0 - 0.5)
    assert out["x"]["direction"] == "higher charges -> more churn"
    assert out["x"]["rank"] == 1 and out["x"]["importance_source"] == "model"
    assert out["c"]["effect"] == pytest.approx(0.75 - 0.5)
    assert out["c"]["high_risk_value"] == "alpha"  # value label from the dictionary
    assert out["c"]["rate_low_risk"] == pytest.approx(0.5)


def test_source_column_and_model_importances_fallback(spark):
    assert churn.source_column("Contract_ohe_Month-to-month", ["Contract", "tenure"]) == "Contract"
    assert churn.source_column("TotalCharges", ["Total", "TotalCharges"]) == "TotalCharges"
    assert churn.source_column("derived", ["x"]) == "derived"
    assert churn.readable_slot(small_dictionary(), "c_ohe_a", ["x", "c"]) == "plan=alpha"
    assert churn.readable_slot(small_dictionary(), "x", ["x", "c"]) == "charges"
    df = spark.createDataFrame([(1, 1.0, "a", 1), (2, 5.0, "b", 0), (3, 6.0, "b", 0)],
                               "id int, x double, c string, churn int")
    out = {r["feature"]: r for r in churn.global_drivers(df, small_dictionary(), ["x", "c"], "churn").collect()}
    assert out["x"]["importance_source"] == "effect"
    assert out["x"]["importance"] + out["c"]["importance"] == pytest.approx(1.0)
    assert out["x"]["direction"] == "higher charges -> less churn"


# -- reasons ----------------------------------------------------------------------------------
def test_linear_reasons_hand_computed(spark):
    df = spark.createDataFrame([(1, Vectors.dense([2.0, 0.0, 1.0])), (2, Vectors.dense([0.0, 0.0, 0.0]))],
                               ["id", "features"])
    out = {r["id"]: r for r in churn.linear_reasons(
        df, "id", "features", ["a", "b", "c"], [1.5, -2.0, 0.5], means=[1.0, 1.0, 0.0], top_n=2).collect()}
    # id 1: a 1.5*(2-1)=1.5, b -2*(0-1)=2.0, c 0.5*(1-0)=0.5 -> b, a
    assert [(r["feature"], r["contribution"]) for r in out[1]["reasons"]] == [("b", 2.0), ("a", 1.5)]
    assert out[1]["reason_1"] == "b = 0.000 (+2.000 log-odds)"
    # id 2: a -1.5, b 2.0, c 0 -> only b is positive
    assert [r["feature"] for r in out[2]["reasons"]] == ["b"] and out[2]["reason_2"] is None


def test_ablation_reasons_hand_computed(spark):
    # model: p = sigmoid(2 (x - 1) + [c = 'a']); baselines x = 1, c = 'b'
    model = SQLTransformer(statement="SELECT *, 1 / (1 + exp(-(2 * (x - 1) + CASE WHEN c = 'a' THEN 1 ELSE 0 END)))"
                                     " AS probability FROM __THIS__")
    df = spark.createDataFrame([(1, 2.0, "a"), (2, 0.0, "b")], "id int, x double, c string")
    out = {r["id"]: r for r in churn.ablation_reasons(df, model, "id", ["x", "c"], small_dictionary(),
                                                      {"x": 1.0, "c": "b"}).collect()}
    p1 = sig(3)
    assert out[1]["churn_probability"] == pytest.approx(p1)
    reasons = [(r["feature"], r["contribution"], r["value"]) for r in out[1]["reasons"]]
    assert [r[0] for r in reasons] == ["x", "c"]
    assert reasons[0][1] == pytest.approx(p1 - sig(1)) and reasons[1][1] == pytest.approx(p1 - sig(2))
    assert reasons[1][2] == "alpha" and out[1]["reason_1"] == "charges = 2.0 (+0.222)"  # 0.95257 - 0.73106
    # id 2: x below baseline lowers the risk, c already at baseline: no positive reason
    assert out[2]["reasons"] == [] and out[2]["reason_1"] is None


def test_ablation_reasons_weighted_reference_values(spark):
    # reference values of x: 0 and 2 with weight 1/2 each; c is not attributed
    model = SQLTransformer(statement="SELECT *, 1 / (1 + exp(-(2 * (x - 1) + CASE WHEN c = 'a' THEN 1 ELSE 0 END)))"
                                     " AS probability FROM __THIS__")
    df = spark.createDataFrame([(1, 2.0, "a")], "id int, x double, c string")
    r = churn.ablation_reasons(df, model, "id", ["x"], small_dictionary(), {"x": [(0.0, 0.5), (2.0, 0.5)]}).first()
    # p = sig(3); reference: 0.5 sig(-2 + 1) + 0.5 sig(2 + 1) -> contribution 0.5 (sig(3) - sig(-1))
    assert r["reasons"][0]["contribution"] == pytest.approx(0.5 * (sig(3) - sig(-1)))


def test_baselines_quantiles_and_category_mix(spark):
    df = spark.createDataFrame([(i, float(i), "a" if i < 75 else "b") for i in range(100)],
                               "id int, x double, c string")
    refs = churn.baselines(df, small_dictionary(), ["x", "c"], points=(0.5,))
    assert refs["x"] == [(49.0, 1.0)]
    assert refs["c"] == [("a", 0.75), ("b", 0.25)]


def test_name_segments_gives_each_archetype_once():
    zs = [{"price": 2.0, "service": 1.5}, {"price": 1.0, "service": 1.2}, {"price": -1.0, "service": -1.0}]
    got = churn.name_segments(zs, {"price-sensitive": ["price"], "service-sensitive": ["service"]})
    # best total: segment 0 price (2.0) + segment 1 service (1.2) = 3.2 beats 1.5 + 1.0
    assert [n for n, _ in got] == ["price-sensitive", "service-sensitive", "segment 2"]
    more = churn.name_segments(zs[:2] + [{"price": 0.5, "service": 0.1}], {"price-sensitive": ["price"],
                                                                           "loyal": ["-price"]})
    assert [n for n, _ in more] == ["price-sensitive", "price-sensitive 2", "price-sensitive 3"]


# -- segments ---------------------------------------------------------------------------------
def test_segments_separate_groups_and_take_archetype_names(spark, tmp_path):
    rows = ([(i, 100.0 + i % 3, "m2m", 1 if i % 4 else 0) for i in range(20)]
            + [(100 + i, 20.0 + i % 3, "2y", 0 if i % 5 else 1) for i in range(20)])
    df = spark.createDataFrame(rows, "id int, x double, c string, churn int")
    cols = ColumnDictionary.from_config({"id_column": "id", "label_file": "x", "columns": [
        {"code": "id", "type": "int", "role": "id"}, {"code": "x", "name": "charges", "type": "float"},
        {"code": "c", "name": "contract", "type": "string"}]})
    seg, prof, model = churn.segment_customers(
        df, "id", cols, ["x", "c"], k=2, seed=1, label_col="churn",
        archetypes={"price-sensitive": ["x", "c=m2m"], "loyal": ["-x", "c=2y"]})
    profiles = {r["segment_name"]: r for r in prof.collect()}
    assert set(profiles) == {"price-sensitive", "loyal"}
    assert profiles["price-sensitive"]["churn_rate"] == pytest.approx(15 / 20)
    assert profiles["loyal"]["churn_rate"] == pytest.approx(4 / 20)
    assert profiles["loyal"]["profile"]["c=2y"] == pytest.approx(1.0)
    assert profiles["price-sensitive"]["share"] == pytest.approx(0.5)
    assert "charges" in profiles["loyal"]["traits"]
    per = seg.groupBy("segment_name").agg(F.min("id").alias("lo"), F.max("id").alias("hi")).collect()
    assert {(r["segment_name"], r["lo"], r["hi"]) for r in per} == {("price-sensitive", 0, 19), ("loyal", 100, 119)}
    # the fitted pipeline is the whole segmentation: saved and reloaded, it assigns the same segments
    assert [type(s).__name__ for s in model.stages] == [
        "RuleImputerModel", "StringIndexerModel", "OneHotEncoderModel", "VectorAssembler", "StandardScalerModel",
        "KMeansModel"]
    assert churn.segment_slots(model, cols, ["x", "c"]) == ["x", "c=2y", "c=m2m"]
    path = str(tmp_path / "segmentation")
    model.save(path)
    again = PipelineModel.load(path).transform(df).select("id", F.col("segment").alias("again"))
    assert again.join(seg, "id").where(F.col("again") == F.col("segment")).count() == 40


# -- the real Telco file ----------------------------------------------------------------------
def read_telco(spark, cfg):
    """The Telco CSV typed by the use case's dictionary (what ingest writes to bronze)."""
    raw = spark.read.csv(str(TELCO), header=True, inferSchema=False).dropDuplicates()
    cols = []
    for s in cfg.columns:
        value = F.when(F.trim(F.col(s.code)) != "", F.trim(F.col(s.code)))
        if s.role == "label":
            cols.append((value == "Yes").cast("int").alias(s.code))
        else:
            cols.append(value.cast(s.spark_type).alias(s.code))
    return raw.select(*cols)


@pytest.mark.skipif(not TELCO.is_file(), reason="shared Telco data not present")
def test_telco_end_to_end(spark, make_cfg):
    cfg = make_cfg("telco_churn", overrides=["run.id=t1"])
    df = read_telco(spark, cfg).cache()
    assert df.count() == 7043 and df.where("TotalCharges IS NULL").count() == 11
    df = df.fillna(0.0, ["TotalCharges"])
    cats = [s.code for s in cfg.columns.features if s.type == "string"]
    nums = [s.code for s in cfg.columns.features if s.type != "string"]
    pipe = Pipeline(stages=[
        *[StringIndexer(inputCol=c, outputCol=f"{c}_idx", handleInvalid="keep") for c in cats],
        OneHotEncoder(inputCols=[f"{c}_idx" for c in cats], outputCols=[f"{c}_ohe" for c in cats]),
        VectorAssembler(inputCols=nums + [f"{c}_ohe" for c in cats], outputCol="raw_features"),
        StandardScaler(inputCol="raw_features", outputCol="features", withMean=True),
        LogisticRegression(labelCol="Churn", regParam=0.01, maxIter=100),
    ])
    train, test = df.randomSplit([0.8, 0.2], seed=42)
    model = pipe.fit(train)
    auc = BinaryClassificationEvaluator(labelCol="Churn").evaluate(model.transform(test))
    assert auc >= 0.83, auc

    # insights on half the held-out customers (hash-picked): tier rates out of sample, a lighter job
    test = test.where(F.xxhash64("customerID") % 2 == 0).cache()
    n_test = test.count()
    summary = churn.run(cfg, spark, model, customers=test)
    assert summary["customers"] == n_test
    tiers = {r["tier"]: r for r in tables.read_run(spark, cfg.table("churn_tiers"), cfg.run_id)[0].collect()}
    assert tiers["high"]["churn_rate"] > tiers["medium"]["churn_rate"] > tiers["low"]["churn_rate"]
    drivers = {r["feature"]: r for r in tables.read_run(spark, cfg.table("churn_drivers"), cfg.run_id)[0].collect()}
    assert drivers["Contract"]["high_risk_value"] == "Month-to-month"
    assert drivers["tenure"]["effect"] < 0  # long-standing customers churn less
    assert drivers["Contract"]["importance_source"] == "model"
    scores = tables.read_run(spark, cfg.table("churn_scores"), cfg.run_id)[0]
    assert scores.count() == n_test
    high = scores.where("tier = 'high'")
    assert high.where(F.size("reasons") == 0).count() == 0  # high-risk customers all have reasons
    assert high.where("reason_1 IS NULL").count() == 0
    prof = tables.read_run(spark, cfg.table("churn_segment_profiles"), cfg.run_id)[0].collect()
    assert len(prof) == 4 and len({r["segment_name"] for r in prof}) == 4
    rates = sorted(r["churn_rate"] for r in prof)
    assert rates[-1] - rates[0] > 0.2  # segments differ in churn
    for fig in summary["figures"]:
        assert Path(fig).stat().st_size > 5000
