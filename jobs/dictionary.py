"""Draft a use case (its column dictionary) from a delivered file: python -m jobs.dictionary FILE --label COL."""

import sys
from pathlib import Path

from prospects.cli import main_for
from prospects.core.errors import JobError
from prospects.ingest import draft


def _arguments(parser):
    parser.add_argument("file", help="the delivered CSV file (local, hdfs://, s3a://)")
    parser.add_argument("--label", default=None, help="the label column (0/1 or two values)")
    parser.add_argument("--name", default=None, help="use case name (default: from the file name)")
    parser.add_argument("--out", default=None, help="YAML to write (default: conf/<name>.yml; - for stdout)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")


def _run(cfg, spark, args):
    text, summary = draft.draft(spark, cfg, args.file, args.label, args.name)
    out = args.out or str(cfg.conf_dir / f"{summary['use_case']}.yml")
    if out == "-":
        print(text, end="")
        return summary
    if Path(out).exists() and not args.force:
        raise JobError(f"{out} exists: choose another --out, or --force to replace it")
    Path(out).write_text(text, encoding="utf-8")
    return {**summary, "written": out}


def main(argv=None):
    return main_for("dictionary", __doc__, _run, argv, add_arguments=_arguments)


if __name__ == "__main__":
    sys.exit(main())
