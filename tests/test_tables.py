"""prospects.core.tables: per-run writes and the metrics of a write's own commit."""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrameWriter
from pyspark.sql import functions as F

from prospects.core import runlog, tables


def run_rows(spark, run_id: str, n: int):
    return spark.range(n).withColumn("run_id", F.lit(run_id))


def test_a_writes_metrics_are_its_own_commits_when_another_writer_commits_after_it(spark, tmp_path, monkeypatch):
    path = str(tmp_path / "t")
    tables.replace_partition(run_rows(spark, "a", 2), path, {"run_id": "a"}, ["run_id"])
    real_save = DataFrameWriter.save
    other: list[dict] = []
    saves: list[int] = []

    def save_then_another_commit(writer, *args, **kwargs):
        real_save(writer, *args, **kwargs)
        saves.append(1)
        if len(saves) == 1:     # a second run's write lands between this commit and its metrics read
            other.append(tables.replace_partition(run_rows(spark, "b", 5), path, {"run_id": "b"}, ["run_id"],
                                                  metrics=True))

    monkeypatch.setattr(DataFrameWriter, "save", save_then_another_commit)
    mine = tables.replace_partition(run_rows(spark, "a", 3), path, {"run_id": "a"}, ["run_id"], metrics=True)
    assert tables.rows_written(mine) == 3 and mine["version"] == 1
    assert tables.rows_written(other[0]) == 5 and other[0]["version"] == 2
    assert tables.table_version(spark, path) == 2
    counts = {r["run_id"]: r["count"] for r in tables.read(spark, path).groupBy("run_id").count().collect()}
    assert counts == {"a": 3, "b": 5}


def test_an_appends_metrics_count_its_rows(spark, tmp_path):
    path = str(tmp_path / "log")
    assert tables.append(run_rows(spark, "a", 4), path)["numOutputRows"] == 4
    second = tables.append(run_rows(spark, "b", 1), path)
    assert tables.rows_written(second) == 1 and second["version"] == 1


def test_a_write_that_changes_nothing_commits_nothing_and_reports_no_rows(spark, tmp_path):
    path = str(tmp_path / "q")
    empty = run_rows(spark, "a", 0)
    first = tables.replace_partition(empty, path, {"run_id": "a"}, ["run_id"], metrics=True)
    assert first["version"] == 0 and tables.rows_written(first) == 0           # the table is created
    again = tables.replace_partition(empty, path, {"run_id": "a"}, ["run_id"], metrics=True)
    assert again == {"version": None} and tables.rows_written(again) == 0      # no file added or removed
    assert tables.table_version(spark, path) == 0


def test_rows_of_the_driver_are_written_as_one_file_per_run(spark, tmp_path):
    rows = [(f"c{i}", i) for i in range(45)]
    spread = spark.createDataFrame(rows, "column string, n long").withColumn("run_id", F.lit("a"))
    tables.replace_partition(spread, str(tmp_path / "spread"), {"run_id": "a"}, ["run_id"])
    assert len(tables.read(spark, str(tmp_path / "spread")).inputFiles()) > 1   # one per default partition
    small = tables.small_frame(spark, rows, "column string, n long").withColumn("run_id", F.lit("a"))
    tables.replace_partition(small, str(tmp_path / "small"), {"run_id": "a"}, ["run_id"])
    table = tables.read(spark, str(tmp_path / "small"))
    assert len(table.inputFiles()) == 1
    assert sorted((r["column"], r["n"]) for r in table.collect()) == sorted(rows)


def test_the_run_read_without_a_run_log_is_the_greatest_and_an_empty_table_is_an_error(spark, make_cfg, tmp_path):
    cfg = make_cfg(overrides=["run.id=2026-12-01"])
    path = str(tmp_path / "by_hand")
    for run in ("2026-10-01", "2026-11-01"):
        tables.replace_partition(run_rows(spark, run, 3 if run < "2026-11" else 5), path, {"run_id": run}, ["run_id"])
    rows, run = runlog.read_latest(spark, cfg, path, "ingest")       # no run log at all: the greatest run id
    assert run == "2026-11-01" and rows.count() == 5
    rows, run = runlog.read_latest(spark, cfg, path, "ingest", prefer="2026-10-01")
    assert run == "2026-10-01" and rows.count() == 3
    empty = str(tmp_path / "empty")
    tables.replace_partition(run_rows(spark, "x", 0), empty, {"run_id": "x"}, ["run_id"])
    with pytest.raises(ValueError, match="holds no run yet"):
        runlog.read_latest(spark, cfg, empty, "ingest")
