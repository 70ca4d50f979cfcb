"""Raw files -> bronze Delta tables, with a quarantine for every rejected record and a run log.

Inputs (``dataset.*`` in conf): the training file, the label file (or a label column inside the
training file), and one file per sales region (a region file may carry the label too: a labelled
delivery, scored like any other and measured by the evaluate job). CSV files are parsed by Spark's
CSV parser (:mod:`prospects.ingest.records`), Parquet files are checked against the dictionary by
column name; both are typed and checked by :mod:`prospects.ingest.rows`.

Outputs, each tagged with ``run_id`` and replaced as a whole when the same run is ingested again:

- ``bronze_users``: users joined with their labels (partitioned by run_id).
- ``bronze_regions``: every region's users (partitioned by run_id, region), with the label when
  the region file has one.
- ``quarantine``: rejected records with source file, raw text (personal data masked), reason, detail.
- ``run_log``: one row per (job, run_id): records read, accepted, quarantined and lines skipped per
  file, the value rules that fired per file and column, reconciled or not.

A file that cannot be right stops the ingest before anything is written: missing, empty, a header
that does not match the dictionary, or bytes that are not valid in ``dataset.encoding`` (the
message names the file, the first bad line and, when another encoding fits, that encoding).

Files without an id column (``dataset.id_column: null``) get one: ``dataset.row_id_column`` holds
``<file name>:<n>``, ``n`` the record's number in its file (1 = the first record after the header;
blank lines are not counted), the same on every run over the same file: row ``n - 1`` of
``pandas.read_csv(file)``.

Personal data (dictionary role ``pii``, e.g. ``product_no``) never reaches a table in clear: it is
dropped, or kept as a salted SHA-256 when ``ingest.pii_mode`` is ``hash``; in quarantined raw
lines its field and anything matching ``ingest.pii_pattern`` is masked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from prospects.core import runlog, sql, tables
from prospects.core.config import Config
from prospects.core.errors import IngestError, JobError
from prospects.ingest import checks, records
from prospects.ingest import rows as rw
from prospects.ingest.numbering import number_rows
from prospects.ingest.sources import (
    Source,
    check_headers,
    encoding_hint,
    list_files,
    parquet_codes,
    sources,
)

log = logging.getLogger(__name__)

QUARANTINE_PART = ["source_file", "id", "reason", "detail", "raw_line", "source_kind", "region"]


@dataclass
class Input:
    """One source, its files and its typed rows (CSV: every line, skipped ones flagged)."""

    source: Source
    files: list[str]
    rows: DataFrame
    whole: tuple[str, ...] = ()      # CSV files parsed as a whole (records spanning lines)


STAT_FIELDS = ("records", "blank", "header", "well_formed", "odd", "bad_encoding", "utf8_multibyte", "not_utf8")


@dataclass
class FileStats:
    """What one file held: records, skipped lines, encoding and quoting flags, value rules fired."""

    kind: str
    region: str | None
    records: int = 0
    blank: int = 0
    header: int = 0
    well_formed: int = 0
    odd: int = 0
    bad_encoding: int = 0
    utf8_multibyte: int = 0
    not_utf8: int = 0
    rules: dict[str, dict[str, int]] = field(default_factory=dict)


@contextlib.contextmanager
def session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    """Session settings changed for a block and restored after it."""
    previous = {k: spark.conf.get(k, None) for k in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def ingest_settings(cfg: Config) -> dict[str, str]:
    """Session settings of the ingest:

    - Parquet's row group size for the bronze files (``ingest.row_group_mb``: later stages read a
      file in as many splits, so as many tasks, as it has row groups);
    - constraint propagation off: inferring constraints through the many aliased columns of a
      delivery's plan is combinatorial (minutes of optimizer time for an 80-row file);
    - for CSV, whole-stage code generation off: the fused parse of ~45 fields outgrows the JVM's
      64 KB method limit, and Spark falls back after a costly failed compile of each stage;
    - for encodings other than UTF-8, Java's charsets in ``decode``/``encode`` and the CSV reader,
      and replacement rather than failure on a bad byte (bad bytes are found by a round trip).
    """
    out = {"spark.sql.constraintPropagation.enabled": "false",
           "parquet.block.size": str(int(float(cfg.get("ingest.row_group_mb")) * 2**20))}
    if cfg.get("dataset.format") == "csv":
        out["spark.sql.codegen.wholeStage"] = "false"
        if not records.is_utf8(cfg.get("dataset.encoding")):
            out.update({"spark.sql.legacy.javaCharsets": "true", "spark.sql.legacy.codingErrorAction": "true"})
    return out


def run(cfg: Config, spark: SparkSession) -> dict:
    """Ingest every input of the use case into bronze Delta tables (see module doc).

    Raises:
        IngestError: a missing, empty or badly encoded input, or a header that does not match the
            dictionary; nothing is written then.
    """
    persisted: list[DataFrame] = []

    def keep(df: DataFrame) -> DataFrame:
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        persisted.append(df)
        return df

    with session_settings(spark, ingest_settings(cfg)):
        try:
            return _ingest(cfg, spark, keep)
        finally:
            for df in persisted:
                df.unpersist()


def _ingest(cfg: Config, spark: SparkSession, keep: Callable[[DataFrame], DataFrame]) -> dict:
    started = runlog.utc_now()
    inputs = [open_input(spark, cfg, s, keep) for s in sources(spark, cfg)]
    stats = file_stats(cfg, inputs)
    check_files(spark, cfg, inputs, stats)
    inputs, stats = reparse_multiline(spark, cfg, inputs, stats, keep)
    if cfg.columns.surrogate_id:
        inputs = [replace(i, rows=with_row_ids(cfg, i.rows)) for i in inputs]
    accepted, quarantine = check_rows(cfg, inputs, stats, keep)
    q_rows = quarantine_counts(quarantine)
    written = write_tables(cfg, accepted, keep(quarantine) if q_rows else quarantine.limit(0))
    summary = reconcile(cfg, inputs, stats, q_rows, written)
    runlog.write(spark, cfg, "ingest", started, summary)
    if not summary["reconciled"]:
        raise JobError(f"ingest {cfg.run_id} did not reconcile: {json.dumps(summary['files'])}")
    return summary


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------
def open_input(spark: SparkSession, cfg: Config, source: Source, keep: Callable[[DataFrame], DataFrame],
               whole: tuple[str, ...] = ()) -> Input:
    """A source's files checked (exist, header) and its rows typed; CSV rows are cached (the parse
    is the cost), Parquet rows are not: every later pass reads only the columns it needs."""
    files = list_files(spark, source.path)
    if cfg.get("dataset.format") == "csv":
        source = check_headers(spark, cfg, source, files)
        per_line = [f for f in files if f not in whole]
        parts = ([records.read_lines(spark, cfg, source, per_line)] if per_line else []) + \
                ([records.read_whole(spark, cfg, source, list(whole))] if whole else [])
        parsed = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
        typed = keep(tag(rw.type_csv(parsed, cfg, source), source))
    else:
        raw = spark.read.parquet(*files)
        source = parquet_codes(cfg, source, raw.columns)
        typed = tag(rw.type_parquet(raw, cfg, source), source)
    return Input(source, files, typed, whole)


def tag(df: DataFrame, source: Source) -> DataFrame:
    return df.selectExpr("*", f"{sql.literal(source.kind)} AS source_kind",
                         f"CAST({sql.literal(source.region)} AS STRING) AS region")


def file_stats(cfg: Config, inputs: list[Input], old: dict[str, FileStats] | None = None) -> dict[str, FileStats]:
    """Per file: records, skipped lines, flags and value rules fired, for every input in one Spark job
    (each input's counts as one JSON object per file: the inputs count different rules).

    ``old``: earlier counts whose blank lines are kept for files parsed as a whole (Spark's
    whole-file reader skips blank lines without counting them).
    """
    per_input = [inp.rows.groupBy("source_file").agg(*[F.expr(a) for a in _count_sql(cfg, inp)])
                 .selectExpr(f"{i} AS input", "source_file", "to_json(struct(* EXCEPT (source_file))) AS counts")
                 for i, inp in enumerate(inputs)]
    every = per_input[0]
    for part in per_input[1:]:
        every = every.unionByName(part)
    out: dict[str, FileStats] = {}
    for r in every.collect():
        counts, inp = json.loads(r["counts"]), inputs[r["input"]]
        st = FileStats(inp.source.kind, inp.source.region, **{k: int(v) for k, v in counts.items() if k in STAT_FIELDS})
        for name, n in counts.items():
            if name.startswith("_n|") and n:
                _, column, rule = name.split("|")
                st.rules.setdefault(column, {})[rule] = int(n)
        if old and r["source_file"] in inp.whole and r["source_file"] in old:
            st.blank = old[r["source_file"]].blank
        out[r["source_file"]] = st
    return out


def _count_sql(cfg: Config, inp: Input) -> list[str]:
    """The aggregates of :func:`file_stats` for one input (SQL)."""
    flags = [c for c in rw.STAT_FLAGS if c in inp.rows.columns]
    ok = " AND NOT _malformed" if "_malformed" in flags else ""
    return ["count_if(_skip IS NULL) AS records", f"count_if(_skip = '{records.SKIP_BLANK}') AS blank",
            f"count_if(_skip = '{records.SKIP_HEADER}') AS header", f"count_if(_skip IS NULL{ok}) AS well_formed",
            *[f"count_if({c}{' AND _skip IS NULL' if c == '_odd' else ''}) AS {c.strip('_')}"
              for c in flags if c != "_malformed"],
            *rw.rule_counts_sql(cfg, inp.source, inp.rows)]


def check_files(spark: SparkSession, cfg: Config, inputs: list[Input], stats: dict[str, FileStats]) -> None:
    """Refuse an input without records, a file holding bytes invalid in ``dataset.encoding``, or a
    file configured as another encoding that is UTF-8 through and through (decoding it would garble
    every non-ASCII text).

    Raises:
        IngestError: naming the file, and for an encoding the first bad line and the encoding that fits.
    """
    for inp in inputs:
        if not sum(stats[f].records for f in inp.files if f in stats):
            raise IngestError(f"input file has a header but no data rows: {inp.source.path}")
    encoding = cfg.get("dataset.encoding")
    for path, st in sorted(stats.items()):
        if st.bad_encoding:
            line, data = records.first_bad_line(spark, cfg, path)
            raise IngestError(f"{path}: {st.bad_encoding} line(s) are not valid {encoding}, the first is line "
                              f"{line}{encoding_hint(data, encoding)}; nothing was written")
        if not records.is_utf8(encoding) and st.utf8_multibyte and not st.not_utf8:
            raise IngestError(f"{path}: every non-ASCII line is valid UTF-8, so the file is very likely UTF-8, "
                              f"not {encoding} (looks like UTF-8: set dataset.encoding: utf-8); nothing was written")


def reparse_multiline(spark: SparkSession, cfg: Config, inputs: list[Input], stats: dict[str, FileStats],
                      keep: Callable[[DataFrame], DataFrame]) -> tuple[list[Input], dict[str, FileStats]]:
    """Inputs with the files whose records span lines parsed as a whole (``dataset.multiline``)."""
    mode = cfg.get("dataset.multiline")
    if cfg.get("dataset.format") != "csv" or mode == "never":
        return inputs, stats
    out = []
    for inp in inputs:
        odd = [f for f in inp.files if stats[f].odd] if mode == "auto" else list(inp.files)
        whole = records.multiline_wins(spark, cfg, inp.source, odd, {f: stats[f].well_formed for f in odd}) \
            if odd and mode == "auto" else odd
        if not whole:
            out.append(inp)
            continue
        log.info("%s: parsed as a whole (records spanning lines): %s", inp.source.key, whole)
        inp.rows.unpersist()
        redone = open_input(spark, cfg, inp.source, keep, tuple(whole))
        stats = {**stats, **file_stats(cfg, [redone], stats)}
        out.append(redone)
    return out, stats


def with_row_ids(cfg: Config, df: DataFrame) -> DataFrame:
    """Records numbered in file order (module doc): ``dataset.row_id_column`` and ``id``."""
    numbered = number_rows(df.where(F.col("_skip").isNull()), "_record")
    base = F.element_at(F.split(F.col("source_file"), "/"), -1)
    row_id = F.concat(base, F.lit(":"), F.col("_record").cast("string"))
    return numbered.withColumn(cfg.columns.id_column, row_id).withColumn("id", row_id).drop("_record")


# ---------------------------------------------------------------------------------------------
# Checks across rows
# ---------------------------------------------------------------------------------------------
@dataclass
class Accepted:
    """Rows going to bronze: the training users with labels, and each region's users."""

    users: DataFrame
    regions: list[DataFrame]


def check_rows(cfg: Config, inputs: list[Input], stats: dict[str, FileStats],
               keep: Callable[[DataFrame], DataFrame]) -> tuple[Accepted, DataFrame]:
    """Duplicates, labels and orphans: the accepted rows and every rejected one (quarantine rows)."""
    d = cfg.columns
    by_kind = {i.source.key: i for i in inputs}
    rejected: list[DataFrame] = []
    keys = {i.source.key: (["region"] if i.source.kind == "region" else []) + [d.id_column] for i in inputs}
    duplicated = set() if d.surrogate_id else checks.parts_with_duplicates(
        {k: (i.rows.where(F.col("_skip").isNull()), keys[k]) for k, i in by_kind.items()})

    def records_of(inp: Input) -> DataFrame:
        df = inp.rows.where(F.col("_skip").isNull())
        return keep(checks.mark_duplicates(df, keys[inp.source.key])) if inp.source.key in duplicated else df

    def reject(inp: Input, df: DataFrame) -> None:
        rejected.append(quarantine_part(cfg, inp.source, df.where(F.col("reason").isNotNull())))

    train = by_kind["train"]
    users = records_of(train)
    reject(train, users)
    users = users.where(F.col("reason").isNull())
    if "labels" in by_kind:
        lab = by_kind["labels"]
        labels = records_of(lab)
        reject(lab, labels)
        read = max(sum(s.records for s in stats.values() if s.kind == k) for k in ("train", "labels"))
        users, no_label, no_user = checks.join_labels(
            users, labels.where(F.col("reason").isNull()), d.id_column, d.label_column,
            read <= cfg.get("ingest.broadcast_max_rows"), cfg.get("dataset.label_file"), cfg.get("dataset.train_file"))
        reject(train, no_label)
        reject(lab, no_user)
    regions = []
    for inp in (i for i in inputs if i.source.kind == "region"):
        df = records_of(inp)
        reject(inp, df)
        regions.append(df.where(F.col("reason").isNull()))
    quarantine = rejected[0]
    for part in rejected[1:]:
        quarantine = quarantine.unionByName(part)
    return Accepted(users, regions), quarantine


def quarantine_part(cfg: Config, source: Source, df: DataFrame) -> DataFrame:
    """Rejected rows of one source as quarantine rows (the raw text of each, personal data masked)."""
    if cfg.get("dataset.format") == "csv":
        df = rw.masked_line(df, cfg, source)
    else:
        df = rw.row_json(df, cfg, [f.column for f in rw.source_fields(cfg, source) if f.column in df.columns])
    return df.selectExpr(*QUARANTINE_PART[:1], "CAST(id AS STRING) AS id", *QUARANTINE_PART[2:])


def quarantine_counts(quarantine: DataFrame) -> list[dict]:
    """Quarantined records per file and reason: one job that reads only what the reasons need."""
    rows = quarantine.groupBy("source_kind", "source_file", "reason").agg(F.count(F.lit(1)).alias("n")).collect()
    return [r.asDict() for r in rows]


# ---------------------------------------------------------------------------------------------
# Writing and reconciling
# ---------------------------------------------------------------------------------------------
def pii_columns(cfg: Config, df: DataFrame) -> list[Column]:
    """Kept personal-data columns: none (drop) or ``<column>_hash`` (salted SHA-256)."""
    mode = cfg.get("ingest.pii_mode")
    if mode == "drop":
        return []
    if mode != "hash":
        raise JobError(f"ingest.pii_mode must be drop or hash, got {mode!r}")
    salt = os.environ.get(cfg.get("ingest.pii_salt_env") or "")
    if not salt:
        raise JobError(f"ingest.pii_mode is hash but the salt variable ${cfg.get('ingest.pii_salt_env')} is not set")
    return [F.sha2(F.concat(F.lit(salt), F.col(s.column)), 256).alias(f"{s.column}_hash")
            for s in cfg.columns.pii if s.column in df.columns]


def bronze(cfg: Config, df: DataFrame, extra: list[str]) -> DataFrame:
    """Bronze rows: id, kept personal data, features (and ignored columns' absence), ``extra``, run."""
    d = cfg.columns
    features = [s.column for s in d if s.role not in ("pii", "ignore", "label", "id") and s.column in df.columns]
    return df.select(F.col(d.id_column), *pii_columns(cfg, df), *[F.col(c) for c in features],
                     *[F.col(c) for c in extra if c in df.columns],
                     F.lit(cfg.run_id).alias("run_id"), F.current_timestamp().alias("ingested_at"))


def write_tables(cfg: Config, accepted: Accepted, quarantine: DataFrame) -> dict[str, dict]:
    """Bronze users, bronze regions and the quarantine, each replacing this run's slice, side by side
    (three tables: their jobs and commits overlap instead of queueing). Returns commit metrics."""
    label = cfg.columns.label_column
    users = bronze(cfg, accepted.users.withColumn(label, F.col(label).cast("int")), [label])
    q = quarantine.select("*", F.lit(cfg.run_id).alias("run_id"), F.current_timestamp().alias("quarantined_at"))
    writes = {
        "users": lambda: tables.write_run(users, cfg, "bronze_users", metrics=True),
        "quarantine": lambda: tables.write_run(
            q.select("run_id", "source_file", "source_kind", "region", "id", "reason", "detail", "raw_line",
                     "quarantined_at"), cfg, "quarantine", metrics=True),
    }
    if accepted.regions:
        regions = accepted.regions[0]
        for part in accepted.regions[1:]:
            regions = regions.unionByName(part, allowMissingColumns=True)
        regions = bronze(cfg, regions, [label, "region"])
        writes["regions"] = lambda: tables.write_run(regions, cfg, "bronze_regions", sub_partitions=["region"],
                                                     schema_evolution=True, metrics=True)
    return tables.write_concurrently(writes, workers=len(writes))


def reconcile(cfg: Config, inputs: list[Input], stats: dict[str, FileStats], q_rows: list[dict],
              written: dict[str, dict]) -> dict:
    """The run's summary: every record read is in a bronze row or in the quarantine (per kind,
    against the rows Delta's commits report), lines skipped and value rules fired per file."""
    q_by_file: dict[str, int] = {}
    q_by_kind: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for r in q_rows:
        q_by_file[r["source_file"]] = q_by_file.get(r["source_file"], 0) + r["n"]
        q_by_kind[r["source_kind"]] = q_by_kind.get(r["source_kind"], 0) + r["n"]
        reasons[r["reason"]] = reasons.get(r["reason"], 0) + r["n"]
    read_by_kind: dict[str, int] = {}
    for st in stats.values():
        read_by_kind[st.kind] = read_by_kind.get(st.kind, 0) + st.records
    users = tables.rows_written(written["users"])
    region_users = tables.rows_written(written["regions"]) if "regions" in written else 0
    quarantined = tables.rows_written(written["quarantine"])
    checks_ok = {"train": read_by_kind.get("train", 0) == users + q_by_kind.get("train", 0),
                 "regions": read_by_kind.get("region", 0) == region_users + q_by_kind.get("region", 0),
                 "quarantine": quarantined == sum(q_by_file.values())}
    if "labels" in read_by_kind:
        checks_ok["labels"] = read_by_kind["labels"] == users + q_by_kind.get("labels", 0)
    rows_read = sum(read_by_kind.values())
    whole = {f for i in inputs for f in i.whole}
    per_file = {f: {"read": st.records, "accepted": st.records - q_by_file.get(f, 0),
                    "quarantined": q_by_file.get(f, 0), "skipped_blank": st.blank, "skipped_header": st.header,
                    **({"parsed_whole": True} if f in whole else {})}
                for f, st in sorted(stats.items())}
    summary = {
        "run_id": cfg.run_id, "rows_read": rows_read, "rows_accepted": rows_read - quarantined,
        "rows_quarantined": quarantined, "users": users, "region_users": region_users,
        "regions": [i.source.region for i in inputs if i.source.kind == "region"],
        "labelled_regions": [i.source.region for i in inputs if i.source.kind == "region"
                             and cfg.columns.label_code in i.source.codes],
        "lines_skipped": {"blank": sum(s.blank for s in stats.values()),
                          "header": sum(s.header for s in stats.values())},
        "reconciled": all(checks_ok.values()), "checks": checks_ok, "quarantine_reasons": reasons,
        "value_rules": {f: st.rules for f, st in sorted(stats.items()) if st.rules}, "files": per_file,
        "tables": {k: cfg.table(k) for k in ("bronze_users", "bronze_regions", "quarantine")},
    }
    log.info("ingest %s: read %d records = %d accepted + %d quarantined; skipped %s; value rules %s (%s)",
             cfg.run_id, rows_read, summary["rows_accepted"], quarantined, summary["lines_skipped"],
             summary["value_rules"], "reconciled" if summary["reconciled"] else f"NOT RECONCILED: {checks_ok}")
    return summary
