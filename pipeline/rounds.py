"""On-policy rounds: round r samples from the model round r − 1 trained, then trains it further.

PerPO and RLAIF-V iterate this way: each round's lists hold the current policy's own answers. With
``[run] rounds = K > 1`` the run folder holds one complete run folder per round::

    <run>/config.toml                 the resolved config
    <run>/round-01/ ... round-K/      each a run folder of its own (stages, report, export)
    <run>/report/rounds.json          every round's eval summary; rounds.txt the table of them

Round 1 uses the configured models. In round r > 1 every section whose model is the policy (the
``[sample]`` model, which ``[perturb]``, ``[reference]``, ``[train]`` and ``[eval]`` default to) gets
round r − 1's trained model: it samples, is its own reference, is trained further, and is the
"start" column of that round's eval table. Each round resumes shard by shard like any run, so a
crash in round r resumes at round r. ``round-NN/_round.json`` records the digest of the model the
round started from; when an earlier round retrained to different weights, the round is redone
from the sample stage (its ingest is kept).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from pipeline.store import RunStore
from stages.lib.files import atomic_write_text

__all__ = ["ROUND_MARKER", "round_dir", "round_dirs", "round_config", "run_rounds", "rounds_summary", "format_rounds"]

ROUND_MARKER = "_round.json"
_POLICY_SECTIONS = ("sample", "perturb", "reference", "train", "eval")


def round_dir(run_dir: Path, index: int) -> Path:
    """The folder of round ``index`` (1-based)."""
    return Path(run_dir) / f"round-{index:02d}"


def round_dirs(run_dir: Path) -> list[Path]:
    """The round folders of a multi-round run, in order (empty for a one-round run)."""
    run_dir = Path(run_dir)
    return sorted(p for p in run_dir.glob("round-[0-9][0-9]") if p.is_dir()) if run_dir.is_dir() else []


def round_config(cfg: BaseModel, policy: str | None) -> BaseModel:
    """A copy of ``cfg`` whose policy sections use model ``policy`` (None: ``cfg`` unchanged, round 1)."""
    out = cfg.model_copy(deep=True)
    if policy is None:
        return out
    first = cfg.sample.engine.model
    for name in _POLICY_SECTIONS:
        section = getattr(out, name, None)
        holder = getattr(section, "engine", section)  # model stages: [<stage>.engine]; train: its own model
        if holder is not None and getattr(holder, "model", None) in ("", first):
            holder.model = policy
    from pipeline.config import link_reference_to_sample

    link_reference_to_sample(out)
    return out


def _start_digest(model: str) -> str | None:
    from stages.lib.models.digest import model_digest

    return model_digest(model) if Path(model).is_dir() else None


def _stale_round(folder: Path, start_model: str, digest: str | None) -> bool:
    """True if ``folder`` holds a round made from other weights than ``start_model``'s ``digest`` now."""
    marker = folder / ROUND_MARKER
    if not marker.is_file():
        return False
    saved = json.loads(marker.read_text(encoding="utf-8"))
    return saved.get("start_model") != start_model or saved.get("start_digest") != digest


def run_rounds(
    cfg: BaseModel,
    run_dir: Path,
    run_round: Callable[[BaseModel, Path, list[str]], Any],
    trained_model: Callable[[Path], str],
    log: Callable[[str], None] | None = None,
) -> list[tuple[int, Any]]:
    """Run ``cfg.run.rounds`` rounds into ``run_dir`` and write ``report/rounds.json``; return each round's result.

    ``run_round(round_cfg, folder, force)`` runs one round (the CLI's run: stages, report, export) and
    ``trained_model(folder)`` names the model it trained. ``force`` is ``["sample"]`` for a round whose
    starting model changed since it was last run, else empty.
    """
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    with store.lock():
        from pipeline.config import config_to_toml

        store.write_config_snapshot(config_to_toml(cfg))
    results = []
    policy: str | None = None
    for index in range(1, cfg.run.rounds + 1):
        folder = round_dir(run_dir, index)
        round_cfg = round_config(cfg, policy)
        digest = _start_digest(round_cfg.sample.engine.model)
        force = ["sample"] if _stale_round(folder, round_cfg.sample.engine.model, digest) else []
        if log is not None:
            log(f"round {index}/{cfg.run.rounds}: policy {round_cfg.sample.engine.model}" + (" (changed: redoing)" if force else ""))
        results.append((index, run_round(round_cfg, folder, force)))
        marker = {"round": index, "start_model": round_cfg.sample.engine.model, "start_digest": digest}
        atomic_write_text(folder / ROUND_MARKER, json.dumps(marker, indent=2) + "\n")
        policy = trained_model(folder)
    write_rounds_report(run_dir)
    return results


def rounds_summary(run_dir: Path) -> list[dict[str, Any]]:
    """Each finished round's ``{round, folder, eval}`` (eval: the round's summary, or None)."""
    from pipeline.eval_report import eval_summary

    out = []
    for folder in round_dirs(run_dir):
        marker = folder / ROUND_MARKER
        index = json.loads(marker.read_text(encoding="utf-8"))["round"] if marker.is_file() else int(folder.name[-2:])
        out.append({"round": index, "folder": str(folder), "eval": eval_summary(folder)})
    return out


def format_rounds(rounds: list[dict[str, Any]]) -> str:
    """One table over rounds: per task type and metric, the first round's start model, then each round's trained model."""
    evaluated = [r for r in rounds if r["eval"]]
    if not evaluated:
        return "rounds: no eval yet"
    from stages.eval.metrics import METRICS

    labels = {m.key: m.label for m in METRICS}
    first = evaluated[0]["eval"]
    header = ["task type", "metric", "start"] + [f"round {r['round']}" for r in evaluated]
    rows = [header]
    for task_type, table in first["metrics"].items():
        for key, stats in table.items():
            start = stats.get("start")
            row = [task_type, labels.get(key, key), "-" if start is None else f"{start['mean']:.3f}"]
            for r in evaluated:
                stat = r["eval"]["metrics"].get(task_type, {}).get(key, {}).get("trained")
                row.append("-" if stat is None else f"{stat['mean']:.3f} [{stat['low']:.2f}, {stat['high']:.2f}]")
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["held-out eval per round (trained model of each round; start = the policy before round 1)"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def write_rounds_report(run_dir: Path) -> Path:
    """Write ``report/rounds.json`` and ``report/rounds.txt`` for a multi-round run; return the JSON path."""
    rounds = rounds_summary(run_dir)
    report = RunStore(run_dir).report_dir
    atomic_write_text(report / "rounds.json", json.dumps(rounds, indent=2) + "\n")
    atomic_write_text(report / "rounds.txt", format_rounds(rounds) + "\n")
    return report / "rounds.json"
