"""Summed log-probs of responses under a VLM, many (image, prompt, response) triples per forward.

The prompt is rendered with :func:`stages.sample.chat.render_prompt` (the format the sampler used)
and tokenized by the processor (which expands the image placeholder); the response is tokenized on
its own and appended with EOS, as it was generated after the prompt. Only response tokens count.
Used by the reference stage (under ``torch.inference_mode``) and the trainer (with gradients).
"""

from __future__ import annotations

import inspect
from typing import Any, Sequence

from stages.sample.chat import render_prompt

__all__ = ["response_logprobs", "tokenize_triples"]


def _tokenizer(processor: Any) -> Any:
    return getattr(processor, "tokenizer", processor)


def tokenize_triples(
    processor: Any, images: Sequence[Any | None], prompts: Sequence[str], responses: Sequence[str], append_eos: bool = True
) -> dict[str, Any]:
    """Tokenize one batch: right-padded ``input_ids`` / ``attention_mask``, a ``response_mask``, and the processor's image tensors.

    Every triple of a batch must agree on having an image or not (the caller groups them).
    Returns torch tensors; ``prompt_lengths`` is the number of prompt tokens of each row.
    """
    import torch

    with_image = images[0] is not None
    if any((img is not None) != with_image for img in images):
        raise ValueError("a batch mixes triples with and without an image; group them first")
    texts = [render_prompt(processor, p, with_image=with_image) for p in prompts]
    if with_image:
        enc = processor(text=texts, images=list(images), padding=True, return_tensors="pt")
    else:
        enc = _tokenizer(processor)(texts, padding=True, return_tensors="pt")
    tok = _tokenizer(processor)
    eos = [tok.eos_token_id] if append_eos and tok.eos_token_id is not None else []
    response_ids = [ids + eos for ids in tok(list(responses), add_special_tokens=False)["input_ids"]]

    prompt_ids = [row[mask.bool()].tolist() for row, mask in zip(enc["input_ids"], enc["attention_mask"])]
    lengths = [len(p) + len(r) for p, r in zip(prompt_ids, response_ids)]
    width = max(lengths)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    input_ids = torch.full((len(texts), width), pad, dtype=torch.long)
    attention = torch.zeros((len(texts), width), dtype=torch.long)
    response_mask = torch.zeros((len(texts), width), dtype=torch.bool)
    for i, (p, r) in enumerate(zip(prompt_ids, response_ids)):
        input_ids[i, : len(p) + len(r)] = torch.tensor(p + r, dtype=torch.long)
        attention[i, : len(p) + len(r)] = 1
        response_mask[i, len(p) : len(p) + len(r)] = True
    extra = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")}
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "response_mask": response_mask,
        "prompt_lengths": torch.tensor([len(p) for p in prompt_ids]),
        **extra,
    }


def _accepts(model: Any, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _forward_logprobs(model: Any, batch: dict[str, Any]) -> tuple[Any, Any]:
    """Sum of log-probs and count of the response tokens of each row of a tokenized batch."""
    import torch

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    inputs = {k: v.to(device) for k, v in batch.items() if k not in ("response_mask", "prompt_lengths")}
    if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
    target = inputs["input_ids"][:, 1:]
    mask = batch["response_mask"][:, 1:].to(device)
    # Logits are needed only from the first response token on: skip the prompt (and its image tokens).
    keep = target.shape[1] - int(batch["prompt_lengths"].min()) + 1
    if _accepts(model, "logits_to_keep"):
        inputs["logits_to_keep"] = keep + 1  # the last position predicts nothing we score
    logits = model(**inputs, use_cache=False).logits
    logits = logits[:, -(keep + 1) : -1].float()
    target, mask = target[:, -keep:], mask[:, -keep:]
    token_logps = logits.gather(-1, target.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    token_logps = torch.where(mask, token_logps, torch.zeros_like(token_logps))
    return token_logps.sum(dim=1), mask.sum(dim=1)


def response_logprobs(
    model: Any,
    processor: Any,
    images: Sequence[Any | None],
    prompts: Sequence[str],
    responses: Sequence[str],
    batch_size: int = 16,
    append_eos: bool = True,
) -> tuple[Any, Any]:
    """Return ``(sums, n_tokens)``: each response's summed token log-prob given its image and prompt, and its token count.

    ``images[i]`` is a PIL image or ``None`` (text-only prompt). Triples are scored ``batch_size`` at
    a time (triples with and without an image go in separate batches); results keep the input order.
    Gradients flow to the model's parameters unless the caller disables them. ``sums`` is float32
    on the model's device, ``n_tokens`` int64 (response tokens + EOS when ``append_eos``).
    """
    import torch

    if not (len(images) == len(prompts) == len(responses)):
        raise ValueError(f"images, prompts and responses differ in length: {len(images)}, {len(prompts)}, {len(responses)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    sums: list[Any] = [None] * len(prompts)
    counts: list[Any] = [None] * len(prompts)
    for has_image in (True, False):
        idx = [i for i, img in enumerate(images) if (img is not None) == has_image]
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            batch = tokenize_triples(
                processor, [images[i] for i in chunk], [prompts[i] for i in chunk], [responses[i] for i in chunk], append_eos
            )
            s, n = _forward_logprobs(model, batch)
            for j, i in enumerate(chunk):
                sums[i], counts[i] = s[j], n[j]
    if not sums:
        return torch.zeros(0, device=device), torch.zeros(0, dtype=torch.long, device=device)
    return torch.stack(sums), torch.stack(counts).long()
