"""Generate a synthetic user base in the competition's raw format (train, labels, regions, oracle)."""

import sys

from prospects.cli import main_for
from prospects.synthetic import generator


def main(argv=None):
    return main_for("generate", __doc__, lambda cfg, spark, args: generator.run(cfg, spark), argv)


if __name__ == "__main__":
    sys.exit(main())
