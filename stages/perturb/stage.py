"""The perturb stage: POVID dispreferred candidates, added next to the policy's own.

For each task of the shard:
- ``hallucination`` rows: the ground-truth answer with injected errors (rule or LLM mode);
- ``distorted_image`` rows: the model's answers to the task prompt on a distorted copy of the image;
- ``prior_answer`` rows (``[perturb.prior_answer] enabled``, off by default): the model's answers with the
  ground truth in the prompt as a hint, LeanPO's winning answers (:mod:`stages.perturb.prior`).
The input candidates pass through unchanged; everything is scored downstream like any candidate.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa

from data_schemas import Origin, QuarantineReason, decode_image_cell, validate_table
from stages.base import ShardInputs, ShardOutput, ShardResult, StageSpec, quarantine_row
from stages.perturb.config import HallucinationMode, PerturbConfig
from stages.perturb.prior import prior_rows
from stages.perturb.rows import distorted_rows, hallucination_rows
from stages.vlm.engines import make_sampler
from stages.vlm.requests import Sampler

__all__ = ["SPEC", "setup", "run_shard"]


def setup(config: PerturbConfig) -> Sampler | None:
    """Load the sampler once per worker when distortions or llm-mode hallucination need one, else None."""
    if not config.needs_sampler():
        return None
    return make_sampler(config.engine, "perturb")


def _decode_images(tasks: list[dict[str, Any]], result: ShardResult, metrics: Counter) -> dict[str, Any]:
    images: dict[str, Any] = {}
    for task in tasks:
        try:
            images[task["task_id"]] = decode_image_cell(task["image"])
        except Exception as exc:  # a corrupt image must not sink the shard
            metrics["image_decode_errors"] += 1
            message = f"{type(exc).__name__}: {exc}"
            record = {"task_id": task["task_id"], "task_type": task.get("task_type"), "source": task.get("source")}
            result.quarantine.append(quarantine_row(task["task_id"], QuarantineReason.CORRUPT_IMAGE, message, record))
    return images


def run_shard(inputs: ShardInputs, output: ShardOutput, config: PerturbConfig) -> ShardResult:
    """Return the shard's candidates: the input rows unchanged plus hallucination and distorted_image rows.

    cand_ids: ``{task_id}:hallucination:{k}``, ``{task_id}:distorted_image:{label}:{i}`` and ``{task_id}:prior_answer:{i}``. Hallucinations are
    injected into the ground_truth candidate's text (answer, else boxes as text, else the top annotator
    answer); a task with none gets no hallucination row (metric ``hallucination_skipped_empty_answer``).
    Undecodable images and rejected sampler requests are quarantined. Never raises for one bad row.
    Loads the sampler itself (``setup``) when ``inputs.resources`` is None and one is needed.
    """
    result = ShardResult()
    metrics: Counter = Counter()
    passthrough = validate_table(inputs.table("candidates"), "candidates")
    metrics["passthrough_rows"] = passthrough.num_rows
    tasks = inputs.table("tasks").to_pylist()
    metrics["tasks"] = len(tasks)
    new_rows: list[dict[str, Any]] = []
    if config.enabled and tasks:
        sampler = inputs.resources if inputs.resources is not None else setup(config)
        hcfg, dcfg = config.hallucination, config.distortion
        want_llm_image = hcfg.enabled and hcfg.mode == HallucinationMode.LLM and hcfg.llm_with_image
        need_images = (dcfg.enabled and bool(dcfg.distortions)) or want_llm_image or config.prior_answer.enabled
        images = _decode_images(tasks, result, metrics) if need_images else {}
        if hcfg.enabled and hcfg.n > 0:
            new_rows += hallucination_rows(tasks, config, sampler, images, metrics)
        if dcfg.enabled and dcfg.distortions:
            new_rows += distorted_rows(tasks, config, sampler, images, output, result, metrics)
        if config.prior_answer.enabled:
            new_rows += prior_rows(tasks, config, sampler, images, result, metrics)
    existing = set(passthrough.column("cand_id").to_pylist())
    kept = [r for r in new_rows if r["cand_id"] not in existing]
    metrics["cand_id_collisions"] = len(new_rows) - len(kept)
    metrics["hallucination_rows"] = sum(r["origin"] == Origin.HALLUCINATION for r in kept)
    table = pa.concat_tables([passthrough, validate_table(kept, "candidates")])
    result.tables["candidates"] = table
    result.metrics = {k: float(v) for k, v in metrics.items()}
    return result


SPEC = StageSpec(
    name="perturb",
    config_cls=PerturbConfig,
    reads=("tasks", "candidates"),
    writes=("candidates",),
    run_shard=run_shard,
    setup=setup,
    uses_model=True,
    description="POVID dispreferred candidates: hallucinations injected into the ground truth and answers "
    "on distorted images.",
)
