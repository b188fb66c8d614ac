"""LLM-mode hallucination: ask a model (through a :class:`Sampler`) to rewrite the answer with POVID-style errors.

POVID prompts GPT-4V to inject plausible hallucinations into the correct answer: object
co-occurrence, wrong attributes, wrong relations and counts (arXiv 2402.11411, section 3). Their
repository does not ship that prompt; ours (``prompts/hallucination*.txt``) asks for the same kinds
of error, per task type. Every output is checked (it must differ from the answer and keep its
format); a job is retried up to ``retries`` times with a new seed, then filled by the rule injector,
and the row says so (``mode = "rule_fallback"``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from string import Template
from typing import Any

from prompts import load_prompt
from stages.perturb.formats import differs, keeps_format, normalize
from stages.perturb.hallucinate import Hallucination, rule_hallucinate
from stages.perturb.injectors import InjectContext, InjectorKind
from stages.perturb.seeding import stable_seed
from stages.vlm.requests import SampleRequest, Sampler

__all__ = [
    "LlmJob",
    "LlmOutcome",
    "KIND_INSTRUCTIONS",
    "template_for",
    "build_llm_prompt",
    "clean_llm_output",
    "llm_hallucinate",
]

# how each injector kind is described to the model (the POVID error types, in plain words)
KIND_INSTRUCTIONS: dict[InjectorKind, str] = {
    InjectorKind.OBJECT: "- object co-occurrence: replace an object with one that often appears next to it "
    "(a fork next to a knife, a dog next to a frisbee) but is not in the answer;",
    InjectorKind.COLOR: "- attributes: change a colour (or size, shape, material) of an object;",
    InjectorKind.NUMBER: "- counts: change how many objects there are, or another number;",
    InjectorKind.SPATIAL: "- relations: change where objects are relative to each other (left/right, "
    "above/below, in front of/behind) or what they are doing;",
    InjectorKind.YES_NO: "- for a yes/no question, give the opposite answer;",
}

_TEMPLATES = {"grounding": "hallucination_grounding", "ocr": "hallucination_ocr"}
_LABEL = re.compile(r"^\s*(rewritten (answer|transcription)|answer|hallucinated answer)\s*:\s*", re.IGNORECASE)


@dataclass(frozen=True)
class LlmJob:
    """One hallucination to produce: ``key`` (its cand_id), ``group`` (its task: outputs must differ within it)."""

    key: str
    group: str
    question: str
    answer: str
    ctx: InjectContext
    seed: int
    image: Any | None = None


@dataclass
class LlmOutcome:
    """The text produced for a job (None if neither the model nor the rules could), and how it was made."""

    key: str
    text: str | None
    mode: str  # "llm" | "rule_fallback" | "failed"
    attempts: int
    rejections: dict[str, int] = field(default_factory=dict)
    fallback: Hallucination | None = None


def template_for(task_type: str) -> str:
    """Return the name of the prompt template used for ``task_type``."""
    return _TEMPLATES.get(task_type, "hallucination")


def build_llm_prompt(job: LlmJob, kinds: list[InjectorKind] | tuple[InjectorKind, ...]) -> str:
    """Fill the task type's template with the question, the answer and the configured error kinds."""
    wanted = [KIND_INSTRUCTIONS[k] for k in KIND_INSTRUCTIONS if k in set(kinds)] or [
        KIND_INSTRUCTIONS[InjectorKind.OBJECT]
    ]
    return Template(load_prompt(template_for(job.ctx.task_type))).substitute(
        question=job.question.strip(), answer=job.answer.strip(), error_kinds="\n".join(wanted)
    )


def clean_llm_output(text: str, task_type: str) -> str:
    """Strip a leading label ("Rewritten answer:"), surrounding quotes and whitespace; one line unless caption/ocr."""
    text = _LABEL.sub("", text.strip()).strip()
    if task_type not in ("caption", "ocr"):
        text = text.splitlines()[0].strip() if text else text
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def _rule_fallback(job: LlmJob, kinds, taken: set[str], max_kinds: int, attempts: int = 8) -> Hallucination | None:
    for attempt in range(attempts):
        h = rule_hallucinate(job.answer, job.ctx, kinds, stable_seed(job.seed, "fallback", attempt), max_kinds)
        if h is not None and normalize(h.text) not in taken:
            return h
    return None


def llm_hallucinate(
    jobs: list[LlmJob],
    sampler: Sampler,
    *,
    kinds: list[InjectorKind] | tuple[InjectorKind, ...],
    retries: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_tokens: int = 128,
    with_image: bool = False,
    max_kinds: int = 2,
) -> list[LlmOutcome]:
    """Run every job through ``sampler`` for up to ``retries`` rounds, then fall back to the rule injector.

    One ``sampler.sample`` call per round holds every job still open. An output is accepted when it
    differs from the answer, keeps its format and differs from what its group already has. Outcomes
    come back in job order; never raises for a bad output or a failed request.
    """
    outcomes = {j.key: LlmOutcome(key=j.key, text=None, mode="failed", attempts=0) for j in jobs}
    taken: dict[str, set[str]] = {}
    for j in jobs:
        taken.setdefault(j.group, set()).add(normalize(j.answer))
    pending = list(jobs)
    for attempt in range(1, retries + 1):
        if not pending:
            break
        requests = [
            SampleRequest(
                request_id=j.key,
                prompt=build_llm_prompt(j, kinds),
                image=j.image if with_image else None,
                n=1,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_tokens,
                seed=stable_seed(j.seed, "llm", attempt),
            )
            for j in pending
        ]
        results = sampler.sample(requests)
        still: list[LlmJob] = []
        for job, result in zip(pending, results):
            out = outcomes[job.key]
            out.attempts = attempt
            reasons = Counter(out.rejections)
            text = clean_llm_output(result.outputs[0].text, job.ctx.task_type) if result.outputs else ""
            if result.error or not result.outputs:
                reasons["request_error"] += 1
            elif not differs(job.answer, text):
                reasons["same_as_answer"] += 1
            elif not keeps_format(job.answer, text, job.ctx.task_type, job.ctx.box_format):
                reasons["format"] += 1
            elif normalize(text) in taken[job.group]:
                reasons["duplicate"] += 1
            else:
                out.text, out.mode = text, "llm"
                taken[job.group].add(normalize(text))
            out.rejections = dict(reasons)
            if out.text is None:
                still.append(job)
        pending = still
    for job in pending:
        out = outcomes[job.key]
        fallback = _rule_fallback(job, kinds, taken[job.group], max_kinds)
        if fallback is not None:
            out.text, out.mode, out.fallback = fallback.text, "rule_fallback", fallback
            taken[job.group].add(normalize(fallback.text))
    return [outcomes[j.key] for j in jobs]
