"""Retention A/B test (SPEC 2.1): seeded, tier-stratified assignment and a two-proportion analysis.

Assignment: each customer gets ``h = xxhash64(seed, id)``; within each risk tier customers are
ranked by ``(h, id)`` and the ranked list is cut at ``round(cumulative share x tier size)``, so
every tier is split in the arm proportions exactly up to rounding, the same seed always gives the
same assignment, and the order of the input rows does not matter.

Analysis: retained counts per arm are aggregated in Spark; the statistics (few rows) on the driver.
For each arm ``t`` against the control ``c``, with ``p = retained / n``:

* lift ``d = p_t - p_c`` (absolute) and ``d / p_c`` (relative);
* two-sided two-proportion z-test with the pooled proportion
  ``p0 = (x_t + x_c) / (n_t + n_c)``, ``z = d / sqrt(p0 (1 - p0) (1/n_t + 1/n_c))``,
  ``p-value = 2 (1 - Phi(|z|))``;
* confidence interval for ``d`` (Wald, unpooled): ``d +/- z_{1-alpha/2} sqrt(p_t(1-p_t)/n_t + p_c(1-p_c)/n_c)``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.window import Window
from scipy.stats import norm

from prospects.core import runlog, tables
from prospects.core.config import Config
from prospects.core.errors import JobError

log = logging.getLogger(__name__)

RESULT_SCHEMA = ("arm string, is_control boolean, n long, retained long, retention_rate double, "
                 "control_rate double, lift_abs double, lift_rel double, z double, p_value double, "
                 "ci_low double, ci_high double, alpha double, significant boolean")


def _check_arms(arms: Mapping[str, float]) -> list[tuple[str, float]]:
    if not arms:
        raise ValueError("abtest.arms is empty: give arm -> share, e.g. {data_bonus: 0.5, control: 0.5}")
    items = [(str(k), float(v)) for k, v in arms.items()]
    if any(v <= 0 for _, v in items):
        raise ValueError(f"abtest.arms: every share must be > 0, got {dict(items)}")
    total = sum(v for _, v in items)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"abtest.arms: shares must sum to 1, got {total:g} ({dict(items)})")
    return items


def assign(df: DataFrame, id_col: str, tier_col: str, arms: Mapping[str, float], seed: int) -> DataFrame:
    """Assign customers to arms at random, seeded, stratified by tier.

    Args:
        df: one row per customer: ``id_col`` and ``tier_col`` (other columns are dropped).
        id_col: customer key (any type; hashed with its string form's bytes by xxhash64).
        tier_col: stratum (risk tier).
        arms: arm -> share (sum 1), in a fixed order (the conf order).
        seed: assignment seed.

    Returns:
        ``id_col``, ``tier_col``, arm (string), arm_rank (1-based position of the customer in its
        tier's shuffled order), tier_size.
    """
    items = _check_arms(arms)
    for c in (id_col, tier_col):
        if c not in df.columns:
            raise ValueError(f"assign: column '{c}' not in the frame ({df.columns})")
    h = F.xxhash64(F.lit(int(seed)), F.col(id_col))
    w = Window.partitionBy(tier_col).orderBy(F.col("_h"), F.col(id_col))
    ranked = (df.select(id_col, tier_col).withColumn("_h", h)
              .withColumn("arm_rank", F.row_number().over(w))
              .withColumn("tier_size", F.count(F.lit(1)).over(Window.partitionBy(tier_col))))
    expr, acc = None, 0.0
    for name, share in items[:-1]:
        acc += share
        bound = F.round(F.lit(acc) * F.col("tier_size"))
        cond = F.col("arm_rank") <= bound
        expr = F.when(cond, F.lit(name)) if expr is None else expr.when(cond, F.lit(name))
    last = F.lit(items[-1][0])
    arm = expr.otherwise(last) if expr is not None else last
    return ranked.select(id_col, tier_col, arm.alias("arm"), "arm_rank", "tier_size")


def two_proportion(x_t: int, n_t: int, x_c: int, n_c: int, alpha: float = 0.05) -> dict:
    """Two-sided two-proportion z-test (pooled SE) and Wald CI of the difference (unpooled SE).

    Returns:
        rate_t, rate_c, lift_abs, lift_rel, z, p_value, ci_low, ci_high (None where undefined).
    """
    if min(n_t, n_c) <= 0:
        raise ValueError(f"two_proportion: empty group (n_t={n_t}, n_c={n_c})")
    p_t, p_c = x_t / n_t, x_c / n_c
    diff = p_t - p_c
    pooled = (x_t + x_c) / (n_t + n_c)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    z = diff / se0 if se0 > 0 else None
    p_value = float(2 * norm.sf(abs(z))) if z is not None else None
    se = math.sqrt(p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c)
    q = float(norm.ppf(1 - alpha / 2))
    return {"rate_t": p_t, "rate_c": p_c, "lift_abs": diff, "lift_rel": diff / p_c if p_c > 0 else None,
            "z": z, "p_value": p_value, "ci_low": diff - q * se, "ci_high": diff + q * se}


def analyze(outcomes: DataFrame, arm_col: str, retained_col: str, control: str = "control",
            alpha: float = 0.05) -> DataFrame:
    """Retention per arm and its test against the control.

    Args:
        outcomes: one row per assigned customer: ``arm_col`` and ``retained_col`` (0/1 or boolean;
            a null outcome is an error: decide how to count lost follow-ups before the analysis).
        control: the control arm's name.
        alpha: two-sided level; the CI is at ``1 - alpha``.

    Returns:
        arm, is_control, n, retained, retention_rate, control_rate, lift_abs, lift_rel, z, p_value,
        ci_low, ci_high, alpha, significant (p_value < alpha); the control row carries its counts and
        null statistics. Ordered control first, then by arm name.
    """
    for c in (arm_col, retained_col):
        if c not in outcomes.columns:
            raise ValueError(f"analyze: column '{c}' not in the outcomes ({outcomes.columns})")
    r = F.col(retained_col).cast("int")
    counts = (outcomes.groupBy(arm_col)
              .agg(F.count(F.lit(1)).alias("n"), F.sum(r).alias("retained"),
                   F.sum(F.when(r.isNull() | ~r.isin(0, 1), 1).otherwise(0)).alias("bad"))
              .collect())  # one row per arm
    bad = {row[arm_col]: row["bad"] for row in counts if row["bad"]}
    if bad:
        raise ValueError(f"analyze: column '{retained_col}' must be 0/1 without nulls; bad rows per arm: {bad}")
    by = {row[arm_col]: (int(row["n"]), int(row["retained"])) for row in counts}
    if control not in by:
        raise ValueError(f"analyze: control arm '{control}' not in the outcomes (arms: {sorted(by, key=str)})")
    n_c, x_c = by[control]
    rows = [(control, True, n_c, x_c, x_c / n_c, x_c / n_c, None, None, None, None, None, None, float(alpha), None)]
    for arm in sorted(a for a in by if a != control):
        n_t, x_t = by[arm]
        s = two_proportion(x_t, n_t, x_c, n_c, alpha)
        rows.append((arm, False, n_t, x_t, s["rate_t"], s["rate_c"], s["lift_abs"], s["lift_rel"], s["z"],
                     s["p_value"], s["ci_low"], s["ci_high"], float(alpha),
                     None if s["p_value"] is None else bool(s["p_value"] < alpha)))
    return tables.small_frame(outcomes.sparkSession, rows, RESULT_SCHEMA)


def simulate_outcomes(assignments: DataFrame, id_col: str, rates: Mapping[str, float], seed: int) -> DataFrame:
    """Draw a retained flag per assigned customer from a known retention rate per arm (demo, tests).

    Returns:
        the assignment columns plus ``retained`` (int 0/1), deterministic for ``seed``.
    """
    missing = sorted({r["arm"] for r in assignments.select("arm").distinct().collect()} - set(rates))
    if missing:
        raise ValueError(f"abtest.simulated_retention: no rate for arm(s) {missing}")
    rate = F.create_map(*[x for k, v in rates.items() for x in (F.lit(k), F.lit(float(v)))])
    u = (F.abs(F.xxhash64(F.lit(int(seed)), F.lit("outcome"), F.col(id_col))) % F.lit(1 << 53)).cast("double") \
        / F.lit(float(1 << 53))
    return assignments.withColumn("retained", (u < rate[F.col("arm")]).cast("int"))


# ---------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------
@runlog.logged("ab_assign")
def run_assign(cfg: Config, spark: SparkSession, scores: DataFrame | None = None) -> dict:
    """Assign the customers of the tiers ``abtest.tiers`` (from the latest ``churn_scores`` run) to
    the arms ``abtest.arms`` and write table ``ab_assignments`` (partitioned by run_id)."""
    id_col = cfg.columns.id_column
    if scores is None:
        scores, scores_run = runlog.read_latest(spark, cfg, cfg.table("churn_scores"), "churn_insights")
    else:
        scores_run = None
    if "tier" not in scores.columns:
        raise JobError(f"ab_assign: the churn scores have no 'tier' column ({scores.columns}): "
                       "run churn_insights first")
    wanted = list(cfg.get("abtest.tiers") or [])
    eligible = scores.where(F.col("tier").isin(wanted)) if wanted else scores
    try:
        out = assign(eligible, id_col, "tier", cfg.get("abtest.arms") or {}, int(cfg.get("abtest.seed")))
    except ValueError as exc:
        raise JobError(str(exc)) from exc
    out = out.withColumn("seed", F.lit(int(cfg.get("abtest.seed"))))
    tables.write_run(out, cfg, "ab_assignments")
    written, _ = tables.read_run(spark, cfg.table("ab_assignments"), cfg.run_id)
    counts = {f"{r['tier']}/{r['arm']}": r["count"] for r in written.groupBy("tier", "arm").count().collect()}
    if not counts:
        raise JobError(f"ab_assign: no customer in tiers {wanted}: nothing to assign")
    summary = {"customers": sum(counts.values()), "by_tier_arm": counts, "scores_run": scores_run,
               "table": cfg.table("ab_assignments")}
    log.info("A/B assignment %s", summary)
    return summary


def load_outcomes(cfg: Config, spark: SparkSession, assignments: DataFrame) -> DataFrame:
    """Assignments joined with the observed outcomes (``abtest.outcomes_path``: a CSV with a header
    or a Delta table, columns id + ``abtest.retained_column``), or simulated from
    ``abtest.simulated_retention`` when no path is given."""
    id_col = cfg.columns.id_column
    ret = cfg.get("abtest.retained_column")
    path = cfg.get("abtest.outcomes_path")
    if not path:
        rates = cfg.get("abtest.simulated_retention") or {}
        if not rates:
            raise JobError("ab_analyze: set abtest.outcomes_path (observed outcomes) or "
                           "abtest.simulated_retention (arm -> rate, demo)")
        return simulate_outcomes(assignments, id_col, rates, int(cfg.get("abtest.seed")) + 1) \
            .withColumnRenamed("retained", ret)
    if tables.is_delta(spark, path):
        observed = spark.read.format("delta").load(path)
    else:
        observed = spark.read.csv(path, header=True, inferSchema=True)
    for c in (id_col, ret):
        if c not in observed.columns:
            raise JobError(f"ab_analyze: outcomes {path} have no column '{c}' (columns: {observed.columns})")
    observed = observed.select(F.col(id_col).cast(assignments.schema[id_col].dataType).alias(id_col), ret)
    joined = assignments.join(observed, id_col, "left")
    missing = joined.where(F.col(ret).isNull()).count()
    if missing:
        raise JobError(f"ab_analyze: {missing} assigned customers have no outcome in {path}")
    return joined


@runlog.logged("ab_analyze")
def run_analyze(cfg: Config, spark: SparkSession, outcomes: DataFrame | None = None) -> dict:
    """Analyse the latest assignment run against its outcomes; write table ``ab_results``."""
    ret = cfg.get("abtest.retained_column")
    if outcomes is None:
        assignments, assign_run = runlog.read_latest(spark, cfg, cfg.table("ab_assignments"), "ab_assign")
        outcomes = load_outcomes(cfg, spark, assignments)
    else:
        assign_run = None
    try:
        result = analyze(outcomes, "arm", ret, cfg.get("abtest.control"), float(cfg.get("abtest.alpha")))
    except ValueError as exc:
        raise JobError(str(exc)) from exc
    result = (result.withColumn("assignment_run", F.lit(assign_run).cast("string"))
              .withColumn("run_id", F.lit(cfg.run_id)))
    tables.write_run(result, cfg, "ab_results")
    rows = [r.asDict() for r in result.drop("run_id").collect()]
    log.info("A/B results written to %s (%d arms)", cfg.table("ab_results"), len(rows))
    return {"arms": {r["arm"]: {k: r[k] for k in ("n", "retention_rate", "lift_abs", "p_value", "ci_low", "ci_high")}
                     for r in rows}, "table": cfg.table("ab_results"), "assignment_run": assign_run}


def format_results(rows: Sequence[Mapping]) -> str:
    """The results as a fixed-width text table (for logs and the job's output)."""
    head = f"{'arm':<20}{'n':>8}{'retained':>10}{'rate':>8}{'lift':>9}{'rel':>8}{'p-value':>10}  CI (1-alpha)"
    lines = [head]
    for r in rows:
        if r["is_control"]:
            lines.append(f"{r['arm']:<20}{r['n']:>8}{r['retained']:>10}{r['retention_rate']:>8.3f}   (control)")
            continue
        rel = f"{r['lift_rel']:>8.1%}" if r["lift_rel"] is not None else f"{'-':>8}"
        p = r["p_value"]
        pv = f"{'-':>10}" if p is None else (f"{p:>10.4f}" if p >= 1e-4 else f"{p:>10.1e}")
        lines.append(f"{r['arm']:<20}{r['n']:>8}{r['retained']:>10}{r['retention_rate']:>8.3f}"
                     f"{r['lift_abs']:>+9.3f}{rel}{pv}  [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
    return "\n".join(lines)
