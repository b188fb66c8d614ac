"""Summed log-probs of responses under a VLM, many (image, prompt, response) triples per forward.

The prompt is encoded by :func:`stages.vlm.inputs.encode_prompts` (the format the sampler used,
with the family's quirks; the processor expands the image placeholder); a sampled response is
scored on the token ids it was generated as, one we wrote is tokenized on its own (special tokens
split) and ends with the model's turn-end token (:mod:`stages.vlm.tokens`). Only response tokens count.
Used by the reference stage (under ``torch.inference_mode``) and the trainer (with gradients).

Two paths give the same numbers: a padded batch of full sequences, and, when several responses
share one prompt and image (the N responses of a list), a *shared-prompt* pass that runs the
prompt and its image tokens once and scores every response as a continuation of its KV cache.
Gradients flow through both. The shared path needs plain 1-D positions after the prompt, so it is
used only for the model types in :data:`SHARED_PROMPT_MODEL_TYPES`.
"""

from __future__ import annotations

import inspect
from typing import Any, Final, Sequence

from stages.vlm.inputs import encode_prompts, profile_of, response_token_type
from stages.vlm.tokens import response_token_ids

__all__ = ["response_logprobs", "tokenize_triples", "SHARED_PROMPT_MODEL_TYPES"]

# Checked to give the same log-probs on both paths (tests/stages/vlm/test_logprobs.py). Models with
# multimodal rotary positions (Qwen2-VL's mrope) or prefix-LM attention need their own handling.
SHARED_PROMPT_MODEL_TYPES: Final[frozenset[str]] = frozenset({"llava", "llava_next"})


def _tokenizer(processor: Any) -> Any:
    return getattr(processor, "tokenizer", processor)


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the model


def _encode_prompts(processor: Any, images: Sequence[Any | None], prompts: Sequence[str], model: Any | None = None) -> Any:
    return encode_prompts(processor, images, prompts, profile_of(processor, model).chat)


def tokenize_triples(
    processor: Any, images: Sequence[Any | None], prompts: Sequence[str], responses: Sequence[str], append_eos: bool = True,
    response_ids: Sequence[Sequence[int] | None] | None = None, model: Any | None = None,
) -> dict[str, Any]:
    """Tokenize one batch: right-padded ``input_ids`` / ``attention_mask``, a ``response_mask``, and the processor's image tensors.

    Every triple of a batch must agree on having an image or not (the caller groups them).
    ``response_ids[i]``, when given, are the ids response ``i`` was sampled as (scored as they are);
    ``model`` (optional) names the family whose quirks apply. Returns torch tensors;
    ``prompt_lengths`` is the number of prompt tokens of each row.
    """
    import torch

    enc = _encode_prompts(processor, images, prompts, model)
    ids = response_token_ids(processor, responses, append_eos, response_ids, model)
    tok = _tokenizer(processor)
    keep = enc["attention_mask"].bool()
    prompt_lengths = keep.sum(dim=1).tolist()
    width = max(n + len(r) for n, r in zip(prompt_lengths, ids))
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    type_fill = response_token_type(profile_of(processor, model).chat)
    out: dict[str, Any] = {"response_mask": torch.zeros((len(prompts), width), dtype=torch.bool)}
    # Per-token tensors (input_ids, attention_mask, token_type_ids, ...) are re-laid right-padded:
    # the prompt's values, then the response's (its ids; 1 for the attention mask; PaliGemma's
    # token_type_ids 1 on its suffix; 0 otherwise).
    per_token = [k for k, v in enc.items() if hasattr(v, "shape") and tuple(v.shape) == tuple(enc["input_ids"].shape)]
    for key in per_token:
        out[key] = torch.full((len(prompts), width), pad if key == "input_ids" else 0, dtype=enc[key].dtype)
    for i, (n, r) in enumerate(zip(prompt_lengths, ids)):
        for key in per_token:
            out[key][i, :n] = enc[key][i][keep[i]]
        out["input_ids"][i, n : n + len(r)] = torch.tensor(r, dtype=out["input_ids"].dtype)
        out["attention_mask"][i, n : n + len(r)] = 1
        if "token_type_ids" in out:
            out["token_type_ids"][i, n : n + len(r)] = type_fill
        out["response_mask"][i, n : n + len(r)] = True
    extra = {k: v for k, v in enc.items() if k not in per_token}
    return {**out, "prompt_lengths": torch.tensor(prompt_lengths), **extra}


def _accepts(model: Any, name: str) -> bool:
    try:
        return name in inspect.signature(_base(model).forward).parameters
    except (TypeError, ValueError):
        return False


def _to_model(model: Any, tensors: dict[str, Any]) -> dict[str, Any]:
    param = next(model.parameters())
    out = {k: v.to(param.device) for k, v in tensors.items()}
    if "pixel_values" in out and out["pixel_values"].is_floating_point():
        out["pixel_values"] = out["pixel_values"].to(param.dtype)
    return out


def _sum_logps(logits: Any, target: Any, mask: Any) -> tuple[Any, Any]:
    """Per row: Σ over masked positions of log softmax(logits)[target], and the number of such positions."""
    import torch

    logits = logits.float()
    token_logps = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return torch.where(mask, token_logps, torch.zeros_like(token_logps)).sum(dim=1), mask.sum(dim=1)


def _batched_logprobs(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """Full-sequence path: one forward over right-padded prompt + response rows."""
    inputs = _to_model(model, {k: v for k, v in batch.items() if k not in ("response_mask", "prompt_lengths")})
    target = inputs["input_ids"][:, 1:]
    mask = batch["response_mask"][:, 1:].to(target.device)
    # Logits are needed only from the first response token on: skip the prompt (and its image tokens).
    keep = target.shape[1] - int(batch["prompt_lengths"].min()) + 1
    if _accepts(model, "logits_to_keep"):
        inputs["logits_to_keep"] = keep + 1  # the last position predicts nothing we score
    logits = model(**inputs, use_cache=False).logits[:, -(keep + 1) : -1]
    return _sum_logps(logits, target[:, -keep:], mask[:, -keep:])


def _shared_prompt_logprobs(model: Any, processor: Any, image: Any, prompt: str, response_ids: list[list[int]]) -> tuple[Any, Any]:
    """Shared-prompt path: the prompt (and image) forward once, every response scored on its KV cache."""
    import torch

    n, width = len(response_ids), max(len(r) for r in response_ids)
    prefix = _to_model(model, dict(_encode_prompts(processor, [image], [prompt], model)))
    device = prefix["input_ids"].device
    if width == 0:
        return torch.zeros(n, device=device), torch.zeros(n, dtype=torch.long, device=device)
    out = model(**prefix, use_cache=True, logits_to_keep=1)
    cache = out.past_key_values
    cache.batch_repeat_interleave(n)
    pad = _tokenizer(processor).pad_token_id or 0
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in response_ids], device=device)
    mask = torch.tensor([[True] * len(r) + [False] * (width - len(r)) for r in response_ids], device=device)
    attention = torch.cat([prefix["attention_mask"].expand(n, -1), mask.long()], dim=1)
    cont = model(input_ids=ids, attention_mask=attention, past_key_values=cache, use_cache=True).logits
    # token t of a response is predicted by the previous position: the prompt's last for t = 0
    logits = torch.cat([out.logits[:, -1:].expand(n, -1, -1), cont[:, :-1]], dim=1)
    return _sum_logps(logits, ids, mask)


def _groups(images: Sequence[Any | None], prompts: Sequence[str]) -> list[list[int]]:
    """Indices grouped by (same image object, same prompt), in first-seen order."""
    groups: dict[tuple[int | None, str], list[int]] = {}
    for i, (img, p) in enumerate(zip(images, prompts)):
        groups.setdefault((None if img is None else id(img), p), []).append(i)
    return list(groups.values())


def response_logprobs(
    model: Any,
    processor: Any,
    images: Sequence[Any | None],
    prompts: Sequence[str],
    responses: Sequence[str],
    batch_size: int = 16,
    append_eos: bool = True,
    share_prompt: bool = True,
    response_ids: Sequence[Sequence[int] | None] | None = None,
) -> tuple[Any, Any]:
    """Return ``(sums, n_tokens)``: each response's summed token log-prob given its image and prompt, and its token count.

    ``images[i]`` is a PIL image or ``None`` (text-only prompt). Triples are scored ``batch_size`` at
    a time; triples that share the same image object and prompt run the prompt once
    (``share_prompt``, for :data:`SHARED_PROMPT_MODEL_TYPES`). Results keep the input order.
    Gradients flow to the model's parameters unless the caller disables them. ``sums`` is float32
    on the model's device, ``n_tokens`` int64 (response tokens + EOS when ``append_eos``).
    ``response_ids[i]``, when not None, are the token ids response ``i`` was sampled as: scored
    exactly (its text is then not tokenized, and nothing is appended).
    """
    import torch

    if not (len(images) == len(prompts) == len(responses)):
        raise ValueError(f"images, prompts and responses differ in length: {len(images)}, {len(prompts)}, {len(responses)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    given = list(response_ids) if response_ids is not None else [None] * len(prompts)
    if len(given) != len(prompts):
        raise ValueError(f"response_ids has {len(given)} entries for {len(prompts)} responses")
    sums: list[Any] = [None] * len(prompts)
    counts: list[Any] = [None] * len(prompts)
    shared = share_prompt and getattr(_base(model).config, "model_type", None) in SHARED_PROMPT_MODEL_TYPES
    rest: list[int] = []
    for group in _groups(images, prompts):
        if not shared or len(group) < 2:
            rest += group
            continue
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            ids = response_token_ids(processor, [responses[i] for i in chunk], append_eos,
                                [given[i] for i in chunk], model)
            s, n = _shared_prompt_logprobs(model, processor, images[chunk[0]], prompts[chunk[0]], ids)
            for j, i in enumerate(chunk):
                sums[i], counts[i] = s[j], n[j]
    for has_image in (True, False):
        idx = [i for i in rest if (images[i] is not None) == has_image]
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            pick = lambda seq: [seq[i] for i in chunk]
            batch = tokenize_triples(processor, pick(images), pick(prompts), pick(responses), append_eos, pick(given), model)
            s, n = _batched_logprobs(model, batch)
            for j, i in enumerate(chunk):
                sums[i], counts[i] = s[j], n[j]
    if not sums:
        device = next(model.parameters()).device
        return torch.zeros(0, device=device), torch.zeros(0, dtype=torch.long, device=device)
    return torch.stack(sums), torch.stack(counts).long()
