"""The longest functions of the library (``make lint``): lines from ``def`` to the last line of the body.

    python .ci/function_lengths.py [--max 60] [--top 10] [paths ...]

Exits 1 when a function is longer than ``--max`` lines (0: report only).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def lengths(paths: list[Path]) -> list[tuple[int, str]]:
    out = []
    for path in paths:
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            tree = ast.parse(file.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    out.append((node.end_lineno - node.lineno + 1, f"{file}:{node.lineno} {node.name}"))
    return sorted(out, reverse=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", default=["lib"])
    p.add_argument("--max", type=int, default=0, help="fail above this many lines (0: report only)")
    p.add_argument("--top", type=int, default=10)
    args = p.parse_args(argv)
    found = lengths([Path(x) for x in args.paths])
    for n, where in found[:args.top]:
        print(f"{n:5d}  {where}")
    over = [f for f in found if args.max and f[0] > args.max]
    if over:
        print(f"{len(over)} function(s) over {args.max} lines", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
