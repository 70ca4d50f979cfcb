"""Scoring micro-benchmark: ranking scored users per region by a window per region (one task per
region) against one sort across all tasks (docs/scoring.md).

    python -m bench.scoring --users 10000000 --regions 1
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from pyspark.ml import PipelineModel, Transformer
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from prospects.core import tables
from prospects.core.config import Config, join_path
from prospects.scoring.scores import (
    ScoreSettings,
    gold_rows,
    model_input_columns,
    probabilities,
    rank_in_regions,
    validate_regions,
    zero_filled,
)

log = logging.getLogger(__name__)
METHODS = ("window", "sort")


# ---------------------------------------------------------------------------------------------
def bench_regions(spark: SparkSession, n_users: int, n_regions: int, seed: int = 42,
                  run_id: str = "bench", first_id: int = 1_000_000_000) -> DataFrame:
    """A bronze-shaped region frame: ``n_users`` generated users split evenly over ``n_regions``.

    Regions are named ``R00``, ``R01``, ...; each holds a contiguous block of user ids.
    """
    from prospects.synthetic import generator as gen

    per = -(-n_users // n_regions)
    df = gen.users(spark, first_id, n_users, seed, partitions=max(1, n_users // 500_000))
    region = F.concat(F.lit("R"), F.lpad(F.floor((F.col("user_id") - first_id) / per).cast("string"), 2, "0"))
    return (df.drop("product_no", "_eta").withColumn("region", region)
            .withColumn("run_id", F.lit(run_id)).withColumn("ingested_at", F.current_timestamp()))


def bench_model(spark: SparkSession, n_train: int = 20_000, seed: int = 7) -> PipelineModel:
    """The cheap benchmark model: StringIndexer(X1, X5) + Imputer + VectorAssembler (12 columns) +
    LogisticRegression, trained on ``n_train`` generated labelled users. Cheap on purpose: the
    benchmark measures the scoring machinery (read, transform, rank windows, Delta writes)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import Imputer, StringIndexer, VectorAssembler

    from prospects.synthetic import generator as gen

    train = gen.with_labels(gen.users(spark, 1, n_train, seed, 2), seed, -2.2).drop("probability", "_eta")
    nums = ["X2", "X3", "X4", "X6", "X9", "X12", "X26", "X29", "X36", "X38", "X42", "X43"]
    pipe = Pipeline(stages=[
        StringIndexer(inputCols=["X1", "X5"], outputCols=["_X1_idx", "_X5_idx"], handleInvalid="keep"),
        Imputer(inputCols=nums, outputCols=[f"_{c}_imp" for c in nums], strategy="median"),
        VectorAssembler(inputCols=["_X1_idx", "_X5_idx", *[f"_{c}_imp" for c in nums]], outputCol="features"),
        LogisticRegression(maxIter=20, labelCol="label"),
    ])
    return pipe.fit(train)


def window_ranks(scored: DataFrame, deciles: int) -> DataFrame:
    """The ranking scoring used before :func:`prospects.scoring.scores.rank_in_regions`: a window
    per region (one task sorts a whole region). Kept here as the benchmark's baseline."""
    order = Window.partitionBy("region").orderBy(F.col("probability").desc(), F.col("user_id").asc())
    return scored.select("*", F.row_number().over(order).cast("long").alias("rank"),
                         F.ntile(deciles).over(order).cast("int").alias("decile"))


def ranked_by(method: str, scored: DataFrame, deciles: int) -> tuple[DataFrame, DataFrame | None]:
    if method == "window":
        return window_ranks(scored, deciles), None
    return rank_in_regions(scored, deciles)


def tasks_of_group(spark: SparkSession, group: str) -> dict:
    """Stages and tasks of the jobs in ``group``: how many, and the most tasks of one stage."""
    tracker = spark.sparkContext.statusTracker()
    stages = [tracker.getStageInfo(s) for j in tracker.getJobIdsForGroup(group)
              for s in (tracker.getJobInfo(j).stageIds if tracker.getJobInfo(j) else [])]
    stages = [s for s in stages if s is not None]
    return {"jobs": len(tracker.getJobIdsForGroup(group)), "stages": len(stages),
            "tasks": sum(s.numTasks for s in stages), "max_stage_tasks": max((s.numTasks for s in stages), default=0)}


def benchmark(spark: SparkSession, cfg: Config, regions: DataFrame, model: Transformer,
              methods: Sequence[str] = METHODS, repeats: int = 1) -> list[dict]:
    """Time scoring, ranking and writing ``regions`` by each ranking method, one after the other.

    Returns:
        one record per (method, repeat): users, regions, seconds, jobs, stages, tasks.
    """
    validated = validate_regions(regions, model_input_columns(model), may_be_empty=zero_filled(cfg),
                                 min_users=int(cfg.get("score.missing_column_min_users")))
    s = ScoreSettings.from_config(cfg, threshold=0.5, version="bench")
    out = []
    for i in range(repeats):
        for method in methods:
            group = f"bench-{method}-{i}"
            spark.sparkContext.setJobGroup(group, group)
            started = time.time()
            scored = regions.transform(probabilities(model, "user_id"))
            ranked, cached = ranked_by(method, scored, s.deciles)
            tables.replace_partition(ranked.transform(gold_rows(s)), cfg.table("gold_scores"),
                                     where={"run_id": s.run_id}, partition_by=["run_id", "region"])
            seconds = round(time.time() - started, 2)
            if cached is not None:
                cached.unpersist()
            out.append({"method": method, "repeat": i + 1, "users": sum(validated.values()),
                        "regions": len(validated), "seconds": seconds, **tasks_of_group(spark, group)})
            log.info("benchmark %s", out[-1])
    spark.sparkContext.setJobGroup("", "")
    return out


def bench_main(argv: list[str] | None = None) -> int:
    """``python -m bench.scoring --users N --regions K --work DIR``: see docs/scoring.md."""
    from prospects.cli import setup_logging
    from prospects.core.config import load_config
    from prospects.core.session import build_session

    p = argparse.ArgumentParser(description="Benchmark the ranking of scored users per region.")
    p.add_argument("--users", type=int, default=60_000)
    p.add_argument("--regions", type=int, default=1)
    p.add_argument("--work", default="/tmp/score_bench", help="folder for the generated regions and outputs")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args(argv)
    setup_logging("INFO")
    work = args.work.rstrip("/")
    cfg = load_config(overrides=[f"paths.lakehouse={work}/lakehouse_{args.users}", "run.id=bench", *args.overrides])
    spark = build_session(cfg, app_name="prospects-score-bench")
    source = join_path(work, f"regions_{args.users}_{args.regions}")
    if not tables.is_delta(spark, source):
        t = time.time()
        (bench_regions(spark, args.users, args.regions).write.format("delta").mode("overwrite")
         .partitionBy("run_id", "region").save(source))
        log.info("generated %d users in %d regions at %s in %.1f s", args.users, args.regions, source, time.time() - t)
    results = benchmark(spark, cfg, tables.read(spark, source), bench_model(spark), args.methods.split(","),
                        args.repeats)
    for r in results:
        print("BENCH " + " ".join(f"{k}={v}" for k, v in r.items()) + f" master={spark.sparkContext.master}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(bench_main())
