"""The whole product on real distributed storage: HDFS (a MiniDFSCluster) and S3 (moto's server).

Raw files, lakehouse, models and reports are all on the store. On S3 the generator writes the raw
files there and ingest, profile, train, score and report run in the tests' own session; on HDFS the
same run is submitted to YARN in cluster mode and checked the same way (tests/test_yarn.py), so it
is not repeated here. On each store: the churn use case (on the real Telco sample copied to the
store), its A/B test, and the credit use case. Every Delta table reads back with Spark and with the
Spark-free reader ``deltalake``; every figure and report is on the store; a rerun of the same run id
is idempotent and a time-travel read returns the earlier version (tests/stores.py). The stores are
started by tests/hadoop.py and tests/s3.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

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
from tests.stores import assert_pipeline_outputs, assert_pngs, assert_scores_rerun, read_back

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


@pytest.fixture(scope="module")
def hdfs(tmp_path_factory):
    with MiniHadoop(tmp_path_factory.mktemp("hdfs")) as hadoop:
        yield Store("hdfs", f"{hadoop.fs}/prospects")


@pytest.fixture(scope="module")
def s3(spark, tmp_path_factory):
    with S3Server(tmp_path_factory.mktemp("s3")) as server:
        conf = spark._jsc.hadoopConfiguration()  # noqa: SLF001 - the test session meets the server at run time
        for key, value in server.spark_conf().items():
            conf.set(key[len("spark.hadoop."):], value)
        yield Store("s3", join_path(server.create_bucket("prospects"), "data"), server.delta_options())


@pytest.fixture(params=["hdfs", "s3"])
def store(request):
    return request.getfixturevalue(request.param)


def config(tmp_path, use_case: str, overrides: list[str]):
    return load_config(use_case, extra=tmp_settings(tmp_path), overrides=overrides)


def test_the_whole_pipeline_on_s3(spark, s3, tmp_path):
    """On S3; the same run on HDFS is submitted to YARN and checked the same way in tests/test_yarn.py."""
    cfg = config(tmp_path, "fiveg", [*SMALL, *s3.lake("fiveg"), "run.id=2026-11-01"])
    generated = generator.generate(cfg, spark)
    assert generated["files"] and storage.exists(spark, join_path(cfg.path("raw"), "train_set.csv"))
    result = pipeline.run(cfg, spark, ["ingest", "profile", "train", "score", "report"])
    assert result["ingest"]["reconciled"] and result["ingest"]["users"] == 3000
    assert_pipeline_outputs(spark, cfg, users=3000, scored=1200, delta_options=s3.delta_options)

    # a rerun of the same run id replaces its rows; time travel reads the state before it
    before = tables.table_version(spark, cfg.table("gold_scores"))
    pipeline.run(cfg, spark, ["ingest", "score"])
    assert read_back(spark, cfg.table("bronze_users"), cfg.run_id, s3.delta_options) == 3000
    assert_scores_rerun(spark, cfg, 1200, before, s3.delta_options)


def test_churn_ab_test_and_credit_on_the_store(spark, store, tmp_path):
    if store.kind == "hdfs":   # the HDFS client settings every product session sets are the ones tried here
        hadoop = spark._jsc.hadoopConfiguration()  # noqa: SLF001 - the session's own Hadoop configuration
        dfs = {k[len("spark.hadoop."):]: str(v) for k, v in PRODUCT_CONF.items() if ".dfs." in k}
        assert len(dfs) == 2 and all(hadoop.get(k) == v for k, v in dfs.items()), dfs
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
        assert read_back(spark, cfg.table(key), "t1", store.delta_options) > 0, key

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
    assert read_back(spark, demand.table("credit_targets"), "t1", store.delta_options) > 0 and summary["regions"]
