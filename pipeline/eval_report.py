"""The held-out eval outside the stage: its report files, its table for `status`, and `perpo-pipeline eval`.

The eval stage leaves its summary in ``eval/artifacts/`` (the stage's scratch folder); after a run
:func:`write_eval_report` copies it to ``report/`` (``eval.json``, ``eval.png``, ``eval.txt``, and the
benchmark commands). :func:`evaluate_model_dir` is the command: any model folder or Hub id against the
starting policy on a run's held-out tasks, written to its own folder.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from pipeline.store import RunStore
from stages.lib.errors import ConfigError

__all__ = ["EVAL_FILES", "eval_summary", "write_eval_report", "eval_table_text", "trained_model_dir", "evaluate_model_dir"]

EVAL_FILES = ("eval.json", "eval.png", "eval.txt", "benchmarks.md", "vlmevalkit_config.json")
STAGE = "eval"


def _stage_summary_dir(run_dir: Path) -> Path:
    return RunStore(run_dir).scratch_dir(STAGE, 0, fan_in=True)


def eval_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's eval summary (``report/eval.json``, else the eval stage's own copy), or None when there is none."""
    store = RunStore(run_dir)
    if not store.read_manifest(STAGE).complete:
        return None
    for path in (store.report_dir / "eval.json", _stage_summary_dir(run_dir) / "eval.json"):
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    return None


def write_eval_report(run_dir: Path) -> list[Path]:
    """Copy the finished eval stage's summary files into ``report/``; return what was written (nothing without eval)."""
    store = RunStore(run_dir)
    if not store.read_manifest(STAGE).complete:
        return []
    source = _stage_summary_dir(run_dir)
    written = []
    for name in EVAL_FILES:
        if (source / name).is_file():
            store.report_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, store.report_dir / name)
            written.append(store.report_dir / name)
    return written


def eval_table_text(run_dir: Path) -> str | None:
    """The eval table of the run as text (what `status` prints), or None."""
    from stages.eval.metrics import format_table

    summary = eval_summary(run_dir)
    return None if summary is None else format_table(summary)


def trained_model_dir(run_dir: Path) -> str:
    """The folder of the run's trained model (the train stage's ``model`` table); :class:`ConfigError` when there is none."""
    store = RunStore(run_dir)
    manifest = store.read_manifest("train")
    if not manifest.complete:
        raise ConfigError(
            f"{run_dir} has no trained model (the train stage has not finished); run `perpo-pipeline run` first "
            "or pass --model DIR"
        )
    table = store.read_table("train", "model", "model")
    if table.num_rows != 1:
        raise ConfigError(f"{run_dir}: the train stage recorded no model; run `perpo-pipeline run --force train`")
    return table.column("model_dir")[0].as_py()


def _eval_tasks(run_dir: Path):
    from stages.eval.stage import NO_EVAL_TASKS

    store = RunStore(run_dir)
    if not store.read_manifest("ingest").complete:
        raise ConfigError(f"{run_dir}: the ingest stage has not finished; run `perpo-pipeline run` first")
    tasks = store.read_table("ingest", "eval_tasks", "tasks")
    if tasks.num_rows == 0:
        raise ConfigError(f"{run_dir}: {NO_EVAL_TASKS}")
    return tasks


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name.rstrip("/")).name or name).strip("_") or "model"


def evaluate_model_dir(cfg: Any, run_dir: Path, model: str | None, out: Path | None = None) -> tuple[dict[str, Any], Path]:
    """Evaluate ``model`` (default: the run's trained model) beside the run's starting policy on its held-out tasks.

    Writes ``eval.json``, ``eval.png``, ``eval.txt`` (and the benchmark commands for a local folder) to ``out``
    (default ``<run>/report/eval-<model name>/``); returns the summary and that folder. User mistakes (no run
    folder, a folder that is not a model, no held-out tasks, no trained model) raise :class:`ConfigError` or
    :class:`~stages.lib.errors.ModelError`.
    """
    from stages.eval.stage import evaluate_models, write_summary_files
    from stages.vlm.load import check_model_source

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder {run_dir} does not exist; run `perpo-pipeline run` first or pass --run-dir")
    target = model or trained_model_dir(run_dir)
    check_model_source(target)
    tasks = _eval_tasks(run_dir)
    # the model asked about first: a folder that does not load fails before the starting policy is evaluated
    models = {"trained": target} | ({"start": cfg.eval.engine.model} if cfg.eval.compare_start else {})
    _, _, summary = evaluate_models(cfg.eval, tasks, models)
    folder = Path(out) if out else RunStore(run_dir).report_dir / f"eval-{_slug(target)}"
    write_summary_files(summary, folder, target)
    return summary, folder
