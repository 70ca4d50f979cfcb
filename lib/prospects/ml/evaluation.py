"""Model evaluation in Spark: AUCs, confusion matrix, per-class metrics, lift, threshold rules, curves.

Everything that grows with the user base stays in Spark. A scored frame (label + the positive
class probability ``p``) is reduced to a few aggregates: the exact AUCs (Spark's
``BinaryClassificationEvaluator``), approximate percentiles (the top-share threshold,
lift cut-offs) and one probability histogram of ``bins`` bins with the positives per bin, which
also counts the users above the decision thresholds and lift cut-offs (ROC, PR and gains curves,
the F1-optimal threshold, the confusion matrices and the lifts come from it: at most ``bins`` rows
reach the driver). Figures are drawn from those aggregates with matplotlib (Agg); the plot functions
return the figure, the caller writes it (:class:`prospects.core.figures.Folder`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from prospects.core import figures
from prospects.ml.features import positive_probability

log = logging.getLogger(__name__)

THRESHOLD_RULES = ("f1", "top_share")
P_COL = "p"
LABEL = "_label"


def scored(pred: DataFrame, label_col: str, probability_col: str = "probability",
           keep: tuple[str, ...] = ()) -> DataFrame:
    """``pred`` reduced to ``_label`` (double 0/1) and ``p`` (double), plus ``keep`` columns.

    ``probability_col`` may be a vector (slot 1 is taken) or a double column.
    """
    p = positive_probability(pred, probability_col)
    return pred.select(*keep, F.col(label_col).cast("double").alias(LABEL), p.alias(P_COL))


def auc(scores: DataFrame, metric: str = "areaUnderROC") -> float:
    """``areaUnderROC`` or ``areaUnderPR`` of ``p`` against ``_label`` (Spark evaluator, exact:
    ``numBins=0``, so the value does not depend on how the rows are partitioned)."""
    ev = BinaryClassificationEvaluator(rawPredictionCol=P_COL, labelCol=LABEL, metricName=metric, numBins=0)
    return float(ev.evaluate(scores))


def aucs(scores: DataFrame) -> dict[str, float]:
    """Both exact AUCs, ``areaUnderROC`` and ``areaUnderPR``, from ONE sort of the scores.

    ``BinaryClassificationEvaluator.evaluate`` sorts the scores once per metric. Its JVM side's public
    ``getMetrics`` (Spark 3.1+) returns the ``BinaryClassificationMetrics`` that ``evaluate`` reads a
    metric from (the same code, ``numBins=0``: exact, not down-sampled); both areas are read from it
    before its cached cumulative counts are released. (mllib's PySpark wrapper, or its DataFrame
    constructor, would bin the curve to 1,000 points: AUCs about 1e-5 off.)
    """
    ev = BinaryClassificationEvaluator(rawPredictionCol=P_COL, labelCol=LABEL, numBins=0)
    ev._transfer_params_to_java()  # noqa: SLF001 - the Python params reach the JVM evaluator here
    metrics = ev._java_obj.getMetrics(scores._jdf)  # noqa: SLF001 - public Scala API, no Python wrapper
    try:
        return {"areaUnderROC": float(metrics.areaUnderROC()), "areaUnderPR": float(metrics.areaUnderPR())}
    finally:
        metrics.unpersist()


# ---------------------------------------------------------------------------------------------
# Histogram, curves, thresholds
# ---------------------------------------------------------------------------------------------
@dataclass
class Histogram:
    """Users and positives per probability bin ``[b / bins, (b + 1) / bins)`` (last bin closed).

    ``where``: name -> (users, positives) among the users meeting each condition given to
    :func:`histogram` (counted exactly, in the same aggregation).
    """

    bins: int
    n: list[int]
    pos: list[int]
    where: dict[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.n)

    @property
    def positives(self) -> int:
        return sum(self.pos)

    def at_or_above(self) -> list[tuple[float, int, int]]:
        """``(edge, users with p >= edge, positives among them)`` for edges from 1 down to 0."""
        out = [(1.0 + 1e-9, 0, 0)]
        n = tp = 0
        for b in range(self.bins - 1, -1, -1):
            n += self.n[b]
            tp += self.pos[b]
            if self.n[b]:
                out.append((b / self.bins, n, tp))
        return out


def histogram(scores: DataFrame, bins: int = 1000, where: dict[str, Column] | None = None) -> Histogram:
    """Bin ``p`` into ``bins`` equal bins with the positives per bin (one Spark aggregation).

    ``where``: name -> boolean condition on ``p`` (e.g. ``p > threshold``); the users and positives
    meeting each are counted in the same aggregation (per bin, summed on the driver).
    """
    where = where or {}
    b = F.least(F.floor(F.col(P_COL) * bins).cast("int"), F.lit(bins - 1))
    y = F.col(LABEL) == 1
    aggs = [F.count(F.lit(1)).alias("n"), F.sum(F.col(LABEL)).alias("pos")]
    for i, cond in enumerate(where.values()):
        aggs += [F.count_if(cond).alias(f"w{i}"), F.count_if(cond & y).alias(f"wp{i}")]
    rows = scores.where(F.col(P_COL).isNotNull()).groupBy(b.alias("b")).agg(*aggs).collect()
    n, pos = [0] * bins, [0] * bins
    counts = [[0, 0] for _ in where]
    for r in rows:
        n[r["b"]] = int(r["n"])
        pos[r["b"]] = int(r["pos"] or 0)
        for i, c in enumerate(counts):
            c[0] += int(r[f"w{i}"])
            c[1] += int(r[f"wp{i}"])
    return Histogram(bins, n, pos, {name: (c[0], c[1]) for name, c in zip(where, counts)})


def roc_curve(h: Histogram) -> list[tuple[float, float, float]]:
    """``(false positive rate, true positive rate, threshold)`` points, from (0, 0) to (1, 1)."""
    P, N = h.positives, h.total - h.positives
    return [((n - tp) / N if N else 0.0, tp / P if P else 0.0, edge) for edge, n, tp in h.at_or_above()]


def pr_curve(h: Histogram) -> list[tuple[float, float, float]]:
    """``(recall, precision, threshold)`` points (the empty prediction set is skipped)."""
    P = h.positives
    return [(tp / P if P else 0.0, tp / n, edge) for edge, n, tp in h.at_or_above() if n]


def gains_curve(h: Histogram) -> list[tuple[float, float, float]]:
    """``(share of users targeted, capture rate, threshold)``: users taken by decreasing p."""
    T, P = h.total, h.positives
    return [(n / T if T else 0.0, tp / P if P else 0.0, edge) for edge, n, tp in h.at_or_above()]


def f1_optimal_threshold(h: Histogram) -> tuple[float, float]:
    """The bin edge maximising F1 of the positive class, and that F1 (``p >= edge`` predicted 1)."""
    P = h.positives
    best = (0.5, -1.0)
    for edge, n, tp in h.at_or_above():
        if n == 0 or P == 0:
            continue
        f1 = 2 * tp / (n + P)
        if f1 > best[1]:
            best = (edge, f1)
    return best[0], max(best[1], 0.0)


def top_share_threshold(scores: DataFrame, share: float) -> float:
    """The probability above which about ``share`` of the users lie (approximate percentile)."""
    if not 0.0 < share < 1.0:
        raise ValueError(f"train.threshold_top_share must be in (0, 1), got {share}")
    return float(scores.agg(F.percentile_approx(P_COL, 1.0 - share, 10000)).first()[0])


def choose_threshold(scores: DataFrame, rule: str, top_share: float = 0.2, bins: int = 1000,
                     hist: Histogram | None = None) -> float:
    """Decision threshold by ``rule``: ``f1`` (F1-optimal) or ``top_share`` (a share of users).

    Predictions are ``p > threshold`` (Spark's rule for ``thresholds = [1 - t, t]``); the F1 rule's
    bin edge is lowered by 1e-9 so that the users at the edge stay positive.
    """
    if rule == "f1":
        edge, _ = f1_optimal_threshold(hist or histogram(scores, bins))
        return max(edge - 1e-9, 0.0)
    if rule == "top_share":
        return top_share_threshold(scores, top_share)
    raise ValueError(f"train.threshold_rule must be one of {THRESHOLD_RULES}, got {rule!r}")


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------
def _safe(a: float, b: float) -> float:
    return a / b if b else 0.0


def class_metrics(tp: int, fp: int, tn: int, fn: int, suffix: str = "") -> dict[str, float]:
    """Accuracy and precision / recall / F1 of each class from a confusion matrix."""
    out = {f"accuracy{suffix}": _safe(tp + tn, tp + fp + tn + fn)}
    for cls, (t, f_pos, f_neg) in {"1": (tp, fp, fn), "0": (tn, fn, fp)}.items():
        prec, rec = _safe(t, t + f_pos), _safe(t, t + f_neg)
        out[f"precision_{cls}{suffix}"] = prec
        out[f"recall_{cls}{suffix}"] = rec
        out[f"f1_{cls}{suffix}"] = _safe(2 * prec * rec, prec + rec)
    return out


@dataclass
class Evaluation:
    """What :func:`evaluate` found on one split.

    Attributes:
        metrics: name -> value (AUCs, accuracy, precision/recall/F1 per class at the threshold
            and at 0.5 (suffix ``_at_0_5``), lift and capture at the top shares, base rate, rows).
        threshold: the decision threshold the per-class metrics use.
        confusion: ``{"tp", "fp", "tn", "fn"}`` at the threshold.
        curves: ``{"roc": [(fpr, tpr, t)], "pr": [(recall, precision, t)], "gains": [(share, capture, t)]}``.
    """

    metrics: dict[str, float]
    threshold: float
    confusion: dict[str, int]
    curves: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)


def evaluate(scores: DataFrame, threshold: float, lift_shares: list[float] = (0.1, 0.2),
             bins: int = 1000) -> Evaluation:
    """Evaluate scored users (``_label``, ``p``; see :func:`scored`) at ``threshold``.

    Spark work: two exact AUC passes (:func:`aucs`), one percentile pass for the lift
    cut-offs, one histogram that also counts both confusion matrices and the lifts.
    """
    shares = [float(s) for s in lift_shares]
    cutoffs = []
    if shares:
        cut = scores.agg(F.percentile_approx(P_COL, [1.0 - s for s in shares], 10000)).first()[0]
        cutoffs = [float(c) for c in cut] if cut else []
    p = F.col(P_COL)
    where = {"": p > F.lit(threshold), "_at_0_5": p > F.lit(0.5)}
    where.update({f"top{i}": p >= F.lit(c) for i, c in enumerate(cutoffs)})
    hist = histogram(scores, bins, where)
    if hist.total == 0:
        raise ValueError("cannot evaluate an empty split")
    metrics: dict[str, float] = aucs(scores)
    n, pos = hist.total, hist.positives
    confusion = {}
    for name in ("", "_at_0_5"):
        flagged, tp = hist.where[name]
        fp = flagged - tp
        fn, tn = pos - tp, n - pos - fp
        metrics.update(class_metrics(tp, fp, tn, fn, name))
        if name == "":
            confusion = {"tp": tp, "fp": fp, "tn": tn, "fn": fn}
    base = _safe(pos, n)
    metrics.update(rows=float(n), positives=float(pos), base_rate=base,
                   predicted_positive_share=_safe(confusion["tp"] + confusion["fp"], n))
    for i, s in enumerate(shares[:len(cutoffs)]):
        key = f"top{round(s * 100):d}"
        top_n, top_tp = hist.where[f"top{i}"]
        metrics[f"capture_{key}"] = _safe(top_tp, pos)
        metrics[f"lift_{key}"] = _safe(_safe(top_tp, top_n), base)
    metrics["threshold"] = threshold
    curves = {"roc": roc_curve(hist), "pr": pr_curve(hist), "gains": gains_curve(hist)}
    return Evaluation(metrics=metrics, threshold=threshold, confusion=confusion, curves=curves)


def oracle_scores(test_scores: DataFrame, oracle: DataFrame, id_col: str) -> DataFrame:
    """The oracle probability of the same test users: ``_label``, ``p`` (join on ``id_col``).

    Args:
        test_scores: scored test users with ``id_col`` and ``_label``.
        oracle: the generator's file: ``id_col``, ``probability`` (double).
    """
    return (test_scores.select(id_col, LABEL)
            .join(oracle.select(id_col, F.col("probability").cast("double").alias(P_COL)), id_col, "inner"))


# ---------------------------------------------------------------------------------------------
# Figures (driver side, from the aggregates above)
# ---------------------------------------------------------------------------------------------
def plot_roc(curves: dict[str, list[tuple[float, float, float]]], aucs: dict[str, float],
             title: str = "ROC curves on the test split"):
    """All models' ROC curves on one plot (dashed: the oracle, when given as a curve)."""
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, pts in curves.items():
        style = "--" if name == "oracle" else "-"
        ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], style,
                label=f"{name} (AUC {aucs.get(name, math.nan):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", label="random")
    ax.set(xlabel="false positive rate (negatives flagged)", ylabel="true positive rate (positives found)",
           title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_pr(curves: dict[str, list[tuple[float, float, float]]], aucs: dict[str, float], base_rate: float,
            title: str = "Precision-recall curves on the test split"):
    """All models' precision-recall curves on one plot, with the base rate as the no-skill line."""
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, pts in curves.items():
        style = "--" if name == "oracle" else "-"
        ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], style,
                label=f"{name} (PR AUC {aucs.get(name, math.nan):.3f})")
    ax.axhline(base_rate, linestyle=":", color="grey", label=f"no skill ({base_rate:.2f})")
    ax.set(xlabel="recall (share of positives found)", ylabel="precision (positives among flagged)",
           title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_gains(curves: dict[str, list[tuple[float, float, float]]],
               title: str = "Cumulative gains on the test split"):
    """Capture rate against the share of users targeted (by decreasing probability)."""
    plt = figures.pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, pts in curves.items():
        ax.plot([x for x, _, _ in pts], [y for _, y, _ in pts], "--" if name == "oracle" else "-", label=name)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="random")
    for s in (0.1, 0.2):
        ax.axvline(s, color="lightgrey", linewidth=0.8)
    ax.set(xlabel="share of users targeted (highest probability first)",
           ylabel="capture rate (share of all positives)", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def plot_confusions(confusions: dict[str, dict[str, int]], thresholds: dict[str, float],
                    labels: tuple[str, str] = ("no switch", "switch")):
    """One confusion matrix per model (counts and row shares) at each model's threshold."""
    plt = figures.pyplot()
    k = len(confusions)
    fig, axes = plt.subplots(1, k, figsize=(3.6 * k, 3.6), squeeze=False)
    for ax, (name, c) in zip(axes[0], confusions.items()):
        m = [[c["tn"], c["fp"]], [c["fn"], c["tp"]]]
        ax.imshow([[_safe(v, sum(r)) for v in r] for r in m], cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                share = _safe(m[i][j], sum(m[i]))
                ax.text(j, i, f"{m[i][j]:,}\n{share:.0%}", ha="center", va="center",
                        color="white" if share > 0.6 else "black", fontsize=9)
        ax.set_xticks([0, 1], [f"pred. {labels[0]}", f"pred. {labels[1]}"], fontsize=8)
        ax.set_yticks([0, 1], [f"true {labels[0]}", f"true {labels[1]}"], fontsize=8)
        ax.set_title(f"{name}\nthreshold {thresholds.get(name, math.nan):.3f}", fontsize=9)
    fig.suptitle("Confusion matrices on the test split (row shares)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_importances(names: list[str], values: list[float], title: str, top: int = 20,
                     xlabel: str = "importance"):
    """Horizontal bars of the ``top`` largest importances, readable names."""
    plt = figures.pyplot()
    pairs = sorted(zip(names, values), key=lambda p: -abs(p[1]))[:top][::-1]
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(pairs) + 1.2))
    ax.barh([n for n, _ in pairs], [v for _, v in pairs], color="steelblue")
    ax.set(xlabel=xlabel, title=title)
    ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return fig


def importances(model) -> list[float]:
    """Feature importances of a tree model (Spark's, or XGBoost's total gain), or |coefficients| of
    a linear model (comparable on min-max scaled or standardised features); empty for any other
    stage. The one reading of importances: training's figures and churn's drivers."""
    if hasattr(model, "featureImportances"):
        return [float(v) for v in model.featureImportances.toArray()]
    if hasattr(model, "get_booster"):  # XGBoost: total gain per slot f0..f{p-1}, normalised
        gains = model.get_booster().get_score(importance_type="total_gain")
        n = int(model.get_booster().num_features())
        values = [float(gains.get(f"f{i}", 0.0)) for i in range(n)]
        total = sum(values) or 1.0
        return [v / total for v in values]
    if hasattr(model, "coefficients"):
        return [abs(float(v)) for v in model.coefficients.toArray()]
    return []
