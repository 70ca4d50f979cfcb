"""Spark SQL text for wide projections.

A projection over a whole delivery (45 columns, each cleaned, typed and checked) is written as SQL
text and handed to Spark in one call (``selectExpr``), not built node by node with PySpark's
``Column`` API: every ``Column`` node is a round trip to the JVM (1-2 ms each on a small machine,
thousands per stage), while the text is parsed inside the JVM at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any


def literal(value: Any) -> str:
    """A value as a Spark SQL literal (strings quoted and escaped, None as NULL)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "double('NaN')"
        if math.isinf(value):
            return "double('Infinity')" if value > 0 else "double('-Infinity')"
        return f"CAST({value!r} AS DOUBLE)"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def ident(name: str) -> str:
    """A column name quoted for Spark SQL (backticks; any character allowed)."""
    return "`" + name.replace("`", "``") + "`"


def case(branches: Sequence[tuple[str, str]], otherwise: str = "NULL") -> str:
    """``CASE WHEN c1 THEN v1 ... ELSE otherwise END`` (``otherwise`` when there is no branch)."""
    if not branches:
        return otherwise
    return "CASE " + " ".join(f"WHEN {c} THEN {v}" for c, v in branches) + f" ELSE {otherwise} END"


def in_list(expr: str, values: Iterable[Any]) -> str:
    """``expr IN (...)`` (false for an empty list)."""
    values = list(values)
    return f"({expr} IN ({', '.join(literal(v) for v in values)}))" if values else "false"


def coalesce(exprs: Sequence[str]) -> str:
    return exprs[0] if len(exprs) == 1 else f"coalesce({', '.join(exprs)})"
