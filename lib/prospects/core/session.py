"""The one SparkSession factory: Delta's extension and catalog, cached Delta jars, local defaults.

Under spark-submit (``spark-submit.sh``) the master, memory and jars come from the submit command
and the cluster; the factory then only adds the Delta SQL settings, :data:`PRODUCT_CONF` and
``spark.conf`` from conf.
Run directly with Python (tests, notebooks, ``python -m``), it sets the master, driver memory, the
cached Delta jars, the class archive of ``make setup`` (:mod:`prospects.core.class_archive`) and the
Python of the workers (this interpreter) itself.
"""

from __future__ import annotations

import logging
import os
import sys

from pyspark.sql import SparkSession

from prospects.core.class_archive import java_option
from prospects.core.config import Config
from prospects.core.errors import ConfigError
from prospects.core.jars import session_jars, uses_s3a

log = logging.getLogger(__name__)

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Defaults for every environment; a key in ``spark.conf`` overrides them. The 45-column rows and
# the feature expressions give whole-stage generated methods above HotSpot's 8,000-byte JIT limit,
# which then run interpreted, several times slower (docs/benchmarks/NOTES.md); with the limit at 8000
# Spark splits such plans instead.
# HDFS: a file's close waits until the namenode has heard of its last block from a datanode; the
# client asks again after 400 ms, doubling, by default, and about half of the closes of a small file
# need one retry. Every Delta commit closes several files, so the first retry comes after 50 ms, and
# 8 retries instead of 5 keep Hadoop's total patience (50 ms doubled 8 times sums to 400 ms doubled
# 5 times, about 12 s). Other file systems ignore both settings.
PRODUCT_CONF = {
    "spark.sql.codegen.hugeMethodLimit": 8000,
    "spark.hadoop.dfs.client.block.write.locateFollowingBlock.initial.delay.ms": 50,
    "spark.hadoop.dfs.client.block.write.locateFollowingBlock.retries": 8,
}


def launched_by_spark_submit() -> bool:
    """True when this Python process was started by spark-submit (it then owns master and jars)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def with_class_archive(cfg: Config, settings: dict) -> dict:
    """``settings`` with the driver JVM mapping the class archive of ``make setup``, when there is one."""
    option = java_option(cfg, cfg.conf_dir.parent)
    if option is None:
        return settings
    own = str(settings.get("spark.driver.extraJavaOptions", ""))
    return {**settings, "spark.driver.extraJavaOptions": f"{own} {option}".strip()}


def build_session(cfg: Config, app_name: str | None = None) -> SparkSession:
    """Build (or get) the SparkSession for ``cfg``.

    Args:
        cfg: loaded configuration (``spark.*`` section).
        app_name: application name (default ``spark.app_name``).

    Raises:
        ConfigError: when run locally and the Delta jars were never fetched (``make setup``).
    """
    builder = SparkSession.builder
    settings = {**DELTA_CONF, **PRODUCT_CONF, **(cfg.get("spark.conf") or {})}
    if not launched_by_spark_submit():  # under spark-submit the application has its name (--name)
        builder = builder.appName(app_name or cfg.get("spark.app_name"))
        jars = session_jars(cfg, cfg.conf_dir.parent)
        if not jars:
            raise ConfigError(
                f"the JVM packages of this session ({cfg.get('spark.delta_package')}"
                + (f", {cfg.get('spark.s3a_packages')}" if uses_s3a(cfg) else "")
                + f") are not cached in {cfg.get('spark.jars_dir')}: run `make setup` "
                "(or `python -m prospects.core.jars fetch`)")
        # Python workers (pandas and XGBoost UDFs) run this interpreter, not whatever `python3` is first
        # on PATH (a venv's python started without activating the venv would otherwise lose pandas)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (builder.master(cfg.get("spark.master"))
                   .config("spark.jars", ",".join(jars))
                   .config("spark.driver.memory", cfg.get("spark.driver_memory")))
        settings = with_class_archive(cfg, settings)
    for key, value in settings.items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark %s, master %s, app %s", spark.version, spark.sparkContext.master,
             spark.sparkContext.appName)
    return spark
