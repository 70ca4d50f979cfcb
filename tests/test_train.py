"""Training job on generated users: floors against the oracle, registry rows, reload, bad input."""

from __future__ import annotations

import json
import re

import pytest
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from prospects.core import tables
from prospects.core.config import join_path, load_config
from prospects.core.errors import RegistryError, TrainingInputError
from prospects.ml import drift, registry, train
from prospects.ml import evaluation as ev
from prospects.ml import features as fe
from prospects.synthetic import generator as g
from tests.conftest import deep_merge, tmp_settings

N_USERS = 10_000
SMALL_GRIDS = {
    "save_candidates": False,  # only the chosen model is saved (faster); the default saves all four
    "models": {
        "logistic_regression": {"regParam": [0.0], "maxIter": [50]},
        "decision_tree": {"maxDepth": [4, 6]},
        "random_forest": {"maxDepth": [8], "numTrees": [30]},
        "gbt": {"maxDepth": [4], "maxIter": [20]},
    },
}


def bronze_frame(spark, n: int, seed: int = 7):
    """Generated users as a bronze-shaped frame (+ the oracle probability, kept aside)."""
    df = g.with_labels(g.users(spark, 1, n, seed=seed, partitions=2), seed=seed, intercept=-2.2)
    return df.drop("product_no", "_eta").localCheckpoint()


def write_inputs(spark, cfg, df, run_id: str = "r1") -> None:
    """Write bronze_users (as the ingest contract) and the generator's oracle file."""
    df.select("user_id", "probability").write.mode("overwrite").parquet(
        join_path(cfg.path("raw"), cfg.get("generator.oracle_file")))
    bronze = (df.drop("probability").withColumn("run_id", F.lit(run_id))
              .withColumn("ingested_at", F.current_timestamp()))
    tables.replace_partition(bronze, cfg.table("bronze_users"), where={"run_id": run_id}, partition_by=["run_id"])


@pytest.fixture(scope="module")
def trained(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    cfg = load_config(extra=deep_merge(tmp_settings(root), {"train": SMALL_GRIDS}), overrides=["run.id=t1"])
    df = bronze_frame(spark, N_USERS)
    write_inputs(spark, cfg, df)
    summary = train.run(cfg, spark)
    return cfg, summary, df


def test_models_beat_the_floor_set_by_the_oracle(trained):
    _, summary, _ = trained
    oracle = summary["oracle_auc"]
    assert oracle is not None and 0.75 < oracle < 0.9
    models = summary["models"]
    assert set(models) == {"logistic_regression", "decision_tree", "random_forest", "gbt"}
    best_tree = max(models["random_forest"]["test_auc"], models["gbt"]["test_auc"])
    assert best_tree >= oracle - 0.05, (best_tree, oracle)
    for name, m in models.items():
        assert m["test_auc"] > 0.7, (name, m)  # a broken pipeline (shuffled features, no signal) is ~0.5


def test_weighted_logistic_regression_predicts_switchers(trained, spark):
    cfg, _, _ = trained
    row = registry.read_registry(spark, cfg).where(F.col("model_type") == "logistic_regression").first()
    # the study's unweighted LR predicted nobody; weighted, at the chosen threshold it finds switchers
    assert row["test_recall"] > 0.3
    assert row["metrics"]["test_predicted_positive_share"] > 0.05


def test_probabilities_are_on_the_population_scale(trained, spark):
    """Trained with balanced weights, the saved model's probabilities are prior-corrected: their
    mean is the switch rate (not about 0.5), so summing them counts expected switchers."""
    cfg, summary, df = trained
    loaded = registry.load(spark, cfg)
    assert isinstance(loaded.model.stages[-2], fe.PriorCorrection)
    row = loaded.model.transform(df.drop("probability")).agg(
        F.avg(vector_to_array("probability")[1]).alias("p"), F.avg("label").alias("rate")).first()
    assert abs(row["p"] - row["rate"]) < 0.03, row


def test_every_saved_model_decides_at_its_registered_threshold(trained, spark):
    """The threshold is saved with the model: ``prediction`` is p > threshold for every trainer."""
    cfg, summary, df = trained
    for r in registry.read_registry(spark, cfg).where(F.col("model_path").isNotNull()).collect():
        model = PipelineModel.load(r["model_path"])
        assert isinstance(model.stages[-1], fe.Decision), r["model_type"]
        assert model.stages[-1].getThreshold() == pytest.approx(r["threshold"])
        out = model.transform(df.drop("probability", "prediction"))
        wrong = out.where((vector_to_array("probability")[1] > r["threshold"]).cast("double")
                          != F.col("prediction")).count()
        assert wrong == 0, (r["model_type"], wrong)


def test_the_drift_reference_is_saved_with_the_model_version(trained, spark):
    cfg, summary, _ = trained
    ref = drift.Reference.load(spark, drift.reference_path(cfg, summary["version"]))
    assert ref is not None and set(ref.bins) == set(fe.feature_codes(cfg))
    assert all(sum(ref.counts[f].values()) == sum(ref.counts["X2"].values()) for f in ref.bins)
    assert ref.bins["X2"]["kind"] == "numeric" and len(ref.bins["X2"]["edges"]) >= 5


def test_registry_rows_are_complete(trained, spark):
    cfg, summary, _ = trained
    reg = registry.read_registry(spark, cfg).collect()
    assert len(reg) == 4
    assert sum(r["is_chosen"] for r in reg) == 1
    chosen = next(r for r in reg if r["is_chosen"])
    assert chosen["model_type"] == summary["chosen"] and chosen["status"] == "chosen"
    assert chosen["validation_score"] == max(r["validation_score"] for r in reg)
    for r in reg:
        d = r.asDict()
        nulls = [k for k, v in d.items() if v is None]
        assert nulls == ([] if d["is_chosen"] else ["model_path"]), nulls
        assert re.fullmatch(r"v0001-t1", d["version"]) and d["run_id"] == "t1" and d["use_case"] == "fiveg"
        assert d["rows_train"] + d["rows_validation"] + d["rows_test"] == N_USERS
        assert d["training_table"] == cfg.table("bronze_users") and d["training_table_version"] == 0
        assert d["training_run_id"] == "r1"
        assert len(d["features"]) == summary["features"] and "X1" in d["features"]
        assert set(d["dropped_features"]) == set(summary["dropped_by_correlation"])
        assert {"test_areaUnderROC", "test_lift_top10", "test_capture_top20", "oracle_auc"} <= set(d["metrics"])
        assert 0 < d["threshold"] < 1 and d["threshold_rule"] == "f1"
        assert d["params"]
        if d["is_chosen"]:
            assert d["model_path"].endswith(f"{d['version']}/{d['model_type']}")
        assert d["metrics"]["test_lift_top10"] > 1.5
    metrics = tables.read(spark, cfg.table("model_metrics"))
    assert metrics.where("split = 'grid' AND model_type = 'decision_tree'").count() == 2
    curves = tables.read(spark, cfg.table("model_curves"))
    assert {r[0] for r in curves.select("model_type").distinct().collect()} == {
        "logistic_regression", "decision_tree", "random_forest", "gbt", "oracle"}


def test_reloaded_model_gives_the_registered_scores(trained, spark):
    cfg, summary, df = trained
    loaded = registry.load(spark, cfg)
    assert loaded.version == summary["version"] and loaded.model_type == summary["chosen"]
    # the same deterministic split, scored by the reloaded model, reproduces the registered test AUC
    parts = train.split(df.drop("probability"), "label", "user_id", cfg.get("train.fractions"),
                        int(cfg.get("train.seed")))
    test = parts.where(F.col(train.SPLIT_COL) == "test").drop(train.SPLIT_COL)
    scored = loaded.model.transform(test)
    assert {"user_id", "probability", "prediction"} <= set(scored.columns)
    s = ev.scored(scored, "label").cache()
    assert s.count() == loaded.row["rows_test"]
    assert ev.auc(s) == pytest.approx(loaded.row["test_auc"], abs=1e-12)
    # prediction follows the registered threshold: p > t
    wrong = (scored.select(vector_to_array("probability")[1].alias("p"), "prediction")
             .where((F.col("p") > loaded.threshold) != (F.col("prediction") == 1.0)).count())
    assert wrong == 0
    # reloading again gives identical probabilities, and scoring works without the label column
    again = registry.load(spark, cfg, version=summary["version"])
    a = scored.select("user_id", vector_to_array("probability").alias("p")).orderBy("user_id").collect()
    b = (again.model.transform(test.drop("label")).select("user_id", vector_to_array("probability").alias("p"))
         .orderBy("user_id").collect())
    assert a == b


def test_load_a_named_candidate_and_clear_errors(trained, spark):
    cfg, summary, _ = trained
    named = registry.load(spark, cfg, version="t1", model_type=summary["chosen"])
    assert named.model_type == summary["chosen"] and named.version == summary["version"]
    other = next(m for m in summary["models"] if m != summary["chosen"])
    with pytest.raises(RegistryError, match="was not saved"):
        registry.load(spark, cfg, model_type=other)
    with pytest.raises(RegistryError, match="versions: \\['v0001-t1'\\]"):
        registry.load(spark, cfg, version="v0099-x")


def test_split_is_stratified_and_deterministic(spark):
    rows = [(i, 1 if i % 5 == 0 else 0) for i in range(1, 4001)]
    df = spark.createDataFrame(rows, "user_id long, label int")
    fr = {"train": 0.7, "validation": 0.15, "test": 0.15}
    a = train.split(df, "label", "user_id", fr, 3)
    counts = {(r[0], r[1]): r[2] for r in a.groupBy("_split", "label").count().collect()}
    for part, share in fr.items():
        assert counts[(part, 1)] == pytest.approx(800 * share, abs=8)
        assert counts[(part, 0)] == pytest.approx(3200 * share, abs=16)
    b = train.split(df, "label", "user_id", fr, 3)
    assert a.orderBy("user_id").collect() == b.orderBy("user_id").collect()
    with pytest.raises(ValueError, match="summing to 1"):
        train.split(df, "label", "user_id", {"train": 0.9, "validation": 0.2, "test": 0.1}, 3)


# -- bad input: a clear error before any fitting ------------------------------------------------
def _tiny(spark, label_values=(0, 1, 0, 1)):
    df = g.users(spark, 1, len(label_values), seed=1, partitions=1).drop("product_no", "_eta").localCheckpoint()
    labels = spark.createDataFrame([(i + 1, v) for i, v in enumerate(label_values)], "user_id long, label int")
    return df.join(labels, "user_id")


def _expect_error(spark, cfg, df, match):
    with pytest.raises(TrainingInputError, match=match):
        train.train(cfg, spark, df, {"table": "bronze/users"})
    assert not tables.is_delta(spark, cfg.table("model_registry"))


def test_no_label_column(spark, make_cfg):
    cfg = make_cfg()
    _expect_error(spark, cfg, _tiny(spark).drop("label"), "bronze/users: no label column 'label'")


def test_single_class(spark, make_cfg):
    cfg = make_cfg()
    _expect_error(spark, cfg, _tiny(spark, (0, 0, 0)), "single class \\(0\\) in 3 rows")


def test_unknown_column(spark, make_cfg):
    cfg = make_cfg()
    _expect_error(spark, cfg, _tiny(spark).withColumn("X99", F.lit(1.0)),
                  "\\['X99'\\] are not in the column dictionary")


def test_label_values_other_than_0_1(spark, make_cfg):
    cfg = make_cfg()
    _expect_error(spark, cfg, _tiny(spark, (0, 1, 2)), "holds values \\['2'\\]")


def test_missing_feature_column(spark, make_cfg):
    cfg = make_cfg()
    _expect_error(spark, cfg, _tiny(spark).drop("X26"), "\\['X26'\\] of the dictionary are absent")


def test_versions_reserved_at_once_are_distinct_and_a_rerun_keeps_its_own(spark, make_cfg):
    """Trainings reserving a version at the same moment get different numbers (Delta lets one MERGE
    commit, the other picks again); a re-run of a run id gets its number back."""
    from concurrent.futures import ThreadPoolExecutor

    cfgs = [make_cfg(overrides=[f"run.id=2026-10-0{i}"]) for i in range(1, 5)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda c: registry.next_version(spark, c), cfgs))
    assert sorted(n for _, n in got) == [1, 2, 3, 4]
    assert [v for v, _ in got] == [registry.version_name(n, c.run_id) for (_, n), c in zip(got, cfgs)]
    assert registry.next_version(spark, cfgs[2]) == got[2]                       # the same run id again
    assert registry.next_version(spark, make_cfg(overrides=["run.id=backfill x"]))[1] == 5
    rows = tables.read(spark, cfgs[0].table("model_versions")).collect()
    assert len(rows) == 5 and len({r["version_number"] for r in rows}) == 5


def test_cross_validated_tuning_and_a_top_share_threshold(spark, make_cfg):
    """``train.tuning: cv`` ranks the grid by Spark's CrossValidator; ``threshold_rule: top_share``
    flags about that share of the validation users, and so of the test users."""
    cfg = make_cfg(overrides=["run.id=cv1", "train.tuning=cv", "train.folds=2", "train.threshold_rule=top_share",
                              "train.threshold_top_share=0.25", "train.model_types=[logistic_regression]",
                              "train.models.logistic_regression={regParam: [0.0, 0.1], maxIter: [30]}"])
    write_inputs(spark, cfg, bronze_frame(spark, 4000, seed=11), run_id="cv1")
    summary = train.run(cfg, spark)
    metrics = {(r["split"], r["metric"], r["params"]): r["value"]
               for r in tables.read_run(spark, cfg.table("model_metrics"), "cv1")[0].collect()}
    grid = {p: v for (split, _, p), v in metrics.items() if split == "grid"}
    assert len(grid) == 2 and all(0.6 < v < 1 for v in grid.values())     # CrossValidator's mean AUCs
    best = max(grid, key=grid.get)
    assert summary["models"]["logistic_regression"]["params"] == json.loads(best)
    flagged = metrics[("test", "predicted_positive_share", None)]
    assert 0.18 < flagged < 0.32, flagged
    row = registry.read_registry(spark, cfg).where(F.col("run_id") == "cv1").first()
    assert row["threshold_rule"] == "top_share"
