"""Response token ids: the one place a response becomes the token ids that are scored after its prompt.

A sampled response is scored on the ids it was generated as (stored with the candidate: the stop
token included when it stopped), never re-tokenized: decoding and re-encoding changes the ids of
cut multi-byte characters and decoded special tokens. A response we wrote (ground truth,
hallucination) is tokenized without added special tokens and with special tokens *split* (a literal
``<image>`` in it is text, not an image slot), then ends with the token the model ends its turn
with (:func:`stages.vlm.inputs.turn_end_id`: Gemma 3's ``<end_of_turn>``, else the generation
config's first eos, else the tokenizer's). The hf log-probs (:mod:`stages.vlm.logprobs`) and the
vllm scorer (:mod:`stages.vlm.vllm_scorer`) both take their ids from here.
"""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["response_token_ids"]


def response_token_ids(
    processor: Any,
    responses: Sequence[str],
    append_eos: bool,
    given: Sequence[Sequence[int] | None] | None = None,
    model: Any | None = None,
) -> list[list[int]]:
    """Each response's token ids as scored after its prompt: ``given[i]`` as it is when not None (the
    sampled ids), else the text tokenized as the module doc says, with the turn-end token when
    ``append_eos``. ``processor`` is a transformers processor (its ``tokenizer`` is used) or a
    tokenizer; ``model`` (optional) is the loaded model, whose generation config names its eos."""
    from stages.vlm.inputs import turn_end_id, written_response_ids

    given = list(given) if given is not None else [None] * len(responses)
    if len(given) != len(responses):
        raise ValueError(f"{len(given)} token-id entries for {len(responses)} responses")
    end = turn_end_id(processor, model) if append_eos else None
    todo = [i for i, g in enumerate(given) if g is None]
    written = iter(written_response_ids(processor, [responses[i] for i in todo], end))
    return [list(g) if g is not None else next(written) for g in given]
