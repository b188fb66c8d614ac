"""Response token ids: the one place a response text becomes the token ids that are scored after its prompt."""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["response_token_ids"]


def response_token_ids(processor: Any, responses: Sequence[str], append_eos: bool) -> list[list[int]]:
    """Return each response's token ids as scored after its prompt: the tokenizer's ids without special tokens
    added (the prompt already has them), followed by the EOS id when ``append_eos`` and the tokenizer has one.

    ``processor`` is a transformers processor (its ``tokenizer`` is used) or a tokenizer. The hf
    log-probs (:mod:`stages.vlm.logprobs`) and the vllm scorer (:mod:`stages.vlm.vllm_scorer`) both
    tokenise here, so both score the same tokens.
    """
    tok = getattr(processor, "tokenizer", processor)
    if not responses:
        return []
    eos = [tok.eos_token_id] if append_eos and tok.eos_token_id is not None else []
    return [list(ids) + eos for ids in tok(list(responses), add_special_tokens=False)["input_ids"]]
