"""Airflow DAG: the monthly prospect run, one SparkSubmitOperator task per stage.

package >> ingest >> profile >> train >> score. Copy this file to the DAGs folder of an Airflow 2.x
deployment with ``apache-airflow-providers-apache-spark`` installed and a Spark connection
``spark_prospects`` (host ``spark://master`` port 7077, or ``yarn``, or ``k8s://https://...``).
The repository is checked out at PROSPECTS_HOME on the Airflow workers (``make setup`` run once,
so the Delta jars are cached in ``.cache/jars``).

Every task passes the same run date (the end of the data interval = the first day of the month the
run is for, as the cron example does), so outputs carry ``run_id = YYYY-MM-01``. A retried or
cleared task re-runs the same run id and replaces its own outputs (Delta replaceWhere), so retries
are safe. A stage that fails exits non-zero with a one-line reason on stderr (the task log) and
writes its JSON run summary under ``/var/log/prospects/<run date>/<stage>.json``.
See docs/cluster.md.
"""

from __future__ import annotations

import glob
import os
from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator
from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

HOME = os.environ.get("PROSPECTS_HOME", "/opt/prospects")
LAKE = os.environ.get("PROSPECTS_LAKEHOUSE", "s3a://bucket/prospects/lakehouse")
RAW = os.environ.get("PROSPECTS_RAW", "s3a://bucket/raw")
RUN_DATE = "{{ data_interval_end | ds }}"
STAGES = ["ingest", "profile", "train", "score"]

JARS = ",".join(sorted(glob.glob(f"{HOME}/.cache/jars/ivy/jars/*.jar")))
CONF_FILES = ",".join(sorted(glob.glob(f"{HOME}/conf/*.yml")))
SETTINGS = [
    "--env", "cluster", "--run-date", RUN_DATE,
    "--set", f"paths.raw={RAW}/{RUN_DATE}",
    "--set", f"paths.lakehouse={LAKE}",
    "--set", f"paths.models={LAKE}/models",
    "--set", f"paths.reports={LAKE}/reports",
]

default_args = {
    "owner": "data-engineering",
    "retries": 2,                        # safe: a re-run of the same run id replaces its outputs
    "retry_delay": timedelta(minutes=10),
    "execution_timeout": timedelta(hours=4),
}

with DAG(
    dag_id="prospects_monthly",
    description="5G switch prospects: ingest, profile, train, score (docs/cluster.md)",
    schedule="0 3 1 * *",                 # 03:00 UTC on the 1st of every month
    start_date=datetime(2026, 10, 1),
    catchup=False,
    max_active_runs=1,
    default_args=default_args,
    tags=["prospects", "spark"],
) as dag:
    # Builds dist/prospects.zip (library + job modules) and the launcher dist/prospects_run.py.
    package = BashOperator(
        task_id="package",
        bash_command=f"cd {HOME} && ./spark-submit.sh --dry-run pipeline > /dev/null",
    )
    previous = package
    for stage in STAGES:
        task = SparkSubmitOperator(
            task_id=stage,
            conn_id="spark_prospects",
            application=f"{HOME}/dist/prospects_run.py",
            application_args=[stage, *SETTINGS,
                              "--summary-file", f"/var/log/prospects/{RUN_DATE}/{stage}.json"],
            py_files=f"{HOME}/dist/prospects.zip",
            jars=JARS,
            files=CONF_FILES,
            name=f"prospects-{stage}-{RUN_DATE}",
            conf={"spark.sql.adaptive.enabled": "true"},
            env_vars={"PROSPECTS_CONF_DIR": f"{HOME}/conf"},
            executor_memory="4g",
            driver_memory="4g",
            total_executor_cores=16,
            verbose=False,
        )
        previous >> task
        previous = task
