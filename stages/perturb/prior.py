"""LeanPO's winning answers: the model answers the task with the ground truth in its prompt (origin ``prior_answer``).

Source: LeanPO (Wang et al., arXiv 2506.05260, §3 "self-generated preference data"; the method figure
``assets/method.png`` of Wang-Xiaodong1899/LeanPO): from a (visual input V, query q, ground-truth
answer a) triplet, the winning response y_w is the SFT model's answer when ``a`` is injected into its
prompt as prior knowledge, then refined by self-reflection; the losing response y_l is the model's
answer on a distorted input A(V). The pairs are trained under the plain query: the prior stays out of
the training prompt. What we could not read and chose ourselves (the repository holds only a README
and figures, and the paper's section 3 text was not reachable offline):

- the prompt that injects the prior: ``prompts/prior_answer.txt`` is OURS;
- the self-reflection step (initial response + ground truth -> refined answer) is NOT built: the
  winner is the model's first answer given the prior;
- the distortion A: ours, the stage's ``[perturb.distortion]`` list (default: diffusion noise);
- how many answers: ours, ``[perturb.prior_answer] n`` (default 1) winners per task; the leanpo preset
  asks for one loser per task (``distortion.n_answers = 1``), the figure's one pair per triplet.
"""

from __future__ import annotations

import json
from collections import Counter
from string import Template
from typing import Any

from data_schemas.tables import Origin
from prompts import load_prompt
from stages.base import ShardResult
from stages.lib.families import profile_for
from stages.perturb.config import PerturbConfig
from stages.sample.config import SamplingSettings
from stages.sample.rows import SampleItem, ground_truth_text, sample_rows
from stages.vlm.requests import Sampler

__all__ = ["PRIOR_TEMPLATE", "prior_prompt", "prior_rows"]

PRIOR_TEMPLATE = "prior_answer"  # prompts/prior_answer.txt (ours: LeanPO's own prompt was not found)


def prior_prompt(question: str, ground_truth: str) -> str:
    """The task's prompt with its ground-truth answer added as a hint (``prompts/prior_answer.txt``)."""
    return Template(load_prompt(PRIOR_TEMPLATE)).substitute(question=question.strip(), ground_truth=ground_truth.strip()).strip()


def prior_rows(
    tasks: list[dict[str, Any]],
    config: PerturbConfig,
    sampler: Sampler,
    images: dict[str, Any],
    result: ShardResult,
    metrics: Counter,
) -> list[dict[str, Any]]:
    """Return ``prior_answer.n`` ``prior_answer`` candidates per task with a ground truth and a decoded image.

    The ground truth is the text the sample stage writes as the task's ``ground_truth`` candidate (grounding
    boxes in the policy family's candidate format). cand_ids ``{task_id}:prior_answer:{i}``; each row's
    ``distortion`` JSON records the template and the prior it was given. Rejected requests go to
    ``result.quarantine``; tasks without a ground truth are counted (``prior_answer_skipped_empty_answer``).
    """
    cfg = config.prior_answer
    written_in = str(profile_for(config.family).candidate_format)
    settings = SamplingSettings(
        n=cfg.n, temperature=config.temperature, top_p=config.top_p, max_tokens=config.max_tokens, seed=cfg.seed
    )
    items = []
    for task in tasks:
        image = images.get(task["task_id"])
        if image is None:
            continue
        truth = ground_truth_text(task, written_in)
        if not (truth or "").strip():
            metrics["prior_answer_skipped_empty_answer"] += 1
            continue
        record = json.dumps({"name": str(Origin.PRIOR_ANSWER), "template": PRIOR_TEMPLATE, "prior": truth}, sort_keys=True)
        items.append(SampleItem(task["task_id"], prior_prompt(task["prompt"], truth), image, distortion=record))
    rows: list[dict[str, Any]] = []
    for start in range(0, len(items), config.engine.batch_size):
        made, rejected = sample_rows(sampler, items[start : start + config.engine.batch_size], settings, origin=Origin.PRIOR_ANSWER)
        rows += made
        result.quarantine.extend(rejected)
        metrics["prior_answer_sample_errors"] += len(rejected)
    metrics["prior_answer_rows"] += len(rows)
    return rows
