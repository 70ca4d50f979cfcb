"""The jobs on a real Spark standalone cluster (master + 2 workers on 127.0.0.1), with faults.

The cluster is started once for this module by ``tests/cluster.py`` (PySpark's own spark-class, free
ports, processes ended by id; logs under the test's tmp folder, printed when a test fails). Jobs go
through ``./spark-submit.sh --master spark://127.0.0.1:<port>`` exactly as an operator runs them;
the lakehouse is on local disk, shared by the workers of this one machine. Outputs are checked with
the test session (``spark`` fixture) reading the same Delta tables.

Faults, each asserted: the driver killed (SIGKILL of its process group) during ingest, during
training and while the scores are written; a worker (and its executor) killed during training and
during scoring; two trainings at once; two scoring runs for different regions at once. Plus the
scheduled-run contract: a new month appends, a re-run replaces, time travel reads the previous state.

Every spark-submit costs a minute or more on this cluster, so the faults share runs: the ingest
killed mid-run is the next month's ingest, the training rerun after a killed driver runs beside a
second training, and the scoring killed mid-write is the next month's scoring.
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

from prospects.core import runlog
from prospects.core.config import load_config
from prospects.ml import train
from prospects.synthetic import generator
from tests.cluster import PATIENCE, ROOT, StandaloneCluster, die_with_parent, free_port, tail
from tests.conftest import TEST_SPARK

pytestmark = pytest.mark.cluster

SUBMIT = str(ROOT / "spark-submit.sh")
REGIONS = {"A": 1500, "B": 1200, "C": 1000, "D": 800}
N_TRAIN = 3000
RUN, NEXT = "2026-10-01", "2026-11-01"
TRAIN_SETTINGS = [
    "--set", "train.model_types=[logistic_regression, decision_tree]",
    "--set", "train.models.logistic_regression={regParam: [0.01], elasticNetParam: [0.0], maxIter: [50]}",
    "--set", "train.models.decision_tree={maxDepth: [5], minInstancesPerNode: [1], maxBins: [32]}",
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
        self.cmd = [SUBMIT, "--master", cluster.master_url, "--name", f"prospects-{name}",
                    "--total-executor-cores", str(cores),
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

    def wait(self, timeout: float = PATIENCE) -> int:
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

    def ok(self, timeout: float = PATIENCE) -> dict:
        """Wait, check exit 0 and the run summary; return the summary."""
        code = self.wait(timeout)
        assert code == 0, f"exit {code}\n{self.describe()}"
        summary = json.loads(self.summary_path.read_text())
        lines = [line for line in self.out_path.read_text().splitlines() if line.startswith("RUN_SUMMARY ")]
        assert [json.loads(line[len("RUN_SUMMARY "):]) for line in lines] == [summary]
        assert summary["status"] == "ok" and summary["job"] == self.job and summary["seconds"] > 0
        print(f"[cluster] {self.name}: {summary['seconds']} s in the job, {time.time() - self.started:.1f} s wall")
        return summary


def wait_for(condition, what: str, job: Submitted, timeout: float = PATIENCE, interval: float = 0.2):
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


@pytest.fixture(scope="module")
def next_month(lake, spark, cluster) -> None:
    """The next month ingested: by the rerun in the ingest-kill test, else here (test run alone)."""
    if NEXT not in runlog.latest_run(spark, lake.config(run_date=NEXT), "ingest"):
        Submitted(cluster, lake, "ingest-next", "ingest", ["--run-date", NEXT]).ok()


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


def kill_worker_mid_job(cluster, job, ready: str, delay: float) -> list[int]:
    """SIGKILL worker 1 and its executor once ``ready`` is in the job's log, ``delay`` s later."""
    wait_for(lambda: ready in job.log_text() and cluster.executors(1) and cluster.executors(2),
             f"'{ready}' with an executor on each worker", job)
    time.sleep(delay)
    assert job.poll() is None, f"the job ended before the fault\n{job.describe()}"
    executor_pids = [p.pid for p in cluster.executors(1)]
    killed = cluster.kill_worker(1)
    assert executor_pids and set(executor_pids) <= set(killed)
    print(f"[cluster] killed worker 1 and its executor: pids {killed} at {time.time() - job.started:.1f} s")
    return killed


def restart_worker(cluster) -> None:
    cluster.start_worker(1)
    cluster.wait_alive_workers(2)


def test_worker_killed_during_training_the_job_still_finishes(cluster, lake, spark):
    job = Submitted(cluster, lake, "train-worker-kill", "train", [*TRAIN_SETTINGS, "--run-date", RUN])
    kill_worker_mid_job(cluster, job, "training input", 2.0)          # into the model fits
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
    restart_worker(cluster)


def saved_models(lake: Lake) -> set[str]:
    """Every saved model folder: ``<models>/<version>/<model type>``."""
    return {str(p.parent) for p in (lake.root / "lakehouse" / "models").glob("v*/*/metadata")}


def registry_rows(spark, lake: Lake) -> list:
    return spark.read.format("delta").load(lake.table("models/registry")).collect()


def assert_registry_consistent(spark, lake: Lake) -> None:
    """Every registry row has its saved model, every saved model its row, one number per run."""
    rows = registry_rows(spark, lake)
    assert {r["model_path"] for r in rows if r["model_path"]} == saved_models(lake)
    numbers = {}
    for r in rows:
        numbers.setdefault(r["version_number"], set()).add(r["run_id"])
    assert all(len(runs) == 1 for runs in numbers.values()), numbers
    versions = spark.read.format("delta").load(lake.table("models/versions")).collect()
    assert len({v["version_number"] for v in versions}) == len(versions) == len({v["run_id"] for v in versions})


def test_driver_killed_during_training_then_its_rerun_beside_another_training(cluster, lake, spark):
    """Killed after a model was saved and before the registry rows: the rerun of the run id keeps
    its version number, saves over the same folders and registers them. A second training runs at
    the same time and gets the next version: two trainings at once never share a version."""
    run, other = "2026-10-02", "2026-10-03"
    before = saved_models(lake)
    job = Submitted(cluster, lake, "train-driver-kill", "train", [*TRAIN_SETTINGS, "--run-date", run])
    new = wait_for(lambda: saved_models(lake) - before, "a model saved by the run", job, interval=0.1)
    job.kill()
    print(f"[cluster] driver killed at {time.time() - job.started:.1f} s, saved: {sorted(new)}")
    assert not [r for r in registry_rows(spark, lake) if r["run_id"] == run]   # no row yet: none claims a model
    jobs = [Submitted(cluster, lake, f"train-{r}", "train", [*TRAIN_SETTINGS, "--run-date", r], cores=1)
            for r in (run, other)]
    versions = [j.ok()["result"]["version"] for j in jobs]
    assert {Path(m).parent.name for m in new} == {versions[0]}           # the rerun: the same version again
    assert len(set(versions)) == 2 and all(v.endswith(r) for v, r in zip(versions, (run, other)))
    assert_overlap(cluster, [j.name for j in jobs])
    assert_registry_consistent(spark, lake)


def test_driver_killed_during_ingest_then_the_rerun_completes_it(cluster, lake, spark):
    """The three bronze tables commit one by one: a run killed between them has no run log row, so
    no later stage takes it for the latest ingest; its rerun replaces whatever it had written.
    The run is the next month's, scored by the tests below."""
    run = NEXT
    users = lake.table("bronze/users")
    seen = {v for v, _ in commits(users)}
    job = Submitted(cluster, lake, "ingest-driver-kill", "ingest", ["--run-date", run])
    wait_for(lambda: {v for v, _ in commits(users)} - seen, "a bronze table committed", job, interval=0.05)
    job.kill()
    print(f"[cluster] ingest driver killed at {time.time() - job.started:.1f} s")
    reader = lake.config(run_date="2026-12-31")
    assert runlog.latest_run(spark, reader, "ingest")[:1] == [RUN]          # the killed run is not "latest"
    assert runlog.read_latest(spark, reader, users, "ingest")[1] == RUN
    summary = Submitted(cluster, lake, "ingest-rerun", "ingest", ["--run-date", run]).ok()
    assert summary["result"]["reconciled"]
    assert bronze_counts(spark, lake, run) == REGIONS
    assert spark.read.format("delta").load(users).where(F.col("run_id") == run).count() == N_TRAIN
    assert runlog.read_latest(spark, reader, users, "ingest")[1] == run


def test_worker_killed_while_scores_are_written_the_job_still_finishes(cluster, lake, spark, model):
    bronze = bronze_counts(spark, lake)
    job = Submitted(cluster, lake, "score-worker-kill", "score", [*SCORE_SETTINGS, "--run-date", RUN])
    kill_worker_mid_job(cluster, job, "loaded model", 1.0)
    summary = job.ok()
    assert summary["result"]["users"] == sum(bronze.values())
    assert LOST_EXECUTOR.search(job.log_text()), f"no executor loss in the driver log\n{job.describe()}"
    assert region_counts(spark, lake.table("gold/scores"), RUN) == bronze
    ranks = (spark.read.format("delta").load(lake.table("gold/scores")).where(F.col("run_id") == RUN)
             .groupBy("region").agg(F.count("*").alias("n"), F.countDistinct("rank").alias("d"),
                                    F.max("rank").alias("m")).collect())
    assert all(r["n"] == r["d"] == r["m"] for r in ranks)                     # each rank once, 1..n
    restart_worker(cluster)


def month_state(spark, path: str, run_id: str) -> list[tuple]:
    """(region, rows, last scored_at) of one run in the scores table."""
    rows = (spark.read.format("delta").load(path).where(F.col("run_id") == run_id).groupBy("region")
            .agg(F.count("*").alias("n"), F.max("scored_at").alias("at")).collect())
    return sorted((r["region"], r["n"], r["at"]) for r in rows)


def assert_overlap(cluster, names: list[str]) -> list[tuple[float, float]]:
    """The applications of the jobs ``names`` ran at the same time (their spans on the master overlap)."""
    apps = {a["name"]: a for a in (cluster.state() or {}).get("completedapps", [])}
    missing = [n for n in names if f"prospects-{n}" not in apps]
    assert not missing, f"applications {missing} not on the master: {sorted(apps)}"
    spans = [(apps[f"prospects-{n}"]["starttime"] / 1000.0,
              (apps[f"prospects-{n}"]["starttime"] + apps[f"prospects-{n}"]["duration"]) / 1000.0) for n in names]
    assert max(s for s, _ in spans) < min(e for _, e in spans), f"the runs did not overlap: {spans}"
    return spans


def test_two_scoring_runs_at_once_for_different_regions(cluster, lake, spark, model):
    path = lake.table("gold/scores")
    bronze = bronze_counts(spark, lake)
    if not Path(path, "_delta_log").is_dir():          # test run alone: score the run once first
        Submitted(cluster, lake, "score-base", "score", [*SCORE_SETTINGS, "--run-date", RUN]).ok()

    def state():
        return {region: (n, at) for region, n, at in month_state(spark, path, RUN)}

    before, v0 = state(), max(v for v, _ in commits(path))
    jobs = [Submitted(cluster, lake, f"score-only-{r}", "score",
                      [*SCORE_SETTINGS, "--set", f"score.only_regions=[{r}]", "--run-date", RUN], cores=1)
            for r in ("A", "B")]
    summaries = [j.ok() for j in jobs]
    assert [s["result"]["regions"] for s in summaries] == [{"A": bronze["A"]}, {"B": bronze["B"]}]
    spans = assert_overlap(cluster, [j.name for j in jobs])
    after = state()
    assert {r: n for r, (n, _) in after.items()} == bronze                 # nothing lost, no duplicates
    for r in ("A", "B"):
        assert before.get(r) is None or after[r][1] > before[r][1], r      # re-scored
    for r in ("C", "D"):
        assert after.get(r) == before.get(r), r                            # untouched
    new = [(v, info["operationParameters"]["predicate"]) for v, info in commits(path)
           if v > v0 and is_region_write(info)]
    assert len(new) == 2 and {("'A'" in p) for _, p in new} == {True, False}, new
    print(f"[cluster] concurrent region runs, application spans {spans}: commits {new}")


def test_next_month_scores_killed_mid_write_then_appended_beside_the_previous_month(
        cluster, lake, spark, model, next_month):
    """One commit writes the run's scores: killed while its files are written, the table keeps its
    previous state and no version ever holds part of a region. The rerun completes the new month,
    which appends: the previous month's scores stay as they were, and time travel (by version and
    by timestamp) reads the table as it was before the month."""
    from delta.tables import DeltaTable

    path = lake.table("gold/scores")
    if not Path(path, "_delta_log").is_dir():           # test run alone: score the first month first
        Submitted(cluster, lake, "score-base-2", "score", [*SCORE_SETTINGS, "--run-date", RUN]).ok()
    bronze = bronze_counts(spark, lake, NEXT)
    assert bronze == REGIONS
    run_before = month_state(spark, path, RUN)
    version_before = DeltaTable.forPath(spark, path).history(1).first()["version"]

    job = Submitted(cluster, lake, "score-driver-kill", "score", [*SCORE_SETTINGS, "--run-date", NEXT])
    files = wait_for(lambda: list(Path(path).glob(f"run_id={NEXT}/region=*/*.parquet")),
                     "score files of the run on disk", job, interval=0.05)
    job.kill()
    print(f"[cluster] driver killed at {time.time() - job.started:.1f} s with {len(files)} data file(s) written")
    latest = DeltaTable.forPath(spark, path).history(1).first()["version"]
    for version in range(version_before + 1, latest + 1):
        counts = region_counts(spark, path, NEXT, version)
        assert all(counts[r] == bronze[r] for r in counts), (version, counts, bronze)   # whole or absent
    now = region_counts(spark, path, NEXT)
    assert now in ({}, bronze), now
    on_disk = len(list(Path(path).rglob("*.parquet")))
    live = len(spark.read.format("delta").load(path).inputFiles())
    print(f"[cluster] after the kill: version {latest}, run {NEXT} regions {sorted(now)}; "
          f"{on_disk - live} data file(s) on disk not in the table")

    summary = Submitted(cluster, lake, "score-next", "score", [*SCORE_SETTINGS, "--run-date", NEXT]).ok()
    assert summary["run_id"] == NEXT and summary["result"]["bronze_run_id"] == NEXT
    assert summary["result"]["users"] == sum(bronze.values())
    assert region_counts(spark, path, NEXT) == bronze
    scores = spark.read.format("delta").load(path).where(F.col("run_id") == NEXT)
    assert scores.select("user_id").distinct().count() == sum(bronze.values())
    summary_rows = spark.read.format("delta").load(lake.table("gold/region_summary")).where(F.col("run_id") == NEXT)
    assert {r["region"]: r["users"] for r in summary_rows.collect()} == bronze
    assert month_state(spark, path, RUN) == run_before                     # the previous month untouched

    # time travel: the table as it was before the new month
    assert region_counts(spark, path, NEXT, version_before) == {}
    assert region_counts(spark, path, RUN, version_before) == {r: n for r, n, _ in run_before}
    hist = DeltaTable.forPath(spark, path).history().where(F.col("version") == version_before).first()
    as_of = (spark.read.format("delta").option("timestampAsOf", hist["timestamp"].isoformat(sep=" "))
             .load(path).where(F.col("run_id") == NEXT).count())
    assert as_of == 0

    # both months stay in bronze, each complete
    users = lake.table("bronze/users")
    per_run = {r["run_id"]: r["count"] for r in spark.read.format("delta").load(users).groupBy("run_id").count()
               .collect()}
    assert (per_run[RUN], per_run[NEXT]) == (N_TRAIN, N_TRAIN)
    assert bronze_counts(spark, lake, RUN) == REGIONS
