"""A real Spark standalone cluster on 127.0.0.1 for tests: one master, N workers, all from pyspark.

Started with PySpark's own ``bin/spark-class`` (no download): ``org.apache.spark.deploy.master.Master``
and ``org.apache.spark.deploy.worker.Worker`` JVMs, each in its own process group, on free ports.
Every process is ended by its process id at teardown; logs (master, workers, executors) stay under
the given directory and are printed when something fails.

    with StandaloneCluster(tmp_path / "cluster", workers=2) as cluster:
        subprocess.run(["./spark-submit.sh", "--master", cluster.master_url, "generate", ...])
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from prospects.core.jars import spark_home

ROOT = Path(__file__).resolve().parents[1]
# How long a submitted run, an awaited event or a daemon's start may take before a test calls it
# hung. A guard against hangs, not a speed check: in CI three test processes share two cores with
# the clusters' JVMs, and a run takes two to four times what it takes alone (docs/benchmarks/NOTES.md).
# A run or daemon that ends early still fails at once: the waits poll the process.
PATIENCE = 1800.0
START_PATIENCE = 600.0


def free_port() -> int:
    """A TCP port nobody listens on right now (bound to 127.0.0.1 and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - local URL only
        return json.loads(resp.read().decode())


def tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"<{exc}>"


class ClusterError(RuntimeError):
    """The cluster did not start or behave; the message carries the log tails."""


class StandaloneCluster:
    """Spark standalone master + workers on 127.0.0.1, started and stopped by process id.

    Attributes:
        master_url: ``spark://127.0.0.1:<port>`` to pass to ``--master``.
        ui_url: master web UI; ``<ui_url>/json`` is the cluster state.
        log_dir: stdout/stderr of every daemon (``master.log``, ``worker-<i>.log``).
        work_dir: workers' work dirs (one sub-folder per application with executor stdout/stderr).
    """

    def __init__(self, base: Path, workers: int = 2, cores: int = 1, memory: str = "1g",
                 start_timeout: float = START_PATIENCE):
        self.base = Path(base)
        self.log_dir = self.base / "logs"
        self.work_dir = self.base / "work"
        self.n_workers, self.cores, self.memory = workers, cores, memory
        self.start_timeout = start_timeout
        self.port, self.ui_port = free_port(), free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"
        self.ui_url = f"http://127.0.0.1:{self.ui_port}"
        self.master: subprocess.Popen | None = None
        self.workers: dict[int, subprocess.Popen] = {}
        self._files: list = []

    # -- processes -----------------------------------------------------------------------------
    def env(self) -> dict:
        env = dict(os.environ)
        home = spark_home()
        env.update(SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", SPARK_LOG_DIR=str(self.log_dir),
                   SPARK_WORKER_DIR=str(self.work_dir), SPARK_PID_DIR=str(self.base),
                   PYSPARK_PYTHON=sys.executable, SPARK_NO_DAEMONIZE="1")
        env.pop("PYSPARK_GATEWAY_PORT", None)
        env.pop("PYSPARK_GATEWAY_SECRET", None)
        return env

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self._files.append(out)
        cmd = [str(spark_home() / "bin" / "spark-class"), *args]
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env(), cwd=str(self.base),
                                start_new_session=True, preexec_fn=die_with_parent)

    def start_worker(self, index: int) -> subprocess.Popen:
        """Start (or restart) worker ``index`` (1-based) and return its process."""
        proc = self._spawn(f"worker-{index}", [
            "org.apache.spark.deploy.worker.Worker", self.master_url, "--host", "127.0.0.1",
            "--cores", str(self.cores), "--memory", self.memory, "--webui-port", str(free_port()),
            "--work-dir", str(self.work_dir)])
        self.workers[index] = proc
        return proc

    def start(self) -> StandaloneCluster:
        self.base.mkdir(parents=True, exist_ok=True)
        self.master = self._spawn("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                             "--port", str(self.port), "--webui-port", str(self.ui_port)])
        try:
            self._wait(lambda: self.state() is not None, "master web UI answering")
            for i in range(1, self.n_workers + 1):
                self.start_worker(i)
            self.wait_alive_workers(self.n_workers)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """End every daemon (and its children: executors, Python workers) by process id."""
        procs = [p for p in [*self.workers.values(), self.master] if p is not None]
        for proc in procs:
            kill_tree(proc.pid, signal.SIGTERM)
        deadline = time.time() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                kill_tree(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for f in self._files:
            f.close()
        self._files.clear()
        for jar in self.work_dir.rglob("*.jar"):      # executors' copies of --jars; logs stay
            jar.unlink(missing_ok=True)

    def __enter__(self) -> StandaloneCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict | None:
        """The master's JSON state (workers, activeapps, completedapps), None when it does not answer
        yet: no listener, an error status, or (while the master starts) an empty or cut body."""
        try:
            return http_json(f"{self.ui_url}/json")
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def alive_workers(self) -> list[dict]:
        st = self.state() or {}
        return [w for w in st.get("workers", []) if w.get("state") == "ALIVE"]

    def wait_alive_workers(self, n: int) -> None:
        self._wait(lambda: len(self.alive_workers()) >= n, f"{n} ALIVE workers")

    def _wait(self, ready, what: str, timeout: float | None = None) -> None:
        deadline = time.time() + (timeout or self.start_timeout)
        while time.time() < deadline:
            if self.master is not None and self.master.poll() is not None:
                raise ClusterError(f"master exited with {self.master.returncode}\n{self.logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise ClusterError(f"timed out waiting for {what}\n{self.logs()}")

    def executors(self, index: int) -> list[psutil.Process]:
        """Executor JVMs (CoarseGrainedExecutorBackend) started by worker ``index``."""
        try:
            children = psutil.Process(self.workers[index].pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        out = []
        for child in children:
            try:
                if "CoarseGrainedExecutorBackend" in " ".join(child.cmdline()):
                    out.append(child)
            except psutil.Error:
                continue
        return out

    def kill_worker(self, index: int) -> list[int]:
        """SIGKILL worker ``index`` and every process under it (its executor, Python workers).

        Returns:
            the process ids killed (worker first).
        """
        proc = self.workers[index]
        return kill_tree(proc.pid, signal.SIGKILL)

    def logs(self, lines: int = 40) -> str:
        """Tails of every daemon and executor log, for failure messages."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            parts.append(f"--- {path} ---\n{tail(path, lines)}")
        for path in sorted(self.work_dir.rglob("std*")):
            parts.append(f"--- {path} ---\n{tail(path, lines // 2)}")
        return "\n".join(parts)


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the test process dies (even by SIGKILL or a timeout),
    so no daemon outlives the tests (Linux prctl PR_SET_PDEATHSIG; a no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def kill_tree(pid: int, sig: int) -> list[int]:
    """Send ``sig`` to ``pid`` and all its descendants (children first found, then the parent)."""
    try:
        parent = psutil.Process(pid)
        procs = [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    killed = []
    for p in procs:
        try:
            p.send_signal(sig)
            killed.append(p.pid)
        except psutil.NoSuchProcess:
            continue
    return killed
