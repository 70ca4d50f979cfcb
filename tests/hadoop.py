"""A real HDFS (and YARN) on 127.0.0.1 for the tests, from Hadoop's own minicluster artifact.

``org.apache.hadoop:hadoop-client-minicluster`` at PySpark's Hadoop version (3.5.0) is fetched once
with the product's jars (``make setup``: ``python -m tests.hadoop fetch``), with what its test
classes need at run time (JUnit's assertions, log4j 1's API, Bouncy Castle for YARN's proxy CA),
and used offline afterwards. ``tests/java/MiniClusters.java`` (compiled here once with ``javac``)
starts a MiniDFSCluster (namenode + datanode) and, when asked, a MiniYARNCluster (ResourceManager +
NodeManager) in its own JVM, on free loopback ports, and writes a client configuration folder
(``HADOOP_CONF_DIR``: core-site.xml, hdfs-site.xml, yarn-site.xml). The JVM is ended by its process
id; its log and the containers' logs stay under the test's folder and are printed on failure.

    with MiniHadoop(tmp_path / "hadoop", yarn=True) as hadoop:
        subprocess.run([...], env={**os.environ, **hadoop.env()})
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.cluster import ROOT, START_PATIENCE, ClusterError, die_with_parent, free_port, kill_tree, tail

PACKAGES = ",".join([
    "org.apache.hadoop:hadoop-client-minicluster:3.5.0",
    "org.junit.jupiter:junit-jupiter-api:5.10.0",       # org.apache.hadoop.test.GenericTestUtils asserts
    "junit:junit:4.13.2",
    "ch.qos.reload4j:reload4j:1.2.25",                  # org.apache.log4j, used by the ResourceManager
    "org.slf4j:slf4j-reload4j:1.7.36",
    "org.bouncycastle:bcprov-jdk18on:1.80",             # the ResourceManager's proxy certificate authority
    "org.bouncycastle:bcpkix-jdk18on:1.80",
])
SOURCE = ROOT / "tests" / "java" / "MiniClusters.java"
LOG4J = "log4j.rootLogger=WARN, out\nlog4j.appender.out=org.apache.log4j.ConsoleAppender\n" \
        "log4j.appender.out.layout=org.apache.log4j.PatternLayout\n" \
        "log4j.appender.out.layout.ConversionPattern=%d %p %c{1}: %m%n\n"


def jars_dir() -> Path:
    from prospects.core.config import load_config

    return ROOT / load_config().get("spark.jars_dir")


def jars() -> list[str]:
    """The minicluster's jars (fetched by ``make setup``)."""
    from prospects.core.jars import cached_jars

    found = cached_jars(jars_dir(), "minicluster", PACKAGES)
    if not found:
        raise ClusterError(f"Hadoop minicluster jars not cached in {jars_dir()}/minicluster: run `make setup`")
    return found


def classes() -> Path:
    """``MiniClusters.class``, compiled from the source once per version of it."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:16]
    out = ROOT / ".cache" / "minicluster-classes" / digest
    if not (out / "MiniClusters.class").is_file():
        out.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["javac", "-cp", os.pathsep.join(jars()), "-d", str(out), str(SOURCE)],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise ClusterError(f"javac {SOURCE} failed:\n{done.stderr}")
    return out


class MiniHadoop:
    """HDFS (and YARN when ``yarn``) on 127.0.0.1, started and stopped by process id.

    Attributes:
        fs: ``hdfs://127.0.0.1:<port>``, the file system's URI.
        conf_dir: the client configuration folder (``HADOOP_CONF_DIR``).
        log: the JVM's output.
    """

    def __init__(self, base: Path, yarn: bool = False, start_timeout: float = START_PATIENCE):
        self.base = Path(base)
        self.yarn = yarn
        self.conf_dir = self.base / "conf"
        self.log = self.base / "minicluster.log"
        self.port = free_port()
        self.fs = f"hdfs://127.0.0.1:{self.port}"
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None

    def start(self) -> MiniHadoop:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "log4j.properties").write_text(LOG4J)
        cp = os.pathsep.join([*jars(), str(classes())])
        cmd = ["java", "-Xmx1536m", f"-Dlog4j.configuration=file:{self.base / 'log4j.properties'}",
               f"-Dtest.build.data={self.base / 'data'}", "-cp", cp, "MiniClusters", str(self.base),
               str(self.conf_dir), str(self.port), *(["yarn"] if self.yarn else [])]
        out = open(self.log, "ab")  # noqa: SIM115 - closed by the child's end
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=str(self.base),
                                     start_new_session=True, preexec_fn=die_with_parent)
        out.close()
        deadline = time.time() + self.start_timeout
        while not (self.conf_dir / "ready").is_file():
            if self.proc.poll() is not None or time.time() > deadline:
                self.stop()
                raise ClusterError(f"Hadoop minicluster did not start (exit {self.proc.returncode}):\n{self.logs()}")
            time.sleep(0.5)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        kill_tree(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill_tree(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> MiniHadoop:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment of a process using this cluster as its Hadoop (spark-submit, Spark's shell)."""
        return {"HADOOP_CONF_DIR": str(self.conf_dir)}

    def container_logs(self) -> list[Path]:
        return sorted(self.base.glob("data/**/container_*/std*"))

    def logs(self, lines: int = 60) -> str:
        """Tails of the minicluster's log and of every YARN container's output."""
        parts = [f"--- {self.log} ---\n{tail(self.log, lines)}"]
        parts += [f"--- {p} ---\n{tail(p, lines // 2)}" for p in self.container_logs()[-8:]]
        return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.hadoop fetch``: the minicluster's jars into the jar cache (``make setup``)."""
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["fetch"]:
        print("usage: python -m tests.hadoop fetch", file=sys.stderr)
        return 2
    from prospects.core.jars import fetch

    found = fetch(jars_dir(), "minicluster", PACKAGES)
    print(f"{len(found)} jars for the Hadoop minicluster in {jars_dir()}/minicluster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
