"""``eval.png``: per task type, the start and trained models' metrics as bars with their intervals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.eval.metrics import METRICS, ROLES
from stages.lib.files import atomic_write

__all__ = ["write_eval_plot", "plot_bars"]

_SHOWN = ("reward", "iou_at_0.5", "edit_similarity", "anls", "accuracy", "parse_rate", "sample_reward", "best_of_n")


def plot_bars(groups: dict[str, dict[str, dict[str, dict[str, float]]]], series: list[str], path: Path, title: str) -> Path:
    """One panel per group (task type): for each metric a bar per series with its interval; written atomically.

    ``groups[group][metric][series] = {"mean", "low", "high"}``; missing entries are left out.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = {m.key: m.label for m in METRICS}
    names = list(groups) or ["(none)"]
    widest = max([len(groups[g]) for g in groups] or [1])
    fig = Figure(figsize=(max(4.0, 0.28 * len(series) * widest + 1.2) * len(names), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize="medium")
    width = 0.8 / max(1, len(series))
    for g_index, group in enumerate(names):
        ax = fig.add_subplot(1, len(names), g_index + 1)
        metrics = [m for m in groups.get(group, {}) if groups[group][m]]
        for s_index, name in enumerate(series):
            xs, heights, errors = [], [], [[], []]
            for m_index, metric in enumerate(metrics):
                stat = groups[group][metric].get(name)
                if stat is None:
                    continue
                xs.append(m_index + (s_index - (len(series) - 1) / 2) * width)
                heights.append(stat["mean"])
                errors[0].append(max(0.0, stat["mean"] - stat["low"]))
                errors[1].append(max(0.0, stat["high"] - stat["mean"]))
            ax.bar(xs, heights, width=width, yerr=errors, capsize=2, label=name)
        ax.set_xticks(range(len(metrics)), [labels.get(m, m) for m in metrics], rotation=35, ha="right", fontsize="small")
        top = max([s["high"] for m in groups.get(group, {}).values() for s in m.values()] or [1.0])
        ax.set_ylim(0, min(1.05, max(0.1, 1.15 * top)))  # per panel, so small rewards stay readable
        ax.set_title(group)
        if g_index == 0:
            ax.legend(fontsize="small")
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    return Path(path)


def write_eval_plot(summary: dict[str, Any], path: Path) -> Path:
    """Plot an ``eval.json`` summary: start vs trained per task type (bars: mean, whiskers: the interval)."""
    groups = {
        task_type: {key: {r: s[r] for r in ROLES if r in s} for key, s in table.items() if key in _SHOWN}
        for task_type, table in summary["metrics"].items()
    }
    pct = round(summary["confidence"] * 100)
    return plot_bars(groups, [r for r in ROLES if r in summary.get("models", {})], path, f"held-out eval ({pct}% intervals)")
