"""The jobs on a real Spark standalone cluster (master + 2 workers on 127.0.0.1), with faults.

The cluster is started once for this module by ``tests/cluster.py`` (PySpark's own spark-class, free
ports, processes ended by id; logs under the test's tmp folder, printed when a test fails). Jobs go
through ``./spark-submit.sh --master spark://127.0.0.1:<port>`` exactly as an operator runs them;
the lakehouse is on local disk, shared by the workers of this one machine. Outputs are checked with
the test session (``spark`` fixture) reading the same Delta tables.

Faults: a worker (and its executor) killed by pid during training; the driver killed (SIGKILL of
its process group) right after the first region's scores were committed; two scoring runs for
different regions at once. Plus the scheduled-run contract: a new month appends, a re-run replaces,
time travel reads the previous state.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from prospects.core.config import load_config
from prospects.ml import train
from prospects.synthetic import generator
from tests.cluster import ROOT, StandaloneCluster, die_with_parent, free_port, tail
from tests.conftest import TEST_SPARK

SUBMIT = str(ROOT / "spark-submit.sh")
REGIONS = {"A": 1500, "B": 1200, "C": 1000, "D": 800}
N_TRAIN = 3000
RUN, NEXT = "2026-10-01", "2026-11-01"
TRAIN_SETTINGS = [
    "--set", "train.model_types=[logistic_regression, decision_tree]",
    "--set", "train.models.logistic_regression={regParam: [0.0, 0.01], elasticNetParam: [0.0], maxIter: [50]}",
    "--set", "train.models.decision_tree={maxDepth: [4, 6], minInstancesPerNode: [1], maxBins: [32]}",
]
SCORE_SETTINGS = ["--set", "score.figures=false"]
LOST_EXECUTOR = re.compile(r"lost executor|executor lost|ExecutorLostFailure|removed executor|"
                           r"executor \S+ (has been )?removed|worker removed", re.I)


@dataclass
class Lake:
    """A lakehouse (and raw folder) under tmp, with the ``--set`` options pointing the jobs at it."""

    root: Path

    @property
    def settings(self) -> list[str]:
        lake = self.root / "lakehouse"
        return ["--set", f"paths.raw={self.root / 'raw'}", "--set", f"paths.lakehouse={lake}",
                "--set", f"paths.models={lake / 'models'}", "--set", f"paths.reports={lake / 'reports'}"]

    def table(self, rel: str) -> str:
        return str(self.root / "lakehouse" / rel)

    def config(self, run_date: str = RUN, overrides: tuple = ()):
        pairs = [v for k, v in zip(self.settings[::2], self.settings[1::2]) if k == "--set"]
        return load_config(overrides=[*pairs, f"run.date={run_date}", *overrides], extra={"spark": TEST_SPARK})


class Submitted:
    """One ``spark-submit.sh`` run in its own process group; output in files (pollable while it runs)."""

    def __init__(self, cluster: StandaloneCluster, lake: Lake, name: str, job: str, args: list[str],
                 cores: int = 2):
        self.cluster, self.name, self.job = cluster, name, job
        logs = lake.root / "submit-logs"
        logs.mkdir(exist_ok=True)
        self.out_path, self.err_path = logs / f"{name}.out", logs / f"{name}.err"
        self.summary_path = logs / f"{name}.json"
        self.cmd = [SUBMIT, "--master", cluster.master_url, "--total-executor-cores", str(cores),
                    "--executor-memory", "512m", "--driver-memory", "1g",
                    "--conf", f"spark.ui.port={free_port()}", "--conf", "spark.ui.showConsoleProgress=false",
                    job, *lake.settings, "--summary-file", str(self.summary_path), *args]
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
        for key in ("PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET"):
            env.pop(key, None)
        self._files = [open(self.out_path, "wb"), open(self.err_path, "wb")]  # noqa: SIM115
        self.proc = subprocess.Popen(self.cmd, stdout=self._files[0], stderr=self._files[1], env=env,
                                     cwd=str(lake.root), start_new_session=True, preexec_fn=die_with_parent)
        self.started = time.time()
        self.ended: float | None = None

    def log_text(self) -> str:
        return self.out_path.read_text(errors="replace") + self.err_path.read_text(errors="replace")

    def describe(self) -> str:
        return (f"{self.name}: {' '.join(self.cmd)}\n--- stdout ---\n{tail(self.out_path, 40)}\n"
                f"--- stderr ---\n{tail(self.err_path, 60)}\n--- cluster (all logs kept in {self.cluster.base}) ---\n"
                f"{self.cluster.logs(20)}")

    def poll(self) -> int | None:
        code = self.proc.poll()
        if code is not None and self.ended is None:
            self.ended = time.time()
        return code

    def wait(self, timeout: float = 420) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
            self.poll()
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"{self.name} did not finish within {timeout} s\n{self.describe()}")
        self.close()
        return code

    def kill(self) -> None:
        """SIGKILL the whole submit: wrapper, spark-submit JVM and the Python driver (its process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.close()

    def close(self) -> None:
        for f in self._files:
            f.close()

    def ok(self, timeout: float = 420) -> dict:
        """Wait, check exit 0 and the run summary; return the summary."""
        code = self.wait(timeout)
        assert code == 0, f"exit {code}\n{self.describe()}"
        summary = json.loads(self.summary_path.read_text())
        lines = [line for line in self.out_path.read_text().splitlines() if line.startswith("RUN_SUMMARY ")]
        assert [json.loads(line[len("RUN_SUMMARY "):]) for line in lines] == [summary]
        assert summary["status"] == "ok" and summary["job"] == self.job and summary["seconds"] > 0
        print(f"[cluster] {self.name}: {summary['seconds']} s in the job, {time.time() - self.started:.1f} s wall")
        return summary


def wait_for(condition, what: str, job: Submitted, timeout: float = 240, interval: float = 0.2):
    """Poll ``condition()`` until truthy; fail (with logs) on timeout or when ``job`` ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if job.poll() is not None:
            pytest.fail(f"{job.name} ended (exit {job.poll()}) before {what}\n{job.describe()}")
        time.sleep(interval)
    job.kill()
    pytest.fail(f"timed out waiting for {what}\n{job.describe()}")


# ---------------------------------------------------------------------------------------------
# Fixtures: the cluster, a lakehouse with generated raw files ingested on the cluster, a model
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    base = tmp_path_factory.mktemp("standalone")
    c = StandaloneCluster(base, workers=2, cores=1, memory="1g")
    c.start()                   # raises ClusterError with the daemons' logs: the tests error, never skip
    print(f"[cluster] {c.master_url} (UI {c.ui_url}), logs in {c.log_dir}")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark, cluster) -> Lake:
    lk = Lake(tmp_path_factory.mktemp("lake"))
    regions = "{" + ", ".join(f"{r}: {n}" for r, n in REGIONS.items()) + "}"
    generator.run(lk.config(overrides=(f"generator.n_train={N_TRAIN}", f"generator.regions={regions}")), spark)
    Submitted(cluster, lk, "ingest-run", "ingest", ["--run-date", RUN]).ok()
    return lk


@pytest.fixture(scope="module")
def model(lake, spark) -> None:
    """A registered model: the one the worker-kill test trained, else trained here (test run alone)."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, lake.table("models/registry")):
        cfg = lake.config(overrides=tuple(v for v in TRAIN_SETTINGS if v != "--set"))
        train.run(cfg, spark)


def region_counts(spark, path: str, run_id: str, version: int | None = None) -> dict[str, int]:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    rows = reader.load(path).where(F.col("run_id") == run_id).groupBy("region").count().collect()
    return {r["region"]: r["count"] for r in rows}


def bronze_counts(spark, lake: Lake, run_id: str = RUN) -> dict[str, int]:
    return region_counts(spark, lake.table("bronze/regions"), run_id)


def commits(path: str) -> list[tuple[int, dict]]:
    """(version, commitInfo) of every commit file in the Delta log of ``path``."""
    out = []
    for f in sorted(Path(path, "_delta_log").glob("*.json")):
        info = {}
        for line in f.read_text().splitlines():
            action = json.loads(line)
            if "commitInfo" in action:
                info = action["commitInfo"]
        out.append((int(f.stem), info))
    return out


def is_region_write(info: dict) -> bool:
    params = info.get("operationParameters") or {}
    return info.get("operation") == "WRITE" and "region" in str(params.get("predicate", ""))


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------
def test_cluster_runs_ingest_with_run_id(lake, spark):
    assert bronze_counts(spark, lake) == REGIONS
    users = spark.read.format("delta").load(lake.table("bronze/users")).where(F.col("run_id") == RUN).count()
    assert users == N_TRAIN


def test_worker_killed_during_training_the_job_still_finishes(cluster, lake, spark):
    job = Submitted(cluster, lake, "train-worker-kill", "train", [*TRAIN_SETTINGS, "--run-date", RUN])
    wait_for(lambda: "training input" in job.log_text() and cluster.executors(1) and cluster.executors(2),
             "training under way with an executor on each worker", job, timeout=300)
    time.sleep(2.0)                                     # into the model fits
    assert job.poll() is None, f"training ended before the fault\n{job.describe()}"
    executor_pids = [p.pid for p in cluster.executors(1)]
    killed = cluster.kill_worker(1)
    assert executor_pids and set(executor_pids) <= set(killed)
    print(f"[cluster] killed worker 1 and its executor: pids {killed} at {time.time() - job.started:.1f} s")
    summary = job.ok()
    assert summary["run_id"] == RUN
    assert LOST_EXECUTOR.search(job.log_text()), f"no executor loss in the driver log\n{job.describe()}"
    dead = [w for w in (cluster.state() or {}).get("workers", []) if w.get("state") != "ALIVE"]
    assert dead, "the master still lists the killed worker as ALIVE"
    reg = spark.read.format("delta").load(lake.table("models/registry")).where(F.col("run_id") == RUN).collect()
    assert {r["model_type"] for r in reg} == {"logistic_regression", "decision_tree"}
    assert sum(r["is_chosen"] for r in reg) == 1
    chosen = next(r for r in reg if r["is_chosen"])
    assert chosen["test_auc"] > 0.6 and Path(chosen["model_path"]).exists()
    # bring the cluster back to two workers for the next tests
    cluster.start_worker(1)
    cluster.wait_alive_workers(2)


def test_driver_killed_while_writing_scores_leaves_no_partial_region(cluster, lake, spark, model):
    from delta.tables import DeltaTable

    path = lake.table("gold/scores")
    bronze = bronze_counts(spark, lake)
    seen = {v for v, _ in commits(path)} if Path(path, "_delta_log").is_dir() else set()
    job = Submitted(cluster, lake, "score-driver-kill", "score",
                    [*SCORE_SETTINGS, "--set", "score.mode=sequential", "--run-date", RUN])
    first = wait_for(lambda: next((v for v, info in commits(path) if v not in seen and is_region_write(info)), None)
                     if Path(path, "_delta_log").is_dir() else None,
                     "the first region's scores committed", job, timeout=300, interval=0.05)
    job.kill()
    print(f"[cluster] driver killed after commit {first} at {time.time() - job.started:.1f} s")
    # readable, every committed version consistent: a region of the run is complete or absent
    table = DeltaTable.forPath(spark, path)
    latest = table.history(1).first()["version"]
    assert latest >= first
    for version in range(min(first, latest), latest + 1):
        counts = region_counts(spark, path, RUN, version)
        assert all(counts[r] == bronze[r] for r in counts), (version, counts, bronze)
    written = [v for v, info in commits(path) if v not in seen and is_region_write(info)]
    assert 1 <= len(written) < len(bronze), f"the kill came too late to test anything: commits {written}"
    now = region_counts(spark, path, RUN)
    on_disk = len(list(Path(path).rglob("*.parquet")))
    live = len(spark.read.format("delta").load(path).inputFiles())
    print(f"[cluster] after the kill: version {latest}, regions complete {sorted(now)}, "
          f"absent {sorted(set(bronze) - set(now))}; region commits of the killed run {written}; "
          f"{on_disk - live} data file(s) on disk not in the table")
    # the next run completes it
    summary = Submitted(cluster, lake, "score-rerun", "score", [*SCORE_SETTINGS, "--run-date", RUN]).ok()
    assert summary["result"]["users"] == sum(bronze.values())
    assert region_counts(spark, path, RUN) == bronze
    scores = spark.read.format("delta").load(path).where(F.col("run_id") == RUN)
    assert scores.select("user_id").distinct().count() == sum(bronze.values())
    summary_rows = spark.read.format("delta").load(lake.table("gold/region_summary")).where(F.col("run_id") == RUN)
    assert {r["region"]: r["users"] for r in summary_rows.collect()} == bronze


def test_two_scoring_runs_at_once_for_different_regions(cluster, lake, spark, model):
    path = lake.table("gold/scores")
    bronze = bronze_counts(spark, lake)
    if not Path(path, "_delta_log").is_dir():          # test run alone: score the run once first
        Submitted(cluster, lake, "score-base", "score", [*SCORE_SETTINGS, "--run-date", RUN]).ok()

    def state():
        df = spark.read.format("delta").load(path).where(F.col("run_id") == RUN)
        return {r["region"]: (r["n"], r["at"]) for r in
                df.groupBy("region").agg(F.count("*").alias("n"), F.max("scored_at").alias("at")).collect()}

    before, v0 = state(), max(v for v, _ in commits(path))
    jobs = [Submitted(cluster, lake, f"score-only-{r}", "score",
                      [*SCORE_SETTINGS, "--set", f"score.only_regions=[{r}]", "--run-date", RUN], cores=1)
            for r in ("A", "B")]
    deadline = time.time() + 600
    while any(j.poll() is None for j in jobs) and time.time() < deadline:   # note each one's end
        time.sleep(0.2)
    summaries = [j.ok() for j in jobs]
    assert [s["result"]["regions"] for s in summaries] == [{"A": bronze["A"]}, {"B": bronze["B"]}]
    after = state()
    assert {r: n for r, (n, _) in after.items()} == bronze                 # nothing lost, no duplicates
    for r in ("A", "B"):
        assert before.get(r) is None or after[r][1] > before[r][1], r      # re-scored
    for r in ("C", "D"):
        assert after.get(r) == before.get(r), r                            # untouched
    new = [(v, info["operationParameters"]["predicate"]) for v, info in commits(path)
           if v > v0 and is_region_write(info)]
    assert len(new) == 2 and {("'A'" in p) for _, p in new} == {True, False}, new
    retries = sum(len(re.findall("concurrent commit conflict", j.log_text())) for j in jobs)
    spans = [(round(j.started - jobs[0].started, 1), round(j.ended - jobs[0].started, 1)) for j in jobs]
    print(f"[cluster] concurrent region runs (wall spans {spans} s): commits {new}, conflict retries {retries}")


def test_a_new_month_appends_and_time_travel_reads_the_previous_state(cluster, lake, spark, model):
    from delta.tables import DeltaTable

    scores, users = lake.table("gold/scores"), lake.table("bronze/users")
    bronze_run_before = region_counts(spark, lake.table("bronze/regions"), RUN)
    if not Path(scores, "_delta_log").is_dir():
        Submitted(cluster, lake, "score-base-2", "score", [*SCORE_SETTINGS, "--run-date", RUN]).ok()
    run_rows = spark.read.format("delta").load(scores).where(F.col("run_id") == RUN)
    run_before = sorted((r["region"], r["n"], r["at"]) for r in run_rows.groupBy("region")
                        .agg(F.count("*").alias("n"), F.max("scored_at").alias("at")).collect())
    version_before = DeltaTable.forPath(spark, scores).history(1).first()["version"]

    # a new month: ingest and score with the next run date
    assert Submitted(cluster, lake, "ingest-next", "ingest", ["--run-date", NEXT]).ok()["run_id"] == NEXT
    summary = Submitted(cluster, lake, "score-next", "score", [*SCORE_SETTINGS, "--run-date", NEXT]).ok()
    assert summary["run_id"] == NEXT and summary["result"]["bronze_run_id"] == NEXT
    assert region_counts(spark, scores, NEXT) == REGIONS
    run_rows = spark.read.format("delta").load(scores).where(F.col("run_id") == RUN)
    assert sorted((r["region"], r["n"], r["at"]) for r in run_rows.groupBy("region")
                  .agg(F.count("*").alias("n"), F.max("scored_at").alias("at")).collect()) == run_before

    # time travel: the table as it was before the new month
    assert region_counts(spark, scores, NEXT, version_before) == {}
    assert region_counts(spark, scores, RUN, version_before) == {r: n for r, n, _ in run_before}
    hist = DeltaTable.forPath(spark, scores).history().where(F.col("version") == version_before).first()
    as_of = (spark.read.format("delta").option("timestampAsOf", hist["timestamp"].isoformat(sep=" "))
             .load(scores).where(F.col("run_id") == NEXT).count())
    assert as_of == 0

    # both months stay in bronze, each complete
    per_run = spark.read.format("delta").load(users).groupBy("run_id").count().collect()
    assert {r["run_id"]: r["count"] for r in per_run} == {RUN: N_TRAIN, NEXT: N_TRAIN}
    assert region_counts(spark, lake.table("bronze/regions"), RUN) == bronze_run_before
