"""Blocks of six or more lines that stand in two places of the library (``make lint``).

Lines are compared stripped, without blank lines, comments and docstring-only lines; a block is
reported once, with every place it stands. Imports and one-line brackets are boilerplate and never
start a block.

    python .ci/duplicate_blocks.py [--lines 6] [paths ...]

Exits 1 when a block is found.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

BOILERPLATE = ("import ", "from ", ")", "]", "}", "@", "else:", "try:", "return", "pass")


def code_lines(file: Path) -> list[tuple[int, str]]:
    out, in_doc = [], False
    for n, raw in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        quotes = line.count('"""')
        if in_doc or line.startswith('"""'):
            in_doc = in_doc != (quotes % 2 == 1)
            continue
        if line and not line.startswith("#"):
            out.append((n, line))
    return out


def blocks(paths: list[Path], size: int) -> dict[tuple[str, ...], list[str]]:
    seen: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for path in paths:
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            lines = code_lines(file)
            for i in range(len(lines) - size + 1):
                window = tuple(text for _, text in lines[i:i + size])
                if window[0].startswith(BOILERPLATE) or sum(len(t) for t in window) < 25 * size:
                    continue
                seen[window].append(f"{file}:{lines[i][0]}")
    return {w: places for w, places in seen.items() if len(places) > 1}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="*", default=["lib"])
    p.add_argument("--lines", type=int, default=6)
    args = p.parse_args(argv)
    found = blocks([Path(x) for x in args.paths], args.lines)
    for window, places in found.items():
        print(f"{len(window)} lines at {', '.join(places)}:\n    " + "\n    ".join(window))
    print(f"{len(found)} duplicated block(s) of {args.lines}+ lines", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
