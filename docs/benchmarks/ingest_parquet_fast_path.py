# Proposed for lib/prospects/ingest.py (owner: the lead). Not applied. Drop-in next to parse_rows;
# in _ingest, for Parquet: rows = parse_parquet_rows(spark, cfg, s, files) instead of
# read_parquet_rows + parse_rows. Measured effect: docs/benchmarks/NOTES.md.

def parse_parquet_rows(spark: SparkSession, cfg: Config, source: Source, files: list[str]) -> DataFrame:
    """Parquet rows typed directly from their columns: the output of :func:`parse_rows`, without text.

    A Parquet file is already typed: a numeric column is cast (an integer-typed dictionary column
    keeps only whole values), a text column holding numbers is parsed (``try_cast``; a value that
    does not parse is ``non_numeric``, as in CSV). No row goes through strings, regular expressions
    or JSON, which is what made the generic path (:func:`read_parquet_rows` + :func:`parse_rows`)
    slow: every value cast to text, cleaned by regex and parsed back, with the whole parse inlined
    again into every filter on ``reason``. ``line`` is a 64-bit hash of the row's values (it only
    serves :func:`mark_duplicates`: exact copies have the same hash); ``raw_line`` is the row as JSON
    (personal data masked), computed only for rejected rows.

    Output columns: source_file, line, raw_line, id (raw text), the dictionary's columns typed (label
    as int 0/1), reason, detail.
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
    numeric_types = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType,
                     T.DecimalType)

    def typed(c: str) -> Column:
        src, raw = df.schema[c].dataType, F.col(f"_raw_{c}")
        if is_label[c]:
            return label_value(raw.cast("string"), cfg.get("dataset.label_values"))
        if specs[c].type == "string":
            return raw.cast("string")
        num = raw.cast("double") if isinstance(src, numeric_types) else F.trim(raw).try_cast("double")
        if specs[c].type == "float":
            return num
        if isinstance(src, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
            return raw.cast("long")
        return F.when(num == F.floor(num), num.cast("long"))

    pii = {s.code for s in cfg.columns.pii}
    shown = [F.lit(MASK).alias(c) if c in pii else F.col(c) for c in names]
    base = df.select(F.col("_metadata.file_path").alias("source_file"),
                     F.xxhash64(*[F.col(c) for c in names]).cast("string").alias("line"),
                     F.col(id_col).cast("string").alias("id"),
                     F.to_json(F.struct(*shown)).alias("_json"),
                     *[F.col(c).alias(f"_raw_{c}") for c in names])
    parsed = base.select("source_file", "line", "id", "_json", *[F.col(f"_raw_{c}") for c in names],
                         *[typed(c).cast(T.IntegerType() if is_label[c] else specs[c].spark_type).alias(c)
                           for c in names])
    numeric = [c for c in names if specs[c].type != "string" and not is_label[c] and specs[c].role != "id"]
    bad_numeric = F.coalesce(*[F.when(F.col(f"_raw_{c}").isNotNull() & F.col(c).isNull(),
                                      F.concat(F.lit(f"{c}: "), F.col(f"_raw_{c}").cast("string")))
                               for c in numeric]) if numeric else F.lit(None).cast("string")
    reason = (F.when(F.col("id").isNull(), F.lit(MISSING_ID))
              .when(F.col(id_col).isNull(), F.lit(BAD_ID))
              .when(bad_numeric.isNotNull(), F.lit(NON_NUMERIC)))
    detail = (F.when(F.col("id").isNull(), F.lit(f"{id_col} is empty"))
              .when(F.col(id_col).isNull(), F.concat(F.lit(f"{id_col} is not a valid {specs[id_col].type}: "),
                                                      F.col("id")))
              .when(bad_numeric.isNotNull(), F.concat(F.lit("not a number in "), bad_numeric)))
    if label_col in names:
        allowed = sorted((cfg.get("dataset.label_values") or {"0": 0, "1": 1}).keys())
        reason = reason.when(F.col(label_col).isNull(), F.lit(BAD_LABEL))
        detail = detail.when(F.col(label_col).isNull(), F.concat(
            F.lit(f"{label_col} must be one of {allowed}, found "),
            F.coalesce(F.col(f"_raw_{label_col}").cast("string"), F.lit("empty"))))
    out = parsed.select("*", reason.alias("reason"), detail.alias("detail"))
    return out.select("source_file", "line", F.when(F.col("reason").isNotNull(), F.col("_json")).alias("raw_line"),
                      "id", *names, "reason", "detail")


