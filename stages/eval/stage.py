"""The eval stage: does training on the pipeline's data make the model better on held-out tasks?

One fan-in shard reads the held-out ``eval_tasks`` (ingest) and the train stage's ``model`` row,
answers every task with the starting policy and with the trained model (:mod:`stages.eval.answers`),
and returns the ``eval`` table (one row per answer). Its scratch folder (``eval/artifacts/``) holds
``eval.json`` (the summary: :func:`stages.eval.metrics.summarize`), ``eval.png``, the benchmark
commands for the trained model (:mod:`stages.eval.harness`) and one finished Parquet per model, so a
shard interrupted after the first model resumes with the second.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from data_schemas.tables import validate_table
from stages.base import ShardInputs, ShardOutput, ShardResult, StageSpec
from stages.eval.answers import answer_and_score
from stages.eval.config import EvalConfig
from stages.eval.harness import write_harness_files
from stages.eval.metrics import format_table, summarize
from stages.eval.plot import write_eval_plot
from stages.lib.errors import ConfigError
from stages.lib.files import atomic_write_parquet, atomic_write_text
from stages.sample.config import SamplingSettings

__all__ = ["SPEC", "run_shard", "evaluate_models", "EVAL_JSON", "EVAL_PNG", "NO_EVAL_TASKS"]

EVAL_JSON = "eval.json"
EVAL_PNG = "eval.png"
NO_EVAL_TASKS = (
    "the held-out split has no tasks; set [ingest] eval_fraction (e.g. 0.25) or give the corpus a split column, "
    "or set [eval] enabled = false"
)


def _sampling(config: EvalConfig) -> SamplingSettings:
    return SamplingSettings(
        n=config.n, temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens, seed=config.seed
    )


def _answer(config: EvalConfig, role: str, model: str, tasks: pa.Table, cache: Path | None) -> tuple[list[dict], list[dict]]:
    """One model's scored answers, from ``cache`` (a finished earlier attempt) or freshly made and cached."""
    from stages.vlm.engines import make_sampler

    quarantine_file = cache.with_suffix(".quarantine.json") if cache else None
    if cache is not None and cache.is_file() and quarantine_file.is_file():
        return pq.read_table(cache).to_pylist(), json.loads(quarantine_file.read_text(encoding="utf-8"))
    sampler = make_sampler(config.engine_for(model), "eval", seed=config.seed)
    try:
        rows, quarantine = answer_and_score(
            sampler, tasks, role=role, greedy=config.greedy, settings=_sampling(config), score=config.score
        )
    finally:
        del sampler
        gc.collect()
    for row in rows:
        row["model"] = model
    if cache is not None:
        atomic_write_text(quarantine_file, json.dumps(quarantine))
        atomic_write_parquet(cache, validate_table(rows, "eval"))
    return rows, quarantine


def evaluate_models(
    config: EvalConfig, tasks: pa.Table, models: dict[str, str], out_dir: Path | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Answer ``tasks`` with each model of ``models`` (role -> folder or Hub id) and summarise.

    Returns ``(eval rows, quarantine rows, summary)``. With ``out_dir`` each model's answers are cached
    there (``<role>.parquet``) and reused by a later call. Raises :class:`ConfigError` when there are no tasks.
    """
    if tasks.num_rows == 0:
        raise ConfigError(f"[eval] {NO_EVAL_TASKS}")
    rows: list[dict[str, Any]] = []
    quarantine: list[dict[str, Any]] = []
    for role, model in models.items():
        cache = Path(out_dir) / f"{role}.parquet" if out_dir is not None else None
        answers, rejected = _answer(config, role, model, tasks, cache)
        rows += answers
        quarantine += [{**q, "message": f"{role} model: {q['message']}"} for q in rejected]
    settings = {"n": config.n, "temperature": config.temperature, "greedy": config.greedy, "max_tokens": config.max_tokens}
    summary = summarize(
        rows, models, samples=config.bootstrap_samples, confidence=config.confidence, seed=config.seed, settings=settings
    )
    return rows, quarantine, summary


def write_summary_files(summary: dict[str, Any], out_dir: Path, trained_model: str | None = None) -> list[Path]:
    """Write ``eval.json``, ``eval.png``, ``eval.txt`` (the table) and, for a local trained model, the benchmark commands."""
    out_dir = Path(out_dir)
    paths = [out_dir / EVAL_JSON, out_dir / EVAL_PNG, out_dir / "eval.txt"]
    atomic_write_text(paths[0], json.dumps(summary, indent=2) + "\n")
    write_eval_plot(summary, paths[1])
    atomic_write_text(paths[2], format_table(summary) + "\n")
    if trained_model and Path(trained_model).is_dir():
        paths += write_harness_files(trained_model, out_dir)
    return paths


def _trained_model(model: pa.Table) -> str:
    if model.num_rows != 1:
        raise ConfigError("[eval] the run has no trained model (the train stage wrote none); run the train stage first")
    return model.column("model_dir")[0].as_py()


def run_shard(inputs: ShardInputs, output: ShardOutput, config: EvalConfig) -> ShardResult:
    """Evaluate the starting policy (``config.engine.model``, when ``compare_start``) and the trained model on the held-out tasks."""
    tasks = inputs.table("eval_tasks")
    trained = _trained_model(inputs.table("model"))
    models = ({"start": config.engine.model} if config.compare_start else {}) | {"trained": trained}
    rows, quarantine, summary = evaluate_models(config, tasks, models, output.scratch_dir)
    artifacts = write_summary_files(summary, output.scratch_dir, trained)
    metrics: dict[str, float] = {"tasks": float(tasks.num_rows), "answers": float(len(rows))}
    for task_type, table in summary["metrics"].items():
        for key, stats in table.items():
            for role, stat in stats.items():
                metrics[f"{role}.{task_type}.{key}"] = stat["mean"]
    return ShardResult(
        tables={"eval": validate_table(rows, "eval")},
        quarantine=quarantine,
        metrics=metrics,
        artifacts=[str(p) for p in artifacts],
    )


SPEC = StageSpec(
    name="eval",
    config_cls=EvalConfig,
    reads=("eval_tasks", "model"),
    writes=("eval",),
    run_shard=run_shard,
    fan_in=True,
    uses_model=True,
    # changing only how answers are summarised (or adding the start column) keeps the answers already made
    resume_neutral=frozenset({"enabled", "bootstrap_samples", "confidence", "compare_start"}),
    description="Answer the held-out tasks with the starting policy and the trained model (greedy and n samples), "
    "score them with the same rewards, and compare per task type with bootstrap intervals (report/eval.json).",
)
