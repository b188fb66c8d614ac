"""Rule-mode hallucination: turn a ground-truth answer into ``n`` distinct wrong answers of the same form.

Each hallucination applies one or more injector kinds (chosen by a seeded RNG among those that apply
to the task type) and is kept only if it differs from the answer and keeps its format.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from stages.perturb.formats import is_valid_hallucination, normalize
from stages.perturb.injectors import INJECTORS, InjectContext, InjectorKind, kinds_for_task, splice
from stages.perturb.seeding import stable_seed

__all__ = ["Hallucination", "rule_hallucinate", "rule_hallucinations"]


@dataclass(frozen=True)
class Hallucination:
    """A wrong answer: its text, the kinds applied in order, each kind's changes, and the seed that made it."""

    text: str
    kinds: tuple[str, ...]
    changes: tuple[dict[str, Any], ...] = field(default=())
    seed: int = 0


def rule_hallucinate(
    answer: str,
    ctx: InjectContext,
    kinds: list[InjectorKind] | tuple[InjectorKind, ...],
    seed: int,
    max_kinds: int = 2,
) -> Hallucination | None:
    """Apply 1..``max_kinds`` applicable injector kinds to ``answer`` in a seeded order.

    Returns None when no configured kind applies to the task type, none finds anything to change,
    or the result fails :func:`~stages.perturb.formats.is_valid_hallucination`. Same inputs, same output.
    """
    rng = random.Random(seed)
    order = kinds_for_task(ctx.task_type, kinds)
    if not answer.strip() or not order:
        return None
    rng.shuffle(order)
    budget = rng.randint(1, max(1, min(max_kinds, len(order))))
    # every kind edits the original answer; later kinds may not touch spans an earlier kind changed,
    # so each recorded change is exactly what its kind did (and starts index into the answer)
    edits: list[tuple[int, int, str]] = []
    applied: list[str] = []
    changes: list[dict[str, Any]] = []
    whole: str | None = None  # a whole-text rewrite (boxes) is applied alone
    for kind in order:
        if len(applied) == budget:
            break
        injection = INJECTORS[kind].fn(answer, rng, ctx)
        if injection is None or injection.text == answer:
            continue
        if any("start" not in c for c in injection.changes):
            if applied:
                continue
            whole, applied = injection.text, [injection.kind]
            changes = [{"kind": injection.kind, **c} for c in injection.changes]
            break
        spans = [(c["start"], c["start"] + len(c["old"]), c) for c in injection.changes]
        keep = [sp for sp in spans if all(sp[1] <= s or sp[0] >= e for s, e, _ in edits)]
        if not keep:
            continue
        edits.extend((s, e, c["new"]) for s, e, c in keep)
        applied.append(injection.kind)
        changes.extend({"kind": injection.kind, **c} for *_, c in keep)
    text = whole if whole is not None else splice(answer, edits)
    if not applied or not is_valid_hallucination(answer, text, ctx.task_type, ctx.box_format):
        return None
    changes.sort(key=lambda c: c.get("start", c.get("box", 0)))
    return Hallucination(text=text, kinds=tuple(applied), changes=tuple(changes), seed=seed)


def rule_hallucinations(
    answer: str,
    ctx: InjectContext,
    kinds: list[InjectorKind] | tuple[InjectorKind, ...],
    n: int,
    base_seed: int,
    key: str,
    max_kinds: int = 2,
    attempts_per_item: int = 8,
) -> list[Hallucination]:
    """Return up to ``n`` pairwise-distinct rule hallucinations of ``answer``, seeded by (``base_seed``, ``key``, index).

    Fewer than ``n`` when the answer offers too few distinct errors (e.g. "yes" has one).
    """
    out: list[Hallucination] = []
    seen = {normalize(answer)}
    for k in range(n):
        for attempt in range(attempts_per_item):
            h = rule_hallucinate(answer, ctx, kinds, stable_seed(base_seed, key, "rule", k, attempt), max_kinds)
            if h is None:
                if attempt == 0 and not kinds_for_task(ctx.task_type, kinds):
                    return out
                continue
            if normalize(h.text) not in seen:
                seen.add(normalize(h.text))
                out.append(h)
                break
    return out
