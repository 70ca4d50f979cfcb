"""Scoring micro-benchmark: the score modes side by side on generated regions (docs/scoring.md).

    python -m bench.scoring --users 10000000 --regions 10
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence

from pyspark.ml import PipelineModel, Transformer
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from prospects.core import tables
from prospects.core.config import Config, join_path
from prospects.scoring.scores import MODES, model_input_columns, score_regions, validate_regions, zero_filled

log = logging.getLogger(__name__)


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


def benchmark(spark: SparkSession, cfg: Config, regions: DataFrame, model: Transformer,
              modes: Sequence[str] = MODES, repeats: int = 1) -> list[dict]:
    """Time :func:`score_regions` in each mode on the same input, one after the other (same session).

    Returns:
        one record per (mode, repeat): mode, users, regions, seconds.
    """
    validated = validate_regions(regions, model_input_columns(model), may_be_empty=zero_filled(cfg),
                                 min_users=int(cfg.get("score.missing_column_min_users")))
    users = sum(validated.values())
    out = []
    for i in range(repeats):
        for mode in modes:
            res = score_regions(spark, cfg, model, 0.5, "bench", regions, mode=mode, validated=validated)
            out.append({"mode": mode, "repeat": i + 1, "users": users, "regions": len(validated),
                        "seconds": res["seconds"]})
            log.info("benchmark %s", out[-1])
    return out


def bench_main(argv: list[str] | None = None) -> int:
    """``python -m bench.scoring --users N --regions K --work DIR``: see docs/scoring.md."""
    from prospects.cli import setup_logging
    from prospects.core.config import load_config
    from prospects.core.session import build_session

    p = argparse.ArgumentParser(description="Benchmark the scoring modes on generated regions.")
    p.add_argument("--users", type=int, default=60_000)
    p.add_argument("--regions", type=int, default=2)
    p.add_argument("--work", default="/tmp/score_bench", help="folder for the generated regions and outputs")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--input", default=None, help="existing bronze-shaped Delta table (default: generate)")
    p.add_argument("--scheduler", default="FAIR", choices=["FAIR", "FIFO"], help="spark.scheduler.mode")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args(argv)
    setup_logging("INFO")
    work = args.work.rstrip("/")
    extra = {"spark": {"conf": {"spark.scheduler.mode": args.scheduler}}}
    cfg = load_config(overrides=[f"paths.lakehouse={work}/lakehouse_{args.users}", "run.id=bench",
                                 *args.overrides], extra=extra)
    spark = build_session(cfg, app_name="prospects-score-bench")
    source = args.input or join_path(work, f"regions_{args.users}_{args.regions}")
    if not tables.is_delta(spark, source):
        t = time.time()
        (bench_regions(spark, args.users, args.regions).write.format("delta").mode("overwrite")
         .partitionBy("run_id", "region").save(source))
        log.info("generated %d users in %d regions at %s in %.1f s", args.users, args.regions, source, time.time() - t)
    regions = tables.read(spark, source)
    model = bench_model(spark)
    results = benchmark(spark, cfg, regions, model, args.modes.split(","), args.repeats)
    for r in results:
        print(f"BENCH mode={r['mode']} repeat={r['repeat']} users={r['users']} regions={r['regions']} "
              f"seconds={r['seconds']} scheduler={spark.sparkContext.getConf().get('spark.scheduler.mode', 'FIFO')} "
              f"master={spark.sparkContext.master}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(bench_main())
