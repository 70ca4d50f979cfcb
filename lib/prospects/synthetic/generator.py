"""Synthetic operator user base in the competition's raw format (SPEC 1.1, 1.2, 1.4).

Every value of a user is a pure function of (seed, user_id): uniforms come from
``xxhash64(seed, stream, user_id)``, so the output is deterministic for a seed whatever the
partitioning, and generation is one narrow Spark job over ``spark.range`` (no Python UDF, no
driver loop over users). The label is drawn from a known probability (the "oracle") built from
the shapes of SPEC 1.2 with non-linear effects and interactions; that probability is written to a
separate file keyed by ``user_id`` and never into the training files.

Missing values come in nested blocks, as in SPEC 1.1: one uniform ``u_missing`` per user, and a
group is missing when it falls under that group's share, so the users missing a smaller group are
a subset of the users missing every larger group.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from prospects.core import storage
from prospects.core.config import Config, join_path, raw_name
from prospects.core.dictionary import ColumnDictionary

log = logging.getLogger(__name__)

REFERENCE_USERS = 140_000
# Users missing each group in the reference training set (SPEC 1.1), smallest first: nested.
MISSING_BLOCKS = {
    "consumption": 89,
    "arrears": 392,
    "signing": 774,
    "package": 6_617,
    "vip": 6_849,
    "broadband": 101_060,
    "fiveg": 132_559,
}
GENDER = ("先生", "女士")
SEGMENTS = ("大众用户", "农村用户", "校园用户", "集团用户")  # public, rural, campus, company
PACKAGE_VALUES = (18.0, 38.0, 58.0, 88.0, 128.0, 158.0, 198.0, 238.0)
BANDWIDTHS = ((100, 0.45), (200, 0.25), (50, 0.12), (20, 0.05), (300, 0.06), (500, 0.05), (1000, 0.02))
TERMINALS = ((1, 0.45), (0, 0.20), (2, 0.15), (3, 0.12), (4, 0.08))
VIP_CLASSES = ((0, 0.28), (1, 0.24), (2, 0.18), (3, 0.13), (4, 0.09), (5, 0.06), (6, 0.02))
CALIBRATION_USERS = 20_000
MAX53 = float(1 << 53)


@dataclass(frozen=True)
class Part:
    """One generated file: name, first user id, number of users, labelled or not."""

    name: str
    first_id: int
    users: int
    labelled: bool
    region: str | None = None


class Uniforms:
    """Deterministic uniforms and normals for the user in column ``key``."""

    def __init__(self, seed: int, key: str = "id"):
        self.seed = seed
        self.key = F.col(key)

    def u(self, stream: int) -> Column:
        """Uniform in [0, 1) for ``stream``."""
        h = F.xxhash64(F.lit(self.seed), F.lit(stream), self.key)
        return (F.abs(h) % F.lit(1 << 53)).cast("double") / F.lit(MAX53)

    def normal(self, stream: int) -> Column:
        """Standard normal (Box-Muller on two streams)."""
        u1 = F.greatest(self.u(stream), F.lit(1e-12))
        return F.sqrt(-2.0 * F.log(u1)) * F.cos(2.0 * math.pi * self.u(stream + 100_000))


def choice(u: Column, options: tuple) -> Column:
    """Pick among ``((value, probability), ...)`` with uniform ``u`` (probabilities sum to 1)."""
    expr, acc = None, 0.0
    for value, prob in options[:-1]:
        acc += prob
        expr = (F.when(u < acc, F.lit(value)) if expr is None else expr.when(u < acc, F.lit(value)))
    return expr.otherwise(F.lit(options[-1][0]))


def _latent(df: DataFrame, rnd: Uniforms) -> DataFrame:
    """Every attribute of a user, typed, plus the linear predictor of switching (``_eta``)."""
    share = {g: c / REFERENCE_USERS for g, c in MISSING_BLOCKS.items()}
    df = _with_usage(_with_attributes(_with_demographics(df, rnd), rnd), rnd)
    months_left = F.when((F.col("_c_terminal") + F.col("_c_package")) > 0,
                         F.floor(F.col("_u_months") * 36)).otherwise(F.lit(0.0))
    return df.withColumn("_months_left", months_left).withColumn("_eta", _oracle_eta(share, months_left))


def _with_demographics(df: DataFrame, rnd: Uniforms) -> DataFrame:
    """The draws every later attribute leans on, and age (X2) and tenure (X4)."""
    u = rnd.u
    n = rnd.normal
    miss = u(1)
    df = df.select(
        "id",
        miss.alias("_miss"),
        n(2).alias("_z_value"), n(3).alias("_z_data"), n(4).alias("_z_voice"),
        u(5).alias("_u_age"), n(6).alias("_z_age"), u(7).alias("_u_tenure"), u(8).alias("_u_tenure2"),
    )
    # Ages below 13 are reflected above it (a clamp would pile ~2% of users onto age 13).
    age_raw = F.round(38 + 12 * F.col("_z_age"))
    age = F.least(F.when(age_raw < 13, 26 - age_raw).otherwise(age_raw), F.lit(85)).cast("long")
    # Tenure 1 is the most common value (45%): with about 20% switchers overall, that is the only
    # way for tenure 2-10 to switch at 25-30% and tenure > 10 above 30% (SPEC 1.2).
    tenure = (F.when(F.col("_u_tenure") < 0.45, F.lit(1))
              .when(F.col("_u_tenure") < 0.90, 2 + F.floor(9 * F.col("_u_tenure2")))
              .otherwise(11 + F.floor(15 * F.pow(F.col("_u_tenure2"), 1.5)))).cast("long")
    return df.withColumn("X2", age).withColumn("X4", tenure)


def _with_attributes(df: DataFrame, rnd: Uniforms) -> DataFrame:
    """Segment, value, usage levels, flags and contract draws of each user."""
    u, n = rnd.u, rnd.normal
    seg_u = u(9)
    segment = (F.when((F.col("X2") <= 24) & (seg_u < 0.45), F.lit(SEGMENTS[2]))
               .when(seg_u < 0.62, F.lit(SEGMENTS[0]))
               .when(seg_u < 0.86, F.lit(SEGMENTS[1]))
               .otherwise(F.lit(SEGMENTS[3])))
    vip_u = F.least(F.greatest(u(10) + 0.12 * F.col("_z_value") + 0.01 * (F.col("X4") - 5), F.lit(0.0)),
                    F.lit(0.999999))
    arpu = F.exp(3.6 + 0.45 * F.col("_z_value"))
    dou = F.exp(8.0 + 0.8 * F.col("_z_data") - 0.012 * (F.col("X2") - 38))
    mou = F.exp(5.2 + 0.6 * F.col("_z_voice") + 0.2 * F.col("_z_value"))
    pkg = F.least(F.greatest(F.floor(3.2 + 1.6 * F.col("_z_value") + 0.9 * n(11)), F.lit(1)), F.lit(8)).cast("int")
    df = df.select(
        "*",
        F.when(u(12) < 0.56, F.lit(GENDER[0])).otherwise(F.lit(GENDER[1])).alias("X1"),
        segment.alias("X5"),
        choice(vip_u, VIP_CLASSES).cast("double").alias("_vip"),
        arpu.alias("_arpu"), dou.alias("_dou"), mou.alias("_mou"), pkg.alias("_pkg"),
        (u(13) < 0.25).cast("long").alias("X29"),
        choice(u(14), BANDWIDTHS).cast("double").alias("_bandwidth"),
        choice(u(15), TERMINALS).cast("long").alias("X36"),
        (u(16) < 0.03).cast("long").alias("X37"),
        (u(17) < 0.08).cast("long").alias("X41"),
        (u(18) < 0.60).cast("long").alias("X42"),
        u(19).alias("_u_work"), u(30).alias("_u_bb_flag"),
        (u(20) < 0.20).cast("double").alias("_c_terminal"),
        (u(21) < 0.30).cast("double").alias("_c_package"),
        u(22).alias("_u_c_bb"), (u(23) < 0.05).cast("double").alias("_c_5g"),
        u(24).alias("_u_months"),
        F.exp(6.0 + 1.0 * n(25)).alias("_fiveg_data"),
        u(26).alias("_u_arrears"), F.exp(2.5 + n(27)).alias("_arrears"),
        u(28).alias("_u_darrears"), F.exp(5.0 + n(29)).alias("_darrears"),
    )
    return df.withColumn("X43", F.when(F.col("X42") == 1, F.col("_u_work") < 0.85)
                         .otherwise(F.col("_u_work") < 0.25).cast("long"))


def _with_usage(df: DataFrame, rnd: Uniforms) -> DataFrame:
    """Three months of fees, data and voice, their overage and the package utilisation."""
    months = []
    for k, base in enumerate(("_arpu", "_dou", "_mou")):
        for m in range(3):
            wiggle = 1 + 0.12 * rnd.normal(40 + 3 * k + m)
            months.append(F.round(F.greatest(F.col(base) * wiggle, F.lit(0.0)), 2).alias(f"_m{k}{m}"))
    df = df.select("*", *months)
    allowance = F.lit(1024.0) * F.col("_pkg")
    dou_avg = (F.col("_m10") + F.col("_m11") + F.col("_m12")) / 3
    mou_avg = (F.col("_m20") + F.col("_m21") + F.col("_m22")) / 3
    return df.select(
        "*",
        *[F.round(F.greatest(F.col(f"_m2{m}") - 500, F.lit(0.0)) * 0.15, 2).alias(f"_vo{m}") for m in range(3)],
        *[F.round(F.greatest(F.col(f"_m1{m}") - allowance, F.lit(0.0)) * 0.01, 2).alias(f"_do{m}") for m in range(3)],
        F.round(F.least(dou_avg / allowance, F.lit(3.0)), 4).alias("_util"),
        dou_avg.alias("_dou_avg"), mou_avg.alias("_mou_avg"),
    )


def _oracle_eta(share: dict[str, float], months_left: Column) -> Column:
    """The oracle's linear predictor: non-linear effects and interactions of the attributes."""
    age_c, ten_c = F.col("X2"), F.col("X4")
    f_age = (F.when(age_c < 25, -1.3 + 0.11 * (age_c - 13))
             .when(age_c <= 50, 0.08 - 0.002 * F.abs(age_c - 36))
             .otherwise(0.05 - 0.06 * (age_c - 50)))
    f_tenure = (F.when(ten_c <= 1, F.lit(-1.5))
                .when(ten_c <= 10, 0.32 + 0.02 * (ten_c - 2))
                .otherwise(0.62 + 0.09 * (ten_c - 10)))
    log_dou = F.log(F.col("_dou_avg") + 1)
    log_arpu = F.log(F.col("_arpu") + 1)
    has_broadband = F.col("_miss") >= share["broadband"]
    has_5g = F.col("_miss") >= share["fiveg"]
    return (f_age + f_tenure
            + F.when(F.col("X1") == GENDER[0], 0.12).otherwise(0.0)
            + F.when(F.col("X5") == SEGMENTS[3], 0.55).when(F.col("X5") == SEGMENTS[1], -0.15)
            .when(F.col("X5") == SEGMENTS[2], -0.05).otherwise(0.0)
            + F.when(F.col("_vip") == 4, 0.65).when(F.col("_vip") == 3, 0.25)
            .when(F.col("_vip") >= 5, 0.15).otherwise(0.0)
            + F.when(has_broadband, 0.35).otherwise(0.0)
            + F.when(F.col("X29") == 1, 0.3).otherwise(0.0)
            + F.when(F.col("X36") == 2, 0.8).when(F.col("X36") == 1, 0.1)
            .when(F.col("X36") == 0, -0.25).otherwise(0.0)
            + 0.9 / (1 + F.exp(-2.0 * (log_dou - 8.6)))
           - 0.6 * F.pow(log_arpu - 4.1, 2)
            + F.when((F.col("X42") == 1) & (log_dou > 8.3), 0.55).otherwise(0.0)
            + F.when((F.col("X41") == 1) & (F.col("X36") == 2), 0.6).otherwise(0.0)
            + F.when(has_5g, 1.1).otherwise(0.0)
            + F.when(months_left > 6, -0.45).otherwise(0.0)
            + F.when((F.col("_do0") + F.col("_do1") + F.col("_do2") > 0) & (F.col("X42") == 1), 0.35)
            .otherwise(0.0))


def _raw_columns(df: DataFrame, share: dict) -> DataFrame:
    """Project the latent frame onto the raw X1..X43 columns with the nested missing blocks."""
    def block(group: str, col: Column) -> Column:
        return F.when(F.col("_miss") >= share[group], col)

    has_broadband = F.col("_miss") >= share["broadband"]
    cols = {
        "X1": F.col("X1"), "X2": F.col("X2"), "X3": block("vip", F.col("_vip")), "X4": F.col("X4"),
        "X5": F.col("X5"),
    }
    for k in range(3):
        for m in range(3):
            cols[f"X{6 + 3 * k + m}"] = block("consumption", F.col(f"_m{k}{m}"))
    cols["X15"] = block("consumption", F.round((F.col("_m00") + F.col("_m01") + F.col("_m02")) / 3, 2))
    cols["X16"] = block("consumption", F.round(F.col("_dou_avg"), 2))
    cols["X17"] = block("consumption", F.round(F.col("_mou_avg"), 2))
    for m in range(3):
        cols[f"X{18 + m}"] = block("consumption", F.col(f"_vo{m}"))
        cols[f"X{21 + m}"] = block("consumption", F.col(f"_do{m}"))
    cols["X24"] = block("arrears", F.when(F.col("_u_arrears") < 0.08, F.round(F.col("_arrears"), 2)).otherwise(0.0))
    cols["X25"] = block("arrears", F.when(F.col("_u_darrears") < 0.05, F.round(F.col("_darrears"), 2)).otherwise(0.0))
    cols["X26"] = block("broadband", F.col("_bandwidth"))
    cols["X27"] = block("broadband", F.lit(1.0))
    cols["X28"] = block("consumption", F.col("_util"))
    cols["X29"] = F.col("X29")
    # The broadband-user flag also marks 5% of users whose bandwidth is not on record.
    cols["X30"] = (has_broadband | (F.col("_u_bb_flag") < 0.05)).cast("long")
    cols["X31"] = block("signing", F.col("_c_terminal"))
    cols["X32"] = block("package", F.element_at(F.array(*[F.lit(v) for v in PACKAGE_VALUES]), F.col("_pkg"))
                        + F.round(F.col("_u_months") * 4 - 2, 0))
    cols["X33"] = block("signing", F.col("_c_package"))
    cols["X34"] = block("signing", F.when(has_broadband & (F.col("_u_c_bb") < 0.5), 1.0).otherwise(0.0))
    cols["X35"] = block("package", F.col("_pkg").cast("double"))
    cols["X36"] = F.col("X36")
    cols["X37"] = F.col("X37")
    cols["X38"] = block("fiveg", F.round(F.col("_fiveg_data"), 2))
    cols["X39"] = block("signing", F.col("_c_5g"))
    cols["X40"] = block("signing", F.col("_months_left"))
    for c in ("X41", "X42", "X43"):
        cols[c] = F.col(c)
    return df.select(F.col("id").alias("user_id"), *[v.alias(k) for k, v in cols.items()],
                     F.col("_eta"))


def product_no(rnd: Uniforms) -> Column:
    """An 11-digit mainland mobile number (personal data, only in the raw files)."""
    prefix = F.lit(13) + F.floor(rnd.u(60) * 7)
    rest = F.lpad(F.floor(rnd.u(61) * 1e9).cast("long").cast("string"), 9, "0")
    return F.concat(prefix.cast("long").cast("string"), rest)


def users(spark: SparkSession, first_id: int, n: int, seed: int, partitions: int,
          shift: float = 0.0) -> DataFrame:
    """Typed users ``first_id .. first_id+n-1``: user_id, product_no, X1..X43 and ``_eta``.

    ``_eta`` is the linear predictor of switching before the intercept; ``shift`` is added to it
    (a region's drift).
    """
    rnd = Uniforms(seed)
    base = spark.range(first_id, first_id + n, numPartitions=max(1, partitions))
    share = {g: c / REFERENCE_USERS for g, c in MISSING_BLOCKS.items()}
    out = _raw_columns(_latent(base, rnd), share)
    out = out.withColumn("_eta", F.col("_eta") + F.lit(shift))
    return out.withColumn("product_no", product_no(Uniforms(seed, "user_id")))


# (seed, target) -> intercept: the calibration is a function of these two alone, so a process that
# generates several user bases (the benchmark's sizes, the tests) fits it once
_INTERCEPTS: dict[tuple[int, float], float] = {}


def calibrate_intercept(spark: SparkSession, seed: int, target: float) -> float:
    """Intercept giving a mean switch probability of ``target`` on a fixed 20,000-user sample.

    Only the sample's linear predictors (20,000 floats) reach the driver, whatever the user base.
    """
    import numpy as np
    from scipy.optimize import brentq
    from scipy.special import expit

    key = (int(seed), float(target))
    if key not in _INTERCEPTS:
        etas = np.array([r[0] for r in users(spark, 1, CALIBRATION_USERS, seed, 2).select("_eta").collect()])
        _INTERCEPTS[key] = float(brentq(lambda b: expit(etas + b).mean() - target, -15.0, 15.0, xtol=1e-12))
    return _INTERCEPTS[key]


def with_labels(df: DataFrame, seed: int, intercept: float) -> DataFrame:
    """Add ``probability`` (the oracle) and ``label`` drawn from it."""
    p = 1 / (1 + F.exp(-(F.col("_eta") + F.lit(intercept))))
    draw = Uniforms(seed, "user_id").u(90)
    return df.withColumn("probability", p).withColumn("label", (draw < F.col("probability")).cast("int"))


# ---------------------------------------------------------------------------------------------
# Writing the raw files
# ---------------------------------------------------------------------------------------------
MALFORMED_KINDS = ("short_row", "long_row", "non_numeric", "missing_id", "duplicate_id")
LABEL_FAULTS = ("bad_label", "label_without_user", "user_without_label")


def _as_text(col: Column, kind: str) -> Column:
    if kind == "float":
        return F.when(col.isNull(), F.lit("")).otherwise(F.format_string("%.2f", col.cast("double")))
    return F.coalesce(col.cast("string"), F.lit(""))


def to_lines(df: DataFrame, codes: list[str], types: dict[str, str], delimiter: str) -> DataFrame:
    """One string column ``line``: the row as the competition writes it (no quoting needed)."""
    return df.select(F.concat_ws(delimiter, *[_as_text(F.col(c), types[c]) for c in codes]).alias("line"),
                     *[c for c in ("user_id", "_bad", "_fault") if c in df.columns])


def corrupt(lines: DataFrame, delimiter: str, numeric_field: int) -> DataFrame:
    """Corrupt the lines flagged in ``_bad`` by kind ``_fault`` (see MALFORMED_KINDS)."""
    d = delimiter
    fields = F.split(F.col("line"), d if d not in ".|^$*+?()[]{}\\" else "\\" + d, -1)
    kind = F.col("_fault")
    short = F.array_join(F.slice(fields, 1, F.size(fields) - 1), d)
    non_numeric = F.array_join(F.concat(F.slice(fields, 1, numeric_field - 1), F.array(F.lit("n/a")),
                                        F.slice(fields, numeric_field + 1, 1000)), d)
    no_id = F.array_join(F.concat(F.array(F.lit("")), F.slice(fields, 2, 1000)), d)
    dup_id = F.array_join(F.concat(F.array((F.col("user_id") - 1).cast("string")), F.slice(fields, 2, 1000)), d)
    bad = (F.when(kind == "short_row", short)
           .when(kind == "long_row", F.concat(F.col("line"), F.lit(d + "extra")))
           .when(kind == "non_numeric", non_numeric)
           .when(kind == "missing_id", no_id)
           .when(kind == "duplicate_id", dup_id))
    return lines.withColumn("line", F.when(F.col("_bad"), bad).otherwise(F.col("line")))


def write_lines(spark: SparkSession, lines: DataFrame, header: str, path: str, single_file: bool) -> None:
    """Write ``lines`` under ``header`` as CSV text at ``path``.

    One file when ``single_file`` (small outputs, exactly the competition's file), else a folder
    of part files each starting with the header (Spark reads both the same way).
    """
    # The CSV writer puts the header at the top of every part file. The separator and quote are
    # control characters that never occur, so each pre-joined line is written exactly as it is.
    out = lines.select(F.col("line").alias(header))
    target = path + ".parts" if single_file else path
    if single_file:
        out = out.coalesce(1)
    (out.write.mode("overwrite").option("header", True).option("sep", "\u0001")
     .option("quote", "\u0002").option("escapeQuotes", False).csv(target))
    if single_file:
        _promote_single_part(spark, target, path)


def _promote_single_part(spark: SparkSession, folder: str, target: str) -> None:
    parts = [path for name, path in storage.list_names(spark, folder) if name.startswith("part-")]
    if len(parts) != 1:
        raise RuntimeError(f"expected one part file in {folder}, found {len(parts)}")
    storage.move(spark, parts[0], target)
    storage.delete(spark, folder)


def plan(cfg: Config) -> list[Part]:
    """The files to write: train, then each region of ``generator.regions`` in sorted order."""
    n_train = int(cfg.get("generator.n_train"))
    parts = [Part(cfg.get("dataset.train_file"), 1, n_train, True)]
    next_id = 1 + n_train
    pattern = cfg.get("dataset.region_pattern") or "result_predict_{region}.csv"
    files = cfg.get("dataset.region_files") or {}
    for region, n in sorted((cfg.get("generator.regions") or {}).items()):
        parts.append(Part(files.get(region, pattern.format(region=region)), next_id, int(n), False, region))
        next_id += int(n)
    return parts


def generate(cfg: Config, spark: SparkSession, out_dir: str | None = None) -> dict:
    """Write the raw files of the fiveg use case (and the oracle file) under ``paths.raw``.

    Returns:
        a summary: files written, users and switch rate per file, intercept, seconds.
    """
    columns: ColumnDictionary = cfg.columns
    out_dir = out_dir or cfg.path("raw")
    seed = int(cfg.get("generator.seed"))
    fmt = cfg.get("dataset.format")
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"dataset.format must be csv or parquet, got {fmt!r}")
    rate = float(cfg.get("generator.malformed_rate"))
    if not 0.0 <= rate < 0.5:
        raise ValueError(f"generator.malformed_rate must be in [0, 0.5), got {rate}")
    per_part = int(cfg.get("generator.rows_per_partition"))
    shifts = cfg.get("generator.region_shift") or {}
    delimiter = cfg.get("dataset.delimiter")
    codes = columns.codes
    types = {s.code: s.type for s in columns}
    id_col, label_col = "user_id", cfg.get("dataset.label_column")
    if cfg.get("dataset.id_column") != id_col or cfg.get("dataset.label_file") is None:
        raise ValueError("the generator writes the fiveg layout: dataset.id_column must be user_id "
                         "and dataset.label_file must be set")
    numeric_field = codes.index(next(s.code for s in columns.features if s.type != "string")) + 1
    intercept = calibrate_intercept(spark, seed, float(cfg.get("generator.switch_rate")))
    summary: dict = {"intercept": round(intercept, 6), "files": {}, "format": fmt}
    oracle_path = join_path(out_dir, cfg.get("generator.oracle_file"))
    for i, part in enumerate(plan(cfg)):
        partitions = max(1, math.ceil(part.users / per_part))
        df = users(spark, part.first_id, part.users, seed, partitions, float(shifts.get(part.region, 0.0)))
        # computed once per file, then written two or three times (users, labels, oracle)
        df = with_labels(df, seed, intercept).persist(StorageLevel.MEMORY_AND_DISK)
        path = join_path(out_dir, raw_name(part.name, fmt))
        if fmt == "parquet":
            df.select(*codes).write.mode("overwrite").parquet(path)
            if part.labelled:
                df.select(id_col, F.col("label").alias(label_col)).write.mode("overwrite").parquet(
                    join_path(out_dir, raw_name(cfg.get("dataset.label_file"), fmt)))
        else:
            single = partitions == 1
            rnd = Uniforms(seed + 7, id_col)
            flagged = df.withColumn("_bad", rnd.u(1) < rate).withColumn(
                "_fault", choice(rnd.u(2), tuple((k, 1 / len(MALFORMED_KINDS)) for k in MALFORMED_KINDS)))
            lines = corrupt(to_lines(flagged, codes, types, delimiter), delimiter, numeric_field)
            write_lines(spark, lines, delimiter.join(codes), path, single)
            if part.labelled:
                write_lines(spark, _label_lines(df, id_col, label_col, delimiter, rate, seed),
                            delimiter.join([id_col, label_col]),
                            join_path(out_dir, cfg.get("dataset.label_file")), single)
        (df.select(id_col, "probability", F.lit(part.name).alias("file"),
                   F.lit(part.region).cast("string").alias("region"))
         .write.mode("overwrite" if i == 0 else "append").parquet(oracle_path))
        df.unpersist()
        summary["files"][part.name] = {"users": part.users, "first_id": part.first_id,
                                       "region": part.region, "partitions": partitions}
    summary.update(seed=seed, malformed_rate=rate, out_dir=out_dir)
    log.info("generated %s", summary)
    return summary


def _label_lines(df: DataFrame, id_col: str, label_col: str, d: str, rate: float, seed: int) -> DataFrame:
    """train_label lines; with ``rate`` > 0 some labels are corrupted, dropped or orphaned."""
    rnd = Uniforms(seed + 11, id_col)
    fault = F.when(rnd.u(1) < rate, choice(rnd.u(2), tuple((k, 1 / len(LABEL_FAULTS)) for k in LABEL_FAULTS)))
    lab = df.select(id_col, "label", fault.alias("_fault"))
    line = (F.when(F.col("_fault") == "bad_label", F.concat_ws(d, F.col(id_col).cast("string"), F.lit("2")))
            .when(F.col("_fault") == "label_without_user",
                  F.concat_ws(d, (F.col(id_col) + F.lit(10 ** 12)).cast("string"), F.col("label").cast("string")))
            .otherwise(F.concat_ws(d, F.col(id_col).cast("string"), F.col("label").cast("string"))))
    return (lab.where(F.col("_fault").isNull() | (F.col("_fault") != "user_without_label"))
            .select(line.alias("line")))


def run(cfg: Config, spark: SparkSession) -> dict:
    """Job entry: generate the configured user base."""
    return generate(cfg, spark)
