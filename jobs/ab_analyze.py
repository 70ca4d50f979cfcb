"""Retention A/B test: retention per arm against the control (two-proportion z-test, CI, lift)."""
import sys

from prospects.cli import main_for
from prospects.core import tables
from prospects.usecases import abtest


def _run(cfg, spark, args):
    summary = abtest.run_analyze(cfg, spark)
    rows = [r.asDict() for r in tables.read_run(spark, cfg.table("ab_results"), cfg.run_id)[0].collect()]
    rows.sort(key=lambda r: (not r["is_control"], r["arm"]))
    print(abtest.format_results(rows), flush=True)
    return summary


def main(argv=None):
    return main_for("ab_analyze", __doc__, _run, argv)


if __name__ == "__main__":
    sys.exit(main())
