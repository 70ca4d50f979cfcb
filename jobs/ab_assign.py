"""Retention A/B test: assign the high-risk churn customers to arms at random (seeded, stratified by tier)."""
import sys

from prospects.cli import main_for
from prospects.usecases import abtest


def main(argv=None):
    return main_for("ab_assign", __doc__, lambda cfg, spark, args: abtest.run_assign(cfg, spark), argv)


if __name__ == "__main__":
    sys.exit(main())
