"""spark-submit.sh's logic: package the library and conf, add the Delta jars, submit a job.

Kept in Python so it is tested; ``spark-submit.sh`` only finds a Python and calls this module.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from prospects.config import load_config
from prospects.jars import cached_jars

PASS_THROUGH = ("--deploy-mode", "--driver-memory", "--executor-memory", "--executor-cores",
                "--num-executors", "--total-executor-cores", "--queue", "--name",
                "--properties-file")


def build_zip(root: Path, out: Path) -> Path:
    """Zip the ``lib/prospects`` package into ``out`` (for ``--py-files``)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((root / "lib" / "prospects").rglob("*.py")):
            zf.write(path, path.relative_to(root / "lib"))
    tmp.replace(out)
    return out


def find_spark_submit() -> str:
    """spark-submit of $SPARK_HOME, else the one pip's pyspark installed beside this Python."""
    if os.environ.get("SPARK_HOME"):
        return str(Path(os.environ["SPARK_HOME"]) / "bin" / "spark-submit")
    beside = Path(sys.executable).parent / "spark-submit"
    if beside.exists():
        return str(beside)
    found = shutil.which("spark-submit")
    if not found:
        raise SystemExit("spark-submit not found: run `make setup` or set SPARK_HOME")
    return found


def _job_option(job_args: list[str], name: str, default: str) -> str:
    for i, arg in enumerate(job_args):
        if arg == name and i + 1 < len(job_args):
            return job_args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def build_command(root: Path, argv: list[str]) -> tuple[list[str], dict, bool]:
    """The spark-submit command line, its environment and the dry-run flag for ``argv``."""
    p = argparse.ArgumentParser(prog="spark-submit.sh", description=__doc__.splitlines()[0])
    p.add_argument("--master", default=None)
    p.add_argument("--conf", action="append", default=[], dest="spark_conf", metavar="K=V")
    p.add_argument("--dry-run", action="store_true", help="print the command, do not run it")
    for opt in PASS_THROUGH:
        p.add_argument(opt, default=None)
    p.add_argument("job", help="a job under jobs/ (generate, ingest, profile, train, score, pipeline, ...)")
    p.add_argument("job_args", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    job_file = root / "jobs" / f"{args.job}.py"
    if not job_file.is_file():
        known = sorted(f.stem for f in (root / "jobs").glob("*.py") if not f.stem.startswith("_"))
        raise SystemExit(f"spark-submit.sh: unknown job '{args.job}' (jobs: {', '.join(known)})")
    env_name = _job_option(args.job_args, "--env", "local")
    cfg = load_config(use_case=_job_option(args.job_args, "--use-case", "fiveg"), env=env_name,
                      conf_dir=root / "conf")
    jars = cached_jars(root / cfg.get("spark.jars_dir"), cfg.get("spark.delta_package"))
    if not jars:
        raise SystemExit(f"Delta jars not cached for {cfg.get('spark.delta_package')}: run `make setup`")
    master = args.master or cfg.get("submit.master")
    deploy_mode = args.deploy_mode or cfg.get("submit.deploy_mode")
    package = build_zip(root, root / "dist" / "prospects.zip")
    cmd = [find_spark_submit(), "--master", master, "--deploy-mode", deploy_mode,
           "--name", args.name or f"prospects-{args.job}",
           "--jars", ",".join(jars), "--py-files", str(package),
           "--files", ",".join(str(f) for f in sorted((root / "conf").glob("*.yml")))]
    if master.startswith("local") and not args.driver_memory:
        cmd += ["--driver-memory", cfg.get("spark.driver_memory")]
    for opt in PASS_THROUGH:
        value = getattr(args, opt.lstrip("-").replace("-", "_"))
        if value and opt not in ("--deploy-mode", "--name"):
            cmd += [opt, value]
    for key, value in (cfg.get("submit.conf") or {}).items():
        cmd += ["--conf", f"{key}={value}"]
    for kv in args.spark_conf:
        cmd += ["--conf", kv]
    cmd += [str(job_file), *args.job_args]
    env = dict(os.environ)
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    if deploy_mode == "client":
        env.setdefault("PROSPECTS_CONF_DIR", str(root / "conf"))
    return cmd, env, args.dry_run


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    root = Path.cwd()
    if argv[:1] == ["--root"]:
        root, argv = Path(argv[1]), argv[2:]
    cmd, env, dry_run = build_command(root.resolve(), argv)
    if dry_run:
        print(" ".join(cmd))
        return 0
    return subprocess.call(cmd, env=env, cwd=os.getcwd())


if __name__ == "__main__":
    sys.exit(main())
