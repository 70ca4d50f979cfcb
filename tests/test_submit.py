"""spark-submit.sh: the command it builds, exit codes and summaries a scheduler acts on, the schedules.

The runs against a real standalone cluster (faults included) are in tests/test_cluster.py.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from prospects import submit
from prospects.core.config import load_config
from prospects.core.errors import ConfigError
from prospects.core.jars import artifact_of, spark_artifacts

ROOT = Path(__file__).resolve().parents[1]
SUBMIT = str(ROOT / "spark-submit.sh")


def _opt(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def _failure_lines(stderr: str, job: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(f"{job} failed:")]


def _summary(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RUN_SUMMARY ")]
    assert len(lines) == 1, stdout[-2000:]
    return json.loads(lines[0][len("RUN_SUMMARY "):])


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------
def test_command_for_standalone_master_ships_library_conf_and_delta_jars():
    sub = submit.build_command(ROOT, [
        "--master", "spark://10.0.0.5:7077", "--total-executor-cores", "8", "--conf", "spark.executor.memory=4g",
        "score", "--run-date", "2026-11-01", "--set", "score.campaign_budget=100"])
    cmd, env = sub.cmd, sub.env
    assert not sub.dry_run and sub.summary_path is None       # client mode: the driver prints its summary
    assert Path(cmd[0]).name == "spark-submit"
    assert _opt(cmd, "--master") == "spark://10.0.0.5:7077"
    assert _opt(cmd, "--deploy-mode") == "client"
    assert _opt(cmd, "--total-executor-cores") == "8"
    assert "spark.executor.memory=4g" in cmd
    assert "--driver-memory" not in cmd           # the cluster's settings, not the laptop default
    jars = _opt(cmd, "--jars").split(",")
    assert any(Path(j).name.startswith("io.delta_delta-spark_") for j in jars)
    assert all(Path(j).is_file() for j in jars)
    # only what Spark lacks: no second Hadoop client (Delta's dependencies name 3.4.2), no Parquet
    assert not [j for j in jars if "hadoop-client" in j or "parquet" in j], jars
    assert not {artifact_of(Path(j).name) for j in jars} & spark_artifacts()
    files = {Path(f).name for f in _opt(cmd, "--files").split(",")}
    assert {"base.yml", "cluster.yml", "local.yml", "fiveg.yml"} <= files
    package = Path(_opt(cmd, "--py-files"))
    names = zipfile.ZipFile(package).namelist()
    assert "prospects/cli.py" in names and "prospects/scoring/scores.py" in names and "jobs/score.py" in names
    # the application is the launcher, followed by the job and its arguments, unchanged
    launcher = cmd.index(str(package.parent / submit.LAUNCHER))
    assert cmd[launcher + 1:] == ["score", "--run-date", "2026-11-01", "--set", "score.campaign_budget=100"]
    assert env["PYSPARK_PYTHON"]


def test_default_master_is_local_with_driver_memory_and_yarn_kubernetes_by_options():
    cmd = submit.build_command(ROOT, ["ingest"]).cmd
    assert _opt(cmd, "--master") == "local[*]"
    assert _opt(cmd, "--driver-memory")
    sub = submit.build_command(ROOT, ["--master", "yarn", "--deploy-mode", "cluster", "--queue", "etl",
                                      "--num-executors", "10", "train", "--set", "paths.lakehouse=hdfs://nn:8020/lh"])
    cmd = sub.cmd
    assert (_opt(cmd, "--master"), _opt(cmd, "--deploy-mode"), _opt(cmd, "--queue")) == ("yarn", "cluster", "etl")
    assert _opt(cmd, "--num-executors") == "10"
    assert "spark.yarn.maxAppAttempts=1" in cmd          # a failed run is re-run by its scheduler, not by YARN
    # cluster mode: the driver writes its run summary beside the lakehouse, the submitter reads it back
    assert re.fullmatch(r"hdfs://nn:8020/lh/_runs/train-[0-9a-f]{32}\.json", sub.summary_path)
    assert cmd[-2:] == ["--summary-file", sub.summary_path]
    cmd = submit.build_command(ROOT, ["--master", "k8s://https://k8s.example:443", "--deploy-mode", "cluster",
                                      "--conf", "spark.kubernetes.container.image=repo/prospects:1", "score"]).cmd
    assert _opt(cmd, "--master") == "k8s://https://k8s.example:443"
    assert "spark.kubernetes.container.image=repo/prospects:1" in cmd


def test_a_driver_started_here_maps_the_class_archive_and_one_on_the_cluster_does_not():
    from prospects.core import class_archive

    archive = class_archive.archive_file(load_config(), ROOT)
    assert archive.is_file(), f"no class archive at {archive}: `make setup` builds it"
    for argv in (["ingest"], ["--master", "yarn", "train"], ["--master", "spark://h:7077", "score"]):
        confs = dict(c.split("=", 1) for c in submit.build_command(ROOT, argv).cmd if c.startswith("spark."))
        assert f"-XX:SharedArchiveFile={archive.absolute()}" in confs["spark.driver.extraJavaOptions"], argv
    cmd = submit.build_command(ROOT, ["--master", "yarn", "--deploy-mode", "cluster", "train"]).cmd
    assert not [c for c in cmd if "SharedArchiveFile" in c]


def test_artifact_of_reads_spark_and_ivy_jar_names():
    assert artifact_of("hadoop-client-api-3.5.0.jar") == "hadoop-client-api"
    assert artifact_of("org.apache.hadoop_hadoop-client-api-3.4.2.jar") == "hadoop-client-api"
    assert artifact_of("io.delta_delta-spark_4.2_2.13-4.4.0.jar") == "delta-spark_4.2_2.13"
    assert artifact_of("spark-core_2.13-4.2.0.jar") == "spark-core_2.13"
    assert artifact_of("com.github.luben_zstd-jni-1.5.7-3.jar") == "zstd-jni"
    assert artifact_of("README.txt") is None
    assert {"hadoop-client-api", "hadoop-client-runtime", "spark-core_2.13"} <= spark_artifacts()


def test_s3a_paths_bring_the_s3a_jars_and_a_use_case_file_is_shipped(tmp_path):
    case = tmp_path / "my_case.yml"
    case.write_text((ROOT / "conf" / "telco_churn.yml").read_text())
    sub = submit.build_command(ROOT, ["--deploy-mode", "cluster", "ingest", "--use-case", str(case),
                                      "--set", "paths.lakehouse=s3a://bucket/lh", "--set", "paths.raw=s3a://bucket/raw",
                                      ])
    jars = [Path(j).name for j in _opt(sub.cmd, "--jars").split(",")]
    assert any(j.startswith("org.apache.hadoop_hadoop-aws-3.5.0") for j in jars)
    assert any(j.startswith("software.amazon.awssdk_bundle") for j in jars)
    assert str(case) in _opt(sub.cmd, "--files").split(",")
    assert sub.cmd[sub.cmd.index("--use-case") + 1] == "my_case.yml"     # as shipped beside the driver
    local = submit.build_command(ROOT, ["ingest"]).cmd
    assert not any("hadoop-aws" in j for j in _opt(local, "--jars").split(","))


def test_configuration_errors_stop_at_the_submitter():
    with pytest.raises(ConfigError, match="--set nope.key=1: unknown key 'nope'"):
        submit.build_command(ROOT, ["--master", "yarn", "--deploy-mode", "cluster", "ingest", "--set", "nope.key=1"])


def test_unknown_job_is_refused_with_the_known_jobs():
    with pytest.raises(SystemExit, match="unknown job 'nope'.*score"):
        submit.build_command(ROOT, ["nope"])


def test_dry_run_prints_the_command(capfd):
    assert submit.main(["--root", str(ROOT), "--dry-run", "--master", "spark://h:7077", "profile"]) == 0
    out = capfd.readouterr().out
    assert "--master spark://h:7077" in out and out.strip().endswith("prospects_run.py profile")


def test_launcher_runs_every_job_module_without_shadowing_the_standard_library(tmp_path):
    """jobs/profile.py beside a submitted job file would shadow the stdlib `profile` (pyspark imports
    cProfile): the launcher runs jobs from the package instead. `--help` imports pyspark and stops."""
    package = submit.build_zip(ROOT, tmp_path / "dist" / "prospects.zip")
    env = {**os.environ, "PYTHONPATH": str(package)}
    for job in ("generate", "profile", "score"):
        res = subprocess.run([sys.executable, str(tmp_path / "dist" / submit.LAUNCHER), job, "--help"],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert res.returncode == 0, res.stderr[-2000:]
        assert "--run-date" in res.stdout


# ---------------------------------------------------------------------------------------------
# Exit codes, one-line reasons and run summaries (through spark-submit.sh, local master)
# ---------------------------------------------------------------------------------------------
def test_configuration_error_exits_2_with_one_line_and_a_failed_summary(tmp_path):
    summary_file = tmp_path / "s" / "ingest.json"
    res = subprocess.run([SUBMIT, "ingest", "--set", "no_such.key=1", "--run-date", "2026-10-01",
                          "--summary-file", str(summary_file)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 2, res.stderr[-3000:]
    lines = _failure_lines(res.stderr, "ingest")
    assert len(lines) == 1 and "no_such" in lines[0], res.stderr[-3000:]
    summary = json.loads(summary_file.read_text())
    assert summary == _summary(res.stdout)
    assert summary["status"] == "failed" and summary["job"] == "ingest" and summary["seconds"] >= 0


def test_bad_run_date_exits_2():
    res = subprocess.run([sys.executable, "-m", "jobs.score", "--run-date", "2026-13-01"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 2
    assert len(_failure_lines(res.stderr, "score")) == 1
    assert "--run-date" in _failure_lines(res.stderr, "score")[0]


def test_missing_raw_files_exit_1_with_one_line_and_run_id(tmp_path):
    summary_file = tmp_path / "ingest.json"
    res = subprocess.run([SUBMIT, "--conf", "spark.ui.enabled=false", "--driver-memory", "1g", "ingest",
                          "--run-date", "2026-10-01", "--set", f"paths.raw={tmp_path / 'none'}",
                          "--set", f"paths.lakehouse={tmp_path / 'lake'}", "--summary-file", str(summary_file)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 1, res.stdout[-2000:] + res.stderr[-3000:]
    lines = _failure_lines(res.stderr, "ingest")
    assert len(lines) == 1, res.stderr[-3000:]
    assert "train_set" in lines[0] or "none" in lines[0], lines
    summary = _summary(res.stdout)
    assert summary["status"] == "failed" and summary["run_id"] == "2026-10-01"
    assert isinstance(summary["seconds"], float) and summary["error"]
    assert json.loads(summary_file.read_text()) == summary
    assert not (tmp_path / "lake" / "bronze" / "users").exists()   # nothing written


# ---------------------------------------------------------------------------------------------
# Schedule examples (deploy/): syntax-checked, they name existing jobs in pipeline order
# ---------------------------------------------------------------------------------------------
CRON_LINE = re.compile(r"^(?P<fields>(\S+\s+){5})(?P<command>.+)$")
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")


def test_cron_example_is_a_valid_crontab_line_submitting_an_existing_job():
    text = (ROOT / "deploy" / "cron" / "prospects.cron").read_text()
    entries = [line for line in text.splitlines()
               if line.strip() and not line.startswith("#") and not re.match(r"^[A-Z_]+=", line)]
    assert len(entries) == 1
    m = CRON_LINE.match(entries[0])
    assert m, entries[0]
    fields = m.group("fields").split()
    assert all(CRON_FIELD.match(f) for f in fields), fields
    minute, hour, dom, month, dow = fields
    assert (minute, hour, dom) == ("0", "3", "1")
    command = m.group("command")
    assert "%" not in command.replace("\\%", ""), "an unescaped % ends a crontab command"
    job = re.search(r"spark-submit\.sh\s+(?:--\S+\s+\S+\s+)*(\w+)", command).group(1)
    assert (ROOT / "jobs" / f"{job}.py").is_file()
    assert "--run-date" in command and "--summary-file" in command
    # the shell part parses (bash -n) once cron's escaping is undone
    res = subprocess.run(["bash", "-n", "-c", command.replace("\\%", "%")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_airflow_dag_parses_and_chains_the_stages_in_pipeline_order():
    path = ROOT / "deploy" / "airflow" / "prospects_dag.py"
    tree = ast.parse(path.read_text(), filename=str(path))
    compile(tree, str(path), "exec")
    imports = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for alias in node.names}
    assert "SparkSubmitOperator" in imports
    stages = next(ast.literal_eval(node.value) for node in ast.walk(tree) if isinstance(node, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == "STAGES" for t in node.targets))
    assert stages == ["ingest", "profile", "train", "score"]
    from prospects.pipeline import STAGES as PIPELINE

    assert [s for s in PIPELINE if s in stages] == stages       # same order as the pipeline job
    assert all((ROOT / "jobs" / f"{s}.py").is_file() for s in stages)
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and getattr(node.func, "id", None) == "SparkSubmitOperator"]
    assert len(calls) == 1
    keywords = {k.arg for k in calls[0].keywords}
    assert {"application", "application_args", "py_files", "jars", "files", "conn_id"} <= keywords
    source = path.read_text()
    assert "--run-date" in source and "prospects_run.py" in source and "previous >> task" in source
