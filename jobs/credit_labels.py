"""Credit-card use case: write demand and risk labels (known probabilities) for the generated users."""
import sys

from prospects.cli import main_for
from prospects.usecases import credit


def _arguments(parser):
    parser.add_argument("--generate", action="store_true",
                        help="first generate the user base (conf/fiveg.yml's files) under paths.raw when it "
                             "is not there for these generator settings")


def main(argv=None):
    return main_for("credit_labels", __doc__,
                    lambda cfg, spark, args: credit.run_labels(cfg, spark, generate=args.generate), argv,
                    add_arguments=_arguments)


if __name__ == "__main__":
    sys.exit(main())
