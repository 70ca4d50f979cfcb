"""Profile bronze_users: EDA Delta tables (eda_*), PNG figures and a Markdown report."""

import sys

from prospects.cli import main_for
from prospects.profile import stage as profile


def main(argv=None):
    return main_for("profile", __doc__, lambda cfg, spark, args: profile.run(cfg, spark), argv)


if __name__ == "__main__":
    sys.exit(main())
