"""Scoring stage: ranks and deciles as Spark's windows give them, reruns replace, summary = hand count,
bad input."""

from __future__ import annotations

import datetime as dt
import os
import sys
import types
from pathlib import Path

import pytest
from pyspark.ml import Pipeline, Transformer
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import Imputer, StringIndexer, VectorAssembler
from pyspark.ml.functions import array_to_vector
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from prospects.core import tables
from prospects.core.errors import JobError
from prospects.scoring import scores as scoring
from prospects.synthetic import generator as g

ROOT = Path(__file__).resolve().parents[1]
SCORED_AT = dt.datetime(2026, 1, 31, 12, 0, 0)
NUMS = ["X2", "X3", "X4", "X26", "X36", "X42"]


def bronze(df, run_id="r1"):
    """Generated users -> bronze shape (drop the generator's private columns)."""
    return (df.drop("product_no", "_eta", "probability")
            .withColumn("run_id", F.lit(run_id)).withColumn("ingested_at", F.current_timestamp()))


@pytest.fixture(scope="module")
def model(spark):
    train = g.with_labels(g.users(spark, 1, 3000, 7, 2), 7, -2.2).drop("probability", "_eta", "product_no")
    pipe = Pipeline(stages=[
        StringIndexer(inputCols=["X1", "X5"], outputCols=["_x1", "_x5"], handleInvalid="keep"),
        Imputer(inputCols=NUMS, outputCols=[f"_{c}" for c in NUMS], strategy="median"),
        VectorAssembler(inputCols=["_x1", "_x5", *[f"_{c}" for c in NUMS]], outputCol="features"),
        LogisticRegression(maxIter=10),
    ])
    return pipe.fit(train)


@pytest.fixture(scope="module")
def regions(spark):
    a = g.users(spark, 10_001, 400, 7, 1).withColumn("region", F.lit("A"))
    b = g.users(spark, 20_001, 700, 7, 1).withColumn("region", F.lit("B"))
    return bronze(a.unionByName(b)).cache()


class FixedProbability(Transformer):
    """Test model: probability vector [1 - p, p] from column ``p`` (hand-made probabilities)."""

    def _transform(self, df):
        return df.withColumn("probability", array_to_vector(F.array(1 - F.col("p"), F.col("p"))))


def read_scores(spark, cfg):
    return tables.read(spark, cfg.table("gold_scores"))


def test_model_input_columns(model):
    assert scoring.model_input_columns(model) == ["X1", "X5", *NUMS]


def scored_rows(df, model, s, deciles):
    ranked, cached = scoring.rank_in_regions(df.transform(scoring.probabilities(model, "user_id")), deciles)
    return ranked.transform(scoring.gold_rows(s)), cached


def test_gold_rows_rank_decile_tier(spark, make_cfg):
    cfg = make_cfg(overrides=["run.id=r9", "score.deciles=2"])
    rows = [(1, "A", 0.9), (2, "A", 0.4), (3, "A", 0.4), (4, "A", 0.1), (5, "B", 0.55), (6, "B", 0.65)]
    df = spark.createDataFrame(rows, "user_id long, region string, p double")
    s = scoring.ScoreSettings.from_config(cfg, threshold=0.5, version="v3", scored_at=SCORED_AT)
    out, cached = scored_rows(df, FixedProbability(), s, s.deciles)
    assert out.columns == scoring.SCORE_COLUMNS
    expected = spark.createDataFrame([
        (1, "A", 0.9, 1, 1, 1, "high"), (2, "A", 0.4, 0, 1, 2, "medium"), (3, "A", 0.4, 0, 2, 3, "medium"),
        (4, "A", 0.1, 0, 2, 4, "low"), (6, "B", 0.65, 1, 1, 1, "high"), (5, "B", 0.55, 1, 2, 2, "medium"),
    ], "user_id long, region string, probability double, prediction int, decile int, rank long, tier string")
    assertDataFrameEqual(out.select(*expected.columns), expected)
    assert {tuple(r) for r in out.select("model_version", "run_id", "scored_at").distinct().collect()} == \
        {("v3", "r9", SCORED_AT)}
    cached.unpersist()


@pytest.mark.parametrize("deciles", [10, 7])
def test_ranks_and_deciles_equal_the_windows_over_whole_regions(spark, deciles):
    """The one-sort ranking gives exactly what row_number / ntile over a window per region give:
    regions spread over many tasks, regions smaller than the number of groups, ties broken by id."""
    from pyspark.sql import Window

    rows = spark.range(0, 20_000, numPartitions=8).select(
        F.col("id").alias("user_id"),
        F.when(F.col("id") % 97 == 0, "tiny").when(F.col("id") % 3 == 0, "A").otherwise("B").alias("region"),
        (F.round(F.rand(5), 2)).alias("probability"))           # rounded: many ties
    rows = rows.where((F.col("region") != "tiny") | (F.col("user_id") < 600))   # "tiny": 7 users
    ranked, cached = scoring.rank_in_regions(rows, deciles)
    order = Window.partitionBy("region").orderBy(F.col("probability").desc(), F.col("user_id").asc())
    expected = rows.select("user_id", "region", "probability", F.row_number().over(order).cast("long").alias("rank"),
                           F.ntile(deciles).over(order).cast("int").alias("decile"))
    assertDataFrameEqual(ranked.select(*expected.columns), expected)
    assert {r["region"]: r["n"] for r in rows.groupBy("region").agg(F.count("*").alias("n")).collect()}["tiny"] == 7
    cached.unpersist()


def test_rerun_replaces_and_keeps_other_runs(spark, make_cfg, model, regions):
    cfg1 = make_cfg(overrides=["run.id=r1"])
    res = scoring.score_regions(spark, cfg1, model, 0.5, "v1", regions, scored_at=SCORED_AT)
    assert res["regions"] == {"A": 400, "B": 700} and res["rows"] == 1100
    first = read_scores(spark, cfg1).cache()
    scoring.score_regions(spark, cfg1, model, 0.5, "v1", regions, scored_at=SCORED_AT)
    assertDataFrameEqual(read_scores(spark, cfg1), first)
    # ranks are a permutation 1..n within each region
    check = first.groupBy("region").agg(F.count("*").alias("n"), F.max("rank").alias("m"),
                                        F.countDistinct("rank").alias("d")).collect()
    assert all(r["n"] == r["m"] == r["d"] for r in check)
    # another run id adds a run, the first stays
    cfg2 = make_cfg(overrides=["run.id=r2"])
    scoring.score_regions(spark, cfg2, model, 0.5, "v1", regions, scored_at=SCORED_AT)
    counts = {r["run_id"]: r["count"] for r in read_scores(spark, cfg1).groupBy("run_id").count().collect()}
    assert counts == {"r1": 1100, "r2": 1100}
    # re-running r2 with region A only removes r2's region B, r1 untouched
    scoring.score_regions(spark, cfg2, model, 0.5, "v1", regions.where("region = 'A'"), scored_at=SCORED_AT)
    counts = {(r["run_id"], r["region"]): r["count"]
              for r in read_scores(spark, cfg1).groupBy("run_id", "region").count().collect()}
    assert counts == {("r1", "A"): 400, ("r1", "B"): 700, ("r2", "A"): 400}
    # a run restricted to some regions (score.only_regions) replaces those and leaves the others
    cfg3 = make_cfg(overrides=["run.id=r1", "score.only_regions=[B]"])
    scoring.score_regions(spark, cfg3, model, 0.9, "v2", regions.where("region = 'B'"), scored_at=SCORED_AT)
    versions = {(r["region"], r["model_version"]) for r in read_scores(spark, cfg1).where("run_id = 'r1'")
                .select("region", "model_version").distinct().collect()}
    assert versions == {("A", "v1"), ("B", "v2")}


def test_region_summary_matches_hand_count(spark):
    rows = [("r1", "A", 0.9, 1, "high"), ("r1", "A", 0.5, 0, "medium"), ("r1", "A", 0.2, 0, "low"),
            ("r1", "A", 0.7, 1, "high"), ("r1", "B", 0.6, 1, "high")]
    scores = spark.createDataFrame(rows, "run_id string, region string, probability double, prediction int, "
                                         "tier string").withColumn("model_version", F.lit("v1")) \
        .withColumn("scored_at", F.lit(SCORED_AT))
    got = {r["region"]: r.asDict() for r in scoring.region_summary(scores, 0.5, ["A", "B", "C"]).collect()}
    assert got["A"]["users"] == 4 and got["A"]["prospects"] == 2
    assert got["A"]["prospect_share"] == pytest.approx(0.5)
    assert got["A"]["mean_probability"] == pytest.approx(2.3 / 4)
    assert got["A"]["expected_switchers"] == pytest.approx(2.3)
    assert (got["A"]["high"], got["A"]["medium"], got["A"]["low"]) == (2, 1, 1)
    assert got["B"]["users"] == 1 and got["B"]["prospect_share"] == 1.0
    assert got["C"]["users"] == 0 and got["C"]["prospects"] == 0 and got["C"]["prospect_share"] == 0.0
    assert {r["threshold"] for r in got.values()} == {0.5}


def test_unseen_category_values_still_score(spark, make_cfg, model, regions):
    cfg = make_cfg(overrides=["run.id=r1"])
    odd = regions.where("region = 'A'").withColumn("X5", F.lit("未知用户")).withColumn("X1", F.lit("?"))
    scoring.score_regions(spark, cfg, model, 0.5, "v1", odd, scored_at=SCORED_AT)
    out = read_scores(spark, cfg)
    assert out.count() == 400
    assert out.where(F.col("probability").isNull() | F.isnan("probability")).count() == 0


def test_region_with_missing_column_is_refused_before_any_write(spark, make_cfg, model, regions):
    cfg = make_cfg(overrides=["run.id=r1"])
    broken = regions.withColumn("X2", F.when(F.col("region") == "A", F.col("X2")))  # B's file lacked X2
    with pytest.raises(JobError, match=r"region B: column\(s\) \['X2'\] missing"):
        scoring.score_regions(spark, cfg, model, 0.5, "v1", broken)
    assert not tables.is_delta(spark, cfg.table("gold_scores"))
    with pytest.raises(JobError, match=r"\['X36'\] missing in every region"):
        scoring.score_regions(spark, cfg, model, 0.5, "v1", regions.drop("X36"))
    assert not tables.is_delta(spark, cfg.table("gold_scores"))


def test_empty_regions_give_empty_result(spark, make_cfg, model, regions):
    cfg = make_cfg(overrides=["run.id=r1"])
    res = scoring.score_regions(spark, cfg, model, 0.5, "v1", regions.limit(0))
    assert res["regions"] == {} and res["rows"] == 0
    assert not tables.is_delta(spark, cfg.table("gold_scores"))


# ---------------------------------------------------------------------------------------------
# The whole stage with a stub registry
# ---------------------------------------------------------------------------------------------
def install_registry(monkeypatch, load):
    import prospects.ml

    stub = types.ModuleType("prospects.ml.registry")
    stub.load = load
    monkeypatch.setitem(sys.modules, "prospects.ml.registry", stub)
    monkeypatch.setattr(prospects.ml, "registry", stub, raising=False)


def write_bronze(spark, cfg, regions, train_n=1500):
    train = bronze(g.with_labels(g.users(spark, 1, train_n, 7, 1), 7, -2.2))
    tables.replace_partition(train, cfg.table("bronze_users"), where={"run_id": "r1"}, partition_by=["run_id"])
    tables.replace_partition(regions, cfg.table("bronze_regions"), where={"run_id": "r1"},
                             partition_by=["run_id", "region"])


def registered(model, threshold=0.3):
    return types.SimpleNamespace(version="7", model=model, threshold=threshold, model_type="logistic_regression",
                                 features=["X1", "X5", *NUMS], row={"version": "7"})


@pytest.fixture(scope="module")
def stage_run(spark, model, regions, tmp_path_factory):
    """The whole stage run once on A (400) + B (700) users with a stub registry: (cfg, result)."""
    from prospects.core.config import load_config

    root = tmp_path_factory.mktemp("stage")
    paths = {"raw": root / "raw", "lakehouse": root / "lakehouse", "models": root / "lakehouse" / "models",
             "reports": root / "lakehouse" / "reports"}
    settings = {"paths": {k: str(v) for k, v in paths.items()},
                "score": {"campaign_budget": 25, "regions": ["A", "B", "Z"]}}
    cfg = load_config(overrides=["run.id=2026-01-31"], extra=settings)
    write_bronze(spark, cfg, regions)
    with pytest.MonkeyPatch.context() as mp:
        install_registry(mp, lambda spark, cfg, version=None: registered(model))
        res = scoring.run(cfg, spark)
        yield cfg, res, root


def test_run_writes_every_output(spark, stage_run, model, monkeypatch):
    cfg, res, _ = stage_run
    scores = tables.read(spark, cfg.table("gold_scores"))
    hand = {r["region"]: (r["n"], r["p"]) for r in scores.groupBy("region").agg(
        F.count("*").alias("n"), F.sum((F.col("probability") > 0.3).cast("int")).alias("p")).collect()}
    assert {k: (v["users"], v["prospects"]) for k, v in res["regions"].items()} == {**hand, "Z": (0, 0)}
    assert res["model_version"] == "7" and res["threshold"] == 0.3
    summary = {r["region"]: r for r in tables.read(spark, cfg.table("gold_region_summary")).collect()}
    assert summary["A"]["users"] == 400 and summary["Z"]["users"] == 0
    # segment profiles: each dimension's users add up to the region's users
    prof = tables.read(spark, cfg.table("gold_segments"))
    sums = {(r["region"], r["dimension"]): r["u"] for r in prof.groupBy("region", "dimension")
            .agg(F.sum("users").alias("u")).collect()}
    assert set(sums.values()) == {400, 700} and len(sums) == 2 * 6
    actions = tables.read(spark, cfg.table("gold_actions"))
    assert set(r["action_name"] for r in actions.collect()) == {
        "vip4_value", "vip3_discount", "rural_family_video", "terminal_offer", "(none)"}
    vip4 = actions.where("region = 'A' AND action_name = 'vip4_value'").first()
    a_users = tables.read(spark, cfg.table("bronze_regions")).where("region = 'A'")
    hand_vip4 = a_users.join(scores.where("region = 'A'"), "user_id").where("X3 = 4 AND prediction = 1").count()
    assert vip4["prospects"] == hand_vip4
    campaign = tables.read(spark, cfg.table("gold_campaign"))
    assert {r["region"]: r["count"] for r in campaign.groupBy("region").count().collect()} == {"A": 25, "B": 25}
    assert campaign.agg(F.max("rank")).first()[0] == 25
    drift = tables.read(spark, cfg.table("gold_drift"))
    assert drift.select("region").distinct().count() == 2
    assert drift.where(F.col("psi").isNull()).count() == 0
    figs = res["figures"]
    assert {Path(p).name for p in figs} == {"regions.png", "segments_A.png", "segments_B.png", "drift.png"}
    assert all(Path(p).stat().st_size > 10_000 for p in figs)
    # rerun: same outputs, no duplicates
    install_registry(monkeypatch, lambda spark, cfg, version=None: registered(model))
    scoring.run(cfg, spark)
    assert tables.read(spark, cfg.table("gold_scores")).count() == 1100
    assert tables.read(spark, cfg.table("gold_region_summary")).count() == 3
    assert tables.read(spark, cfg.table("gold_campaign")).count() == 50


def test_run_without_model_is_a_clear_error(spark, make_cfg, regions, monkeypatch):
    cfg = make_cfg(overrides=["run.id=r1"])
    write_bronze(spark, cfg, regions.limit(10), train_n=200)

    def no_model(spark, cfg, version=None):
        raise FileNotFoundError("no Delta table at .../models/registry")

    install_registry(monkeypatch, no_model)
    with pytest.raises(JobError, match="no registered model"):
        scoring.run(cfg, spark)
    assert not tables.is_delta(spark, cfg.table("gold_scores"))


def test_run_on_empty_region_table_reports_zero_users(spark, make_cfg, model, regions, monkeypatch):
    cfg = make_cfg(overrides=["run.id=r1", "score.regions=[A, B]"])
    write_bronze(spark, cfg, regions.limit(0), train_n=200)
    install_registry(monkeypatch, lambda spark, cfg, version=None: registered(model))
    res = scoring.run(cfg, spark)
    assert res["users"] == 0 and "warning" in res
    assert {k: v["users"] for k, v in res["regions"].items()} == {"A": 0, "B": 0}
    assert not tables.is_delta(spark, cfg.table("gold_scores"))


def test_job_exit_code_without_model(spark, make_cfg, tmp_path, capsys):
    from jobs import score as job

    code = job.main(["--set", f"paths.lakehouse={tmp_path}/lh", "--set", "spark.master=local[2]",
                     "--run-id", "r1"])
    assert code == 1
    assert "score failed" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Notebook
# ---------------------------------------------------------------------------------------------
def test_regions_notebook_runs(stage_run, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager

    _, _, root = stage_run
    specs = KernelSpecManager().find_kernel_specs()
    spec_python = Path(specs.get("python3", "")) / "kernel.json"
    if "python3" not in specs or str(Path(sys.prefix)) not in spec_python.read_text():
        import subprocess
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
                       check=True, capture_output=True)
    overrides = ";".join([f"paths.lakehouse={root}/lakehouse", f"paths.reports={root}/lakehouse/reports",
                          "spark.master=local[1]", "spark.driver_memory=1g"])
    monkeypatch.setenv("PROSPECTS_NOTEBOOK_OVERRIDES", overrides)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "lib"), str(ROOT)]))
    nb = nbformat.read(ROOT / "notebooks" / "regions.ipynb", as_version=4)
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=600,
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "region" in text and "400" in text and "700" in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 3
