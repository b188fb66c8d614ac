"""The table and chart of `make reproduce` (bench/reproduce.py): aggregation over seeds, Markdown, RESULTS.md.

Per method and task type, each metric is first computed per held-out task and seed
(:func:`stages.eval.metrics.per_task_values`), averaged over the seeds per task, then averaged over the
tasks with a percentile bootstrap interval over tasks (:func:`stages.eval.metrics.bootstrap_means`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from stages.eval.metrics import bootstrap_means, per_task_values

__all__ = ["TABLE_METRICS", "aggregate", "markdown", "write_results"]

# (task type, metric) columns of the main table, then of the second one.
TABLE_METRICS = (
    ("grounding", "reward"), ("ocr", "reward"), ("vqa", "reward"),
)
DETAIL_METRICS = (
    ("grounding", "iou_at_0.5"), ("ocr", "anls"), ("vqa", "accuracy"),
    ("grounding", "sample_reward"), ("ocr", "sample_reward"), ("vqa", "sample_reward"),
    ("grounding", "best_of_n"),
)
START, BEGIN, END = "start", "<!-- reproduce:begin -->", "<!-- reproduce:end -->"


def _seed_mean(per_seed: dict[int, list[dict]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{task_type: {metric: {task_id: mean over seeds}}}`` of one method's eval rows per seed."""
    sums: dict[tuple[str, str, str], list[float]] = {}
    for rows in per_seed.values():
        for task_type, metrics in per_task_values(rows).get("trained", {}).items():
            for metric, values in metrics.items():
                for task_id, value in values.items():
                    sums.setdefault((task_type, metric, task_id), []).append(value)
    out: dict = {}
    for (task_type, metric, task_id), values in sums.items():
        out.setdefault(task_type, {}).setdefault(metric, {})[task_id] = sum(values) / len(values)
    return out


def _greedy_texts(rows: list[dict]) -> dict[str, str]:
    return {r["task_id"]: r["text"] for r in rows if r["decoding"] == "greedy"}


def aggregate(rows: dict[str, dict[int, list[dict]]], confidence: float = 0.95, samples: int = 1000) -> dict[str, Any]:
    """``{"methods": [...], "cells": {method: {(task_type, metric): stat}}, "changed": {method: share}, "seed_std": ...}``."""
    per_method = {method: _seed_mean(per_seed) for method, per_seed in rows.items()}
    cells: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
    for t_index, (task_type, metric) in enumerate(TABLE_METRICS + DETAIL_METRICS):
        ids = None
        for values in per_method.values():
            found = set(values.get(task_type, {}).get(metric, {}))
            ids = found if ids is None else ids & found
        ids = sorted(ids or [])
        if not ids:
            continue
        columns = {m: [v[task_type][metric][i] for i in ids] for m, v in per_method.items()}
        for method, stat in bootstrap_means(columns, samples, confidence, seed=t_index).items():
            cells.setdefault(method, {})[(task_type, metric)] = {**stat, "tasks": len(ids)}
    start_text = _greedy_texts(rows[START][0])
    changed = {}
    for method, per_seed in rows.items():
        shares = [
            sum(_greedy_texts(r).get(t) != text for t, text in start_text.items()) / max(1, len(start_text))
            for r in per_seed.values()
        ]
        changed[method] = sum(shares) / len(shares)
    seed_std = {}
    for method, per_seed in rows.items():
        for task_type, metric in TABLE_METRICS:
            means = []
            for r in per_seed.values():
                values = per_task_values(r).get("trained", {}).get(task_type, {}).get(metric, {})
                if values:
                    means.append(sum(values.values()) / len(values))
            if len(means) > 1:
                mu = sum(means) / len(means)
                seed_std.setdefault(method, {})[f"{task_type}.{metric}"] = (sum((m - mu) ** 2 for m in means) / (len(means) - 1)) ** 0.5
    return {"methods": list(rows), "cells": cells, "changed": changed, "seed_std": seed_std, "confidence": confidence}


def _cell(stat: dict[str, float] | None) -> str:
    if stat is None:
        return "-"
    return f"{stat['mean']:.3f} [{stat['low']:.3f}, {stat['high']:.3f}]"


def _table(table: dict[str, Any], columns: tuple[tuple[str, str], ...], with_changed: bool) -> list[str]:
    labels = {"reward": "reward", "iou_at_0.5": "IoU@0.5", "anls": "ANLS", "accuracy": "accuracy",
              "sample_reward": "mean of n", "best_of_n": "best of n"}
    tasks = {k: s.get("tasks") for m in table["cells"].values() for k, s in m.items()}
    head = ["method"] + [f"{t} {labels[m]} ({tasks.get((t, m), '?')} tasks)" for t, m in columns]
    if with_changed:
        head.append("greedy answers changed")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in table["methods"]:
        cells = [_cell(table["cells"].get(method, {}).get(c)) for c in columns]
        if with_changed:
            cells.append(f"{table['changed'][method]:.0%}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def markdown(table: dict[str, Any], setup: dict[str, Any]) -> str:
    """The RESULTS.md section: command, setup, the two tables, the chart."""
    pct = round(table["confidence"] * 100)
    lines = [
        BEGIN,
        "## reproduce (`make reproduce`): every method from the warm-started policy, held-out eval",
        "",
        f"Command: `{setup['command']}`; {setup['seconds']} s wall on this machine with {setup['workers']} worker "
        f"processes (warm start {setup['warm_seconds']} s of it; 0 when cached).",
        f"Data: one run of `pipeline.toml` with the warm-started policy: {setup['train_tasks']} training tasks, "
        f"{setup['lists']} ranked lists; {setup['eval_tasks']} held-out tasks (never sampled, ranked or trained on).",
        f"Training: every method {setup['steps']} optimizer steps ({setup['epochs']:g} passes over the lists, one list "
        f"per step), learning rate {setup['lr']:g}, its published default β, seeds 0..{setup['seeds'] - 1} (data order).",
        f"Eval: greedy answer (reward columns) and n = {setup['n']} samples per held-out task, the pipeline's rewards; "
        f"mean [{pct}% percentile bootstrap over tasks], the {setup['seeds']} seeds averaged per task first.",
        "",
        "Greedy reward per task type (grounding: IoU reward; ocr: 1 - normalized edit distance; vqa: VQA accuracy):",
        "",
        *_table(table, TABLE_METRICS, with_changed=True),
        "",
        "Task metrics and sampled answers:",
        "",
        *_table(table, DETAIL_METRICS, with_changed=False),
        "",
        "Seed-to-seed standard deviation of the greedy reward (over the 3 seeds' task means): "
        + "; ".join(f"{m}: " + ", ".join(f"{k.split('.')[0]} {v:.3f}" for k, v in s.items()) for m, s in table["seed_std"].items()),
        "",
        "![reproduce](reproduce.png)",
        END,
    ]
    return "\n".join(lines)


def _chart(table: dict[str, Any], path: Path) -> None:
    from stages.eval.plot import plot_bars

    groups: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for method, cells in table["cells"].items():
        for (task_type, metric), stat in cells.items():
            if metric in ("reward", "sample_reward"):
                groups.setdefault(task_type, {}).setdefault(metric, {})[method] = stat
    pct = round(table["confidence"] * 100)
    plot_bars(groups, table["methods"], path, f"held-out reward per method ({pct}% bootstrap intervals)")


def write_results(table: dict[str, Any], setup: dict[str, Any], results: Path, chart: Path) -> str:
    """Write the chart (and its figures as ``<chart>.json``) and put the section into ``results`` (replacing an
    earlier one); return the section."""
    from stages.lib.files import atomic_write_text

    import json

    _chart(table, chart)
    cells = {m: {f"{t}/{k}": v for (t, k), v in c.items()} for m, c in table["cells"].items()}
    atomic_write_text(chart.with_suffix(".json"), json.dumps({**table, "cells": cells, "setup": setup}, indent=1) + "\n")
    section = markdown(table, setup)
    text = results.read_text(encoding="utf-8") if results.is_file() else ""
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_text(results, text)
    return section
