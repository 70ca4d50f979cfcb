"""The column dictionary: raw code -> readable name, dimension group, type, imputation rule.

It lives in the use case's YAML (``dataset.columns``) so that another delivery of the same kind
of data (the real competition files, the IBM Telco churn sample) is read by editing conf alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import types as T

from prospects.core.errors import DictionaryError

TYPES = {"string": T.StringType(), "int": T.LongType(), "float": T.DoubleType()}
IMPUTE_RULES = ("mode", "median", "mean", "zero", "none")
ROLES = ("id", "pii", "feature", "label", "ignore")
_FIELDS = {"code", "name", "group", "type", "impute", "role", "labels", "description"}




@dataclass(frozen=True)
class ColumnSpec:
    """One raw column.

    Attributes:
        code: column name as delivered (e.g. ``X26``).
        name: readable name (e.g. ``broadband_bandwidth``), used in figures and reports.
        group: dimension group (consumption, arrears, ...), used by the profile.
        type: ``string`` | ``int`` | ``float``: how the raw text is parsed.
        impute: ``mode`` | ``median`` | ``mean`` | ``zero`` | ``none``.
        role: ``id`` | ``pii`` | ``feature`` | ``label`` | ``ignore``.
        labels: raw text value -> readable (English) label, for text categories.
        description: free text.
    """

    code: str
    name: str
    group: str
    type: str
    impute: str = "none"
    role: str = "feature"
    labels: dict = field(default_factory=dict)
    description: str = ""

    @property
    def spark_type(self) -> T.DataType:
        return TYPES[self.type]


class ColumnDictionary:
    """Ordered column specs with look-ups by role and code."""

    def __init__(self, specs: list[ColumnSpec]):
        self.specs = list(specs)
        self.by_code = {s.code: s for s in self.specs}

    @classmethod
    def from_config(cls, dataset: dict, source: str = "conf") -> "ColumnDictionary":
        """Build and validate from the ``dataset`` section.

        Raises:
            DictionaryError: naming the record and the field at fault.
        """
        records = dataset.get("columns") or []
        specs: list[ColumnSpec] = []
        seen: set[str] = set()
        for i, rec in enumerate(records):
            where = f"{source}: dataset.columns[{i}]"
            if not isinstance(rec, dict):
                raise DictionaryError(f"{where}: must be a mapping, got {rec!r}")
            unknown = set(rec) - _FIELDS
            if unknown:
                raise DictionaryError(f"{where}: unknown field(s) {sorted(unknown)}")
            for key in ("code", "type"):
                if key not in rec:
                    raise DictionaryError(f"{where}: missing field '{key}'")
            code = str(rec["code"])
            where = f"{source}: dataset.columns[{i}] ({code})"
            if code in seen:
                raise DictionaryError(f"{where}: duplicate code")
            seen.add(code)
            if rec["type"] not in TYPES:
                raise DictionaryError(f"{where}: type must be one of {list(TYPES)}, got {rec['type']!r}")
            impute = rec.get("impute", "none")
            if impute not in IMPUTE_RULES:
                raise DictionaryError(f"{where}: impute must be one of {list(IMPUTE_RULES)}, got {impute!r}")
            role = rec.get("role", "feature")
            if role not in ROLES:
                raise DictionaryError(f"{where}: role must be one of {list(ROLES)}, got {role!r}")
            labels = rec.get("labels") or {}
            if not isinstance(labels, dict):
                raise DictionaryError(f"{where}: labels must be a mapping")
            specs.append(ColumnSpec(
                code=code, name=str(rec.get("name") or code), group=str(rec.get("group") or "other"),
                type=rec["type"], impute=impute, role=role,
                labels={str(k): str(v) for k, v in labels.items()},
                description=str(rec.get("description") or ""),
            ))
        if specs:
            ids = [s for s in specs if s.role == "id"]
            if len(ids) != 1:
                raise DictionaryError(
                    f"{source}: the dictionary needs exactly one column with role id, found {len(ids)}")
            if ids[0].code != dataset.get("id_column"):
                raise DictionaryError(
                    f"{source}: dataset.id_column is '{dataset.get('id_column')}' but the id column "
                    f"of the dictionary is '{ids[0].code}'")
            labels_in = [s for s in specs if s.role == "label"]
            if dataset.get("label_file") is None and len(labels_in) != 1:
                raise DictionaryError(
                    f"{source}: dataset.label_file is null, so exactly one column must have role label")
        return cls(specs)

    # -- look-ups -------------------------------------------------------------------------
    def __iter__(self):
        return iter(self.specs)

    def __len__(self) -> int:
        return len(self.specs)

    def __getitem__(self, code: str) -> ColumnSpec:
        return self.by_code[code]

    def __contains__(self, code: Any) -> bool:
        return code in self.by_code

    @property
    def codes(self) -> list[str]:
        """Raw column codes in file order (the expected header)."""
        return [s.code for s in self.specs]

    @property
    def id(self) -> ColumnSpec:
        return next(s for s in self.specs if s.role == "id")

    @property
    def features(self) -> list[ColumnSpec]:
        return [s for s in self.specs if s.role == "feature"]

    @property
    def pii(self) -> list[ColumnSpec]:
        return [s for s in self.specs if s.role == "pii"]

    @property
    def label(self) -> ColumnSpec | None:
        return next((s for s in self.specs if s.role == "label"), None)

    def readable(self, code: str) -> str:
        """Readable name of a code (the code itself when unknown, e.g. a derived column)."""
        spec = self.by_code.get(code)
        return spec.name if spec else code

    def value_label(self, code: str, value: Any) -> str:
        """Readable label of a category value (English for the Chinese text values)."""
        spec = self.by_code.get(code)
        text = "missing" if value is None else str(value)
        return spec.labels.get(text, text) if spec else text

    def groups(self) -> dict[str, list[str]]:
        """Dimension group -> feature codes."""
        out: dict[str, list[str]] = {}
        for s in self.features:
            out.setdefault(s.group, []).append(s.code)
        return out
