"""A draft use case from a delivered file: the column dictionary written for the user to check.

One aggregation over the file (Spark's CSV reader, the configured encoding, delimiter and quote)
gives per column: values present, distinct count, how many parse as numbers and as whole numbers,
how many look like phone numbers (``ingest.pii_pattern``), range, and the values of small
categories. From those, each column gets a suggested record:

* ``type``: ``int`` / ``float`` when every value is a number (whole numbers: int), else ``string``;
* ``role``: ``label`` for the column named on the command line; ``id`` for the first column whose
  values are all present and all different (text or whole numbers); ``pii`` when most values look
  like phone numbers; else ``feature``;
* ``impute``: ``mode`` for categories (text, or numbers with at most
  ``profile.categorical_max_distinct`` values), ``median`` for numbers, ``none`` for id, label, pii;
* ``name``: a plain identifier made from the code (the table column when the code is not one).

The YAML says, per record, what was seen (distinct values, share missing, range or values), so
that the user can add ``min`` / ``max`` / ``values`` rules and correct roles before the first run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from prospects.core.config import Config
from prospects.core.dictionary import is_identifier, quoted, suggest_identifier
from prospects.core.errors import JobError

SAMPLE_VALUES = 10
POSITIVE = ("1", "yes", "y", "true", "t", "churn", "churned", "switched", "positive", "是")


@dataclass
class ColumnProfile:
    """What one column of the file holds."""

    code: str
    rows: int
    present: int
    distinct: int
    numeric: int
    whole: int
    phone_like: int
    lo: float | None
    hi: float | None
    values: list[str]


def read_file(spark: SparkSession, cfg: Config, path: str) -> DataFrame:
    """The file as text columns named by its header."""
    quote = cfg.get("dataset.quote")
    return (spark.read.option("header", True).option("encoding", cfg.get("dataset.encoding"))
            .option("sep", cfg.get("dataset.delimiter")).option("quote", quote).option("escape", quote)
            .option("multiLine", cfg.get("dataset.multiline") != "never").option("inferSchema", False)
            .csv(path))


def profile(df: DataFrame, cfg: Config) -> list[ColumnProfile]:
    """Per column statistics of ``df`` in two aggregations: counts, ranges and estimated distinct
    values first; then exact distinct counts of the columns that may be ids, and the values of the
    columns with few of them."""
    nulls = [str(v).strip() for v in cfg.get("dataset.null_values") or []]
    pattern = cfg.get("ingest.pii_pattern")
    values = []
    for code in df.columns:
        v = F.trim(F.col(quoted(code)))
        values.append(F.when(~v.isin(*nulls) & (v != ""), v) if nulls else F.when(v != "", v))
    aggs = [F.count(F.lit(1)).alias("rows")]
    for i, v in enumerate(values):
        num = v.try_cast("double")
        aggs += [F.count(v).alias(f"n{i}"), F.approx_count_distinct(v).alias(f"d{i}"),
                 F.count(num).alias(f"x{i}"), F.count_if(num == F.floor(num)).alias(f"w{i}"),
                 F.count_if(v.rlike(pattern) if pattern else F.lit(False)).alias(f"p{i}"),
                 F.min(num).alias(f"lo{i}"), F.max(num).alias(f"hi{i}")]
    first = df.agg(*aggs).first()
    rows = first["rows"]
    maybe_id = [i for i in range(len(values)) if first[f"n{i}"] == rows and first[f"d{i}"] >= 0.9 * rows]
    few = [i for i in range(len(values)) if first[f"d{i}"] <= 2 * SAMPLE_VALUES]
    second = df.agg(F.lit(0).alias("_"), *[F.count_distinct(values[i]).alias(f"u{i}") for i in maybe_id],
                    *[F.array_sort(F.collect_set(values[i])).alias(f"s{i}") for i in few]).first()
    out = []
    for i, code in enumerate(df.columns):
        seen = list(second[f"s{i}"]) if i in few else []
        distinct = second[f"u{i}"] if i in maybe_id else (len(seen) if i in few else first[f"d{i}"])
        out.append(ColumnProfile(code, rows, first[f"n{i}"], distinct, first[f"x{i}"], first[f"w{i}"],
                                 first[f"p{i}"], first[f"lo{i}"], first[f"hi{i}"], seen))
    return out


def suggest(profiles: list[ColumnProfile], label: str | None, max_categories: int) -> list[dict]:
    """One dictionary record per column (module doc), with a note of what was seen."""
    out: list[dict] = []
    names: set[str] = set()
    id_taken = False
    for i, p in enumerate(profiles):
        numeric = p.present > 0 and p.numeric == p.present
        kind = ("int" if p.whole == p.present else "float") if numeric else "string"
        if label is not None and p.code == label:
            role = "label"
        elif not id_taken and p.present == p.rows and p.distinct >= p.rows and kind != "float":
            role, id_taken = "id", True
        elif p.present and p.phone_like >= 0.9 * p.present:
            role = "pii"
        else:
            role = "feature"
        categorical = kind == "string" or p.distinct <= max_categories
        impute = "none" if role != "feature" else ("mode" if categorical else "median")
        name = suggest_identifier(p.code, f"column_{i + 1}")
        while name in names:
            name = f"{name}_{i + 1}"
        names.add(name)
        record = {"code": p.code, "name": name, "group": "other", "type": kind, "impute": impute, "role": role}
        out.append({"record": record, "note": _note(p, categorical)})
    return out


def _note(p: ColumnProfile, categorical: bool) -> str:
    missing = 1 - p.present / p.rows if p.rows else 0.0
    seen = f"distinct {p.distinct}, missing {missing:.1%}"
    if categorical and p.values and p.distinct <= SAMPLE_VALUES:
        return f"{seen}, values {', '.join(p.values)}"
    if p.lo is not None and p.present == p.numeric:
        return f"{seen}, range {_short(p.lo)} .. {_short(p.hi)}"
    return seen


def _short(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


def label_values(p: ColumnProfile) -> dict[str, int] | None:
    """``{text: 0/1}`` for a two-valued label that is not written 0/1 (positive-looking text -> 1)."""
    values = [v for v in p.values if v is not None]
    if len(values) != 2 or sorted(values) == ["0", "1"]:
        return None
    positive = [v for v in values if v.strip().lower() in POSITIVE]
    one = positive[0] if len(positive) == 1 else sorted(values)[1]
    return {v: int(v == one) for v in values}


def _yaml_text(value) -> str:
    """A YAML flow scalar: plain when safe, double-quoted otherwise."""
    text = str(value)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.\-]*", text) and text.lower() not in ("null", "true", "false", "yes",
                                                                                  "no", "on", "off", "y", "n"):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(cfg: Config, path: str, name: str, label: str | None, profiles: list[ColumnProfile],
           records: list[dict]) -> str:
    """The draft use case as commented YAML."""
    by_code = {p.code: p for p in profiles}
    ids = [r["record"]["code"] for r in records if r["record"]["role"] == "id"]
    lv = label_values(by_code[label]) if label in by_code else None
    rows = profiles[0].rows if profiles else 0
    folder, _, file_name = path.rpartition("/")
    lines = [
        f"# Draft use case '{name}' from {path} ({rows} rows, {len(profiles)} columns),",
        "# written by `python -m jobs.dictionary`. Check every record before the first run: roles, types,",
        "# impute rules, readable names and groups; add min / max / values rules where you know them",
        "# (docs/configuration.md). Run it with --use-case " + name + ".",
        "",
        "paths:",
        f"  raw: {_yaml_text(folder or '.')}",
        f"  lakehouse: lakehouse/{name}",
        "",
        "dataset:",
        f"  name: {name}",
        f"  id_column: {_yaml_text(ids[0]) if ids else 'null'}"
        + ("" if ids else "                # no column is a unique id: ingest numbers the rows"),
        f"  label_column: {_yaml_text(label) if label else 'label'}",
        "  label_values: {" + ", ".join(f"{_yaml_text(k)}: {v}" for k, v in (lv or {}).items()) + "}",
        f"  train_file: {_yaml_text(file_name)}",
        "  label_file: null",
        "  region_files: {}",
        "  region_pattern: null",
        f"  encoding: {cfg.get('dataset.encoding')}",
        f"  delimiter: {_yaml_text(cfg.get('dataset.delimiter'))}",
        "  columns:",
    ]
    for r in records:
        rec = r["record"]
        body = ", ".join(f"{k}: {_yaml_text(v)}" for k, v in rec.items())
        lines.append(f"    - {{{body}}}  # {r['note']}")
    return "\n".join(lines) + "\n"


def draft(spark: SparkSession, cfg: Config, path: str, label: str | None, name: str | None) -> tuple[str, dict]:
    """The draft YAML of ``path`` and a summary (rows, columns, roles).

    Raises:
        JobError: the label column is not in the file's header.
    """
    df = read_file(spark, cfg, path)
    if label is not None and label not in df.columns:
        raise JobError(f"{path}: no column '{label}' to be the label (header: {df.columns})")
    profiles = profile(df, cfg)
    records = suggest(profiles, label, int(cfg.get("profile.categorical_max_distinct")))
    base = path.rpartition("/")[2].rsplit(".", 1)[0]
    name = name or suggest_identifier(base, "use_case")
    if not is_identifier(name):
        raise JobError(f"use case name {name!r} must be a plain identifier")
    roles: dict[str, list[str]] = {}
    for r in records:
        roles.setdefault(r["record"]["role"], []).append(r["record"]["code"])
    summary = {"file": path, "use_case": name, "rows": profiles[0].rows if profiles else 0,
               "columns": len(profiles), "id": roles.get("id", [None])[0], "label": label,
               "pii": roles.get("pii", []), "renamed": {r["record"]["code"]: r["record"]["name"] for r in records
                                                      if not is_identifier(r["record"]["code"])}}
    return render(cfg, path, name, label, profiles, records), summary
