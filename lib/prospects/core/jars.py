"""JVM packages: fetched once from Maven Central into a local cache, then used offline.

Each set of packages is resolved with Spark's own Ivy mechanism into ``<jars_dir>/<set>/ivy``
(Ivy leaves the jar files in ``ivy/jars``); sessions and spark-submit.sh then pass those files
with ``spark.jars`` / ``--jars``: no network and no Ivy resolution at run time.

Sets of the product (conf ``spark.*``):

* ``delta``: Delta Lake (``spark.delta_package``), on every session;
* ``s3a``: Hadoop's S3A connector and the AWS SDK bundle it needs (``spark.s3a_packages``), on
  sessions whose paths are ``s3a://``. Its Hadoop version must be PySpark's own (3.5.0 for
  PySpark 4.2): another one fails when its classes load.

``python -m prospects.core.jars fetch`` (``make setup``) fetches both; the tests fetch their Hadoop
minicluster the same way (``tests/hadoop.py``).

Ivy also resolves what Delta's own dependencies pull in (Hadoop client 3.4.2, Parquet, Jackson,
log4j, ...), which Spark already has: sessions get only the jars whose artifact Spark does not ship,
so every JVM loads one Hadoop (PySpark's) and an executor fetches 12 jars of Delta's set, not 33.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

MARKER = "resolved.txt"
JAR_NAME = re.compile(r"^(?P<artifact>.+?)-\d[\w.\-]*\.jar$")


def set_dir(jars_dir: str | Path, name: str) -> Path:
    return Path(jars_dir) / name


def cached_jars(jars_dir: str | Path, name: str, packages: str) -> list[str]:
    """Jar files cached for set ``name`` of ``packages``; empty when it has not been fetched."""
    folder = set_dir(jars_dir, name)
    marker = folder / MARKER
    if not marker.is_file() or marker.read_text().strip() != packages:
        return []
    return sorted(str(p.absolute()) for p in (folder / "ivy" / "jars").glob("*.jar"))


def fetch(jars_dir: str | Path, name: str, packages: str) -> list[str]:
    """Resolve ``packages`` (comma-separated Maven coordinates) with Ivy, through a throw-away local
    session, into set ``name`` of ``jars_dir``. Idempotent: returns at once when cached."""
    have = cached_jars(jars_dir, name, packages)
    if have:
        return have
    folder = set_dir(jars_dir, name).absolute()
    ivy = folder / "ivy"
    ivy.mkdir(parents=True, exist_ok=True)
    for attempt in (1, 2):      # one more try after a dropped download
        # a JVM resolves spark.jars.packages only when it starts: one child process per set
        done = subprocess.run([sys.executable, "-m", "prospects.core.jars", "resolve", packages, str(ivy)])
        if done.returncode == 0:
            break
        if attempt == 2:
            raise RuntimeError(f"Ivy could not resolve {packages} (exit {done.returncode})")
    if not any((ivy / "jars").glob("*.jar")):
        raise RuntimeError(f"Ivy resolved no jar for {packages} into {ivy}")
    shutil.rmtree(ivy / "cache", ignore_errors=True)   # the jars are in ivy/jars; the download cache doubles them
    (folder / MARKER).write_text(packages + "\n")
    return cached_jars(jars_dir, name, packages)


def resolve(packages: str, ivy: str) -> None:
    """Ivy resolution of ``packages`` into ``ivy`` by a local session's start (run in a fresh process)."""
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[1]").appName("fetch-jars")
             .config("spark.jars.packages", packages)
             .config("spark.jars.ivy", ivy)
             .config("spark.ui.enabled", "false")
             .getOrCreate())
    spark.stop()


def product_sets(cfg) -> dict[str, str]:
    """The product's sets: name -> packages."""
    return {"delta": cfg.get("spark.delta_package"), "s3a": cfg.get("spark.s3a_packages")}


def uses_s3a(cfg) -> bool:
    """Whether sessions of ``cfg`` carry the S3A connector: ``spark.s3a_jars`` always, or auto and
    a path of the configuration is ``s3a://``."""
    mode = cfg.get("spark.s3a_jars")
    if mode in ("always", "never"):
        return mode == "always"
    return any(str(v or "").startswith("s3a://") for v in (cfg.get("paths") or {}).values())


def artifact_of(file_name: str) -> str | None:
    """The artifact id in a jar's file name: Spark's ``hadoop-client-api-3.5.0.jar`` and Ivy's
    ``org.apache.hadoop_hadoop-client-api-3.4.2.jar`` both give ``hadoop-client-api``."""
    if "_" in file_name.split("-", 1)[0]:           # Ivy's <organisation>_<artifact>-<version>.jar
        file_name = file_name.split("_", 1)[1]
    match = JAR_NAME.match(file_name)
    return match.group("artifact") if match else None


def spark_home() -> Path:
    """$SPARK_HOME, else the pyspark package beside this Python (pip's Spark distribution)."""
    if os.environ.get("SPARK_HOME"):
        return Path(os.environ["SPARK_HOME"])
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def spark_artifacts() -> set[str]:
    """Artifacts of the jars Spark itself runs with (those of $SPARK_HOME, else of pyspark)."""
    return {a for a in (artifact_of(p.name) for p in (spark_home() / "jars").glob("*.jar")) if a}


def session_jars(cfg, root: str | Path = ".") -> list[str] | None:
    """The cached jars a session of ``cfg`` needs (Delta, and S3A when a path is ``s3a://``),
    relative paths taken from ``root``, without those Spark ships (module doc); None when a needed
    set has not been fetched."""
    jars_dir = Path(root) / cfg.get("spark.jars_dir")
    sets = product_sets(cfg)
    wanted = ["delta"] + (["s3a"] if uses_s3a(cfg) else [])
    out: list[str] = []
    for name in wanted:
        found = cached_jars(jars_dir, name, sets[name])
        if not found:
            return None
        out += found
    provided = spark_artifacts()
    return [jar for jar in out if artifact_of(Path(jar).name) not in provided]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["fetch", "list", "resolve"])
    parser.add_argument("args", nargs="*", help="resolve: PACKAGES IVY_DIR")
    parser.add_argument("--conf-dir", default=None)
    args = parser.parse_args(argv)
    if args.command == "resolve":
        resolve(*args.args)
        return 0
    from prospects.core.config import load_config

    cfg = load_config(conf_dir=args.conf_dir)
    jars_dir = cfg.get("spark.jars_dir")
    for name, packages in product_sets(cfg).items():
        jars = fetch(jars_dir, name, packages) if args.command == "fetch" else cached_jars(jars_dir, name, packages)
        if not jars:
            print(f"no jars cached for {packages} in {jars_dir}/{name}: run `make setup`", file=sys.stderr)
            return 1
        print(",".join(jars) if args.command == "list" else f"{len(jars)} jars for {packages} in {jars_dir}/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
