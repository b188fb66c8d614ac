"""The vLLM backend of the reference stage: reference log-probs read from vLLM's ``prompt_logprobs``.

Each (image, prompt, response) triple becomes one request whose *prompt* is the whole scored
sequence, sent as token ids: the chat-templated prompt (:func:`stages.vlm.chat.render_prompt`)
tokenized by the model's tokenizer, followed by the response tokenized on its own (no special
tokens) and EOS when ``append_eos``. That is exactly the sequence the hf path
(:func:`stages.vlm.logprobs.response_logprobs`) scores, so both backends count the same tokens.
``SamplingParams(max_tokens=1, prompt_logprobs=0)`` makes vLLM return, for every prompt position
after the first, a ``{token_id: Logprob}`` dict that holds the actual token (``prompt_logprobs=0``
asks for zero *extra* top tokens); position 0 is ``None``.

**Response boundary rule.** vLLM replaces the single image placeholder token by the image's
feature tokens, so the prompt part of ``RequestOutput.prompt_token_ids`` grows and its length is
not known in advance. The response sits after the image, at the end, and vLLM does not touch it:
the response is always the *last* ``len(response_ids)`` tokens. Because the prompt and the
response are joined as token ids (never as text re-tokenized together), the boundary is a token
boundary by construction; :func:`response_logprob_from_output` checks that those last tokens are
the response ids that were sent and raises :class:`ModelError` otherwise.

vLLM skips the prefix cache for requests that ask for prompt log-probs, so the N responses of a
list each run their prompt and image again (the hf path's shared-prompt pass has no equivalent).
vLLM is imported only by :func:`setup_vllm`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Sequence

from data_schemas.quarantine import QuarantineReason
from stages.lib.errors import ModelError, first_line
from stages.vlm.inputs import profile_of, render_family_prompt
from stages.vlm.isolate import Rejected, serve_isolating
from stages.vlm.tokens import response_token_ids

__all__ = [
    "SCORING_PARAMS",
    "ReferenceRequest",
    "ScoringError",
    "VLLMReferenceModel",
    "build_reference_requests",
    "response_logprob_from_output",
    "score_triples_vllm",
    "setup_vllm",
]

# One generated token (vLLM must generate at least one), greedy, no detokenization: only the prompt's
# log-probs are read. prompt_logprobs=0 returns the actual token's log-prob at every prompt position.
SCORING_PARAMS: Final[dict[str, Any]] = {"max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0, "detokenize": False}


@dataclass(frozen=True)
class ReferenceRequest:
    """One triple ready for ``LLM.generate``: ``prompt`` is the vLLM prompt dict, ``response_ids`` its scored tail."""

    prompt: dict[str, Any]
    response_ids: list[int]


@dataclass(frozen=True)
class ScoringError:
    """The engine refused one triple (image rejected, sequence longer than ``max_model_len``, ...)."""

    message: str


@dataclass
class VLLMReferenceModel:
    """What :func:`setup_vllm` loads once per actor: the engine, the processor and the sampling params."""

    llm: Any
    processor: Any
    name: str
    sampling_params: Any


def _tokenizer(processor: Any) -> Any:
    return getattr(processor, "tokenizer", processor)


def build_reference_requests(
    triples: Sequence[tuple], processor: Any, append_eos: bool = True
) -> list[ReferenceRequest]:
    """Return one request per ``(image, prompt, response)`` triple, in order.

    ``prompt`` is ``{"prompt_token_ids": prompt_ids + response_ids}`` plus
    ``"multi_modal_data": {"image": image}`` when ``image`` is not None. ``prompt_ids`` is the
    rendered prompt tokenized by the model's tokenizer (with its one image placeholder, which vLLM
    expands); ``response_ids`` is the response tokenized without special tokens, plus EOS when
    ``append_eos`` — the tokens the hf path scores. A triple may carry a 4th item, the response's
    sampled token ids, which are then used as they are. Pure: no vLLM, no model weights.
    """
    tok = _tokenizer(processor)
    quirks = profile_of(processor).chat
    keys = list(dict.fromkeys((t[0] is not None, t[1]) for t in triples))  # each prompt once
    texts = [render_family_prompt(processor, prompt, with_image, quirks) for with_image, prompt in keys]
    bos = getattr(tok, "bos_token", None)
    prompt_ids = {}
    for key, text in zip(keys, texts):  # a template that writes BOS gets no second one
        prompt_ids[key] = tok(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]
    given = [t[3] if len(t) > 3 else None for t in triples]
    responses = response_token_ids(processor, [t[2] for t in triples], append_eos, given)
    requests = []
    for (image, prompt, *_), response_ids in zip(triples, responses):
        entry: dict[str, Any] = {"prompt_token_ids": list(prompt_ids[(image is not None, prompt)]) + response_ids}
        if image is not None:
            entry["multi_modal_data"] = {"image": image}
        requests.append(ReferenceRequest(prompt=entry, response_ids=response_ids))
    return requests


def response_logprob_from_output(
    output: Any, n_response_tokens: int, response_ids: Sequence[int] | None = None
) -> tuple[float, int]:
    """Return ``(sum, n)``: the summed log-prob of the last ``n_response_tokens`` prompt tokens of a ``RequestOutput``, and n.

    ``output.prompt_token_ids`` and ``output.prompt_logprobs`` are aligned (``None`` at position 0;
    then a ``{token_id: Logprob}`` mapping per position). When ``response_ids`` is given, the last
    tokens must equal it (the boundary rule of this module). Raises :class:`ModelError` when the
    log-probs are missing, misaligned, or the tail is not the response.
    """
    if n_response_tokens == 0:
        return 0.0, 0
    token_ids = list(output.prompt_token_ids)
    logprobs = output.prompt_logprobs
    if logprobs is None:
        raise ModelError("vLLM returned no prompt_logprobs; the request must set SamplingParams(prompt_logprobs=0)")
    if len(logprobs) != len(token_ids):
        raise ModelError(f"vLLM returned {len(logprobs)} prompt log-probs for {len(token_ids)} prompt tokens")
    start = len(token_ids) - n_response_tokens
    if start < 1:
        raise ModelError(
            f"the response has {n_response_tokens} tokens but the whole sequence only {len(token_ids)}; "
            "a response needs a prompt before it"
        )
    if response_ids is not None and token_ids[start:] != list(response_ids):
        raise ModelError(
            f"the last {n_response_tokens} tokens vLLM scored are {token_ids[start:]}, not the response "
            f"{list(response_ids)}; the engine changed the response tokens, so its boundary is unknown"
        )
    total = 0.0
    for position in range(start, len(token_ids)):
        entry = logprobs[position]
        token = token_ids[position]
        if entry is None or token not in entry:
            raise ModelError(f"vLLM returned no log-prob for token {token} at prompt position {position}")
        total += float(entry[token].logprob)
    return total, n_response_tokens


def setup_vllm(config: Any) -> VLLMReferenceModel:
    """Build one ``vllm.LLM`` engine from a :class:`stages.reference.ReferenceConfig` (the sample stage's engine code).

    Raises ImportError with the install command when vLLM is missing, ModelError on a bad model.
    """
    from stages.vlm.vllm_engine import VLLMSampler, import_vllm

    engine = VLLMSampler.from_config(config.engine, stage="reference")
    params = import_vllm().SamplingParams(**SCORING_PARAMS)
    return VLLMReferenceModel(llm=engine.llm, processor=engine.processor, name=config.engine.model, sampling_params=params)


def score_triples_vllm(
    resources: VLLMReferenceModel, triples: Sequence[tuple], append_eos: bool = True
) -> list[tuple[float, int] | ScoringError]:
    """Score every triple in one ``LLM.generate`` call; return ``(sum, n_tokens)`` per triple, in order.

    If the engine rejects the batch (one bad request fails the whole call), the triples are retried
    one by one and only the rejected ones get a :class:`ScoringError`. A malformed output raises
    :class:`ModelError` (an engine problem, not a data problem).
    """
    requests = build_reference_requests(triples, resources.processor, append_eos)
    if not requests:
        return []

    def generate(batch: list[ReferenceRequest]) -> list[Any]:
        prompts = [r.prompt for r in batch]
        return resources.llm.generate(prompts, sampling_params=resources.sampling_params, use_tqdm=False)

    def extract(request: ReferenceRequest, output: Any) -> tuple[float, int]:
        return response_logprob_from_output(output, len(request.response_ids), request.response_ids)

    def run(batch: list[ReferenceRequest]) -> list[tuple[float, int]]:
        try:
            outputs = generate(batch)
        except (ValueError, TypeError) as exc:  # input validation failed for some request: the helper finds which
            raise Rejected(QuarantineReason.SCORING_FAILED, first_line(exc)) from exc
        if len(outputs) != len(batch):
            raise ModelError(f"[reference] vLLM returned {len(outputs)} outputs for {len(batch)} requests")
        return [extract(r, o) for r, o in zip(batch, outputs)]

    return serve_isolating(requests, run, lambda r, reason, message: ScoringError(message), reject_reason=QuarantineReason.SCORING_FAILED)
