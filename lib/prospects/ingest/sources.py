"""The inputs of a use case: which files, what they must hold, and their headers.

Everything here runs on the driver and touches only file listings and the first line of each file,
so a missing file, an empty file, a header that does not match the column dictionary or an
encoding that cannot be right stops the ingest before any Spark job reads the data.
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass

from pyspark.sql import SparkSession

from prospects.core import storage
from prospects.core.config import Config, join_path, raw_name
from prospects.core.errors import IngestError

HEAD_BYTES = 1 << 20
# encodings tried, in this order, on a line that the configured encoding cannot decode
LIKELY_ENCODINGS = ("utf-8", "gbk", "gb18030", "big5", "shift_jis", "euc-kr", "cp1252")


@dataclass(frozen=True)
class Source:
    """One logical input: a file (or a folder of part files) and what it holds.

    Attributes:
        kind: ``train`` | ``labels`` | ``region``.
        path: the file or folder.
        region: region name of a region file.
        codes: the header its files have (raw codes, in order); set by :func:`check_headers`.
    """

    kind: str
    path: str
    region: str | None = None
    codes: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.kind if self.kind != "region" else f"region:{self.region}"


def region_sources(spark: SparkSession, cfg: Config, raw_dir: str, fmt: str) -> list[Source]:
    """Region inputs: ``dataset.region_files`` plus files matching ``dataset.region_pattern``."""
    found = {r: join_path(raw_dir, raw_name(f, fmt)) for r, f in (cfg.get("dataset.region_files") or {}).items()}
    pattern = cfg.get("dataset.region_pattern")
    if pattern:
        escaped = re.escape(raw_name(pattern, fmt)).replace(re.escape("{region}"), "(?P<region>.+)")
        regex = re.compile(f"^{escaped}$")
        for name, path in storage.list_names(spark, raw_dir):
            m = regex.match(name)
            if m and m.group("region") not in found:
                found[m.group("region")] = path
    return [Source("region", path, region) for region, path in sorted(found.items())]


def sources(spark: SparkSession, cfg: Config) -> list[Source]:
    """Every input of the use case, in order: train, labels (if a separate file), regions."""
    raw_dir, fmt = cfg.path("raw"), cfg.get("dataset.format")
    out = [Source("train", join_path(raw_dir, raw_name(cfg.get("dataset.train_file"), fmt)))]
    if cfg.get("dataset.label_file"):
        out.append(Source("labels", join_path(raw_dir, raw_name(cfg.get("dataset.label_file"), fmt))))
    return out + region_sources(spark, cfg, raw_dir, fmt)


def list_files(spark: SparkSession, path: str) -> list[str]:
    """Data files of a source.

    Raises:
        IngestError: when nothing exists at ``path`` or a folder holds no data file.
    """
    files = storage.data_files(spark, path)
    if not files:
        what = "input folder holds no data file" if storage.exists(spark, path) else "input file not found"
        raise IngestError(f"{what}: {path}")
    return files


# ---------------------------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------------------------
def expected_codes(cfg: Config, kind: str) -> list[str]:
    """Raw columns a file of ``kind`` must have, in order (for regions: without the label)."""
    d = cfg.columns
    if kind == "labels":
        return [d.id.code if d.id else "", d.label_code]
    return [c for c in d.codes if kind == "train" or d.by_code[c].role != "label"]


def allowed_headers(cfg: Config, kind: str) -> list[list[str]]:
    """Headers a file of ``kind`` may have: regions may also carry the label (a labelled delivery),
    where the dictionary has it, or last when the labels of training come in their own file."""
    codes = expected_codes(cfg, kind)
    if kind != "region":
        return [codes]
    d = cfg.columns
    if d.label is not None:
        return [codes, d.codes]
    return [codes, codes + [d.label_code]]


def decode_line(data: bytes, encoding: str, where: str, line_number: int = 1) -> str:
    """``data`` decoded strictly; a byte sequence invalid in ``encoding`` is an :class:`IngestError`
    naming the file, the line and, when another common encoding decodes it, that encoding."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        raise IngestError(f"{where}: line {line_number} is not valid {encoding}{encoding_hint(data, encoding)}") \
            from None


def encoding_hint(data: bytes, encoding: str) -> str:
    """``": looks like GBK: set dataset.encoding: gb18030"``, or "" when no common encoding fits."""
    for candidate in LIKELY_ENCODINGS:
        if codecs.lookup(candidate).name == codecs.lookup(encoding).name:
            continue
        try:
            data.decode(candidate)
        except UnicodeDecodeError:
            continue
        return f" (looks like {candidate.upper()}: set dataset.encoding: {candidate})"
    return ""


def read_header(spark: SparkSession, cfg: Config, path: str) -> list[str] | None:
    """The header of a CSV file, parsed as RFC 4180 (quotes, a byte-order mark); None if empty."""
    head = storage.read_head(spark, path, HEAD_BYTES)
    if not head.strip():
        return None
    first = re.split(rb"\r\n|\n|\r", head, maxsplit=1)[0]
    text = decode_line(first, cfg.get("dataset.encoding"), path).lstrip("\ufeff")
    fields = next(csv.reader([text], delimiter=cfg.get("dataset.delimiter"), quotechar=cfg.get("dataset.quote")),
                  [])
    return [f.strip() for f in fields]


def check_headers(spark: SparkSession, cfg: Config, source: Source, files: list[str]) -> Source:
    """Every file of ``source`` starts with one allowed header, the same for all its files.

    Returns:
        ``source`` with ``codes`` set to that header.

    Raises:
        IngestError: naming the file and the missing / unexpected / misplaced columns.
    """
    allowed = allowed_headers(cfg, source.kind)
    found: list[str] | None = None
    for f in files:
        got = read_header(spark, cfg, f)
        if not got or not "".join(got):
            raise IngestError(f"input file is empty: {f}")
        if got not in allowed:
            expected = allowed[0]
            missing = [c for c in expected if c not in got]
            extra = [c for c in got if c not in expected
                     and not (source.kind == "region" and c == cfg.columns.label_code)]
            what = (f"missing {missing}" if missing else "") + (f" unexpected {extra}" if extra else "")
            raise IngestError(
                f"header of {f} does not match the column dictionary of use case "
                f"'{cfg.get('dataset.name')}': {what.strip() or 'columns in a different order'}")
        if found is not None and got != found:
            raise IngestError(f"{f}: header differs from the other files of {source.path}")
        found = got
    return Source(source.kind, source.path, source.region, tuple(found or ()))


def parquet_codes(cfg: Config, source: Source, columns: list[str]) -> Source:
    """``source`` with the dictionary's columns its Parquet files hold (the label when a region has it).

    Raises:
        IngestError: a dictionary column is missing from the files.
    """
    codes = expected_codes(cfg, source.kind)
    missing = [c for c in codes if c not in columns]
    if missing:
        raise IngestError(f"{source.path} lacks columns of the dictionary: {missing}")
    label = cfg.columns.label_code
    if source.kind == "region" and label in columns:
        codes = allowed_headers(cfg, "region")[1]
    return Source(source.kind, source.path, source.region, tuple(codes))
