"""Run the stages in order in one Spark application: generate, ingest, profile, train, score,
evaluate, report.

Each stage is a library module's ``run(cfg, spark) -> dict``. Stages are chosen with ``--stages``
or ``--skip``; ``generate`` runs only when asked (``--generate``), since real deliveries arrive as
files; ``evaluate`` runs when there is something to measure (a labelled delivery or
``evaluate.outcomes_path``; the evaluate job alone says so when there is not). The report stage
prints where every output is and the region summary.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable

from pyspark.sql import SparkSession

from prospects.core.config import Config

log = logging.getLogger(__name__)

# stage name -> module whose run(cfg, spark) performs it
STAGES: dict[str, str] = {
    "generate": "prospects.synthetic.generator",
    "ingest": "prospects.ingest.stage",
    "profile": "prospects.profile.stage",
    "train": "prospects.ml.train",
    "score": "prospects.scoring.scores",
    "evaluate": "prospects.scoring.evaluate",
    "report": "prospects.report",
}


def stage_runner(name: str) -> Callable[[Config, SparkSession], dict]:
    return importlib.import_module(STAGES[name]).run


def select_stages(stages: list[str] | None, skip: list[str] | None, generate: bool) -> list[str]:
    """The stages to run, in pipeline order.

    Raises:
        ValueError: on an unknown stage name.
    """
    for name in (stages or []) + (skip or []):
        if name not in STAGES:
            raise ValueError(f"unknown stage '{name}' (stages: {', '.join(STAGES)})")
    chosen = stages or [s for s in STAGES if s != "generate" or generate]
    return [s for s in STAGES if s in chosen and s not in (skip or [])]


def run(cfg: Config, spark: SparkSession, stages: list[str]) -> dict:
    """Run ``stages`` in order; stop at the first failure (the exception propagates)."""
    results: dict = {}
    for name in stages:
        if name == "evaluate" and not _has_outcomes(cfg, spark, results):
            results[name] = {"skipped": "no labelled delivery (no region file with the label, no "
                                        "evaluate.outcomes_path)"}
            continue
        started = time.time()
        log.info("stage %s: starting", name)
        results[name] = stage_runner(name)(cfg, spark)
        results[name] = {"seconds": round(time.time() - started, 1), **(results[name] or {})}
        log.info("stage %s: done in %.1f s", name, time.time() - started)
    return results


def _has_outcomes(cfg: Config, spark: SparkSession, results: dict) -> bool:
    """Whether this run has outcomes to measure the scores on."""
    if cfg.get("evaluate.outcomes_path"):
        return True
    if "ingest" in results:
        return bool(results["ingest"].get("labelled_regions"))
    from prospects.core import tables

    path = cfg.table("bronze_regions")
    return tables.is_delta(spark, path) and cfg.columns.label_column in tables.read(spark, path).columns
