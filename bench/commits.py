"""What one small Delta commit costs, and whether small commits gain from being written side by side.

    python -m bench.commits [--repeats 4] [--work /tmp/commit_bench]

A stage's fixed cost is mostly small commits (the profile's ten eda_* tables, the registry,
metrics and curves, the run log). Per kind of write of a 45-row table: the median seconds and the
Spark jobs it ran; then ten small tables written by ``tables.write_concurrently`` against one after
the other, alternating, in one Spark session (docs/benchmarks/NOTES.md).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from prospects.core import tables

ROWS = [(f"c{i}", i, float(i)) for i in range(45)]


def small(spark: SparkSession, run: str) -> DataFrame:
    return spark.createDataFrame(ROWS, "column string, n long, v double").withColumn("run_id", F.lit(run))


def timed(spark: SparkSession, fn: Callable[[], object]) -> tuple[float, int]:
    """Seconds and Spark jobs of ``fn()``."""
    group = f"commit-bench-{time.time_ns()}"
    spark.sparkContext.setJobGroup(group, group)
    started = time.perf_counter()
    fn()
    seconds = time.perf_counter() - started
    spark.sparkContext.setJobGroup("", "")
    return seconds, len(spark.sparkContext.statusTracker().getJobIdsForGroup(group))


def one_commit(spark: SparkSession, root: str, repeats: int) -> list[str]:
    """A new table, replaceWhere of a new run, replaceWhere of the same run, a blind append."""
    kinds = {
        "create a table": lambda i: tables.replace_partition(small(spark, "r"), f"{root}/new{i}", {"run_id": "r"},
                                                             ["run_id"]),
        "replaceWhere, a new run": lambda i: tables.replace_partition(small(spark, f"r{i}"), f"{root}/runs",
                                                                      {"run_id": f"r{i}"}, ["run_id"]),
        "replaceWhere, the same run": lambda i: tables.replace_partition(small(spark, "r"), f"{root}/same",
                                                                         {"run_id": "r"}, ["run_id"]),
        "append": lambda i: small(spark, f"r{i}").write.format("delta").mode("append").partitionBy("run_id")
        .save(f"{root}/appended"),
    }
    lines = []
    for name, write in kinds.items():
        runs = [timed(spark, lambda i=i: write(i)) for i in range(repeats + 1)][1:]   # the first warms up
        lines.append(f"{name}: median {statistics.median(s for s, _ in runs):.2f} s, "
                     f"Spark jobs {sorted({j for _, j in runs})}")
    return lines


def ten_tables(spark: SparkSession, root: str, repeats: int) -> str:
    """Ten small tables written side by side (four threads) and one after the other, alternating."""
    def writes(run: str) -> dict[str, Callable[[], object]]:
        return {f"t{k}": (lambda k=k: tables.replace_partition(small(spark, run), f"{root}/t{k}", {"run_id": run},
                                                               ["run_id"])) for k in range(10)}

    for write in writes("warm").values():
        write()
    seconds: dict[str, list[float]] = {"side by side": [], "one after the other": []}
    for i in range(repeats):
        for mode in seconds:
            batch = writes(f"{mode[0]}{i}")
            started = time.perf_counter()
            if mode == "side by side":
                tables.write_concurrently(batch)
            else:
                for write in batch.values():
                    write()
            seconds[mode].append(round(time.perf_counter() - started, 1))
    return "ten tables: " + ", ".join(f"{m} {statistics.median(v):.1f} s {v}" for m, v in seconds.items())


def main(argv: list[str] | None = None) -> int:
    from prospects.core.config import load_config
    from prospects.core.session import build_session

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--work", default="/tmp/commit_bench")
    args = p.parse_args(argv)
    shutil.rmtree(args.work, ignore_errors=True)
    spark = build_session(load_config(), app_name="prospects-commit-bench")
    for line in [*one_commit(spark, args.work, args.repeats), ten_tables(spark, args.work, args.repeats)]:
        print("BENCH " + line, flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
