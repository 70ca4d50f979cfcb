"""Train, tune and evaluate the models on bronze_users, save the chosen PipelineModel and register every model."""
import sys

from prospects.cli import main_for
from prospects.ml import train


def main(argv=None):
    return main_for("train", __doc__, lambda cfg, spark, args: train.run(cfg, spark), argv)


if __name__ == "__main__":
    sys.exit(main())
