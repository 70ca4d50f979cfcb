"""The shared IBM Telco sample delivered the way real files come, run by configuration alone.

``tests/usecases/telco_delivery.yml`` is the whole use case: header names with spaces and brackets,
no id column, labels Yes/No, and a fifth of the customers held out in a second, labelled file.
Ingest, profile, train, score and evaluate run through the pipeline's entry point on it; the hold-out is
scored like any region and measured on its labels. The draft-dictionary command is tried on the
same files.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from pyspark.sql import functions as F

from jobs import pipeline as pipeline_job
from prospects.core import tables
from prospects.core.config import load_config
from prospects.ingest import stage as ingest
from tests.conftest import ROOT, run_job

SHARED = ROOT.parent / "shared" / "data" / "telco_churn" / "telco_customer_churn.csv"
USE_CASE = ROOT / "tests" / "usecases" / "telco_delivery.yml"
RENAMES = {"gender": "Gender", "SeniorCitizen": "Senior Citizen", "tenure": "Tenure (months)",
           "PhoneService": "Phone Service", "MultipleLines": "Multiple Lines", "InternetService": "Internet Service",
           "OnlineSecurity": "Online Security", "OnlineBackup": "Online Backup",
           "DeviceProtection": "Device Protection", "TechSupport": "Tech Support", "StreamingTV": "Streaming TV",
           "StreamingMovies": "Streaming Movies", "PaperlessBilling": "Paperless Billing",
           "PaymentMethod": "Payment Method", "MonthlyCharges": "Monthly Charges", "TotalCharges": "Total Charges"}


@pytest.fixture(scope="module")
def delivery(tmp_path_factory):
    """The sample as text, ``customerID`` removed, headers renamed, 20% held out (seeded)."""
    df = pd.read_csv(SHARED, dtype=str, keep_default_na=False).drop(columns=["customerID"]).rename(columns=RENAMES)
    hold = np.random.default_rng(7).random(len(df)) < 0.2
    raw = tmp_path_factory.mktemp("telco_delivery") / "raw"
    raw.mkdir()
    df[~hold].to_csv(raw / "telco_train.csv", index=False)
    df[hold].to_csv(raw / "telco_holdout.csv", index=False)
    return raw, df[~hold].reset_index(drop=True), df[hold].reset_index(drop=True)


def test_pipeline_from_ingest_to_evaluate_on_the_delivered_files(spark, delivery, tmp_path):
    raw, train, holdout = delivery
    lake = tmp_path / "lakehouse"
    result = run_job(pipeline_job, str(USE_CASE), [f"paths.raw={raw}", f"paths.lakehouse={lake}"],
                     tmp_path / "summary.json", "--run-id", "2026-11-01",
                     "--stages", "ingest,profile,train,score,evaluate")
    assert result["ingest"]["users"] + result["ingest"]["rows_quarantined"] == len(train)
    assert result["ingest"]["region_users"] == len(holdout) and result["ingest"]["labelled_regions"] == ["holdout"]
    cfg = load_config(use_case=str(USE_CASE), overrides=[f"paths.raw={raw}", f"paths.lakehouse={lake}",
                                                         "run.id=2026-11-01"])
    metrics = {(r["region"], r["metric"]): r["value"]
               for r in tables.read(spark, cfg.table("gold_evaluation")).collect()}
    assert metrics[("holdout", "users")] == len(holdout)
    assert metrics[("holdout", "positives")] == (holdout["Churn"] == "Yes").sum()
    assert metrics[("holdout", "areaUnderROC")] >= 0.83
    assert metrics[("all", "scored_without_outcome")] == 0
    cal = tables.read(spark, cfg.table("gold_calibration")).where("region = 'holdout'").collect()
    assert sum(r["users"] for r in cal) == len(holdout) and {r["decile"] for r in cal} == set(range(1, 11))
    assert sum(r["observed"] for r in cal) == metrics[("holdout", "positives")]
    assert (lake / "reports" / "2026-11-01" / "evaluate" / "evaluation.png").stat().st_size > 10_000
    # every score joins back to its delivered row: "<file>:<n>" is row n - 1 of the file
    scores = tables.read(spark, cfg.table("gold_scores")).select("user_id").collect()
    assert {r[0] for r in scores} == {f"telco_holdout.csv:{n}" for n in range(1, len(holdout) + 1)}
    bronze = tables.read(spark, cfg.table("bronze_regions"))
    row = bronze.where(F.col("row_id") == "telco_holdout.csv:5").first()
    assert (row["monthly_charges"], row["payment_method"]) == (float(holdout["Monthly Charges"][4]),
                                                               holdout["Payment Method"][4])
    assert "Tenure (months)" not in bronze.columns and "tenure_months" in bronze.columns


def test_the_drafted_dictionary_reads_the_delivery_as_it_is(spark, delivery, tmp_path):
    raw, train, _ = delivery
    from jobs import dictionary

    out = tmp_path / "telco_train.yml"
    assert dictionary.main([str(raw / "telco_train.csv"), "--label", "Churn", "--out", str(out)]) == 0
    draft = yaml.safe_load(out.read_text())
    records = {r["code"]: r for r in draft["dataset"]["columns"]}
    assert list(records) == list(train.columns)                          # codes in file order
    assert draft["dataset"]["id_column"] is None                         # no unique column left
    assert draft["dataset"]["label_values"] == {"No": 0, "Yes": 1}
    assert records["Churn"]["role"] == "label" and records["Churn"]["impute"] == "none"
    assert (records["Senior Citizen"]["type"], records["Senior Citizen"]["impute"]) == ("int", "mode")
    assert (records["Total Charges"]["type"], records["Total Charges"]["impute"]) == ("float", "median")
    assert (records["Contract"]["type"], records["Contract"]["impute"]) == ("string", "mode")
    assert records["Tenure (months)"]["name"] == "tenure_months"
    assert "values Month-to-month, One year, Two year" in out.read_text()
    cfg = load_config(use_case=str(out), overrides=[f"paths.lakehouse={tmp_path / 'lake'}", "run.id=draft"])
    summary = ingest.run(cfg, spark)
    assert summary["users"] == len(train) and summary["reconciled"]


def test_the_draft_of_the_original_sample_finds_its_id(spark, tmp_path):
    from jobs import dictionary

    out = tmp_path / "telco.yml"
    assert dictionary.main([str(SHARED), "--label", "Churn", "--out", str(out), "--name", "telco_draft"]) == 0
    draft = yaml.safe_load(out.read_text())
    assert draft["dataset"]["id_column"] is None   # the two duplicate rows at the end repeat two ids
    assert dictionary.main([str(SHARED), "--label", "Churn", "--out", str(out)]) == 1   # exists: not replaced
