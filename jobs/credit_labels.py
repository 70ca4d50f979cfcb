"""Credit-card use case: write demand and risk labels (known probabilities) for the generated users."""
import sys

from prospects import credit
from prospects.cli import main_for


def main(argv=None):
    return main_for("credit_labels", __doc__, lambda cfg, spark, args: credit.run_labels(cfg, spark), argv)


if __name__ == "__main__":
    sys.exit(main())
