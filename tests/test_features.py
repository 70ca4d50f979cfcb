"""Feature stages on tiny DataFrames: hand-computed results and save/load round trips."""

from __future__ import annotations

import json
import math

import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.functions import vector_to_array
from pyspark.ml.util import DefaultParamsReader, DefaultParamsWriter
from pyspark.sql import functions as F
from pyspark.sql import types as T

from prospects.core.errors import ConfigError
from prospects.ml import features as fe
from prospects.ml import persistence

NUM = T.StructType([T.StructField("id", T.LongType()), T.StructField("a", T.DoubleType()),
                    T.StructField("b", T.DoubleType()), T.StructField("c", T.DoubleType())])


def _rows(df, order="id"):
    return [tuple(r) for r in df.orderBy(order).collect()]


def test_monthly_means_ignore_missing_months_and_round_trip(spark, tmp_path):
    df = spark.createDataFrame([(1, 1.0, 2.0, 6.0), (2, None, 4.0, float("nan")), (3, None, None, None)], NUM)
    stage = fe.MonthlyMeans(groups={"m": ["a", "b", "c"]})
    out = stage.transform(df)
    assert out.columns == ["id", "m"]
    assert _rows(out) == [(1, 3.0), (2, 4.0), (3, None)]
    stage.save(str(tmp_path / "mm"))
    loaded = fe.MonthlyMeans.load(str(tmp_path / "mm"))
    assert loaded.getGroups() == {"m": ["a", "b", "c"]} and loaded.getDropInputs() is True
    assert _rows(loaded.transform(df)) == _rows(out)


def _jobs_of(spark, name, action):
    sc = spark.sparkContext
    sc.setJobGroup(name, name)
    try:
        out = action()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    return out, len(sc.statusTracker().getJobIdsForGroup(name))


def test_custom_stages_persist_as_pyspark_ml_metadata_without_a_spark_job(spark, tmp_path):
    stage = fe.MonthlyMeans(groups={"m": ["a", "b", "c"]}, dropInputs=False)
    path = str(tmp_path / "mm")
    _, save_jobs = _jobs_of(spark, "fileparams-save", lambda: stage.save(path))
    loaded, load_jobs = _jobs_of(spark, "fileparams-load", lambda: fe.MonthlyMeans.load(path))
    assert (save_jobs, load_jobs) == (0, 0)
    assert [p.name for p in (tmp_path / "mm" / "metadata").iterdir()] == ["part-00000"]
    assert loaded.uid == stage.uid and loaded.getGroups() == {"m": ["a", "b", "c"]} and not loaded.getDropInputs()
    # the layout stays pyspark.ml's: its own reader loads these stages, and ours loads its writer's
    stock = DefaultParamsReader(fe.MonthlyMeans).load(path)
    assert stock.uid == stage.uid and stock.getGroups() == stage.getGroups()
    DefaultParamsWriter(stage).save(str(tmp_path / "stock"))
    assert fe.MonthlyMeans.load(str(tmp_path / "stock")).getGroups() == stage.getGroups()
    with pytest.raises(FileExistsError, match="overwrite"):
        stage.save(path)
    fe.MonthlyMeans(groups={"n": ["a"]}).write().overwrite().save(path)
    assert fe.MonthlyMeans.load(path).getGroups() == {"n": ["a"]}


def test_models_are_saved_and_loaded_in_pyspark_ml_layout_with_fewer_jobs(spark, tmp_path):
    df = spark.createDataFrame([(1, 1.0, 2.0, 0.6), (2, 3.0, 4.0, 0.1)], NUM)
    model = Pipeline(stages=[fe.MonthlyMeans(groups={"m": ["a", "b"]}, dropInputs=False),
                             VectorAssembler(inputCols=["m", "c"], outputCol="v"),
                             fe.Decision(threshold=0.3, probabilityCol="c")]).fit(df)
    ours, stock = str(tmp_path / "ours"), str(tmp_path / "stock")
    _, our_save = _jobs_of(spark, "model-save-ours", lambda: persistence.save_model(model, ours))
    _, stock_save = _jobs_of(spark, "model-save-stock", lambda: model.write().save(stock))
    loaded, our_load = _jobs_of(spark, "model-load-ours", lambda: persistence.load_model(ours))
    _, stock_load = _jobs_of(spark, "model-load-stock", lambda: PipelineModel.load(stock))
    # only the built-in stage's own writer and reader run jobs
    assert our_save < stock_save and our_load < stock_load, (our_save, stock_save, our_load, stock_load)
    assert our_save == 1, our_save
    want = _rows(model.transform(df).drop("v"))
    assert loaded.uid == model.uid and [s.uid for s in loaded.stages] == [s.uid for s in model.stages]
    assert _rows(loaded.transform(df).drop("v")) == want == [(1, 1.0, 2.0, 0.6, 1.5, 1.0), (2, 3.0, 4.0, 0.1, 3.5, 0.0)]
    assert _rows(PipelineModel.load(ours).transform(df).drop("v")) == want     # pyspark reads our layout
    assert _rows(persistence.load_model(stock).transform(df).drop("v")) == want  # and we read pyspark's
    persistence.save_model(model, ours)                                           # a save replaces
    assert _rows(persistence.load_model(ours).transform(df).drop("v")) == want
    # a pipeline of Spark's stages only is saved by the JVM, as model.write() would
    java = Pipeline(stages=[VectorAssembler(inputCols=["a", "c"], outputCol="v")]).fit(df)
    persistence.save_model(java, str(tmp_path / "java"))
    assert persistence.read_metadata(spark, str(tmp_path / "java"))["class"] == "org.apache.spark.ml.PipelineModel"
    assert persistence.load_model(str(tmp_path / "java")).transform(df).count() == 2


def test_monthly_means_missing_input_is_a_clear_error(spark):
    df = spark.createDataFrame([(1, 1.0, 2.0, 6.0)], NUM)
    with pytest.raises(ValueError, match="group 'm' needs columns \\['z'\\]"):
        fe.MonthlyMeans(groups={"m": ["a", "z"]}).transform(df)


def test_rule_imputer_rules_and_round_trip(spark, tmp_path):
    schema = T.StructType([T.StructField("id", T.LongType()), T.StructField("s", T.StringType()),
                           T.StructField("n", T.LongType()), T.StructField("x", T.DoubleType()),
                           T.StructField("z", T.DoubleType()), T.StructField("k", T.DoubleType())])
    df = spark.createDataFrame([
        (1, "a", 1, 1.0, 5.0, None),
        (2, "b", 1, 2.0, None, 2.0),
        (3, "b", 7, float("nan"), None, 4.0),
        (4, None, None, 10.0, 1.0, None),
        (5, "b", 3, None, None, 6.0),
    ], schema)
    rules = {"s": "mode", "n": "mode", "x": "median", "z": "zero", "k": "mean"}
    model = fe.RuleImputer(rules=rules).fit(df)
    # mode of s = b, mode of n = 1, median of x over {1, 2, 10} = 2, zero, mean of k = 4
    assert model.getSurrogates() == {"s": "b", "n": 1, "x": 2.0, "z": 0, "k": 4.0}
    out = model.transform(df)
    assert _rows(out) == [(1, "a", 1, 1.0, 5.0, 4.0), (2, "b", 1, 2.0, 0.0, 2.0), (3, "b", 7, 2.0, 0.0, 4.0),
                          (4, "b", 1, 10.0, 1.0, 4.0), (5, "b", 3, 2.0, 0.0, 6.0)]
    assert out.schema == df.schema  # types kept
    model.save(str(tmp_path / "imp"))
    loaded = fe.RuleImputerModel.load(str(tmp_path / "imp"))
    assert loaded.getSurrogates() == model.getSurrogates() and loaded.getRules() == rules
    assert _rows(loaded.transform(df)) == _rows(out)
    est_path = str(tmp_path / "imp_est")
    fe.RuleImputer(rules=rules).save(est_path)
    assert fe.RuleImputer.load(est_path).getRules() == rules


def test_rule_imputer_medians_from_a_sample(spark):
    """With sampleRows, medians come from a random sample (close to the exact one); modes from every row."""
    n = 20000
    df = spark.range(n).select(
        (F.col("id") % 1000).cast("double").alias("x"),                        # median 499.5 (exact 499 or 500)
        F.when(F.col("id") % 10 < 3, F.lit(7)).otherwise(F.col("id") % 10).cast("long").alias("m"))  # mode 7
    rules = {"x": "median", "m": "mode"}
    exact = fe.RuleImputer(rules=rules).fit(df).getSurrogates()
    sampled = fe.RuleImputer(rules=rules, sampleRows=2000, seed=3).fit(df).getSurrogates()
    assert exact["x"] in (499.0, 500.0) and sampled["x"] != exact["x"]           # a sample, not every row
    assert abs(sampled["x"] - exact["x"]) < 50                                  # ~2.2% of ranks = 3 sigma
    assert sampled["m"] == exact["m"] == 7
    # a sample bound above the rows: every row, the same values
    assert fe.RuleImputer(rules=rules, sampleRows=n + 1).fit(df).getSurrogates() == exact
    assert fe.RuleImputer(rules=rules, sampleRows=2000).getOrDefault("sampleRows") == 2000


def test_rule_imputer_rejects_median_of_text(spark):
    df = spark.createDataFrame([(1, "a")], "id long, s string")
    with pytest.raises(ValueError, match="text column 's' cannot be imputed by median"):
        fe.RuleImputer(rules={"s": "median"}).fit(df)


def test_drop_sparse_rows_only_on_labelled_data_and_round_trip(spark, tmp_path):
    df = spark.createDataFrame([(1, 1.0, 2.0, 3.0), (2, None, 2.0, 3.0), (3, None, float("nan"), 3.0),
                                (4, None, None, None)], NUM)
    stage = fe.DropSparseRows(inputCols=["a", "b", "c"], maxMissing=1, onlyWithCol="label")
    labelled = df.withColumn("label", F.lit(0))
    assert [r.id for r in stage.transform(labelled).orderBy("id").collect()] == [1, 2]
    assert stage.transform(df).count() == 4  # scoring input (no label): every user kept
    stage.save(str(tmp_path / "dsr"))
    loaded = fe.DropSparseRows.load(str(tmp_path / "dsr"))
    assert loaded.getOrDefault(loaded.maxMissing) == 1 and loaded.getInputCols() == ["a", "b", "c"]
    assert [r.id for r in loaded.transform(labelled).orderBy("id").collect()] == [1, 2]
    assert fe.DropSparseRows(inputCols=["a"]).transform(labelled).count() == 4  # default -1: off


def test_correlation_filter_drops_by_the_shared_rule_and_round_trips(spark, tmp_path):
    # b = 2a (r = 1); c is nearly a but noisier; d is unrelated
    rows = [(i, float(i), 2.0 * i, float(i) + (3.0 if i % 2 else -3.0), float((i * 7) % 5)) for i in range(20)]
    df = spark.createDataFrame(rows, "id long, a double, b double, c double, d double")
    df = VectorAssembler(inputCols=["a", "b", "c", "d"], outputCol="v").transform(df)
    est = fe.CorrelationFilter(inputCol="v", outputCol="kept", threshold=0.95, inputNames=["a", "b", "c", "d"])
    model = est.fit(df)
    # a-b (r = 1) first: a and b have the same mean |r| -> tie -> the later column (b) is dropped;
    # then a-c (r ~ 0.96): c has the lower mean |r|... both a and c are compared on mean |r|
    dropped = model.getDroppedNames()
    assert dropped[0] == "b"
    assert "d" not in dropped
    kept = model.getKeptNames()
    assert kept == [n for n in ["a", "b", "c", "d"] if n not in dropped]
    out = model.transform(df)
    assert len(out.select("kept").first()[0]) == len(kept)
    model.save(str(tmp_path / "cf"))
    loaded = fe.CorrelationFilterModel.load(str(tmp_path / "cf"))
    assert loaded.getKeptNames() == kept and loaded.getDroppedNames() == dropped
    assert json.loads(loaded.getOrDefault(loaded.pairs)) == json.loads(model.getOrDefault(model.pairs))
    a = out.select("id", vector_to_array("kept").alias("k")).orderBy("id").collect()
    b = loaded.transform(df).select("id", vector_to_array("kept").alias("k")).orderBy("id").collect()
    assert a == b


def test_correlation_filter_ignores_constant_columns(spark):
    df = spark.createDataFrame([(float(i), 1.0, float(i % 3)) for i in range(10)], "a double, k double, b double")
    df = VectorAssembler(inputCols=["a", "k", "b"], outputCol="v").transform(df)
    model = fe.CorrelationFilter(inputCol="v", outputCol="o", threshold=0.8, inputNames=["a", "k", "b"]).fit(df)
    assert model.getDroppedNames() == []


# -- the whole pipeline, built from conf -------------------------------------------------------
def _tiny_bronze(spark, cfg, n=400, seed=3):
    from prospects.synthetic import generator as g

    df = g.with_labels(g.users(spark, 1, n, seed=seed, partitions=2), seed=seed, intercept=-2.2)
    return df.drop("product_no", "_eta", "probability").localCheckpoint()


def test_feature_pipeline_from_conf_round_trip_and_unseen_values(spark, make_cfg, tmp_path):
    cfg = make_cfg(extra={"features": {"max_missing": 30, "correlation_threshold": 0.9}})
    df = _tiny_bronze(spark, cfg)
    model = fe.build_feature_pipeline(cfg).fit(df)
    names = fe.feature_names(model)
    # monthly triples replaced by their means, in dictionary order; the correlation filter drops
    # one column of each pair (e.g. the 3-month ARPU mean vs the delivered average X15)
    layout = [c for c, _, _ in fe.feature_layout(cfg)]
    dropped = {d["drop"] for d in fe.dropped_by_correlation(model) if d["drop"]}
    assert dropped and names == [c for c in layout if c not in dropped]
    assert not {"X6", "X7", "X8"} & set(layout) and layout.index("arpu") == 5
    assert len(dropped & {"arpu", "X15"}) == 1
    out = model.transform(df)
    assert out.select(F.size(vector_to_array("features")).alias("n")).first()["n"] == len(names)
    mins = out.select(F.array_min(vector_to_array("features")).alias("lo"),
                      F.array_max(vector_to_array("features")).alias("hi")).agg(F.min("lo"), F.max("hi")).first()
    assert mins[0] >= 0.0 and mins[1] <= 1.0  # min-max scaled, no NaN
    path = str(tmp_path / "pipe")
    model.write().overwrite().save(path)
    loaded = PipelineModel.load(path)
    assert [type(s).__name__ for s in loaded.stages] == [type(s).__name__ for s in model.stages]
    a = out.select("user_id", vector_to_array("features").alias("f")).orderBy("user_id").collect()
    b = loaded.transform(df).select("user_id", vector_to_array("features").alias("f")).orderBy("user_id").collect()
    assert a == b
    # scoring input: no label, an unseen segment and a missing gender must not fail
    scoring = df.drop("label").limit(3).withColumn("X5", F.lit("新用户")).withColumn("X1", F.lit(None).cast("string"))
    got = loaded.transform(scoring).select(vector_to_array("features").alias("f")).collect()
    assert len(got) == 3 and all(not any(math.isnan(v) for v in r.f) for r in got)


def test_fit_transform_learns_what_pipeline_fit_learns(spark, make_cfg):
    # fit on the "train" rows only, transform every row, the row-wise stages computed once
    cfg = make_cfg(extra={"features": {"max_missing": 30, "correlation_threshold": 0.9}})
    df = _tiny_bronze(spark, cfg).withColumn("_part", F.when(F.col("user_id") % 3 == 0, "test").otherwise("train"))
    reference = fe.build_feature_pipeline(cfg).fit(df.where(F.col("_part") == "train").drop("_part"))
    model, out, cached = fe.fit_transform(fe.build_feature_pipeline(cfg), df, F.col("_part") == "train",
                                          ["user_id", "label", "_part"])
    assert [type(s).__name__ for s in model.stages] == [type(s).__name__ for s in reference.stages]
    imputers = [[s for s in m.stages if isinstance(s, fe.RuleImputerModel)][0] for m in (model, reference)]
    assert imputers[0].getSurrogates() == imputers[1].getSurrogates()
    assert fe.feature_names(model) == fe.feature_names(reference)
    assert fe.dropped_by_correlation(model) == fe.dropped_by_correlation(reference)
    scalers = [m.stages[-1] for m in (model, reference)]
    assert scalers[0].originalMin == scalers[1].originalMin and scalers[0].originalMax == scalers[1].originalMax
    assert out.columns == ["user_id", "label", "_part", "features"]
    got = {r.user_id: r.f for r in out.select("user_id", vector_to_array("features").alias("f")).collect()}
    want = {r.user_id: r.f for r in reference.transform(df).select("user_id", vector_to_array("features").alias("f"))
            .collect()}
    assert got.keys() == want.keys() and len(got) == df.count()
    assert all(got[k] == pytest.approx(want[k]) for k in want)
    assert cached.is_cached
    cached.unpersist()


def test_session_splits_huge_generated_methods(spark):
    # the feature expressions on wide rows run un-JITted above HotSpot's 8,000-byte limit
    from prospects.core.session import PRODUCT_CONF

    assert spark.conf.get("spark.sql.codegen.hugeMethodLimit") == "8000" == str(
        PRODUCT_CONF["spark.sql.codegen.hugeMethodLimit"])


def test_exclude_and_readable_names(make_cfg):
    cfg = make_cfg(extra={"features": {"exclude": ["X43", "X27"]}})
    layout = [c for c, _, _ in fe.feature_layout(cfg)]
    assert "X43" not in layout and "X27" not in layout and "arpu" in layout
    assert fe.readable_feature(cfg, "X26") == "broadband_bandwidth"
    assert fe.readable_feature(cfg, "dou") == "dou (3-month mean)"
    with pytest.raises(ConfigError, match="features.exclude: 'nope' is not a column of the dictionary"):
        make_cfg(extra={"features": {"exclude": ["nope"]}})       # at load, before any Spark job


def test_monthly_group_of_unknown_code_is_an_error(make_cfg):
    with pytest.raises(ConfigError, match="features.monthly_groups.bad: 'X99' is not a column of the dictionary"):
        make_cfg(extra={"features": {"monthly_groups": {"bad": ["X6", "X99"]}}})


def test_pipeline_without_text_columns_or_filter(spark, make_cfg):
    cfg = make_cfg(extra={"features": {"exclude": ["X1", "X5"], "correlation_threshold": 1.0,
                                       "monthly_groups": {"arpu": None, "dou": None, "mou": None,
                                                          "voice_overage": None, "data_overage": None}}})
    stages = fe.build_feature_pipeline(cfg).getStages()
    kinds = [type(s).__name__ for s in stages]
    assert kinds == ["RuleImputer", "VectorAssembler", "MinMaxScaler"]
    assert isinstance(fe.build_feature_pipeline(cfg), Pipeline)


def test_prior_correction_undoes_class_weights_and_round_trips(spark, tmp_path):
    from pyspark.ml.functions import array_to_vector

    # weights w1 = 2.5, w0 = 0.625 (20 % positives, balanced): q = 0.5 is p = 0.2
    stage = fe.PriorCorrection(weightPositive=2.5, weightNegative=0.625)
    df = spark.createDataFrame([(0.5,), (0.8,), (0.1,)], "q double").select(
        "q", array_to_vector(F.array(1 - F.col("q"), F.col("q"))).alias("probability"))
    out = [r["p"] for r in stage.transform(df).select(vector_to_array("probability")[1].alias("p")).collect()]
    expected = [0.625 * q / (0.625 * q + 2.5 * (1 - q)) for q in (0.5, 0.8, 0.1)]
    assert out == pytest.approx(expected) and out[0] == pytest.approx(0.2)
    path = str(tmp_path / "pc")
    PipelineModel(stages=[stage]).save(path)
    again = PipelineModel.load(path)
    assert isinstance(again.stages[0], fe.PriorCorrection)
    reread = [r["p"] for r in again.transform(df).select(vector_to_array("probability")[1].alias("p")).collect()]
    assert reread == pytest.approx(expected)


def test_decision_predicts_above_the_threshold_from_a_vector_or_a_number_and_round_trips(spark, tmp_path):
    from pyspark.ml.functions import array_to_vector

    df = spark.createDataFrame([(0.1,), (0.3,), (0.31,), (0.9,)], "p double")
    vec = df.select("p", array_to_vector(F.array(1 - F.col("p"), F.col("p"))).alias("probability"))
    stage = fe.Decision(threshold=0.3)
    assert [r["prediction"] for r in stage.transform(vec).orderBy("p").collect()] == [0.0, 0.0, 1.0, 1.0]
    number = fe.Decision(threshold=0.5, probabilityCol="p", predictionCol="pred")
    assert [r["pred"] for r in number.transform(df).orderBy("p").collect()] == [0.0, 0.0, 0.0, 1.0]
    path = str(tmp_path / "decision")
    PipelineModel(stages=[stage]).save(path)
    again = PipelineModel.load(path).stages[0]
    assert isinstance(again, fe.Decision) and again.getThreshold() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="probability column 'probability' not in"):
        stage.transform(df)
