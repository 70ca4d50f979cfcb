"""The synthetic user base: format, missing blocks, SPEC 1.2 shapes, determinism, oracle apart."""

from __future__ import annotations

import math

import pytest
from pyspark.sql import functions as F

from prospects.synthetic import generator as g

N = 60_000


@pytest.fixture(scope="module")
def users(spark):
    """60,000 labelled users of seed 42 (calibrated to 20% switchers), cached."""
    intercept = g.calibrate_intercept(spark, 42, 0.20)
    df = g.with_labels(g.users(spark, 1, N, 42, 2), 42, intercept).cache()
    df.count()
    yield df
    df.unpersist()


def rates(df, col):
    return {r[col]: (r["n"], r["rate"]) for r in
            df.groupBy(col).agg(F.count("*").alias("n"), F.avg("label").alias("rate")).collect()}


def test_written_files_have_the_competition_format(spark, make_cfg, tmp_path):
    cfg = make_cfg(overrides=["generator.n_train=300", "generator.regions={A: 50, B: 70}"])
    summary = g.generate(cfg, spark)
    raw = tmp_path / "raw"
    assert sorted(p.name for p in raw.iterdir() if not p.name.startswith(".")) == [
        "oracle_probability", "result_predict_A.csv", "result_predict_B.csv", "train_label.csv", "train_set.csv"]
    header = (raw / "train_set.csv").read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header == ["user_id", "product_no"] + [f"X{i}" for i in range(1, 44)]
    lines = (raw / "train_set.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(lines) == 300 and all(len(line.split(",")) == 45 for line in lines)
    assert {line.split(",")[2] for line in lines} <= {"先生", "女士"}
    assert {line.split(",")[6] for line in lines} <= {"大众用户", "农村用户", "校园用户", "集团用户"}
    assert all(len(line.split(",")[1]) == 11 for line in lines)
    assert (raw / "train_label.csv").read_text().splitlines()[0] == "user_id,label"
    a_ids = [int(x.split(",")[0]) for x in (raw / "result_predict_A.csv").read_text().splitlines()[1:]]
    assert a_ids == list(range(301, 351))  # ids continue after the training users
    assert summary["files"]["result_predict_B.csv"]["users"] == 70


def test_oracle_is_kept_apart_from_training_files(spark, make_cfg, tmp_path):
    cfg = make_cfg(overrides=["generator.n_train=200", "generator.regions={A: 20}"])
    g.generate(cfg, spark)
    raw = tmp_path / "raw"
    for name in ("train_set.csv", "train_label.csv", "result_predict_A.csv"):
        header = (raw / name).read_text(encoding="utf-8").splitlines()[0]
        assert "probability" not in header
    oracle = spark.read.parquet(str(raw / "oracle_probability"))
    assert set(oracle.columns) == {"user_id", "probability", "file", "region"}
    assert oracle.count() == 220
    labels = spark.read.option("header", True).csv(str(raw / "train_label.csv"))
    joined = labels.join(oracle, "user_id")
    # the drawn labels follow the oracle: switchers have the higher mean probability
    means = {r["label"]: r["p"] for r in joined.groupBy("label").agg(F.avg("probability").alias("p")).collect()}
    assert means["1"] > means["0"]


def test_types_of_the_typed_frame(users):
    types = dict(users.dtypes)
    assert types["user_id"] == "bigint" and types["X1"] == "string" and types["X5"] == "string"
    assert types["X2"] == "bigint" and types["X4"] == "bigint" and types["X3"] == "double"


def test_missing_blocks_have_reference_sizes_and_are_nested(users):
    group_cols = {"consumption": ["X6", "X15", "X23", "X28"], "arrears": ["X24", "X25"],
                  "signing": ["X31", "X33", "X34", "X39", "X40"], "package": ["X32", "X35"], "vip": ["X3"],
                  "broadband": ["X26", "X27"], "fiveg": ["X38"]}
    counts = {}
    for group, cols in group_cols.items():
        first = cols[0]
        row = users.agg(*[F.sum(F.col(c).isNull().cast("int")).alias(c) for c in cols]).first()
        assert len({row[c] for c in cols}) == 1, f"{group}: its columns go missing together"
        counts[group] = row[first]
        share = g.MISSING_BLOCKS[group] / g.REFERENCE_USERS
        sd = math.sqrt(N * share * (1 - share))
        assert abs(counts[group] - N * share) <= 5 * sd + 2, (group, counts[group], N * share)
    order = list(g.MISSING_BLOCKS)
    for small, big in zip(order, order[1:]):
        outside = users.where(F.col(group_cols[small][0]).isNull() & F.col(group_cols[big][0]).isNotNull()).count()
        assert outside == 0, f"users missing {small} also miss {big}"


def test_switch_rate_and_categorical_shapes_of_spec_1_2(users):
    total = users.agg(F.avg("label")).first()[0]
    assert 0.185 <= total <= 0.215
    gender = rates(users, "X1")
    assert gender["先生"][1] > gender["女士"][1]
    seg = rates(users, "X5")
    assert max(seg, key=lambda k: seg[k][1]) == "集团用户"
    vip = rates(users.where(F.col("X3").isNotNull()), "X3")
    assert max(vip, key=lambda k: vip[k][1]) == 4.0
    for flag in ("X30", "X29"):  # broadband users, family users
        r = rates(users, flag)
        assert r[1][1] > r[0][1]
    bw = rates(users.where(F.col("X26").isNotNull()), "X26")
    by_count = sorted(bw, key=lambda k: -bw[k][0])
    assert by_count[:2] == [100.0, 200.0]
    term = rates(users, "X36")
    assert max(term, key=lambda k: term[k][0]) == 1
    assert max(term, key=lambda k: term[k][1]) == 2
    assert set(users.where(F.col("X27").isNotNull()).select("X27").distinct().toPandas()["X27"]) == {1.0}


def test_age_and_tenure_shapes_of_spec_1_2(users):
    def band_rate(cond):
        return users.where(cond).agg(F.avg("label")).first()[0]

    age = F.col("X2")
    assert band_rate(age.between(25, 50)) > 0.20
    young = [band_rate(age.between(lo, lo + 3)) for lo in (13, 17, 21)]
    assert young == sorted(young), young
    old = [band_rate(age.between(lo, lo + 4)) for lo in (51, 56, 61)]
    assert old == sorted(old, reverse=True), old
    ten = rates(users, "X4")
    assert max(ten, key=lambda k: ten[k][0]) == 1
    assert ten[1][1] == min(r for _, r in ten.values())
    assert 0.25 <= band_rate(F.col("X4").between(2, 10)) <= 0.30
    assert band_rate(F.col("X4") > 10) > 0.30
    slope_low = band_rate(F.col("X4").between(6, 10)) - band_rate(F.col("X4").between(2, 5))
    slope_high = band_rate(F.col("X4").between(16, 20)) - band_rate(F.col("X4").between(11, 15))
    assert slope_high > slope_low  # "above 10 ... climbs faster"


def test_deterministic_for_a_seed_whatever_the_partitioning(spark):
    def fingerprint(df):
        cols = [c for c in df.columns if not c.startswith("_")]
        return df.agg(F.sum(F.xxhash64(*cols) % 1000003).alias("h"), F.count("*")).first()

    a = g.with_labels(g.users(spark, 1, 3000, 9, 1), 9, -2.0)
    b = g.with_labels(g.users(spark, 1, 3000, 9, 4), 9, -2.0)
    c = g.with_labels(g.users(spark, 1, 3000, 10, 1), 10, -2.0)
    assert fingerprint(a) == fingerprint(b)
    assert fingerprint(a) != fingerprint(c)


def test_calibration_hits_the_configured_switch_rate(spark):
    intercept = g.calibrate_intercept(spark, 42, 0.30)
    df = g.with_labels(g.users(spark, 50_001, 20_000, 42, 2), 42, intercept)
    assert abs(df.agg(F.avg("probability")).first()[0] - 0.30) < 0.01
    # asked again in the same process (the next user base of a run): the same intercept, no Spark job
    sc = spark.sparkContext
    sc.setJobGroup("calibration-again", "the same calibration asked again")
    try:
        assert g.calibrate_intercept(spark, 42, 0.30) == intercept
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert list(sc.statusTracker().getJobIdsForGroup("calibration-again")) == []


def test_malformed_rate_corrupts_about_that_share(spark, make_cfg, tmp_path):
    cfg = make_cfg(overrides=["generator.n_train=2000", "generator.regions={}", "generator.malformed_rate=0.1"])
    g.generate(cfg, spark)
    lines = (tmp_path / "raw" / "train_set.csv").read_text(encoding="utf-8").splitlines()[1:]
    bad = [ln for ln in lines if len(ln.split(",")) != 45 or ln.startswith(",") or "n/a" in ln]
    # short/long/non-numeric/missing-id are 4 of the 5 kinds: about 8% of lines
    assert 0.05 <= len(bad) / len(lines) <= 0.11
