"""The JVM's class-data archive: Spark's, Delta's and Spark ML's classes parsed and verified once.

A local session's JVM loads about 27,000 classes by the end of its first Delta commit and model
fit, and on every run it reads, parses and verifies them again. HotSpot's class-data sharing keeps
them in an archive instead: ``make setup`` runs a small workload in a JVM that writes every class it
loaded to an archive as it exits (``-XX:ArchiveClassesAtExit``), and every later session that
:func:`prospects.core.session.build_session` starts maps that archive (``-XX:SharedArchiveFile``).

The archive's name records what it was made from (the ``java`` binary, the Spark installation and
its version, the Delta package), so another JDK or Spark never meets a stale one; a JVM that still
finds it unusable (a changed class path) prints one warning line and starts without it. A
half-written archive would stop the JVM from starting, so it is written under a temporary name and
renamed only once its JVM has exited. spark-submit.sh adds it to a driver that runs here (client
mode); a driver or executor on a cluster's machines never gets it.

``python -m prospects.core.class_archive build`` (``make setup``) makes it; conf
``spark.class_archive`` names its folder (null: no archive).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from prospects.core.config import Config
from prospects.core.jars import spark_home

QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"   # the dump lists every class it skips (lambdas, proxies)
EXIT_PATIENCE = 600     # seconds for the workload's JVM to write the archive and exit


def java_binary() -> str:
    """The ``java`` that PySpark starts: ``$JAVA_HOME/bin/java``, else the first on PATH."""
    if os.environ.get("JAVA_HOME"):
        return str(Path(os.environ["JAVA_HOME"]) / "bin" / "java")
    return shutil.which("java") or "java"


def archive_file(cfg: Config, root: str | Path) -> Path | None:
    """Where the archive of this JDK, PySpark and Delta lives; None when conf turns it off."""
    import pyspark

    folder = cfg.get("spark.class_archive")
    if not folder:
        return None
    java = Path(java_binary()).resolve()
    size = java.stat().st_size if java.is_file() else 0
    made_of = f"{java}|{size}|{spark_home().resolve()}|{pyspark.__version__}|{cfg.get('spark.delta_package')}"
    key = hashlib.sha256(made_of.encode()).hexdigest()[:12]
    return Path(root) / folder / f"spark-{pyspark.__version__}-{key}.jsa"


def java_option(cfg: Config, root: str | Path) -> str | None:
    """The driver JVM option that maps the archive, when it has been built."""
    path = archive_file(cfg, root)
    return f"-XX:SharedArchiveFile={path.absolute()}" if path is not None and path.is_file() else None


def build(cfg: Config, root: str | Path) -> Path | None:
    """Make the archive unless it exists: the workload runs in a child process (its JVM must start
    with the option and exit to write it). Returns the archive, or None when conf turns it off.

    Raises:
        RuntimeError: the workload failed or its JVM wrote no archive.
    """
    path = archive_file(cfg, root)
    if path is None or path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log_file = path.with_suffix(".log")
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".building-") as work, open(log_file, "w") as out:
        partial = Path(work) / path.name
        done = subprocess.run([sys.executable, "-m", "prospects.core.class_archive", "dump", str(partial),
                               "--conf-dir", str(cfg.conf_dir)], cwd=root, stdout=out, stderr=subprocess.STDOUT)
        if done.returncode != 0 or not partial.is_file():
            raise RuntimeError(f"no class archive written (exit {done.returncode}); the workload's output: {log_file}")
        partial.replace(path)
    for stale in path.parent.glob("spark-*.jsa"):     # made of another JDK or Spark: never mapped again
        if stale != path:
            stale.unlink()
    return path


def dump(partial: str, conf_dir: str | None = None) -> None:
    """Run the workload in a session whose JVM writes its classes to ``partial`` as it exits, and
    wait for that JVM to exit (this process's end alone would not wait for it)."""
    from pyspark import SparkContext

    from prospects.core.config import load_config
    from prospects.core.session import build_session

    conf = dict(load_config(conf_dir=conf_dir).get("spark.conf") or {})
    own = str(conf.get("spark.driver.extraJavaOptions", ""))
    conf["spark.driver.extraJavaOptions"] = f"{own} -XX:ArchiveClassesAtExit={partial} {QUIET}".strip()
    cfg = load_config(conf_dir=conf_dir, extra={"spark": {"class_archive": None, "conf": conf}})
    spark = build_session(cfg, app_name="class-archive")
    with tempfile.TemporaryDirectory(prefix="class-archive-") as folder:
        exercise(spark, folder)
    gateway = SparkContext._gateway   # noqa: SLF001 - the JVM process PySpark started
    spark.stop()
    gateway.shutdown()
    gateway.proc.stdin.close()   # the gateway exits on end of input, and the JVM writes the archive
    gateway.proc.wait(timeout=EXIT_PATIENCE)


def exercise(spark, folder: str) -> None:
    """The kinds of work a run does, on a few hundred rows: CSV, Delta writes, merges, deletes,
    history and time travel, aggregates, windows, joins, ML fitting, saving and loading."""
    from delta.tables import DeltaTable
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    csv = f"{folder}/raw.csv"
    spark.range(600).selectExpr("id", "id % 3 AS region", "rand(1) * 100 AS x", "cast(rand(2) > 0.7 AS int) AS y") \
        .coalesce(1).write.option("header", True).csv(csv)
    df = spark.read.option("header", True).option("inferSchema", True).option("mode", "PERMISSIVE").csv(csv)
    table = f"{folder}/table"
    for run in ("r1", "r2"):
        df.withColumn("run_id", F.lit(run)).write.format("delta").mode("overwrite") \
            .option("replaceWhere", f"run_id = '{run}'").partitionBy("run_id").save(table)
    delta = DeltaTable.forPath(spark, table)
    delta.alias("t").merge(df.withColumn("run_id", F.lit("r1")).alias("s"), "t.id = s.id AND t.run_id = s.run_id") \
        .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute()
    delta.delete(F.col("run_id") == "r2")
    delta.history(5).collect()
    spark.read.format("delta").option("versionAsOf", 0).load(table).count()
    rows = spark.read.format("delta").load(table)
    rows.groupBy("region").agg(F.percentile_approx("x", [0.1, 0.5], 1000), F.approx_count_distinct("x"),
                               F.avg("y"), F.stddev("x")).collect()
    ranked = rows.withColumn("rank", F.row_number().over(Window.partitionBy("region").orderBy(F.desc("x"))))
    ranked.join(F.broadcast(rows.groupBy("region").count()), "region").where("rank <= 10").toPandas()
    fit_models(rows, f"{folder}/model")


def fit_models(rows, path: str) -> None:
    """Spark ML's stages the product fits, one small grid search, and a model saved and loaded."""
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.classification import (
        DecisionTreeClassifier,
        GBTClassifier,
        LogisticRegression,
        RandomForestClassifier,
    )
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.feature import (
        Bucketizer,
        Imputer,
        MinMaxScaler,
        OneHotEncoder,
        StandardScaler,
        StringIndexer,
        VectorAssembler,
    )
    from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit

    data = rows.selectExpr("cast(region AS string) AS region", "x", "cast(y AS double) AS label")
    prep = [Imputer(inputCols=["x"], outputCols=["x_filled"]), StringIndexer(inputCol="region", outputCol="r_idx"),
            OneHotEncoder(inputCols=["r_idx"], outputCols=["r_vec"]),
            Bucketizer(splits=[-float("inf"), 50.0, float("inf")], inputCol="x_filled", outputCol="x_bin"),
            VectorAssembler(inputCols=["x_filled", "r_vec", "x_bin"], outputCol="raw"),
            MinMaxScaler(inputCol="raw", outputCol="features"), StandardScaler(inputCol="raw", outputCol="std")]
    evaluator = BinaryClassificationEvaluator()
    for model in (DecisionTreeClassifier(maxDepth=3), RandomForestClassifier(numTrees=5, maxDepth=3),
                  GBTClassifier(maxIter=3, maxDepth=2), KMeans(k=2, featuresCol="std")):
        Pipeline(stages=[*prep, model]).fit(data)
    lr = LogisticRegression(maxIter=5)
    search = TrainValidationSplit(estimator=lr, evaluator=evaluator, seed=1,
                                  estimatorParamMaps=ParamGridBuilder().addGrid(lr.regParam, [0.0, 0.1]).build())
    fitted = Pipeline(stages=[*prep, search]).fit(data)
    fitted.write().overwrite().save(path)
    evaluator.evaluate(PipelineModel.load(path).transform(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "dump", "path"])
    parser.add_argument("partial", nargs="?", help="dump: the file the JVM writes")
    parser.add_argument("--conf-dir", default=None)
    args = parser.parse_args(argv)
    if args.command == "dump":
        dump(args.partial, args.conf_dir)
        return 0
    from prospects.core.config import load_config

    cfg = load_config(conf_dir=args.conf_dir)
    root = cfg.conf_dir.parent
    if args.command == "path":
        print(archive_file(cfg, root) or "off")
        return 0
    try:
        print(f"class archive: {build(cfg, root) or 'off (spark.class_archive is null)'}")
    except RuntimeError as e:   # a JVM without class-data sharing: sessions start as they would without it
        print(f"class archive not built, sessions start without it: {e}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
