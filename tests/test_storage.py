"""The whole product on real distributed storage: HDFS (a MiniDFSCluster) and S3 (moto's server).

Raw files, lakehouse, models and reports are all on the store. On each: the generator writes the
raw files there; ingest, profile, train, score, evaluate-free report run; then the churn use case
(on the real Telco sample copied to the store), its A/B test, and the credit use case. Every
Delta table reads back with Spark and with the Spark-free reader ``deltalake``; every figure and
report is on the store; a rerun of the same run id is idempotent and a time-travel read returns
the earlier version. The stores are started by tests/hadoop.py and tests/s3.py; the stages run in
the tests' own session (jobs through spark-submit are in tests/test_yarn.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import deltalake
import pytest
from pyspark.sql import functions as F

from jobs import ab_analyze as ab_analyze_job
from jobs import ab_assign as ab_assign_job
from jobs import churn_insights as churn_insights_job
from prospects import pipeline
from prospects.core import storage, tables
from prospects.core.config import join_path, load_config
from prospects.core.session import PRODUCT_CONF
from prospects.synthetic import generator
from prospects.usecases import credit
from tests.conftest import ROOT, run_job, tmp_settings
from tests.hadoop import MiniHadoop
from tests.s3 import S3Server

pytestmark = pytest.mark.cluster

TELCO = ROOT.parent / "shared" / "data" / "telco_churn" / "telco_customer_churn.csv"
SMALL = ["generator.n_train=3000", "generator.regions={A: 700, B: 500}", "generator.seed=5",
         "train.model_types=[logistic_regression, decision_tree]",
         "train.models.logistic_regression={regParam: [0.01], elasticNetParam: [0.0], maxIter: [50]}",
         "train.models.decision_tree={maxDepth: [5], minInstancesPerNode: [1], maxBins: [32]}"]


@dataclass
class Store:
    """A store's root URI and how the Spark-free reader reaches it."""

    kind: str
    root: str
    delta_options: dict = field(default_factory=dict)

    def lake(self, name: str) -> list[str]:
        root = join_path(self.root, name)
        return [f"paths.raw={root}/raw", f"paths.lakehouse={root}/lakehouse"]

    def delta_uri(self, path: str) -> str:
        return "s3://" + path[len("s3a://"):] if path.startswith("s3a://") else path


@pytest.fixture(scope="module", params=["hdfs", "s3"])
def store(request, spark, tmp_path_factory):
    base = tmp_path_factory.mktemp(request.param)
    if request.param == "hdfs":
        with MiniHadoop(base) as hdfs:
            yield Store("hdfs", f"{hdfs.fs}/prospects")
        return
    with S3Server(base) as s3:
        conf = spark._jsc.hadoopConfiguration()  # noqa: SLF001 - the test session meets the server at run time
        for key, value in s3.spark_conf().items():
            conf.set(key[len("spark.hadoop."):], value)
        yield Store("s3", join_path(s3.create_bucket("prospects"), "data"), s3.delta_options())


def config(tmp_path, use_case: str, overrides: list[str]):
    return load_config(use_case, extra=tmp_settings(tmp_path), overrides=overrides)


def read_back(spark, store: Store, path: str, run_id: str) -> int:
    """Rows of ``run_id`` in the table at ``path``, read by Spark and by deltalake (they must agree)."""
    by_spark = tables.read(spark, path).where(F.col("run_id") == run_id).count()
    table = deltalake.DeltaTable(store.delta_uri(path), storage_options=store.delta_options or None)
    by_delta_rs = sum(1 for r in table.to_pyarrow_table(columns=["run_id"]).column("run_id").to_pylist()
                      if r == run_id)
    assert by_spark == by_delta_rs, path
    return by_spark


def assert_pngs(spark, paths: list[str]) -> None:
    for path in paths:
        assert storage.read_head(spark, path, 8) == b"\x89PNG\r\n\x1a\n", path


def test_the_whole_pipeline_on_the_store(spark, store, tmp_path):
    cfg = config(tmp_path, "fiveg", [*SMALL, *store.lake("fiveg"), "run.id=2026-11-01"])
    if store.kind == "hdfs":   # the HDFS client settings every product session sets are the ones tried here
        hadoop = spark._jsc.hadoopConfiguration()  # noqa: SLF001 - the session's own Hadoop configuration
        dfs = {k[len("spark.hadoop."):]: str(v) for k, v in PRODUCT_CONF.items() if ".dfs." in k}
        assert len(dfs) == 2 and all(hadoop.get(k) == v for k, v in dfs.items()), dfs
    generated = generator.generate(cfg, spark)
    assert generated["files"] and storage.exists(spark, join_path(cfg.path("raw"), "train_set.csv"))
    result = pipeline.run(cfg, spark, ["ingest", "profile", "train", "score", "report"])
    assert result["ingest"]["reconciled"] and result["ingest"]["users"] == 3000
    written = {key: read_back(spark, store, cfg.table(key), cfg.run_id)
               for key in ("bronze_users", "bronze_regions", "quarantine", "model_registry", "model_metrics",
                           "model_curves", "gold_scores", "gold_region_summary", "gold_segments", "gold_actions",
                           "gold_drift", "eda_columns", "eda_histograms", "eda_correlation")}
    assert written["bronze_users"] == 3000 and written["gold_scores"] == 1200 and written["quarantine"] == 0
    assert all(n > 0 for k, n in written.items() if k != "quarantine"), written
    reports = join_path(cfg.path("reports"), cfg.run_id)
    files = storage.walk(spark, reports)
    names = {f[len(reports) + 1:] for f in files}
    assert {"index.md", "profile/profile.md", "profile/missing_share.png", "train/roc.png", "train/pr.png",
            "score/regions.png", "score/drift.png"} <= names, names
    assert_pngs(spark, [f for f in files if f.endswith(".png")])
    index = storage.read_text(spark, join_path(reports, "index.md"))
    assert "gold/scores" in index and "| A |" in index
    registry = tables.read(spark, cfg.table("model_registry")).where(F.col("is_chosen")).first()
    assert storage.exists(spark, registry["model_path"]) and registry["model_path"].startswith(store.root)

    # a rerun of the same run id replaces its rows; time travel reads the state before it
    before = tables.table_version(spark, cfg.table("gold_scores"))
    pipeline.run(cfg, spark, ["ingest", "score"])
    assert read_back(spark, store, cfg.table("bronze_users"), cfg.run_id) == 3000
    assert read_back(spark, store, cfg.table("gold_scores"), cfg.run_id) == 1200
    assert tables.table_version(spark, cfg.table("gold_scores")) > before
    old = tables.read(spark, cfg.table("gold_scores"), version=before).where(F.col("run_id") == cfg.run_id)
    assert old.count() == 1200
    new = tables.read(spark, cfg.table("gold_scores")).where(F.col("run_id") == cfg.run_id)
    assert old.select("user_id", "probability").exceptAll(new.select("user_id", "probability")).count() == 0


def test_churn_ab_test_and_credit_on_the_store(spark, store, tmp_path):
    telco = join_path(store.root, "telco")
    storage.put(spark, str(TELCO), join_path(telco, "raw", "telco_customer_churn.csv"))
    settings = [f"paths.raw={telco}/raw", f"paths.lakehouse={telco}/lakehouse", "run.id=t1",
                "train.model_types=[logistic_regression]",
                "train.models.logistic_regression={regParam: [0.01], elasticNetParam: [0.0], maxIter: [100]}",
                "abtest.simulated_retention={data_bonus: 0.62, contract_discount: 0.68, control: 0.55}"]
    cfg = config(tmp_path, "telco_churn", settings)
    pipeline.run(cfg, spark, ["ingest", "train"])
    # the churn and A/B steps through their jobs' entry points, as spark-submit runs them
    insights = run_job(churn_insights_job, "telco_churn", settings, tmp_path / "insights.json")
    assert insights["customers"] == 7043 and insights["figures"]
    assert_pngs(spark, insights["figures"])
    assert run_job(ab_assign_job, "telco_churn", settings, tmp_path / "assign.json")
    analysis = run_job(ab_analyze_job, "telco_churn", settings, tmp_path / "analyze.json")
    assert analysis["arms"]
    for key in ("churn_scores", "churn_tiers", "churn_drivers", "churn_segments", "ab_assignments", "ab_results"):
        assert read_back(spark, store, cfg.table(key), "t1") > 0, key

    lakes = {k: join_path(store.root, "credit", k) for k in ("raw", "demand", "risk")}
    common = [*SMALL[:3], "train.model_types=[logistic_regression]", SMALL[4], "score.figures=false",
              "score.segments={}", "run.id=t1", f"paths.raw={lakes['raw']}",
              f"credit.demand_lakehouse={lakes['demand']}", f"credit.risk_lakehouse={lakes['risk']}"]
    demand = config(tmp_path, "credit", [*common, f"paths.lakehouse={lakes['demand']}"])
    risk = config(tmp_path, "credit", [*common, f"paths.lakehouse={lakes['risk']}",
                                       "dataset.label_file=credit_risk_label.csv",
                                       "generator.oracle_file=credit_risk_oracle"])
    assert credit.run_labels(demand, spark, generate=True)["user_base"]["generated"]
    for run_cfg in (demand, risk):
        pipeline.run(run_cfg, spark, ["ingest", "train", "score"])
    summary = credit.run_targets(demand, spark)
    assert read_back(spark, store, demand.table("credit_targets"), "t1") > 0 and summary["regions"]
