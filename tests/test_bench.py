"""Benchmark harness and pandas + scikit-learn reference, end to end on a few thousand users."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from pyspark.ml.linalg import VectorUDT

from bench import harness as bench
from bench import reference
from prospects.ml import features as fe
from prospects.ml import registry
from prospects.synthetic import generator

N = 3000
TREES, DEPTH = 10, 5


@pytest.fixture(scope="module")
def product_run(spark, tmp_path_factory):
    """Generated Parquet files, the product's stages (XGBoost random forest) and the reference."""
    from prospects.core.config import load_config
    from tests.conftest import tmp_settings

    root = tmp_path_factory.mktemp("bench")
    work = str(root / "work")
    cfg = load_config(extra={"spark": tmp_settings(root)["spark"]},
                      overrides=bench.overrides(N, work, "xgboost_rf", TREES, DEPTH) + ["score.figures=false"])
    generator.generate(cfg, spark)
    splits = bench.splits_path(work, N)
    product = bench.product_stages(cfg, spark, "xgboost_rf", splits_out=splits, skip_profile=True)
    ref = reference.run(cfg, splits, str(root / "reference"), TREES, DEPTH, n_jobs=2, with_profile=True)
    return cfg, root, product, ref, splits


def test_product_and_reference_agree_on_data_split_and_auc(product_run):
    cfg, root, product, ref, splits = product_run
    regions = bench.region_sizes(N)
    assert regions == {"A": 214, "B": 1071}
    assert sum(product["rows"].values()) == N
    assert {r: v["users"] for r, v in product["regions"].items()} == regions
    assert set(product["seconds"]) == {"ingest", "train", "score"}
    # the reference uses the product's split: same test users
    s = pd.read_parquet(splits)
    assert len(s) == N and (s["split"] == "test").sum() == product["rows"]["test"] == ref["test_rows"]
    assert (s["split"] == "train").sum() == product["rows"]["train"] == ref["train_rows"]
    # same model family, same trees and depth: both well above chance and close to each other
    assert 0.7 < product["auc"] < 0.95 and 0.7 < ref["auc"] < 0.95
    assert abs(product["auc"] - ref["auc"]) < 0.05
    # same features: the reference drops what the product's correlation filter drops
    assert sorted(ref["dropped"]) == sorted(product["dropped"])
    assert len(ref["features"]) == product["features"]
    assert ref["regions"] == regions
    scores = pd.read_parquet(root / "reference" / "scores_B.parquet")
    assert len(scores) == regions["B"] and scores["probability"].between(0, 1).all()
    assert sorted(scores["rank"]) == list(range(1, regions["B"] + 1))
    assert set(ref["seconds"]) == set(bench.REFERENCE_STAGES)


def test_xgboost_model_is_registered_saved_and_scores_with_a_probability_vector(spark, product_run):
    cfg = product_run[0]
    reg = registry.load(spark, cfg)
    assert reg.model_type == "xgboost_rf" and 0 < reg.threshold < 1
    from prospects.core import tables

    regions, _ = tables.read_run(spark, cfg.table("bronze_regions"), cfg.run_id)
    out = reg.model.transform(regions.limit(20))
    assert isinstance(out.schema["probability"].dataType, VectorUDT)
    rows = out.select("probability", "prediction").collect()
    probs = [r.probability for r in rows]
    assert len(probs) == 20 and all(len(p) == 2 and abs(p[0] + p[1] - 1) < 1e-6 for p in probs)
    # the registered threshold is the saved model's decision, as for Spark's trainers (not p > 0.5)
    assert [r.prediction for r in rows] == [float(p[1] > reg.threshold) for p in probs]
    scores, _ = tables.read_run(spark, cfg.table("gold_scores"), cfg.run_id)
    assert scores.count() == sum(bench.region_sizes(N).values())


def test_reference_cleaning_matches_the_feature_pipeline(spark, product_run):
    """Same rows through the product's fitted feature pipeline and the reference's cleaning."""
    cfg = product_run[0]
    files = reference.raw_files(cfg)
    users = pd.read_parquet(files["train"]).merge(pd.read_parquet(files["labels"]), on="user_id")
    users = users.drop(columns=["product_no"]).sort_values("user_id").reset_index(drop=True)
    ref = reference.StudyCleaning(cfg).fit(users)
    x_ref = ref.transform(users)
    model = fe.build_feature_pipeline(cfg).fit(spark.createDataFrame(users))
    assert fe.feature_names(model) == ref.kept
    got = model.transform(spark.createDataFrame(users)).orderBy("user_id").select("features").collect()
    x_spark = np.array([r[0].toArray() for r in got])
    # medians: Spark's approximate percentile vs pandas' exact median; min-max scaled values agree closely
    assert x_spark.shape == x_ref.shape
    assert np.mean(np.abs(x_spark - x_ref) < 0.02) > 0.99


def test_results_table_and_plot(product_run, tmp_path):
    _, _, product, ref, _ = product_run
    record = {"users": N, "regions": bench.region_sizes(N), "trees": TREES, "depth": DEPTH,
              "product": {"ok": True, **product, "total": 100.0, "wall": 101.0, "peak_rss_gb": 3.0},
              "reference": {"ok": True, **ref, "process_seconds": 50.0, "wall": 51.0, "peak_rss_gb": 0.5},
              "command": "python -m bench --sizes 3000"}
    failed = {"users": 4 * N, "regions": bench.region_sizes(4 * N), "trees": TREES, "depth": DEPTH,
              "product": {"ok": True, **product, "total": 150.0, "wall": 151.0, "peak_rss_gb": 3.5},
              "reference": {"ok": False, "error": "out of memory", "wall": 20.0, "peak_rss_gb": 23.0}}
    data = bench.merge_results(tmp_path / "results.json", [record, failed], "test")
    assert json.loads((tmp_path / "results.json").read_text())["runs"]["test"]["3000"]["trees"] == TREES
    rows = bench.table_rows(data)
    assert [r["users"] for r in rows] == [N, 4 * N]
    assert rows[0]["ratio"] == pytest.approx(2.0) and rows[1]["ratio"] is None
    bench.write_markdown(data, tmp_path / "README.md", ["make bench SIZES=3000"])
    text = (tmp_path / "README.md").read_text()
    assert "| 3,000 | xgboost_rf |" in text and "| test |" in text and "**2.00**" in text and "out of memory" in text
    assert "33333.3" in text  # 100 s for 0.003 M users
    png = bench.write_plot(data, tmp_path / "scaling.png")
    assert png and (tmp_path / "scaling.png").stat().st_size > 10_000


def test_plot_labels_the_newest_key_and_keeps_earlier_keys_faint(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def run(at, p_total, r_total):
        return {"measured_at": at, "product": {"ok": True, "total": p_total, "trainer": "xgboost_rf",
                                                "seconds": {"train": p_total / 3}},
                "reference": {"ok": True, "process_seconds": r_total, "seconds": {"train": r_total / 2}}}
    data = {"runs": {"old": {"1000": run("2026-11-01 10:00 UTC", 90.0, 10.0),
                             "5000": run("2026-11-01 11:00 UTC", 120.0, 60.0)},
                     "new": {"1000": run("2026-12-01 10:00 UTC", 80.0, 9.0),
                             "5000": run("2026-12-01 10:30 UTC", 100.0, 50.0)}}}
    seen = {}

    def capture(fig, *args, **kwargs):
        ax = fig.axes[0]
        seen["labels"] = [t.get_text() for t in ax.get_legend().get_texts()]
        seen["lines"] = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata()), line.get_alpha())
                         for line in ax.get_lines()}
    monkeypatch.setattr(Figure, "savefig", capture)
    bench.write_plot(data, tmp_path / "scaling.png")
    assert seen["labels"] == ["earlier keys: product", "earlier keys: reference", "product (xgboost_rf) [new]",
                              "reference (pandas + scikit-learn) [new]", "product train stage [new]",
                              "reference RF fit [new]", "target: 0.5 x reference [new]"]
    assert seen["lines"]["earlier keys: product"] == ([1000, 5000], [90.0, 120.0], 0.45)
    assert seen["lines"]["product (xgboost_rf) [new]"][:2] == ([1000, 5000], [80.0, 100.0])
    assert seen["lines"]["target: 0.5 x reference [new]"][:2] == ([1000, 5000], [4.5, 25.0])


def test_run_measured_reports_peak_memory_and_failures(tmp_path):
    ok = bench.run_measured([sys.executable, "-c", "b = bytearray(300 * 2**20); import time; time.sleep(1); "
                             "print('BENCH_CHILD {\"x\": 1}')"], "BENCH_CHILD", tmp_path / "ok.log")
    assert ok["ok"] and ok["x"] == 1 and ok["peak_rss_gb"] >= 0.25 and ok["wall"] >= 1
    bad = bench.run_measured([sys.executable, "-c", "raise MemoryError()"], "BENCH_CHILD", tmp_path / "bad.log")
    assert not bad["ok"] and bad["error"] == "out of memory"
    # the JVM's heap error comes first in the log, the last line is Python's lost gateway
    child = ("import sys; print('java.lang.OutOfMemoryError: Java heap space', file=sys.stderr); "
             "print('x' * 5000, file=sys.stderr); raise ConnectionRefusedError(111)")
    jvm = bench.run_measured([sys.executable, "-c", child], "BENCH_CHILD", tmp_path / "jvm.log")
    assert not jvm["ok"] and jvm["error"] == "out of memory (Java heap)"
    other = bench.run_measured([sys.executable, "-c", "raise ValueError('boom')"], "BENCH_CHILD", tmp_path / "o.log")
    assert not other["ok"] and other["error"] == "ValueError: boom"


def test_hash_split_fallback_is_deterministic_and_proportional():
    ids = pd.Series(np.arange(1, 20_001))
    a = reference.hash_split(ids, 2024, {"train": 0.7, "validation": 0.15, "test": 0.15})
    assert a.equals(reference.hash_split(ids, 2024, {"train": 0.7, "validation": 0.15, "test": 0.15}))
    share = a.value_counts(normalize=True)
    assert abs(share["train"] - 0.7) < 0.02 and abs(share["test"] - 0.15) < 0.02


def test_event_log_attributes_jobs_tasks_and_idle_time_to_stage_windows(tmp_path, product_run):
    """bench.eventlog on a hand-written event log: jobs fall in the window they started in, tasks
    count only the stages that ran, busy time is the union of overlapping jobs; and the product
    record carries the stage windows it reads."""
    from bench import eventlog

    events = [
        {"Event": "SparkListenerJobStart", "Job ID": 0, "Submission Time": 1000, "Stage IDs": [0, 1],
         "Properties": {"callSite.short": "collect at stage.py:1"}},
        {"Event": "SparkListenerStageCompleted", "Stage Info": {"Stage ID": 1, "Number of Tasks": 4}},
        {"Event": "SparkListenerJobEnd", "Job ID": 0, "Completion Time": 3000},
        {"Event": "SparkListenerJobStart", "Job ID": 1, "Submission Time": 2000, "Stage IDs": [2],
         "Stage Infos": [{"Stage ID": 2, "Stage Name": "save at X.java:0"}]},
        {"Event": "SparkListenerStageCompleted", "Stage Info": {"Stage ID": 2, "Number of Tasks": 2}},
        {"Event": "SparkListenerJobEnd", "Job ID": 1, "Completion Time": 4000},
        {"Event": "SparkListenerJobStart", "Job ID": 2, "Submission Time": 11000, "Stage IDs": [3],
         "Properties": {"spark.job.description": "Delta: Filtering files for query"}},
        {"Event": "SparkListenerJobEnd", "Job ID": 2, "Completion Time": 11500},
    ]
    log = tmp_path / "events"
    log.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    first, second = eventlog.attribute(eventlog.read_jobs(str(log)),
                                       [eventlog.Window("ingest", 0.5, 10.0), eventlog.Window("train", 10.0, 12.0)])
    assert [len(first.jobs), len(second.jobs)] == [2, 1]
    assert [j.tasks for j in first.jobs] == [4, 2]           # stage 0 was skipped: no tasks
    assert first.busy() == pytest.approx(3.0)                 # 1-3 s and 2-4 s overlap: 1-4 s
    assert second.busy() == pytest.approx(0.5)
    assert [j.call_site for j in first.jobs + second.jobs] == [
        "collect at stage.py:1", "(stage) save at X.java:0", "Delta: Filtering files for query"]
    table = eventlog.report([first, second], top=3)
    assert "| ingest | 9.5 | 2 | 6 | 3.0 | 6.5 |" in table
    compressed = tmp_path / "events_1_local-1.zstd"     # Spark's default: a clear error, not a decode error
    compressed.write_bytes(b"\x28\xb5\x2f\xfd")
    with pytest.raises(SystemExit, match="compressed: decompress it first"):
        eventlog.read_jobs(str(compressed))
    windows = product_run[2]["windows"]               # the profile is skipped in this fixture
    assert list(windows) == ["ingest", "train", "score"]
    assert all(start < end for start, end in windows.values())
