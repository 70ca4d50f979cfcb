"""The single-machine reference: the study's method in pandas + scikit-learn (SPEC 1.3).

This is what users would run instead of the product: one Python process, the raw Parquet files
read with pyarrow into pandas, the study's cleaning, a scikit-learn random forest, region scores.
The benchmark (:mod:`bench.harness`) runs it in its own process on the same files as the
product and compares wall time, peak memory and AUC. It is meant to be an honest reference:

* **same data**: the generator's Parquet files (``train_set``, ``train_label``, one file per
  region), read with ``pandas.read_parquet`` (pyarrow, multi-threaded);
* **same split**: the product's train / validation / test assignment of every user (a Parquet
  file ``user_id, split`` written by the benchmark from ``train.split``, the function the
  training stage uses); without it a deterministic hash of ``user_id`` (70/15/15);
* **same features**, learned on the training split only, in the product's order: three-month means
  (``features.monthly_groups``), imputation by the column dictionary's rule (mode, median, zero),
  label encoding of text columns by descending frequency (unseen values get their own code, like
  Spark's ``StringIndexer(handleInvalid="keep")``), one column of each pair with Pearson
  ``|r| > features.correlation_threshold`` dropped by the shared rule of
  :mod:`prospects.profile.correlation`, min-max scaling;
* **same model**: ``RandomForestClassifier(n_estimators=n, max_depth=d, max_features="sqrt",
  class_weight="balanced", n_jobs=<cores>)`` - the study's tuned forest, balanced class weights
  like the product (``w = n / (2 n_class)``), all cores; float32 input (what scikit-learn's trees
  use internally, so no extra copy);
* **same outputs**: test ROC AUC, then every region scored (``predict_proba``) and written as
  Parquet (user_id, region, probability, prediction at 0.5, rank within the region);
* a **profile** step with the study's exploratory analysis in pandas (missing counts, describe,
  distinct counts, value counts and switch rate of categorical columns, missingness patterns,
  histograms, Pearson matrix), timed apart so totals can be read with or without it.

Run: ``python -m bench.reference --raw DIR --splits FILE --out DIR --trees 100 --depth 10``
(prints one ``REFERENCE {json}`` line with the seconds per stage and the AUC).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from prospects.core.config import Config, join_path, load_config, raw_name
from prospects.profile.correlation import columns_to_drop

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")


# ---------------------------------------------------------------------------------------------
# The feature layout (mirrors prospects.ml.features without importing Spark ML)
# ---------------------------------------------------------------------------------------------
def layout(cfg: Config) -> tuple[list[tuple[str, str, str]], dict[str, list[str]]]:
    """``(column, type, rule)`` after the three-month means, in dictionary order, and the groups.

    Same as :func:`prospects.ml.features.feature_layout`: a group's mean takes its first month's place.
    """
    exclude = set(cfg.get("features.exclude") or [])
    codes = [s.column for s in cfg.columns.features if s.column not in exclude]
    groups = {str(k): [str(c) for c in v] for k, v in (cfg.get("features.monthly_groups") or {}).items()}
    first = {cols[0]: name for name, cols in groups.items() if cols}
    grouped = {c for cols in groups.values() for c in cols}
    out = []
    for code in codes:
        spec = cfg.columns[code]
        if code in first:
            out.append((first[code], "float", spec.impute if spec.impute in ("median", "mean", "zero") else "median"))
        elif code not in grouped:
            out.append((code, spec.type, spec.impute))
    return out, groups


class StudyCleaning:
    """The study's cleaning, fitted on training rows (pandas in, float32 matrix out)."""

    def __init__(self, cfg: Config):
        self.layout, self.groups = layout(cfg)
        self.threshold = float(cfg.get("features.correlation_threshold"))
        self.fill: dict[str, Any] = {}
        self.codes: dict[str, dict[str, int]] = {}
        self.kept: list[str] = []
        self.dropped: list[str] = []
        self.lo: np.ndarray | None = None
        self.span: np.ndarray | None = None

    def _means(self, df: pd.DataFrame) -> pd.DataFrame:
        out = {c: df[c] for c, _, _ in self.layout if c not in self.groups}
        for name, cols in self.groups.items():
            out[name] = df[cols].astype("float64").mean(axis=1, skipna=True)
        return pd.DataFrame(out)[[c for c, _, _ in self.layout]]

    def _encode(self, df: pd.DataFrame) -> pd.DataFrame:
        for c, t, _ in self.layout:
            if c in self.fill and df[c].isna().any():
                df[c] = df[c].fillna(self.fill[c])
            if t == "string":
                codes = self.codes[c]
                df[c] = df[c].map(codes).fillna(len(codes))
        return df

    def fit(self, df: pd.DataFrame) -> StudyCleaning:
        """Learn fill values, text codes, the correlated columns to drop and the scaling bounds."""
        x = self._means(df)
        for c, t, rule in self.layout:
            col = x[c]
            if rule == "zero":
                self.fill[c] = "0" if t == "string" else 0
            elif rule == "mode":
                m = col.mode(dropna=True)
                self.fill[c] = m.iloc[0] if len(m) else 0
            elif rule == "median":
                self.fill[c] = float(col.median()) if col.notna().any() else 0.0
            elif rule == "mean":
                self.fill[c] = float(col.mean()) if col.notna().any() else 0.0
        for c, t, _ in self.layout:
            if t == "string":
                filled = x[c].fillna(self.fill[c])
                counts = filled.value_counts(sort=False).reset_index()
                counts.columns = ["value", "n"]
                counts = counts.sort_values(["n", "value"], ascending=[False, True])  # StringIndexer's order
                self.codes[c] = {v: i for i, v in enumerate(counts["value"])}
        x = self._encode(x).astype("float64")
        names = list(x.columns)
        with np.errstate(invalid="ignore", divide="ignore"):
            matrix = np.corrcoef(x.to_numpy(), rowvar=False)
        self.dropped = columns_to_drop(names, matrix.tolist(), self.threshold) if self.threshold < 1.0 else []
        self.kept = [c for c in names if c not in self.dropped]
        kept = x[self.kept].to_numpy()
        self.lo = kept.min(axis=0)
        span = kept.max(axis=0) - self.lo
        self.span = np.where(span > 0, span, 1.0)
        return self

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Features of ``df`` as a float32 matrix (rows in ``df`` order, columns ``self.kept``)."""
        x = self._encode(self._means(df))[self.kept].astype("float64").to_numpy()
        scaled = (x - self.lo) / self.span
        return np.clip(scaled, 0.0, 1.0, out=scaled).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Files and split
# ---------------------------------------------------------------------------------------------
def raw_files(cfg: Config) -> dict[str, Any]:
    """Paths of the raw Parquet files: train, labels, {region: path}."""
    from prospects.synthetic.generator import plan

    raw, fmt = cfg.path("raw"), cfg.get("dataset.format")
    regions = {p.region: join_path(raw, raw_name(p.name, fmt)) for p in plan(cfg) if p.region}
    return {"train": join_path(raw, raw_name(cfg.get("dataset.train_file"), fmt)),
            "labels": join_path(raw, raw_name(cfg.get("dataset.label_file"), fmt)), "regions": regions}


def hash_split(ids: pd.Series, seed: int, fractions: dict[str, float]) -> pd.Series:
    """Fallback split (no product split file): a splitmix64 hash of (seed, id) cut at the fractions."""
    with np.errstate(over="ignore"):
        z = ids.to_numpy(dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)
    a = float(fractions["train"])
    b = a + float(fractions["validation"])
    return pd.Series(np.where(u < a, "train", np.where(u < b, "validation", "test")), index=ids.index)


# ---------------------------------------------------------------------------------------------
# The study's exploratory profile
# ---------------------------------------------------------------------------------------------
def profile(df: pd.DataFrame, cfg: Config, max_distinct: int = 10, bins: int = 30) -> dict:
    """The study's EDA in pandas: what the product's profile stage computes, without its tables and
    figures. Returns a small summary."""
    label = cfg.columns.label_column
    features = [s.column for s in cfg.columns.features]
    missing = df[features].isna().sum()
    numeric = [c for c in features if pd.api.types.is_numeric_dtype(df[c])]
    df[numeric].describe(percentiles=[0.01, 0.25, 0.5, 0.75, 0.99])
    distinct = df[features].nunique(dropna=True)
    categorical = [c for c in features if distinct[c] <= max_distinct or not pd.api.types.is_numeric_dtype(df[c])]
    rates = {c: df.groupby(c, dropna=False)[label].agg(["size", "mean"]) for c in categorical}
    miss_cols = [c for c in features if missing[c] > 0]
    patterns = df[miss_cols].isna().value_counts() if miss_cols else pd.Series(dtype="int64")
    for c in [c for c in numeric if c not in categorical]:
        v = df[c].to_numpy(dtype="float64")
        v = v[~np.isnan(v)]
        if len(v):
            np.histogram(v, bins=bins, range=(v.min(), max(np.percentile(v, 99), v.min() + 1e-9)))
    filled = df[numeric].fillna(df[numeric].median())
    corr = filled.corr(method="pearson")
    return {"categorical": len(categorical), "missing_columns": len(miss_cols), "patterns": int(len(patterns)),
            "pairs_above_0_8": int(((corr.abs() > 0.8).sum().sum() - len(numeric)) // 2), "rates": len(rates)}


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------
def run(cfg: Config, splits: str | None, out_dir: str, trees: int, depth: int, n_jobs: int,
        with_profile: bool = True) -> dict:
    """The reference, stage by stage; returns seconds per stage, AUC, rows and scored users.

    Stages: ``load`` (read and merge train + labels, drop personal data), ``profile`` (EDA),
    ``features`` (split, fit the cleaning on train, transform train and test), ``train``
    (random forest), ``evaluate`` (test AUC), ``score`` (read, transform, predict and write each
    region).
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score

    seconds: dict[str, float] = {}
    out: dict[str, Any] = {"seconds": seconds}
    id_col, label = cfg.columns.id_column, cfg.columns.label_column
    pii = [s.column for s in cfg.columns.pii]
    files = raw_files(cfg)

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        value = fn()
        seconds[stage] = round(time.perf_counter() - t, 3)
        log.info("reference %s: %.1f s", stage, seconds[stage])
        return value

    def load() -> pd.DataFrame:
        users = pd.read_parquet(files["train"])
        labels = pd.read_parquet(files["labels"])
        df = users.drop(columns=[c for c in pii if c in users.columns]).merge(labels, on=id_col, how="inner")
        return df

    df = timed("load", load)
    out["rows"] = int(len(df))
    if with_profile:
        out["profile"] = timed("profile", lambda: profile(df, cfg, int(cfg.get("profile.categorical_max_distinct")),
                                                          int(cfg.get("profile.histogram_bins"))))

    def features() -> tuple:
        if splits:
            s = pd.read_parquet(splits, columns=[id_col, "split"])
            part = df[[id_col]].merge(s, on=id_col, how="left")["split"].fillna("train").to_numpy()
        else:
            part = hash_split(df[id_col], int(cfg.get("train.seed")), cfg.get("train.fractions")).to_numpy()
        train_df, test_df = df[part == "train"], df[part == "test"]
        cleaning = StudyCleaning(cfg).fit(train_df)
        return (cleaning, cleaning.transform(train_df), train_df[label].to_numpy(),
                cleaning.transform(test_df), test_df[label].to_numpy())

    cleaning, x_train, y_train, x_test, y_test = timed("features", features)
    out.update(train_rows=int(len(y_train)), test_rows=int(len(y_test)), features=cleaning.kept,
               dropped=cleaning.dropped)
    df = None  # free the raw frame before training

    model = RandomForestClassifier(n_estimators=trees, max_depth=depth, max_features="sqrt",
                                   class_weight="balanced", n_jobs=n_jobs, random_state=int(cfg.get("train.seed")))
    timed("train", lambda: model.fit(x_train, y_train))
    x_train = y_train = None  # free the training matrix before scoring
    out["auc"] = timed("evaluate", lambda: float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])))

    def score() -> dict[str, int]:
        users = {}
        os.makedirs(out_dir, exist_ok=True)
        for region, path in sorted(files["regions"].items()):
            r = pd.read_parquet(path)
            p = model.predict_proba(cleaning.transform(r))[:, 1]
            scored = pd.DataFrame({id_col: r[id_col].to_numpy(), "region": region, "probability": p,
                                   "prediction": (p > 0.5).astype("int32")})
            scored["rank"] = scored["probability"].rank(method="first", ascending=False).astype("int64")
            scored.to_parquet(join_path(out_dir, f"scores_{region}.parquet"), index=False)
            users[region] = int(len(r))
        return users

    out["regions"] = timed("score", score)
    out["total"] = round(sum(seconds.values()), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.reference``: see the module docstring."""
    p = argparse.ArgumentParser(description="pandas + scikit-learn reference of the pipeline (SPEC 1.3).")
    p.add_argument("--raw", required=True, help="folder of the raw Parquet files (paths.raw)")
    p.add_argument("--splits", default=None, help="Parquet user_id, split (the product's split)")
    p.add_argument("--out", required=True, help="folder for the region scores")
    p.add_argument("--trees", type=int, default=100)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="n_jobs (default: every core)")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config key=value")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(overrides=[f"paths.raw={args.raw}", "dataset.format=parquet", *args.overrides])
    res = run(cfg, args.splits, args.out, args.trees, args.depth, args.jobs, not args.no_profile)
    import psutil

    # from the process's creation (interpreter start and imports included) to the last region written
    res["process_seconds"] = round(time.time() - psutil.Process().create_time(), 3)
    print("REFERENCE " + json.dumps(res, default=str), flush=True)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
