"""Shared fixtures: one Spark session for the whole run, configs pointing at tmp_path."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lib"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("MPLBACKEND", "Agg")
# the key pair of the tests' S3 server (tests/s3.py): set before any JVM starts, so the S3A
# connector finds it in the environment as a job would find its own
from tests.s3 import CREDENTIALS  # noqa: E402

for _key, _value in CREDENTIALS.items():
    os.environ.setdefault(_key, _value)

from prospects.core.config import load_config  # noqa: E402

# The tests' session evaluates expressions interpreted instead of compiling each query to Java
# (whole-stage code generation and Spark's expression code generators off): on the tests' tens to
# thousands of rows, compiling a plan of 40-odd columns costs more than running it. Spark's two
# paths compute the same results (its own test suites run both); the compiled one, the product's
# default, runs wherever a job starts its own session: `make demo`, `make bench`, the notebooks,
# and the jobs that `make test-cluster` submits to the standalone cluster and to YARN.
# Its JVM collects garbage with the parallel collector: two test processes share two cores, and G1's
# concurrent threads took about 4 % more time on the tests' small stages (docs/benchmarks/NOTES.md).
TEST_SPARK = {
    "master": "local[2]",
    "driver_memory": "4g",
    "conf": {
        "spark.sql.shuffle.partitions": 4,
        "spark.default.parallelism": 4,
        "spark.ui.enabled": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.databricks.delta.snapshotPartitions": 1,
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.codegen.wholeStage": "false",
        "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.driver.extraJavaOptions": "-XX:+UseParallelGC",
    },
}


def deep_merge(a: dict, b: dict) -> dict:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tmp_settings(root: Path) -> dict:
    return {
        "spark": TEST_SPARK,
        "paths": {"raw": str(root / "raw"), "lakehouse": str(root / "lakehouse")},
    }


def run_job(job, use_case: str, settings: list[str], summary_file: Path, *more: str) -> dict:
    """A job's ``main(argv)`` as spark-submit calls it (on the tests' session): assert exit 0 and
    return its run summary's result. ``settings`` are ``--set`` values."""
    argv = ["--use-case", use_case, "--log-level", "WARNING", "--summary-file", str(summary_file), *more]
    for setting in settings:
        argv += ["--set", setting]
    code = job.main(argv)
    restore_test_conf()
    assert code == 0, summary_file.read_text() if summary_file.is_file() else argv
    return json.loads(summary_file.read_text())["result"]


_TEST_CONF: dict[str, str] = {}   # the tests' session's runtime conf as built (the spark fixture)


def restore_test_conf() -> None:
    """Put the tests' session back on its own runtime conf. A job run in this process applies its
    ``spark.conf`` (conf/local.yml's shuffle partitions, for one) to the shared session, through
    build_session's getOrCreate; later tests must not run on it."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None or not _TEST_CONF:
        return
    now = spark.conf.getAll
    for key in now.keys() - _TEST_CONF.keys():
        _change_conf(spark.conf.unset, key)
    for key, value in _TEST_CONF.items():
        if now.get(key) != value:
            _change_conf(spark.conf.set, key, value)


def _change_conf(change, *args: str) -> None:
    from pyspark.errors import AnalysisException

    try:
        change(*args)
    except AnalysisException as e:   # a core setting (driver memory): fixed for the session's life anyway
        if e.getCondition() != "CANNOT_MODIFY_CONFIG":
            raise


@pytest.fixture(autouse=True)
def _test_conf():
    restore_test_conf()   # after a module fixture that ran a job
    yield
    restore_test_conf()


@pytest.fixture(scope="session")
def spark():
    from prospects.core.session import build_session

    cfg = load_config(extra={"spark": {**TEST_SPARK, "s3a_jars": "always"}})   # the S3 tests share the session
    session = build_session(cfg, app_name="prospects-tests")
    _TEST_CONF.update(session.conf.getAll)
    yield session
    session.stop()


@pytest.fixture
def make_cfg(tmp_path):
    """``make_cfg(use_case="fiveg", overrides=[...], extra={...}, root=None)`` -> Config in tmp."""

    def _make(use_case: str = "fiveg", overrides=(), extra: dict | None = None, root: Path | None = None):
        settings = tmp_settings(root or tmp_path)
        if extra:
            settings = deep_merge(settings, extra)
        return load_config(use_case=use_case, overrides=list(overrides), extra=settings)

    return _make


# The longest test modules, longest first; the others follow in file order. With `--dist loadfile`
# and `--no-loadscope-reorder` (the Makefile's `make test`), pytest-xdist hands each worker that
# falls idle the next module in this order; the longest starting first keeps the two workers ending
# together, where its default order (by number of tests) can leave one worker alone with the last
# long module.
LONGEST_FIRST = ("test_ingest", "test_profile", "test_scoring", "test_train", "test_credit", "test_jobs",
                 "test_churn", "test_real_files", "test_bench", "test_features", "test_generator")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))   # stable: a module's order stays


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: runs against a real cluster or store started by the test "
                                       "(Spark standalone, HDFS, YARN, S3): `make test-cluster`")
