"""What the tests check of a pipeline's outputs on a remote store (HDFS, S3): one place for both.

Every table is read back by Spark and by the Spark-free reader ``deltalake`` (they must agree);
every figure on the store is a PNG.
"""

from __future__ import annotations

import deltalake
from pyspark.sql import functions as F

from prospects.core import storage, tables
from prospects.core.config import join_path

# the tables a run of ingest, profile, train, score and report writes for the run
PIPELINE_TABLES = ("bronze_users", "bronze_regions", "quarantine", "model_registry", "model_metrics",
                   "model_curves", "gold_scores", "gold_region_summary", "gold_segments", "gold_actions",
                   "gold_drift", "eda_columns", "eda_histograms", "eda_correlation")
# what the report stage and the figures leave under reports/<run id>
PIPELINE_REPORTS = {"index.md", "profile/profile.md", "profile/missing_share.png", "train/roc.png", "train/pr.png",
                    "score/regions.png", "score/drift.png"}


def delta_uri(path: str) -> str:
    """The URI deltalake takes for a path Spark reads (``s3a://`` is Hadoop's name for ``s3://``)."""
    return "s3://" + path[len("s3a://"):] if path.startswith("s3a://") else path


def read_back(spark, path: str, run_id: str, delta_options: dict | None = None) -> int:
    """Rows of ``run_id`` in the table at ``path``, read by Spark and by deltalake (they must agree)."""
    by_spark = tables.read(spark, path).where(F.col("run_id") == run_id).count()
    table = deltalake.DeltaTable(delta_uri(path), storage_options=delta_options or None)
    by_delta_rs = sum(1 for r in table.to_pyarrow_table(columns=["run_id"]).column("run_id").to_pylist()
                      if r == run_id)
    assert by_spark == by_delta_rs, path
    return by_spark


def assert_pngs(spark, paths: list[str]) -> None:
    for path in paths:
        assert storage.read_head(spark, path, 8) == b"\x89PNG\r\n\x1a\n", path


def assert_pipeline_outputs(spark, cfg, users: int, scored: int, delta_options: dict | None = None) -> None:
    """A run's tables, reports, figures and chosen model, all on the store of ``cfg``'s lakehouse."""
    written = {key: read_back(spark, cfg.table(key), cfg.run_id, delta_options) for key in PIPELINE_TABLES}
    assert written["bronze_users"] == users and written["gold_scores"] == scored and written["quarantine"] == 0
    assert all(n > 0 for k, n in written.items() if k != "quarantine"), written
    reports = join_path(cfg.path("reports"), cfg.run_id)
    files = storage.walk(spark, reports)
    names = {f[len(reports) + 1:] for f in files}
    assert PIPELINE_REPORTS <= names, names
    assert_pngs(spark, [f for f in files if f.endswith(".png")])
    index = storage.read_text(spark, join_path(reports, "index.md"))
    assert "gold/scores" in index and "| A |" in index
    registry = tables.read(spark, cfg.table("model_registry")).where(F.col("is_chosen")).first()
    assert storage.exists(spark, registry["model_path"]) and registry["model_path"].startswith(cfg.path("models"))


def assert_scores_rerun(spark, cfg, rows: int, before: int, delta_options: dict | None = None) -> None:
    """A rerun of ``cfg``'s run id replaced its scores: same count, a new version of gold_scores, and
    a time-travel read of version ``before`` gives the same users and probabilities as now."""
    path = cfg.table("gold_scores")
    assert read_back(spark, path, cfg.run_id, delta_options) == rows
    assert tables.table_version(spark, path) > before
    old = tables.read(spark, path, version=before).where(F.col("run_id") == cfg.run_id)
    assert old.count() == rows
    new = tables.read(spark, path).where(F.col("run_id") == cfg.run_id)
    assert old.select("user_id", "probability").exceptAll(new.select("user_id", "probability")).count() == 0
