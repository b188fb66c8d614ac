"""POVID's image term: the dispreferred "response" made by teacher-forcing the model on a diffusion-noised image.

Source: YiyangZhou/POVID, ``tool/dpo_trainer_inherent.py`` (``concatenated_multi_forward`` and
``_get_noisy_batch_logps``) and ``llava/train/train_dpo_inherent.py`` (``add_diffusion_noise``,
``__getitem__``). For a chosen answer y of prompt x with image v, the model (the policy for the
policy's term, the reference model for the reference's) is run twice, teacher-forced on y:

1. on the noised image ṽ (forward diffusion to step t = 500 of T = 1000 on the [0, 1] image), and
   at every response position k the argmax token a_k = argmax_w p(w | ṽ, x, y_<k) is taken;
2. on the clean image v; the term is Σ_k log p(a_k | v, x, y_<k), the log-prob of those argmax
   tokens at the same positions, on the *chosen* prefix (the argmax tokens are never fed back).

POVID's stage-2 loss is then 0.5 · DPO(y vs hallucinated) + 0.5 · DPO(y vs this term), β = 0.1
(:func:`stages.train.losses.povid_loss`). Gradients flow through the clean forward only (an argmax
has none), so the noised forward runs without a graph.

Deviations (ours): the noise is drawn once per task from a seed derived from its ``task_id``
(:func:`noise_seed`), so the reference stage, which precomputes the reference's term, and the
train loop see the same noised image, as POVID's policy and reference do within one step (POVID
draws fresh noise each time a sample is loaded; with its one-epoch stage 2 that is once per
sample too). The noised image is clamped to [0, 1] before rounding to 8 bits, where POVID's
``ToPILImage`` wraps out-of-range values around (:mod:`stages.perturb.noise`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

from stages.vlm.logprobs import _accepts, _to_model, tokenize_triples

__all__ = ["NOISE_STEP", "noise_seed", "noised_image", "image_term_logprobs", "list_image_terms"]

NOISE_STEP = 500
"""POVID's diffusion step: ``add_diffusion_noise(image_tensor, 500)`` (0-based, of 1000)."""


def noise_seed(task_id: str) -> int:
    """The seed of a task's diffusion noise: a stable hash of its id (the same in every stage and process)."""
    return int.from_bytes(hashlib.sha256(f"povid-image-noise:{task_id}".encode()).digest()[:8], "big")


def noised_image(image: Any, task_id: str) -> Any:
    """``image`` (PIL) noised to POVID's diffusion step 500 with the task's seed, as an RGB PIL image."""
    import numpy as np
    from PIL import Image

    from stages.perturb.noise import diffusion_noise

    pixels = np.asarray(image.convert("RGB"))
    return Image.fromarray(diffusion_noise(pixels, NOISE_STEP, noise_seed(task_id)))


def _forward_logits(model: Any, batch: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Logits predicting positions ``-keep..`` of the right-padded rows, their targets and response mask."""
    inputs = _to_model(model, {k: v for k, v in batch.items() if k not in ("response_mask", "prompt_lengths")})
    target = inputs["input_ids"][:, 1:]
    mask = batch["response_mask"][:, 1:].to(target.device)
    keep = target.shape[1] - int(batch["prompt_lengths"].min()) + 1  # only positions from the first response token on
    if _accepts(model, "logits_to_keep"):
        inputs["logits_to_keep"] = keep + 1
    logits = model(**inputs, use_cache=False).logits[:, -(keep + 1) : -1]
    return logits.float(), target[:, -keep:], mask[:, -keep:]


def image_term_logprobs(
    model: Any,
    processor: Any,
    images: Sequence[Any],
    noised: Sequence[Any],
    prompts: Sequence[str],
    responses: Sequence[str],
    batch_size: int = 16,
    append_eos: bool = True,
    response_ids: Sequence[Sequence[int] | None] | None = None,
) -> tuple[Any, Any, Any]:
    """Return ``(chosen_sums, term_sums, n_tokens)``, one entry per (image, noised image, prompt, response).

    ``chosen_sums`` is each response's summed log-prob on its clean image (what DPO's chosen side
    uses); ``term_sums`` is POVID's image term for it (see the module docstring); ``n_tokens``
    counts the response tokens (EOS included when ``append_eos``). Both sums come from one clean
    forward and carry gradients unless the caller disables them; the noised forward never does.
    ``response_ids[i]``, when given, are the ids response ``i`` was sampled as (scored as they are).
    """
    import torch

    if not (len(images) == len(noised) == len(prompts) == len(responses)):
        raise ValueError("images, noised images, prompts and responses differ in length")
    given = list(response_ids) if response_ids is not None else [None] * len(prompts)
    chosen, term, counts = [], [], []
    for start in range(0, len(prompts), batch_size):
        sl = slice(start, start + batch_size)
        clean = tokenize_triples(processor, images[sl], prompts[sl], responses[sl], append_eos, given[sl], model)
        noisy = tokenize_triples(processor, noised[sl], prompts[sl], responses[sl], append_eos, given[sl], model)
        if not torch.equal(clean["input_ids"], noisy["input_ids"]):
            raise ValueError("the noised image changed the prompt's tokens; it must keep the clean image's size")
        with torch.no_grad():
            noisy_logits, _, _ = _forward_logits(model, noisy)
        argmax = noisy_logits.argmax(dim=-1)
        del noisy_logits
        logits, target, mask = _forward_logits(model, clean)
        logps = logits.log_softmax(dim=-1)
        zeros = torch.zeros_like(target, dtype=logps.dtype)
        chosen.append(torch.where(mask, logps.gather(-1, target.unsqueeze(-1)).squeeze(-1), zeros).sum(dim=1))
        term.append(torch.where(mask, logps.gather(-1, argmax.unsqueeze(-1)).squeeze(-1), zeros).sum(dim=1))
        counts.append(mask.sum(dim=1))
    if not chosen:
        device = next(model.parameters()).device
        empty = torch.zeros(0, device=device)
        return empty, empty, torch.zeros(0, dtype=torch.long, device=device)
    return torch.cat(chosen), torch.cat(term), torch.cat(counts).long()


def list_image_terms(model: Any, processor: Any, examples: Sequence[Any], batch_size: int = 16) -> list[list[float] | None]:
    """POVID's image term of every response of every list (each response as the chosen one), without gradients.

    What the reference stage stores as ``ref_povid_logps`` (the train loop picks the chosen answer's
    entry); ``None`` for a list without an image. ``examples`` are :class:`stages.train.data.ListExample`.
    """
    import torch

    images, noised, prompts, responses, token_ids, owner = [], [], [], [], [], []
    for i, ex in enumerate(examples):
        image = ex.image()
        if image is None:
            continue
        noisy = noised_image(image, ex.task_id)
        for text, ids in zip(ex.responses, ex.response_token_ids or [None] * len(ex.responses)):
            images.append(image)
            noised.append(noisy)
            prompts.append(ex.prompt)
            responses.append(text)
            token_ids.append(ids)
            owner.append(i)
    with torch.inference_mode():
        _, term, _ = image_term_logprobs(model, processor, images, noised, prompts, responses, batch_size,
                                         response_ids=token_ids)
    out: list[list[float] | None] = [None if ex.image_cell is None else [] for ex in examples]
    for i, value in zip(owner, term.double().cpu().tolist()):
        out[i].append(float(value))  # type: ignore[union-attr]
    return out
