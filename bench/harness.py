"""Benchmark: the product's pipeline against the pandas + scikit-learn reference, same data, same machine.

For each size N (labelled users):

1. **generate** (own Spark process, not compared): the generator's Parquet files under
   ``<work>/<N>/raw``: ``train_set`` / ``train_label`` with N users and two sales regions sized
   like the study (140,000 : 10,000 : 50,000), A = round(N / 14) and B = round(5 N / 14) users,
   plus the oracle file. Reused when a previous run wrote the same size (``generated.json``).
2. **product** (ONE Spark application, its own process): ``ingest.run``, ``profile.run``,
   ``train.run`` with one model type (``--trainer``: ``xgboost_rf`` by default, or Spark's
   ``random_forest``) with the fixed grid ``depth`` x ``trees`` and ``scoring.run`` (both regions),
   each timed; the lakehouse is emptied first. After the stages (untimed) the train / validation /
   test assignment of every user (``train.split``, the function the train stage uses, on the same
   table: the same split) is written to ``<work>/<N>/splits`` for the reference. Further trainers
   (``--compare``) are then timed on the train stage alone.
3. **reference** (its own process): :mod:`bench.reference` on the same Parquet files and split.

The harness samples the resident memory of each child process tree (the Python driver, the JVM and
Spark's Python workers for the product) every 0.2 s with psutil and keeps the peak. Results are
merged by size into ``<out>/results.json``; ``<out>/README.md`` (table) and ``<out>/scaling.png``
(log-log wall time vs users) are rewritten from it.

Command: ``make bench SIZES=200000,1000000`` = ``python -m bench --sizes 200000,1000000``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "benchmarks"
DEFAULT_WORK = "/tmp/prospects_bench"
PRODUCT_STAGES = ("ingest", "profile", "train", "score")
REFERENCE_STAGES = ("load", "profile", "features", "train", "evaluate", "score")


# ---------------------------------------------------------------------------------------------
# Configuration of one size
# ---------------------------------------------------------------------------------------------
def region_sizes(n: int) -> dict[str, int]:
    """Regions sized like the study: 140,000 labelled users, A 10,000, B 50,000."""
    return {"A": max(1, round(n / 14)), "B": max(1, round(5 * n / 14))}


def overrides(n: int, work: str, trainer: str, trees: int, depth: int,
              driver_memory: str | None = None, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """``--set`` overrides of a benchmark run of size ``n`` under ``work`` (the same for both sides)."""
    base = f"{work.rstrip('/')}/{n}"
    regions = region_sizes(n)
    out = [f"paths.raw={base}/raw", f"paths.lakehouse={base}/lakehouse", f"paths.models={base}/lakehouse/models",
           f"paths.reports={base}/lakehouse/reports", "dataset.format=parquet", f"generator.n_train={n}",
           f"generator.regions.A={regions['A']}", f"generator.regions.B={regions['B']}",
           f"run.id=bench-{n}", f"train.model_types=[{trainer}]", "train.save_candidates=true",
           "train.tuning=validation",
           f"train.models.random_forest={{maxDepth: [{depth}], numTrees: [{trees}], maxBins: [32], "
           "featureSubsetStrategy: [auto], maxMemoryInMB: [1024], cacheNodeIds: [true]}",
           f"train.models.xgboost_rf={{max_depth: [{depth}], num_parallel_tree: [{trees}], max_bin: [32]}}"]
    if driver_memory:
        out.append(f"spark.driver_memory={driver_memory}")
    return out + list(extra)


def _config(args: argparse.Namespace, trainer: str | None = None):
    from prospects.core.config import load_config

    return load_config(overrides=overrides(args.size, args.work, trainer or args.trainer, args.trees, args.depth,
                                           args.driver_memory, args.set))


# ---------------------------------------------------------------------------------------------
# Child processes (each a separate Python process, started by the harness)
# ---------------------------------------------------------------------------------------------
def child_generate(args: argparse.Namespace) -> dict:
    """Generate the raw Parquet files of size ``args.size`` (Spark)."""
    from prospects.core.session import build_session
    from prospects.synthetic import generator

    cfg = _config(args)
    raw = Path(cfg.path("raw"))
    marker = raw / "generated.json"
    if marker.is_file() and json.loads(marker.read_text()).get("n_train") == args.size:
        return {**json.loads(marker.read_text()), "reused": True}
    shutil.rmtree(raw, ignore_errors=True)
    t = time.perf_counter()
    spark = build_session(cfg, app_name=f"prospects-bench-generate-{args.size}")
    summary = generator.generate(cfg, spark)
    spark.stop()
    out = {"n_train": args.size, "regions": region_sizes(args.size), "seconds": round(time.perf_counter() - t, 1),
           "intercept": summary["intercept"],
           "bytes": sum(f.stat().st_size for f in raw.rglob("*") if f.is_file())}
    marker.write_text(json.dumps(out))
    return {**out, "reused": False}


def child_product(args: argparse.Namespace) -> dict:
    """The product's stages in their own Spark application (the benchmark's product process)."""
    from prospects.core.session import build_session

    t_start = time.perf_counter()
    cfg = _config(args)
    shutil.rmtree(cfg.path("lakehouse"), ignore_errors=True)
    spark = build_session(cfg, app_name=f"prospects-bench-{args.size}")
    startup = round(time.perf_counter() - t_start, 3)
    try:
        out = product_stages(cfg, spark, args.trainer, args.splits_path, skip_profile=args.skip_profile,
                             compare={t: _config(args, t) for t in (args.compare or "").split(",")
                                      if t and t != args.trainer})
    finally:
        spark.stop()
    out["seconds"] = {"startup": startup, **out["seconds"]}
    out["total"] = process_seconds(out.pop("ended_at"))
    return out


def process_seconds(until: float | None = None) -> float:
    """Seconds from this process's creation (interpreter start, imports included) to ``until`` (now)."""
    import psutil

    return round((until or time.time()) - psutil.Process().create_time(), 3)


def product_stages(cfg, spark, trainer: str, splits_out: str | None = None, skip_profile: bool = False,
                   compare: dict | None = None) -> dict:
    """Run and time the product's stages (ingest, profile, train, score) in ``spark``.

    Then (untimed) write the split of the training stage to ``splits_out`` (Parquet ``user_id,
    split``) and time the train stage alone with each config of ``compare`` (trainer -> Config).

    Returns:
        seconds per stage, test AUC, rows, train phases, score phases, compared trainers.
    """
    from pyspark.sql import functions as F

    from prospects.core import runlog
    from prospects.ingest import stage as ingest
    from prospects.ml import train
    from prospects.profile import stage as profile
    from prospects.scoring import scores as scoring

    seconds: dict[str, float] = {}
    windows: dict[str, list[float]] = {}     # stage -> [start, end] epoch seconds (bench.eventlog)
    summaries: dict[str, Any] = {}
    modules = {"ingest": ingest, "profile": profile, "train": train, "score": scoring}
    for stage in PRODUCT_STAGES:
        if stage == "profile" and skip_profile:
            continue
        t, started = time.perf_counter(), time.time()
        summaries[stage] = modules[stage].run(cfg, spark)
        seconds[stage] = round(time.perf_counter() - t, 3)
        windows[stage] = [round(started, 3), round(time.time(), 3)]
        log.info("product %s: %.1f s", stage, seconds[stage])
    ended_at = time.time()
    tr = summaries["train"]
    model = tr["models"][trainer]
    out: dict[str, Any] = {
        "trainer": trainer, "seconds": seconds, "windows": windows, "auc": model["test_auc"], "ended_at": ended_at,
        "oracle_auc": tr.get("oracle_auc"), "rows": tr["rows"], "train_phases": tr.get("phase_seconds"),
        "fit_seconds": model["fit_seconds"], "feature_seconds": tr.get("feature_seconds"),
        "features": tr.get("features"), "dropped": tr.get("dropped_by_correlation"),
        "score_seconds": summaries["score"].get("seconds"), "regions": summaries["score"].get("regions"),
        "ingest_rows": summaries["ingest"].get("rows_read"),
        "profile_seconds": (summaries.get("profile") or {}).get("seconds"),
        "spark": {"master": spark.sparkContext.master, "driver_memory": cfg.get("spark.driver_memory"),
                  "default_parallelism": spark.sparkContext.defaultParallelism},
    }
    if splits_out:
        df, _ = runlog.read_latest(spark, cfg, cfg.table("bronze_users"), "ingest")
        id_col, label = cfg.columns.id_column, cfg.columns.label_column
        splits = train.split(df.select(id_col, label), label, id_col, cfg.get("train.fractions"),
                             int(cfg.get("train.seed")))
        splits.select(id_col, F.col(train.SPLIT_COL).alias("split")).write.mode("overwrite").parquet(splits_out)
    out["compare"] = {}
    for other, cfg_o in (compare or {}).items():
        t = time.perf_counter()
        s = train.run(cfg_o, spark)
        out["compare"][other] = {"train_seconds": round(time.perf_counter() - t, 3),
                                 "fit_seconds": s["models"][other]["fit_seconds"],
                                 "auc": s["models"][other]["test_auc"], "train_phases": s.get("phase_seconds")}
        log.info("product train with %s: %s", other, out["compare"][other])
    return out


# ---------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------
def run_measured(cmd: list[str], tag: str, log_path: Path, interval: float = 0.2) -> dict:
    """Run ``cmd``; return its ``<tag> {json}`` line, wall seconds and peak RSS of its process tree."""
    import psutil

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}
    env.setdefault("PYSPARK_PYTHON", sys.executable)
    t = time.perf_counter()
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=logf, text=True, env=env, cwd=str(ROOT))
        peak = {"rss": 0}
        done = threading.Event()

        def sample() -> None:
            try:
                root = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not done.is_set():
                total = 0
                try:
                    for p in [root, *root.children(recursive=True)]:
                        try:
                            total += p.memory_info().rss
                        except psutil.Error:
                            pass
                except psutil.Error:
                    pass
                peak["rss"] = max(peak["rss"], total)
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout, _ = proc.communicate()
        done.set()
        sampler.join()
    wall = round(time.perf_counter() - t, 3)
    result = None
    for line in stdout.splitlines():
        if line.startswith(tag + " "):
            result = json.loads(line[len(tag) + 1:])
    if proc.returncode != 0 or result is None:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        tail = text[-3000:]
        # a JVM out of memory shows first in the log; the Python side then fails on the dead gateway
        java_oom = "java.lang.OutOfMemoryError" in text
        oom = proc.returncode in (-9, 137) or "MemoryError" in tail or java_oom
        error = ("out of memory (Java heap)" if java_oom else "out of memory" if oom
                 else tail.strip().splitlines()[-1] if tail.strip() else "failed")
        return {"ok": False, "returncode": proc.returncode, "wall": wall, "peak_rss_gb": round(peak["rss"] / 2**30, 2),
                "error": error,
                "log": str(log_path)}
    return {"ok": True, **result, "wall": wall, "peak_rss_gb": round(peak["rss"] / 2**30, 2), "log": str(log_path)}


def _child_cmd(kind: str, args: argparse.Namespace, n: int, trainer: str) -> list[str]:
    cmd = [sys.executable, "-m", "bench.harness", "--child", kind, "--size", str(n), "--work", args.work,
           "--trainer", trainer, "--trees", str(args.trees), "--depth", str(args.depth),
           "--splits-path", splits_path(args.work, n)]
    if args.driver_memory:
        cmd += ["--driver-memory", args.driver_memory]
    if args.compare:
        cmd += ["--compare", args.compare]
    if args.skip_profile:
        cmd += ["--skip-profile"]
    for s in args.set:
        cmd += ["--set", s]
    return cmd


def splits_path(work: str, n: int) -> str:
    return f"{work.rstrip('/')}/{n}/splits"


def bench_size(args: argparse.Namespace, n: int) -> dict:
    """Generate, then product, then reference for ``n`` users; one record."""
    logs = Path(args.work) / str(n) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"users": n, "regions": region_sizes(n), "trees": args.trees, "depth": args.depth,
                              "measured_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    record["load_average_before"] = [round(x, 1) for x in os.getloadavg()]
    t = time.perf_counter()
    gen = run_measured(_child_cmd("generate", args, n, args.trainer), "BENCH_CHILD", logs / "generate.log")
    record["generate"] = gen
    log.info("size %d: generated in %.1f s (%s)", n, time.perf_counter() - t, "reused" if gen.get("reused") else "new")
    if not gen["ok"]:
        return record
    if not args.reference_only:
        record["product"] = run_measured(_child_cmd("product", args, n, args.trainer), "BENCH_CHILD",
                                         logs / f"product_{args.trainer}.log")
        log.info("size %d: product %s", n, _brief(record["product"]))
    if not args.product_only:
        sp = splits_path(args.work, n)
        cmd = [sys.executable, "-m", "bench.reference", "--raw", f"{args.work.rstrip('/')}/{n}/raw",
               "--out", f"{args.work.rstrip('/')}/{n}/reference", "--trees", str(args.trees),
               "--depth", str(args.depth), "--jobs", str(args.jobs)]
        if Path(sp).exists():
            cmd += ["--splits", sp]
        cmd += [x for s in overrides(n, args.work, args.trainer, args.trees, args.depth) if s.startswith("generator.")
                for x in ("--set", s)]
        if args.skip_profile:
            cmd.append("--no-profile")
        record["reference"] = run_measured(cmd, "REFERENCE", logs / "reference.log")
        record["reference"]["split"] = "product" if Path(sp).exists() else "hash"
        log.info("size %d: reference %s", n, _brief(record["reference"]))
    record["load_average_after"] = [round(x, 1) for x in os.getloadavg()]
    return record


def _brief(r: dict) -> str:
    if not r.get("ok"):
        return f"FAILED ({r.get('error')}) after {r.get('wall')} s"
    total = r.get("total", r.get("process_seconds"))
    return (f"total {total} s (process {r['wall']} s), stages {r.get('seconds')}, AUC {r.get('auc')}, "
            f"peak {r['peak_rss_gb']} GB")


# ---------------------------------------------------------------------------------------------
# Results: JSON, Markdown, plot
# ---------------------------------------------------------------------------------------------
def machine() -> dict:
    import psutil

    return {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def merge_results(path: Path, records: list[dict], key: str) -> dict:
    """Merge ``records`` into the results file under ``runs[key][users]`` (a re-run replaces)."""
    data = json.loads(path.read_text()) if path.is_file() else {"runs": {}}
    data["machine"] = machine()
    runs = data.setdefault("runs", {}).setdefault(key, {})
    for r in records:
        runs[str(r["users"])] = r
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
    return data


def _fmt(x: Any, nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def table_rows(data: dict) -> list[dict]:
    """One flat row per (run key, size) for the Markdown table and the plot."""
    rows = []
    for key, runs in sorted(data.get("runs", {}).items()):
        for size, r in sorted(runs.items(), key=lambda kv: int(kv[0])):
            p, ref = r.get("product") or {}, r.get("reference") or {}
            n = int(size)
            row = {"key": key, "users": n, "regions": sum((r.get("regions") or {}).values()),
                   "trees": r.get("trees"), "depth": r.get("depth"),
                   "p_ok": p.get("ok"), "p_total": p.get("total") if p.get("ok") else None,
                   "p_seconds": p.get("seconds") or {}, "p_auc": p.get("auc"), "p_mem": p.get("peak_rss_gb"),
                   "p_trainer": p.get("trainer"), "p_error": None if p.get("ok", True) else p.get("error"),
                   "r_ok": ref.get("ok"), "r_total": ref.get("process_seconds") if ref.get("ok") else None,
                   "r_seconds": ref.get("seconds") or {}, "r_auc": ref.get("auc"), "r_mem": ref.get("peak_rss_gb"),
                   "r_error": None if ref.get("ok", True) else ref.get("error"),
                   "compare": p.get("compare") or {}, "measured_at": r.get("measured_at"),
                   "load": r.get("load_average_before")}
            row["ratio"] = (row["p_total"] / row["r_total"]) if row["p_total"] and row["r_total"] else None
            rows.append(row)
    return rows


def write_markdown(data: dict, path: Path, commands: list[str]) -> None:
    rows = table_rows(data)
    m = data.get("machine", {})
    lines = [
        "# Benchmark: the product vs the pandas + scikit-learn reference",
        "",
        "Generated by `bench/harness.py` from `results.json` (do not edit the tables by hand).",
        f"Machine: {m.get('cpus')} cores, {m.get('memory_gb')} GiB, Python {m.get('python')}, {m.get('platform')}.",
        "",
        "Users = labelled users N; the two regions add N/14 (A) + 5N/14 (B) users to ingest and score",
        "(the study's 140,000 : 10,000 : 50,000). Wall = from the process's creation (interpreter, imports,",
        "Spark start-up included) to the last region's scores written; stage columns are the stages' own",
        "times. Peak memory: resident set of the whole process tree (Python driver + JVM + Spark's Python",
        "workers / the reference's Python), sampled every 0.2 s. AUC: ROC AUC on the same test users",
        "(the product's split).",
        "",
        "## End to end",
        "",
        "| run (results key) | measured | load average | users | product trainer | "
        "product: ingest | profile | train | score | **product wall** | "
        "reference: load | profile | features | train | evaluate | score | **reference wall** | "
        "**ratio** product / reference | AUC product | AUC reference | peak GB product | peak GB reference | "
        "s per M users product | s per M users reference |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ps, rs = r["p_seconds"], r["r_seconds"]
        m_users = r["users"] / 1e6
        p_total = r["p_total"] if r["p_total"] is not None else (r["p_error"] or "-")
        r_total = r["r_total"] if r["r_total"] is not None else (r["r_error"] or "-")
        lines.append("| " + " | ".join([
            r["key"], str(r["measured_at"] or "-"), str(r["load"] or "-"), f"{r['users']:,}",
            str(r["p_trainer"] or "-"),
            *[_fmt(ps.get(s)) for s in PRODUCT_STAGES], f"**{_fmt(p_total)}**",
            *[_fmt(rs.get(s)) for s in REFERENCE_STAGES], f"**{_fmt(r_total)}**",
            f"**{_fmt(r['ratio'], 2)}**", _fmt(r["p_auc"], 4), _fmt(r["r_auc"], 4), _fmt(r["p_mem"], 2),
            _fmt(r["r_mem"], 2),
            _fmt(r["p_total"] / m_users if r["p_total"] else None),
            _fmt(r["r_total"] / m_users if r["r_total"] else None)]) + " |")
    cmp_rows = [(r, t, c) for r in rows for t, c in r["compare"].items()]
    if cmp_rows:
        lines += ["", "## Trainers compared (train stage alone, same session and table)", "",
                  "| users | trainer | train stage s | model fit s | test AUC | pipeline trainer's train stage s | "
                  "its AUC | reference train s | reference AUC |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r, t, c in cmp_rows:
            lines.append(f"| {r['users']:,} | {t} | {_fmt(c.get('train_seconds'))} | {_fmt(c.get('fit_seconds'))} | "
                         f"{_fmt(c.get('auc'), 4)} | {_fmt(r['p_seconds'].get('train'))} ({r['p_trainer']}) | "
                         f"{_fmt(r['p_auc'], 4)} | {_fmt(r['r_seconds'].get('train'))} | {_fmt(r['r_auc'], 4)} |")
    lines += ["", "![wall time vs users](scaling.png)", "", "## Commands", "", "```", *commands, "```", ""]
    notes = Path(path).with_name("NOTES.md")
    if notes.is_file():
        lines += [notes.read_text()]
    path.write_text("\n".join(lines))


def write_plot(data: dict, path: Path) -> str | None:
    """Log-log wall time vs users: the newest results key in colour, earlier keys faint behind it.

    Runs of different keys ran on different code and machine conditions, so each key is its own
    line; only the newest one is labelled stage by stage (whole runs, train stage, RF fit).
    """
    rows = table_rows(data)
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    newest = max(rows, key=lambda r: r["measured_at"] or "")["key"]
    fig, ax = plt.subplots(figsize=(10, 5.5))
    faint = {"color": "0.6", "alpha": 0.45, "linewidth": 1, "markersize": 4}
    labelled: set[str] = set()
    for key in sorted({r["key"] for r in rows} - {newest}):
        mine = [r for r in rows if r["key"] == key]
        for side, marker in (("p", "o-"), ("r", "s-")):
            pts = sorted((r["users"], r[f"{side}_total"]) for r in mine if r[f"{side}_total"])
            if pts:
                label = f"earlier keys: {'product' if side == 'p' else 'reference'}"
                ax.plot(*zip(*pts), marker, label=None if label in labelled else label, **faint)
                labelled.add(label)
    mine = [r for r in rows if r["key"] == newest]
    lines = [(lambda r: r["p_total"], "o-", 2, "tab:blue", f"product ({mine[0]['p_trainer'] or '-'})"),
             (lambda r: r["r_total"], "s-", 2, "tab:orange", "reference (pandas + scikit-learn)"),
             (lambda r: r["p_seconds"].get("train"), "o--", 1, "tab:blue", "product train stage"),
             (lambda r: r["r_seconds"].get("train"), "s--", 1, "tab:orange", "reference RF fit")]
    for value, style, width, colour, name in lines:
        pts = sorted((r["users"], value(r)) for r in mine if value(r))
        if pts:
            ax.plot(*zip(*pts), style, color=colour, linewidth=width, markersize=3 + 2 * width,
                    label=f"{name} [{newest}]")
    target = sorted((r["users"], 0.5 * r["r_total"]) for r in mine if r["r_total"])
    if target:
        ax.plot(*zip(*target), ":", color="tab:green", label=f"target: 0.5 x reference [{newest}]")
    for users, err in sorted({(r["users"], r["r_error"]) for r in rows if r["r_error"]}):
        ax.axvline(users, color="grey", linestyle=":", linewidth=1)
        ax.annotate(f"reference: {err}", (users, ax.get_ylim()[1]), rotation=90, va="top", ha="right",
                    fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("labelled users (log scale; regions add 6/14 more to score)")
    ax.set_ylabel("wall time, seconds (log scale)")
    ax.set_title("End-to-end wall time vs users, one 2-core machine")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return str(path)


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------
def default_key() -> str:
    """Today's date (UTC) and the short commit of HEAD, ``YYYY-MM-DD-<commit>``; the date alone without git."""
    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return today
    return f"{today}-{commit}" if commit else today


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Benchmark the product against the pandas + scikit-learn reference.")
    p.add_argument("--sizes", default="200000,1000000", help="comma-separated labelled-user counts")
    p.add_argument("--work", default=DEFAULT_WORK, help="scratch folder (raw files, lakehouse, logs)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="results folder (results.json, README.md, scaling.png)")
    p.add_argument("--key", default=default_key(),
                   help="results key (default: today's UTC date and HEAD's short commit, YYYY-MM-DD-<commit>, "
                        "or the date alone without git)")
    p.add_argument("--trainer", default="xgboost_rf", choices=["xgboost_rf", "random_forest"])
    p.add_argument("--compare", default="", help="further trainers timed on the train stage alone")
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="reference n_jobs (default all cores)")
    p.add_argument("--driver-memory", default=None, help="Spark driver memory (default conf spark.driver_memory)")
    p.add_argument("--skip-profile", action="store_true", help="leave out the profile stage on both sides")
    p.add_argument("--product-only", action="store_true")
    p.add_argument("--reference-only", action="store_true")
    p.add_argument("--set", action="append", default=[], help="extra config key=value for the product")
    p.add_argument("--render-only", action="store_true", help="rewrite README.md and scaling.png from results.json")
    # child mode (internal)
    p.add_argument("--child", choices=["generate", "product"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--splits-path", default=None, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("py4j", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.child:
        fn = child_generate if args.child == "generate" else child_product
        print("BENCH_CHILD " + json.dumps(fn(args), default=str), flush=True)
        return 0
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    out = Path(args.out)
    if args.render_only:
        data = json.loads((out / "results.json").read_text())
        write_plot(data, out / "scaling.png")
        write_markdown(data, out / "README.md", sorted({r.get("command", "") for runs in data["runs"].values()
                                                         for r in runs.values()}))
        return 0
    command = "python -m bench " + " ".join(a for a in (argv if argv is not None else sys.argv[1:]))
    data: dict = {}
    for n in sizes:
        record = bench_size(args, n)
        record["command"] = command
        data = merge_results(out / "results.json", [record], args.key)
        commands = sorted({r.get("command", "") for runs in data["runs"].values() for r in runs.values()})
        write_plot(data, out / "scaling.png")
        write_markdown(data, out / "README.md", commands)
        p, r = record.get("product") or {}, record.get("reference") or {}
        print(f"BENCH users={n} product={p.get('total')}s ({'ok' if p.get('ok') else p.get('error')}) "
              f"reference={r.get('process_seconds')}s ({'ok' if r.get('ok') else r.get('error')}) "
              f"auc={p.get('auc')}/{r.get('auc')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
