"""What the profile's passes collect: small aggregates, handed to the tables, figures and report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Profile:
    """The collected profile of one bronze run (rows are plain dicts, as the eda_* tables hold them)."""

    bronze_run: str
    users: int
    features: list[str]
    groups: dict[str, list[str]]
    threshold: float                                  # |r| above which a pair is reported
    per_group: dict = field(default_factory=dict)     # group -> users missing all / any of its columns
    col_rows: list[dict] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    numeric: list[str] = field(default_factory=list)
    curve_cols: list[str] = field(default_factory=list)   # numeric columns drawn as rate curves (age, tenure)
    hist_cols: list[str] = field(default_factory=list)    # the other numeric columns
    miss_cols: list[str] = field(default_factory=list)    # columns with a missing value
    sample: list[list[bool]] = field(default_factory=list)
    pattern_rows: list[dict] = field(default_factory=list)
    n_patterns: int = 1
    co_rows: list[dict] = field(default_factory=list)
    blocks: list[dict] = field(default_factory=list)
    cat_rows: list[dict] = field(default_factory=list)
    curve_rows: list[dict] = field(default_factory=list)
    hist_rows: list[dict] = field(default_factory=list)
    outliers: dict[str, tuple[int, int]] = field(default_factory=dict)
    corr_cols: list[str] = field(default_factory=list)
    matrix: list[list[float]] = field(default_factory=list)
    corr_rows: list[dict] = field(default_factory=list)
    pair_rows: list[dict] = field(default_factory=list)
    overall_rate: float = 0.0
    schemas: dict[str, Any] = field(default_factory=dict)  # table -> Spark schema of the rows above

    def summary(self) -> dict:
        """The job's JSON-able summary."""
        return {
            "bronze_run_id": self.bronze_run, "users": self.users, "columns": len(self.features),
            "categorical": self.categorical, "numeric": self.numeric,
            "blocks": [{"columns": b["columns"], "users": b["users_missing"]} for b in self.blocks],
            "missing_patterns": self.n_patterns,
            "corr_threshold": self.threshold, "correlated_pairs": len(self.pair_rows),
            "would_drop": [r["drop"] for r in self.pair_rows if r["drop"]],
            "switch_rate": round(self.overall_rate, 6),
        }
