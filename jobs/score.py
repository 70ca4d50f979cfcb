"""Score every sales region with the registered model: gold scores, region summary, segments, actions, drift."""
import sys

from prospects.cli import main_for
from prospects.scoring import scores as scoring


def main(argv=None):
    return main_for("score", __doc__, lambda cfg, spark, args: scoring.run(cfg, spark), argv)


if __name__ == "__main__":
    sys.exit(main())
