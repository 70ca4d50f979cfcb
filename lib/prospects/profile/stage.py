"""Exploratory profile of the bronze users (SPEC 1.2 and the study's section 3), computed in Spark.

Every statistic is a Spark aggregation; only aggregates (one row per column, per value, per bin,
per missingness pattern, a columns x columns matrix, and a bounded sample of missingness flags)
reach the driver, so the job runs on any size of user base. Passes over the user table:

1. one aggregation: per column null count, approximate distinct count, min, max, mean,
   percentiles, and per dimension group the users missing all / any of its columns;
2. one aggregation: exact distinct counts (``size(collect_set)``) of the columns whose approximate
   count is at most ``profile.approx_distinct_above``;
3. one ``groupBy`` of (column, value) over an exploded array: user and switcher counts for every
   categorical column and every curve column (age, tenure);
4. one ``groupBy`` of the missingness bit pattern (users with the same missing columns); the
   co-missing structure and the missing blocks are derived from the (small) pattern table;
5. one ``groupBy`` of integer cell codes stacked into rows: histograms and outlier counts;
6. one ``Correlation.corr`` over the imputed numeric columns (Pearson);
7. one bounded sample (``profile.missing_sample_rows`` users) of missingness flags for a picture.

Outputs (docs/profile.md): Delta tables ``tables.eda_*`` partitioned by run_id, PNG figures and a
Markdown report under ``<paths.reports>/<run_id>/profile/``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from pyspark import StorageLevel
from pyspark.ml.feature import VectorAssembler
from pyspark.ml.stat import Correlation
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from prospects.core import runlog, tables
from prospects.core.config import Config, join_path
from prospects.core.dictionary import ColumnDictionary
from prospects.core.figures import Folder
from prospects.core.stopwatch import Stopwatch
from prospects.profile import correlation as corr_rule
from prospects.profile.result import Profile

log = logging.getLogger(__name__)

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
Q_NAMES = ("p01", "p05", "p25", "p50", "p75", "p95", "p99")
ROLE_CATEGORICAL = "categorical"
ROLE_NUMERIC = "numeric"

COLUMNS_SCHEMA = T.StructType([
    T.StructField("column", T.StringType()), T.StructField("name", T.StringType()),
    T.StructField("group", T.StringType()), T.StructField("declared_type", T.StringType()),
    T.StructField("spark_type", T.StringType()), T.StructField("rows", T.LongType()),
    T.StructField("null_count", T.LongType()), T.StructField("null_share", T.DoubleType()),
    T.StructField("distinct", T.LongType()), T.StructField("distinct_exact", T.BooleanType()),
    T.StructField("role", T.StringType()), T.StructField("role_reason", T.StringType()),
    T.StructField("min", T.DoubleType()), T.StructField("max", T.DoubleType()),
    T.StructField("mean", T.DoubleType()),
    *[T.StructField(q, T.DoubleType()) for q in Q_NAMES],
])


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def is_numeric(df: DataFrame, column: str) -> bool:
    """True when ``column`` of ``df`` has a numeric Spark type."""
    return isinstance(df.schema[column].dataType, T.NumericType)


def _check_columns(df: DataFrame, columns: Sequence[str], what: str = "input") -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: column(s) {missing} not found (columns: {df.columns})")


def _label_sum(label: str | None) -> Column:
    return F.sum(F.col(label).cast("long")) if label else F.lit(None).cast("long")


# ---------------------------------------------------------------------------------------------
# 1. Columns: missing values, distinct counts, typing, quantiles
# ---------------------------------------------------------------------------------------------
def column_stats(df: DataFrame, columns: Sequence[str], accuracy: int = 10000,
                 groups: dict[str, list[str]] | None = None, quantile_fraction: float = 1.0,
                 seed: int = 11) -> tuple[dict, dict]:
    """One aggregation over ``df``: per column statistics and per dimension group missing counts.

    Args:
        df: the users.
        columns: columns to profile.
        accuracy: ``percentile_approx`` accuracy.
        groups: dimension group -> its columns (for users missing all / any of a group).
        quantile_fraction: share of the users (random, ``seed``) fed to ``percentile_approx``, the
            costly part of the pass; every other statistic uses all users.

    Returns:
        (per column dict: rows, null_count, approx_distinct, min, max, mean, p01..p99 (numeric only);
        per group dict: users_all_missing, users_any_missing, rows).
    """
    _check_columns(df, columns)
    aggs: list[Column] = [F.count(F.lit(1)).alias("__rows")]
    sampled = quantile_fraction < 1.0
    if sampled:
        df = df.withColumn("__q", F.rand(seed) < F.lit(float(quantile_fraction)))
    for i, c in enumerate(columns):
        col = F.col(c)
        aggs += [F.sum(col.isNull().cast("long")).alias(f"n{i}"),
                 F.approx_count_distinct(col).alias(f"d{i}")]
        if is_numeric(df, c):
            x = col.cast("double")
            xq = F.when(F.col("__q"), x) if sampled else x
            aggs += [F.min(x).alias(f"lo{i}"), F.max(x).alias(f"hi{i}"), F.avg(x).alias(f"mu{i}"),
                     F.percentile_approx(xq, list(QUANTILES), accuracy).alias(f"q{i}")]
    for j, (_, cols) in enumerate((groups or {}).items()):
        flags = [F.col(c).isNull() for c in cols]
        all_null = flags[0]
        any_null = flags[0]
        for f in flags[1:]:
            all_null, any_null = all_null & f, any_null | f
        aggs += [F.sum(all_null.cast("long")).alias(f"ga{j}"), F.sum(any_null.cast("long")).alias(f"gy{j}")]
    row = df.agg(*aggs).first().asDict()
    rows = int(row["__rows"])
    out = {}
    for i, c in enumerate(columns):
        rec = {"rows": rows, "null_count": int(row[f"n{i}"] or 0), "approx_distinct": int(row[f"d{i}"])}
        q = row.get(f"q{i}")
        rec.update({"min": row.get(f"lo{i}"), "max": row.get(f"hi{i}"), "mean": row.get(f"mu{i}")})
        rec.update({name: (float(q[k]) if q else None) for k, name in enumerate(Q_NAMES)})
        out[c] = rec
    per_group = {g: {"users_all_missing": int(row[f"ga{j}"] or 0), "users_any_missing": int(row[f"gy{j}"] or 0),
                     "rows": rows} for j, g in enumerate((groups or {}))}
    return out, per_group


def exact_distinct(df: DataFrame, columns: Sequence[str]) -> dict[str, int]:
    """Exact distinct non-null counts, one aggregation (``size(collect_set)``).

    Only for columns known to have few distinct values (the sets travel to the driver).
    """
    if not columns:
        return {}
    _check_columns(df, columns)
    row = df.agg(*[F.size(F.collect_set(F.col(c))).alias(f"c{i}") for i, c in enumerate(columns)]).first()
    return {c: int(row[f"c{i}"]) for i, c in enumerate(columns)}


def infer_role(declared_type: str, distinct: int, max_distinct: int) -> tuple[str, str]:
    """Inferred role of a feature: text, or numeric with at most ``max_distinct`` values, is categorical.

    Returns:
        (role, reason).
    """
    if declared_type == "string":
        return ROLE_CATEGORICAL, "text"
    if distinct <= max_distinct:
        return ROLE_CATEGORICAL, f"numeric with {distinct} <= {max_distinct} distinct values"
    return ROLE_NUMERIC, f"numeric with {distinct} > {max_distinct} distinct values"


def _profile_rows(df: DataFrame, dictionary: ColumnDictionary, columns: Sequence[str], stats: dict,
                  max_distinct: int, approx_above: int) -> list[dict]:
    low = [c for c in columns if stats[c]["approx_distinct"] <= approx_above]
    exact = exact_distinct(df, low)
    rows = []
    for c in columns:
        s = stats[c]
        spec = dictionary.by_column.get(c)
        declared = spec.type if spec else ("string" if not is_numeric(df, c) else "float")
        distinct = exact.get(c, s["approx_distinct"])
        role, reason = infer_role(declared, distinct, max_distinct)
        rows.append({
            "column": c, "name": dictionary.readable(c), "group": spec.group if spec else "other",
            "declared_type": declared, "spark_type": df.schema[c].dataType.simpleString(),
            "rows": s["rows"], "null_count": s["null_count"],
            "null_share": s["null_count"] / s["rows"] if s["rows"] else None,
            "distinct": distinct, "distinct_exact": c in exact, "role": role, "role_reason": reason,
            **{k: (float(s[k]) if s[k] is not None else None) for k in ("min", "max", "mean", *Q_NAMES)},
        })
    return rows


GROUPS_SCHEMA = T.StructType([
    T.StructField("group", T.StringType()), T.StructField("columns", T.ArrayType(T.StringType())),
    T.StructField("users_all_missing", T.LongType()), T.StructField("users_any_missing", T.LongType()),
    T.StructField("share_all_missing", T.DoubleType()), T.StructField("share_any_missing", T.DoubleType()),
])


def _group_rows(groups: dict[str, list[str]], per_group: dict) -> list[dict]:
    out = []
    for g, cols in groups.items():
        s = per_group[g]
        n = s["rows"] or 1
        out.append({"group": g, "columns": list(cols), "users_all_missing": s["users_all_missing"],
                    "users_any_missing": s["users_any_missing"],
                    "share_all_missing": s["users_all_missing"] / n, "share_any_missing": s["users_any_missing"] / n})
    return out


# ---------------------------------------------------------------------------------------------
# 2. Co-missing structure: missingness patterns, co-missing counts, blocks
# ---------------------------------------------------------------------------------------------
def missing_patterns(df: DataFrame, columns: Sequence[str], label: str | None = None) -> DataFrame:
    """Users grouped by which of ``columns`` they miss (one ``groupBy``).

    Returns:
        pattern (string of '0'/'1', one character per column in ``columns`` order, '1' = missing),
        missing_count (number of missing columns), users, switchers (null without ``label``).
        One row per distinct pattern (few in practice; at most one per user).
    """
    _check_columns(df, [*columns, *([label] if label else [])])
    if not columns:
        raise ValueError("missing_patterns: no columns given")
    bits = F.concat(*[F.when(F.col(c).isNull(), F.lit("1")).otherwise(F.lit("0")) for c in columns])
    return (df.select(bits.alias("pattern"), *([F.col(label)] if label else []))
            .groupBy("pattern").agg(F.count(F.lit(1)).alias("users"), _label_sum(label).alias("switchers"))
            .withColumn("missing_count", F.length(F.regexp_replace("pattern", "0", "")))
            .select("pattern", "missing_count", "users", "switchers"))


COLLECT_PATTERNS_MAX = 100_000


def co_missing_counts(pattern_rows: Sequence[dict], columns: Sequence[str]) -> list[dict]:
    """Pure-Python co-missing counts from pattern rows (dicts with ``pattern`` and ``users``).

    Returns:
        rows as in :func:`co_missing`.
    """
    n = len(columns)
    both = [[0] * n for _ in range(n)]
    for r in pattern_rows:
        bits = [i for i, b in enumerate(r["pattern"]) if b == "1"]
        for x, i in enumerate(bits):
            for j in bits[x:]:
                both[i][j] += int(r["users"])
    return _co_rows(columns, lambda i, j: both[i][j])


def _co_rows(columns: Sequence[str], both) -> list[dict]:
    rows = []
    for i in range(len(columns)):
        for j in range(i, len(columns)):
            a, b, ab = both(i, i), both(j, j), both(i, j)
            either = a + b - ab
            rows.append({"col_a": columns[i], "col_b": columns[j], "a_missing": a, "b_missing": b,
                         "both_missing": ab, "either_missing": either,
                         "jaccard": ab / either if either else None})
    return rows


def co_missing(patterns: DataFrame, columns: Sequence[str]) -> DataFrame:
    """Users missing both columns of each pair, from the pattern table.

    The pattern table is small in practice (a handful of blocks give a handful of patterns): up to
    :data:`COLLECT_PATTERNS_MAX` patterns it is counted on the driver, above that in Spark (each
    pattern exploded into its missing column indices, self-joined, summed).

    Args:
        patterns: output of :func:`missing_patterns` over ``columns``.
        columns: the columns of the patterns, in the same order.

    Returns:
        col_a, col_b (every pair a <= b in ``columns`` order, diagonal included), a_missing,
        b_missing, both_missing, either_missing, jaccard (both / either; null when neither is
        ever missing).
    """
    spark = patterns.sparkSession
    if patterns.count() <= COLLECT_PATTERNS_MAX:
        rows = co_missing_counts([r.asDict() for r in patterns.select("pattern", "users").collect()], columns)
        return spark.createDataFrame(rows, CO_MISSING_SCHEMA)
    idx = F.filter(F.sequence(F.lit(0), F.length("pattern") - 1),
                   lambda i: F.substring(F.col("pattern"), i + 1, 1) == "1")
    cells = patterns.select(F.col("pattern"), F.col("users"), F.explode(idx).alias("i"))
    pairs = (cells.alias("a").join(cells.alias("b"), "pattern")
             .where(F.col("a.i") <= F.col("b.i"))
             .groupBy(F.col("a.i").alias("i"), F.col("b.i").alias("j")).agg(F.sum("a.users").alias("n")))
    both = {(r["i"], r["j"]): int(r["n"]) for r in pairs.collect()}
    return spark.createDataFrame(_co_rows(columns, lambda i, j: both.get((i, j), 0)), CO_MISSING_SCHEMA)


CO_MISSING_SCHEMA = T.StructType([
    T.StructField("col_a", T.StringType()), T.StructField("col_b", T.StringType()),
    T.StructField("a_missing", T.LongType()), T.StructField("b_missing", T.LongType()),
    T.StructField("both_missing", T.LongType()), T.StructField("either_missing", T.LongType()),
    T.StructField("jaccard", T.DoubleType()),
])


def blocks_from_co_missing(co_rows: Sequence[dict], columns: Sequence[str]) -> list[dict]:
    """Missing blocks: sets of columns that are missing for exactly the same users.

    Two columns are in one block when ``both_missing == a_missing == b_missing > 0``. Block A is
    contained in block B when every user missing A also misses B (``both == a_missing``).

    Args:
        co_rows: rows of :func:`co_missing` (dicts with col_a, col_b, a_missing, b_missing, both_missing).
        columns: column order.

    Returns:
        blocks, most users first (ties: column order): block (1-based id), columns (list),
        users_missing, contained_in (id of the smallest block strictly containing it, or None).
    """
    pos = {c: i for i, c in enumerate(columns)}
    both = {}
    for r in co_rows:
        both[(r["col_a"], r["col_b"])] = both[(r["col_b"], r["col_a"])] = int(r["both_missing"])
    parent = {c: c for c in columns}

    def find(c: str) -> str:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    present = [c for c in columns if both.get((c, c), 0) > 0]
    for i, a in enumerate(present):
        for b in present[i + 1:]:
            if both[(a, b)] == both[(a, a)] == both[(b, b)]:
                parent[find(b)] = find(a)
    members: dict[str, list[str]] = {}
    for c in present:
        members.setdefault(find(c), []).append(c)
    blocks = sorted(members.values(), key=lambda cols: (-both[(cols[0], cols[0])], pos[cols[0]]))
    out = [{"block": k + 1, "columns": cols, "users_missing": both[(cols[0], cols[0])], "contained_in": None}
           for k, cols in enumerate(blocks)]
    for blk in out:
        a = blk["columns"][0]
        supersets = [o for o in out if o is not blk and o["users_missing"] > blk["users_missing"]
                     and both[(a, o["columns"][0])] == blk["users_missing"]]
        if supersets:
            blk["contained_in"] = min(supersets, key=lambda o: o["users_missing"])["block"]
    return out


BLOCKS_SCHEMA = T.StructType([
    T.StructField("block", T.IntegerType()), T.StructField("columns", T.ArrayType(T.StringType())),
    T.StructField("names", T.ArrayType(T.StringType())), T.StructField("groups", T.ArrayType(T.StringType())),
    T.StructField("users_missing", T.LongType()), T.StructField("share_missing", T.DoubleType()),
    T.StructField("contained_in", T.IntegerType()),
])


def _block_rows(blocks: list[dict], rows: int, dictionary: ColumnDictionary | None) -> list[dict]:
    out = []
    for b in blocks:
        groups = []
        for c in b["columns"]:
            g = dictionary[c].group if dictionary is not None and c in dictionary else "other"
            if g not in groups:
                groups.append(g)
        out.append({**b, "names": [dictionary.readable(c) if dictionary else c for c in b["columns"]],
                    "groups": groups, "share_missing": b["users_missing"] / rows if rows else None})
    return out


def missing_sample(df: DataFrame, columns: Sequence[str], rows: int, total: int, seed: int) -> list[list[bool]]:
    """Missingness flags of a bounded random sample of about ``rows`` users (at most ``rows``).

    Returns:
        list of rows, each a list of booleans (True = missing) in ``columns`` order.
    """
    if total <= 0 or rows <= 0:
        return []
    fraction = min(1.0, 1.3 * rows / total)
    flags = [F.col(c).isNull().alias(c) for c in columns]
    sample = df.sample(withReplacement=False, fraction=fraction, seed=seed) if fraction < 1 else df
    return [list(r) for r in sample.select(*flags).limit(rows).collect()]


# ---------------------------------------------------------------------------------------------
# 3. Categorical columns and rate curves
# ---------------------------------------------------------------------------------------------
def value_rates(df: DataFrame, columns: Sequence[str], label: str | None) -> DataFrame:
    """Users and switchers per (column, value), for all ``columns`` in one ``groupBy``.

    Returns:
        column, value (string; null = missing), users, switchers (null without ``label``).
    """
    _check_columns(df, [*columns, *([label] if label else [])])
    if not columns:
        raise ValueError("value_rates: no columns given")
    cells = F.explode(F.array(*[F.struct(F.lit(c).alias("column"), F.col(c).cast("string").alias("value"))
                                for c in columns])).alias("cell")
    return (df.select(cells, *([F.col(label)] if label else []))
            .groupBy(F.col("cell.column").alias("column"), F.col("cell.value").alias("value"))
            .agg(F.count(F.lit(1)).alias("users"), _label_sum(label).alias("switchers")))


def _with_rates(counts: DataFrame) -> DataFrame:
    total = F.sum("users").over(_by_column())
    return (counts.withColumn("share", F.col("users") / total)
            .withColumn("switch_rate", F.col("switchers") / F.col("users")))


def _by_column():
    from pyspark.sql import Window
    return Window.partitionBy("column")


def categorical_from_counts(counts: DataFrame, dictionary: ColumnDictionary | None = None) -> DataFrame:
    """Per categorical column and value, from the output of :func:`value_rates` (no pass over the users).

    Returns:
        column, value (string; null = missing), value_label (English label from the dictionary,
        ``missing`` for null), users, share (of the column's users), switchers, switch_rate.
    """
    label_map: dict[str, str] = {}
    if dictionary is not None:
        for spec in dictionary:
            for raw, text in spec.labels.items():
                label_map[f"{spec.column}\u0001{raw}"] = text
    key = F.concat_ws("\u0001", F.col("column"), F.col("value"))
    if label_map:
        mapped = F.create_map(*[F.lit(x) for kv in label_map.items() for x in kv])[key]
    else:
        mapped = F.lit(None).cast("string")
    value_label = (F.when(F.col("value").isNull(), F.lit("missing"))
                   .otherwise(F.coalesce(mapped, F.regexp_replace("value", r"\.0$", ""))))
    return (_with_rates(counts).withColumn("value_label", value_label)
            .select("column", "value", "value_label", "users", "share", "switchers", "switch_rate"))


def curves_from_counts(counts: DataFrame) -> DataFrame:
    """Switch rate and users by value of numeric columns (age, tenure), from the output of
    :func:`value_rates` (no pass over the users).

    Returns:
        column, value (double; null = missing), users, share, switchers, switch_rate.
    """
    return (_with_rates(counts).withColumn("value", F.col("value").cast("double"))
            .select("column", "value", "users", "share", "switchers", "switch_rate"))


# ---------------------------------------------------------------------------------------------
# 4. Numeric distributions: histograms and outliers
# ---------------------------------------------------------------------------------------------
def histogram_ranges(stats: dict) -> dict[str, tuple[float, float, float, float]]:
    """Per column (lower, upper, fence_low, fence_high) from :func:`column_stats` output.

    The histogram spans [min, p99] (values at or above p99 go into one overflow bin, [p99, max]);
    outliers are values outside the Tukey fences [p25 - 1.5 IQR, p75 + 1.5 IQR].
    """
    out = {}
    for c, s in stats.items():
        if s.get("min") is None:
            continue
        lo, hi = float(s["min"]), float(s["p99"])
        if hi <= lo:
            hi = float(s["max"])
        iqr = float(s["p75"]) - float(s["p25"])
        out[c] = (lo, hi, float(s["p25"]) - 1.5 * iqr, float(s["p75"]) + 1.5 * iqr)
    return out


def _cell_code(i: int, column: str, bounds: tuple[float, float, float, float], bins: int) -> Column:
    """One integer per value of column number ``i``: ``((i * (bins + 1) + bin) * 2 + below the low
    fence) * 2 + above the high fence``, null for a missing value; decoded after the ``groupBy``."""
    lo, hi, f_lo, f_hi = bounds
    x = F.col(column).cast("double")
    if hi > lo:
        b = (F.when(x >= F.lit(hi), F.lit(bins))
             .otherwise(F.greatest(F.least(F.floor((x - F.lit(lo)) / F.lit((hi - lo) / bins)),
                                           F.lit(bins - 1)), F.lit(0))))
    else:
        b = F.lit(0)
    code = ((F.lit(i * (bins + 1)) + b.cast("int")) * 2 + (x < F.lit(f_lo)).cast("int")) * 2 \
        + (x > F.lit(f_hi)).cast("int")
    return F.when(x.isNotNull(), code)


def histograms(df: DataFrame, columns: Sequence[str], bins: int, label: str | None = None,
               ranges: dict[str, tuple[float, float, float, float]] | None = None) -> DataFrame:
    """Histograms of numeric columns and Tukey outlier counts, one ``groupBy`` of (column, bin).

    Args:
        df: the users.
        columns: numeric columns.
        bins: bins between the lower and upper bound; values at or above the upper bound (p99)
            fall in one more bin numbered ``bins`` (the overflow bin, [upper, max]).
        label: 0/1 label column, for switchers per bin (optional).
        ranges: column -> (lower, upper, fence_low, fence_high); default from :func:`column_stats`
            (:func:`histogram_ranges`), which costs one more pass.

    Returns:
        column, bin, lower, upper, users, switchers, outliers_low, outliers_high (users of the bin
        below / above the Tukey fences). Missing values are not counted.
    """
    _check_columns(df, [*columns, *([label] if label else [])])
    if bins < 1:
        raise ValueError(f"histograms: bins must be >= 1, got {bins}")
    if ranges is None:
        stats, _ = column_stats(df, columns)
        ranges = histogram_ranges(stats)
    columns = [c for c in columns if c in ranges]
    if not columns:
        return df.sparkSession.createDataFrame([], _HIST_SCHEMA)
    # The rows carry plain ints (not structs of strings) and the aggregation groups on one int key;
    # the codes are computed in one projection and then stacked into rows, which is cheaper than an
    # explode over an array of them (docs/benchmarks)
    slots = bins + 1
    codes = [_cell_code(i, c, ranges[c], bins) for i, c in enumerate(columns)]
    labels = [F.col(label)] if label else []
    coded = df.select(*[code.alias(f"_code{i}") for i, code in enumerate(codes)], *labels)
    stacked = F.stack(F.lit(len(codes)), *[F.col(f"_code{i}") for i in range(len(codes))])
    cells = (coded.select(stacked.alias("code"), *labels)
             .where(F.col("code").isNotNull())
             .groupBy("code").agg(F.count(F.lit(1)).alias("n"), _label_sum(label).alias("s")))
    name = F.element_at(F.array(*[F.lit(c) for c in columns]), (F.col("code") / (4 * slots)).cast("int") + 1)
    counts = (cells.select(name.alias("column"), ((F.col("code") / 4).cast("int") % slots).alias("bin"),
                           "n", "s", (F.floor(F.col("code") / 2) % 2).alias("low"), (F.col("code") % 2).alias("high"))
              .groupBy("column", "bin")
              .agg(F.sum("n").alias("users"), F.sum("s").cast("long").alias("switchers"),
                   F.sum(F.col("n") * F.col("low")).alias("outliers_low"),
                   F.sum(F.col("n") * F.col("high")).alias("outliers_high")))
    lo_map = F.create_map(*[x for c in columns for x in (F.lit(c), F.lit(float(ranges[c][0])))])
    hi_map = F.create_map(*[x for c in columns for x in (F.lit(c), F.lit(float(ranges[c][1])))])
    lo, hi = lo_map[F.col("column")], hi_map[F.col("column")]
    width = (hi - lo) / F.lit(bins)
    lower = F.when(F.col("bin") == bins, hi).otherwise(lo + F.col("bin") * width)
    upper = F.when(F.col("bin") == bins, F.lit(None).cast("double")).when(hi <= lo, lo).otherwise(
        lo + (F.col("bin") + 1) * width)
    return counts.select("column", "bin", lower.alias("lower"), upper.alias("upper"), "users", "switchers",
                         "outliers_low", "outliers_high")


_HIST_SCHEMA = T.StructType([
    T.StructField("column", T.StringType()), T.StructField("bin", T.IntegerType()),
    T.StructField("lower", T.DoubleType()), T.StructField("upper", T.DoubleType()),
    T.StructField("users", T.LongType()), T.StructField("switchers", T.LongType()),
    T.StructField("outliers_low", T.LongType()), T.StructField("outliers_high", T.LongType()),
])


# ---------------------------------------------------------------------------------------------
# 5. Correlation
# ---------------------------------------------------------------------------------------------
def impute_values(dictionary: ColumnDictionary, columns: Sequence[str], stats: dict,
                  modes: dict[str, float]) -> dict[str, float]:
    """Fill value per column by the dictionary's impute rule.

    ``median`` -> p50 (``percentile_approx``), ``mean`` -> mean, ``mode`` -> most common value
    (``modes``; the median when unknown), ``zero`` -> 0; ``none`` (or no dictionary entry) -> median.
    A column with no value at all is filled with 0.
    """
    out = {}
    for c in columns:
        rule = dictionary[c].impute if c in dictionary else "median"
        s = stats[c]
        if rule == "zero":
            v = 0.0
        elif rule == "mean":
            v = s["mean"]
        elif rule == "mode":
            v = modes.get(c, s["p50"])
        else:
            v = s["p50"]
        out[c] = float(v) if v is not None else 0.0
    return out


def modes_from_counts(count_rows: Sequence[dict]) -> dict[str, float]:
    """Most common non-null value per column from :func:`value_rates` rows (ties: smallest value)."""
    best: dict[str, tuple[int, float]] = {}
    for r in count_rows:
        if r["value"] is None:
            continue
        try:
            v = float(r["value"])
        except ValueError:
            continue
        cur = best.get(r["column"])
        if cur is None or (r["users"], -v) > (cur[0], -cur[1]):
            best[r["column"]] = (int(r["users"]), v)
    return {c: v for c, (_, v) in best.items()}


def correlation_matrix(df: DataFrame, columns: Sequence[str],
                       fill: dict[str, float] | None = None) -> list[list[float]]:
    """Pearson correlation matrix of ``columns`` after filling nulls (Spark ML ``Correlation``).

    Args:
        df: the users.
        columns: numeric columns.
        fill: column -> value for its nulls (default 0).

    Returns:
        the matrix as a list of rows (NaN where a column is constant).
    """
    _check_columns(df, columns)
    fill = fill or {}
    filled = df.select(*[F.coalesce(F.col(c).cast("double"), F.lit(float(fill.get(c, 0.0)))).alias(f"c{i}")
                         for i, c in enumerate(columns)])
    vec = VectorAssembler(inputCols=[f"c{i}" for i in range(len(columns))], outputCol="features",
                          handleInvalid="keep").transform(filled).select("features")
    mat = Correlation.corr(vec, "features", "pearson").head()[0].toArray()
    return [[float(v) for v in row] for row in mat]


CORR_SCHEMA = T.StructType([
    T.StructField("col_a", T.StringType()), T.StructField("col_b", T.StringType()),
    T.StructField("r", T.DoubleType()),
])
PAIRS_SCHEMA = T.StructType([
    T.StructField("col_a", T.StringType()), T.StructField("col_b", T.StringType()),
    T.StructField("name_a", T.StringType()), T.StructField("name_b", T.StringType()),
    T.StructField("r", T.DoubleType()), T.StructField("mean_abs_a", T.DoubleType()),
    T.StructField("mean_abs_b", T.DoubleType()), T.StructField("drop", T.StringType()),
    T.StructField("reason", T.StringType()),
])


def _correlation_rows(columns: Sequence[str], matrix: list[list[float]], threshold: float,
                      dictionary: ColumnDictionary | None) -> tuple[list[dict], list[dict]]:
    """The matrix in long form, and the pairs above ``threshold`` with the column dropped of each."""
    long_rows = [{"col_a": a, "col_b": b, "r": None if math.isnan(matrix[i][j]) else matrix[i][j]}
                 for i, a in enumerate(columns) for j, b in enumerate(columns)]
    order = [s.column for s in dictionary] if dictionary is not None else list(columns)
    order += [c for c in columns if c not in order]
    decisions = corr_rule.choose_drops(corr_rule.high_pairs(columns, matrix, threshold),
                                       corr_rule.mean_abs_correlation(columns, matrix), order)
    name = dictionary.readable if dictionary is not None else (lambda c: c)
    pair_rows = [{"col_a": d.col_a, "col_b": d.col_b, "name_a": name(d.col_a), "name_b": name(d.col_b),
                  "r": d.r, "mean_abs_a": d.mean_abs_a, "mean_abs_b": d.mean_abs_b, "drop": d.drop,
                  "reason": d.reason} for d in decisions]
    return long_rows, pair_rows


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------
def corr_threshold(cfg: Config) -> float:
    """``profile.corr_threshold``, else the training stage's ``features.correlation_threshold``."""
    value = cfg.get("profile.corr_threshold")
    if value is None:
        value = cfg.get("features.correlation_threshold", 0.8)
    return float(value)


def read_bronze(cfg: Config, spark: SparkSession) -> tuple[DataFrame, str]:
    """bronze_users of run ``cfg.run_id`` when it exists, else of the latest run."""
    from prospects.core.errors import JobError

    path = cfg.table("bronze_users")
    if not tables.is_delta(spark, path):
        raise JobError(f"no bronze_users Delta table at {path}: run the ingest job first")
    df = tables.read(spark, path)
    if "run_id" not in df.columns:
        raise JobError(f"bronze_users at {path} has no run_id column")
    return runlog.read_latest(spark, cfg, path, "ingest")


PATTERNS_SCHEMA = T.StructType([
    T.StructField("rank", T.IntegerType()), T.StructField("pattern", T.StringType()),
    T.StructField("missing_columns", T.ArrayType(T.StringType())),
    T.StructField("missing_blocks", T.ArrayType(T.IntegerType())),
    T.StructField("missing_count", T.IntegerType()), T.StructField("users", T.LongType()),
    T.StructField("share", T.DoubleType()), T.StructField("switchers", T.LongType()),
    T.StructField("switch_rate", T.DoubleType())])
# eda_columns: a column's statistics and, for the histogram columns, its outliers (else null)
EDA_COLUMNS_SCHEMA = T.StructType([*COLUMNS_SCHEMA.fields, T.StructField("outliers_low", T.LongType()),
                                   T.StructField("outliers_high", T.LongType())])


def profile_input(cfg: Config, df: DataFrame, bronze_run: str) -> tuple[DataFrame, int]:
    """The feature and label columns of bronze, persisted for the passes, and the users counted."""
    from prospects.core.errors import JobError

    label = cfg.columns.label_column
    if label not in df.columns:
        raise JobError(f"bronze_users has no label column '{label}' (dataset.label_column)")
    absent = [s.column for s in cfg.columns.features if s.column not in df.columns]
    if absent:
        raise JobError(f"bronze_users lacks dictionary feature column(s) {absent}")
    # the passes read the same columns: cached once (spills to disk when memory runs short)
    df = df.select(*[s.column for s in cfg.columns.features], label).persist(StorageLevel.MEMORY_AND_DISK)
    users = df.count()
    if users == 0:
        raise JobError(f"bronze_users run {bronze_run} is empty")
    return df, users


def _column_pass(cfg: Config, df: DataFrame, prof: Profile) -> dict:
    """Passes 1 and 2: per column statistics, group missing counts, distinct counts and roles."""
    p = cfg.get("profile")
    stats, prof.per_group = column_stats(df, prof.features, int(p["quantile_accuracy"]), prof.groups,
                                         min(1.0, int(p["quantile_sample_rows"]) / prof.users),
                                         int(p["sample_seed"]))
    prof.col_rows = _profile_rows(df, cfg.columns, prof.features, stats, int(p["categorical_max_distinct"]),
                                  int(p["approx_distinct_above"]))
    prof.categorical = [r["column"] for r in prof.col_rows if r["role"] == ROLE_CATEGORICAL]
    prof.numeric = [r["column"] for r in prof.col_rows if r["role"] == ROLE_NUMERIC]
    prof.curve_cols = [c for c in prof.features if cfg.columns.readable(c) in (p["curve_names"] or [])
                       and is_numeric(df, c) and c not in prof.categorical]
    prof.hist_cols = [c for c in prof.numeric if c not in prof.curve_cols]
    prof.miss_cols = [c for c in prof.features if stats[c]["null_count"] > 0]
    return stats


def _values_pass(cfg: Config, df: DataFrame, prof: Profile, stats: dict) -> list[dict]:
    """Pass 3: users and switchers per value of the categorical and curve columns; returns the counts."""
    limit = int(cfg.get("profile.approx_distinct_above"))
    with_counts = [c for c in dict.fromkeys(prof.categorical + prof.curve_cols)
                   if stats[c]["approx_distinct"] <= limit]
    if not with_counts:     # the tables' schemas from a plan that is never run
        shape = value_rates(df, prof.features[:1], cfg.columns.label_column)
        prof.schemas.update(eda_categorical=categorical_from_counts(shape).schema,
                            eda_curves=curves_from_counts(shape).schema)
        return []
    counts = value_rates(df, with_counts, cfg.columns.label_column).persist()
    cat_df = categorical_from_counts(counts.where(F.col("column").isin(prof.categorical)), cfg.columns)
    curves_df = curves_from_counts(counts.where(F.col("column").isin(prof.curve_cols)))
    count_rows = [r.asDict() for r in counts.collect()]
    prof.cat_rows = [r.asDict() for r in cat_df.collect()]
    prof.curve_rows = [r.asDict() for r in curves_df.collect()]
    prof.schemas.update(eda_categorical=cat_df.schema, eda_curves=curves_df.schema)
    counts.unpersist()
    return count_rows


def _missing_pass(cfg: Config, df: DataFrame, prof: Profile) -> None:
    """Pass 4: missingness patterns, the co-missing counts and the blocks; pass 7: a sample of flags."""
    if not prof.miss_cols:
        return
    p = cfg.get("profile")
    patterns = missing_patterns(df, prof.miss_cols, cfg.columns.label_column).persist()
    prof.co_rows = [r.asDict() for r in co_missing(patterns, prof.miss_cols).collect()]
    prof.blocks = blocks_from_co_missing(prof.co_rows, prof.miss_cols)
    prof.n_patterns = patterns.count()
    top = patterns.orderBy(F.desc("users"), "pattern").limit(int(p["max_patterns"])).collect()
    patterns.unpersist()
    block_of = {c: b["block"] for b in prof.blocks for c in b["columns"]}
    for k, r in enumerate(top):
        missing = [c for c, bit in zip(prof.miss_cols, r["pattern"]) if bit == "1"]
        prof.pattern_rows.append({
            "rank": k + 1, "pattern": r["pattern"], "missing_columns": missing,
            "missing_blocks": sorted({block_of[c] for c in missing}),
            "missing_count": int(r["missing_count"]), "users": r["users"], "share": r["users"] / prof.users,
            "switchers": r["switchers"],
            "switch_rate": (r["switchers"] / r["users"]) if r["switchers"] is not None else None})
    prof.sample = missing_sample(df, prof.miss_cols, int(p["missing_sample_rows"]), prof.users,
                                 int(p["sample_seed"]))


def _histogram_pass(cfg: Config, df: DataFrame, prof: Profile, stats: dict) -> None:
    """Pass 5: histograms and outlier counts of the numeric columns (curve columns last)."""
    cols = prof.hist_cols + prof.curve_cols
    hist_df = histograms(df, cols, int(cfg.get("profile.histogram_bins")), cfg.columns.label_column,
                         histogram_ranges({c: stats[c] for c in cols}))
    prof.hist_rows = [r.asDict() for r in hist_df.collect()]
    prof.schemas["eda_histograms"] = hist_df.schema
    for r in prof.hist_rows:
        lo, hi = prof.outliers.get(r["column"], (0, 0))
        prof.outliers[r["column"]] = (lo + r["outliers_low"], hi + r["outliers_high"])


def _correlation_pass(cfg: Config, df: DataFrame, prof: Profile, stats: dict, count_rows: list[dict]) -> None:
    """Pass 6: Pearson correlation of the numeric (declared int/float) features after imputation."""
    prof.corr_cols = [c for c in prof.features if is_numeric(df, c)]
    fill = impute_values(cfg.columns, prof.corr_cols, stats, modes_from_counts(count_rows))
    prof.matrix = correlation_matrix(df, prof.corr_cols, fill)
    prof.corr_rows, prof.pair_rows = _correlation_rows(prof.corr_cols, prof.matrix, prof.threshold, cfg.columns)


def _switch_rate(df: DataFrame, label: str, count_rows: list[dict], users: int) -> float:
    """The overall switch rate, from the value counts when there are (every user is in exactly one
    value of each counted column), else from one more pass."""
    if count_rows:
        first = count_rows[0]["column"]
        return sum(r["switchers"] or 0 for r in count_rows if r["column"] == first) / users
    return float(df.agg(F.avg(F.col(label))).first()[0] or 0)


def profile_passes(cfg: Config, df: DataFrame, users: int, bronze_run: str, watch: Stopwatch) -> Profile:
    """Every pass over the persisted users, collected into a :class:`Profile`."""
    prof = Profile(bronze_run=bronze_run, users=users, features=[s.column for s in cfg.columns.features],
                   groups=dict(cfg.columns.groups()), threshold=corr_threshold(cfg))
    stats = _column_pass(cfg, df, prof)
    watch.tick("column statistics")
    count_rows = _values_pass(cfg, df, prof, stats)
    watch.tick("value counts")
    _missing_pass(cfg, df, prof)
    watch.tick("missing patterns")
    _histogram_pass(cfg, df, prof, stats)
    watch.tick("histograms")
    _correlation_pass(cfg, df, prof, stats, count_rows)
    watch.tick("correlation")
    prof.overall_rate = _switch_rate(df, cfg.columns.label_column, count_rows, users)
    return prof


def output_frames(spark: SparkSession, prof: Profile, dictionary: ColumnDictionary) -> dict[str, DataFrame]:
    """The eda_* tables of a profile, from its collected rows (writing the lazy frames would run
    their passes again)."""
    columns = [{**r, **dict(zip(("outliers_low", "outliers_high"), prof.outliers.get(r["column"], (None, None))))}
               for r in prof.col_rows]
    frames = {
        "eda_columns": (columns, EDA_COLUMNS_SCHEMA),
        "eda_missing_groups": (_group_rows(prof.groups, prof.per_group), GROUPS_SCHEMA),
        "eda_missing_patterns": (prof.pattern_rows, PATTERNS_SCHEMA),
        "eda_missing_blocks": (_block_rows(prof.blocks, prof.users, dictionary), BLOCKS_SCHEMA),
        "eda_co_missing": (prof.co_rows, CO_MISSING_SCHEMA),
        "eda_categorical": (prof.cat_rows, prof.schemas["eda_categorical"]),
        "eda_curves": (prof.curve_rows, prof.schemas["eda_curves"]),
        "eda_histograms": (prof.hist_rows, prof.schemas["eda_histograms"]),
        "eda_correlation": (prof.corr_rows, CORR_SCHEMA),
        "eda_corr_pairs": (prof.pair_rows, PAIRS_SCHEMA)}
    return {key: tables.small_frame(spark, rows, schema) for key, (rows, schema) in frames.items()}


@runlog.logged("profile")
def run(cfg: Config, spark: SparkSession) -> dict:
    """Profile bronze_users: write the eda_* Delta tables, the figures and the Markdown report.

    Returns:
        summary: bronze run read, users, columns, blocks found, categorical columns, dropped
        columns, report path, seconds per step.
    """
    from prospects.profile import plots

    watch = Stopwatch("profile")
    df, bronze_run = read_bronze(cfg, spark)
    df, users = profile_input(cfg, df, bronze_run)
    watch.tick("count")
    prof = profile_passes(cfg, df, users, bronze_run, watch)
    outputs = output_frames(spark, prof, cfg.columns)
    folder = Folder(spark, join_path(cfg.path("reports"), cfg.run_id, "profile"))
    # The figures are drawn (one Python thread, the only one using matplotlib) from the collected
    # aggregates while the JVM writes the ten small tables side by side (each its own Delta commit)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="figures") as pool:
        drawing = pool.submit(plots.draw_all, folder, cfg.columns, prof, int(cfg.get("profile.max_category_values")))
        tables.write_concurrently({key: (lambda key=key, out=out: tables.write_run(out, cfg, key))
                                   for key, out in outputs.items()})
        figs = drawing.result()
    df.unpersist()
    watch.tick("tables and figures")
    summary = prof.summary()
    report = plots.write_report(folder, cfg, prof, summary, figs, watch.seconds)
    summary.update(report=report, figures=len(figs), seconds={**watch.seconds, "total": watch.total()})
    log.info("profile: %s users, %d blocks, report %s", users, len(prof.blocks), report)
    return summary
