"""What every job shares: arguments, configuration, logging, session, exit code, run summary.

A job module defines ``run(cfg, spark, args) -> dict`` and calls :func:`main_for` in its
``main(argv)``. On success the job prints one machine-readable line ``RUN_SUMMARY {json}`` (and
writes it to ``--summary-file`` when given) and exits 0. On failure it prints one line
``<job> failed: <reason>`` on stderr, writes the summary with ``status: failed`` and exits 1
(2 for a usage or configuration error), so that a scheduler can act on it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prospects.core.config import Config, load_config
from prospects.core.errors import ConfigError, DictionaryError, JobError

log = logging.getLogger("prospects")

EXIT_FAILED = 1
EXIT_USAGE = 2




def base_parser(description: str) -> argparse.ArgumentParser:
    """Arguments every job accepts."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--use-case", default="fiveg", help="conf/<use case>.yml (default fiveg)")
    p.add_argument("--env", default="local", choices=["local", "cluster"],
                   help="conf/<env>.yml (default local)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration key (repeatable), e.g. --set generator.n_train=1000")
    p.add_argument("--run-id", default=None, help="run id carried by the outputs (default: run date)")
    p.add_argument("--run-date", default=None, help="run date YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--conf-dir", default=None, help="directory of the YAML files (default: conf/)")
    p.add_argument("--summary-file", default=None, help="also write the JSON run summary here")
    p.add_argument("--log-level", default="INFO")
    return p


def config_from_args(args: argparse.Namespace) -> Config:
    overrides = list(args.overrides)
    if args.run_id:
        overrides.append(f"run.id={args.run_id}")
    if args.run_date:
        try:
            dt.date.fromisoformat(args.run_date)
        except ValueError as exc:
            raise ConfigError(f"--run-date {args.run_date!r}: expected YYYY-MM-DD") from exc
        overrides.append(f"run.date={args.run_date}")
    return load_config(use_case=args.use_case, env=args.env, overrides=overrides,
                       conf_dir=args.conf_dir)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("py4j", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _emit(summary: dict, summary_file: str | None, spark: Any = None) -> None:
    """Print the ``RUN_SUMMARY`` line and write it to ``summary_file``: a local path, or any
    Hadoop path (``hdfs://``, ``s3a://``) once the job has a session (how a job in a cluster's
    driver tells its submitter how it ended, see prospects.submit)."""
    line = json.dumps(summary, default=str, sort_keys=True)
    print(f"RUN_SUMMARY {line}", flush=True)
    if not summary_file:
        return
    if spark is not None:
        from prospects.core import storage

        storage.write_text(spark, summary_file, line + "\n")
    else:
        Path(summary_file).parent.mkdir(parents=True, exist_ok=True)
        Path(summary_file).write_text(line + "\n")


def failed_summary(job: str, args: argparse.Namespace) -> dict[str, Any]:
    """The run summary of a job that has not succeeded (yet)."""
    return {"job": job, "status": "failed", "run_id": args.run_id or args.run_date,
            "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def configuration_failure(job: str, args: argparse.Namespace, exc: Exception, started: float) -> int:
    """Report a configuration error (one line, a failed summary) and return exit code 2."""
    print(f"{job} failed: configuration: {exc}", file=sys.stderr)
    summary = failed_summary(job, args)
    summary.update(error=str(exc), seconds=round(time.time() - started, 3), exit_code=EXIT_USAGE)
    _emit(summary, args.summary_file if "://" not in (args.summary_file or "") else None)
    return EXIT_USAGE


def main_for(
    job: str,
    description: str,
    run: Callable[[Config, Any, argparse.Namespace], dict],
    argv: list[str] | None = None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    needs_spark: bool = True,
) -> int:
    """Parse ``argv``, build config and session, call ``run`` and report. Returns the exit code."""
    parser = base_parser(description)
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    started = time.time()
    summary = failed_summary(job, args)
    try:
        cfg = config_from_args(args)
        summary.update(run_id=cfg.run_id, use_case=cfg.use_case, env=cfg.env)
    except (ConfigError, DictionaryError) as exc:
        return configuration_failure(job, args, exc, started)
    spark = None
    try:
        if needs_spark:
            from prospects.core.session import build_session
            spark = build_session(cfg, app_name=f"{cfg.get('spark.app_name')}-{job}")
        result = run(cfg, spark, args) or {}
        summary.update(status="ok", result=result)
        code = 0
    except (JobError, ConfigError, DictionaryError) as exc:
        print(f"{job} failed: {exc}", file=sys.stderr)
        summary.update(error=str(exc))
        code = EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the scheduler gets one line, the log the trace
        log.error("%s", traceback.format_exc())
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"{job} failed: {type(exc).__name__}: {reason}", file=sys.stderr)
        summary.update(error=f"{type(exc).__name__}: {reason}")
        code = EXIT_FAILED
    summary.update(seconds=round(time.time() - started, 3), exit_code=code)
    _emit(summary, args.summary_file, spark)
    return code
