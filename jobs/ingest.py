"""Ingest the raw user files into bronze Delta tables, with a quarantine and a reconciled run log."""

import sys

from prospects.cli import main_for
from prospects.ingest import stage as ingest


def main(argv=None):
    return main_for("ingest", __doc__, lambda cfg, spark, args: ingest.run(cfg, spark), argv)


if __name__ == "__main__":
    sys.exit(main())
