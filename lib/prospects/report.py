"""The run's index: where every output is (Delta tables with this run's row counts, figures, reports)
and the region summary, written as Markdown next to the figures and printed on the console."""

from __future__ import annotations

import logging
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from prospects.core import storage, tables
from prospects.core.config import Config, join_path

log = logging.getLogger(__name__)


def table_index(spark: SparkSession, cfg: Config) -> list[dict]:
    """Every configured Delta table that exists: key, location, Delta version, rows of this run."""
    out = []
    for key in sorted(cfg["tables"]):
        path = cfg.table(key)
        if not tables.is_delta(spark, path):
            continue
        df = tables.read(spark, path)
        rows = (df.where(F.col("run_id") == cfg.run_id) if "run_id" in df.columns else df).count()
        out.append({"table": key, "path": path, "version": tables.table_version(spark, path), "rows": rows})
    return out


def region_summary(spark: SparkSession, cfg: Config) -> list[dict]:
    """This run's region summary rows (empty before scoring)."""
    path = cfg.table("gold_region_summary") if "gold_region_summary" in cfg["tables"] else None
    if not path or not tables.is_delta(spark, path):
        return []
    df = tables.read(spark, path).where(F.col("run_id") == cfg.run_id).orderBy("region")
    return [r.asDict() for r in df.collect()]


def figures(spark: SparkSession, cfg: Config) -> list[str]:
    """PNG figures and Markdown reports of this run, on whatever store ``paths.reports`` is."""
    return storage.walk(spark, join_path(cfg.path("reports"), cfg.run_id), (".png", ".md", ".html"))


def render(cfg: Config, index: list[dict], summary: list[dict], files: list[str]) -> str:
    lines = [f"# Run {cfg.run_id} — use case {cfg.use_case}", "", "## Delta tables", "",
             "| table | rows in this run | version | location |", "|---|---:|---:|---|"]
    lines += [f"| {t['table']} | {t['rows']:,} | {t['version']} | {t['path']} |" for t in index]
    if summary:
        keys = [k for k in ("region", "users", "prospects", "prospect_share", "mean_probability",
                            "expected_switchers", "high", "medium", "low", "threshold", "model_version")
                if k in summary[0]]
        lines += ["", "## Region summary", "", "| " + " | ".join(keys) + " |",
                  "|" + "---|" * len(keys)]
        for row in summary:
            cells = [f"{row[k]:.2%}" if k == "prospect_share" else
                     f"{row[k]:,.4f}" if isinstance(row[k], float) else
                     (f"{row[k]:,}" if isinstance(row[k], int) else str(row[k])) for k in keys]
            lines.append("| " + " | ".join(cells) + " |")
    if files:
        lines += ["", "## Figures and reports", ""] + [f"- {f}" for f in files]
    return "\n".join(lines) + "\n"


def run(cfg: Config, spark: SparkSession) -> dict:
    """Write ``reports/<run_id>/index.md`` and print it."""
    index, summary = table_index(spark, cfg), region_summary(spark, cfg)
    files = [f for f in figures(spark, cfg) if not f.endswith("/index.md")]
    text = render(cfg, index, summary, files)
    target = storage.write_text(spark, join_path(cfg.path("reports"), cfg.run_id, "index.md"), text)
    sys.stdout.write("\n" + text + "\n")  # the console report is this stage's purpose
    sys.stdout.flush()
    return {"index": target, "tables": len(index), "figures": len(files), "regions": len(summary)}
