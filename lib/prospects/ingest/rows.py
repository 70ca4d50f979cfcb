"""Records typed by the column dictionary, checked value by value, each with its first reject reason.

CSV records arrive as raw strings (:mod:`prospects.ingest.records`), Parquet rows as typed columns;
both leave here in the same shape: ``source_file``, ``line`` (record text, or a hash for Parquet),
``id`` (the id as delivered, text), one column per table column of the source (named by the
dictionary's ``column``; the label as int 0/1), ``reason`` / ``detail`` (null when the row is
accepted so far) and one ``_rule<i>`` code per checked column (which value rule fired, if any).

Values:

* Empty fields and ``dataset.null_values`` (after trimming spaces) are missing.
* A number that is not finite (``inf``, ``-Infinity``, ``NaN``, ``1e999``) becomes missing and is
  counted as ``non_finite`` for its file and column.
* ``min`` / ``max`` / ``values`` of the dictionary: a value outside them is set missing and counted
  (``on_invalid: missing``, the default), or the row is quarantined as ``out_of_range`` /
  ``unexpected_value`` (``on_invalid: quarantine``).

The projections are written as SQL text (:mod:`prospects.core.sql`): a few hundred expressions per
source, built in one call each instead of thousands of JVM round trips.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from prospects.core import sql
from prospects.core.config import Config
from prospects.core.dictionary import ColumnSpec
from prospects.ingest.records import CORRUPT, from_csv_sql, options_sql, write_options
from prospects.ingest.sources import Source

MASK = "***"
# Reasons a row is quarantined (column ``reason``); ``detail`` says more.
WRONG_FIELD_COUNT = "wrong_field_count"
UNBALANCED_QUOTE = "unbalanced_quote"
MISSING_ID = "missing_id"
BAD_ID = "bad_id"
NON_NUMERIC = "non_numeric"
BAD_LABEL = "bad_label"
OUT_OF_RANGE = "out_of_range"
UNEXPECTED_VALUE = "unexpected_value"
# value rules counted per file and column (``_rule<i>`` codes)
RULES = {1: "non_finite", 2: "below_min", 3: "above_max", 4: "not_in_values"}
# per-line flags of CSV records kept for the per-file counts (prospects.ingest.records)
STAT_FLAGS = ("_malformed", "_odd", "_bad_encoding", "_utf8_multibyte", "_not_utf8")
SQL_TYPES = {"string": "STRING", "int": "BIGINT", "float": "DOUBLE"}
INFINITY = "double('Infinity')"

_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMERIC = _INTEGRAL + (T.FloatType, T.DoubleType, T.DecimalType)


@dataclass(frozen=True)
class Field:
    """One column of a source file: its header code, its table column and how it is read."""

    code: str
    column: str
    spec: ColumnSpec | None       # None for the label of a separate label file
    is_label: bool

    @property
    def is_id(self) -> bool:
        return self.spec is not None and self.spec.role == "id"

    @property
    def numeric(self) -> bool:
        return not self.is_label and self.spec.type != "string"

    @property
    def checked(self) -> bool:
        """Values can be non-finite or outside a rule (so they are flagged and counted)."""
        return not self.is_label and not self.is_id and (self.numeric or self.spec.has_rules)


def source_fields(cfg: Config, source: Source) -> list[Field]:
    """The fields of ``source``'s files, in file order."""
    d = cfg.columns
    out = []
    for code in source.codes:
        spec = d.by_code.get(code)
        is_label = code == d.label_code and (spec is None or spec.role == "label")
        out.append(Field(code, d.label_column if is_label else spec.column, spec, is_label))
    return out


# ---------------------------------------------------------------------------------------------
# Values, as SQL text
# ---------------------------------------------------------------------------------------------
def clean_sql(raw: str, null_values: list[str]) -> str:
    """Trimmed text, null when empty or one of ``null_values``."""
    missing = sql.in_list(f"trim({raw})", sorted({"", *(str(v).strip() for v in null_values)}))
    return f"CASE WHEN {missing} THEN NULL ELSE trim({raw}) END"


def label_sql(raw: str, mapping: dict) -> str:
    """0/1 from the raw label text (``dataset.label_values``; default 0/1 as written)."""
    mapping = mapping or {"0": 0, "1": 1}
    return sql.case([(f"{raw} = {sql.literal(str(k))}", str(int(v))) for k, v in mapping.items()])


def non_finite_sql(x: str) -> str:
    return f"(isnan({x}) OR abs({x}) = {INFINITY})"


def number_sql(raw: str, spec_type: str) -> str:
    """The number in a cleaned text (NaN and infinities kept: the checks count and remove them);
    null when it does not parse. An int column takes whole numbers only (``30`` or ``30.0``)."""
    d = f"try_cast({raw} AS DOUBLE)"
    if spec_type == "float":
        return d
    return f"coalesce(CAST(try_cast({raw} AS BIGINT) AS DOUBLE), CASE WHEN {non_finite_sql(d)} OR {d} = floor({d}) " \
           f"THEN {d} END)"


def native_number_sql(raw: str, dtype: T.DataType, spec_type: str) -> str:
    """The number in a Parquet column of type ``dtype`` (text columns are parsed as in CSV)."""
    if isinstance(dtype, _INTEGRAL):
        return f"CAST({raw} AS DOUBLE)"
    if isinstance(dtype, _NUMERIC):
        d = f"CAST({raw} AS DOUBLE)"
        return d if spec_type == "float" else f"CASE WHEN {non_finite_sql(d)} OR {d} = floor({d}) THEN {d} END"
    return number_sql(f"trim(CAST({raw} AS STRING))", spec_type)


def id_sql(raw: str, dtype: T.DataType | None = None) -> str:
    """An integer id, exact to 64 bits (never through a double)."""
    if dtype is not None and isinstance(dtype, _INTEGRAL):
        return f"CAST({raw} AS BIGINT)"
    text = f"trim(CAST({raw} AS STRING))"
    d = f"try_cast({text} AS DOUBLE)"
    return f"coalesce(try_cast({text} AS BIGINT), CASE WHEN {d} = floor({d}) " \
           f"THEN try_cast(try_cast({text} AS DECIMAL(20,0)) AS BIGINT) END)"


def value_sql(f: Field, raw: str, cfg: Config, dtype: T.DataType | None = None) -> str:
    """The typed value of field ``f`` from its raw column (text for CSV, ``dtype`` for Parquet)."""
    if f.is_label:
        return label_sql(raw if dtype is None else f"CAST({raw} AS STRING)", cfg.get("dataset.label_values"))
    if f.spec.type == "string":
        return raw if dtype is None else f"CAST({raw} AS STRING)"
    if f.is_id and f.spec.type == "int":
        return id_sql(raw, dtype)
    return number_sql(raw, f.spec.type) if dtype is None else native_number_sql(raw, dtype, f.spec.type)


def rule_sql(f: Field, i: int) -> str:
    """Which rule value ``_v<i>`` breaks (:data:`RULES`), null when none."""
    s, v, branches = f.spec, f"_v{i}", []
    if f.numeric:
        branches.append((f"{v} IS NOT NULL AND {non_finite_sql(v)}", "1"))
        if s.min is not None:
            branches.append((f"{v} < {sql.literal(s.min)}", "2"))
        if s.max is not None:
            branches.append((f"{v} > {sql.literal(s.max)}", "3"))
    if s.values is not None:
        text = f"regexp_replace(CAST({v} AS STRING), '\\\\.0$', '')" if f.numeric else f"_raw{i}"
        branches.append((f"{text} IS NOT NULL AND NOT {sql.in_list(text, s.values)}", "4"))
    return f"CAST({sql.case(branches)} AS TINYINT)"


# ---------------------------------------------------------------------------------------------
# Typing
# ---------------------------------------------------------------------------------------------
def type_csv(df: DataFrame, cfg: Config, source: Source) -> DataFrame:
    """Records (:mod:`prospects.ingest.records`) -> typed and checked rows (module doc).

    Projections refer to the previous one's columns, so that every field is cleaned and parsed once
    (one flat expression would repeat them and outgrow code generation).
    """
    fields = source_fields(cfg, source)
    nulls = list(cfg.get("dataset.null_values") or [])
    keep = [c for c in df.columns if c != "_fields"]
    raws = df.selectExpr(*keep, *[f"{clean_sql(f'_fields._c{i}', nulls)} AS _raw{i}" for i in range(len(fields))])
    typed = raws.selectExpr("*", *[f"{value_sql(f, f'_raw{i}', cfg)} AS _v{i}" for i, f in enumerate(fields)])
    return _checked(typed, cfg, source, fields, csv=True)


def type_parquet(df: DataFrame, cfg: Config, source: Source) -> DataFrame:
    """Parquet rows -> typed and checked rows: the output of :func:`type_csv`, without text.

    ``line`` is a 64-bit hash of the row's values: it only tells exact copies apart in
    :func:`prospects.ingest.checks.mark_duplicates` (two different rows sharing a hash, odds about
    1 in 10^19 per pair, would be taken for copies).
    """
    fields = source_fields(cfg, source)
    base = df.selectExpr("_metadata.file_path AS source_file", "_metadata.file_block_start AS _split",
                         *[f"{sql.ident(f.code)} AS _raw{i}" for i, f in enumerate(fields)])
    raws = ", ".join(f"_raw{i}" for i in range(len(fields)))
    typed = base.selectExpr("*", f"CAST(xxhash64({raws}) AS STRING) AS line", "CAST(NULL AS STRING) AS _skip",
                            *[f"{value_sql(f, f'_raw{i}', cfg, base.schema[f'_raw{i}'].dataType)} AS _v{i}"
                              for i, f in enumerate(fields)])
    return _checked(typed, cfg, source, fields, csv=False)


def reasons_sql(cfg: Config, source: Source, fields: list[Field], csv: bool) -> list[tuple[str, str, str]]:
    """``(condition, reason, detail)`` of every reject reason, first applicable first."""
    out: list[tuple[str, str, str]] = []
    if csv:
        out += [("_malformed AND _odd", sql.literal(UNBALANCED_QUOTE),
                 sql.literal(f"a quoted field is not closed ({cfg.get('dataset.quote')})")),
                ("_malformed", sql.literal(WRONG_FIELD_COUNT),
                 f"format_string({sql.literal(f'expected {len(fields)} fields, found %d')}, _found)")]
    for i, f in enumerate(fields):
        if f.is_id:
            out += [(f"_raw{i} IS NULL", sql.literal(MISSING_ID), sql.literal(f"{f.column} is empty")),
                    (f"_v{i} IS NULL", sql.literal(BAD_ID),
                     f"concat({sql.literal(f'{f.column} is not a valid {f.spec.type}: ')}, CAST(_raw{i} AS STRING))")]
    out.append(("_bad_numeric IS NOT NULL", sql.literal(NON_NUMERIC), "concat('not a number in ', _bad_numeric)"))
    d = cfg.columns
    for i, f in enumerate(fields):
        if f.is_label:
            allowed = sorted((cfg.get("dataset.label_values") or {"0": 0, "1": 1}).keys())
            # a labelled region may leave an outcome empty (not known yet); training may not
            missing = f"_raw{i} IS NOT NULL" if source.kind == "region" else "true"
            out.append((f"_v{i} IS NULL AND {missing}", sql.literal(BAD_LABEL),
                        f"concat({sql.literal(f'{d.label_code} must be one of {allowed}, found ')}, "
                        f"coalesce(CAST(_raw{i} AS STRING), 'empty'))"))
    for i, f in enumerate(fields):
        if f.checked and f.spec.on_invalid == "quarantine":
            shown = f"concat({sql.literal(f.column + ' = ')}, CAST(_raw{i} AS STRING))"
            bounds = f" outside [{_num(f.spec.min)}, {_num(f.spec.max)}]"
            out += [(f"_rule{i} IN (2, 3)", sql.literal(OUT_OF_RANGE), f"concat({shown}, {sql.literal(bounds)})"),
                    (f"_rule{i} = 4", sql.literal(UNEXPECTED_VALUE),
                     f"concat({shown}, {sql.literal(f' not one of {list(f.spec.values or [])}')})")]
    return out


def _checked(typed: DataFrame, cfg: Config, source: Source, fields: list[Field], csv: bool) -> DataFrame:
    """Value rules applied, columns typed, and the first reject reason of every row."""
    ruled = [i for i, f in enumerate(fields) if f.checked]
    numeric = [i for i, f in enumerate(fields) if f.numeric and not f.is_id]
    bad = [f"CASE WHEN _raw{i} IS NOT NULL AND _v{i} IS NULL THEN "
           f"concat({sql.literal(fields[i].column + ': ')}, CAST(_raw{i} AS STRING)) END" for i in numeric]
    rules = {i: rule_sql(fields[i], i) for i in ruled}
    if csv:   # a malformed record's fields are not values
        rules = {i: f"CASE WHEN NOT _malformed THEN {r} END" for i, r in rules.items()}
    flagged = typed.selectExpr("*", *[f"{rules[i]} AS _rule{i}" for i in ruled],
                               f"{sql.coalesce(bad) if bad else 'CAST(NULL AS STRING)'} AS _bad_numeric")
    reasons = reasons_sql(cfg, source, fields, csv)
    reason = sql.case([(c, r) for c, r, _ in reasons])
    detail = sql.case([(c, d) for c, _, d in reasons])

    def value(i: int, f: Field) -> str:
        v = f"_v{i}"
        if i in ruled:
            drop = f"_rule{i} = 1" if f.spec.on_invalid == "quarantine" else f"_rule{i} IS NOT NULL"
            v = f"CASE WHEN {drop} THEN NULL ELSE {v} END"
        return f"CAST({v} AS {'INT' if f.is_label else SQL_TYPES[f.spec.type]}) AS {sql.ident(f.column)}"

    keep = [c for c in ("source_file", "_split", "line", "_skip", *STAT_FLAGS) if c in flagged.columns]
    id_i = next((i for i, f in enumerate(fields) if f.is_id), None)
    id_text = f"CAST(_raw{id_i} AS STRING)" if id_i is not None else "CAST(NULL AS STRING)"
    return flagged.selectExpr(*keep, f"{id_text} AS id", *[value(i, f) for i, f in enumerate(fields)],
                              f"CAST({reason} AS STRING) AS reason", f"CAST({detail} AS STRING) AS detail",
                              *[f"_rule{i}" for i in ruled])


def _num(x: float | None) -> str:
    if x is None:
        return "-inf"
    return str(int(x)) if float(x).is_integer() else str(x)


def rule_columns(df: DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("_rule")]


def rule_counts_sql(cfg: Config, source: Source, df: DataFrame) -> list[str]:
    """Aggregates (SQL) counting each fired value rule of ``df``'s checked columns, named
    ``_n|<column>|<rule>``."""
    fields = source_fields(cfg, source)
    out = []
    for name in rule_columns(df):
        column = fields[int(name[len("_rule"):])].column
        out += [f"count_if({name} = {code}) AS {sql.ident(f'_n|{column}|{rule}')}" for code, rule in RULES.items()]
    return out


# ---------------------------------------------------------------------------------------------
# Raw text of rejected rows and personal data
# ---------------------------------------------------------------------------------------------
def masked_line(df: DataFrame, cfg: Config, source: Source) -> DataFrame:
    """``df`` with ``raw_line``: the record's text with personal-data fields and anything like a
    phone number masked.

    A well-formed record is parsed again and written back with its personal-data fields masked; a
    malformed one keeps its text (masked by the pattern). Only rejected rows get here.
    """
    fields = source_fields(cfg, source)
    pii = [i for i, f in enumerate(fields) if f.spec is not None and f.spec.role == "pii"]
    text = "line"
    if pii and source.codes:
        df = df.selectExpr("*", f"{from_csv_sql('line', cfg, len(fields))} AS _rec")
        shown = "named_struct(" + ", ".join(f"'_c{i}', {sql.literal(MASK) if i in pii else f'_rec._c{i}'}"
                                            for i in range(len(fields))) + ")"
        text = f"CASE WHEN _rec.{CORRUPT} IS NULL THEN to_csv({shown}, {options_sql(write_options(cfg))}) ELSE line END"
    pattern = cfg.get("ingest.pii_pattern")
    if pattern:
        text = f"regexp_replace({text}, {sql.literal(pattern)}, {sql.literal(MASK)})"
    return df.selectExpr("*", f"{text} AS raw_line")


def row_json(df: DataFrame, cfg: Config, columns: list[str]) -> DataFrame:
    """``df`` with ``raw_line``: the typed row as JSON, personal data masked (a Parquet row's text)."""
    pii = {s.column for s in cfg.columns.pii}
    shown = ", ".join(f"{sql.literal(c)}, {sql.literal(MASK) if c in pii else sql.ident(c)}" for c in columns)
    return df.selectExpr("*", f"to_json(named_struct({shown})) AS raw_line")
