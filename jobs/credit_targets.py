"""Credit-card use case: per-region target list of high-demand, low-risk users from both models' scores."""
import sys

from prospects.cli import main_for
from prospects.usecases import credit


def main(argv=None):
    return main_for("credit_targets", __doc__, lambda cfg, spark, args: credit.run_targets(cfg, spark), argv)


if __name__ == "__main__":
    sys.exit(main())
