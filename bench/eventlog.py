"""Where a benchmark run's time goes, from Spark's event log: jobs, tasks and idle time per stage.

Run the product side with the event log on, then read it against the stage windows the harness
stored in ``results.json``::

    python -m bench --sizes 20000 --product-only --key probe --out /tmp/probe \\
        --set spark.conf.spark.eventLog.enabled=true --set spark.conf.spark.eventLog.dir=/tmp/evlog \\
        --set spark.conf.spark.eventLog.compress=false
    python -m bench.eventlog /tmp/evlog/eventlog_v2_<application id>/events_1_<application id> \\
        --results /tmp/probe/results.json --key probe

(Spark writes the log compressed by default: ``zstd -d`` turns such a file into one this reads.)

Per stage window: Spark jobs, tasks, seconds with some job running ("busy") and with none ("idle":
planning, Delta log reads and commits, driver-side Python, figures), then the call sites that
started the most jobs (the product's line that triggered each job, as Spark records it).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

COMPRESSED = (".zstd", ".lz4", ".lzf", ".snappy")     # Spark's event log codecs


@dataclass
class Job:
    start: float                     # epoch seconds
    end: float = 0.0
    tasks: int = 0
    call_site: str = ""


@dataclass
class Window:
    name: str
    start: float
    end: float
    jobs: list[Job] = field(default_factory=list)

    def busy(self) -> float:
        """Seconds of the window in which at least one job ran (the union of the job intervals)."""
        spans = sorted((max(j.start, self.start), min(j.end, self.end)) for j in self.jobs)
        total, reach = 0.0, self.start
        for lo, hi in spans:
            lo = max(lo, reach)
            if hi > lo:
                total += hi - lo
                reach = hi
        return total


def read_jobs(path: str) -> list[Job]:
    """Every job of an event log, with its span, the tasks of the stages it ran and its call site."""
    if path.endswith(COMPRESSED):
        raise SystemExit(f"{path} is compressed: decompress it first (zstd -d), or run with "
                         "--set spark.conf.spark.eventLog.compress=false")
    jobs: dict[int, Job] = {}
    stages_of: dict[int, list[int]] = {}
    ran: dict[int, int] = {}            # stage -> tasks, for the stages that ran (not skipped)
    with open(path) as f:
        for line in f:
            event = json.loads(line)
            kind = event.get("Event")
            if kind == "SparkListenerJobStart":
                props = event.get("Properties") or {}
                # a job started by Delta or from a thread has no call site of the product: its
                # description or its result stage (the job's last stage) names it
                infos = event.get("Stage Infos") or [{}]
                result_stage = max(infos, key=lambda s: s.get("Stage ID", -1)).get("Stage Name", "")
                site = (props.get("callSite.short") or props.get("spark.job.description")
                        or f"(stage) {result_stage}")
                jobs[event["Job ID"]] = Job(start=event["Submission Time"] / 1000, call_site=site)
                stages_of[event["Job ID"]] = list(event.get("Stage IDs") or [])
            elif kind == "SparkListenerStageCompleted":
                info = event["Stage Info"]
                ran[info["Stage ID"]] = info.get("Number of Tasks", 0)
            elif kind == "SparkListenerJobEnd":
                jobs[event["Job ID"]].end = event["Completion Time"] / 1000
    for job_id, job in jobs.items():
        job.tasks = sum(ran.get(s, 0) for s in stages_of[job_id])
    return sorted(jobs.values(), key=lambda j: j.start)


def windows_from_results(results: str, key: str, size: str | None = None) -> list[Window]:
    """The product's stage windows of one record of a results file."""
    runs = json.loads(Path(results).read_text())["runs"][key]
    record = runs[size] if size else next(iter(runs.values()))
    return [Window(name, start, end) for name, (start, end) in record["product"]["windows"].items()]


def attribute(jobs: list[Job], windows: list[Window]) -> list[Window]:
    for job in jobs:
        for w in windows:
            if w.start <= job.start < w.end:
                w.jobs.append(job)
                break
    return windows


def report(windows: list[Window], top: int) -> str:
    lines = ["| stage | wall s | Spark jobs | tasks | busy s | idle s |", "|---|---|---|---|---|---|"]
    for w in windows:
        wall, busy = w.end - w.start, w.busy()
        lines.append(f"| {w.name} | {wall:.1f} | {len(w.jobs)} | {sum(j.tasks for j in w.jobs)} | "
                     f"{busy:.1f} | {wall - busy:.1f} |")
    for w in windows:
        sites: Counter = Counter()
        seconds: defaultdict = defaultdict(float)
        for j in w.jobs:
            sites[j.call_site] += 1
            seconds[j.call_site] += j.end - j.start
        lines.append(f"\n{w.name}: the call sites that started most jobs (jobs, job seconds)")
        lines += [f"  {n:3d} {seconds[site]:6.1f} s  {site}" for site, n in sites.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log", help="the application's event log file")
    p.add_argument("--results", required=True, help="results.json holding the run's stage windows")
    p.add_argument("--key", required=True)
    p.add_argument("--size", default=None, help="the record's user count (default the key's first)")
    p.add_argument("--top", type=int, default=8)
    args = p.parse_args(argv)
    windows = attribute(read_jobs(args.log), windows_from_results(args.results, args.key, args.size))
    print(report(windows, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
