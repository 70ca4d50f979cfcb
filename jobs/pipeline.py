"""Run the whole pipeline (generate when asked, ingest, profile, train, score, report) in one application."""

import sys

from prospects import pipeline
from prospects.cli import main_for


def _arguments(parser):
    parser.add_argument("--generate", action="store_true", help="generate a synthetic user base first")
    parser.add_argument("--stages", default=None, help="comma-separated stages to run (default: all)")
    parser.add_argument("--skip", default=None, help="comma-separated stages to skip")


def _names(text):
    return [s.strip() for s in text.split(",") if s.strip()] if text else None


def _run(cfg, spark, args):
    stages = pipeline.select_stages(_names(args.stages), _names(args.skip), args.generate)
    return pipeline.run(cfg, spark, stages)


def main(argv=None):
    return main_for("pipeline", __doc__, _run, argv, add_arguments=_arguments)


if __name__ == "__main__":
    sys.exit(main())
