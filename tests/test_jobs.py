"""The jobs' entry points (``jobs/*.py`` ``main(argv)``), as spark-submit and `make demo` call them:
arguments, exit codes, the RUN_SUMMARY line, and the report stage's index of outputs.

They run in this process on the tests' Spark session (``build_session`` returns the active one),
on a small generated user base and one fast model.
"""

from __future__ import annotations

import json

import pytest

from jobs import evaluate as evaluate_job
from jobs import pipeline as pipeline_job
from jobs import score as score_job
from jobs import train as train_job
from prospects.core import tables
from prospects.core.config import load_config

RUN = "2026-09-01"


def job_args(root, *more: str) -> list[str]:
    return ["--run-id", RUN, "--log-level", "WARNING",
            "--set", f"paths.raw={root / 'raw'}", "--set", f"paths.lakehouse={root / 'lakehouse'}",
            "--set", "generator.n_train=3000", "--set", "generator.regions={A: 600, B: 900}",
            "--set", "train.model_types=[logistic_regression]",
            "--set", "train.models.logistic_regression={regParam: [0.01], elasticNetParam: [0.0], maxIter: [30]}",
            "--set", "spark.conf.spark.ui.enabled=false", *more]


def summary_of(capsys) -> dict:
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("RUN_SUMMARY "))
    return json.loads(line[len("RUN_SUMMARY "):])


@pytest.fixture(scope="module")
def demo(spark, tmp_path_factory):
    """`make demo`'s entry point on a small base: generate -> ingest -> profile -> train -> score -> report."""
    root = tmp_path_factory.mktemp("jobs")
    return root, pipeline_job.main(job_args(root, "--generate", "--summary-file", str(root / "summary.json")))


def test_the_pipeline_runs_every_stage_and_reports_the_run(spark, demo):
    root, code = demo
    assert code == 0
    summary = json.loads((root / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["exit_code"] == 0 and summary["run_id"] == RUN
    result = summary["result"]
    assert set(result) == {"generate", "ingest", "profile", "train", "score", "evaluate", "report"}
    assert result["ingest"]["users"] == 3000 and result["score"]["users"] == 1500
    assert "skipped" in result["evaluate"]          # generated regions carry no outcomes
    report = result["report"]
    index = (root / "lakehouse" / "reports" / RUN / "index.md").read_text()
    assert report["index"].endswith(f"reports/{RUN}/index.md") and report["regions"] == 2
    cfg = load_config(overrides=[f"paths.lakehouse={root / 'lakehouse'}", f"run.id={RUN}"])
    for key in ("bronze_users", "eda_columns", "model_registry", "gold_scores", "gold_region_summary"):
        assert f"| {key} |" in index, key
        rows = tables.read_run(spark, cfg.table(key), RUN)[0].count()
        assert f"| {key} | {rows:,} |" in index, (key, rows)
    listed = [ln for ln in index.splitlines() if ln.startswith("| ") and str(root / "lakehouse") in ln]
    assert len(listed) == report["tables"] >= 10
    assert report["figures"] >= 10 and "roc.png" in index and "profile.md" in index


def test_a_stage_job_reruns_its_run_idempotently(spark, demo, capsys):
    root, _ = demo
    assert score_job.main(job_args(root)) == 0
    summary = summary_of(capsys)
    assert summary["status"] == "ok" and summary["result"]["users"] == 1500
    cfg = load_config(overrides=[f"paths.lakehouse={root / 'lakehouse'}"])
    assert tables.read_run(spark, cfg.table("gold_scores"), RUN)[0].count() == 1500


def test_evaluate_without_outcomes_exits_1_with_one_line(demo, capsys):
    root, _ = demo
    assert evaluate_job.main(job_args(root)) == 1
    captured = capsys.readouterr()
    reason = [ln for ln in captured.err.splitlines() if ln.startswith("evaluate failed:")]
    assert len(reason) == 1 and "label" in reason[0], captured.err[-2000:]
    line = next(ln for ln in captured.out.splitlines() if ln.startswith("RUN_SUMMARY "))
    assert json.loads(line[len("RUN_SUMMARY "):])["exit_code"] == 1


def test_configuration_errors_exit_2_before_any_spark_job(demo, capsys):
    root, _ = demo
    assert train_job.main(job_args(root, "--set", "train.no_such_key=1")) == 2
    assert "train.no_such_key" in capsys.readouterr().err
    assert pipeline_job.main(job_args(root, "--stages", "ingest,nope")) == 1
    assert "unknown stage 'nope'" in capsys.readouterr().err
