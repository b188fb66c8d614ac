"""The policy's forward over whole lists as one ``nn.Module`` call, so DistributedDataParallel sees one forward per backward.

Scoring a list runs the model several times (the shared prompt, then its responses on the KV
cache; more chunks above ``forward_batch_size``). DDP prepares its gradient reduction once per
forward of the module it wraps, so it wraps this module, not the VLM: every inner model call then
belongs to one DDP forward whose output (the log-prob sums) reaches every parameter used.
"""

from __future__ import annotations

from typing import Any

import torch

from stages.train.data import ListExample
from stages.vlm.logprobs import response_logprobs

__all__ = ["ListScorer", "has_unused_parameters"]


class ListScorer(torch.nn.Module):
    """``forward(lists) -> (sums, n_tokens, image_terms)``: every response of ``lists`` scored under ``model``, flat,
    in list order; with ``image_term`` also POVID's image term of each list's chosen answer (``[len(lists)]``,
    NaN for a list without one), else ``None``."""

    def __init__(self, model: Any, processor: Any, forward_batch_size: int, share_prompt: bool, image_term: bool = False) -> None:
        super().__init__()
        self.model = model
        self.processor = processor
        self.forward_batch_size = forward_batch_size
        self.share_prompt = share_prompt
        self.image_term = image_term

    def forward(self, lists: list[ListExample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        images, prompts, responses, list_images, token_ids = [], [], [], [], []
        for ex in lists:
            image = ex.image()  # one object per list: its responses share the prompt pass
            list_images.append(image)
            images += [image] * len(ex.responses)
            prompts += [ex.prompt] * len(ex.responses)
            responses += ex.responses
            token_ids += ex.response_token_ids or [None] * len(ex.responses)
        sums, counts = response_logprobs(
            self.model, self.processor, images, prompts, responses, self.forward_batch_size,
            share_prompt=self.share_prompt, response_ids=token_ids,
        )
        return sums, counts, (self._image_terms(lists, list_images) if self.image_term else None)

    def _image_terms(self, lists: list[ListExample], images: list[Any]) -> torch.Tensor:
        """POVID's image term of each list's chosen answer (stages.train.povid), NaN where there is none."""
        from stages.train.objective import povid_chosen
        from stages.train.povid import image_term_logprobs, noised_image

        picks = [(i, povid_chosen(ex.rewards, ex.origins)) for i, ex in enumerate(lists)]
        picks = [(i, c) for i, c in picks if c is not None and images[i] is not None]
        device = next(self.model.parameters()).device
        out = torch.full((len(lists),), float("nan"), device=device)
        if picks:
            _, term, _ = image_term_logprobs(
                self.model, self.processor, [images[i] for i, _ in picks],
                [noised_image(images[i], lists[i].task_id) for i, _ in picks],
                [lists[i].prompt for i, _ in picks], [lists[i].responses[c] for i, c in picks], self.forward_batch_size,
                response_ids=[(lists[i].response_token_ids or [None] * len(lists[i].responses))[c] for i, c in picks],
            )
            out = out.index_put((torch.tensor([i for i, _ in picks], device=device),), term.to(out.dtype))
        return out


def has_unused_parameters(scorer: ListScorer, lists: list[ListExample], autocast: bool = False) -> bool:
    """Whether some trainable parameter gets no gradient from a step on ``lists`` (DDP then needs ``find_unused_parameters``).

    A text-only list leaves the vision tower unused, so any text-only list answers yes. Otherwise one
    list is scored and back-propagated as a probe; the RNG state and the gradients are restored, so
    the probe changes nothing the training run computes.
    """
    if any(ex.image_cell is None for ex in lists):
        return True
    params = [p for p in scorer.parameters() if p.requires_grad]
    device = params[0].device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
            sums, _, _ = scorer(lists[:1])
        sums.sum().backward()
    unused = any(p.grad is None for p in params)
    for p in params:
        p.grad = None
    return unused
