"""Candidate rows the perturb stage adds: hallucinated answers and answers on distorted images."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from data_schemas.tables import Origin
from data_schemas.quarantine import QuarantineReason
from stages.base import ShardOutput, ShardResult, quarantine_row
from stages.lib.errors import ConfigError, first_line
from stages.perturb.config import HallucinationConfig, HallucinationMode, PerturbConfig
from stages.perturb.distortions import apply_distortion
from stages.perturb.hallucinate import Hallucination, rule_hallucinations
from stages.lib.families import profile_for
from stages.perturb.injectors import InjectContext
from stages.perturb.llm_inject import LlmJob, llm_hallucinate, template_for
from stages.perturb.seeding import stable_seed
from stages.sample.config import SamplingSettings
from stages.sample.rows import SampleItem, cand_id, ground_truth_text, sample_rows
from stages.vlm.requests import Sampler

__all__ = ["hallucination_cand_id", "hallucination_rows", "distorted_rows"]


def hallucination_cand_id(task_id: str, k: int) -> str:
    """cand_id of the ``k``-th hallucinated answer of a task: ``{task_id}:hallucination:{k}``."""
    return cand_id(task_id, Origin.HALLUCINATION, k)


def _ctx(task: dict[str, Any], cfg: HallucinationConfig, box_format: str) -> InjectContext:
    return InjectContext(
        task_type=task["task_type"],
        width=task.get("width"),
        height=task.get("height"),
        iou_band=tuple(cfg.iou_band),
        max_edits=cfg.max_edits,
        box_format=box_format,
    )


def _row(task_id: str, cid: str, origin: Origin, text: str, **extra: Any) -> dict[str, Any]:
    row = {
        "task_id": task_id,
        "cand_id": cid,
        "origin": origin,
        "text": text,
        "n_tokens": None,
        "logprob_sum": None,
        "finish_reason": None,
        "model": None,
        "sample_index": None,
        "seed": None,
        "sampling": None,
        "distortion": None,
    }
    row.update(extra)
    return row


def _rule_record(h: Hallucination, cfg: HallucinationConfig, mode: str, **extra: Any) -> dict[str, Any]:
    params = {"kinds": [str(k) for k in cfg.kinds], "iou_band": list(cfg.iou_band), "max_kinds": cfg.max_kinds,
              "max_edits": cfg.max_edits}
    record = {"name": Origin.HALLUCINATION, "mode": mode, "kinds": list(h.kinds), "changes": list(h.changes),
              "seed": h.seed, "params": params}
    record.update(extra)
    return record


def _eligible(tasks: list[dict[str, Any]], metrics: Counter, box_format: str) -> list[dict[str, Any]]:
    """Tasks with a ground truth to inject into, their ``answer`` set to the ground_truth candidate's text."""
    eligible = []
    for task in tasks:
        truth = ground_truth_text(task, box_format)  # the same text the sample stage emits as the ground_truth candidate
        if not (truth or "").strip():
            metrics["hallucination_skipped_empty_answer"] += 1
        else:
            eligible.append({**task, "answer": truth})
    return eligible


def _rule_rows(eligible: list[dict[str, Any]], cfg: HallucinationConfig, metrics: Counter, box_format: str) -> list[dict[str, Any]]:
    rows = []
    for task in eligible:
        tid = task["task_id"]
        made = rule_hallucinations(task["answer"], _ctx(task, cfg, box_format), cfg.kinds, cfg.n, cfg.seed, tid, cfg.max_kinds)
        metrics["hallucination_missing"] += cfg.n - len(made)
        metrics["hallucination_rule"] += len(made)
        for k, h in enumerate(made):
            distortion = json.dumps(_rule_record(h, cfg, "rule"), sort_keys=True)
            rows.append(_row(tid, hallucination_cand_id(tid, k), Origin.HALLUCINATION, h.text, finish_reason="injected",
                             sample_index=k, seed=h.seed, distortion=distortion))
    return rows


def _llm_rows(
    eligible: list[dict[str, Any]], config: PerturbConfig, sampler: Sampler, images: dict[str, Any], metrics: Counter,
    box_format: str,
) -> list[dict[str, Any]]:
    cfg = config.hallucination
    jobs = [
        LlmJob(
            key=hallucination_cand_id(task["task_id"], k),
            group=task["task_id"],
            question=task["prompt"],
            answer=task["answer"],
            ctx=_ctx(task, cfg, box_format),
            seed=stable_seed(cfg.seed, task["task_id"], "llm", k),
            image=images.get(task["task_id"]),
        )
        for task in eligible
        for k in range(cfg.n)
    ]
    outcomes = llm_hallucinate(
        jobs, sampler, kinds=cfg.kinds, retries=cfg.llm_retries, temperature=config.temperature, top_p=config.top_p,
        max_tokens=cfg.llm_max_tokens, with_image=cfg.llm_with_image, max_kinds=cfg.max_kinds,
    )
    sampling = json.dumps(
        {"backend": sampler.backend, "max_tokens": cfg.llm_max_tokens, "n": 1, "temperature": config.temperature,
         "top_p": config.top_p},
        sort_keys=True,
    )
    rows = []
    next_k: Counter = Counter()  # renumber per task so indices stay dense when a job produced nothing
    for job, out in zip(jobs, outcomes):
        if out.text is None:
            metrics["hallucination_missing"] += 1
            continue
        k = next_k[job.group]
        next_k[job.group] += 1
        common = {"llm_attempts": out.attempts, "llm_rejections": out.rejections, "prompt": template_for(job.ctx.task_type)}
        if out.fallback is None:
            record = {"name": Origin.HALLUCINATION, "mode": "llm", "seed": job.seed, **common}
            extra = {"model": sampler.model_name, "sampling": sampling, "seed": job.seed}
            metrics["hallucination_llm"] += 1
        else:
            record = _rule_record(out.fallback, cfg, "rule_fallback", llm_seed=job.seed, **common)
            extra = {"seed": out.fallback.seed}
            metrics["hallucination_rule_fallback"] += 1
        rows.append(_row(job.group, hallucination_cand_id(job.group, k), Origin.HALLUCINATION, out.text,
                         finish_reason="injected", sample_index=k, distortion=json.dumps(record, sort_keys=True),
                         **extra))
    return rows


def hallucination_rows(
    tasks: list[dict[str, Any]], config: PerturbConfig, sampler: Sampler | None, images: dict[str, Any], metrics: Counter
) -> list[dict[str, Any]]:
    """Return up to ``hallucination.n`` ``hallucination`` candidates per task with a ground truth.

    Rule mode needs no sampler; llm mode needs one (and ``images`` when ``llm_with_image``). Each
    row's ``distortion`` JSON says how it was made (mode, kinds, changes, seeds, LLM attempts).
    Grounding answers are the ground truth written in the policy family's candidate format, and
    so are their hallucinations.
    """
    written_in = str(profile_for(config.family).candidate_format)
    eligible = _eligible(tasks, metrics, written_in)
    if config.hallucination.mode == HallucinationMode.RULE:
        return _rule_rows(eligible, config.hallucination, metrics, written_in)
    if sampler is None:
        raise ConfigError("[perturb] hallucination.mode = 'llm' needs a model; set [perturb] engine.model or use mode = 'rule'")
    return _llm_rows(eligible, config, sampler, images, metrics, written_in)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:120]


def distorted_rows(
    tasks: list[dict[str, Any]],
    config: PerturbConfig,
    sampler: Sampler,
    images: dict[str, Any],
    output: ShardOutput,
    result: ShardResult,
    metrics: Counter,
) -> list[dict[str, Any]]:
    """Return ``distortion.n_answers`` ``distorted_image`` candidates per (task with a decoded image, distortion).

    Each distorted image is seeded by (distortion.seed, task_id, label) and recorded in the row's
    ``distortion`` JSON (name, label, params, seed, mode; ``image`` file name when kept). Rejected
    requests, and images a distortion fails on (``distortion_failed``: e.g. OpenCV's JPEG encoder
    refuses sides over 65,500 px), go to ``result.quarantine``; kept PNGs to ``output.scratch_dir``
    and ``result.artifacts``.
    """
    from PIL import Image

    cfg = config.distortion
    settings = SamplingSettings(
        n=cfg.n_answers, temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens, seed=cfg.seed
    )
    rows: list[dict[str, Any]] = []
    batch: list[SampleItem] = []

    def flush() -> None:
        made, rejected = sample_rows(sampler, batch, settings, origin=Origin.DISTORTED_IMAGE)
        rows.extend(made)
        result.quarantine.extend(rejected)
        metrics["distorted_sample_errors"] += len(rejected)
        batch.clear()

    for task in tasks:
        image = images.get(task["task_id"])
        if image is None:
            continue
        for spec in cfg.distortions:
            seed = stable_seed(cfg.seed, task["task_id"], "distortion", spec.label)
            try:
                distorted = Image.fromarray(apply_distortion(image, spec, seed))
            except Exception as exc:  # a library limit hit by one legal image (OpenCV, numpy): that row only
                message = f"distortion {spec.label} ({spec.name.value}) failed on the {image.width}x{image.height} image: "
                record = {"task_id": task["task_id"], "distortion": spec.label, "seed": seed}
                result.quarantine.append(
                    quarantine_row(task["task_id"], QuarantineReason.DISTORTION_FAILED, message + first_line(exc), record)
                )
                metrics["distortion_errors"] += 1
                continue
            metrics["distorted_images"] += 1
            record = {"name": spec.name.value, "label": spec.label, "params": spec.params, "seed": seed, "mode": "image"}
            if cfg.keep_images:
                path = output.scratch_dir / f"{_safe_name(task['task_id'])}__{spec.label}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                distorted.save(path, format="PNG")
                result.artifacts.append(str(path))
                record["image"] = path.name
            record_json = json.dumps(record, sort_keys=True)
            batch.append(SampleItem(task["task_id"], task["prompt"], distorted, key=spec.label, distortion=record_json))
            if len(batch) >= config.engine.batch_size:
                flush()
    if batch:
        flush()
    metrics["distorted_rows"] += len(rows)
    return rows
