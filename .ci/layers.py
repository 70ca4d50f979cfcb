"""The import rules of docs/architecture.md, checked (``make lint``).

A package of ``lib/prospects`` may import ``core`` and the packages before it in the data flow,
never one after it; ``core`` imports no other package; ``synthetic`` imports only ``core``; only
the command-line layer (modules directly under ``lib/prospects``) imports it. Exits 1 on a breach.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "lib" / "prospects"
FLOW = ["core", "synthetic", "ingest", "profile", "ml", "scoring", "usecases"]
ALLOWED = {pkg: set(FLOW[:i]) for i, pkg in enumerate(FLOW)}
ALLOWED["synthetic"] = {"core"}
ALLOWED["ingest"] = {"core"}            # ingest reads files, never the generator
ALLOWED["profile"] = {"core"}


def imported(file: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return [m.split(".")[1] for m in out if m.startswith("prospects.")]


def breaches(root: Path = ROOT) -> list[str]:
    out = []
    for file in sorted(root.rglob("*.py")):
        parts = file.relative_to(root).parts
        pkg = parts[0] if len(parts) > 1 else None     # None: the command-line layer
        for dep in imported(file):
            if pkg is None or dep == pkg:
                continue
            if dep not in ALLOWED.get(pkg, set()):
                out.append(f"{file.relative_to(root.parents[1])}: {pkg} imports prospects.{dep}")
    return out


if __name__ == "__main__":
    found = breaches()
    print("\n".join(found) or f"import rules hold ({len(FLOW)} packages)")
    sys.exit(1 if found else 0)
