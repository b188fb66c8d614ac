"""The sample stage: ``tasks`` -> ``candidates`` (``n`` policy responses per task, plus the ground truth)."""

from __future__ import annotations

import time

from data_schemas.tables import Origin, validate_table
from stages.base import ShardInputs, ShardOutput, ShardResult, StageSpec
from stages.vlm.engines import make_sampler
from stages.sample.config import SampleConfig
from stages.lib.families import profile_for
from stages.sample.rows import ground_truth_rows, items_from_tasks, sample_rows
from stages.vlm.requests import Sampler

__all__ = ["SPEC", "SampleConfig", "setup", "run_shard"]


def setup(config: SampleConfig) -> Sampler:
    """Load the policy model once per actor (hf or vllm per ``config.engine.backend``); raises ModelError on a bad model."""
    return make_sampler(config.engine, "sample", family=config.family, seed=config.seed)


def run_shard(inputs: ShardInputs, output: ShardOutput, config: SampleConfig) -> ShardResult:
    """Sample ``config.n`` responses for every task of the shard; see :mod:`stages.sample.rows` for the row rules.

    Uses the sampler in ``inputs.resources`` (loads one when it is None, e.g. when called directly).
    Tasks whose image does not decode or that the backend rejects are quarantined with no
    candidates (not even the ground truth). Rows come in task order: policy responses, then the
    ground-truth candidate when ``include_ground_truth``. Never depends on the shard index: seeds
    come from ``config.seed`` and the task id only.
    """
    sampler = inputs.resources if inputs.resources is not None else setup(config)
    tasks = inputs.table("tasks")
    started = time.perf_counter()
    items, quarantine = items_from_tasks(tasks)
    rows, rejected = sample_rows(sampler, items, config.settings(), origin=Origin.POLICY)
    quarantine += rejected
    sampled_tasks = {r["task_id"] for r in rows}
    written_in = profile_for(config.family, config.engine.model).candidate_format  # the policy's box language
    gt = [r for r in ground_truth_rows(tasks, written_in) if r["task_id"] in sampled_tasks] if config.include_ground_truth else []
    order = {task_id: i for i, task_id in enumerate(tasks.column("task_id").to_pylist())}
    candidates = sorted(rows + gt, key=lambda r: order[r["task_id"]])  # stable: policy rows stay before the GT row
    seconds = time.perf_counter() - started
    tokens = sum(r["n_tokens"] or 0 for r in rows)
    # Sums and counts only: the runner adds metrics over shards (throughput = generated_tokens / sample_seconds).
    return ShardResult(
        tables={"candidates": validate_table(candidates, "candidates")},
        quarantine=quarantine,
        metrics={
            "tasks": float(tasks.num_rows),
            "policy_candidates": float(len(rows)),
            "ground_truth_candidates": float(len(gt)),
            "quarantined_tasks": float(len(quarantine)),
            "truncated": float(sum(r["finish_reason"] == "length" for r in rows)),
            "empty": float(sum(r["text"] == "" for r in rows)),
            "generated_tokens": float(tokens),
            "sample_seconds": seconds,
        },
    )


SPEC = StageSpec(
    name="sample",
    config_cls=SampleConfig,
    reads=("tasks",),
    writes=("candidates",),
    run_shard=run_shard,
    setup=setup,
    uses_model=True,
    description="Sample n responses per task from the policy VLM (hf or vllm backend), with token counts and "
    "log-probs; optionally add the ground truth as a candidate.",
)
