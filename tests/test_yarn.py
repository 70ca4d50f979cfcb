"""The jobs submitted to a real YARN (MiniYARNCluster) with their data on a real HDFS (MiniDFSCluster).

Jobs go through ``./spark-submit.sh --master yarn`` exactly as an operator submits them, with the
minicluster's configuration as ``HADOOP_CONF_DIR``; in cluster mode the driver runs in a YARN
container, and its exit code and ``RUN_SUMMARY`` reach the submitter through the summary file on
HDFS (prospects.submit). Outputs are read back from HDFS by the tests' own session and by
``deltalake``: this is also the whole pipeline's test on HDFS, with the checks tests/test_storage.py
makes on S3 (tests/stores.py), a rerun in client mode and a time-travel read. Spark's jars
come from this machine's PySpark (``spark.yarn.jars=local:...``: every node of this one-machine
cluster has them), so nothing large is uploaded per application.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from pyspark.sql import functions as F

from prospects.core import storage, tables
from prospects.core.config import join_path, load_config
from prospects.core.jars import spark_home
from tests.cluster import PATIENCE, ROOT
from tests.hadoop import MiniHadoop
from tests.stores import assert_pipeline_outputs, assert_scores_rerun, read_back

pytestmark = pytest.mark.cluster

SUBMIT = str(ROOT / "spark-submit.sh")
RUN = "2026-11-01"
SMALL = ["--set", "generator.n_train=3000", "--set", "generator.regions={A: 600, B: 400}",
         "--set", "train.model_types=[logistic_regression, decision_tree]",
         "--set", "train.models.logistic_regression={regParam: [0.01], elasticNetParam: [0.0], maxIter: [50]}",
         "--set", "train.models.decision_tree={maxDepth: [5], minInstancesPerNode: [1], maxBins: [32]}"]


@pytest.fixture(scope="module")
def yarn(tmp_path_factory):
    base = tmp_path_factory.mktemp("yarn")
    with MiniHadoop(base, yarn=True) as hadoop:
        yield hadoop


def submit(yarn, deploy_mode: str, job: str, *args: str, timeout: float = PATIENCE) -> subprocess.CompletedProcess:
    """``./spark-submit.sh --master yarn --deploy-mode <mode> <job> <args>`` against the minicluster."""
    python = sys.executable
    cmd = [SUBMIT, "--master", "yarn", "--deploy-mode", deploy_mode, "--driver-memory", "1g",
           "--executor-memory", "1g", "--num-executors", "1", "--executor-cores", "2",
           "--conf", f"spark.yarn.jars=local:{spark_home() / 'jars'}/*",
           "--conf", f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={python}",
           "--conf", f"spark.executorEnv.PYSPARK_PYTHON={python}",
           "--conf", "spark.ui.enabled=false", job, *args]
    env = {**os.environ, **yarn.env(), "PYSPARK_PYTHON": python}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode not in (0, 1, 2):
        print(yarn.logs(), file=sys.stderr)
    return done


def lake(yarn, name: str) -> list[str]:
    root = f"{yarn.fs}/{name}"
    return ["--set", f"paths.raw={root}/raw", "--set", f"paths.lakehouse={root}/lakehouse"]


def summary_of(done: subprocess.CompletedProcess) -> dict:
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RUN_SUMMARY ")]
    assert len(lines) == 1, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(lines[0][len("RUN_SUMMARY "):])


def fiveg(yarn):
    """The configuration the submitted jobs of the ``fiveg`` lake run with, for reading their outputs."""
    return load_config(overrides=[f"paths.raw={yarn.fs}/fiveg/raw", f"paths.lakehouse={yarn.fs}/fiveg/lakehouse",
                                  f"run.id={RUN}"])


def test_the_pipeline_in_cluster_mode_with_its_summary_at_the_submitter(spark, yarn):
    """The whole pipeline on HDFS, its driver in a YARN container; every output read back from HDFS."""
    started = time.time()
    done = submit(yarn, "cluster", "pipeline", "--generate", "--run-date", RUN, *lake(yarn, "fiveg"), *SMALL)
    assert done.returncode == 0, done.stderr[-4000:] + yarn.logs()
    summary = summary_of(done)
    assert summary["status"] == "ok" and summary["run_id"] == RUN and summary["exit_code"] == 0
    assert "application_" in done.stderr            # the YARN client's reports: it ran in a container
    result = summary["result"]
    assert result["ingest"]["users"] == 3000 and result["ingest"]["reconciled"] and result["score"]["users"] == 1000
    cfg = fiveg(yarn)
    assert storage.exists(spark, join_path(cfg.path("raw"), "train_set.csv"))   # generated on HDFS
    scores = tables.read(spark, cfg.table("gold_scores")).where(F.col("run_id") == RUN)
    assert {r["region"]: r["n"] for r in scores.groupBy("region").agg(F.count("*").alias("n")).collect()} == \
        {"A": 600, "B": 400}
    assert_pipeline_outputs(spark, cfg, users=3000, scored=1000)
    runs = storage.list_names(spark, join_path(cfg.path("lakehouse"), "_runs"))
    assert runs == []                                # the summary file was read and removed
    print(f"pipeline on YARN (cluster mode) in {time.time() - started:.0f} s")


def test_client_mode_exit_codes_and_one_line_reasons(spark, yarn):
    # a rerun of the same run id in client mode replaces its rows; time travel reads the state before it
    cfg = fiveg(yarn)
    before = tables.table_version(spark, cfg.table("gold_scores"))
    done = submit(yarn, "client", "pipeline", "--stages", "ingest,score", "--run-date", RUN, *lake(yarn, "fiveg"),
                  "--set", "score.figures=false")
    assert done.returncode == 0, done.stderr[-4000:]
    result = summary_of(done)["result"]
    assert result["ingest"]["users"] == 3000 and result["score"]["users"] == 1000
    assert read_back(spark, cfg.table("bronze_users"), RUN) == 3000
    assert_scores_rerun(spark, cfg, 1000, before)
    bronze = tables.table_version(spark, cfg.table("bronze_users"))
    # a job failing in the cluster: exit 1, its one-line reason and summary at the submitter, nothing written
    done = submit(yarn, "cluster", "ingest", "--run-date", RUN, *lake(yarn, "fiveg"),
                  "--set", "dataset.train_file=missing.csv")
    failures = [ln for ln in done.stderr.splitlines() if ln.startswith("ingest failed:")]
    assert done.returncode == 1 and len(failures) == 1 and "input file not found" in failures[0], done.stderr[-3000:]
    assert summary_of(done)["exit_code"] == 1
    assert tables.table_version(spark, cfg.table("bronze_users")) == bronze
    # a configuration error never reaches the cluster: exit 2 at the submitter
    done = submit(yarn, "cluster", "ingest", *lake(yarn, "fiveg"), "--set", "no_such.key=1")
    assert done.returncode == 2 and "application_" not in done.stdout + done.stderr
    assert [ln for ln in done.stderr.splitlines() if ln.startswith("ingest failed: configuration:")]
