"""Benchmark the product's pipeline against the pandas + scikit-learn reference (docs/benchmarks/)."""

import sys

from bench import harness as bench


def main(argv=None):
    return bench.main(argv)


if __name__ == "__main__":
    sys.exit(main())
