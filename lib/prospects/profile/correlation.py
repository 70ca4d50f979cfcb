"""The one multicollinearity rule, shared by the profile (report) and training (drop) stages.

Pure Python on a small correlation matrix (columns x columns), so that the profile's list of
"column the pipeline would drop" and the training stage's dropped columns cannot disagree.

The rule:

1. A pair (a, b) is *highly correlated* when ``|r| > threshold`` (strictly above; NaN, e.g. a
   constant column, never is).
2. Pairs are resolved in order of decreasing ``|r|`` (ties: dictionary order of a, then b).
3. A pair one of whose columns is already dropped is resolved: nothing more is dropped for it.
4. Otherwise the column with the higher *mean absolute correlation* to all other columns of the
   matrix (NaN counted as 0, the mean taken once over the full matrix) is dropped; on a tie
   (equal to 12 decimals) the later column in dictionary order is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairDecision:
    """One highly correlated pair and what the rule does with it.

    Attributes:
        col_a: first column (earlier in dictionary order).
        col_b: second column.
        r: Pearson correlation.
        mean_abs_a: mean absolute correlation of ``col_a`` to all other columns.
        mean_abs_b: same for ``col_b``.
        drop: the column dropped for this pair, or None when an earlier pair already dropped one.
        reason: ``higher mean |r|``, ``tie: later column`` or ``already resolved by <col>``.
    """

    col_a: str
    col_b: str
    r: float
    mean_abs_a: float
    mean_abs_b: float
    drop: str | None
    reason: str


def _finite(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def mean_abs_correlation(columns: Sequence[str], matrix: Sequence[Sequence[float]]) -> dict[str, float]:
    """Mean of ``|r|`` between each column and every other column (NaN counts as 0).

    Args:
        columns: names, in matrix order.
        matrix: square correlation matrix (list of rows).

    Returns:
        column -> mean absolute correlation (0.0 for a single column).
    """
    n = len(columns)
    if len(matrix) != n or any(len(row) != n for row in matrix):
        raise ValueError(f"correlation matrix must be {n}x{n} for columns {list(columns)}")
    out = {}
    for i, c in enumerate(columns):
        vals = [abs(matrix[i][j]) if _finite(matrix[i][j]) else 0.0 for j in range(n) if j != i]
        out[c] = sum(vals) / len(vals) if vals else 0.0
    return out


def high_pairs(columns: Sequence[str], matrix: Sequence[Sequence[float]],
               threshold: float) -> list[tuple[str, str, float]]:
    """Pairs ``(a, b, r)`` with ``|r| > threshold``, a before b in ``columns`` order."""
    out = []
    for i in range(len(columns)):
        for j in range(i + 1, len(columns)):
            r = matrix[i][j]
            if _finite(r) and abs(r) > threshold:
                out.append((columns[i], columns[j], float(r)))
    return out


def choose_drops(pairs: Sequence[tuple[str, str, float]], mean_abs_corr: Mapping[str, float],
                 order: Sequence[str]) -> list[PairDecision]:
    """Apply the rule of this module to highly correlated pairs.

    Args:
        pairs: ``(a, b, r)`` triples (e.g. from :func:`high_pairs`).
        mean_abs_corr: column -> mean absolute correlation (:func:`mean_abs_correlation`).
        order: dictionary order of the columns (every column of ``pairs`` must be in it).

    Returns:
        one decision per pair, in the order the pairs were resolved.
    """
    pos = {c: i for i, c in enumerate(order)}
    missing = sorted({c for a, b, _ in pairs for c in (a, b)} - set(pos))
    if missing:
        raise ValueError(f"columns {missing} of the correlated pairs are not in the column order")
    norm = []
    for a, b, r in pairs:
        a, b = (a, b) if pos[a] < pos[b] else (b, a)
        norm.append((a, b, float(r)))
    norm.sort(key=lambda p: (-abs(p[2]), pos[p[0]], pos[p[1]]))
    dropped: list[str] = []
    out = []
    for a, b, r in norm:
        ma, mb = float(mean_abs_corr[a]), float(mean_abs_corr[b])
        done = next((c for c in (a, b) if c in dropped), None)
        if done is not None:
            out.append(PairDecision(a, b, r, ma, mb, None, f"already resolved by {done}"))
            continue
        if round(ma, 12) == round(mb, 12):
            drop, reason = b, "tie: later column"
        else:
            drop, reason = (a if ma > mb else b), "higher mean |r|"
        dropped.append(drop)
        out.append(PairDecision(a, b, r, ma, mb, drop, reason))
    return out


def columns_to_drop(columns: Sequence[str], matrix: Sequence[Sequence[float]], threshold: float,
                    order: Sequence[str] | None = None) -> list[str]:
    """The columns the rule drops, in dictionary order (``order`` defaults to ``columns``)."""
    order = list(order or columns)
    decisions = choose_drops(high_pairs(columns, matrix, threshold),
                             mean_abs_correlation(columns, matrix), order)
    dropped = {d.drop for d in decisions if d.drop}
    return [c for c in order if c in dropped]
