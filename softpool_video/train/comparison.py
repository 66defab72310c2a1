"""Multi-seed pooling comparisons: summary statistics, paired differences, the table and the plot.

Every pooling kind is trained with the same seeds (seed i of kind A is paired with seed i of kind B:
same initial draw of the data order and augmentations, same budget), so a kind is compared to the
reference kind (the first) by the per-seed differences d_i = metric_A(seed i) - metric_ref(seed i):
their mean, their sample standard deviation and a two-sided 95% confidence interval of the mean
difference from Student's t with n - 1 degrees of freedom. With 3 seeds that interval is wide
(t = 4.303): it says honestly how little 3 runs can tell apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["KindSummary", "paired_summary", "plot_comparison", "summary_table", "t_critical_975"]

# Two-sided 95% critical values of Student's t (the 0.975 quantile) for 1..30 degrees of freedom,
# then 40, 60, 120 and infinity; between table entries the value is interpolated in 1/df.
_T_975 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
    10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101,
    19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052,
    28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980,
}  # fmt: skip
_T_975_INFINITY = 1.960


def t_critical_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df >= 1`` degrees of freedom (3 decimals)."""
    if isinstance(df, bool) or not isinstance(df, int) or df < 1:
        raise ValueError(f"t_critical_975: df must be an int >= 1, got {df!r}")
    if df in _T_975:
        return _T_975[df]
    larger = [d for d in _T_975 if d > df]
    lo = max(d for d in _T_975 if d < df)
    hi_df, hi_value = (min(larger), _T_975[min(larger)]) if larger else (math.inf, _T_975_INFINITY)
    weight = (1 / lo - 1 / df) / (1 / lo - (0 if hi_df == math.inf else 1 / hi_df))
    return _T_975[lo] + weight * (hi_value - _T_975[lo])


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _std(values: Sequence[float]) -> float:
    """Sample standard deviation (n - 1); 0 for one value."""
    if len(values) < 2:
        return 0.0
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


@dataclass(frozen=True)
class KindSummary:
    """One pooling kind over its seeds, and its paired comparison to the reference kind.

    ``differences`` are per seed (this kind minus the reference, in seed order); ``ci95`` is the 95%
    confidence interval of their mean (``None`` for the reference itself and for one seed).
    """

    kind: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    mean: float
    std: float
    differences: tuple[float, ...] | None
    mean_difference: float | None
    ci95: tuple[float, float] | None


def paired_summary(
    values: Mapping[str, Mapping[int, float]], reference: str | None = None
) -> list[KindSummary]:
    """``values[kind][seed]`` (e.g. video top-1 in %) -> one :class:`KindSummary` per kind, in order.

    The reference is ``reference`` or the first kind. Only seeds that both kinds ran are paired.
    """
    if not values:
        raise ValueError("paired_summary: no results")
    kinds = list(values)
    reference = kinds[0] if reference is None else reference
    if reference not in values:
        raise ValueError(f"paired_summary: reference {reference!r} is not one of {kinds}")
    summaries = []
    for kind in kinds:
        seeds = tuple(sorted(values[kind]))
        own = tuple(float(values[kind][s]) for s in seeds)
        differences = mean_difference = ci95 = None
        if kind != reference:
            paired = [s for s in seeds if s in values[reference]]
            differences = tuple(float(values[kind][s]) - float(values[reference][s]) for s in paired)
            if differences:
                mean_difference = _mean(differences)
            if len(differences) >= 2:
                half = t_critical_975(len(differences) - 1) * _std(differences) / math.sqrt(len(differences))
                ci95 = (mean_difference - half, mean_difference + half)
        summaries.append(
            KindSummary(kind, seeds, own, _mean(own), _std(own), differences, mean_difference, ci95)
        )
    return summaries


def summary_table(
    summaries: Sequence[KindSummary], metric: str = "video top-1"
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (percentages with one decimal)."""
    reference = next(s.kind for s in summaries if s.differences is None)
    header = [
        "pooling",
        "seeds",
        f"{metric} mean ± std",
        "per seed",
        f"Δ vs {reference} per seed",
        "mean Δ [95% CI]",
    ]
    rows = []
    for s in summaries:
        per_seed = ", ".join(f"{v:.1f}" for v in s.values)
        if s.differences is None:
            diffs, interval = "(reference)", ""
        else:
            diffs = ", ".join(f"{d:+.1f}" for d in s.differences)
            interval = f"{s.mean_difference:+.1f}" if s.mean_difference is not None else ""
            if s.ci95 is not None:
                interval += f" [{s.ci95[0]:+.1f}, {s.ci95[1]:+.1f}]"
        rows.append([s.kind, str(len(s.seeds)), f"{s.mean:.1f} ± {s.std:.1f}", per_seed, diffs, interval])
    return header, rows


def plot_comparison(
    summaries: Sequence[KindSummary], path: Path, title: str, metric: str = "video top-1 (%)"
) -> Path:
    """A PNG: every seed's value as a dot (the same seed joined by a grey line across kinds), the mean
    as a bar with ± std whiskers, one column per kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(summaries), 4.5))
    positions = range(len(summaries))
    ax.bar(
        positions,
        [s.mean for s in summaries],
        yerr=[s.std for s in summaries],
        color="#9ecae1",
        edgecolor="#3182bd",
        capsize=6,
        width=0.6,
        label="mean ± std",
        zorder=1,
    )
    seeds = sorted({seed for s in summaries for seed in s.seeds})
    for seed in seeds:
        xs = [i for i, s in enumerate(summaries) if seed in s.seeds]
        ys = [s.values[s.seeds.index(seed)] for s in summaries if seed in s.seeds]
        ax.plot(xs, ys, color="0.6", linewidth=0.8, zorder=2)
        ax.scatter(xs, ys, color="#08519c", s=22, zorder=3)
    ax.scatter([], [], color="#08519c", s=22, label="one seed (same seed joined)")
    ax.set_xticks(list(positions), labels=[s.kind for s in summaries])
    ax.set_ylabel(metric)
    low = min(v for s in summaries for v in s.values)
    high = max(max(v for s in summaries for v in s.values), max(s.mean + s.std for s in summaries))
    ax.set_ylim(max(0.0, low - 10), min(100.0, high + 5))
    ax.set_title(title, fontsize=10)
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
