"""The column dictionary: raw code -> table column, readable name, group, type, rules, role.

It lives in the use case's YAML (``dataset.columns``) so that another delivery of the same kind
of data (the real competition files, the IBM Telco churn sample, an operator's own export) is read
by editing conf alone.

Two names per column:

* ``code``: the header text as delivered. Anything goes (``Account length``, ``月均ARPU(元)``).
* ``column``: the column's name in every Delta table and in every other setting of the use case
  (features, segments, actions, ...). It is the code when the code is a plain identifier (letters,
  digits and ``_``, not starting with a digit); otherwise the record's ``name``, which must then be
  one. Delta rejects spaces, brackets and several other characters in column names, and Spark SQL
  expressions in conf would need quoting: one safe name per column avoids both.

Everything is checked when the configuration loads (:meth:`ColumnDictionary.from_config`), so a
bad record stops a job in about a second with the record named, before any Spark job runs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import types as T

from prospects.core.errors import DictionaryError

TYPES = {"string": T.StringType(), "int": T.LongType(), "float": T.DoubleType()}
IMPUTE_RULES = ("mode", "median", "mean", "zero", "none")
ROLES = ("id", "pii", "feature", "label", "ignore")
ON_INVALID = ("missing", "quarantine")
_FIELDS = {"code", "name", "group", "type", "impute", "role", "labels", "description", "min", "max", "values",
           "on_invalid"}
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# columns every bronze table carries besides the dictionary's
RESERVED = ("run_id", "ingested_at", "region")


def is_identifier(text: str) -> bool:
    """True for a plain identifier: letters, digits and ``_``, not starting with a digit."""
    return bool(IDENTIFIER.match(text))


def suggest_identifier(text: str, fallback: str = "column") -> str:
    """A plain identifier close to ``text`` (``Total day minutes`` -> ``total_day_minutes``)."""
    out = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if not out:
        return fallback
    return out if not out[0].isdigit() else f"c_{out}"


def quoted(name: str) -> str:
    """``name`` as a Spark column reference (backticks): safe for dots, spaces and brackets."""
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class ColumnSpec:
    """One raw column.

    Attributes:
        code: column name as delivered (header text, e.g. ``X26`` or ``Total day minutes``).
        column: name in the Delta tables and in the rest of the configuration.
        name: readable name (e.g. ``broadband_bandwidth``), used in figures and reports.
        group: dimension group (consumption, arrears, ...), used by the profile.
        type: ``string`` | ``int`` | ``float``: how the raw text is parsed.
        impute: ``mode`` | ``median`` | ``mean`` | ``zero`` | ``none``.
        role: ``id`` | ``pii`` | ``feature`` | ``label`` | ``ignore``.
        labels: raw text value -> readable (English) label, for text categories.
        description: free text.
        min, max: plausible range of a numeric column (inclusive); None: unbounded.
        values: the allowed values of a categorical column (as text); None: any.
        on_invalid: a value outside ``min``/``max``/``values``: ``missing`` (set missing, counted)
            or ``quarantine`` (the row goes to the quarantine with the reason).
    """

    code: str
    name: str
    group: str
    type: str
    impute: str = "none"
    role: str = "feature"
    labels: dict = field(default_factory=dict)
    description: str = ""
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    on_invalid: str = "missing"
    column: str = ""

    def __post_init__(self) -> None:
        if not self.column:
            object.__setattr__(self, "column", self.code)

    @property
    def spark_type(self) -> T.DataType:
        return TYPES[self.type]

    @property
    def has_rules(self) -> bool:
        return self.min is not None or self.max is not None or self.values is not None


def _number(value: Any, where: str, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DictionaryError(f"{where}: {key} must be a finite number, got {value!r}")
    return float(value)


def _spec(rec: Any, i: int, source: str) -> ColumnSpec:
    """One record validated (everything but the checks across records)."""
    where = f"{source}: dataset.columns[{i}]"
    if not isinstance(rec, dict):
        raise DictionaryError(f"{where}: must be a mapping, got {rec!r}")
    unknown = set(rec) - _FIELDS
    if unknown:
        raise DictionaryError(f"{where}: unknown field(s) {sorted(unknown)} (fields: {sorted(_FIELDS)})")
    for key in ("code", "type"):
        if key not in rec or rec[key] in (None, ""):
            raise DictionaryError(f"{where}: missing field '{key}'")
    code = str(rec["code"])
    where = f"{where} ({code})"
    checks = {"type": (rec["type"], TYPES), "impute": (rec.get("impute", "none"), IMPUTE_RULES),
              "role": (rec.get("role", "feature"), ROLES), "on_invalid": (rec.get("on_invalid", "missing"), ON_INVALID)}
    for key, (value, allowed) in checks.items():
        if value not in allowed:
            raise DictionaryError(f"{where}: {key} must be one of {list(allowed)}, got {value!r}")
    name = str(rec.get("name") or code)
    if is_identifier(code):
        column = code
    elif is_identifier(name):
        column = name
    else:
        raise DictionaryError(
            f"{where}: '{code}' cannot be a Delta column name, so the record's name is used instead, and "
            f"{name!r} is not a plain identifier either (letters, digits and _, not starting with a digit): "
            f"set name, e.g. name: {suggest_identifier(code)}")
    labels = rec.get("labels") or {}
    if not isinstance(labels, dict):
        raise DictionaryError(f"{where}: labels must be a mapping")
    lo, hi = _number(rec.get("min"), where, "min"), _number(rec.get("max"), where, "max")
    if (lo is not None or hi is not None) and rec["type"] == "string":
        raise DictionaryError(f"{where}: min/max apply to numeric columns; use values for a text column")
    if lo is not None and hi is not None and lo > hi:
        raise DictionaryError(f"{where}: min {lo} is above max {hi}")
    values = rec.get("values")
    if values is not None:
        if not isinstance(values, list) or not values:
            raise DictionaryError(f"{where}: values must be a non-empty list of the allowed values")
        values = tuple(_value_text(v) for v in values)
    return ColumnSpec(code=code, column=column, name=name, group=str(rec.get("group") or "other"),
                      type=rec["type"], impute=rec.get("impute", "none"), role=rec.get("role", "feature"),
                      labels={str(k): str(v) for k, v in labels.items()},
                      description=str(rec.get("description") or ""), min=lo, max=hi, values=values,
                      on_invalid=rec.get("on_invalid", "missing"))


def _value_text(value: Any) -> str:
    """An allowed value as the text it has in a table (1 and 1.0 are both "1" for a number)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class ColumnDictionary:
    """Ordered column specs with look-ups by table column (and by raw code).

    Attributes:
        specs: the records in file order.
        id_column: table column of the id: the id record's column, or ``dataset.row_id_column``
            when the files have no id (``dataset.id_column: null``; ingest then numbers the rows).
        label_column: table column of the label (0/1).
        label_code: the label's header text (in the training file, or in the label file).
    """

    def __init__(self, specs: list[ColumnSpec], id_column: str = "user_id", label_column: str = "label",
                 label_code: str | None = None, surrogate_id: bool = False):
        self.specs = list(specs)
        self.by_column = {s.column: s for s in self.specs}
        self.by_code = {s.code: s for s in self.specs}
        self.id_column = id_column
        self.label_column = label_column
        self.label_code = label_code or label_column
        self.surrogate_id = surrogate_id

    @classmethod
    def from_config(cls, dataset: dict, source: str = "conf") -> ColumnDictionary:
        """Build and validate from the ``dataset`` section.

        Raises:
            DictionaryError: naming the record and the field at fault.
        """
        specs = [_spec(rec, i, source) for i, rec in enumerate(dataset.get("columns") or [])]
        _check_unique(specs, source)
        id_code, label_code = dataset.get("id_column"), dataset.get("label_column")
        row_id = dataset.get("row_id_column") or "row_id"
        ids = [s for s in specs if s.role == "id"]
        if specs and id_code is None:
            if ids:
                raise DictionaryError(f"{source}: dataset.id_column is null (ingest numbers the rows) but "
                                      f"column '{ids[0].code}' has role id: set dataset.id_column: {ids[0].code}")
            if not is_identifier(row_id) or row_id in {s.column for s in specs} | set(RESERVED):
                raise DictionaryError(f"{source}: dataset.row_id_column '{row_id}' must be a plain identifier "
                                      "that no other column uses")
        elif specs:
            if len(ids) != 1:
                raise DictionaryError(
                    f"{source}: the dictionary needs exactly one column with role id, found {len(ids)} "
                    "(or set dataset.id_column: null when the files have no id)")
            if ids[0].code != id_code:
                raise DictionaryError(f"{source}: dataset.id_column is '{id_code}' but the id column "
                                      f"of the dictionary is '{ids[0].code}'")
        if specs and id_code is None and dataset.get("label_file"):
            raise DictionaryError(f"{source}: dataset.label_file needs an id column to join the labels on: "
                                  "set dataset.id_column, or give the label as a column of the train file")
        labels_in = [s for s in specs if s.role == "label"]
        label_column = str(label_code)
        if specs and dataset.get("label_file") is None:
            if len(labels_in) != 1:
                raise DictionaryError(
                    f"{source}: dataset.label_file is null, so exactly one column must have role label")
            if labels_in[0].code != label_code:
                raise DictionaryError(f"{source}: dataset.label_column is '{label_code}' but the label column "
                                      f"of the dictionary is '{labels_in[0].code}'")
            label_column = labels_in[0].column
        elif specs and (not is_identifier(label_column) or label_column in {s.column for s in specs}):
            raise DictionaryError(f"{source}: dataset.label_column '{label_code}' of the label file must be a "
                                  "plain identifier that no column of the dictionary uses (it names the label "
                                  "in the tables)")
        return cls(specs, id_column=ids[0].column if ids else row_id, label_column=label_column,
                   label_code=label_code, surrogate_id=bool(specs) and id_code is None)

    # -- look-ups -------------------------------------------------------------------------
    def __iter__(self):
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, column: str) -> ColumnSpec:
        return self.by_column[column]

    def __contains__(self, column: Any) -> bool:
        return column in self.by_column

    @property
    def codes(self) -> list[str]:
        """Raw column codes in file order (the expected header)."""
        return [s.code for s in self.specs]

    @property
    def table_columns(self) -> list[str]:
        """Table columns in file order."""
        return [s.column for s in self.specs]

    @property
    def id(self) -> ColumnSpec | None:
        """The id record (None when the files have no id column)."""
        return next((s for s in self.specs if s.role == "id"), None)

    @property
    def features(self) -> list[ColumnSpec]:
        return [s for s in self.specs if s.role == "feature"]

    @property
    def pii(self) -> list[ColumnSpec]:
        return [s for s in self.specs if s.role == "pii"]

    @property
    def label(self) -> ColumnSpec | None:
        return next((s for s in self.specs if s.role == "label"), None)

    def readable(self, column: str) -> str:
        """Readable name of a column (the column itself when unknown, e.g. a derived column)."""
        spec = self.by_column.get(column)
        return spec.name if spec else column

    def value_label(self, column: str, value: Any) -> str:
        """Readable label of a category value (English for the Chinese text values)."""
        spec = self.by_column.get(column)
        text = "missing" if value is None else str(value)
        return spec.labels.get(text, text) if spec else text

    def groups(self) -> dict[str, list[str]]:
        """Dimension group -> feature columns."""
        out: dict[str, list[str]] = {}
        for s in self.features:
            out.setdefault(s.group, []).append(s.column)
        return out


def _check_unique(specs: list[ColumnSpec], source: str) -> None:
    """Codes and table columns are unique and no table column takes a reserved name."""
    seen_codes: set[str] = set()
    seen_columns: dict[str, str] = {}
    for i, s in enumerate(specs):
        where = f"{source}: dataset.columns[{i}] ({s.code})"
        if s.code in seen_codes:
            raise DictionaryError(f"{where}: duplicate code")
        seen_codes.add(s.code)
        if s.column in seen_columns:
            raise DictionaryError(f"{where}: table column '{s.column}' is also the column of "
                                  f"'{seen_columns[s.column]}': give one of them another name")
        if s.column in RESERVED:
            raise DictionaryError(f"{where}: '{s.column}' is a column every bronze table has: "
                                  "give the record another name")
        seen_columns[s.column] = s.code
