"""Delta Lake's JVM jars: fetched once from Maven Central into a local cache, then used offline.

``python -m prospects.core.jars fetch`` resolves the Delta package (and its dependencies) with Spark's
own Ivy mechanism into ``<jars_dir>/ivy``; Ivy leaves the jar files in ``<jars_dir>/ivy/jars``.
Sessions and spark-submit.sh then pass those files with ``spark.jars`` / ``--jars``: no network
and no Ivy resolution at run time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MARKER = "resolved.txt"


def cached_jars(jars_dir: str | Path, package: str) -> list[str]:
    """Jar files cached for ``package``; empty when it has not been fetched."""
    jars_dir = Path(jars_dir)
    marker = jars_dir / MARKER
    if not marker.is_file() or marker.read_text().strip() != package:
        return []
    return sorted(str(p.absolute()) for p in (jars_dir / "ivy" / "jars").glob("*.jar"))


def fetch(jars_dir: str | Path, package: str) -> list[str]:
    """Resolve ``package`` with Ivy (through a throw-away local session) into ``jars_dir``.

    Idempotent: returns at once when the cache already holds this package.
    """
    have = cached_jars(jars_dir, package)
    if have:
        return have
    from pyspark.sql import SparkSession

    jars_dir = Path(jars_dir).absolute()
    ivy = jars_dir / "ivy"
    ivy.mkdir(parents=True, exist_ok=True)
    spark = (SparkSession.builder.master("local[1]").appName("fetch-jars")
             .config("spark.jars.packages", package)
             .config("spark.jars.ivy", str(ivy))
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.stop()
    if not any((ivy / "jars").glob("*.jar")):
        raise RuntimeError(f"Ivy resolved no jar for {package} into {ivy}")
    (jars_dir / MARKER).write_text(package + "\n")
    return cached_jars(jars_dir, package)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch", "list"])
    parser.add_argument("--conf-dir", default=None)
    args = parser.parse_args(argv)
    from prospects.core.config import load_config

    cfg = load_config(conf_dir=args.conf_dir)
    package, jars_dir = cfg.get("spark.delta_package"), cfg.get("spark.jars_dir")
    jars = fetch(jars_dir, package) if args.command == "fetch" else cached_jars(jars_dir, package)
    if not jars:
        print(f"no jars cached for {package} in {jars_dir}: run `make setup`", file=sys.stderr)
        return 1
    print(",".join(jars) if args.command == "list" else f"{len(jars)} jars for {package} in {jars_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
