"""CSV records from raw files, parsed by Spark's own CSV parser (RFC 4180), with their raw text.

Files are read line by line (``spark.read.text``: splittable, so a large file is read by many tasks)
and every line is parsed with ``from_csv`` (Spark's CSV parser, the same univocity parser as
``spark.read.csv``, with a corrupt-record column): quoted delimiters and doubled quotes are one
field, an unclosed quote or a wrong number of fields makes the record malformed, with its text kept.

A record can span lines only inside quotes, and then each of its lines holds an odd number of
quote characters. A file with such lines is parsed as a whole by ``spark.read.csv(multiLine=True)``
(one task per file) when ``dataset.multiline`` is ``always``, or, with ``auto``, when that parse
keeps more records well-formed than the line-by-line one: an unbalanced quote alone (which a
whole-file parse would let swallow the following lines) keeps the file line by line.

Bytes are decoded with ``dataset.encoding``. The text reader keeps each line's bytes as they are,
so a line that is not valid in that encoding is found exactly: for UTF-8 by ``is_valid_utf8``, for
any other encoding by decoding and encoding back (a byte that did not decode comes back different).
Such a file is refused (see :mod:`prospects.ingest.stage`); nothing is stored with replacement
characters.

Every line is kept in the frame, flagged: ``_skip`` is ``blank`` for an empty line (only spaces),
``header`` for a line repeating the header (the file's first line, and any copy of it inside the
file), null for a record. Skipped lines are counted and reported, never quarantined.
"""

from __future__ import annotations

import codecs
import re

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from prospects.core import sql
from prospects.core.config import Config
from prospects.ingest.sources import Source

CORRUPT = "_corrupt_record"
# a text no field holds, given to Spark as its null marker: empty and missing fields are
# recognised by the product itself (dataset.null_values, after trimming)
NO_NULL = "\u0000\u0001"
SKIP_BLANK = "blank"
SKIP_HEADER = "header"
RECORD_COLUMNS = ("source_file", "_split", "line", "_skip", "_malformed", "_found", "_odd", "_bad_encoding",
                  "_utf8_multibyte", "_not_utf8", "_fields")


def is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


def field_names(n: int) -> list[str]:
    """Positional field names of a record (raw codes may hold any character)."""
    return [f"_c{i}" for i in range(n)]


def record_schema(n: int, corrupt: bool = True) -> T.StructType:
    fields = [T.StructField(c, T.StringType()) for c in field_names(n)]
    return T.StructType(fields + ([T.StructField(CORRUPT, T.StringType())] if corrupt else []))


def csv_options(cfg: Config, corrupt: bool = True) -> dict[str, str]:
    """Spark CSV options for RFC 4180 records of the use case (PERMISSIVE, raw text of bad records)."""
    quote = cfg.get("dataset.quote")
    opts = {"sep": cfg.get("dataset.delimiter"), "quote": quote, "escape": quote, "nullValue": NO_NULL,
            "emptyValue": "", "ignoreLeadingWhiteSpace": "false", "ignoreTrailingWhiteSpace": "false",
            "mode": "PERMISSIVE", "unescapedQuoteHandling": "STOP_AT_DELIMITER"}
    if corrupt:
        opts["columnNameOfCorruptRecord"] = CORRUPT
    return opts


def write_options(cfg: Config) -> dict[str, str]:
    """Spark CSV options that write a record back as the use case's CSV (RFC 4180 quoting)."""
    quote = cfg.get("dataset.quote")
    return {"sep": cfg.get("dataset.delimiter"), "quote": quote, "escape": quote}


def options_sql(options: dict[str, str]) -> str:
    """CSV options as a SQL ``map(...)``."""
    return "map(" + ", ".join(f"{sql.literal(k)}, {sql.literal(v)}" for k, v in options.items()) + ")"


def from_csv_sql(text: str, cfg: Config, n: int) -> str:
    """SQL of ``from_csv(text)`` into ``n`` positional string fields and the corrupt-record field."""
    return f"from_csv({text}, {sql.literal(record_schema(n).simpleString())}, {options_sql(csv_options(cfg))})"


def field_count_sql(text: str, cfg: Config) -> str:
    """Fields in a record's text whose quotes are balanced: one more than its delimiters outside
    quoted fields (only for the detail of a malformed record)."""
    quote, delimiter = re.escape(cfg.get("dataset.quote")), re.escape(cfg.get("dataset.delimiter"))
    unquoted = f"regexp_replace({text}, {sql.literal(f'{quote}(?:[^{quote}]|{quote}{quote})*{quote}')}, '')"
    return f"size(split({unquoted}, {sql.literal(delimiter)}, -1))"


def odd_quotes_sql(text: str, quote: str) -> str:
    """True when ``text`` holds an odd number of quote characters (it opens or closes a quoted
    field that continues on another line, or its quote is never closed)."""
    return f"((length({text}) - length(replace({text}, {sql.literal(quote)}, ''))) % 2 = 1)"


def _flags(df: DataFrame, cfg: Config, source: Source) -> DataFrame:
    """Parse ``line`` (one record per row) and flag blank lines, header lines and malformed records;
    ``_fields`` holds the raw fields ``_c0`` ... ``_c<n-1>`` (and Spark's corrupt-record text)."""
    n = len(source.codes)
    parsed = df.selectExpr(*[c for c in df.columns], f"{from_csv_sql('line', cfg, n)} AS _fields")
    header = ("array(" + ", ".join(f"trim(_fields._c{i})" for i in range(n)) + ") = array("
              + ", ".join(sql.literal(c) for c in source.codes) + ")")
    malformed = f"(_fields.{CORRUPT} IS NOT NULL)"
    skip = sql.case([("trim(line) = ''", sql.literal(SKIP_BLANK)),
                     (f"NOT {malformed} AND {header}", sql.literal(SKIP_HEADER))])
    return parsed.selectExpr(
        *[c for c in RECORD_COLUMNS if c in parsed.columns], f"{skip} AS _skip", f"{malformed} AS _malformed",
        f"CASE WHEN {malformed} AND trim(line) != '' THEN {field_count_sql('line', cfg)} END AS _found"
    ).selectExpr(*RECORD_COLUMNS)


def read_lines(spark: SparkSession, cfg: Config, source: Source, files: list[str]) -> DataFrame:
    """Every line of ``files``, decoded, flagged and parsed (columns :data:`RECORD_COLUMNS`).

    ``_split`` is the line's file split (its first byte in the file): with the row's position it
    orders a file's lines without a sort (see :mod:`prospects.ingest.numbering`).
    """
    encoding = cfg.get("dataset.encoding")
    if is_utf8(encoding):
        text, bad = "value", "NOT is_valid_utf8(value)"
    else:
        text = f"decode(CAST(value AS BINARY), {sql.literal(encoding)})"
        bad = f"(encode({text}, {sql.literal(encoding)}) != CAST(value AS BINARY))"
    df = spark.read.text(files).selectExpr(
        "_metadata.file_path AS source_file", "_metadata.file_block_start AS _split",
        f"regexp_replace({text}, '^\\ufeff', '') AS line", f"{bad} AS _bad_encoding",
        "(is_valid_utf8(value) AND octet_length(value) != length(value)) AS _utf8_multibyte",
        "NOT is_valid_utf8(value) AS _not_utf8")
    df = df.selectExpr("*", f"{odd_quotes_sql('line', cfg.get('dataset.quote'))} AS _odd")
    return _flags(df, cfg, source)


def read_whole(spark: SparkSession, cfg: Config, source: Source, files: list[str]) -> DataFrame:
    """The records of ``files`` parsed file by file with ``multiLine`` (columns :data:`RECORD_COLUMNS`).

    A malformed record spanning lines is an unbalanced quote that swallowed the lines after it (up
    to the next quote character): it is split into its lines again and each is parsed on its own,
    so the swallowed records are read and only the broken one is malformed. Spark's reader skips
    blank lines itself (they are counted by :func:`read_lines`). ``line`` is the record's text: the
    malformed text as read, or the fields written back as CSV.
    """
    n = len(source.codes)
    opts = {**csv_options(cfg), "multiLine": "true", "encoding": cfg.get("dataset.encoding")}
    df = spark.read.schema(record_schema(n)).options(**opts).csv(files)
    fields = "struct(" + ", ".join(field_names(n)) + ")"
    text = f"coalesce({CORRUPT}, to_csv({fields}, {options_sql(write_options(cfg))}))"
    pieces = (f"CASE WHEN {CORRUPT} IS NOT NULL AND instr({CORRUPT}, '\\n') > 0 "
              f"THEN split({CORRUPT}, '\\r?\\n') ELSE array({text}) END")
    df = df.selectExpr("_metadata.file_path AS source_file", "CAST(0 AS BIGINT) AS _split",
                       f"explode({pieces}) AS line")
    df = df.selectExpr("*", "false AS _bad_encoding", "false AS _utf8_multibyte", "false AS _not_utf8",
                       f"{odd_quotes_sql('line', cfg.get('dataset.quote'))} AS _odd")
    return _flags(df, cfg, source)


def well_formed(df: DataFrame) -> Column:
    return F.col("_skip").isNull() & ~F.col("_malformed")


def multiline_wins(spark: SparkSession, cfg: Config, source: Source, files: list[str],
                   per_line: dict[str, int]) -> list[str]:
    """The files whose whole-file parse keeps more records well-formed than the line-by-line parse.

    Args:
        per_line: file -> well-formed records of its line-by-line parse.
    """
    whole = read_whole(spark, cfg, source, files)
    counts = {r["source_file"]: r["n"] for r in
              whole.groupBy("source_file").agg(F.count_if(well_formed(whole)).alias("n")).collect()}
    return [f for f in files if counts.get(f, 0) > per_line.get(f, 0)]


def first_bad_line(spark: SparkSession, cfg: Config, path: str) -> tuple[int, bytes]:
    """Line number (1-based) and bytes of the first line of ``path`` that is not valid in the
    configured encoding (0 and b"" when there is none): the error path of a refused file."""
    from prospects.ingest.numbering import number_rows

    encoding = cfg.get("dataset.encoding")
    value = F.col("value")
    raw = value.cast("binary")
    bad = ~F.is_valid_utf8(value) if is_utf8(encoding) else F.encode(F.decode(raw, encoding), encoding) != raw
    lines = spark.read.text(path).select(
        F.col("_metadata.file_path").alias("source_file"), F.col("_metadata.file_block_start").alias("_split"),
        raw.alias("_bytes"), bad.alias("_bad"))
    first = number_rows(lines, "_n").where("_bad").orderBy("_n").select("_n", "_bytes").first()
    return (0, b"") if first is None else (int(first["_n"]), bytes(first["_bytes"]))
