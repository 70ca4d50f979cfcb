"""Measure the registered model on a labelled delivery: AUCs, lift, capture and calibration per region."""

import sys

from prospects.cli import main_for
from prospects.scoring import evaluate


def main(argv=None):
    return main_for("evaluate", __doc__, lambda cfg, spark, args: evaluate.run(cfg, spark), argv)


if __name__ == "__main__":
    sys.exit(main())
