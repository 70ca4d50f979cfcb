"""Raw files -> bronze Delta tables, with a quarantine for every rejected row and a run log.

Inputs (``dataset.*`` in conf): the training file, the label file (or a label column inside the
training file), and one file per sales region. CSV lines are read as text and parsed against the
column dictionary (never schema inference), so that a rejected row keeps its raw line. Parquet
inputs are checked against the dictionary by column name and cast the same way.

Outputs, each tagged with ``run_id`` and replaced as a whole when the same run is ingested again:

- ``bronze_users``: users joined with their labels (partitioned by run_id).
- ``bronze_regions``: every region's unlabelled users (partitioned by run_id, region).
- ``quarantine``: rejected lines with source file, raw line (personal data masked), reason, detail.
- ``run_log``: one row per (job, run_id): rows read, accepted, quarantined, per file, reconciled.

Personal data (dictionary role ``pii``, e.g. ``product_no``) never reaches a table in clear: it is
dropped, or kept as a salted SHA-256 when ``ingest.pii_mode`` is ``hash``; in quarantined raw
lines its field and anything matching ``ingest.pii_pattern`` is masked.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from prospects.core import tables
from prospects.core.config import Config, join_path, raw_name
from prospects.core.dictionary import ColumnDictionary, ColumnSpec
from prospects.core.errors import IngestError, JobError

log = logging.getLogger(__name__)

MASK = "***"
# Reasons a row is quarantined (column ``reason``); ``detail`` says more.
WRONG_FIELD_COUNT = "wrong_field_count"
MISSING_ID = "missing_id"
BAD_ID = "bad_id"
NON_NUMERIC = "non_numeric"
BAD_LABEL = "bad_label"
DUPLICATE_ROW = "duplicate_row"
CONFLICTING_ID = "conflicting_duplicate_id"
USER_WITHOUT_LABEL = "user_without_label"
LABEL_WITHOUT_USER = "label_without_user"

QUARANTINE_COLUMNS = ["run_id", "source_file", "source_kind", "region", "id", "reason", "detail",
                      "raw_line", "quarantined_at"]




@dataclass(frozen=True)
class Source:
    """One logical input: a file (or a folder of part files) and what it holds."""

    kind: str                 # train | labels | region
    path: str
    region: str | None = None


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def list_files(spark: SparkSession, path: str) -> list[str]:
    """Data files at ``path``: the file itself, or the part files of a folder (no _/. files).

    Raises:
        IngestError: when nothing exists at ``path`` or a folder holds no data file.
    """
    fs, p = tables.hadoop_fs(spark, path)
    if not fs.exists(p):
        raise IngestError(f"input file not found: {path}")
    status = fs.getFileStatus(p)
    if not status.isDirectory():
        return [str(status.getPath().toString())]
    files = [s.getPath().toString() for s in fs.listStatus(p)
             if s.isFile() and not s.getPath().getName().startswith(("_", "."))]
    if not files:
        raise IngestError(f"input folder holds no data file: {path}")
    return sorted(files)


def first_line(spark: SparkSession, path: str) -> str | None:
    """First line of a (possibly compressed) file, read through Hadoop's FileSystem; None if empty."""
    jvm = spark._jvm
    fs, p = tables.hadoop_fs(spark, path)
    stream = fs.open(p)
    try:
        codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
            spark._jsc.hadoopConfiguration()).getCodec(p)
        raw = codec.createInputStream(stream) if codec is not None else stream
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(raw, "UTF-8"))
        line = reader.readLine()
        return None if line is None else line.lstrip("\ufeff").rstrip("\r")
    finally:
        stream.close()


def region_sources(spark: SparkSession, cfg: Config, raw_dir: str, fmt: str) -> list[Source]:
    """Region inputs: ``dataset.region_files`` plus files matching ``dataset.region_pattern``."""
    found = {r: join_path(raw_dir, raw_name(f, fmt)) for r, f in (cfg.get("dataset.region_files") or {}).items()}
    pattern = cfg.get("dataset.region_pattern")
    if pattern:
        escaped = re.escape(raw_name(pattern, fmt)).replace(re.escape("{region}"), "(?P<region>.+)")
        regex = re.compile(f"^{escaped}$")
        fs, p = tables.hadoop_fs(spark, raw_dir)
        if fs.exists(p):
            for status in fs.listStatus(p):
                m = regex.match(status.getPath().getName())
                if m and m.group("region") not in found:
                    found[m.group("region")] = status.getPath().toString()
    return [Source("region", path, region) for region, path in sorted(found.items())]


def sources(spark: SparkSession, cfg: Config) -> list[Source]:
    """Every input of the use case, in order: train, labels (if a separate file), regions."""
    raw_dir, fmt = cfg.path("raw"), cfg.get("dataset.format")
    out = [Source("train", join_path(raw_dir, raw_name(cfg.get("dataset.train_file"), fmt)))]
    if cfg.get("dataset.label_file"):
        out.append(Source("labels", join_path(raw_dir, raw_name(cfg.get("dataset.label_file"), fmt))))
    return out + region_sources(spark, cfg, raw_dir, fmt)


# ---------------------------------------------------------------------------------------------
# Parsing and row checks
# ---------------------------------------------------------------------------------------------
def expected_columns(cfg: Config, kind: str) -> list[str]:
    """Raw columns a file of ``kind`` must have, in order."""
    d: ColumnDictionary = cfg.columns
    if kind == "labels":
        return [cfg.get("dataset.id_column"), cfg.get("dataset.label_column")]
    codes = d.codes
    if kind == "region":
        codes = [c for c in codes if d[c].role != "label"]
    return codes


def check_headers(spark: SparkSession, cfg: Config, source: Source, files: list[str]) -> None:
    """Every file of ``source`` starts with the dictionary's header.

    Raises:
        IngestError: naming the file and the missing / unexpected / misplaced columns.
    """
    expected = expected_columns(cfg, source.kind)
    delim = cfg.get("dataset.delimiter")
    for f in files:
        line = first_line(spark, f)
        if line is None or not line.strip():
            raise IngestError(f"input file is empty: {f}")
        got = [c.strip().strip('"') for c in line.split(delim)]
        if got != expected:
            missing = [c for c in expected if c not in got]
            extra = [c for c in got if c not in expected]
            what = (f"missing {missing}" if missing else "") + (f" unexpected {extra}" if extra else "")
            raise IngestError(
                f"header of {f} does not match the column dictionary of use case "
                f"'{cfg.get('dataset.name')}': {what.strip() or 'columns in a different order'}")


def _split_re(delim: str) -> tuple[str, str]:
    d = re.escape(delim)
    return d, d + '(?=(?:[^"]*"[^"]*")*[^"]*$)'


def read_csv_lines(spark: SparkSession, cfg: Config, source: Source, files: list[str]) -> DataFrame:
    """Data lines of ``files``: ``source_file``, ``line``, ``fields`` (array of raw strings)."""
    header = cfg.get("dataset.delimiter").join(expected_columns(cfg, source.kind))
    plain, quoted = _split_re(cfg.get("dataset.delimiter"))
    line = F.regexp_replace(F.col("value"), "\r$", "")
    df = (spark.read.text(files)
          .select(F.col("_metadata.file_path").alias("source_file"), line.alias("line")))
    df = df.where(F.regexp_replace(F.col("line"), '"', "") != header)
    fields = F.when(F.instr(F.col("line"), '"') > 0, F.split(F.col("line"), quoted, -1)) \
              .otherwise(F.split(F.col("line"), plain, -1))
    return df.withColumn("fields", fields)


_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMERIC = _INTEGRAL + (T.FloatType, T.DoubleType, T.DecimalType)


def parse_parquet_rows(spark: SparkSession, cfg: Config, source: Source, files: list[str]) -> DataFrame:
    """Parquet rows typed from their columns: the output of :func:`parse_rows`, without text.

    A Parquet file is already typed, so no value goes through strings or regular expressions (the
    CSV path's cost): a numeric column is cast to the dictionary's type (an integer-typed column
    keeps only whole values, as in CSV), a text column holding numbers is parsed with ``try_cast``
    (a value that does not parse is ``non_numeric``). ``line`` is a 64-bit hash of the row's values:
    it only serves :func:`mark_duplicates` (exact copies have the same hash; two different rows
    sharing a hash, odds about 1 in 10^19 per pair, would be taken for copies). ``raw_line`` (the
    row as JSON, personal data masked) is computed for rows rejected here; rows rejected later
    (duplicates, orphans) get theirs from :func:`row_json` when the quarantine is assembled.

    Raises:
        IngestError: a dictionary column is missing from the files.
    """
    d: ColumnDictionary = cfg.columns
    id_col, label_col = cfg.get("dataset.id_column"), cfg.get("dataset.label_column")
    names = expected_columns(cfg, source.kind)
    df = spark.read.parquet(*files)
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise IngestError(f"{source.path} lacks columns of the dictionary: {missing}")
    specs = {c: (d[c] if c in d else ColumnSpec(c, c, "label", "string", role="label")) for c in names}
    is_label = {c: c == label_col and specs[c].role == "label" for c in names}

    def typed(c: str) -> Column:
        src, raw = df.schema[c].dataType, F.col(c)
        if is_label[c]:
            return label_value(raw.cast("string"), cfg.get("dataset.label_values"))
        if specs[c].type == "string":
            return raw.cast("string")
        if isinstance(src, _INTEGRAL):
            return raw.cast("long") if specs[c].type != "float" else raw.cast("double")
        num = raw.cast("double") if isinstance(src, _NUMERIC) else F.trim(raw.cast("string")).try_cast("double")
        return num if specs[c].type == "float" else F.when(num == F.floor(num), num.cast("long"))

    parsed = df.select(F.col("_metadata.file_path").alias("source_file"),
                       F.xxhash64(*[F.col(c) for c in names]).cast("string").alias("line"),
                       F.col(id_col).cast("string").alias("id"),
                       *[typed(c).cast(T.IntegerType() if is_label[c] else specs[c].spark_type).alias(c)
                         for c in names],
                       *[F.col(c).alias(f"_raw_{c}") for c in names])
    numeric = [c for c in names if specs[c].type != "string" and not is_label[c] and specs[c].role != "id"
               and not isinstance(df.schema[c].dataType, _NUMERIC)]   # only text can fail to parse
    bad_numeric = F.coalesce(*[F.when(F.col(f"_raw_{c}").isNotNull() & F.col(c).isNull(),
                                      F.concat(F.lit(f"{c}: "), F.col(f"_raw_{c}").cast("string")))
                               for c in numeric]) if numeric else F.lit(None).cast("string")
    reason = (F.when(F.col("id").isNull(), F.lit(MISSING_ID))
              .when(F.col(id_col).isNull(), F.lit(BAD_ID))
              .when(bad_numeric.isNotNull(), F.lit(NON_NUMERIC)))
    detail = (F.when(F.col("id").isNull(), F.lit(f"{id_col} is empty"))
              .when(F.col(id_col).isNull(),
                    F.concat(F.lit(f"{id_col} is not a valid {specs[id_col].type}: "), F.col("id")))
              .when(bad_numeric.isNotNull(), F.concat(F.lit("not a number in "), bad_numeric)))
    if label_col in names:
        allowed = sorted((cfg.get("dataset.label_values") or {"0": 0, "1": 1}).keys())
        reason = reason.when(F.col(label_col).isNull(), F.lit(BAD_LABEL))
        detail = detail.when(F.col(label_col).isNull(), F.concat(
            F.lit(f"{label_col} must be one of {allowed}, found "),
            F.coalesce(F.col(f"_raw_{label_col}").cast("string"), F.lit("empty"))))
    pii = {s.code for s in cfg.columns.pii}
    shown = [F.lit(MASK).alias(c) if c in pii else F.col(f"_raw_{c}").alias(c) for c in names]
    out = parsed.select("*", reason.alias("reason"), detail.alias("detail"))
    return out.select("source_file", "line",
                      F.when(F.col("reason").isNotNull(), F.to_json(F.struct(*shown))).alias("raw_line"),
                      "id", *names, "reason", "detail")


def row_json(cfg: Config, columns: list[str]) -> Column:
    """The typed row as JSON, personal data masked: the raw line of a Parquet row rejected late."""
    pii = {s.code for s in cfg.columns.pii}
    return F.to_json(F.struct(*[F.lit(MASK).alias(c) if c in pii else F.col(c) for c in columns]))


def _clean(raw: Column) -> Column:
    """Trim, drop surrounding quotes, empty -> null (string functions, no regular expression)."""
    v = F.trim(raw)
    quoted = v.startswith('"') & v.endswith('"') & (F.length(v) >= 2)
    v = F.when(quoted, F.substring(v, F.lit(2), F.length(v) - 2)).otherwise(v)
    return F.when(v == "", F.lit(None)).otherwise(v)


def typed_value(raw: Column, spec_type: str) -> Column:
    """Parsed value of a cleaned raw string (null when it does not parse)."""
    if spec_type == "string":
        return raw
    num = raw.try_cast("double")
    if spec_type == "float":
        return num
    return F.when(num == F.floor(num), num.cast("long"))


def label_value(raw: Column, mapping: dict) -> Column:
    """0/1 from the raw label text (``dataset.label_values``; default 0/1 as written)."""
    mapping = mapping or {"0": 0, "1": 1}
    expr = None
    for text, value in mapping.items():
        cond = raw == F.lit(str(text))
        expr = F.when(cond, F.lit(int(value))) if expr is None else expr.when(cond, F.lit(int(value)))
    return expr.cast("int")


def parse_rows(df: DataFrame, cfg: Config, kind: str) -> DataFrame:
    """Typed columns and the first row-level reject reason (null when the row is fine).

    Input columns: source_file, line, raw_line (masked copy), fields. Output: source_file, line,
    raw_line, ``id`` (raw text), the dictionary's columns typed (label as int 0/1), ``reason``,
    ``detail``.

    Three projections, each referring to the previous one's columns, so that every field is
    cleaned and parsed once (one flat expression would repeat them and outgrow code generation).
    """
    d: ColumnDictionary = cfg.columns
    id_col, label_col = cfg.get("dataset.id_column"), cfg.get("dataset.label_column")
    names = expected_columns(cfg, kind)
    n = len(names)
    specs = {c: (d[c] if c in d else ColumnSpec(c, c, "label", "string", role="label")) for c in names}
    is_label = {c: c == label_col and specs[c].role == "label" for c in names}

    def raw(c: str) -> Column:
        return F.col(f"_raw_{c}")

    cleaned = df.select("source_file", "line", "raw_line", F.size("fields").alias("_n"),
                        *[_clean(F.get(F.col("fields"), i)).alias(f"_raw_{c}") for i, c in enumerate(names)])
    typed = {c: (label_value(raw(c), cfg.get("dataset.label_values")) if is_label[c]
                 else typed_value(raw(c), specs[c].type)) for c in names}
    parsed = cleaned.select("*", *[typed[c].cast(T.IntegerType() if is_label[c] else specs[c].spark_type).alias(c)
                                   for c in names])
    numeric = [c for c in names if specs[c].type != "string" and not is_label[c] and specs[c].role != "id"]
    bad_numeric = F.coalesce(*[F.when(raw(c).isNotNull() & F.col(c).isNull(), F.concat(F.lit(f"{c}: "), raw(c)))
                               for c in numeric]) if numeric else F.lit(None).cast("string")
    parsed = parsed.withColumn("_bad_numeric", bad_numeric)
    wrong_count = F.col("_n") != n
    reason = (F.when(wrong_count, F.lit(WRONG_FIELD_COUNT))
              .when(raw(id_col).isNull(), F.lit(MISSING_ID))
              .when(F.col(id_col).isNull(), F.lit(BAD_ID))
              .when(F.col("_bad_numeric").isNotNull(), F.lit(NON_NUMERIC)))
    detail = (F.when(wrong_count, F.format_string(f"expected {n} fields, found %d", F.col("_n")))
              .when(raw(id_col).isNull(), F.lit(f"{id_col} is empty"))
              .when(F.col(id_col).isNull(),
                    F.concat(F.lit(f"{id_col} is not a valid {specs[id_col].type}: "), raw(id_col)))
              .when(F.col("_bad_numeric").isNotNull(), F.concat(F.lit("not a number in "), F.col("_bad_numeric"))))
    if label_col in names:
        allowed = sorted((cfg.get("dataset.label_values") or {"0": 0, "1": 1}).keys())
        reason = reason.when(F.col(label_col).isNull(), F.lit(BAD_LABEL))
        detail = detail.when(F.col(label_col).isNull(), F.concat(
            F.lit(f"{label_col} must be one of {allowed}, found "), F.coalesce(raw(label_col), F.lit("empty"))))
    return parsed.select("source_file", "line", "raw_line", raw(id_col).alias("id"), *names,
                         reason.alias("reason"), detail.alias("detail"))


def mark_duplicates(df: DataFrame, id_col: str, partition: list[str] | None = None) -> DataFrame:
    """Duplicate ids among rows without a reason: exact copies keep one, conflicting rows keep none.

    First one aggregate (ids only) looks for any duplicate id; ``df`` itself is returned when there
    is none, the usual case. Otherwise one window (one shuffle and sort of the rows) per id: the row
    count and the smallest and largest line.
    """
    keys = (partition or []) + [id_col]
    if df.where(F.col("reason").isNull()).groupBy(*keys).count().where(F.col("count") > 1).limit(1).count() == 0:
        return df
    by_id = Window.partitionBy(*keys).orderBy("line", "source_file")
    whole = by_id.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    ok = F.col("reason").isNull()
    cnt = F.count(F.lit(1)).over(whole)
    same = F.min("line").over(whole) == F.max("line").over(whole)
    rn = F.row_number().over(by_id)
    ok_rows = df.where(ok)
    flagged = ok_rows.select("*", cnt.alias("_n"), same.alias("_same"), rn.alias("_rn"))
    reason = (F.when((F.col("_n") > 1) & ~F.col("_same"), F.lit(CONFLICTING_ID))
              .when((F.col("_n") > 1) & (F.col("_rn") > 1), F.lit(DUPLICATE_ROW)))
    detail = (F.when((F.col("_n") > 1) & ~F.col("_same"),
                     F.format_string(f"{id_col} appears in %d rows that differ", F.col("_n")))
              .when((F.col("_n") > 1) & (F.col("_rn") > 1), F.lit("exact copy of an earlier row (one kept)")))
    flagged = flagged.withColumn("reason", reason).withColumn("detail", detail).drop("_n", "_same", "_rn")
    return flagged.unionByName(df.where(~ok))


# ---------------------------------------------------------------------------------------------
# Personal data
# ---------------------------------------------------------------------------------------------
def mask_line(cfg: Config, kind: str) -> Column:
    """The raw line with personal-data fields and anything like a phone number masked."""
    names = expected_columns(cfg, kind)
    pii_idx = [i for i, c in enumerate(names) if c in cfg.columns and cfg.columns[c].role == "pii"]
    line = F.col("line")
    if pii_idx:
        idx = F.array(*[F.lit(i) for i in pii_idx])
        masked = F.transform("fields", lambda x, i: F.when(F.array_contains(idx, i), F.lit(MASK)).otherwise(x))
        line = F.when(F.size("fields") >= max(pii_idx) + 1, F.array_join(masked, cfg.get("dataset.delimiter"))) \
                .otherwise(line)
    pattern = cfg.get("ingest.pii_pattern")
    return F.regexp_replace(line, pattern, MASK) if pattern else line


def pii_columns(cfg: Config, df: DataFrame) -> list[Column]:
    """Kept personal-data columns: none (drop) or ``<code>_hash`` (salted SHA-256)."""
    mode = cfg.get("ingest.pii_mode")
    if mode == "drop":
        return []
    if mode != "hash":
        raise JobError(f"ingest.pii_mode must be drop or hash, got {mode!r}")
    salt = os.environ.get(cfg.get("ingest.pii_salt_env") or "")
    if not salt:
        raise JobError(f"ingest.pii_mode is hash but the salt variable ${cfg.get('ingest.pii_salt_env')} is not set")
    return [F.sha2(F.concat(F.lit(salt), F.col(s.code)), 256).alias(f"{s.code}_hash")
            for s in cfg.columns.pii if s.code in df.columns]


# ---------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------
def _quarantine_rows(df: DataFrame, source_kind: Column, region: Column, cfg: Config) -> DataFrame:
    return df.select(F.lit(cfg.run_id).alias("run_id"), "source_file", source_kind.alias("source_kind"),
                     region.cast("string").alias("region"), F.col("id").cast("string").alias("id"),
                     "reason", "detail", F.col("raw_line"),
                     F.current_timestamp().alias("quarantined_at"))


def run(cfg: Config, spark: SparkSession) -> dict:
    """Ingest every input of the use case into bronze Delta tables (see module doc).

    Session settings changed while it runs (and restored after): Parquet's row group size for the
    bronze files (``ingest.row_group_mb``: later stages read a file in as many splits, so as many
    tasks, as it has row groups), and two optimizer settings for plans as wide as a delivery (~45
    columns parsed, typed and checked, then a window and joins):

    - whole-stage code generation off: the fused parse outgrows the JVM's 64 KB method limit, and
      Spark falls back to per-operator code anyway, after a costly failed compile of each stage;
    - constraint propagation off: inferring constraints through the many aliased columns is
      combinatorial (measured: over 7 minutes of optimizer time for an 80-row file).

    Raises:
        IngestError: a missing or empty input, or a header that does not match the dictionary;
            nothing is written then.
    """
    persisted: list[DataFrame] = []
    settings = {"spark.sql.constraintPropagation.enabled": "false",
                "parquet.block.size": str(int(float(cfg.get("ingest.row_group_mb")) * 2**20))}
    if cfg.get("dataset.format") == "csv":
        settings["spark.sql.codegen.wholeStage"] = "false"
    previous = {k: spark.conf.get(k, None) for k in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        return _ingest(cfg, spark, persisted)
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
        for df in persisted:
            df.unpersist()


def _ingest(cfg: Config, spark: SparkSession, persisted: list[DataFrame]) -> dict:
    started = dt.datetime.now(dt.timezone.utc)
    d: ColumnDictionary = cfg.columns
    id_col, label_col = cfg.get("dataset.id_column"), cfg.get("dataset.label_column")
    srcs = sources(spark, cfg)
    label_separate = any(s.kind == "labels" for s in srcs)

    # 1. Parse every input; a missing or empty file or a wrong header stops here, before any plan
    #    over the data is built and before anything is written.
    def keep(df: DataFrame) -> DataFrame:
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(df)
        return df

    parsed: dict[str, DataFrame] = {}
    for s in srcs:
        files = list_files(spark, s.path)
        if cfg.get("dataset.format") == "csv":
            check_headers(spark, cfg, s, files)
            lines = read_csv_lines(spark, cfg, s, files).withColumn("raw_line", mask_line(cfg, s.kind))
            if lines.select("line").limit(1).count() == 0:  # reads up to the first data line only
                raise IngestError(f"input file has a header but no data rows: {s.path}")
            rows = parse_rows(lines, cfg, s.kind)
        else:
            rows = parse_parquet_rows(spark, cfg, s, files)
            if rows.select("source_file").limit(1).count() == 0:
                raise IngestError(f"input has no data rows: {s.path}")
        key = s.kind if s.kind != "region" else f"region:{s.region}"
        rows = rows.withColumn("source_kind", F.lit(s.kind)).withColumn("region", F.lit(s.region).cast("string"))
        parsed[key] = rows

    regions = [s.region for s in srcs if s.kind == "region"]
    # CSV rows are cached once parsed (the text parse is the cost); Parquet rows are not: every
    # later pass reads only the columns it needs (the duplicate check reads the ids alone).
    cache_parsed = cfg.get("dataset.format") == "csv"

    def deduplicated(df: DataFrame, partition: list[str] | None = None) -> DataFrame:
        base = keep(df) if cache_parsed else df
        marked = mark_duplicates(base, id_col, partition)
        return base if marked is base else keep(marked)

    train = deduplicated(parsed["train"])
    labels = deduplicated(parsed["labels"]) if label_separate else None
    region_rows = None
    for r in regions:
        part = parsed[f"region:{r}"]
        region_rows = part if region_rows is None else region_rows.unionByName(part)
    if region_rows is not None:
        region_rows = deduplicated(region_rows, ["region"])

    # 2. Lines read per file (one job; for Parquet, row counts without reading values).
    read_parts = [train] + [x for x in (labels, region_rows) if x is not None]
    reads = read_parts[0].select("source_kind", "region", "source_file")
    for extra in read_parts[1:]:
        reads = reads.unionByName(extra.select("source_kind", "region", "source_file"))
    read_rows = reads.groupBy("source_kind", "region", "source_file").agg(F.count(F.lit(1)).alias("n")).collect()
    read_counts = {r["source_file"]: r["n"] for r in read_rows}
    read_by_kind: dict[str, int] = {}
    for r in read_rows:
        read_by_kind[r["source_kind"]] = read_by_kind.get(r["source_kind"], 0) + r["n"]

    def rejected(df: DataFrame, kind: str) -> DataFrame:
        """Rows with a reason; a Parquet row rejected after parsing gets its raw line here."""
        return df.where(F.col("reason").isNotNull()).withColumn(
            "raw_line", F.coalesce(F.col("raw_line"), row_json(cfg, expected_columns(cfg, kind))))

    feature_cols = [s.code for s in d if s.role not in ("pii", "ignore", "label") and s.code != id_col]
    pii = pii_columns(cfg, train)
    if label_separate:
        # Users meet labels by id. Up to ingest.broadcast_max_rows on both sides, the ids and labels
        # are broadcast, so the wide user rows are never shuffled; above, sort-merge joins.
        ok_users = train.where(F.col("reason").isNull())
        ok_labels = labels.where(F.col("reason").isNull()).select(
            F.col(id_col).alias("_lid"), F.col(label_col).alias("_label"), F.col("raw_line").alias("_lline"),
            F.col("source_file").alias("_lsource"))
        label_map = ok_labels.select("_lid", "_label")
        user_ids = ok_users.select(F.col(id_col).alias("_uid"))
        if max(read_by_kind.get("train", 0), read_by_kind.get("labels", 0)) <= cfg.get("ingest.broadcast_max_rows"):
            label_map, user_ids = F.broadcast(label_map), F.broadcast(user_ids)
        on_label = ok_users[id_col] == label_map["_lid"]
        accepted = ok_users.join(label_map, on_label, "inner").withColumn(label_col, F.col("_label"))
        orphan_users = ok_users.join(label_map, on_label, "left_anti").select(
            "source_file", "id", F.lit(USER_WITHOUT_LABEL).alias("reason"),
            F.lit(f"no valid row in {cfg.get('dataset.label_file')} for this {id_col}").alias("detail"),
            F.coalesce(F.col("raw_line"), row_json(cfg, expected_columns(cfg, "train"))).alias("raw_line"),
            F.lit("train").alias("source_kind"), F.lit(None).cast("string").alias("region"))
        orphan_labels = ok_labels.join(user_ids, ok_labels["_lid"] == user_ids["_uid"], "left_anti").select(
            F.col("_lsource").alias("source_file"), F.col("_lid").cast("string").alias("id"),
            F.lit(LABEL_WITHOUT_USER).alias("reason"),
            F.lit(f"no valid row in {cfg.get('dataset.train_file')} for this {id_col}").alias("detail"),
            F.coalesce(F.col("_lline"), F.to_json(F.struct(F.col("_lid").alias(id_col),
                                                           F.col("_label").alias(label_col)))).alias("raw_line"),
            F.lit("labels").alias("source_kind"), F.lit(None).cast("string").alias("region"))
        rejected_parts = [rejected(train, "train"), rejected(labels, "labels"), orphan_users, orphan_labels]
    else:
        accepted = train.where(F.col("reason").isNull())
        rejected_parts = [rejected(train, "train")]
    if region_rows is not None:
        rejected_parts.append(rejected(region_rows, "region"))

    cols = ["source_file", "id", "reason", "detail", "raw_line", "source_kind", "region"]
    quarantine = rejected_parts[0].select(*cols)
    for extra in rejected_parts[1:]:
        quarantine = quarantine.unionByName(extra.select(*cols))

    # Quarantined lines per file and reason: one job that reads only what the reasons need (ids,
    # labels, text-typed numbers), not the raw lines. Only when something is rejected are the
    # quarantine rows with their raw lines computed (every column read), cached for their write.
    q_rows = quarantine.groupBy("source_kind", "source_file", "reason").agg(F.count(F.lit(1)).alias("n")).collect()
    quarantine = _quarantine_rows(quarantine, F.col("source_kind"), F.col("region"), cfg)
    quarantine = keep(quarantine) if q_rows else quarantine.limit(0)
    q_counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    q_by_kind: dict[str, int] = {}
    for r in q_rows:
        q_counts[r["source_file"]] = q_counts.get(r["source_file"], 0) + r["n"]
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + r["n"]
        q_by_kind[r["source_kind"]] = q_by_kind.get(r["source_kind"], 0) + r["n"]

    # 3. Write: bronze users, bronze regions, quarantine (each replaces this run's slice), side by
    #    side: three tables, so the jobs and the commits overlap instead of queueing.
    now = F.current_timestamp()
    bronze_users = accepted.select(
        *[F.col(id_col)], *pii, *[F.col(c) for c in feature_cols if c in accepted.columns],
        F.col(label_col).cast("int").alias(label_col), F.lit(cfg.run_id).alias("run_id"),
        now.alias("ingested_at"))
    this_run = {"run_id": cfg.run_id}
    writes = {
        "users": lambda: tables.replace_partition(bronze_users, cfg.table("bronze_users"), this_run, ["run_id"],
                                                metrics=True),
        "quarantine": lambda: tables.replace_partition(quarantine, cfg.table("quarantine"), this_run, ["run_id"],
                                                     metrics=True),
    }
    if region_rows is not None:
        region_pii = pii_columns(cfg, region_rows)
        bronze_regions = region_rows.where(F.col("reason").isNull()).select(
            F.col(id_col), *region_pii, *[F.col(c) for c in feature_cols], F.col("region"),
            F.lit(cfg.run_id).alias("run_id"), now.alias("ingested_at"))
        writes["regions"] = lambda: tables.replace_partition(bronze_regions, cfg.table("bronze_regions"), this_run,
                                                             ["run_id", "region"], metrics=True)
    written = tables.write_concurrently(writes, workers=len(writes))
    m_users, m_quarantine, m_regions = written["users"], written["quarantine"], written.get("regions", {})

    # 4. Reconcile with what Delta committed: every line read is in a bronze row or in quarantine.
    users_written = tables.rows_written(m_users)
    regions_written = tables.rows_written(m_regions) if m_regions else 0
    q_written = tables.rows_written(m_quarantine)
    checks = {
        "train": read_by_kind.get("train", 0) == users_written + q_by_kind.get("train", 0),
        "regions": read_by_kind.get("region", 0) == regions_written + q_by_kind.get("region", 0),
        "quarantine": q_written == sum(q_counts.values()),
    }
    if label_separate:
        checks["labels"] = read_by_kind.get("labels", 0) == users_written + q_by_kind.get("labels", 0)
    reconciled = all(checks.values())
    rows_read = sum(read_counts.values())
    per_file = {f: {"read": n, "accepted": n - q_counts.get(f, 0), "quarantined": q_counts.get(f, 0)}
                for f, n in sorted(read_counts.items())}
    summary = {
        "run_id": cfg.run_id, "rows_read": rows_read, "rows_accepted": rows_read - q_written,
        "rows_quarantined": q_written, "users": users_written, "region_users": regions_written,
        "regions": regions, "reconciled": reconciled, "checks": checks, "quarantine_reasons": reasons,
        "files": per_file,
        "tables": {"bronze_users": cfg.table("bronze_users"), "bronze_regions": cfg.table("bronze_regions"),
                   "quarantine": cfg.table("quarantine")},
    }
    log.info("ingest %s: read %d lines = %d accepted + %d quarantined (%s)", cfg.run_id, rows_read,
             summary["rows_accepted"], q_written, "reconciled" if reconciled else f"NOT RECONCILED: {checks}")
    write_run_log(spark, cfg, "ingest", started, summary)
    if not reconciled:
        raise JobError(f"ingest {cfg.run_id} did not reconcile: {json.dumps(per_file)}")
    return summary


RUN_LOG_SCHEMA = T.StructType([
    T.StructField("job", T.StringType()), T.StructField("run_id", T.StringType()),
    T.StructField("use_case", T.StringType()), T.StructField("started_at", T.TimestampType()),
    T.StructField("finished_at", T.TimestampType()), T.StructField("status", T.StringType()),
    T.StructField("rows_read", T.LongType()), T.StructField("rows_accepted", T.LongType()),
    T.StructField("rows_quarantined", T.LongType()), T.StructField("reconciled", T.BooleanType()),
    T.StructField("details", T.StringType()),
])


def write_run_log(spark: SparkSession, cfg: Config, job: str, started: dt.datetime, summary: dict) -> None:
    """One row per (job, run_id) in the run log; a re-run replaces its row."""
    row = (job, cfg.run_id, cfg.use_case, started.replace(tzinfo=None),
           dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
           "ok" if summary.get("reconciled", True) else "not_reconciled",
           summary.get("rows_read"), summary.get("rows_accepted"), summary.get("rows_quarantined"),
           summary.get("reconciled"), json.dumps(summary, default=str, sort_keys=True))
    df = spark.createDataFrame([row], RUN_LOG_SCHEMA)
    tables.upsert(df, cfg.table("run_log"), ["job", "run_id"])
