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
from data_schemas.tables import Origin, validate_table
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

Triple = tuple[Any, str, str, "list[int] | None"]
"""One scored response: ``(image or None, prompt, response, its sampled token ids or None)``."""
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
        images, prompts, responses, token_ids = (list(column) for column in zip(*batch))
        with torch.inference_mode():
            sums, counts = response_logprobs(
                resources.model, resources.processor, images, prompts, responses,
                config.engine.batch_size, config.append_eos, config.share_prompt, response_ids=token_ids,
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


def reuses_sampled_logprobs(config: ReferenceConfig) -> bool:
    """True when policy samples take their stored log-prob instead of a forward pass: ``reuse_sampled_logprobs``
    and the loader found the reference engine to be the sampling engine, sampling at temperature 1 and top_p 1
    (:meth:`stages.reference.config.SampledWith.logprobs_are_reference`)."""
    return bool(config.reuse_sampled_logprobs and config.sampled_with and config.sampled_with.logprobs_are_reference())


def _sampled_scores(ex: Any, ids: list) -> dict[int, tuple[float, int]]:
    """Responses of ``ex`` whose score is the sampler's: policy samples with stored token ids and log-prob sum
    (the sampler summed the model's untempered log-softmax over exactly those ids, stop token included)."""
    sums = ex.row.get("logprob_sums") or [None] * len(ex.responses)
    return {
        k: (float(sums[k]), len(ids[k]))
        for k, origin in enumerate(ex.origins)
        if origin == Origin.POLICY and ids[k] is not None and k < len(sums) and sums[k] is not None
    }


def score_lists(
    resources: Any, examples: list, config: ReferenceConfig, counters: dict[str, float] | None = None
) -> list[tuple[list[float], list[int]] | ScoringError]:
    """Return ``(ref_logps, ref_n_tokens)`` for every response of every example, all lists scored in one batch.

    ``resources`` is what :func:`setup` returned for ``config``. An example with a response the
    engine refused gets that response's :class:`ScoringError` instead. When
    :func:`reuses_sampled_logprobs`, policy samples take the sampler's stored numbers and only the
    other responses are scored. ``counters`` (optional) gets ``scored_tokens`` (response tokens the
    engine scored) and ``reused_responses``.
    """
    from stages.vlm.inputs import placeholder_ids

    placeholders = placeholder_ids(resources.processor, getattr(resources, "model", None))
    reuse = reuses_sampled_logprobs(config)
    triples: list[Triple] = []
    owner: list[tuple[int, int]] = []
    out: list[tuple[list[float], list[int]] | ScoringError] = [([], []) for _ in examples]
    filled: list[dict[int, tuple[float, int]]] = [{} for _ in examples]
    counts = {"scored_tokens": 0.0, "reused_responses": 0.0}
    for i, ex in enumerate(examples):
        ids = ex.response_token_ids or [None] * len(ex.responses)
        bad = next((k for k, t in enumerate(ids) if t is not None and placeholders.intersection(t)), None)
        if bad is not None:  # the model would read it as an image slot with no image behind it
            out[i] = ScoringError(f"response {bad} was sampled with an image placeholder token "
                                  f"({sorted(placeholders.intersection(ids[bad]))}); it cannot be scored")
            continue
        if reuse:
            filled[i] = _sampled_scores(ex, ids)
            counts["reused_responses"] += len(filled[i])
        image = ex.image()  # one object per list: the hf backend runs a shared prompt once per object
        for k, (text, tokens) in enumerate(zip(ex.responses, ids)):
            if k not in filled[i]:
                triples.append((image, ex.prompt, text, tokens))
                owner.append((i, k))
    scores = SCORERS[Backend(config.engine.backend)](resources, triples, config) if triples else []
    for (i, k), score in zip(owner, scores, strict=True):
        if isinstance(out[i], ScoringError):
            continue  # the list is already lost to an earlier response
        if isinstance(score, ScoringError):
            out[i] = score
            continue
        filled[i][k] = (float(score[0]), int(score[1]))
        counts["scored_tokens"] += int(score[1])
    for i, ex in enumerate(examples):
        if not isinstance(out[i], ScoringError):
            out[i] = ([filled[i][k][0] for k in range(len(ex.responses))], [filled[i][k][1] for k in range(len(ex.responses))])
    if counters is not None:
        for key, value in counts.items():
            counters[key] = counters.get(key, 0.0) + value
    return out


def run_shard(inputs: ShardInputs, output: ShardOutput, config: ReferenceConfig) -> ShardResult:
    """Fill ``ref_logps`` / ``ref_n_tokens`` of every listwise row of the shard; rows that cannot be scored are quarantined."""
    from stages.train.data import load_lists

    resources = inputs.resources if inputs.resources is not None else setup(config)
    examples, quarantine = load_lists(inputs.table("tasks"), inputs.table("listwise"))
    rows = []
    n_responses = 0
    counters: dict[str, float] = {}
    for ex, scored in zip(examples, score_lists(resources, examples, config, counters)):
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
        metrics={"lists": float(len(rows)), "responses": float(n_responses), **counters},
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
