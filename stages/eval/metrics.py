"""From scored eval answers to per-task-type metrics with bootstrap intervals, and their tables.

Every metric is first computed per task (a task's greedy reward, the mean and the best of its n
sampled rewards, their standard deviation...), then averaged over the tasks of a type. The 95%
interval is the percentile bootstrap over tasks (resampled with replacement, ``bootstrap_samples``
times, seeded); the change trained − start is bootstrapped on the same resampled tasks (paired), so
its interval says whether the difference is more than the luck of which tasks were held out.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final, Iterable

__all__ = ["METRICS", "Metric", "ROLES", "per_task_values", "bootstrap_means", "summarize", "format_table", "markdown_table"]

ROLES: Final[tuple[str, ...]] = ("start", "trained")


@dataclass(frozen=True)
class Metric:
    """One reported metric: its key in ``eval.json``, its label in the tables, and which task types have it."""

    key: str
    label: str
    task_types: tuple[str, ...] | None = None  # None: every task type with a reward


# Order of the table rows. Greedy metrics first (the benchmark-style numbers), then the sampled ones.
METRICS: Final[tuple[Metric, ...]] = (
    Metric("reward", "reward (greedy)"),
    Metric("iou_at_0.5", "IoU@0.5 accuracy", ("grounding",)),
    Metric("edit_similarity", "edit similarity", ("ocr",)),
    Metric("anls", "ANLS", ("ocr",)),
    Metric("accuracy", "accuracy", ("vqa",)),
    Metric("parse_rate", "parse rate"),
    Metric("sample_reward", "reward (mean of n)"),
    Metric("best_of_n", "best-of-n reward"),
    Metric("reward_spread", "reward spread (std of n)"),
)


def per_task_values(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    """``{role: {task_type: {metric: {task_id: value}}}}`` from eval rows (rows without a reward are skipped)."""
    greedy: dict[tuple, dict[str, Any]] = {}
    samples: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["reward"] is None:
            continue
        key = (row["model_role"], row["task_type"], row["task_id"])
        if row["decoding"] == "greedy":
            greedy[key] = row
        else:
            samples[key].append(row)
    out: dict = defaultdict(lambda: defaultdict(dict))
    for key in sorted(set(greedy) | set(samples)):
        role, task_type, task_id = key
        values: dict[str, float] = {}
        if key in greedy:
            first = greedy[key]
            values["reward"] = first["reward"]
            values["parse_rate"] = float(bool(first["parse_ok"]))
            values.update(json.loads(first["metrics"] or "{}"))
        if samples.get(key):
            rewards = [r["reward"] for r in samples[key]]
            mean = sum(rewards) / len(rewards)
            values["sample_reward"] = mean
            values["best_of_n"] = max(rewards)
            values["reward_spread"] = math.sqrt(sum((r - mean) ** 2 for r in rewards) / len(rewards))
            if key not in greedy:  # no greedy answers: the accuracy-type metrics come from the samples
                values["parse_rate"] = sum(bool(r["parse_ok"]) for r in samples[key]) / len(rewards)
                extras = [json.loads(r["metrics"] or "{}") for r in samples[key]]
                for name in extras[0] if extras else {}:
                    values[name] = sum(e[name] for e in extras) / len(extras)
        for metric, value in values.items():
            out[role][task_type].setdefault(metric, {})[task_id] = float(value)
    return out


def _interval(draws: list[float], confidence: float) -> tuple[float, float]:
    draws = sorted(draws)
    tail = (1 - confidence) / 2
    low = draws[max(0, math.floor(tail * len(draws)))]
    high = draws[min(len(draws) - 1, math.ceil((1 - tail) * len(draws)) - 1)]
    return low, high


def bootstrap_means(columns: dict[str, list[float]], samples: int, confidence: float, seed: int) -> dict[str, dict[str, float]]:
    """Mean and percentile interval of each equally long column, all resampled with the same task indices."""
    import numpy as np

    rng = np.random.default_rng(seed)
    n = len(next(iter(columns.values())))
    index = rng.integers(0, n, size=(samples, n))
    out = {}
    for name, values in columns.items():
        array = np.asarray(values, dtype=float)
        draws = array[index].mean(axis=1).tolist()
        low, high = _interval(draws, confidence)
        out[name] = {"mean": float(array.mean()), "low": low, "high": high}
    return out


def summarize(
    rows: Iterable[dict[str, Any]],
    models: dict[str, str],
    *,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``eval.json`` summary of eval rows: per task type and metric, each role's mean with its interval,
    and the paired change trained − start where both were evaluated on the same tasks."""
    per_task = per_task_values(rows)
    task_types = sorted({t for role in per_task.values() for t in role})
    summary: dict[str, Any] = {
        "models": dict(models),
        "confidence": confidence,
        "bootstrap_samples": samples,
        "settings": dict(settings or {}),
        "tasks": {},
        "metrics": {},
    }
    for t_index, task_type in enumerate(task_types):
        summary["tasks"][task_type] = len({i for role in per_task.values() for m in role.get(task_type, {}).values() for i in m})
        table: dict[str, dict[str, Any]] = {}
        for metric in METRICS:
            if metric.task_types is not None and task_type not in metric.task_types:
                continue
            by_role = {r: per_task.get(r, {}).get(task_type, {}).get(metric.key, {}) for r in ROLES}
            by_role = {r: v for r, v in by_role.items() if v}
            if not by_role:
                continue
            ids = sorted(set.intersection(*(set(v) for v in by_role.values())))  # tasks every role answered
            if not ids:
                continue
            columns = {role: [values[i] for i in ids] for role, values in by_role.items()}
            if len(columns) == len(ROLES):
                columns["change"] = [b - a for a, b in zip(columns["start"], columns["trained"])]
            table[metric.key] = bootstrap_means(columns, samples, confidence, seed + t_index)
        summary["metrics"][task_type] = table
    return summary


def _cell(stat: dict[str, float] | None, signed: bool = False) -> str:
    if stat is None:
        return "-"
    sign = "+" if signed else ""
    return f"{stat['mean']:{sign}.3f} [{stat['low']:{sign}.2f}, {stat['high']:{sign}.2f}]"


def _rows(summary: dict[str, Any]) -> list[list[str]]:
    labels = {m.key: m.label for m in METRICS}
    out = []
    for task_type, table in summary["metrics"].items():
        for key, stats in table.items():
            out.append([
                f"{task_type} ({summary['tasks'][task_type]})", labels[key],
                _cell(stats.get("start")), _cell(stats.get("trained")), _cell(stats.get("change"), signed=True),
            ])
    return out


_HEADER = ["task type (tasks)", "metric", "start", "trained", "change"]


def _title(summary: dict[str, Any]) -> str:
    settings = summary.get("settings", {})
    pct = round(summary["confidence"] * 100)
    n = settings.get("n", "?")
    return f"held-out eval: greedy answer and {n} samples per task; mean [{pct}% bootstrap interval over tasks]"


def format_table(summary: dict[str, Any]) -> str:
    """The summary as an aligned text table (what `run` and `status` print)."""
    rows = [_HEADER, *_rows(summary)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADER))]
    models = summary.get("models", {})
    lines = [_title(summary)]
    lines += [f"  {role}: {name}" for role, name in models.items()]
    lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def markdown_table(summary: dict[str, Any]) -> str:
    """The summary as a Markdown table (the dataset card, RESULTS.md)."""
    lines = [f"_{_title(summary)}_", ""]
    lines += [f"- {role}: `{name}`" for role, name in summary.get("models", {}).items()]
    lines += ["", "| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(summary)]
    return "\n".join(lines)
