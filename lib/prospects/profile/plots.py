"""Figures and the Markdown report of the profile stage, drawn from small aggregates only.

Every function takes plain Python rows (the profile's aggregates, already on the driver) and
writes one PNG with matplotlib's Agg backend into a :class:`prospects.core.figures.Folder`
(local disk, HDFS or an object store alike). Labels use the dictionary's readable names
(``name (code)``) and English value labels; text values without an English label are escaped
so that no glyph renders as a box.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from prospects.core.dictionary import ColumnDictionary  # noqa: E402
from prospects.core.figures import Folder  # noqa: E402
from prospects.profile.result import Profile  # noqa: E402

log = logging.getLogger(__name__)

DPI = 110
BAR = "#4C72B0"
RATE = "#C44E52"
GROUP_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3",
                "#8C8C8C", "#CCB974", "#64B5CD")


def safe_text(text: str) -> str:
    """``text`` if it is ASCII, else its escaped form (no CJK font is assumed)."""
    return text if text.isascii() else text.encode("unicode_escape").decode("ascii")


def col_label(dictionary: ColumnDictionary, code: str) -> str:
    """``readable name (code)``, or the code alone when the dictionary has no other name."""
    name = dictionary.readable(code)
    return safe_text(f"{name} ({code})" if name != code else code)


def _save(fig, out_dir: Folder, name: str, tight: bool = True) -> str:
    """Save ``fig``; ``tight=False`` for a figure laid out already (cropping would draw it twice)."""
    out_dir.save(fig, name, tight)
    return name


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _num(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"


# ---------------------------------------------------------------------------------------------
# Missing values
# ---------------------------------------------------------------------------------------------
def plot_missing_share(out_dir: Folder, dictionary: ColumnDictionary, col_rows: Sequence[dict]) -> str | None:
    """Horizontal bars: share of users missing each column (columns with any missing), by group."""
    rows = sorted([r for r in col_rows if r["null_count"] > 0], key=lambda r: (r["null_share"], r["column"]))
    if not rows:
        return None
    groups = list(dict.fromkeys(r["group"] for r in reversed(rows)))
    color = {g: GROUP_COLORS[i % len(GROUP_COLORS)] for i, g in enumerate(groups)}
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(rows) + 1.6))
    y = np.arange(len(rows))
    ax.barh(y, [100 * r["null_share"] for r in rows], color=[color[r["group"]] for r in rows])
    ax.set_yticks(y, [col_label(dictionary, r["column"]) for r in rows], fontsize=8)
    for yi, r in zip(y, rows):
        ax.text(100 * r["null_share"], yi, f" {r['null_count']:,}", va="center", fontsize=7)
    ax.set_xlabel("users missing the column (%)")
    ax.set_xlim(0, 112)
    ax.set_title(f"Share of users missing each column ({len(rows)} of {len(col_rows)} columns have gaps)")
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=color[g]) for g in groups],
              labels=[safe_text(g) for g in groups], title="dimension group", loc="lower right", fontsize=8)
    return _save(fig, out_dir, "missing_share.png")


def plot_missing_matrix(out_dir: Folder, dictionary: ColumnDictionary, columns: Sequence[str],
                        sample: Sequence[Sequence[bool]], users: int) -> str | None:
    """Sample-by-column picture: one row per sampled user (sorted by pattern), dark = missing."""
    if not sample or not columns:
        return None
    arr = np.array(sample, dtype=float)
    order = sorted(range(len(arr)), key=lambda i: (arr[i].sum(), tuple(arr[i])))
    arr = arr[order]
    fig, ax = plt.subplots(figsize=(max(8, 0.3 * len(columns) + 2), 7))
    ax.imshow(arr, aspect="auto", interpolation="nearest", cmap=ListedColormap(["#F2F2F2", "#2F3E5C"]),
              vmin=0, vmax=1)
    ax.set_xticks(range(len(columns)), [col_label(dictionary, c) for c in columns], rotation=90, fontsize=8)
    ax.set_ylabel(f"sampled users (sorted by missing pattern), {len(arr)} of {users:,}")
    ax.set_xlabel("column")
    ax.set_title("Missing values of a random sample of users (dark = missing)")
    return _save(fig, out_dir, "missing_matrix.png")


def plot_missing_patterns(out_dir: Folder, dictionary: ColumnDictionary, columns: Sequence[str],
                          pattern_rows: Sequence[dict], top: int = 20) -> str | None:
    """The most common missingness patterns: which columns (dots) and how many users (bars, log)."""
    rows = list(pattern_rows)[:top]
    if not rows or not columns:
        return None
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(max(10, 0.3 * len(columns) + 6), 0.35 * len(rows) + 3),
                                 gridspec_kw={"width_ratios": [max(3, len(columns) / 6), 2]}, sharey=True)
    for yi, r in enumerate(rows):
        bits = [i for i, b in enumerate(r["pattern"]) if b == "1"]
        ax.scatter(range(len(columns)), [yi] * len(columns), s=14, color="#DDDDDD")
        if bits:
            ax.scatter(bits, [yi] * len(bits), s=22, color="#2F3E5C")
    ax.set_xticks(range(len(columns)), [col_label(dictionary, c) for c in columns], rotation=90, fontsize=8)
    ax.set_yticks(range(len(rows)), [f"#{r['rank']}: {r['missing_count']} missing" for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_title("Missing-value patterns (dark dot = column missing)")
    ax.set_xlabel("column")
    bx.barh(range(len(rows)), [r["users"] for r in rows], color=BAR)
    bx.set_xscale("log")
    for yi, r in enumerate(rows):
        bx.text(r["users"], yi, f" {r['users']:,}  ({_pct(r['switch_rate'])} switch)", va="center", fontsize=7)
    bx.set_xlabel("users with the pattern (log scale)")
    bx.set_title("Users per pattern")
    bx.set_xlim(right=max(r["users"] for r in rows) * 40)
    return _save(fig, out_dir, "missing_patterns.png")


def plot_co_missing(out_dir: Folder, dictionary: ColumnDictionary, columns: Sequence[str],
                    co_rows: Sequence[dict]) -> str | None:
    """Heatmap of the Jaccard index of missingness for each pair of columns with gaps."""
    if not columns:
        return None
    idx = {c: i for i, c in enumerate(columns)}
    m = np.full((len(columns), len(columns)), np.nan)
    for r in co_rows:
        v = r["jaccard"] if r["jaccard"] is not None else np.nan
        m[idx[r["col_a"]], idx[r["col_b"]]] = m[idx[r["col_b"]], idx[r["col_a"]]] = v
    size = max(7, 0.32 * len(columns) + 3)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1)
    labels = [col_label(dictionary, c) for c in columns]
    ax.set_xticks(range(len(columns)), labels, rotation=90, fontsize=8)
    ax.set_yticks(range(len(columns)), labels, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Jaccard: both missing / either missing")
    ax.set_title("Co-missing structure: 1 = always missing for the same users")
    return _save(fig, out_dir, "co_missing.png")


# ---------------------------------------------------------------------------------------------
# Categorical columns, curves, distributions
# ---------------------------------------------------------------------------------------------
def _sort_values(rows: list[dict]) -> list[dict]:
    def key(r):
        if r["value"] is None:
            return (2, 0.0, "")
        try:
            return (0, float(r["value"]), "")
        except ValueError:
            return (1, -float(r["users"]), r["value"])
    return sorted(rows, key=key)


def _bars_with_rate(ax, labels: list[str], users: list[int], rates: list[float | None],
                    overall: float | None, rotate: bool) -> None:
    x = np.arange(len(labels))
    ax.bar(x, users, color=BAR, alpha=0.85)
    ax.set_xticks(x, labels, rotation=45 if rotate else 0, ha="right" if rotate else "center", fontsize=8)
    ax.set_ylabel("users", color=BAR, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax2 = ax.twinx()
    ax2.plot(x, [100 * r if r is not None else np.nan for r in rates], color=RATE, marker="o", ms=4)
    if overall is not None:
        ax2.axhline(100 * overall, color=RATE, ls=":", lw=1)
    ax2.set_ylabel("switch rate (%)", color=RATE, fontsize=8)
    ax2.tick_params(axis="y", labelsize=7, colors=RATE)
    finite = [100 * r for r in rates if r is not None]
    ax2.set_ylim(0, max(finite + [100 * (overall or 0)] + [1.0]) * 1.25)


def _panel_grid(rows: Sequence[dict], columns: Sequence[str], width: float, height: float, ncols: int = 4):
    """``rows`` by their ``column``, the ``columns`` that have rows, and a figure of one
    ``width`` x ``height`` panel each, ``ncols`` to a line; None when no column has rows."""
    by_col: dict[str, list[dict]] = {}
    for r in rows:
        by_col.setdefault(r["column"], []).append(r)
    columns = [c for c in columns if c in by_col]
    if not columns:
        return None
    nrows = math.ceil(len(columns) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return by_col, columns, fig, axes


def plot_categorical_grid(out_dir: Folder, dictionary: ColumnDictionary, columns: Sequence[str],
                          cat_rows: Sequence[dict], overall: float | None, max_values: int = 15) -> str | None:
    """One panel per categorical column: users per value (bars), switch rate (red line, right axis)."""
    grid = _panel_grid(cat_rows, columns, 4.6, 3.3)
    if grid is None:
        return None
    by_col, columns, fig, axes = grid
    for ax, c in zip(axes.flat, columns):
        rows = by_col[c]
        shown = sorted(rows, key=lambda r: -r["users"])[:max_values]
        rows = _sort_values(shown)
        labels = [safe_text(r["value_label"]) for r in rows]
        _bars_with_rate(ax, labels, [r["users"] for r in rows], [r["switch_rate"] for r in rows], overall,
                        rotate=sum(len(x) + 2 for x in labels) > 30)
        extra = f" (top {max_values} of {len(by_col[c])})" if len(by_col[c]) > max_values else ""
        ax.set_title(col_label(dictionary, c) + extra, fontsize=9)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    fig.suptitle("Categorical columns: users per value (bars) and switch rate (red; dotted = overall)",
                 fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _save(fig, out_dir, "categorical_grid.png", tight=False)


def plot_rate_curves(out_dir: Folder, dictionary: ColumnDictionary, columns: Sequence[str],
                     curve_rows: Sequence[dict], overall: float | None) -> str | None:
    """Users (bars) and switch rate (line) by value of each curve column (age, tenure)."""
    columns = [c for c in columns if any(r["column"] == c for r in curve_rows)]
    if not columns:
        return None
    fig, axes = plt.subplots(1, len(columns), figsize=(7 * len(columns), 4.2), squeeze=False)
    for ax, c in zip(axes.flat, columns):
        rows = sorted([r for r in curve_rows if r["column"] == c and r["value"] is not None],
                      key=lambda r: r["value"])
        x = [r["value"] for r in rows]
        ax.bar(x, [r["users"] for r in rows], color=BAR, alpha=0.8, width=0.85)
        ax.set_xlabel(col_label(dictionary, c))
        ax.set_ylabel("users", color=BAR)
        ax2 = ax.twinx()
        floor = max(30, math.ceil(0.001 * sum(r["users"] for r in rows)))
        ax2.plot(x, [100 * r["switch_rate"] if r["switch_rate"] is not None and r["users"] >= floor else np.nan
                     for r in rows], color=RATE, marker="o", ms=3, label=f"switch rate (values with >= {floor} users)")
        ax2.legend(loc="upper right", fontsize=8)
        if overall is not None:
            ax2.axhline(100 * overall, color=RATE, ls=":", lw=1)
        ax2.set_ylabel("switch rate (%)", color=RATE)
        shown = [100 * r["switch_rate"] for r in rows if r["switch_rate"] is not None and r["users"] >= floor]
        ax2.set_ylim(0, max(shown + [100 * (overall or 0), 1.0]) * 1.3)
        missing = sum(r["users"] for r in curve_rows if r["column"] == c and r["value"] is None)
        ax.set_title(f"Switch rate by {dictionary.readable(c)}" + (f" ({missing:,} missing)" if missing else ""))
    fig.tight_layout()
    return _save(fig, out_dir, "rate_curves.png", tight=False)


def plot_numeric_grid(out_dir: Folder, dictionary: ColumnDictionary, columns: Sequence[str],
                      hist_rows: Sequence[dict], outliers: dict[str, tuple[int, int]]) -> str | None:
    """Histogram per numeric column (Spark-computed bins over [min, p99], grey overflow bin >= p99)."""
    grid = _panel_grid(hist_rows, columns, 4.4, 2.9)
    if grid is None:
        return None
    by_col, columns, fig, axes = grid
    for ax, c in zip(axes.flat, columns):
        rows = sorted(by_col[c], key=lambda r: r["bin"])
        main = [r for r in rows if r["upper"] is not None]
        over = [r for r in rows if r["upper"] is None]
        if main:
            width = (main[0]["upper"] - main[0]["lower"]) or 1.0
            ax.bar([r["lower"] for r in main], [r["users"] for r in main], width=width, align="edge",
                   color=BAR, edgecolor="white", lw=0.3)
            if over:
                top = main[-1]["upper"]
                ax.bar([top], [over[0]["users"]], width=width, align="edge", color="#999999",
                       label=f">= p99: {over[0]['users']:,}")
                ax.legend(fontsize=7, loc="upper right")
        lo_n, hi_n = outliers.get(c, (0, 0))
        ax.set_title(f"{col_label(dictionary, c)}\noutliers (Tukey): {lo_n:,} low, {hi_n:,} high", fontsize=8)
        ax.set_ylabel("users", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    fig.suptitle("Numeric columns: distribution (bins from min to p99; grey = values >= p99)", fontsize=13)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _save(fig, out_dir, "numeric_grid.png", tight=False)


def plot_correlation(out_dir: Folder, dictionary: ColumnDictionary, columns: Sequence[str],
                     matrix: Sequence[Sequence[float]], threshold: float, pair_rows: Sequence[dict]) -> str | None:
    """Pearson heatmap; pairs above the threshold are boxed."""
    if not columns:
        return None
    m = np.array(matrix, dtype=float)
    size = max(8, 0.3 * len(columns) + 4)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(m, cmap="RdBu_r", vmin=-1, vmax=1)
    labels = [col_label(dictionary, c) for c in columns]
    ax.set_xticks(range(len(columns)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(columns)), labels, fontsize=7)
    idx = {c: i for i, c in enumerate(columns)}
    for r in pair_rows:
        i, j = idx[r["col_a"]], idx[r["col_b"]]
        for a, b in ((i, j), (j, i)):
            ax.add_patch(plt.Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False, ec="black", lw=1.2))
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="Pearson r (after imputation)")
    ax.set_title(f"Pearson correlation of the numeric columns (boxed: |r| > {threshold})")
    return _save(fig, out_dir, "correlation.png")


def draw_all(out_dir: Folder, dictionary: ColumnDictionary, prof: Profile, max_values: int) -> dict[str, str]:
    """Draw every figure of the profile into ``out_dir``; returns figure key -> file name."""
    figs = {
        "missing_share": plot_missing_share(out_dir, dictionary, prof.col_rows),
        "missing_matrix": plot_missing_matrix(out_dir, dictionary, prof.miss_cols, prof.sample, prof.users),
        "missing_patterns": plot_missing_patterns(out_dir, dictionary, prof.miss_cols, prof.pattern_rows),
        "co_missing": plot_co_missing(out_dir, dictionary, prof.miss_cols, prof.co_rows),
        "categorical_grid": plot_categorical_grid(out_dir, dictionary, prof.categorical, prof.cat_rows,
                                                  prof.overall_rate, max_values),
        "rate_curves": plot_rate_curves(out_dir, dictionary, prof.curve_cols, prof.curve_rows, prof.overall_rate),
        "numeric_grid": plot_numeric_grid(out_dir, dictionary, prof.hist_cols, prof.hist_rows, prof.outliers),
        "correlation": plot_correlation(out_dir, dictionary, prof.corr_cols, prof.matrix, prof.threshold,
                                        prof.pair_rows),
    }
    return {k: v for k, v in figs.items() if v}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(x).replace("|", "\\|") for x in row) + " |" for row in rows]
    return "\n".join(out)


def _img(figs: dict, key: str, alt: str) -> str:
    return f"![{alt}]({figs[key]})\n" if key in figs else f"_({alt}: nothing to draw)_\n"


def write_report(out_dir: Folder, cfg, prof: Profile, summary: dict, figs: dict, timings: dict) -> str:
    """Write ``profile.md`` (relative links to the PNGs beside it); returns its path."""
    head = [f"# Profile of bronze_users, run {cfg.run_id}\n",
            f"Bronze run read: `{prof.bronze_run}`; users: **{prof.users:,}**; feature columns: "
            f"{len(prof.features)}; overall switch rate: **{_pct(prof.overall_rate)}**.  ",
            f"Tables: `{cfg.table('eda_columns').rsplit('/', 1)[0]}/*` (run_id = `{cfg.run_id}`); "
            "see docs/profile.md for every table and column.\n"]
    sections = [head, _missing_section(cfg.columns, prof, figs), _typing_section(cfg, prof),
                _categorical_section(cfg.columns, prof, figs), _numeric_section(cfg.columns, prof, figs),
                _correlation_section(prof, figs),
                ["## Run time\n", _table(["step", "seconds"], [[k, v] for k, v in timings.items()]) + "\n"]]
    return out_dir.write_text("profile.md", "\n".join(line for sec in sections for line in sec))


def _missing_section(d: ColumnDictionary, prof: Profile, figs: dict) -> list[str]:
    users, per_group = prof.users, prof.per_group
    return [
        "## 1. Missing values\n",
        _img(figs, "missing_share", "share of users missing each column"),
        "### Per dimension group\n",
        _table(["group", "columns", "users missing all", "users missing any", "share (all)"],
               [[g, len(cols), f"{per_group[g]['users_all_missing']:,}", f"{per_group[g]['users_any_missing']:,}",
                 _pct(per_group[g]["users_all_missing"] / users)] for g, cols in prof.groups.items()]) + "\n",
        "### Missing blocks found from the data\n",
        "Columns are in one block when they are missing for exactly the same users; "
        "`inside` names the smallest block whose users include this block's users.\n",
        _table(["block", "users missing", "share", "inside", "groups", "columns"],
               [[b["block"], f"{b['users_missing']:,}", _pct(b["users_missing"] / users),
                 b["contained_in"] or "", ", ".join(dict.fromkeys(d[c].group if c in d else "other"
                                                                for c in b["columns"])),
                 ", ".join(f"{c} {d.readable(c)}" for c in b["columns"])] for b in prof.blocks]) + "\n",
        f"{prof.n_patterns} distinct missingness patterns; the most common:\n",
        _table(["#", "users", "switch rate", "blocks missing", "columns missing"],
               [[r["rank"], f"{r['users']:,}", _pct(r["switch_rate"]),
                 ", ".join(map(str, r["missing_blocks"])) or "none", r["missing_count"]]
                for r in prof.pattern_rows[:12]]) + "\n",
        _img(figs, "missing_patterns", "missingness patterns"),
        _img(figs, "missing_matrix", "missingness of a sample of users"),
        _img(figs, "co_missing", "co-missing heatmap")]


def _typing_section(cfg, prof: Profile) -> list[str]:
    cats = [r for r in prof.col_rows if r["role"] == "categorical"]
    return [
        "## 2. Column typing\n",
        f"{len(cats)} categorical columns (text, or numeric with at most "
        f"{cfg.get('profile.categorical_max_distinct')} distinct values), "
        f"{len(prof.col_rows) - len(cats)} numeric. `~` marks a HyperLogLog estimate.\n",
        _table(["column", "name", "group", "declared", "missing", "distinct", "role"],
               [[r["column"], r["name"], r["group"], r["declared_type"], _pct(r["null_share"]),
                 ("" if r["distinct_exact"] else "~") + f"{r['distinct']:,}", r["role"]]
                for r in prof.col_rows]) + "\n"]


def _categorical_section(d: ColumnDictionary, prof: Profile, figs: dict) -> list[str]:
    best, common = {}, {}
    for r in prof.cat_rows:
        if r["users"] >= max(30, 0.01 * prof.users) and r["switch_rate"] is not None:
            if r["column"] not in best or r["switch_rate"] > best[r["column"]]["switch_rate"]:
                best[r["column"]] = r
        if r["column"] not in common or r["users"] > common[r["column"]]["users"]:
            common[r["column"]] = r
    return [
        "## 3. Categorical columns\n",
        _img(figs, "categorical_grid", "categorical columns: users and switch rate per value"),
        "Most common value and value with the highest switch rate (values with at least 1% of users):\n",
        _table(["column", "name", "most common", "users", "highest rate", "rate"],
               [[c, d.readable(c), safe_text(common[c]["value_label"]), f"{common[c]['users']:,}",
                 safe_text(best[c]["value_label"]) if c in best else "",
                 _pct(best[c]["switch_rate"]) if c in best else ""]
                for c in dict.fromkeys(r["column"] for r in prof.cat_rows)]) + "\n"]


def _numeric_section(d: ColumnDictionary, prof: Profile, figs: dict) -> list[str]:
    by = {r["column"]: r for r in prof.col_rows}
    quantiles = ("min", "p01", "p25", "p50", "p75", "p99", "max")
    return [
        "## 4. Age, time in network and the other numeric columns\n",
        _img(figs, "rate_curves", "switch rate by age and by tenure"),
        _img(figs, "numeric_grid", "numeric distributions"),
        _table(["column", "name", "min", "p01", "p25", "median", "p75", "p99", "max", "outliers low",
                "outliers high"],
               [[c, d.readable(c), *[_num(by[c][q]) for q in quantiles],
                 f"{prof.outliers.get(c, (0, 0))[0]:,}", f"{prof.outliers.get(c, (0, 0))[1]:,}"]
                for c in prof.hist_cols]) + "\n"]


def _correlation_section(prof: Profile, figs: dict) -> list[str]:
    return [
        "## 5. Correlation\n",
        _img(figs, "correlation", "Pearson correlation heatmap"),
        f"Pairs with |r| > {prof.threshold} and the column the pipeline drops "
        "(rule: lib/prospects/profile/correlation.py: strongest pair first; drop the column with the higher "
        "mean |r| to all other columns, ties the later column; a pair already resolved drops nothing):\n",
        _table(["a", "b", "r", "mean abs r (a)", "mean abs r (b)", "drop", "why"],
               [[f"{r['col_a']} {r['name_a']}", f"{r['col_b']} {r['name_b']}", f"{r['r']:.3f}",
                 f"{r['mean_abs_a']:.3f}", f"{r['mean_abs_b']:.3f}", r["drop"] or "-", r["reason"]]
                for r in prof.pair_rows]) + "\n"]
