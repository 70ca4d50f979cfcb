"""evaluation.evaluate against a brute force count on the driver (numpy, scikit-learn)."""

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F
from sklearn.metrics import roc_auc_score

from prospects.ml import evaluation as ev


@pytest.fixture(scope="module")
def scored(spark):
    rng = np.random.default_rng(3)
    n = 3000
    y = rng.random(n) < 0.3
    p = np.round(np.clip(0.35 * y + 0.65 * rng.random(n), 0.0, 1.0), 3)  # rounded: many ties
    pdf = pd.DataFrame({"_label": y.astype(float), "p": p})
    return spark.createDataFrame(pdf).repartition(4).cache(), y, p


def test_evaluate_counts_what_a_brute_force_counts(scored):
    df, y, p = scored
    threshold = 0.42
    e = ev.evaluate(df, threshold, [0.1, 0.2], bins=1000)
    m = e.metrics

    # AUCs: exact (Spark's evaluator with numBins=0), equal to scikit-learn's with ties
    assert m["areaUnderPR"] == pytest.approx(ev.auc(df, "areaUnderPR"), abs=1e-12)
    assert m["areaUnderROC"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)

    # confusion matrices at the threshold and at 0.5 (prediction: p > t)
    flagged = p > threshold
    assert e.confusion == {"tp": int((flagged & y).sum()), "fp": int((flagged & ~y).sum()),
                           "tn": int((~flagged & ~y).sum()), "fn": int((~flagged & y).sum())}
    at_half = p > 0.5
    assert m["accuracy_at_0_5"] == pytest.approx(float((at_half == y).mean()), abs=1e-12)
    assert m["recall_1_at_0_5"] == pytest.approx((at_half & y).sum() / y.sum(), abs=1e-12)
    assert m["precision_1"] == pytest.approx((flagged & y).sum() / flagged.sum(), abs=1e-12)

    # lifts: users at or above Spark's percentile cut-off
    for share in (0.1, 0.2):
        cut = df.agg(F.percentile_approx("p", 1.0 - share, 10000)).first()[0]
        top = p >= cut
        key = f"top{round(share * 100)}"
        assert m[f"capture_{key}"] == pytest.approx((top & y).sum() / y.sum(), abs=1e-12)
        assert m[f"lift_{key}"] == pytest.approx(((top & y).sum() / top.sum()) / y.mean(), abs=1e-12)
    assert m["rows"] == len(y) and m["positives"] == y.sum()

    # curves come from the same histogram: the ROC ends at (1, 1), gains at (1, 1)
    assert e.curves["roc"][-1][:2] == (1.0, 1.0)
    assert e.curves["gains"][-1][:2] == (1.0, 1.0)


def test_histogram_counts_conditions_in_the_same_pass(scored):
    df, y, p = scored
    h = ev.histogram(df, 10, {"high": F.col("p") >= 0.7, "none": F.col("p") > 2})
    assert h.total == len(y) and h.positives == int(y.sum())
    assert h.n == [int(((p >= b / 10) & (p < (b + 1) / 10) | ((b == 9) & (p == 1.0))).sum()) for b in range(10)]
    assert h.where["high"] == (int((p >= 0.7).sum()), int(((p >= 0.7) & y).sum()))
    assert h.where["none"] == (0, 0)


def test_evaluate_refuses_an_empty_split(scored):
    df, _, _ = scored
    with pytest.raises(ValueError, match="empty"):
        ev.evaluate(df.where("p > 2"), 0.5)
