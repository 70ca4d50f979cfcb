"""Configuration layering, validation and the column dictionary."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from prospects.cli import main_for
from prospects.core.config import load_config
from prospects.core.errors import ConfigError, DictionaryError

CONF = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture
def conf_dir(tmp_path):
    out = tmp_path / "conf"
    shutil.copytree(CONF, out)
    return out


def test_layers_apply_in_order(conf_dir):
    (conf_dir / "local.yml").write_text("generator:\n  seed: 1\n  n_train: 10\n")
    (conf_dir / "uc.yml").write_text((CONF / "fiveg.yml").read_text() + "\ngenerator:\n  seed: 2\n")
    cfg = load_config("uc", "local", ["generator.seed=3"], conf_dir=conf_dir)
    assert cfg.get("generator.seed") == 3            # --set beats the use case
    assert cfg.get("generator.n_train") == 10        # env beats base
    assert cfg.get("generator.switch_rate") == 0.2   # base default kept
    assert cfg.sources[-1] == "--set generator.seed=3"
    assert load_config("uc", "local", conf_dir=conf_dir).get("generator.seed") == 2


def test_unknown_key_names_file_and_key(conf_dir):
    (conf_dir / "local.yml").write_text("generator:\n  n_trian: 10\n")
    with pytest.raises(ConfigError, match=r"local\.yml: unknown key 'generator\.n_trian'"):
        load_config("fiveg", "local", conf_dir=conf_dir)


def test_wrong_type_names_file_and_key(conf_dir):
    (conf_dir / "local.yml").write_text("generator:\n  n_train: many\n")
    with pytest.raises(ConfigError, match=r"local\.yml: key 'generator\.n_train' must be a int, got string"):
        load_config("fiveg", "local", conf_dir=conf_dir)


def test_override_errors_name_the_override():
    with pytest.raises(ConfigError, match=r"--set spark\.nope=1: unknown key 'spark\.nope'"):
        load_config(overrides=["spark.nope=1"])
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(overrides=["generator.seed"])


def test_int_accepted_for_float_and_open_mappings():
    cfg = load_config(overrides=["generator.switch_rate=1", "generator.regions.C=5", "generator.regions.A=null"])
    assert cfg.get("generator.switch_rate") == 1
    assert cfg.get("generator.regions") == {"B": 50000, "C": 5}  # one key changed, one removed
    assert load_config(overrides=["generator.regions={A: 20}"]).get("generator.regions") == {"A": 20}
    assert cfg.get("spark.conf")["spark.sql.shuffle.partitions"] == 8  # from local.yml
    spark_key = load_config(overrides=["spark.conf.spark.scheduler.mode=FAIR"]).get("spark.conf")
    assert spark_key["spark.scheduler.mode"] == "FAIR"  # the rest of the key is one key
    assert spark_key["spark.sql.shuffle.partitions"] == 8


def test_unknown_environment_and_use_case():
    with pytest.raises(ConfigError, match="unknown environment 'prod'"):
        load_config(env="prod")
    with pytest.raises(ConfigError, match="nosuch.yml: not found"):
        load_config(use_case="nosuch")


def test_models_and_reports_follow_the_lakehouse():
    cfg = load_config(overrides=["paths.lakehouse=s3a://bucket/lh"])
    assert (cfg.path("models"), cfg.path("reports")) == ("s3a://bucket/lh/models", "s3a://bucket/lh/reports")
    assert load_config(overrides=["paths.models=/m"]).path("models") == "/m"


def test_run_id_defaults_to_run_date():
    cfg = load_config(overrides=["run.date=2026-10-01"])
    assert cfg.run_id == "2026-10-01"
    assert load_config(overrides=["run.id=monthly-10"]).run_id == "monthly-10"


def test_dictionary_of_fiveg_matches_the_competition_format():
    d = load_config().columns
    assert d.codes[:2] == ["user_id", "product_no"] and d.codes[2:] == [f"X{i}" for i in range(1, 44)]
    types = [s.type for s in d]
    assert (types.count("float"), types.count("int"), types.count("string")) == (32, 10, 3)
    assert [s.code for s in d.pii] == ["product_no"]
    assert d.readable("X26") == "broadband_bandwidth"
    assert d.value_label("X5", "集团用户") == "company"
    assert {"consumption", "arrears", "signing", "package", "vip", "broadband", "fiveg"} <= set(d.groups())



def test_columns_from_takes_the_dictionary_of_another_use_case(conf_dir):
    credit, fiveg = load_config("credit", conf_dir=conf_dir), load_config("fiveg", conf_dir=conf_dir)
    assert credit.get("dataset.columns_from") == "fiveg" and fiveg.get("dataset.columns_from") == ""
    assert credit.get("dataset.columns") == fiveg.get("dataset.columns")
    assert credit.columns.codes == fiveg.columns.codes and credit.columns.readable("X26") == "broadband_bandwidth"
    assert credit.get("dataset.label_file") == "credit_demand_label.csv"  # the rest of credit's dataset kept
    # no copy to keep in step: a change to fiveg's dictionary is credit's too
    text = (conf_dir / "fiveg.yml").read_text().replace("name: broadband_bandwidth", "name: bandwidth", 1)
    (conf_dir / "fiveg.yml").write_text(text)
    assert load_config("credit", conf_dir=conf_dir).columns.readable("X26") == "bandwidth"
    # on the command line too; a later layer setting columns clears columns_from
    text = (conf_dir / "credit.yml").read_text()
    (conf_dir / "uc.yml").write_text("\n".join(x for x in text.splitlines() if "columns_from" not in x))
    assert load_config("uc", conf_dir=conf_dir).columns.codes == []
    assert load_config("uc", overrides=["dataset.columns_from=fiveg"],
                       conf_dir=conf_dir).columns.codes == fiveg.columns.codes
    one_column = ["dataset.columns=[{code: user_id, type: int, role: id}]"]
    with pytest.raises(ConfigError, match=r"features.monthly_groups.arpu: 'X6' is not a column of the dictionary"):
        load_config("credit", overrides=one_column, conf_dir=conf_dir)   # settings naming columns are checked
    cleared = load_config("credit", overrides=[*one_column, "features.monthly_groups={}", "score.segments={}"],
                          conf_dir=conf_dir)
    assert cleared.get("dataset.columns_from") == "" and cleared.columns.codes == ["user_id"]


@pytest.mark.parametrize("dataset, message", [
    ("columns_from: nosuch", r"uc\.yml: dataset\.columns_from 'nosuch': .*nosuch\.yml not found "
                             r"\(use cases in .*: credit, fiveg, telco_churn, uc\)"),
    ("columns_from: base", r"uc\.yml: dataset\.columns_from 'base': .*base\.yml has no dataset\.columns"),
    ("columns_from: credit", r"uc\.yml: dataset\.columns_from 'credit': .*credit\.yml has no dataset\.columns "
                             r"\(it takes them from 'fiveg' itself"),
    ("columns_from: fiveg\n  columns: [{code: user_id, type: int, role: id}]",
     r"uc\.yml: dataset\.columns and dataset\.columns_from \('fiveg'\) are both set"),
    ("columns_from: [fiveg]", r"uc\.yml: key 'dataset\.columns_from' must be a string, got list"),
])
def test_columns_from_errors_name_the_file_and_key(conf_dir, dataset, message):
    (conf_dir / "uc.yml").write_text(f"dataset:\n  {dataset}\n")
    with pytest.raises(ConfigError, match=message):
        load_config("uc", conf_dir=conf_dir)


def test_columns_from_error_on_the_command_line_exits_2(capsys):
    code = main_for("demo", "d", lambda cfg, spark, args: {},
                    ["--use-case", "credit", "--set", "dataset.columns_from=nosuch"], needs_spark=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("demo failed: configuration: --set dataset.columns_from=nosuch: "
                             "dataset.columns_from 'nosuch': ") and "nosuch.yml not found" in err[0]

@pytest.mark.parametrize("record, message", [
    ("{code: X1, type: text}", "type must be one of"),
    ("{code: X1, type: int, impute: magic}", "impute must be one of"),
    ("{code: X1, type: int, colour: red}", "unknown field"),
    ("{name: x, type: int}", "missing field 'code'"),
    ("{code: user_id, type: int, role: id}", "duplicate code"),
    ("{code: 'Account length', type: int}", r"\(Account length\): 'Account length' cannot be a Delta column name.*"
                                            r"set name, e.g. name: account_length"),
    ("{code: '月均ARPU(元)', type: float}", r"set name, e.g. name: arpu"),
    ("{code: '月均ARPU(元)', name: 'ARPU (avg)', type: float}", r"'ARPU \(avg\)' is not a plain identifier"),
    ("{code: 'Total.day', name: X2, type: float}", r"\(X2\): table column 'X2' is also the column of 'Total.day'"),
    ("{code: region, type: string}", "'region' is a column every bronze table has"),
    ("{code: X1, type: string, min: 0}", "min/max apply to numeric columns"),
    ("{code: X1, type: int, min: 5, max: 1}", "min 5.0 is above max 1.0"),
    ("{code: X1, type: int, values: 3}", "values must be a non-empty list"),
    ("{code: X1, type: int, on_invalid: drop}", "on_invalid must be one of"),
])
def test_dictionary_errors_name_the_record(conf_dir, record, message):
    text = (conf_dir / "fiveg.yml").read_text().replace("  columns:\n", f"  columns:\n    - {record}\n", 1)
    (conf_dir / "fiveg.yml").write_text(text)
    with pytest.raises(DictionaryError, match=message):
        load_config(conf_dir=conf_dir)


def test_job_with_bad_configuration_exits_2_with_one_line(capsys):
    code = main_for("demo", "d", lambda cfg, spark, args: {}, ["--set", "nope.key=1"], needs_spark=False)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == ["demo failed: configuration: --set nope.key=1: unknown key 'nope'"]


def test_job_failure_exits_1_with_one_line_and_summary(capsys, tmp_path):
    def boom(cfg, spark, args):
        raise ValueError("input is broken\nsecond line")

    summary = tmp_path / "s.json"
    code = main_for("demo", "d", boom, ["--summary-file", str(summary)], needs_spark=False)
    captured = capsys.readouterr()
    assert code == 1
    assert captured.err.strip().splitlines()[-1] == "demo failed: ValueError: input is broken"
    assert '"status": "failed"' in summary.read_text()


def test_a_direct_run_gives_the_python_workers_this_interpreter(spark, make_cfg, monkeypatch):
    # started as `.venv/bin/python -m jobs.train` without the venv on PATH, the workers of the pandas
    # and XGBoost UDFs would run the first `python3` on PATH, which may have no pandas
    from prospects.core.session import build_session

    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    assert build_session(make_cfg()) is spark
    assert os.environ["PYSPARK_PYTHON"] == sys.executable


def test_any_header_gets_a_table_column_and_settings_name_table_columns(conf_dir):
    """Codes as delivered may hold spaces, dots, brackets or Chinese; the record's name is then the
    table column, and every setting that names a column names that one (checked at load)."""
    records = ("[{code: user_id, type: int, role: id}, {code: '月均ARPU(元)', name: arpu_avg, type: float},"
               " {code: 'Total.day-min [x]', name: total_day_min, type: float}, {code: X2, type: int}]")
    cfg = load_config("fiveg", overrides=[f"dataset.columns={records}", "features.monthly_groups={}",
                                          "score.segments={}"], conf_dir=conf_dir)
    assert cfg.columns.codes == ["user_id", "月均ARPU(元)", "Total.day-min [x]", "X2"]
    assert cfg.columns.table_columns == ["user_id", "arpu_avg", "total_day_min", "X2"]
    assert cfg.columns.by_code["月均ARPU(元)"].column == "arpu_avg" and cfg.columns["arpu_avg"].code == "月均ARPU(元)"
    with pytest.raises(ConfigError, match=r"features.exclude: '月均ARPU\(元\)' is not a column of the dictionary: "
                                          r"the tables name it 'arpu_avg'"):
        load_config("fiveg", overrides=[f"dataset.columns={records}", "features.monthly_groups={}",
                                        "score.segments={}", "features.exclude=['月均ARPU(元)']"], conf_dir=conf_dir)


def test_files_without_an_id_and_label_files(conf_dir):
    columns = "[{code: a, type: int}, {code: Churn, type: string, role: label}]"
    cfg = load_config("telco_churn", overrides=["dataset.id_column=null", "churn.segments.features=[]",
                                                f"dataset.columns={columns}"], conf_dir=conf_dir)
    assert (cfg.columns.id_column, cfg.columns.surrogate_id, cfg.columns.label_column) == ("row_id", True, "Churn")
    with pytest.raises(DictionaryError, match="label_file needs an id column"):
        load_config("fiveg", overrides=["dataset.id_column=null", "dataset.columns=[{code: a, type: int}]"],
                    conf_dir=conf_dir)
    with pytest.raises(DictionaryError, match="dataset.id_column is null .* but column 'user_id' has role id"):
        load_config("telco_churn", overrides=["dataset.id_column=null", "dataset.columns=[{code: user_id, type: int,"
                                              " role: id}, {code: Churn, type: string, role: label}]"],
                    conf_dir=conf_dir)


@pytest.mark.parametrize("override, message", [
    ("dataset.encoding=klingon", "dataset.encoding 'klingon' is not a known text encoding"),
    ("dataset.encoding=utf-16", "is not ASCII-compatible"),
    ("dataset.delimiter=';;'", "dataset.delimiter must be one character"),
    ("dataset.multiline=sometimes", "dataset.multiline must be one of"),
])
def test_csv_settings_are_checked_at_load(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[override])


def test_a_use_case_may_be_a_yaml_file_anywhere(tmp_path):
    path = tmp_path / "my_case.yml"
    path.write_text((CONF / "telco_churn.yml").read_text())
    cfg = load_config(str(path))
    assert cfg.use_case == "my_case" and cfg.columns.id_column == "customerID"
    assert str(path) in cfg.sources


def test_the_run_date_is_fixed_when_the_configuration_loads(monkeypatch):
    import datetime as real_dt

    from prospects.core import config as config_module

    class Clock(real_dt.datetime):
        now_calls = 0

        @classmethod
        def now(cls, tz=None):
            cls.now_calls += 1
            return real_dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=tz) if cls.now_calls == 1 else \
                real_dt.datetime(2027, 1, 1, 0, 0, 1, tzinfo=tz)

    monkeypatch.setattr(config_module.dt, "datetime", Clock)
    cfg = load_config()
    assert cfg.run_id == cfg.run_id == "2026-12-31" and cfg.get("run.date") == "2026-12-31"


def test_the_class_archive_is_named_by_what_made_it_and_off_when_conf_says_so(conf_dir, tmp_path):
    from prospects.core import class_archive
    from prospects.core.session import with_class_archive

    cfg = load_config(conf_dir=conf_dir)
    path = class_archive.archive_file(cfg, tmp_path)
    assert path.parent == tmp_path / ".cache" / "cds" and path.suffix == ".jsa"
    other_delta = load_config(conf_dir=conf_dir, overrides=["spark.delta_package=io.delta:delta-spark_4.2_2.13:9.9.9"])
    assert class_archive.archive_file(other_delta, tmp_path) != path
    assert class_archive.archive_file(load_config(conf_dir=conf_dir, overrides=["spark.class_archive=null"]),
                                      tmp_path) is None
    settings = {"spark.driver.extraJavaOptions": "-Dderby.system.home=.cache/derby"}
    assert class_archive.java_option(cfg, tmp_path) is None                 # not built: nothing added
    path.parent.mkdir(parents=True)
    path.write_bytes(b"archive")
    assert class_archive.java_option(cfg, tmp_path) == f"-XX:SharedArchiveFile={path}"
    assert conf_dir.parent == tmp_path                                    # sessions look beside the conf
    merged = with_class_archive(cfg, settings)
    assert merged["spark.driver.extraJavaOptions"] == f"-Dderby.system.home=.cache/derby -XX:SharedArchiveFile={path}"


@pytest.mark.parametrize("writes, exit_code", [(False, 0), (True, 1), (False, 1)])
def test_a_class_archive_is_kept_only_when_its_jvm_wrote_it_whole(conf_dir, tmp_path, monkeypatch, capsys,
                                                                   writes, exit_code):
    # a half-written archive would stop every later JVM from starting: it must never get the final name
    import subprocess

    from prospects.core import class_archive

    cfg = load_config(conf_dir=conf_dir)

    def dump(cmd, **_):
        if writes:
            Path(cmd[4]).write_bytes(b"partial")
        return subprocess.CompletedProcess(cmd, exit_code)

    monkeypatch.setattr(class_archive.subprocess, "run", dump)
    path = class_archive.archive_file(cfg, tmp_path)
    with pytest.raises(RuntimeError, match=f"no class archive written .*{path.stem}.log"):
        class_archive.build(cfg, tmp_path)
    assert [p.name for p in path.parent.iterdir()] == [f"{path.stem}.log"]   # no archive, no partial file
    # setup goes on without it (a JVM without class-data sharing), saying so
    assert class_archive.main(["build", "--conf-dir", str(conf_dir)]) == 0
    assert "class archive not built, sessions start without it" in capsys.readouterr().err
    assert not path.exists()


def test_a_written_class_archive_gets_its_name(conf_dir, tmp_path, monkeypatch):
    import subprocess

    from prospects.core import class_archive

    cfg = load_config(conf_dir=conf_dir)
    calls = []

    def dump(cmd, **_):
        calls.append(cmd)
        Path(cmd[4]).write_bytes(b"whole")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(class_archive.subprocess, "run", dump)
    path = class_archive.build(cfg, tmp_path)
    assert path.read_bytes() == b"whole" and path == class_archive.archive_file(cfg, tmp_path)
    assert class_archive.build(cfg, tmp_path) == path and len(calls) == 1      # built once


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads the JVM's memory map (Linux)")
def test_the_sessions_jvm_maps_the_class_archive_of_setup(spark):
    from prospects.core import class_archive

    path = class_archive.archive_file(load_config(), CONF.parent)
    assert path.is_file(), f"no class archive at {path}: `make setup` builds it"
    pid = spark._jvm.java.lang.ProcessHandle.current().pid()   # noqa: SLF001
    assert str(path.resolve()) in Path(f"/proc/{pid}/maps").read_text()
