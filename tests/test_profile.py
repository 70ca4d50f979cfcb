"""Profile stage: each statistic against hand-computed values, then the whole job on generated users."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.testing import assertDataFrameEqual

from prospects.core import tables
from prospects.core.dictionary import ColumnDictionary, ColumnSpec
from prospects.profile import correlation as cr
from prospects.profile import stage as pf
from prospects.synthetic import generator as g

ROOT = Path(__file__).resolve().parents[1]


def tiny_dictionary() -> ColumnDictionary:
    return ColumnDictionary([
        ColumnSpec("id", "id", "id", "int", "none", "id"),
        ColumnSpec("s", "gender", "base", "string", "mode", labels={"先生": "male", "女士": "female"}),
        ColumnSpec("n", "count", "base", "int", "mode"),
        ColumnSpec("x", "amount", "money", "float", "median"),
    ])


@pytest.fixture(scope="module")
def tiny(spark):
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("s", T.StringType()),
                           T.StructField("n", T.LongType()), T.StructField("x", T.DoubleType()),
                           T.StructField("label", T.IntegerType())])
    rows = [(1, "先生", 1, 0.5, 1), (2, "女士", 2, 1.5, 0), (3, None, 2, 2.5, 1), (4, "先生", None, 3.5, 0)]
    return spark.createDataFrame(rows, schema)


# ---------------------------------------------------------------------------------------------
# Statistics on tiny explicit frames
# ---------------------------------------------------------------------------------------------
def test_column_profile_counts_types_and_roles(tiny):
    stats, _ = pf.column_stats(tiny, ["s", "n", "x"])
    out = {r["column"]: r for r in pf._profile_rows(tiny, tiny_dictionary(), ["s", "n", "x"], stats, 3, 3)}
    assert [out[c]["null_count"] for c in "snx"] == [1, 1, 0]
    assert [out[c]["null_share"] for c in "snx"] == [0.25, 0.25, 0.0]
    assert [out[c]["distinct"] for c in "snx"] == [2, 2, 4]
    assert [out[c]["distinct_exact"] for c in "snx"] == [True, True, False]  # x: 4 > approx_above 3
    assert [out[c]["role"] for c in "snx"] == ["categorical", "categorical", "numeric"]
    assert [out[c]["declared_type"] for c in "snx"] == ["string", "int", "float"]
    x = out["x"]
    assert (x["min"], x["max"], x["mean"]) == (0.5, 3.5, 2.0)
    assert (x["p25"], x["p50"], x["p75"]) == (0.5, 1.5, 2.5)  # percentile_approx: smallest v with F(v) >= q
    assert out["s"]["p50"] is None and out["n"]["p50"] == 2.0


def test_sampled_quantiles_keep_exact_counts(spark):
    df = spark.range(0, 2000).select(F.when(F.col("id") % 10 == 0, None).otherwise(F.col("id")).alias("x"))
    stats, _ = pf.column_stats(df, ["x"], quantile_fraction=0.3, seed=3)
    x = stats["x"]
    assert (x["rows"], x["null_count"], x["min"], x["max"]) == (2000, 200, 1.0, 1999.0)
    assert x["p50"] == pytest.approx(1000, abs=120)  # from about 540 sampled values


@pytest.mark.parametrize("distinct, role", [(1, "categorical"), (10, "categorical"), (11, "numeric")])
def test_infer_role_boundary(distinct, role):
    assert pf.infer_role("float", distinct, 10)[0] == role
    assert pf.infer_role("string", 500, 10)[0] == "categorical"


def test_missing_by_group(tiny):
    groups = {"base": ["s", "n"], "money": ["x"]}
    _, per_group = pf.column_stats(tiny, [], groups=groups)
    out = [(r["group"], r["users_all_missing"], r["users_any_missing"], r["share_any_missing"])
           for r in pf._group_rows(groups, per_group)]
    assert out == [("base", 0, 2, 0.5), ("money", 0, 0, 0.0)]


@pytest.fixture(scope="module")
def blocky(spark):
    """a, b always missing together (3 users); c missing for 2 of them; d never missing."""
    rows = [(1, None, None, None, 1.0), (2, None, None, None, 2.0), (3, None, None, 7.0, 3.0),
            (4, 1.0, 2.0, 3.0, 4.0), (5, 1.0, 2.0, 3.0, 5.0)]
    return spark.createDataFrame(rows, "id long, a double, b double, c double, d double")


def test_missing_patterns(blocky):
    out = pf.missing_patterns(blocky, ["a", "b", "c", "d"])
    assertDataFrameEqual(out.select("pattern", "missing_count", "users"),
                         [("1110", 3, 2), ("1100", 2, 1), ("0000", 0, 2)])


def test_co_missing_counts_and_jaccard(blocky):
    patterns = pf.missing_patterns(blocky, ["a", "b", "c"])
    out = {(r["col_a"], r["col_b"]): r for r in pf.co_missing(patterns, ["a", "b", "c"]).collect()}
    assert (out[("a", "b")]["both_missing"], out[("a", "b")]["jaccard"]) == (3, 1.0)
    assert (out[("a", "c")]["both_missing"], out[("a", "c")]["either_missing"]) == (2, 3)
    assert out[("a", "c")]["jaccard"] == pytest.approx(2 / 3)
    assert out[("c", "c")]["a_missing"] == 2


def test_co_missing_spark_path_equals_driver_path(blocky, monkeypatch):
    patterns = pf.missing_patterns(blocky, ["a", "b", "c", "d"])
    driver = pf.co_missing(patterns, ["a", "b", "c", "d"])
    monkeypatch.setattr(pf, "COLLECT_PATTERNS_MAX", 0)
    assertDataFrameEqual(pf.co_missing(patterns, ["a", "b", "c", "d"]), driver)


def test_blocks_found_from_the_data(blocky):
    columns = ["a", "b", "c", "d"]
    co = [r.asDict() for r in pf.co_missing(pf.missing_patterns(blocky, columns), columns).collect()]
    out = pf._block_rows(pf.blocks_from_co_missing(co, columns), 5, None)
    assert [(r["block"], r["columns"], r["users_missing"], r["contained_in"]) for r in out] == [
        (1, ["a", "b"], 3, None), (2, ["c"], 2, 1)]
    assert out[0]["share_missing"] == pytest.approx(0.6)


def test_missing_sample_is_bounded(blocky):
    sample = pf.missing_sample(blocky, ["a", "c"], rows=3, total=5, seed=1)
    assert 0 < len(sample) <= 3 and all(len(r) == 2 for r in sample)
    full = pf.missing_sample(blocky, ["a", "c"], rows=10, total=5, seed=1)
    assert sorted(map(tuple, full)) == sorted([(True, True), (True, True), (True, False), (False, False),
                                               (False, False)])


def test_categorical_rates_with_english_labels(tiny):
    out = pf.categorical_from_counts(pf.value_rates(tiny, ["s", "n"], "label"), tiny_dictionary())
    assertDataFrameEqual(out, [
        ("s", "先生", "male", 2, 0.5, 1, 0.5), ("s", "女士", "female", 1, 0.25, 0, 0.0),
        ("s", None, "missing", 1, 0.25, 1, 1.0),
        ("n", "1", "1", 1, 0.25, 1, 1.0), ("n", "2", "2", 2, 0.5, 1, 0.5), ("n", None, "missing", 1, 0.25, 0, 0.0),
    ])


def test_rate_curves(tiny):
    out = pf.curves_from_counts(pf.value_rates(tiny, ["n"], "label"))
    assertDataFrameEqual(out, [("n", 1.0, 1, 0.25, 1, 1.0), ("n", 2.0, 2, 0.5, 1, 0.5),
                               ("n", None, 1, 0.25, 0, 0.0)])


def test_histograms_bins_overflow_and_outliers(spark):
    df = spark.createDataFrame([(float(v), v % 2) for v in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100]] + [(None, 0)],
                               "x double, label long")
    out = pf.histograms(df, ["x"], bins=2, label="label", ranges={"x": (0.0, 9.0, -1.0, 20.0)})
    # [0, 4.5): 0..4 ; [4.5, 9): 5..8 ; overflow [9, max]: 9, 100 (100 above the fence 20)
    assertDataFrameEqual(out, [("x", 0, 0.0, 4.5, 5, 2, 0, 0), ("x", 1, 4.5, 9.0, 4, 2, 0, 0),
                               ("x", 2, 9.0, None, 2, 1, 0, 1)])


def test_histogram_ranges_from_stats():
    stats = {"x": {"min": 0.0, "max": 50.0, "p25": 2.0, "p75": 4.0, "p99": 10.0},
             "k": {"min": 3.0, "max": 3.0, "p25": 3.0, "p75": 3.0, "p99": 3.0}}
    assert pf.histogram_ranges(stats) == {"x": (0.0, 10.0, -1.0, 7.0), "k": (3.0, 3.0, 3.0, 3.0)}


def test_correlation_after_imputation(spark):
    # x = 1..4, y = 2, 1, 4, 3 -> r = 3 / 5 = 0.6; y's null is imputed with 4
    df = spark.createDataFrame([(1.0, 2.0, 1.0), (2.0, 1.0, 2.0), (3.0, None, 3.0), (4.0, 3.0, 4.0)],
                               "x double, y double, z double")
    m = pf.correlation_matrix(df, ["x", "y", "z"], {"y": 4.0})
    assert m[0][1] == pytest.approx(0.6) and m[0][2] == pytest.approx(1.0)
    long_rows, rows = pf._correlation_rows(["x", "y", "z"], m, 0.8, None)
    assert len(long_rows) == 9
    # only (x, z) is above 0.8; mean |r|: x = (0.6 + 1) / 2, z = (0.6 + 1) / 2 -> tie -> later column z
    assert [(r["col_a"], r["col_b"], r["drop"], r["reason"]) for r in rows] == [("x", "z", "z", "tie: later column")]


def test_impute_values_and_modes():
    d = tiny_dictionary()
    stats = {"n": {"p50": 5.0, "mean": 4.0}, "x": {"p50": 1.5, "mean": 2.0}}
    modes = pf.modes_from_counts([{"column": "n", "value": "2", "users": 3}, {"column": "n", "value": "1", "users": 3},
                                  {"column": "n", "value": None, "users": 9}])
    assert modes == {"n": 1.0}  # ties -> smallest value, missing never the mode
    assert pf.impute_values(d, ["n", "x"], stats, modes) == {"n": 1.0, "x": 1.5}


# ---------------------------------------------------------------------------------------------
# The shared multicollinearity rule
# ---------------------------------------------------------------------------------------------
def test_choose_drops_rule():
    cols = ["a", "b", "c", "d"]
    m = [[1.0, 0.95, 0.9, 0.1],
         [0.95, 1.0, 0.85, 0.0],
         [0.9, 0.85, 1.0, 0.3],
         [0.1, 0.0, 0.3, 1.0]]
    mac = cr.mean_abs_correlation(cols, m)
    assert mac["a"] == pytest.approx((0.95 + 0.9 + 0.1) / 3)
    pairs = cr.high_pairs(cols, m, 0.8)
    assert pairs == [("a", "b", 0.95), ("a", "c", 0.9), ("b", "c", 0.85)]
    out = cr.choose_drops(pairs, mac, cols)
    # a (0.65) vs b (0.6): drop a; (a, c) already resolved by a; (b, c): b 0.6 vs c 0.683 -> drop c
    assert [(d.col_a, d.col_b, d.drop) for d in out] == [("a", "b", "a"), ("a", "c", None), ("b", "c", "c")]
    assert out[1].reason == "already resolved by a"
    assert cr.columns_to_drop(cols, m, 0.8) == ["a", "c"]


def test_choose_drops_orders_pairs_and_rejects_unknown_columns():
    out = cr.choose_drops([("y", "x", -0.99)], {"x": 0.5, "y": 0.5}, ["x", "y"])
    assert (out[0].col_a, out[0].col_b, out[0].drop) == ("x", "y", "y")
    assert cr.high_pairs(["x", "y"], [[1.0, float("nan")], [float("nan"), 1.0]], 0.5) == []
    with pytest.raises(ValueError, match="not in the column order"):
        cr.choose_drops([("x", "q", 0.9)], {"x": 1.0, "q": 1.0}, ["x"])


# ---------------------------------------------------------------------------------------------
# The job on generated users
# ---------------------------------------------------------------------------------------------
N_USERS = 20_000
SEED = 7


def write_bronze(spark, cfg, n: int, seed: int, run_id: str = "r1") -> None:
    """Generated users in the bronze contract's shape (until ingest writes them)."""
    df = g.with_labels(g.users(spark, first_id=1, n=n, seed=seed, partitions=2), seed=seed, intercept=-2.2)
    df = (df.drop("product_no", "_eta", "probability")
          .withColumn("label", F.col("label").cast("int"))
          .withColumn("run_id", F.lit(run_id)).withColumn("ingested_at", F.current_timestamp()))
    tables.replace_partition(df, cfg.table("bronze_users"), where={"run_id": run_id}, partition_by=["run_id"])


@pytest.fixture(scope="module")
def profiled(spark, tmp_path_factory):
    from prospects.core.config import load_config

    root = tmp_path_factory.mktemp("profile")
    lake = root / "lakehouse"
    paths = {"raw": str(root / "raw"), "lakehouse": str(lake), "models": str(lake / "models"),
             "reports": str(lake / "reports")}
    cfg = load_config(extra={"paths": paths}, overrides=["run.id=r1"])
    write_bronze(spark, cfg, N_USERS, SEED)
    summary = pf.run(cfg, spark)
    return cfg, summary, root


def eda(spark, cfg, key):
    df, run = tables.read_run(spark, cfg.table(key), cfg.run_id)
    assert run == "r1"
    return [r.asDict() for r in df.collect()]


def test_profile_recovers_the_generator_blocks_exactly(spark, profiled):
    cfg, summary, _ = profiled
    share = {grp: c / g.REFERENCE_USERS for grp, c in g.MISSING_BLOCKS.items()}
    u = g.Uniforms(SEED).u(1)
    expected_users = spark.range(1, N_USERS + 1).agg(
        *[F.sum((u < share[grp]).cast("long")).alias(grp) for grp in share]).first().asDict()
    groups = cfg.columns.groups()
    expected = {frozenset(groups[grp]): expected_users[grp] for grp in g.MISSING_BLOCKS}
    blocks = eda(spark, cfg, "eda_missing_blocks")
    assert {frozenset(b["columns"]): b["users_missing"] for b in blocks} == expected
    # nested: each block sits inside the next larger one
    by_id = {b["block"]: b for b in blocks}
    for b in blocks:
        larger = [o for o in blocks if o["users_missing"] > b["users_missing"]]
        if larger:
            assert by_id[b["contained_in"]] == min(larger, key=lambda o: o["users_missing"])
        else:
            assert b["contained_in"] is None
    assert summary["missing_patterns"] == len(g.MISSING_BLOCKS) + 1
    groups_rows = {r["group"]: r for r in eda(spark, cfg, "eda_missing_groups")}
    assert groups_rows["broadband"]["users_all_missing"] == expected_users["broadband"]
    assert groups_rows["base"]["users_any_missing"] == 0


def test_profile_column_roles(spark, profiled):
    cfg, summary, _ = profiled
    cols = {r["column"]: r for r in eda(spark, cfg, "eda_columns")}
    assert len(cols) == len(cfg.columns.features)
    for c in ("X1", "X3", "X5", "X26", "X27", "X29", "X35", "X36", "X42"):
        assert cols[c]["role"] == "categorical", c
    for c in ("X2", "X4", "X6", "X16", "X32", "X40"):
        assert cols[c]["role"] == "numeric", c
    assert cols["X27"]["distinct"] == 1 and cols["X3"]["distinct"] == 7 and cols["X3"]["distinct_exact"]
    assert cols["X38"]["null_share"] == pytest.approx(cols["X38"]["null_count"] / N_USERS)
    assert cols["X6"]["outliers_high"] > 0 and cols["X6"]["p50"] > 0
    assert cols["X1"]["outliers_low"] is None and cols["X1"]["outliers_high"] is None   # no histogram
    columns = tables.read(spark, cfg.table("eda_columns")).columns
    assert columns[:2] == ["column", "name"] and columns[-3:] == ["outliers_low", "outliers_high", "run_id"]


def test_each_eda_table_of_a_run_is_one_file(spark, profiled):
    cfg, _, _ = profiled
    keys = [k for k in cfg.get("tables") if k.startswith("eda_")]
    assert len(keys) == 10
    for key in keys:
        assert len(tables.read_run(spark, cfg.table(key), "r1")[0].inputFiles()) == 1, key


def _rate(rows, column, pred):
    sel = [r for r in rows if r["column"] == column and r["value"] is not None and pred(r["value"])]
    return sum(r["switchers"] for r in sel) / sum(r["users"] for r in sel)


def test_profile_shows_the_spec_shapes(spark, profiled):
    cfg, summary, _ = profiled
    cat = eda(spark, cfg, "eda_categorical")
    val = {(r["column"], r["value_label"]): r for r in cat}
    assert val[("X1", "male")]["switch_rate"] > val[("X1", "female")]["switch_rate"]
    seg = {k[1]: v["switch_rate"] for k, v in val.items() if k[0] == "X5"}
    assert set(seg) == {"public", "rural", "campus", "company"} and max(seg, key=seg.get) == "company"
    vip = {k[1]: v["switch_rate"] for k, v in val.items() if k[0] == "X3" and k[1] != "missing"}
    assert max(vip, key=vip.get) == "4"
    for c in ("X29", "X30"):  # family users, broadband users
        assert val[(c, "1")]["switch_rate"] > val[(c, "0")]["switch_rate"]
    bw = sorted(((v["users"], k[1]) for k, v in val.items() if k[0] == "X26" and k[1] != "missing"), reverse=True)
    assert [bw[0][1], bw[1][1]] == ["100", "200"]
    term = {k[1]: v for k, v in val.items() if k[0] == "X36"}
    assert max(term, key=lambda t: term[t]["users"]) == "1"
    assert max(term, key=lambda t: term[t]["switch_rate"]) == "2"
    curves = eda(spark, cfg, "eda_curves")
    assert _rate(curves, "X2", lambda a: 25 <= a <= 50) > 0.20
    assert _rate(curves, "X2", lambda a: a < 19) < _rate(curves, "X2", lambda a: 19 <= a < 25)
    assert _rate(curves, "X2", lambda a: 50 < a <= 60) > _rate(curves, "X2", lambda a: a > 60)
    ten = [r for r in curves if r["column"] == "X4" and r["value"] is not None]
    assert max(ten, key=lambda r: r["users"])["value"] == 1.0
    assert min(ten, key=lambda r: r["switch_rate"])["value"] == 1.0
    assert 0.22 <= _rate(curves, "X4", lambda t: 2 <= t <= 10) <= 0.33
    assert _rate(curves, "X4", lambda t: t > 10) > 0.30


def test_profile_correlation_pairs_follow_the_shared_rule(spark, profiled):
    cfg, summary, _ = profiled
    corr = eda(spark, cfg, "eda_correlation")
    cols = list(dict.fromkeys(r["col_a"] for r in sorted(corr, key=lambda r: r["col_a"])))
    order = [s.code for s in cfg.columns if s.code in cols]
    r = {(x["col_a"], x["col_b"]): x["r"] for x in corr}
    matrix = [[r[(a, b)] if r[(a, b)] is not None else float("nan") for b in order] for a in order]
    assert r[("X6", "X15")] > 0.9 and r[("X15", "X6")] == r[("X6", "X15")]
    pairs = eda(spark, cfg, "eda_corr_pairs")
    threshold = summary["corr_threshold"]
    assert {(p["col_a"], p["col_b"]) for p in pairs} == {(a, b) for a, b, _ in cr.high_pairs(order, matrix, threshold)}
    assert sorted(p["drop"] for p in pairs if p["drop"]) == sorted(cr.columns_to_drop(order, matrix, threshold))
    assert "X1" not in order and "X5" not in order  # text columns are not in the Pearson matrix


def test_profile_report_and_figures(profiled):
    cfg, summary, _ = profiled
    report = Path(summary["report"])
    text = report.read_text(encoding="utf-8")
    figures = sorted(p.name for p in report.parent.glob("*.png"))
    assert figures == sorted(["missing_share.png", "missing_matrix.png", "missing_patterns.png", "co_missing.png",
                              "categorical_grid.png", "rate_curves.png", "numeric_grid.png", "correlation.png"])
    for name in figures:
        assert f"]({name})" in text, name
        assert (report.parent / name).stat().st_size > 10_000
    assert "先生" not in text and "| X5 | market_segment | public |" in text


def test_profile_rerun_replaces_its_run(spark, profiled):
    cfg, _, _ = profiled
    before = tables.read(spark, cfg.table("eda_columns")).count()
    tables.write_run(tables.read_run(spark, cfg.table("eda_columns"), cfg.run_id)[0].drop("run_id"), cfg, "eda_columns")
    assert tables.read(spark, cfg.table("eda_columns")).count() == before


def test_profile_fails_clearly_without_bronze(spark, make_cfg):
    from prospects.core.errors import JobError

    with pytest.raises(JobError, match="bronze_users"):
        pf.run(make_cfg(), spark)


def test_notebook_runs_headless(profiled):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    cfg, _, root = profiled
    nb = nbformat.read(ROOT / "notebooks" / "profile.ipynb", as_version=4)
    env_before = {k: os.environ.get(k) for k in ("PROSPECTS_LAKEHOUSE", "PROSPECTS_NOTEBOOK_OVERRIDES",
                                                 "PYSPARK_PYTHON")}
    os.environ["PROSPECTS_LAKEHOUSE"] = str(root / "lakehouse")
    os.environ["PROSPECTS_NOTEBOOK_OVERRIDES"] = (
        "spark.master=local[1]; spark.driver_memory=1g")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    try:
        client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(ROOT / "notebooks")}})
        client.execute()
    finally:
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 8
    text = "".join(o.get("text", "") for o in outputs)
    assert f"profile run r1: {N_USERS:,} users" in text


def test_histograms_of_several_columns_keep_their_own_bins(spark):
    df = spark.createDataFrame([(float(v), float(10 * v), v % 2) for v in range(10)], "a double, b double, label long")
    out = {(r["column"], r["bin"]): (r["users"], r["switchers"], r["outliers_low"], r["outliers_high"])
           for r in pf.histograms(df, ["a", "b"], bins=5, label="label",
                                  ranges={"a": (0.0, 10.0, 1.0, 8.0), "b": (0.0, 100.0, -1.0, 1000.0)}).collect()}
    assert out[("a", 0)] == (2, 1, 1, 0) and out[("a", 4)] == (2, 1, 0, 1)   # a=0 below 1; a=9 above 8
    assert out[("b", 2)] == (2, 1, 0, 0) and sum(v[0] for k, v in out.items() if k[0] == "b") == 10
    assert not any(k[1] == 5 for k in out)                                   # nothing reached the overflow bin
