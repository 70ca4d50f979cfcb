"""Feature stages: the study's cleaning (SPEC 1.3) as Spark ML stages, and the pipeline builder.

Every learned step (imputation values, category encodings, dropped correlated columns, scaling
bounds) is a Spark ML stage fitted on the training split only and saved inside the model's
``PipelineModel``, so that scoring applies exactly what training learned.

Custom stages follow pyspark.ml's own pattern (a Params mixin, ``@keyword_only`` constructor with
no required argument); a fitted model keeps its learned state in Params (lists, or JSON strings for
mappings), which :class:`prospects.ml.persistence.FileParams` saves as pyspark.ml's own metadata
file, without a Spark job per stage. Spark's built-ins are used where they fit: ``StringIndexer``
(text categories, ``handleInvalid="keep"``: an unseen value gets its own index instead of
failing), ``VectorAssembler``, ``VectorSlicer`` and ``MinMaxScaler``. Custom stages cover what Spark lacks:

* :class:`MonthlyMeans` - replaces each three-month group of columns by its mean;
* :class:`RuleImputer` - per-column rules from the column dictionary (mode for categories, text
  included; median or mean for numbers; constant 0 for "absent means none" columns such as
  broadband bandwidth and 5G data), learned in one aggregation pass;
* :class:`DropSparseRows` - optionally drops training users missing more than K columns;
* :class:`CorrelationFilter` - learns on the training data which column of each highly
  correlated pair to drop (the shared rule of :mod:`prospects.profile.correlation`).

Pipeline (:func:`build_feature_pipeline`), input a bronze-shaped frame (raw codes + id, label
optional), output the same frame plus ``features`` (vector, min-max scaled):

    DropSparseRows? -> MonthlyMeans? -> RuleImputer -> StringIndexer? -> VectorAssembler
        -> CorrelationFilter? -> MinMaxScaler
"""

from __future__ import annotations

import json
import logging
from typing import Any

from pyspark import StorageLevel, keyword_only
from pyspark.ml import Estimator, Model, Pipeline, PipelineModel, Transformer
from pyspark.ml.feature import MinMaxScaler, StringIndexer, VectorAssembler, VectorSlicer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasInputCols, HasOutputCol
from pyspark.ml.stat import Correlation
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from prospects.core.config import Config
from prospects.core.dictionary import ColumnDictionary
from prospects.ml.persistence import FileParams
from prospects.profile.correlation import choose_drops, high_pairs, mean_abs_correlation

log = logging.getLogger(__name__)

FEATURES_COL = "features"
RAW_FEATURES_COL = "_raw_features"
KEPT_FEATURES_COL = "_kept_features"
INDEX_SUFFIX = "_idx"
NUMERIC_RULES = ("median", "mean")
RULES = ("mode", "median", "mean", "zero", "none")


def _is_float(dtype: T.DataType) -> bool:
    return isinstance(dtype, (T.DoubleType, T.FloatType))


def _missing(df: DataFrame, col: str) -> Column:
    """True where ``col`` is null (or NaN for floating point columns)."""
    c = F.col(col)
    return (c.isNull() | F.isnan(c)) if _is_float(df.schema[col].dataType) else c.isNull()


# ---------------------------------------------------------------------------------------------
# Three-month means
# ---------------------------------------------------------------------------------------------
class _MonthlyMeansParams(Params):
    groups = Param(Params._dummy(), "groups",
                   "JSON mapping: new column -> list of input columns whose mean it holds",
                   typeConverter=TypeConverters.toString)
    dropInputs = Param(Params._dummy(), "dropInputs", "drop the grouped input columns",
                       typeConverter=TypeConverters.toBoolean)

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._setDefault(groups="{}", dropInputs=True)

    def getGroups(self) -> dict[str, list[str]]:
        return json.loads(self.getOrDefault(self.groups))

    def getDropInputs(self) -> bool:
        return self.getOrDefault(self.dropInputs)


class MonthlyMeans(Transformer, _MonthlyMeansParams, FileParams):
    """Replace each group of monthly columns by the mean of its non-missing values.

    Input columns: every column named in ``groups``. Output: one double column per group (null
    when every month is missing: the imputer fills it); the inputs are dropped when
    ``dropInputs``. Nothing is learned.
    """

    @keyword_only
    def __init__(self, *, groups: str | dict | None = None, dropInputs: bool | None = None):
        super().__init__()
        kwargs = self._input_kwargs
        self.setParams(**kwargs)

    @keyword_only
    def setParams(self, *, groups: str | dict | None = None, dropInputs: bool | None = None):
        kwargs = self._input_kwargs
        if isinstance(kwargs.get("groups"), dict):
            kwargs["groups"] = json.dumps(kwargs["groups"], sort_keys=True)
        return self._set(**kwargs)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        groups = self.getGroups()
        new_cols = {}
        for name, cols in groups.items():
            missing = [c for c in cols if c not in dataset.columns]
            if missing:
                raise ValueError(f"MonthlyMeans: group '{name}' needs columns {missing} absent from the input")
            present = [F.when(~_missing(dataset, c), F.col(c).cast("double")) for c in cols]
            total = sum((F.coalesce(p, F.lit(0.0)) for p in present), F.lit(0.0))
            count = sum((p.isNotNull().cast("int") for p in present), F.lit(0))
            new_cols[name] = F.when(count > 0, total / count)
        out = dataset.withColumns(new_cols) if new_cols else dataset
        if self.getDropInputs():
            out = out.drop(*[c for cols in groups.values() for c in cols if c not in groups])
        return out


# ---------------------------------------------------------------------------------------------
# Imputation by rule
# ---------------------------------------------------------------------------------------------
class _RuleImputerParams(Params):
    rules = Param(Params._dummy(), "rules",
                  "JSON mapping: column -> rule (mode | median | mean | zero | none)",
                  typeConverter=TypeConverters.toString)

    sampleRows = Param(Params._dummy(), "sampleRows",
                       "medians from a random sample of about this many rows (0: every row); modes and "
                       "means always use every row", typeConverter=TypeConverters.toInt)
    seed = Param(Params._dummy(), "seed", "seed of the median sample", typeConverter=TypeConverters.toInt)

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._setDefault(rules="{}", sampleRows=0, seed=17)

    def getRules(self) -> dict[str, str]:
        return json.loads(self.getOrDefault(self.rules))


class RuleImputer(Estimator, _RuleImputerParams, FileParams):
    """Learn one fill value per column by its rule, in one aggregation pass over the data.

    Rules: ``mode`` (most frequent value; text columns too), ``median`` (approximate, relative
    error 1e-4), ``mean``, ``zero`` (constant 0: "missing means none"), ``none`` (left as is).
    NaN counts as missing in floating point columns. A column missing everywhere is filled with 0
    (or "missing" for text) and logged.

    With ``sampleRows`` > 0 and more rows than that, the medians come from a seeded Bernoulli sample
    of about ``sampleRows`` rows (one count first): ``percentile_approx`` is the costly part of the
    pass at tens of millions of users, and a median from 1M random rows is within about 0.05% of the
    rows' ranks of the exact one (sampling error sqrt(p (1 - p) / n)).
    """

    @keyword_only
    def __init__(self, *, rules: str | dict | None = None, sampleRows: int | None = None,
                 seed: int | None = None):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, rules: str | dict | None = None, sampleRows: int | None = None,
                  seed: int | None = None):
        kwargs = self._input_kwargs
        if isinstance(kwargs.get("rules"), dict):
            kwargs["rules"] = json.dumps(kwargs["rules"], sort_keys=True)
        return self._set(**kwargs)

    def _fit(self, dataset: DataFrame) -> "RuleImputerModel":
        rules = self.getRules()
        sample_rows = self.getOrDefault(self.sampleRows)
        in_sample = None
        if sample_rows > 0 and "median" in rules.values():
            n = dataset.count()
            if n > sample_rows:  # drawn in a projection (an aggregate's input must be deterministic)
                dataset = dataset.withColumn(
                    "__in_sample", F.rand(self.getOrDefault(self.seed)) < F.lit(sample_rows / n))
                in_sample = F.col("__in_sample")
        aggs = []
        for col, rule in rules.items():
            if rule not in RULES:
                raise ValueError(f"RuleImputer: column '{col}' has unknown rule {rule!r} (expected one of {RULES})")
            if col not in dataset.columns:
                raise ValueError(f"RuleImputer: column '{col}' is absent from the input")
            is_text = isinstance(dataset.schema[col].dataType, T.StringType)
            if is_text and rule in NUMERIC_RULES:
                raise ValueError(f"RuleImputer: text column '{col}' cannot be imputed by {rule}")
            value = F.when(~_missing(dataset, col), F.col(col))
            if rule == "mode":
                aggs.append(F.mode(value, True).alias(col))
            elif rule == "median":
                x = value.cast("double") if in_sample is None else F.when(in_sample, value.cast("double"))
                aggs.append(F.percentile_approx(x, 0.5, 10000).alias(col))
            elif rule == "mean":
                aggs.append(F.avg(value.cast("double")).alias(col))
        learned = dataset.agg(*aggs).first().asDict() if aggs else {}
        surrogates: dict[str, Any] = {}
        for col, rule in rules.items():
            is_text = isinstance(dataset.schema[col].dataType, T.StringType)
            if rule == "none":
                continue
            value = 0 if rule == "zero" else learned.get(col)
            if value is None:
                log.warning("RuleImputer: column '%s' is missing in every training row; filled with 0", col)
                value = 0
            surrogates[col] = str(value) if is_text and rule == "zero" else value
        log.info("imputation values learned for %d columns", len(surrogates))
        return self._copyValues(RuleImputerModel(surrogates=json.dumps(surrogates, sort_keys=True)))


class RuleImputerModel(Model, _RuleImputerParams, FileParams):
    """Fill missing values with the learned ``surrogates`` (JSON: column -> value), cast to each
    column's type. Input and output columns: those of ``surrogates``, replaced in place."""

    surrogates = Param(Params._dummy(), "surrogates", "JSON mapping: column -> learned fill value",
                       typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, surrogates: str | None = None):
        super().__init__()
        self._setDefault(surrogates="{}")
        self._set(**self._input_kwargs)

    def getSurrogates(self) -> dict[str, Any]:
        return json.loads(self.getOrDefault(self.surrogates))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        fills = {}
        for col, value in self.getSurrogates().items():
            if col not in dataset.columns:
                raise ValueError(f"RuleImputerModel: column '{col}' is absent from the input")
            dtype = dataset.schema[col].dataType
            fills[col] = F.when(_missing(dataset, col), F.lit(value).cast(dtype)).otherwise(F.col(col))
        return dataset.withColumns(fills) if fills else dataset


# ---------------------------------------------------------------------------------------------
# Dropping users missing too many columns
# ---------------------------------------------------------------------------------------------
class _DropSparseRowsParams(HasInputCols):
    maxMissing = Param(Params._dummy(), "maxMissing",
                       "drop rows missing more than this many of inputCols (negative: keep every row)",
                       typeConverter=TypeConverters.toInt)
    onlyWithCol = Param(Params._dummy(), "onlyWithCol",
                        "apply only when this column is in the input (the label: training and "
                        "evaluation), so that scoring keeps every user; empty: always apply",
                        typeConverter=TypeConverters.toString)

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._setDefault(maxMissing=-1, onlyWithCol="")


class DropSparseRows(Transformer, _DropSparseRowsParams, FileParams):
    """Drop the rows with more than ``maxMissing`` missing values among ``inputCols``.

    With ``onlyWithCol`` set to the label column, the filter applies to labelled data only:
    a scored user is never dropped (their missing values are imputed instead).
    """

    @keyword_only
    def __init__(self, *, inputCols: list[str] | None = None, maxMissing: int | None = None,
                 onlyWithCol: str | None = None):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, inputCols: list[str] | None = None, maxMissing: int | None = None,
                  onlyWithCol: str | None = None):
        return self._set(**self._input_kwargs)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        k = self.getOrDefault(self.maxMissing)
        only = self.getOrDefault(self.onlyWithCol)
        if k < 0 or (only and only not in dataset.columns):
            return dataset
        cols = [c for c in self.getInputCols() if c in dataset.columns]
        n_missing = sum((_missing(dataset, c).cast("int") for c in cols), F.lit(0))
        return dataset.where(n_missing <= k)


# ---------------------------------------------------------------------------------------------
# Multicollinearity removal
# ---------------------------------------------------------------------------------------------
class _CorrelationFilterParams(HasInputCol, HasOutputCol):
    threshold = Param(Params._dummy(), "threshold", "drop one column of each pair with |r| above this",
                      typeConverter=TypeConverters.toFloat)
    method = Param(Params._dummy(), "method", "correlation: pearson | spearman",
                   typeConverter=TypeConverters.toString)
    inputNames = Param(Params._dummy(), "inputNames", "names of the input vector's slots, in order",
                       typeConverter=TypeConverters.toListString)

    def __init__(self, *args: Any):
        super().__init__(*args)
        self._setDefault(threshold=0.9, method="pearson", inputNames=[])


class CorrelationFilter(Estimator, _CorrelationFilterParams, FileParams):
    """Learn which slots of the input vector to drop so no kept pair has |r| > ``threshold``.

    The correlation matrix is computed in Spark (``pyspark.ml.stat.Correlation``); only the
    d x d matrix reaches the driver. A constant column has no correlation (taken as 0).
    Input: ``inputCol`` (vector, slots named by ``inputNames``); output: ``outputCol`` (vector of
    the kept slots).
    """

    @keyword_only
    def __init__(self, *, inputCol: str | None = None, outputCol: str | None = None,
                 threshold: float | None = None, method: str | None = None,
                 inputNames: list[str] | None = None):
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, inputCol: str | None = None, outputCol: str | None = None,
                  threshold: float | None = None, method: str | None = None,
                  inputNames: list[str] | None = None):
        return self._set(**self._input_kwargs)

    def _fit(self, dataset: DataFrame) -> "CorrelationFilterModel":
        names = list(self.getOrDefault(self.inputNames))
        threshold = self.getOrDefault(self.threshold)
        matrix = Correlation.corr(dataset, self.getInputCol(), self.getOrDefault(self.method)).first()[0]
        arr = matrix.toArray()
        d = arr.shape[0]
        if not names:
            names = [f"f{i}" for i in range(d)]
        if len(names) != d:
            raise ValueError(f"CorrelationFilter: {len(names)} inputNames for a vector of size {d}")
        matrix_rows = [[float(arr[i][j]) for j in range(d)] for i in range(d)]
        pairs = high_pairs(names, matrix_rows, threshold)
        decisions = choose_drops(pairs, mean_abs_correlation(names, matrix_rows), names)
        dropped = {dec.drop for dec in decisions if dec.drop}
        kept = [i for i, n in enumerate(names) if n not in dropped]
        log.info("correlation filter (|r| > %s): %d pairs, dropped %s", threshold, len(pairs),
                 [n for n in names if n in dropped])
        model = CorrelationFilterModel(
            keptIndices=kept, droppedNames=[n for n in names if n in dropped],
            pairs=json.dumps([[dec.col_a, dec.col_b, round(dec.r, 6), dec.drop, dec.reason]
                              for dec in decisions]))
        return self._copyValues(model)


class CorrelationFilterModel(Model, _CorrelationFilterParams, FileParams):
    """Keep the learned slots (``keptIndices``) of ``inputCol`` in ``outputCol`` (Spark's
    ``VectorSlicer``: no Python on the rows). ``droppedNames`` and ``pairs`` (JSON list of
    ``[a, b, r, drop, reason]`` per pair above the threshold) document what was learned."""

    keptIndices = Param(Params._dummy(), "keptIndices", "input slots kept", typeConverter=TypeConverters.toListInt)
    droppedNames = Param(Params._dummy(), "droppedNames", "names of the dropped slots",
                         typeConverter=TypeConverters.toListString)
    pairs = Param(Params._dummy(), "pairs", "JSON list of [a, b, r, drop, reason] per pair above the threshold",
                  typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, keptIndices: list[int] | None = None, droppedNames: list[str] | None = None,
                 pairs: str | None = None):
        super().__init__()
        self._setDefault(keptIndices=[], droppedNames=[], pairs="[]")
        self._set(**self._input_kwargs)

    def getKeptNames(self) -> list[str]:
        names = self.getOrDefault(self.inputNames)
        return [names[i] for i in self.getOrDefault(self.keptIndices)] if names else []

    def getDroppedNames(self) -> list[str]:
        return list(self.getOrDefault(self.droppedNames))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        slicer = VectorSlicer(inputCol=self.getInputCol(), outputCol=self.getOutputCol(),
                              indices=list(self.getOrDefault(self.keptIndices)))
        return slicer.transform(dataset)


# ---------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------
def feature_codes(cfg: Config) -> list[str]:
    """Feature columns of the use case: dictionary role ``feature`` minus ``features.exclude``."""
    exclude = set(cfg.get("features.exclude") or [])
    unknown = exclude - {s.column for s in cfg.columns.features}
    if unknown:
        raise ValueError(f"features.exclude names columns that are not features of the dictionary: {sorted(unknown)}")
    return [s.column for s in cfg.columns.features if s.column not in exclude]


def monthly_groups(cfg: Config) -> dict[str, list[str]]:
    """``features.monthly_groups`` checked against the feature columns."""
    groups = {str(k): [str(c) for c in v] for k, v in (cfg.get("features.monthly_groups") or {}).items()}
    codes = set(feature_codes(cfg))
    seen: set[str] = set()
    for name, cols in groups.items():
        bad = [c for c in cols if c not in codes]
        if bad:
            raise ValueError(f"features.monthly_groups.{name}: {bad} are not (kept) feature columns")
        if name in cfg.columns and name not in cols:
            raise ValueError(f"features.monthly_groups.{name}: the name clashes with a dictionary column")
        if seen & set(cols):
            raise ValueError(f"features.monthly_groups.{name}: a column belongs to two groups")
        seen |= set(cols)
    return groups


def feature_layout(cfg: Config) -> list[tuple[str, str, str]]:
    """The columns after the three-month means, in dictionary order.

    Returns:
        ``(column, type, impute rule)`` per column; a group's mean takes its first member's place,
        type ``float`` and that member's rule.
    """
    columns: ColumnDictionary = cfg.columns
    groups = monthly_groups(cfg)
    first = {cols[0]: name for name, cols in groups.items() if cols}
    grouped = {c for cols in groups.values() for c in cols}
    out = []
    for code in feature_codes(cfg):
        spec = columns[code]
        if code in first:
            out.append((first[code], "float", spec.impute if spec.impute in ("median", "mean", "zero") else "median"))
        elif code not in grouped:
            out.append((code, spec.type, spec.impute))
    return out


def build_feature_pipeline(cfg: Config) -> Pipeline:
    """The unfitted feature pipeline of the use case (see the module docstring).

    Conf: ``features.exclude``, ``features.monthly_groups``, ``features.max_missing``,
    ``features.correlation_threshold`` (>= 1 disables the filter), ``features.correlation_method``.
    Input: a bronze-shaped frame; output adds ``features`` (vector).
    """
    codes = feature_codes(cfg)
    groups = monthly_groups(cfg)
    layout = feature_layout(cfg)
    label = cfg.columns.label_column
    stages: list = []
    k = int(cfg.get("features.max_missing"))
    if k >= 0:
        stages.append(DropSparseRows(inputCols=codes, maxMissing=k, onlyWithCol=label))
    if groups:
        stages.append(MonthlyMeans(groups=groups, dropInputs=True))
    stages.append(RuleImputer(rules={c: rule for c, _, rule in layout},
                              sampleRows=int(cfg.get("features.imputer_sample_rows"))))
    text = [c for c, t, _ in layout if t == "string"]
    if text:
        stages.append(StringIndexer(inputCols=text, outputCols=[c + INDEX_SUFFIX for c in text],
                                    handleInvalid="keep", stringOrderType="frequencyDesc"))
    slots = [c + INDEX_SUFFIX if t == "string" else c for c, t, _ in layout]
    stages.append(VectorAssembler(inputCols=slots, outputCol=RAW_FEATURES_COL, handleInvalid="keep"))
    threshold = float(cfg.get("features.correlation_threshold"))
    scaled_input = RAW_FEATURES_COL
    if threshold < 1.0:
        stages.append(CorrelationFilter(inputCol=RAW_FEATURES_COL, outputCol=KEPT_FEATURES_COL,
                                        threshold=threshold, method=cfg.get("features.correlation_method"),
                                        inputNames=[c for c, _, _ in layout]))
        scaled_input = KEPT_FEATURES_COL
    stages.append(MinMaxScaler(inputCol=scaled_input, outputCol=FEATURES_COL))
    return Pipeline(stages=stages)


def fit_transform(pipeline: Pipeline, df: DataFrame, fit_rows: Column,
                  keep: list[str]) -> tuple[PipelineModel, DataFrame, DataFrame]:
    """Fit the feature pipeline on the rows ``fit_rows`` of ``df`` and transform every row of ``df``,
    with the row-wise stages computed once.

    ``Pipeline.fit`` re-runs the transforms of all earlier stages for each estimator: the correlation
    filter, the scaler and then the final transform would each re-average, re-impute, re-index and
    re-assemble every user (three extra passes over the wide rows). Here the stages up to the raw
    assembler are fitted first, their output (``keep`` columns + the raw vector) is computed once into
    a cache, and the vector stages (correlation filter, scaler) are fitted on that cache. The returned
    model holds the same fitted stages, in the same order, as ``pipeline.fit`` would give.

    Returns:
        ``(model, transformed, cached)``: ``transformed`` is ``keep`` + ``features`` for every row of
        ``df``, lazy over ``cached`` (the assembled rows); the caller materialises what it needs, then
        calls ``cached.unpersist()``.
    """
    stages = pipeline.getStages()
    cut = next(i for i, s in enumerate(stages)
               if isinstance(s, VectorAssembler) and s.getOutputCol() == RAW_FEATURES_COL) + 1
    head = Pipeline(stages=stages[:cut]).fit(df.where(fit_rows))
    # serialized (PySpark's MEMORY_AND_DISK): a block is accounted in bytes and goes to disk when memory
    # is short, where deserialized blocks can exhaust the Java heap of the default driver at tens of
    # millions of users
    cached = head.transform(df).select(*keep, RAW_FEATURES_COL).persist(StorageLevel.MEMORY_AND_DISK)
    # filled by a job of its own, on every core: else the correlation filter's first job (RowMatrix's
    # first(), one task) would assemble and cache the first partition alone
    cached.count()
    tail = Pipeline(stages=stages[cut:]).fit(cached.where(fit_rows))
    model = PipelineModel(stages=list(head.stages) + list(tail.stages))
    return model, tail.transform(cached).select(*keep, FEATURES_COL), cached


def feature_names(model: PipelineModel) -> list[str]:
    """Names of the slots of ``features`` in a fitted feature pipeline (raw codes or group names).

    Works on the feature PipelineModel or on a full model whose first stages are the features.
    """
    stages = model.stages
    for stage in stages:
        if isinstance(stage, CorrelationFilterModel):
            return stage.getKeptNames()
    for stage in stages:
        if isinstance(stage, VectorAssembler) and stage.getOutputCol() == RAW_FEATURES_COL:
            return [c[: -len(INDEX_SUFFIX)] if c.endswith(INDEX_SUFFIX) else c for c in stage.getInputCols()]
    raise ValueError("no feature assembler in this model")


def dropped_by_correlation(model: PipelineModel) -> list[dict]:
    """What the correlation filter learned: one ``{a, b, r, drop, reason}`` per pair above the
    threshold (``drop`` None when an earlier pair already dropped one of the two)."""
    for stage in model.stages:
        if isinstance(stage, CorrelationFilterModel):
            return [dict(zip(("a", "b", "r", "drop", "reason"), p))
                    for p in json.loads(stage.getOrDefault(stage.pairs))]
    return []


def readable_feature(cfg: Config, name: str) -> str:
    """Readable name of a feature slot: the dictionary name, or ``<group> (3-month mean)``."""
    if name in cfg.columns:
        return cfg.columns.readable(name)
    if name in (cfg.get("features.monthly_groups") or {}):
        return f"{name} (3-month mean)"
    return name


# ---------------------------------------------------------------------------------------------
# Undoing the class weights on the probability (prior correction)
# ---------------------------------------------------------------------------------------------
def positive_probability(df: DataFrame, col: str = "probability") -> Column:
    """The probability of class 1 in ``col`` of ``df``: slot 1 of a Spark ML probability vector, or
    the column itself when it is a number."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT

    if col not in df.columns:
        raise ValueError(f"probability column '{col}' not in {df.columns}")
    if isinstance(df.schema[col].dataType, VectorUDT):
        return vector_to_array(F.col(col))[1]
    return F.col(col).cast("double")


class PriorCorrection(Transformer, FileParams):
    """Map a probability learnt with class weights back to the population's scale.

    A model fitted with weight ``w1`` on positives and ``w0`` on negatives estimates
    ``q = w1 p / (w1 p + w0 (1 - p))`` where ``p`` is the probability in the population (exactly for
    leaf frequencies and for the intercept of a logistic regression: King and Zeng's prior
    correction). This stage replaces the ``probability`` vector ``[1 - q, q]`` by ``[1 - p, p]``,
    ``p = w0 q / (w0 q + w1 (1 - q))``: the order of users (AUC, ranks, deciles) is unchanged, but a
    sum of probabilities is again an expected number of switchers and a cut-off such as 0.5 means
    what it says. Placed last in a saved model, after the classifier.
    """

    weightPositive = Param(Params._dummy(), "weightPositive", "weight of the positive class in training",
                           typeConverter=TypeConverters.toFloat)
    weightNegative = Param(Params._dummy(), "weightNegative", "weight of the negative class in training",
                           typeConverter=TypeConverters.toFloat)
    probabilityCol = Param(Params._dummy(), "probabilityCol", "probability vector column, replaced",
                           typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, weightPositive: float = 1.0, weightNegative: float = 1.0,
                 probabilityCol: str = "probability"):
        super().__init__()
        self._setDefault(weightPositive=1.0, weightNegative=1.0, probabilityCol="probability")
        self._set(**self._input_kwargs)

    def corrected(self, q: Column) -> Column:
        """The population-scale probability of a weighted-scale probability ``q`` (a Column)."""
        w1, w0 = self.getOrDefault(self.weightPositive), self.getOrDefault(self.weightNegative)
        return F.lit(w0) * q / (F.lit(w0) * q + F.lit(w1) * (F.lit(1.0) - q))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        from pyspark.ml.functions import array_to_vector

        col = self.getOrDefault(self.probabilityCol)
        p = self.corrected(positive_probability(dataset, col))
        return dataset.withColumn(col, array_to_vector(F.array(F.lit(1.0) - p, p)))


class Decision(Transformer, FileParams):
    """``prediction = 1.0`` when the positive-class probability is above the model's threshold.

    The last stage of every saved model, after the classifier (and the prior correction): the
    threshold chosen at training is part of the model version, and ``prediction`` means
    ``p > threshold`` on the population scale whatever trained the classifier (Spark's classifiers
    or XGBoost, which has no ``thresholds`` parameter).
    """

    threshold = Param(Params._dummy(), "threshold", "decision threshold on the positive-class probability",
                      typeConverter=TypeConverters.toFloat)
    probabilityCol = Param(Params._dummy(), "probabilityCol", "probability column (vector or number)",
                           typeConverter=TypeConverters.toString)
    predictionCol = Param(Params._dummy(), "predictionCol", "prediction column, replaced",
                          typeConverter=TypeConverters.toString)

    @keyword_only
    def __init__(self, *, threshold: float = 0.5, probabilityCol: str = "probability",
                 predictionCol: str = "prediction"):
        super().__init__()
        self._setDefault(threshold=0.5, probabilityCol="probability", predictionCol="prediction")
        self._set(**self._input_kwargs)

    def getThreshold(self) -> float:
        return float(self.getOrDefault(self.threshold))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        p = positive_probability(dataset, self.getOrDefault(self.probabilityCol))
        return dataset.withColumn(self.getOrDefault(self.predictionCol),
                                  (p > F.lit(self.getThreshold())).cast("double"))
