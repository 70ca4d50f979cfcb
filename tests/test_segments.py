"""Segment profiles, marketing actions, campaign list and drift on small hand-made frames."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from prospects.core.errors import ConfigError, JobError
from prospects.ml import drift
from prospects.scoring import segments as seg

ACTIONS = [
    {"name": "vip4", "when": "X3 = 4", "action": "value"},
    {"name": "rural", "when": "X5 = '农村用户'", "action": "family video"},
]
ALL_SEGMENTS = ["vip_class", "market_segment", "terminal_type", "age_band", "tenure_band", "fiveg_coverage"]
SEGMENTS = {
    "vip_class": {"column": "X3"},
    "market_segment": {"column": "X5"},
    "age_band": {"column": "X2", "bands": [25, 50]},
}


def users_frame(spark):
    """Region A: 6 users, 3 prospects; region B: 2 users, 1 prospect."""
    rows = [
        # region, user_id, X2 age, X3 vip, X5 segment, probability, prediction, rank
        ("A", 1, 30, 4.0, "农村用户", 0.9, 1, 1),
        ("A", 2, 20, 4.0, "大众用户", 0.8, 1, 2),
        ("A", 3, 55, 3.0, "农村用户", 0.7, 1, 3),
        ("A", 4, None, None, "大众用户", 0.4, 0, 4),
        ("A", 5, 40, 3.0, "农村用户", 0.3, 0, 5),
        ("A", 6, 25, 4.0, None, 0.1, 0, 6),
        ("B", 7, 60, 1.0, "集团用户", 0.6, 1, 1),
        ("B", 8, 24, 4.0, "大众用户", 0.2, 0, 2),
    ]
    df = spark.createDataFrame(rows, "region string, user_id long, X2 long, X3 double, X5 string, "
                                     "probability double, prediction int, rank long")
    return df.withColumn("tier", F.lit("low"))


@pytest.fixture
def rules(make_cfg, spark):
    cfg = make_cfg(extra={"score": {"segments": {**dict.fromkeys(ALL_SEGMENTS), **SEGMENTS}, "actions": ACTIONS}})
    frame = users_frame(spark)
    return cfg, seg.validate_rules(cfg, frame)


def scored(spark, rules):
    frame = users_frame(spark)
    return seg.scored_users(frame.select("region", "user_id", "probability", "prediction", "rank", "tier"),
                            frame.select("region", "user_id", "X2", "X3", "X5"), rules)


def test_segment_values_bands_and_labels(spark, rules):
    _, r = rules
    assert [s.name for s in r.segments] == ["vip_class", "market_segment", "age_band"]
    got = {row["user_id"]: tuple(x["segment"] for x in row["seg"]) for row in scored(spark, r).collect()}
    assert got[1] == ("4", "rural", "25-49")
    assert got[2] == ("4", "public", "<25")
    assert got[3] == ("3", "rural", "50+")
    assert got[4] == ("missing", "public", "missing")
    assert got[6] == ("4", "missing", "25-49")
    assert got[7] == ("1", "company", "50+")


def test_values_mapping_and_expression_segments(spark, make_cfg):
    cfg = make_cfg()
    df = spark.createDataFrame([(4.0, 1, 1), (3.0, 1, 0), (1.0, None, None)], "X3 double, X42 long, X43 long")
    top = seg.segment_from_spec("vip", {"column": "X3", "values": {4: "four star", 3: "three star"}}, cfg.columns)
    cov = seg.segment_from_spec("cov", {"expr": "CASE WHEN X42 = 1 AND X43 = 1 THEN 'both' "
                                                "WHEN X42 = 1 THEN 'home' END"}, cfg.columns)
    out = [(r[0], r[1]) for r in df.select(top.value, cov.value).collect()]
    assert out == [("four star", "both"), ("three star", "home"), ("other", "missing")]
    with pytest.raises(JobError, match="score.segments.bad"):
        seg.segment_from_spec("bad", {"column": "X2", "bands": [50, 25]}, cfg.columns)


def test_bad_rules_are_named(spark, make_cfg):
    frame = users_frame(spark)
    cfg = make_cfg(extra={"score": {"segments": dict.fromkeys(ALL_SEGMENTS),
                                    "actions": [{"name": "oops", "when": "X99 = 1", "action": "x"}]}})
    with pytest.raises(JobError, match="score.actions 'oops'"):
        seg.validate_rules(cfg, frame)
    with pytest.raises(ConfigError, match="score.segments.ghost.column: 'X77' is not a column"):
        make_cfg(extra={"score": {"segments": {**dict.fromkeys(ALL_SEGMENTS), "ghost": {"column": "X77"}},
                                  "actions": []}})        # a column is checked at load, before any Spark job
    cfg = make_cfg(extra={"score": {"segments": {**dict.fromkeys(ALL_SEGMENTS), "ghost": {"expr": "X77 + 1"}},
                                    "actions": []}})
    with pytest.raises(JobError, match="score.segments.ghost"):
        seg.validate_rules(cfg, frame)                    # an expression, when the rules are validated


def test_segment_profiles_hand_computed(spark, rules):
    _, r = rules
    prof = {(x["region"], x["dimension"], x["segment"]): x.asDict()
            for x in seg.segment_profiles(scored(spark, r), r).collect()}
    rural = prof[("A", "market_segment", "rural")]
    assert (rural["users"], rural["prospects"]) == (3, 2)
    assert rural["user_share"] == pytest.approx(3 / 6)
    assert rural["prospect_share"] == pytest.approx(2 / 3)
    assert rural["prospect_rate"] == pytest.approx(2 / 3)
    assert rural["lift"] == pytest.approx((2 / 3) / (3 / 6))
    assert rural["expected_switchers"] == pytest.approx(0.9 + 0.7 + 0.3)
    assert rural["dimension_label"] == "market segment"
    vip4 = prof[("A", "vip_class", "4")]
    assert (vip4["users"], vip4["prospects"]) == (3, 2)
    assert prof[("B", "age_band", "<25")]["lift"] == 0.0
    ages = sorted((k[2], v["segment_order"]) for k, v in prof.items() if k[:2] == ("A", "age_band"))
    assert ages == [("25-49", 1), ("50+", 2), ("<25", 0), ("missing", 3)]


def test_action_counts_hand_computed(spark, rules):
    _, r = rules
    got = {(x["region"], x["action_name"]): x.asDict() for x in seg.action_counts(scored(spark, r), r).collect()}
    assert (got[("A", "vip4")]["users"], got[("A", "vip4")]["prospects"]) == (3, 2)
    assert (got[("A", "rural")]["users"], got[("A", "rural")]["prospects"]) == (3, 2)
    assert got[("A", "rural")]["prospect_share"] == pytest.approx(2 / 3)
    assert got[("A", "(none)")]["prospects"] == 0          # every A prospect matched a rule
    assert got[("B", "(none)")]["prospects"] == 1          # user 7: VIP 1, company
    assert got[("B", "vip4")]["expected_switchers"] == pytest.approx(0.2)
    assert got[("A", "vip4")]["condition"] == "X3 = 4" and got[("A", "rural")]["rule_order"] == 1


def test_campaign_budgets_and_list(spark, rules):
    _, r = rules
    summary = [{"region": "A", "prospects": 3, "expected_switchers": 3.2},
               {"region": "B", "prospects": 40, "expected_switchers": 0.8},
               {"region": "C", "prospects": 40, "expected_switchers": 0.0}]
    assert seg.campaign_budgets(summary, 2, "per_region") == {"A": 2, "B": 2, "C": 2}
    assert seg.campaign_budgets(summary, 10, "expected") == {"A": 3, "B": 2, "C": 0}  # A: 8 capped at 3
    assert seg.campaign_budgets(summary, 3, "expected") == {"A": 2, "B": 1, "C": 0}   # 2.4 / 0.6 -> 2 + 1
    assert seg.campaign_budgets(summary, 0, "expected") == {}
    with pytest.raises(JobError):
        seg.campaign_budgets(summary, 5, "random")
    out = seg.campaign_list(scored(spark, r), {"A": 2, "B": 5}).orderBy("region", "rank").collect()
    assert [(x["region"], x["user_id"], x["action_name"]) for x in out] == [
        ("A", 1, "vip4"), ("A", 2, "vip4"), ("B", 7, None)]


def test_psi_formula():
    assert drift.psi({"a": 50, "b": 50}, {"a": 50, "b": 50}) == 0.0
    expected = (0.8 - 0.5) * math.log(0.8 / 0.5) + (0.2 - 0.5) * math.log(0.2 / 0.5)
    assert drift.psi({"a": 5, "b": 5}, {"a": 8, "b": 2}) == pytest.approx(expected)
    # a bin absent from training counts with share eps
    assert drift.psi({"a": 10}, {"a": 5, "new": 5}) > 1.0


def test_drift_flags_a_shifted_region(spark):
    train = spark.range(0, 2000).select(F.col("id").cast("double").alias("x"),
                                        (F.col("id") % 3).cast("long").alias("c"),
                                        F.when(F.col("id") % 2 == 0, "m").otherwise("f").alias("s"))
    same = train.withColumn("region", F.lit("A"))
    shifted = train.select((F.col("x") + 1000).alias("x"), F.lit(2).cast("long").alias("c"), "s") \
        .withColumn("region", F.lit("B"))
    both = same.unionByName(shifted)
    rows = {(r["region"], r["feature"]): r for r in drift.drift(train, both, ["x", "c", "s"], 10, 5)}
    assert rows[("A", "x")]["kind"] == "numeric" and rows[("A", "c")]["kind"] == "categorical"
    assert all(rows[("A", f)]["psi"] == pytest.approx(0.0, abs=1e-9) for f in ("x", "c", "s"))
    assert rows[("B", "x")]["psi"] > 1.0 and rows[("B", "c")]["psi"] > 1.0
    assert rows[("B", "s")]["psi"] == pytest.approx(0.0, abs=1e-9)
    assert 9 <= rows[("A", "x")]["bins"] <= 11


def test_a_saved_reference_gives_the_same_psi_as_the_training_users(spark, tmp_path):
    train = spark.range(0, 3000).select((F.col("id") % 97).cast("double").alias("x"),
                                        (F.col("id") % 4).cast("long").alias("c"))
    regions = train.select((F.col("x") * 1.5).alias("x"), "c", F.lit("A").alias("region"))
    ref = drift.fit_reference(train, ["x", "c", "absent"], 10, 5)
    assert set(ref.bins) == {"x", "c"} and sum(ref.counts["x"].values()) == 3000
    path = str(tmp_path / "models" / "v1" / drift.REFERENCE_FILE)
    ref.save(spark, path)
    again = drift.Reference.load(spark, path)
    assert again == ref
    assert drift.against(again, regions) == drift.drift(train, regions, ["x", "c"], 10, 5)
    assert drift.Reference.load(spark, str(tmp_path / "nothing.json")) is None


def test_feature_bins_are_approx_quantile_deciles_or_values(spark):
    rows = [(float(i % 500), i % 3, "m" if i % 2 else None) for i in range(3000)]
    rows += [(float("nan"), 1, "f"), (None, None, "f")] * 50
    df = spark.createDataFrame(rows, "x double, k int, s string")
    bins = drift.feature_bins(df, ["x", "k", "s"], 10, 5)
    # the edges approxQuantile gives (it ignores NaN and nulls), duplicates removed, in order
    edges = sorted(set(df.approxQuantile("x", [i / 10 for i in range(1, 10)], 0.001)))
    assert bins["x"] == {"kind": "numeric", "edges": edges} and len(edges) == 9
    assert bins["k"] == bins["s"] == {"kind": "categorical"}      # 3 values <= 5; text
    assert list(bins) == ["x", "k", "s"]
    assert drift.feature_bins(df.select("s"), ["s"]) == {"s": {"kind": "categorical"}}


def test_bin_counts_match_a_count_by_hand(spark):
    rows = [("A", 1.0, "m"), ("A", 2.5, None), ("A", None, "f"), ("B", 7.0, "m"), ("B", 2.0, "m"), ("B", None, None)]
    df = spark.createDataFrame(rows, "region string, x double, s string")
    spec = {"x": {"kind": "numeric", "edges": [2.0, 5.0]}, "s": {"kind": "categorical"}}
    got = {(r["region"], r["feature"], r["bin"]): r["count"]
           for r in drift._bin_counts(df, spec, ["region"]).collect()}

    def by_hand(x, s):  # bin = number of edges strictly below the value; nulls are their own bin
        return {"x": drift.MISSING if x is None else f"q{sum(x > e for e in spec['x']['edges'])}",
                "s": drift.MISSING if s is None else s}
    expected: dict = {}
    for region, x, s in rows:
        for feature, b in by_hand(x, s).items():
            expected[(region, feature, b)] = expected.get((region, feature, b), 0) + 1
    assert got == expected
    assert drift._bin_counts(df, {}, ["region"]).collect() == []


def test_sampled_drift_stays_close_to_the_exact_one(spark):
    base = spark.range(0, 60000).select(F.col("id"), F.rand(1).alias("x"), (F.col("id") % 4).alias("c"))
    train = base.where("id < 20000").drop("id")
    regions = base.where("id >= 20000").select(
        F.when(F.col("id") < 40000, "A").otherwise("B").alias("region"),
        F.when(F.col("id") < 40000, F.col("x")).otherwise(F.col("x") ** 2).alias("x"), "c")
    sampled = drift.sample_rows(regions, 2000, 7, by="region")
    counts = {r["region"]: r["count"] for r in sampled.groupBy("region").count().collect()}
    assert all(1700 < n < 2300 for n in counts.values()), counts
    assert drift.sample_rows(train, 0, 7) is train and drift.sample_rows(train, 50000, 7) is train
    exact = {(r["region"], r["feature"]): r["psi"] for r in drift.drift(train, regions, ["x", "c"], 10, 5)}
    approx = {(r["region"], r["feature"]): r["psi"]
              for r in drift.drift(train, regions, ["x", "c"], 10, 5, sample=5000)}
    assert exact.keys() == approx.keys()
    assert exact[("B", "x")] > 0.2 and approx[("B", "x")] > 0.2          # the shifted region still warns
    assert all(abs(exact[k] - approx[k]) < 0.02 for k in exact), (exact, approx)
