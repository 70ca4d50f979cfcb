"""Churn insights: risk tiers, global drivers, per-customer top reasons and K-means segments."""
import sys

from prospects.cli import main_for
from prospects.usecases import churn


def _arguments(parser):
    parser.add_argument("--model-version", default=None,
                        help="registry version (or run id) of the churn model (default: latest)")
    parser.add_argument("--model-path", default=None,
                        help="a saved PipelineModel to use instead of the registry")


def main(argv=None):
    return main_for("churn_insights", __doc__,
                    lambda cfg, spark, args: churn.run_job(cfg, spark, args.model_version, args.model_path),
                    argv, add_arguments=_arguments)


if __name__ == "__main__":
    sys.exit(main())
