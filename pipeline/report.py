"""A run's report: ``stats.json`` (what came in, what went out, what was filtered or quarantined and why)
and PNG plots (reward histograms per task type and origin, list sizes).

Counts of rows that left the flow are read from two places so that nothing disappears silently:
stage metrics named ``dropped_<reason>`` (filters, e.g. rank's ``dropped_low_spread``) and the
quarantine table (bad input, by stage and reason).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from data_schemas.tables import SCHEMA_VERSION, empty_table
from stages.lib.files import atomic_write

__all__ = ["STATS_FILE", "REWARD_PLOT", "LIST_SIZE_PLOT", "REPORT_TABLES", "write_report", "compute_stats"]

STATS_FILE = "stats.json"
REWARD_PLOT = "reward_hist.png"
LIST_SIZE_PLOT = "list_sizes.png"
_DROPPED_PREFIX = "dropped_"
REPORT_TABLES: tuple[str, ...] = ("tasks", "scored", "listwise", "pairs", "groups", "quarantine")  # what it reads


def _table(tables: dict[str, pa.Table], name: str, columns: list[str]) -> pa.Table:
    """Return ``tables[name]`` restricted to ``columns`` (an empty table of the schema if absent)."""
    table = tables.get(name)
    if table is None:
        table = empty_table(name)
    return table.select(columns)


def _counts(values: list[Any]) -> dict[str, int]:
    return {str(k): v for k, v in sorted(Counter(values).items(), key=lambda kv: str(kv[0]))}


def _reward_stats(scored: pa.Table, task_types: pa.Table) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """Return ``{task_type: {origin: {n, null, mean, std}}}``; std is the population standard deviation."""
    joined = scored.join(task_types, "task_id", join_type="left outer")
    joined = joined.set_column(
        joined.schema.get_field_index("task_type"), "task_type", pc.fill_null(joined["task_type"], "unknown")
    )
    # origin is never null, so its count is the number of candidates; reward's count skips nulls.
    grouped = joined.group_by(["task_type", "origin"]).aggregate(
        [("origin", "count"), ("reward", "count"), ("reward", "mean"), ("reward", "stddev")]
    )
    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for row in sorted(grouped.to_pylist(), key=lambda r: (r["task_type"], r["origin"])):
        mean, std = row["reward_mean"], row["reward_stddev"]
        out.setdefault(row["task_type"], {})[row["origin"]] = {
            "n": row["reward_count"],
            "null": row["origin_count"] - row["reward_count"],
            "mean": None if mean is None or math.isnan(mean) else round(mean, 6),
            "std": None if std is None or math.isnan(std) else round(std, 6),
        }
    return out


def _filtered(stage_metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, int]]:
    return {
        stage: {k[len(_DROPPED_PREFIX) :]: int(v) for k, v in sorted(metrics.items()) if k.startswith(_DROPPED_PREFIX)}
        for stage, metrics in stage_metrics.items()
        if any(k.startswith(_DROPPED_PREFIX) for k in metrics)
    }


def compute_stats(tables: dict[str, pa.Table], stage_metrics: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Return the report's statistics as a JSON-ready dict (no files written). Missing tables count as empty."""
    tasks = _table(tables, "tasks", ["task_id", "task_type"])
    scored = _table(tables, "scored", ["task_id", "origin", "reward", "parse_ok"])
    listwise = _table(tables, "listwise", ["task_id", "task_type", "responses", "rewards"])
    pairs = _table(tables, "pairs", ["chosen_origin", "rejected_origin", "margin"])
    groups = _table(tables, "groups", ["chosen"])
    quarantine = _table(tables, "quarantine", ["stage", "reason"])

    filtered = _filtered(stage_metrics)
    n_filtered = sum(filtered.get("rank", {}).values())
    list_sizes = pc.list_value_length(listwise["responses"]).to_pylist()
    margins = [m for m in pairs["margin"].to_pylist() if m is not None]
    parse_ok = [v for v in scored["parse_ok"].to_pylist() if v is not None]
    by_stage: dict[str, dict[str, int]] = {}
    for row in quarantine.to_pylist():
        by_stage.setdefault(row["stage"], Counter())[row["reason"]] += 1
    return {
        "schema_version": SCHEMA_VERSION,
        "tasks": {
            "in": tasks.num_rows,
            "out": listwise.num_rows,
            "filtered": n_filtered,
            # Neither ranked nor filtered (quarantined at rank, or rank not run): see "quarantine".
            "other": tasks.num_rows - listwise.num_rows - n_filtered,
            "in_by_type": _counts(tasks["task_type"].to_pylist()),
            "out_by_type": _counts(listwise["task_type"].to_pylist()),
        },
        "candidates": {
            "total": scored.num_rows,
            "by_origin": _counts(scored["origin"].to_pylist()),
            "parse_ok_rate": round(sum(parse_ok) / len(parse_ok), 6) if parse_ok else None,
        },
        "rewards": _reward_stats(scored.select(["task_id", "origin", "reward"]), tasks),
        "lists": {
            "count": listwise.num_rows,
            "unscored": listwise["rewards"].null_count,
            "size_counts": _counts(list_sizes),
            "size_mean": round(sum(list_sizes) / len(list_sizes), 6) if list_sizes else None,
        },
        "pairs": {
            "count": pairs.num_rows,
            "margin_mean": round(sum(margins) / len(margins), 6) if margins else None,
            "by_origins": _counts(
                [f"{c}>{r}" for c, r in zip(pairs["chosen_origin"].to_pylist(), pairs["rejected_origin"].to_pylist())]
            ),
        },
        "groups": {"count": groups.num_rows, "k_counts": _counts(pc.list_value_length(groups["chosen"]).to_pylist())},
        "filtered": filtered,
        "quarantine": {
            "total": quarantine.num_rows,
            "by_stage": {stage: dict(sorted(reasons.items())) for stage, reasons in sorted(by_stage.items())},
        },
        "stage_metrics": {stage: dict(sorted(m.items())) for stage, m in sorted(stage_metrics.items())},
    }


def _plot_rewards(scored: pa.Table, tasks: pa.Table, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    joined = scored.filter(pc.is_valid(scored["reward"])).join(tasks, "task_id", join_type="left outer")
    rows = joined.to_pylist()
    task_types = sorted({r["task_type"] or "unknown" for r in rows})
    fig = Figure(figsize=(4.5 * max(len(task_types), 1), 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    if not task_types:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no rewards to plot", ha="center", va="center")
        ax.set_axis_off()
    for i, task_type in enumerate(task_types):
        ax = fig.add_subplot(1, len(task_types), i + 1)
        by_origin: dict[str, list[float]] = {}
        for r in rows:
            if (r["task_type"] or "unknown") == task_type:
                by_origin.setdefault(r["origin"], []).append(r["reward"])
        for origin, rewards in sorted(by_origin.items()):
            label = f"{origin} ({len(rewards)})"
            ax.hist(rewards, bins=20, range=(0.0, 1.0), histtype="step", linewidth=1.5, label=label)
        ax.set_title(task_type)
        ax.set_xlabel("reward")
        ax.set_ylabel("candidates")
        ax.legend(fontsize="small")
    fig.savefig(path, format="png", dpi=100)


def _plot_list_sizes(sizes: dict[str, int], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(5, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if sizes:
        keys = sorted(sizes, key=int)
        ax.bar([int(k) for k in keys], [sizes[k] for k in keys])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("responses per list (after dedupe and cap)")
        ax.set_ylabel("lists")
    else:
        ax.text(0.5, 0.5, "no lists", ha="center", va="center")
        ax.set_axis_off()
    fig.savefig(path, format="png", dpi=100)


def _json_scalar(value: Any) -> Any:
    """Numpy scalars in stage metrics become Python numbers; anything else its string."""
    return value.item() if hasattr(value, "item") else str(value)


def write_report(
    tables: dict[str, pa.Table], stage_metrics: dict[str, dict[str, float]], out_dir: Path
) -> dict[str, Any]:
    """Write ``stats.json``, ``reward_hist.png`` and ``list_sizes.png`` into ``out_dir``; return the stats.

    ``tables`` holds a run's concatenated tables (any of tasks, scored, listwise, pairs, groups,
    quarantine; images are not read), ``stage_metrics`` each stage's summed metrics. Empty or
    missing tables give zero counts and placeholder plots, never an error. Each file is replaced
    atomically.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = compute_stats(tables, stage_metrics)
    stats["plots"] = [REWARD_PLOT, LIST_SIZE_PLOT]
    scored = _table(tables, "scored", ["task_id", "origin", "reward"])
    tasks = _table(tables, "tasks", ["task_id", "task_type"])
    atomic_write(out_dir / REWARD_PLOT, lambda p: _plot_rewards(scored, tasks, p))
    atomic_write(out_dir / LIST_SIZE_PLOT, lambda p: _plot_list_sizes(stats["lists"]["size_counts"], p))
    atomic_write(out_dir / STATS_FILE, lambda p: p.write_text(json.dumps(stats, indent=2, default=_json_scalar) + "\n"))
    return stats
