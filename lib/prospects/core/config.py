"""Layered YAML configuration, validated on load.

Layers, later wins: ``base.yml`` -> ``<env>.yml`` -> ``<use case>.yml`` -> ``--set key=value``.
``base.yml`` is the schema: every key must exist there, and a value must have the type of the
default written there (an int is accepted where a float is expected). A mapping that is empty
(``{}``) in base is open: any keys; a layer that sets it replaces it as a whole, while
``--set a.b.key=value`` changes one key of it (``=null`` removes the key). A ``null`` default
accepts any value. The column dictionary
is validated by :mod:`prospects.core.dictionary`; a layer may take it from another use case with
``dataset.columns_from: <use case>`` (resolved as the layer is applied, see :func:`_columns_from`).
"""

from __future__ import annotations

import copy
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from prospects.core.dictionary import ColumnDictionary
from prospects.core.errors import ConfigError

ENVIRONMENTS = ("local", "cluster")
MULTILINE = ("auto", "always", "never")




def default_conf_dir() -> Path:
    """Where the YAML files are: $PROSPECTS_CONF_DIR, else the repository's conf/, else ./conf,
    else the working directory itself (where spark-submit's --files puts them in cluster mode)."""
    env = os.environ.get("PROSPECTS_CONF_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    for candidate in (here.parent.parent / "conf", Path.cwd() / "conf", Path.cwd()):
        if (candidate / "base.yml").is_file():
            return candidate
    raise ConfigError(
        "no conf/ directory found: set PROSPECTS_CONF_DIR or pass --conf-dir "
        f"(looked beside {here} and in {Path.cwd()})"
    )


def _type_name(value: Any) -> str:
    return {dict: "mapping", list: "list", str: "string", bool: "boolean", int: "int",
            float: "float"}.get(type(value), type(value).__name__)


def _compatible(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float) and isinstance(value, int):
        return True
    return isinstance(value, type(default))


def _merge(schema: Any, base: dict, overlay: dict, source: str, prefix: str = "") -> dict:
    """Merge ``overlay`` onto ``base`` after checking it against ``schema`` (base.yml)."""
    if not isinstance(overlay, dict):
        raise ConfigError(f"{source}: {prefix or 'top level'} must be a mapping, got {_type_name(overlay)}")
    out = dict(base)
    open_mapping = isinstance(schema, dict) and not schema
    for key, value in overlay.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if not open_mapping and (not isinstance(schema, dict) or key not in schema):
            raise ConfigError(f"{source}: unknown key '{path}'")
        default = None if open_mapping else schema[key]
        if not _compatible(default, value):
            raise ConfigError(
                f"{source}: key '{path}' must be a {_type_name(default)}, got "
                f"{_type_name(value)} ({value!r})"
            )
        if isinstance(default, dict) and default and isinstance(value, dict):
            out[key] = _merge(default, base.get(key) or {}, value, source, path)
        elif isinstance(default, dict) and isinstance(value, dict):
            # open mapping: replaced as a whole (keys set to null dropped)
            out[key] = {k: copy.deepcopy(v) for k, v in value.items() if v is not None}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {_type_name(data)}")
    return data


def _columns_from(layer: dict, source: str, conf_dir: Path) -> dict:
    """The layer with ``dataset.columns_from: <use case>`` resolved to that use case's columns.

    ``conf/<use case>.yml`` must exist and set ``dataset.columns`` itself (no chains). A layer
    that sets both keys is an error; a layer that sets ``columns`` alone clears an earlier
    ``columns_from``, so that the merged value always says where the columns came from.

    Raises:
        ConfigError: naming ``source`` (the layer), the key and the use case file.
    """
    dataset = layer.get("dataset") if isinstance(layer, dict) else None
    if not isinstance(dataset, dict) or not ({"columns", "columns_from"} & set(dataset)):
        return layer
    name = dataset.get("columns_from")
    if not name:
        if dataset.get("columns") is not None and "columns_from" not in dataset:
            return {**layer, "dataset": {**dataset, "columns_from": ""}}
        return layer
    if not isinstance(name, str):
        return layer  # the merge names the wrong type
    if dataset.get("columns"):
        raise ConfigError(f"{source}: dataset.columns and dataset.columns_from ('{name}') are both set: "
                          "keep one")
    path = conf_dir / f"{name}.yml"
    if "/" in name or "\\" in name or not path.is_file():
        known = sorted(p.stem for p in conf_dir.glob("*.yml") if p.stem not in ("base", *ENVIRONMENTS))
        raise ConfigError(f"{source}: dataset.columns_from '{name}': {path} not found "
                          f"(use cases in {conf_dir}: {', '.join(known)})")
    other = _read_yaml(path).get("dataset")
    columns = other.get("columns") if isinstance(other, dict) else None
    if not columns or not isinstance(columns, list):
        chained = isinstance(other, dict) and other.get("columns_from")
        hint = f" (it takes them from '{chained}' itself: name that one)" if chained else ""
        raise ConfigError(f"{source}: dataset.columns_from '{name}': {path} has no dataset.columns{hint}")
    return {**layer, "dataset": {**dataset, "columns": copy.deepcopy(columns)}}


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` (value read as a YAML scalar or flow collection)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML: {exc}") from exc
    return key.strip().split("."), value


def _open_patch(schema: dict, data: dict, parts: list[str], value: Any) -> tuple[list[str], Any]:
    """For ``--set`` into an open mapping (a.b.key=v), the whole mapping with that key changed."""
    node_schema: Any = schema
    node_data: Any = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node_schema, dict) or part not in node_schema:
            break
        node_schema, node_data = node_schema[part], (node_data or {}).get(part)
        if isinstance(node_schema, dict) and not node_schema:
            # the rest of the dotted key is ONE key of the open mapping (spark.conf.spark.sql.x)
            patched = copy.deepcopy(node_data or {})
            key = ".".join(parts[i + 1:])
            if value is None:
                patched.pop(key, None)
            else:
                patched[key] = value
            return parts[: i + 1], patched
    return parts, value


def _nest(parts: list[str], value: Any) -> dict:
    out: Any = value
    for part in reversed(parts):
        out = {part: out}
    return out


@dataclass(frozen=True)
class Config:
    """The merged configuration of one run.

    Attributes:
        data: merged mapping (read it with :meth:`get` or item access).
        sources: files and overrides merged, in order.
        env: environment name (local or cluster).
        use_case: use-case name.
        conf_dir: directory the files came from.
    """

    data: dict
    sources: tuple[str, ...]
    env: str
    use_case: str
    conf_dir: Path
    columns: ColumnDictionary = field(repr=False, default=None)  # type: ignore[assignment]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, dotted: str, default: Any = None) -> Any:
        """Value at ``a.b.c``, or ``default`` when a part is missing."""
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    # -- derived values used by every job -------------------------------------------------
    @property
    def run_date(self) -> str:
        """Run date, YYYY-MM-DD: conf run.date, else the UTC date when the configuration was loaded
        (fixed then, so a run that crosses midnight keeps one date)."""
        return str(self.get("run.date"))

    @property
    def run_id(self) -> str:
        """Run id carried by every output (conf run.id, else the run date)."""
        return str(self.get("run.id") or self.run_date)

    def path(self, key: str) -> str:
        """Absolute path or URI of ``paths.<key>`` (relative paths are taken from the cwd).

        ``models`` and ``reports`` default to folders of the lakehouse, so that moving the
        lakehouse (e.g. to s3a://) moves them too.
        """
        value = self.data["paths"].get(key)
        if value is None and key in ("models", "reports"):
            return join_path(self.path("lakehouse"), key)
        if value is None:
            raise ConfigError(f"paths.{key} is not set")
        return _resolve(value)

    def table(self, key: str) -> str:
        """Location of Delta table ``tables.<key>`` under paths.lakehouse."""
        rel = self.data["tables"].get(key)
        if rel is None:
            raise ConfigError(f"unknown table '{key}' (tables: {sorted(self.data['tables'])})")
        return join_path(self.path("lakehouse"), rel)


def _resolve(path: str) -> str:
    if "://" in path or path.startswith("/"):
        return path
    return str(Path(path).absolute())


def join_path(root: str, *parts: str) -> str:
    """Join path parts for local paths and URIs (s3a://, abfss://, hdfs://) alike."""
    out = root.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def raw_name(name: str, fmt: str) -> str:
    """File name in format ``fmt``: as configured for CSV, without its extension for Parquet."""
    return name if fmt == "csv" else name.rsplit(".", 1)[0]


def use_case_file(use_case: str, conf_dir: Path) -> Path:
    """The YAML of a use case: ``conf/<name>.yml``, or a path to a ``.yml`` file anywhere."""
    if use_case.endswith((".yml", ".yaml")):
        return Path(use_case)
    return conf_dir / f"{use_case}.yml"


def load_config(
    use_case: str = "fiveg",
    env: str = "local",
    overrides: list[str] | tuple[str, ...] = (),
    conf_dir: str | Path | None = None,
    extra: dict | None = None,
) -> Config:
    """Load and validate the layered configuration.

    Args:
        use_case: name of ``conf/<use_case>.yml``, or the path of a use case's YAML file elsewhere
            (its name is then the file's stem).
        env: ``local`` or ``cluster`` (``conf/<env>.yml``).
        overrides: ``key=value`` strings, applied last.
        conf_dir: directory holding the YAML files (default: :func:`default_conf_dir`).
        extra: a mapping applied after the files and before ``overrides`` (used by tests).

    Raises:
        ConfigError: naming the file (or ``--set``) and the key at fault.
        DictionaryError: naming the column record at fault.
    """
    conf_dir = Path(conf_dir) if conf_dir else default_conf_dir()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"unknown environment '{env}': expected one of {', '.join(ENVIRONMENTS)}")
    base_path = conf_dir / "base.yml"
    if not base_path.is_file():
        raise ConfigError(f"{base_path}: base configuration not found")
    schema = _read_yaml(base_path)
    data = copy.deepcopy(schema)
    sources = [str(base_path)]
    for path in (conf_dir / f"{env}.yml", use_case_file(use_case, conf_dir)):
        if not path.is_file():
            known = sorted(p.stem for p in conf_dir.glob("*.yml") if p.stem not in ("base", *ENVIRONMENTS))
            raise ConfigError(f"{path}: not found (use cases in {conf_dir}: {', '.join(known)}; "
                              "or give the path of a .yml file)")
        data = _merge(schema, data, _columns_from(_read_yaml(path), str(path), conf_dir), str(path))
        sources.append(str(path))
    if extra:
        data = _merge(schema, data, _columns_from(extra, "extra settings", conf_dir), "extra settings")
        sources.append("extra settings")
    for text in overrides:
        parts, value = _open_patch(schema, data, *parse_override(text))
        layer = _columns_from(_nest(parts, value), f"--set {text}", conf_dir)
        data = _merge(schema, data, layer, f"--set {text}")
        sources.append(f"--set {text}")
    source = " + ".join(sources)
    _check_settings(data, source)
    columns = ColumnDictionary.from_config(data["dataset"], source=source)
    if columns:
        check_references(data, columns, source)
    data["run"]["date"] = data["run"]["date"] or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    return Config(data=data, sources=tuple(sources), env=env, use_case=use_case_file(use_case, conf_dir).stem,
                  conf_dir=conf_dir, columns=columns)


def _check_settings(data: dict, source: str) -> None:
    """Values whose type base.yml cannot express: a known text encoding, one-character CSV symbols."""
    ds = data["dataset"]
    try:
        ascii_compatible = "\n,".encode(ds["encoding"]) == b"\n,"
    except LookupError:
        raise ConfigError(f"{source}: dataset.encoding '{ds['encoding']}' is not a known text encoding "
                          "(e.g. utf-8, gbk, gb18030, big5, iso-8859-1)") from None
    if not ascii_compatible:
        raise ConfigError(f"{source}: dataset.encoding '{ds['encoding']}' is not ASCII-compatible (UTF-16/32): "
                          "convert the files to UTF-8 (or GB18030) first")
    for key in ("delimiter", "quote"):
        if not isinstance(ds[key], str) or len(ds[key]) != 1:
            raise ConfigError(f"{source}: dataset.{key} must be one character, got {ds[key]!r}")
    if ds["multiline"] not in MULTILINE:
        raise ConfigError(f"{source}: dataset.multiline must be one of {list(MULTILINE)}, got {ds['multiline']!r}")
    if data["spark"]["s3a_jars"] not in ("auto", "always", "never"):
        raise ConfigError(f"{source}: spark.s3a_jars must be auto, always or never, got {data['spark']['s3a_jars']!r}")
    if ds["format"] not in ("csv", "parquet"):
        raise ConfigError(f"{source}: dataset.format must be csv or parquet, got {ds['format']!r}")


def check_references(data: dict, columns: ColumnDictionary, source: str) -> None:
    """Settings that name columns name table columns of the dictionary (not raw header codes).

    Raises:
        ConfigError: naming the key and the unknown column, with the code's table column when the
            setting used a raw code.
    """
    known = set(columns.table_columns)
    refs: list[tuple[str, str]] = [("features.exclude", c) for c in data["features"]["exclude"] or []]
    for group, cols in (data["features"]["monthly_groups"] or {}).items():
        refs += [(f"features.monthly_groups.{group}", c) for c in cols or []]
    for name, spec in (data["score"]["segments"] or {}).items():
        if isinstance(spec, dict) and spec.get("column") is not None:
            refs.append((f"score.segments.{name}.column", spec["column"]))
    refs += [("churn.segments.features", c) for c in data["churn"]["segments"]["features"] or []]
    for key, col in refs:
        if col in known:
            continue
        hint = (f": the tables name it '{columns.by_code[col].column}'" if col in columns.by_code
                else f" (columns: {', '.join(sorted(known))})")
        raise ConfigError(f"{source}: {key}: '{col}' is not a column of the dictionary{hint}")
