"""The reference stage: each response's summed log-prob under the reference model, computed once.

Training then needs no second model in memory: the listwise rows carry ``ref_logps`` (summed over
response tokens, EOS included) and ``ref_n_tokens``, scored on the prompt format the sampler used
(:func:`stages.vlm.chat.render_prompt`) exactly as the trainer scores the policy.

Two backends score the same token sequences: ``hf`` (transformers forward passes,
:func:`stages.vlm.logprobs.response_logprobs`; CPU or GPU) and ``vllm`` (``prompt_logprobs`` of
a ``vllm.LLM`` engine, :mod:`stages.vlm.vllm_scorer`; GPU). Every response of a shard is flattened
into one ``(image, prompt, response)`` triple, scored by the backend, and regrouped per list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Final

from data_schemas.quarantine import QuarantineReason
from data_schemas.tables import validate_table
from stages.lib.errors import ConfigError, ModelError
from stages.base import ShardInputs, ShardOutput, ShardResult, StageSpec, quarantine_row
from stages.reference.config import ReferenceConfig
from stages.vlm.vllm_scorer import ScoringError, score_triples_vllm, setup_vllm
from stages.vlm.engine_config import Backend

__all__ = [
    "SPEC",
    "SCORERS",
    "SETUPS",
    "Score",
    "ReferenceModel",
    "Triple",
    "setup",
    "run_shard",
    "score_lists",
]

Triple = tuple[Any, str, str]
"""One scored response: ``(image or None, prompt, response)``."""
Score = tuple[float, int] | ScoringError
"""A triple's ``(summed log-prob, n_tokens)``, or why the engine refused it."""

@dataclass
class ReferenceModel:
    """What the hf backend's setup loads once per actor."""

    model: Any
    processor: Any
    name: str


def _setup_hf(config: ReferenceConfig) -> ReferenceModel:
    from stages.vlm.load import load_shared_vlm

    model, processor = load_shared_vlm(config.engine, "reference")  # the sampler's, when it is the same engine
    return ReferenceModel(model=model, processor=processor, name=config.engine.model)


# What a batch of responses the tokenizer or processor refuses raises; anything else is a bug and propagates.
_REFUSALS: Final = (ValueError, TypeError, KeyError, IndexError)


def _score_hf(resources: ReferenceModel, triples: list[Triple], config: ReferenceConfig) -> list[Score]:
    """Score every triple; a triple the processor refuses alone gets a ScoringError, an OOM halves the batch
    (:func:`stages.vlm.isolate.serve_isolating`)."""
    import torch

    from stages.vlm.hf_engine import is_oom_error
    from stages.vlm.isolate import serve_isolating
    from stages.vlm.logprobs import response_logprobs

    def run(batch: list[Triple]) -> list[Score]:
        images, prompts, responses = (list(column) for column in zip(*batch))
        with torch.inference_mode():
            sums, counts = response_logprobs(
                resources.model, resources.processor, images, prompts, responses,
                config.engine.batch_size, config.append_eos, config.share_prompt,
            )
        return [(s, int(n)) for s, n in zip(sums.double().cpu().tolist(), counts.cpu().tolist())]

    scores = serve_isolating(
        triples, run, lambda triple, reason, message: ScoringError(message),
        reject_reason=QuarantineReason.SCORING_FAILED, rejects=_REFUSALS, is_oom=is_oom_error,
    )
    if len(scores) > 1 and all(isinstance(s, ScoringError) for s in scores):
        raise ModelError(f"[reference] no response of the shard could be scored: {scores[0].message}")
    return scores


def _score_vllm(resources: Any, triples: list[Triple], config: ReferenceConfig) -> list[Score]:
    return score_triples_vllm(resources, triples, config.append_eos)


# Per backend: what setup loads (once per actor), and how it scores triples: one Score per triple, in order.
SETUPS: Final[dict[Backend, Callable[[ReferenceConfig], Any]]] = {Backend.HF: _setup_hf, Backend.VLLM: setup_vllm}
SCORERS: Final[dict[Backend, Callable[[Any, list[Triple], ReferenceConfig], list[Score]]]] = {
    Backend.HF: _score_hf,
    Backend.VLLM: _score_vllm,
}


def setup(config: ReferenceConfig) -> Any:
    """Load the reference model with ``config.engine.backend``; raises ConfigError (no model), ModelError (bad model),
    ImportError (vllm missing), each naming [reference]."""
    if not config.engine.model:
        raise ConfigError(
            "[reference] engine.model is empty and no sample model was filled in; set [reference] engine.model "
            "(or [sample] engine.model) to a model folder or Hub id"
        )
    return SETUPS[Backend(config.engine.backend)](config)


def score_lists(
    resources: Any, examples: list, config: ReferenceConfig
) -> list[tuple[list[float], list[int]] | ScoringError]:
    """Return ``(ref_logps, ref_n_tokens)`` for every response of every example, all lists scored in one batch.

    ``resources`` is what :func:`setup` returned for ``config``. An example with a response the
    engine refused gets that response's :class:`ScoringError` instead.
    """
    triples: list[Triple] = []
    owner: list[int] = []
    for i, ex in enumerate(examples):
        image = ex.image()  # one object per list: the hf backend runs a shared prompt once per object
        triples += [(image, ex.prompt, text) for text in ex.responses]
        owner += [i] * len(ex.responses)
    scores = SCORERS[Backend(config.engine.backend)](resources, triples, config)
    out: list[tuple[list[float], list[int]] | ScoringError] = [([], []) for _ in examples]
    for i, score in zip(owner, scores, strict=True):
        if isinstance(out[i], ScoringError):
            continue  # the list is already lost to an earlier response
        if isinstance(score, ScoringError):
            out[i] = score
            continue
        out[i][0].append(float(score[0]))
        out[i][1].append(int(score[1]))
    return out


def run_shard(inputs: ShardInputs, output: ShardOutput, config: ReferenceConfig) -> ShardResult:
    """Fill ``ref_logps`` / ``ref_n_tokens`` of every listwise row of the shard; rows that cannot be scored are quarantined."""
    from stages.train.data import load_lists

    resources = inputs.resources if inputs.resources is not None else setup(config)
    examples, quarantine = load_lists(inputs.table("tasks"), inputs.table("listwise"))
    rows = []
    n_responses = 0
    for ex, scored in zip(examples, score_lists(resources, examples, config)):
        if isinstance(scored, ScoringError):
            quarantine.append(quarantine_row(ex.task_id, QuarantineReason.SCORING_FAILED, scored.message, ex.row))
            continue
        rows.append({**ex.row, "ref_logps": scored[0], "ref_n_tokens": scored[1]})
        n_responses += len(ex.responses)
    if config.povid_image_term and rows:
        from stages.train.povid import list_image_terms

        kept = [ex for ex in examples if ex.task_id in {r["task_id"] for r in rows}]
        for row, terms in zip(rows, list_image_terms(resources.model, resources.processor, kept, config.engine.batch_size)):
            row["ref_povid_logps"] = terms
    return ShardResult(
        tables={"listwise": validate_table(rows, "listwise")},
        quarantine=quarantine,
        metrics={"lists": float(len(rows)), "responses": float(n_responses)},
    )


SPEC = StageSpec(
    name="reference",
    config_cls=ReferenceConfig,
    reads=("tasks", "listwise"),
    writes=("listwise",),
    run_shard=run_shard,
    setup=setup,
    uses_model=True,
    description="Score every response of every list under the reference model (summed log-probs and token "
    "counts) so training needs no second model.",
)
