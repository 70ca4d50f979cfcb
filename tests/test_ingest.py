"""Ingest: bronze tables, quarantine reasons, reconciliation, idempotence, personal data."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from prospects.core import runlog, tables
from prospects.core.errors import IngestError, JobError
from prospects.ingest import stage as ingest
from prospects.synthetic import generator

PHONE = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")


@pytest.fixture(scope="module")
def clean_raw(spark, tmp_path_factory):
    """Clean raw files: 80 training users, regions A (20) and B (30)."""
    from prospects.core.config import load_config
    from tests.conftest import tmp_settings

    root = tmp_path_factory.mktemp("raw_small")
    cfg = load_config(overrides=["generator.n_train=80", "generator.regions={A: 20, B: 30}"],
                      extra=tmp_settings(root))
    generator.generate(cfg, spark)
    return root / "raw"


@pytest.fixture(scope="module")
def clean_run(spark, clean_raw):
    """The clean files ingested once (run ``r1``), for the tests that read a clean run and change nothing."""
    from prospects.core.config import load_config
    from tests.conftest import tmp_settings

    cfg = load_config(overrides=["run.id=r1"], extra=tmp_settings(clean_raw.parent))
    return cfg, ingest.run(cfg, spark)


@pytest.fixture
def raw(clean_raw, tmp_path):
    out = tmp_path / "raw"
    shutil.copytree(clean_raw, out)
    return out


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write(path: Path, rows: list[str]) -> None:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def quarantine(spark, cfg):
    return tables.read(spark, cfg.table("quarantine")).where(F.col("run_id") == cfg.run_id)


def test_clean_files_are_ingested_whole(spark, clean_run, clean_raw):
    cfg, summary = clean_run
    assert summary["reconciled"] and summary["rows_quarantined"] == 0
    assert (summary["users"], summary["region_users"], summary["regions"]) == (80, 50, ["A", "B"])
    users = tables.read(spark, cfg.table("bronze_users"))
    assert "product_no" not in users.columns
    schema = dict(users.dtypes)
    assert (schema["user_id"], schema["X1"], schema["X2"], schema["X3"], schema["label"]) == (
        "bigint", "string", "bigint", "double", "int")
    regions = tables.read(spark, cfg.table("bronze_regions"))
    assert {r["region"]: r["n"] for r in regions.groupBy("region").agg(F.count("*").alias("n")).collect()} == {
        "A": 20, "B": 30}
    assert "label" not in regions.columns
    # the raw values survive typing: the first user's line, field by field
    first = lines(clean_raw / "train_set.csv")[1].split(",")
    row = users.where("user_id = 1").first()
    assert row["X1"] == first[2] and row["X2"] == int(first[3]) and row["X5"] == first[6]
    assert row["X6"] == pytest.approx(float(first[7]))
    log = tables.read(spark, cfg.table("run_log")).where("job = 'ingest' AND run_id = 'r1'").first()
    assert (log["rows_read"], log["rows_accepted"], log["rows_quarantined"], log["reconciled"]) == (
        80 + 80 + 50, 210, 0, True)


def test_each_kind_of_bad_row_is_quarantined_with_its_reason(spark, make_cfg, raw):
    train = lines(raw / "train_set.csv")
    header, rows = train[0], train[1:]
    by_id = {int(r.split(",")[0]): r for r in rows}
    fields = by_id[3].split(",")
    bad = [
        ",".join(by_id[1].split(",")[:-1]),                      # 1: a field short
        by_id[2] + ",surplus",                                   # 2: a field too many
        ",".join(fields[:3] + ["forty"] + fields[4:]),           # 3: non-numeric age
        "," + ",".join(by_id[4].split(",")[1:]),                 # (id lost): missing user_id
        "x9," + ",".join(by_id[9].split(",")[1:]),               # (id lost): bad user_id
    ]
    conflicting = by_id[5].replace(",先生,", ",女士,") if ",先生," in by_id[5] else by_id[5].replace(",女士,", ",先生,")
    keep = [r for i, r in by_id.items() if i not in (1, 2, 3, 4, 9)]
    write(raw / "train_set.csv", [header] + bad + keep + [conflicting, by_id[6]])  # 5 conflicts, 6 copied
    labels = lines(raw / "train_label.csv")
    lab = {int(r.split(",")[0]): r for r in labels[1:]}
    lab[7] = "7,2"                     # label outside {0,1}
    del lab[8]                         # user without label
    write(raw / "train_label.csv", [labels[0]] + list(lab.values()) + ["999999,1", lab[10]])  # no user; a copy
    region_a, region_b = lines(raw / "result_predict_A.csv"), lines(raw / "result_predict_B.csv")
    b_first = region_b[1].split(",")
    # B's first user twice (one kept); A's first id on another user in B is no duplicate (keys are per region)
    write(raw / "result_predict_B.csv", region_b + [region_b[1], ",".join([region_a[1].split(",")[0], *b_first[1:]])])

    cfg = make_cfg(overrides=["run.id=bad"])
    summary = ingest.run(cfg, spark)
    q = {(r["source_kind"], r["id"], r["reason"]) for r in quarantine(spark, cfg).collect()}
    expected = {
        ("train", "1", "wrong_field_count"), ("train", "2", "wrong_field_count"), ("train", "3", "non_numeric"),
        ("train", None, "missing_id"), ("train", "x9", "bad_id"),
        ("train", "5", "conflicting_duplicate_id"), ("train", "5", "conflicting_duplicate_id"),
        ("train", "6", "duplicate_row"),
        ("labels", "7", "bad_label"), ("train", "7", "user_without_label"),
        ("train", "8", "user_without_label"), ("labels", "999999", "label_without_user"),
        # labels whose users were rejected for a row-level reason have no user left
        ("labels", "1", "label_without_user"), ("labels", "2", "label_without_user"),
        ("labels", "3", "label_without_user"), ("labels", "4", "label_without_user"),
        ("labels", "5", "label_without_user"), ("labels", "9", "label_without_user"),
        ("labels", "10", "duplicate_row"), ("region", b_first[0], "duplicate_row"),
    }
    assert q == expected
    details = {r["reason"]: r["detail"] for r in quarantine(spark, cfg).collect()}
    assert details["wrong_field_count"] in ("expected 45 fields, found 44", "expected 45 fields, found 46")
    assert details["non_numeric"] == "not a number in X2: forty"
    assert details["bad_label"] == "label must be one of ['0', '1'], found 2"
    users = tables.read(spark, cfg.table("bronze_users"))
    ids = [r[0] for r in users.select("user_id").collect()]
    assert sorted(ids) == sorted(set(range(1, 81)) - {1, 2, 3, 4, 5, 7, 8, 9})  # 6 kept once
    assert summary["reconciled"]
    assert summary["rows_read"] == summary["rows_accepted"] + summary["rows_quarantined"]
    train_file = next(f for f in summary["files"] if f.endswith("train_set.csv"))
    assert summary["files"][train_file] == {"read": 82, "accepted": 72, "quarantined": 10, "skipped_blank": 0,
                                            "skipped_header": 1}
    regions = tables.read(spark, cfg.table("bronze_regions"))
    shared_id = regions.where(F.col("user_id").cast("string") == region_a[1].split(",")[0])
    assert regions.count() == 51 and sorted(r["region"] for r in shared_id.collect()) == ["A", "B"]


def finish_ingest(spark, cfg, like: str) -> None:
    """Run ``cfg.run_id`` of ingest as a finished ingest leaves it, without parsing the files again:
    its bronze users (a copy of run ``like``'s) and then its run log row."""
    users = tables.read(spark, cfg.table("bronze_users")).where(F.col("run_id") == like).drop("run_id")
    tables.write_run(users, cfg, "bronze_users")
    runlog.write(spark, cfg, "ingest", runlog.utc_now(), {"reconciled": True})


def test_rerun_replaces_and_a_new_run_appends(spark, make_cfg, raw):
    cfg = make_cfg(overrides=["run.id=2026-10-01"])
    ingest.run(cfg, spark)
    ingest.run(cfg, spark)
    users = tables.read(spark, cfg.table("bronze_users"))
    assert users.count() == 80
    assert tables.read(spark, cfg.table("bronze_regions")).count() == 50
    log = tables.read(spark, cfg.table("run_log")).collect()
    assert [(r["job"], r["run_id"], r["status"]) for r in log] == [("ingest", "2026-10-01", "ok")] * 2  # one per run
    ingest.run(make_cfg(overrides=["run.id=2026-11-01"]), spark)
    counts = {r["run_id"]: r["n"] for r in tables.read(spark, cfg.table("bronze_users"))
              .groupBy("run_id").agg(F.count("*").alias("n")).collect()}
    assert counts == {"2026-10-01": 80, "2026-11-01": 80}
    reader = make_cfg(overrides=["run.id=2026-12-01"])          # a later stage's run, not in bronze
    latest, run = runlog.read_latest(spark, reader, cfg.table("bronze_users"), "ingest")
    assert run == "2026-11-01" and latest.count() == 80
    # "latest" is the run that finished last, not the greatest run id: an ad-hoc run is latest
    # only until the next scheduled run finishes
    finish_ingest(spark, make_cfg(overrides=["run.id=backfill-x"]), like="2026-11-01")
    assert runlog.read_latest(spark, reader, cfg.table("bronze_users"), "ingest")[1] == "backfill-x"
    finish_ingest(spark, make_cfg(overrides=["run.id=2026-11-15"]), like="2026-11-01")
    assert runlog.read_latest(spark, reader, cfg.table("bronze_users"), "ingest")[1] == "2026-11-15"
    # the run read by a stage of a given run is that run's, when the table has it
    assert runlog.read_latest(spark, cfg, cfg.table("bronze_users"), "ingest")[1] == "2026-10-01"


def test_personal_data_never_reaches_a_table(spark, make_cfg, raw):
    phones = {r.split(",")[1] for r in lines(raw / "train_set.csv")[1:]}
    train = lines(raw / "train_set.csv")
    write(raw / "train_set.csv", train + [train[1] + ",surplus"])  # a rejected line carrying a phone number
    cfg = make_cfg(overrides=["run.id=pii"])
    ingest.run(cfg, spark)
    for key in ("bronze_users", "bronze_regions", "quarantine", "run_log"):
        df = tables.read(spark, cfg.table(key))
        text_cols = [c for c, t in df.dtypes if t == "string"]
        blob = " ".join(" ".join(str(v) for v in r) for r in df.select(*text_cols).collect())
        assert not PHONE.search(blob), key
        assert not any(p in blob for p in phones), key
    raw_line = quarantine(spark, cfg).first()["raw_line"]
    assert raw_line.split(",")[1] == "***"


def test_hash_mode_keeps_a_salted_hash(spark, make_cfg, raw, monkeypatch):
    monkeypatch.setenv("PROSPECTS_PII_SALT", "pepper")
    cfg = make_cfg(overrides=["run.id=h", "ingest.pii_mode=hash"])
    ingest.run(cfg, spark)
    users = tables.read(spark, cfg.table("bronze_users"))
    assert "product_no" not in users.columns and "product_no_hash" in users.columns
    phone = lines(raw / "train_set.csv")[1].split(",")[1]
    import hashlib
    expected = hashlib.sha256(("pepper" + phone).encode()).hexdigest()
    assert users.where("user_id = 1").first()["product_no_hash"] == expected


def test_hash_mode_without_salt_is_an_error(spark, make_cfg, raw, monkeypatch):
    monkeypatch.delenv("PROSPECTS_PII_SALT", raising=False)
    with pytest.raises(JobError, match="PROSPECTS_PII_SALT is not set"):
        ingest.run(make_cfg(overrides=["ingest.pii_mode=hash"]), spark)


@pytest.mark.parametrize("damage, message", [
    (lambda raw: (raw / "train_label.csv").unlink(), "input file not found: .*train_label.csv"),
    (lambda raw: (raw / "train_set.csv").write_text(""), "input file is empty: .*train_set.csv"),
    (lambda raw: (raw / "result_predict_B.csv").write_text(lines(raw / "result_predict_B.csv")[0] + "\n"),
     "header but no data rows: .*result_predict_B.csv"),
    (lambda raw: write(raw / "train_set.csv", [lines(raw / "train_set.csv")[0].replace("X7", "X7b")]
                       + lines(raw / "train_set.csv")[1:]),
     r"header of .*train_set.csv does not match the column dictionary .*missing \['X7'\] unexpected \['X7b'\]"),
])
def test_unusable_input_stops_and_writes_nothing(spark, make_cfg, raw, tmp_path, damage, message):
    damage(raw)
    with pytest.raises(JobError, match=message):
        ingest.run(make_cfg(), spark)
    assert not (tmp_path / "lakehouse").exists()


PARQUET = ["dataset.format=parquet", "generator.n_train=3000", "generator.regions={A: 10}"]


@pytest.fixture(scope="module")
def parquet_raw(spark, tmp_path_factory):
    """A Parquet delivery: 3,000 training users, region A (10)."""
    from prospects.core.config import load_config
    from tests.conftest import tmp_settings

    root = tmp_path_factory.mktemp("raw_parquet")
    generator.generate(load_config(overrides=PARQUET, extra=tmp_settings(root)), spark)
    return root / "raw"


def test_parquet_bad_rows_are_quarantined_with_a_raw_line(spark, make_cfg, parquet_raw, tmp_path):
    """The Parquet path (typed columns, no text parse) gives the CSV path's reasons."""
    shutil.copytree(parquet_raw, tmp_path / "raw")
    cfg = make_cfg(overrides=[*PARQUET, "run.id=pqbad"])
    raw_dir = Path(cfg.path("raw"))
    train = spark.read.parquet(str(raw_dir / "train_set")).withColumn("X2", F.col("X2").cast("string"))
    train = (train.where(~F.col("user_id").isin(1, 2))
             .unionByName(train.where("user_id = 1").withColumn("X2", F.lit("forty")))     # non-numeric
             .unionByName(train.where("user_id = 2").withColumn("user_id", F.lit(None)))   # missing id
             .unionByName(train.where("user_id = 3"))                                      # exact copy
             .unionByName(train.where("user_id = 4").withColumn("X4", F.col("X4") + 1)))   # conflicting
    labels = spark.read.parquet(str(raw_dir / "train_label"))
    labels = (labels.where("user_id != 5")
              .unionByName(labels.where("user_id = 5").withColumn("label", F.lit(2)))      # bad label
              .unionByName(spark.createDataFrame([(999999, 1)], labels.schema)))           # label without user
    for name, df in (("train_set", train), ("train_label", labels)):
        df.coalesce(1).write.parquet(str(raw_dir / f"{name}_new"))
        shutil.rmtree(raw_dir / name)
        (raw_dir / f"{name}_new").rename(raw_dir / name)
    summary = ingest.run(cfg, spark)
    q = quarantine(spark, cfg).collect()
    got = {(r["source_kind"], r["id"], r["reason"]) for r in q}
    assert {("train", "1", "non_numeric"), ("train", None, "missing_id"), ("train", "3", "duplicate_row"),
            ("train", "4", "conflicting_duplicate_id"), ("labels", "5", "bad_label"),
            ("train", "5", "user_without_label"), ("labels", "999999", "label_without_user")} <= got
    assert all(r["raw_line"] for r in q) and all("***" in r["raw_line"] for r in q if r["source_kind"] == "train")
    details = {r["reason"]: r["detail"] for r in q}
    assert details["non_numeric"] == "not a number in X2: forty"
    assert summary["reconciled"] and summary["rows_read"] == summary["rows_accepted"] + summary["rows_quarantined"]
    ids = {r[0] for r in tables.read(spark, cfg.table("bronze_users")).select("user_id").collect()}
    assert 3 in ids and not ids & {1, 2, 4, 5}


def test_parquet_input_and_bronze_files_with_row_groups_of_the_configured_size(spark, make_cfg, parquet_raw,
                                                                                tmp_path):
    """Parquet input is ingested whole. ``ingest.row_group_mb`` sets the bronze files' Parquet row
    groups (so later stages read a file with several tasks); the session's own setting is back afterwards."""
    import pyarrow.parquet as pq

    shutil.copytree(parquet_raw, tmp_path / "raw")
    cfg = make_cfg(overrides=[*PARQUET, "run.id=rg", "ingest.row_group_mb=0.01"])
    spark.conf.unset("parquet.block.size")
    summary = ingest.run(cfg, spark)
    assert (summary["users"], summary["region_users"], summary["rows_quarantined"]) == (3000, 10, 0)
    assert "product_no" not in tables.read(spark, cfg.table("bronze_users")).columns
    files = list(Path(cfg.table("bronze_users")).rglob("*.parquet"))
    groups = sum(pq.ParquetFile(f).num_row_groups for f in files)
    assert groups > 2 * len(files)
    assert spark.conf.get("parquet.block.size", None) is None


# ---------------------------------------------------------------------------------------------
# Real files: encodings, RFC 4180, value rules, files without an id
# ---------------------------------------------------------------------------------------------
def recode(path: Path, encoding: str) -> None:
    path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))


def bronze_rows(spark, cfg, key: str) -> list[dict]:
    df = tables.read(spark, cfg.table(key)).where(F.col("run_id") == cfg.run_id).drop("run_id", "ingested_at")
    return sorted((r.asDict() for r in df.collect()), key=lambda r: str(r.get("user_id")))


def test_a_gbk_file_round_trips_exactly_and_the_dictionary_labels_apply(spark, make_cfg, clean_run, clean_raw,
                                                                        tmp_path):
    utf8 = clean_run[0]
    gbk_raw = tmp_path / "gbk_raw"
    shutil.copytree(clean_raw, gbk_raw)
    for f in gbk_raw.glob("*.csv"):
        recode(f, "gbk")
    assert "先生".encode("gbk") in (gbk_raw / "train_set.csv").read_bytes()
    cfg = make_cfg(overrides=["run.id=gbk", "dataset.encoding=gbk", f"paths.raw={gbk_raw}",
                              f"paths.lakehouse={tmp_path / 'lake_gbk'}"])
    summary = ingest.run(cfg, spark)
    assert summary["rows_quarantined"] == 0 and summary["reconciled"]
    for key in ("bronze_users", "bronze_regions"):
        assert bronze_rows(spark, cfg, key) == bronze_rows(spark, utf8, key)
    users = tables.read(spark, cfg.table("bronze_users"))
    genders = {cfg.columns.value_label("X1", r[0]) for r in users.select("X1").distinct().collect()}
    segments = {cfg.columns.value_label("X5", r[0]) for r in users.select("X5").distinct().collect()}
    assert genders <= {"male", "female", "missing"} and "male" in genders
    assert segments <= {"public", "rural", "campus", "company", "missing"} and "rural" in segments


def test_a_file_in_another_encoding_is_refused_with_its_first_bad_line_and_a_hint(spark, make_cfg, raw, tmp_path):
    recode(raw / "result_predict_A.csv", "gbk")
    with pytest.raises(IngestError, match=r"result_predict_A.csv: \d+ line\(s\) are not valid utf-8, the first is "
                                          r"line 2 \(looks like GBK: set dataset.encoding: gbk\); nothing was written"):
        ingest.run(make_cfg(overrides=["run.id=enc"]), spark)
    assert not (tmp_path / "lakehouse").exists()


def test_a_utf8_file_declared_gbk_is_refused_rather_than_garbled(spark, make_cfg, raw, tmp_path):
    for f in ("train_set.csv", "train_label.csv", "result_predict_B.csv"):
        recode(raw / f, "gbk")
    with pytest.raises(IngestError, match=r"result_predict_A.csv: every non-ASCII line is valid UTF-8.*"
                                          r"set dataset.encoding: utf-8"):
        ingest.run(make_cfg(overrides=["dataset.encoding=gbk"]), spark)
    assert not (tmp_path / "lakehouse").exists()


def test_one_broken_byte_names_its_line(spark, make_cfg, raw):
    rows = (raw / "result_predict_B.csv").read_bytes().split(b"\n")
    rows[7] = rows[7].replace("先生".encode(), b"\xe5\x85").replace("女士".encode(), b"\xe5\x85")
    (raw / "result_predict_B.csv").write_bytes(b"\n".join(rows))
    with pytest.raises(IngestError, match=r"result_predict_B.csv: 1 line\(s\) are not valid utf-8, the first is "
                                          r"line 8"):
        ingest.run(make_cfg(), spark)


def with_field(row: str, index: int, value: str) -> str:
    parts = row.split(",")
    parts[index] = value
    return ",".join(parts)


X5 = 6          # field index of X5 (market segment, text) in the fiveg files


def unbalanced_quote_alone(raw: Path) -> int:
    """Region B's sixth user with a quote that is never closed, and nothing else to read as a
    multi-line record: parsed as a whole, it would swallow the records after it. Returns its id."""
    header, *body = lines(raw / "result_predict_B.csv")
    body[5] = with_field(body[5], X5, '"unbalanced')
    write(raw / "result_predict_B.csv", [header, *body])
    return int(body[5].split(",")[0])


def assert_b_keeps_its_records(spark, cfg, summary, b_id: int) -> None:
    """Region B as :func:`unbalanced_quote_alone` left it: 30 read, only the broken record quarantined."""
    b = next(v for f, v in summary["files"].items() if f.endswith("result_predict_B.csv"))
    assert (b["read"], b["accepted"], b["quarantined"]) == (30, 29, 1), cfg.get("dataset.multiline")
    assert "parsed_whole" not in b or cfg.get("dataset.multiline") == "always"
    q = quarantine(spark, cfg).where(F.col("source_file").endswith("result_predict_B.csv")).collect()
    assert [(r["id"], r["reason"]) for r in q] == [(str(b_id), "unbalanced_quote")]


def test_csv_follows_rfc_4180_and_blank_lines_are_skipped_and_counted(spark, make_cfg, raw):
    header, *body = lines(raw / "result_predict_A.csv")
    ids = [int(r.split(",")[0]) for r in body]
    body[0] = with_field(body[0], X5, '"集团,用户"')                   # a quoted delimiter
    body[1] = with_field(body[1], X5, '"say ""hi"""')                  # doubled quotes
    body[2] = with_field(body[2], X5, '"line one\nline two"')           # a line break inside quotes
    body[3] = with_field(body[3], X5, '"unbalanced')                    # a quote never closed
    write(raw / "result_predict_A.csv", [header, *body, "", "  ", ""])  # blank lines at the end
    b_id = unbalanced_quote_alone(raw)   # auto mode (the default) decides per file: B stays line by line
    cfg = make_cfg(overrides=["run.id=rfc"])
    summary = ingest.run(cfg, spark)
    a = next(v for f, v in summary["files"].items() if f.endswith("result_predict_A.csv"))
    assert a == {"read": 20, "accepted": 19, "quarantined": 1, "skipped_blank": 3, "skipped_header": 1,
                 "parsed_whole": True}
    assert summary["reconciled"] and summary["rows_read"] == summary["rows_accepted"] + summary["rows_quarantined"]
    regions = tables.read(spark, cfg.table("bronze_regions"))
    got = {r["user_id"]: r["X5"] for r in regions.where(F.col("user_id").isin(ids[:4])).collect()}
    assert got == {ids[0]: "集团,用户", ids[1]: 'say "hi"', ids[2]: "line one\nline two"}
    q = quarantine(spark, cfg).where(F.col("source_file").endswith("result_predict_A.csv")).collect()
    assert [(r["id"], r["reason"]) for r in q] == [(str(ids[3]), "unbalanced_quote")]
    assert '"unbalanced' in q[0]["raw_line"] and "***" in q[0]["raw_line"]
    assert_b_keeps_its_records(spark, cfg, summary, b_id)
    assert quarantine(spark, cfg).count() == 2            # A's and B's broken records, nothing else


def test_an_unbalanced_quote_alone_does_not_swallow_the_next_records(spark, make_cfg, raw):
    """Parsed as a whole (``always``), the broken record is split into its lines again. The other
    modes run on the same damage in the tests around this one: ``auto`` in the RFC 4180 test,
    ``never`` in the line-break test."""
    b_id = unbalanced_quote_alone(raw)
    cfg = make_cfg(overrides=["run.id=always", "dataset.multiline=always"])
    assert_b_keeps_its_records(spark, cfg, ingest.run(cfg, spark), b_id)


def test_records_split_by_a_line_break_are_quarantined_when_read_line_by_line(spark, make_cfg, raw):
    header, *body = lines(raw / "result_predict_A.csv")
    body[2] = with_field(body[2], X5, '"line one\nline two"')
    write(raw / "result_predict_A.csv", [header, *body])
    b_id = unbalanced_quote_alone(raw)
    cfg = make_cfg(overrides=["run.id=never", "dataset.multiline=never"])
    summary = ingest.run(cfg, spark)
    a = next(v for f, v in summary["files"].items() if f.endswith("result_predict_A.csv"))
    assert (a["read"], a["accepted"], a["quarantined"]) == (21, 19, 2) and summary["reconciled"]
    assert {r["reason"] for r in quarantine(spark, cfg).collect()} == {"unbalanced_quote"}
    assert_b_keeps_its_records(spark, cfg, summary, b_id)


def test_non_finite_numbers_become_missing_and_are_counted(spark, make_cfg, raw):
    header, *body = lines(raw / "result_predict_A.csv")
    x6 = header.split(",").index("X6")
    for i, text in enumerate(["inf", "-Infinity", "NaN", "1e999"]):
        body[i] = with_field(body[i], x6, text)
    write(raw / "result_predict_A.csv", [header, *body])
    cfg = make_cfg(overrides=["run.id=nf"])
    summary = ingest.run(cfg, spark)
    assert summary["rows_quarantined"] == 0
    a = next(f for f in summary["value_rules"] if f.endswith("result_predict_A.csv"))
    assert summary["value_rules"][a] == {"X6": {"non_finite": 4}}
    ids = [int(r.split(",")[0]) for r in body[:4]]
    values = [r["X6"] for r in tables.read(spark, cfg.table("bronze_regions")).where(F.col("user_id").isin(ids))
              .collect()]
    assert values == [None] * 4
    log = tables.read(spark, cfg.table("run_log")).where("run_id = 'nf'").first()
    assert '"non_finite": 4' in log["details"]


def test_value_rules_set_missing_or_quarantine_and_are_counted_per_file_and_column(spark, make_cfg, raw):
    header, *body = lines(raw / "result_predict_B.csv")
    x2, x3 = header.split(",").index("X2"), header.split(",").index("X3")
    body[0] = with_field(body[0], x2, "999")       # above max, set missing
    body[1] = with_field(body[1], x2, "-5")        # below min, set missing
    body[2] = with_field(body[2], x3, "9")         # not one of the VIP classes: quarantined
    write(raw / "result_predict_B.csv", [header, *body])
    ids = [int(r.split(",")[0]) for r in body[:3]]
    extra = {"dataset": {"columns": [dict(r, **({"min": 10, "max": 100} if r["code"] == "X2" else {}),
                                          **({"values": [0, 1, 2, 3, 4, 5, 6], "on_invalid": "quarantine"}
                                             if r["code"] == "X3" else {}))
                                     for r in make_cfg().get("dataset.columns")]}}
    cfg = make_cfg(overrides=["run.id=rules"], extra=extra)
    summary = ingest.run(cfg, spark)
    b = next(f for f in summary["value_rules"] if f.endswith("result_predict_B.csv"))
    assert summary["value_rules"][b] == {"X2": {"above_max": 1, "below_min": 1}, "X3": {"not_in_values": 1}}
    q = quarantine(spark, cfg).collect()
    assert [(r["id"], r["reason"], r["detail"]) for r in q] == [
        (str(ids[2]), "unexpected_value", "X3 = 9 not one of ['0', '1', '2', '3', '4', '5', '6']")]
    ages = {r["user_id"]: r["X2"] for r in tables.read(spark, cfg.table("bronze_regions"))
            .where(F.col("user_id").isin(ids)).collect()}
    assert ages == {ids[0]: None, ids[1]: None}


def test_the_fiveg_dictionary_has_plausible_ranges_that_the_generated_files_meet(make_cfg, clean_run):
    cfg, summary = make_cfg(), clean_run[1]
    ranged = [s.column for s in cfg.columns if s.min is not None or s.max is not None]
    assert {"X2", "X4", "X6", "X9", "X12", "X18", "X21"} <= set(ranged)
    assert summary["value_rules"] == {} and summary["rows_quarantined"] == 0


def test_files_without_an_id_get_stable_row_ids_in_file_order(spark, make_cfg, raw, tmp_path):
    """With ``dataset.id_column: null`` the rows are numbered per file: ``<file>:<n>`` is row n - 1
    of pandas.read_csv(file), the same on every run."""
    import pandas as pd

    from prospects.core.config import load_config
    from tests.conftest import tmp_settings

    users = pd.read_csv(raw / "train_set.csv").drop(columns=["user_id"])
    labels = pd.read_csv(raw / "train_label.csv")["label"]
    users.assign(label=labels).to_csv(raw / "no_id.csv", index=False)
    with open(raw / "no_id.csv", "a") as f:
        f.write("\n\n")
    columns = [r for r in load_config().get("dataset.columns") if r["code"] != "user_id"]
    columns.append({"code": "label", "type": "int", "role": "label"})
    settings = tmp_settings(tmp_path)
    settings["dataset"] = {"id_column": None, "label_file": None, "train_file": "no_id.csv", "region_pattern": None,
                           "columns": columns}
    settings["paths"]["raw"] = str(raw)
    runs = []
    for run in ("a", "b"):
        cfg = load_config(extra=settings, overrides=[f"run.id={run}"])
        summary = ingest.run(cfg, spark)
        assert summary["users"] == 80 and summary["reconciled"]
        runs.append({r["row_id"]: r for r in tables.read(spark, cfg.table("bronze_users"))
                     .where(F.col("run_id") == run).collect()})
    assert runs[0].keys() == runs[1].keys() == {f"no_id.csv:{n}" for n in range(1, 81)}
    for n in (1, 40, 80):
        row, expected = runs[0][f"no_id.csv:{n}"], users.iloc[n - 1]
        assert (row["X2"], row["X5"], row["label"]) == (expected["X2"], expected["X5"], labels.iloc[n - 1])
