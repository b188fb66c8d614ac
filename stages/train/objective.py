"""From a listwise batch to one loss per loss name, plus the metrics the trainer logs.

A list holds the N responses of one prompt with their rewards and origins. Each loss picks what it
needs from it: dpo/ipo/leanpo the best vs the worst response, mdpo/mipo the top-k vs the bottom-k,
povid the best clean answer vs its worst hallucination and vs POVID's image term (computed in the
forward), povid_offline the best clean answer vs its hallucinated and distorted-image answers, perpo
every pair.
Selection reads the rewards, never the position, so the responses may come in any order (povid,
whose preference comes from the origins, breaks reward ties between answers of one origin by position).
leanpo on a list holding LeanPO's own data (a ``prior_answer`` and a ``distorted_image`` answer, from
``[perturb.prior_answer]``) takes its winner and loser from the origins too: the best prior answer vs the
worst distorted-image answer, whatever their rewards (LeanPO's y_w and y_l, arXiv 2506.05260 §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Final, Sequence

import torch

from data_schemas.tables import Origin
from stages.train.loss_registry import LOSSES, LossName
from stages.train.losses import (
    dpo_loss,
    ipo_loss,
    leanpo_loss,
    mdpo_loss,
    mipo_loss,
    perpo_loss,
    povid_loss,
    sft_loss,
)

__all__ = [
    "ListBatch", "LossParams", "LossOutput", "ON_LISTS", "list_loss", "usable_list", "povid_chosen", "implicit_rewards",
    "pair_metrics",
]

Tensor = torch.Tensor
_REJECTED_ORIGINS: Final[frozenset[str]] = frozenset({Origin.HALLUCINATION, Origin.DISTORTED_IMAGE})


@dataclass
class ListBatch:
    """B lists of up to N responses, padded: every tensor is ``[B, N]``; ``mask`` marks real entries.

    ``ref_logps`` is ``None`` when no reference log-probs exist (only leanpo then works);
    ``origins`` holds the origin string of each entry ("" for padding). ``policy_image_term`` and
    ``ref_image_term`` (povid) hold POVID's image term of the entry :func:`povid_chosen` picks
    (the other entries are unused).
    """

    policy_logps: Tensor
    ref_logps: Tensor | None
    n_tokens: Tensor
    rewards: Tensor
    mask: Tensor
    origins: Sequence[Sequence[str]]
    policy_image_term: Tensor | None = None
    ref_image_term: Tensor | None = None


@dataclass(frozen=True)
class LossParams:
    """Hyper-parameters shared by the losses; ``beta=None`` takes the loss's registry default (``LOSSES[name].default_beta``)."""

    beta: float | None = None
    gamma: float = 0.5
    label_smoothing: float = 0.0
    group_size: int = 2
    max_smoothing: float = 0.1
    leanpo_smoothing: str = "none"
    mipo_unbiased: bool = False
    povid_stage: int = 2  # povid: 1 = DPO vs hallucinations only (POVID's first stage), 2 = both terms

    def beta_for(self, name: LossName) -> float:
        """The β a loss runs with."""
        return LOSSES[LossName(name)].default_beta if self.beta is None else self.beta


@dataclass
class LossOutput:
    """The batch loss (weighted mean over usable rows), the per-row losses and which rows counted."""

    loss: Tensor
    per_row: Tensor
    row_valid: Tensor


def _masked_rewards(batch: ListBatch, fill: float) -> Tensor:
    return torch.where(batch.mask.bool(), batch.rewards, torch.full_like(batch.rewards, fill))


def _take(values: Tensor, index: Tensor) -> Tensor:
    """values[b, index[b, ...]] for a ``[B, N]`` tensor and a ``[B]`` or ``[B, K]`` index."""
    if index.dim() == 1:
        return values.gather(1, index.unsqueeze(1)).squeeze(1)
    return values.gather(1, index)


def _ref(batch: ListBatch) -> Tensor:
    if batch.ref_logps is None:
        raise ValueError("this loss needs reference log-probs (ref_logps); run the reference stage first")
    return batch.ref_logps


def _best_worst(batch: ListBatch) -> tuple[Tensor, Tensor, Tensor]:
    """Index of the highest- and lowest-reward valid entry of each list, and whether they differ in reward."""
    high = _masked_rewards(batch, float("-inf"))
    low = _masked_rewards(batch, float("inf"))
    best, worst = high.argmax(dim=1), low.argmin(dim=1)
    valid = _take(batch.rewards, best) > _take(batch.rewards, worst)
    return best, worst, valid & batch.mask.any(dim=1)


def _top_bottom(batch: ListBatch, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Top-k and bottom-k valid entries by reward, k shrunk per list as the rank stage's ``groups`` do.

    k is capped at half the list (the groups never overlap) and then lowered until the worst chosen
    reward is strictly above the best rejected one, so no response is pushed up against an equally
    good one (a list [1, 0, 0, 0] with k = 2 compares [1] with [0], not [1, 0] with [0, 0]).
    """
    k = max(1, min(k, batch.rewards.shape[1]))
    order = _masked_rewards(batch, float("-inf")).argsort(dim=1, descending=True, stable=True)
    n_valid = batch.mask.bool().sum(dim=1)
    slots = torch.arange(k, device=order.device).unsqueeze(0)
    chosen = order[:, :k]
    rejected_pos = (n_valid.unsqueeze(1) - 1 - slots).clamp(min=0)  # last valid entries of the sorted order
    rejected = order.gather(1, rejected_pos)
    # slot i may join the groups iff chosen[i] beats rejected[i]; sorted rewards make this hold for a prefix of slots
    separated = (_take(batch.rewards, chosen) > _take(batch.rewards, rejected)) & (slots < (n_valid // 2).unsqueeze(1))
    k_eff = separated.long().cumprod(dim=1).sum(dim=1)
    group_mask = slots < k_eff.unsqueeze(1)
    mean_chosen = (_take(batch.rewards, chosen) * group_mask).sum(1) / k_eff.clamp(min=1)
    mean_rejected = (_take(batch.rewards, rejected) * group_mask).sum(1) / k_eff.clamp(min=1)
    valid = (k_eff > 0) & (mean_chosen > mean_rejected)
    return chosen, rejected, group_mask, group_mask, valid


def _pick(rewards: list[float], mask: list[bool], origins: Sequence[str], want: Callable[[str], bool], best: bool) -> int | None:
    """Index of the highest (``best``) or lowest reward entry whose origin passes ``want``, or None."""
    idx = [i for i, (m, o) in enumerate(zip(mask, origins)) if m and want(o)]
    if not idx:
        return None
    return (max if best else min)(idx, key=lambda i: rewards[i])


def povid_chosen(rewards: Sequence[float | None], origins: Sequence[str]) -> int | None:
    """The chosen answer of a povid list: its best-reward answer that is neither hallucinated nor from a distorted image."""
    return _pick([0.0 if r is None else r for r in rewards], [True] * len(origins), origins,
                 lambda o: o not in _REJECTED_ORIGINS, best=True)


def _povid_indices(batch: ListBatch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Per list: best clean answer, worst hallucination, worst distorted-image answer, and their presence."""
    rewards = batch.rewards.detach().cpu().tolist()
    masks = batch.mask.bool().cpu().tolist()
    cols: list[list[int | None]] = [[], [], []]
    for row_rewards, row_mask, row_origins in zip(rewards, masks, batch.origins):
        cols[0].append(_pick(row_rewards, row_mask, row_origins, lambda o: o not in _REJECTED_ORIGINS, best=True))
        cols[1].append(_pick(row_rewards, row_mask, row_origins, lambda o: o == Origin.HALLUCINATION, best=False))
        cols[2].append(_pick(row_rewards, row_mask, row_origins, lambda o: o == Origin.DISTORTED_IMAGE, best=False))
    device = batch.rewards.device
    index = [torch.tensor([i or 0 for i in col], dtype=torch.long, device=device) for col in cols]
    present = [torch.tensor([i is not None for i in col], dtype=torch.bool, device=device) for col in cols]
    return index[0], index[1], index[2], present[0], present[1], present[2]


def _pairwise(batch: ListBatch, p: LossParams, name: LossName) -> tuple[Tensor, Tensor]:
    best, worst, valid = _best_worst(batch)
    ref = _ref(batch)
    args = (_take(batch.policy_logps, best), _take(batch.policy_logps, worst), _take(ref, best), _take(ref, worst))
    if name is LossName.DPO:
        return dpo_loss(*args, beta=p.beta_for(name), label_smoothing=p.label_smoothing), valid
    lens = (_take(batch.n_tokens, best), _take(batch.n_tokens, worst))
    return ipo_loss(*args, *lens, beta=p.beta_for(name)), valid


def _dpo(batch: ListBatch, p: LossParams) -> tuple[Tensor, Tensor]:
    return _pairwise(batch, p, LossName.DPO)


def _ipo(batch: ListBatch, p: LossParams) -> tuple[Tensor, Tensor]:
    return _pairwise(batch, p, LossName.IPO)


def _perpo(batch: ListBatch, p: LossParams) -> tuple[Tensor, Tensor]:
    loss = perpo_loss(batch.policy_logps, _ref(batch), batch.rewards, batch.mask, p.beta_for(LossName.PERPO), p.gamma)
    _, _, valid = _best_worst(batch)  # a list has a usable pair iff its rewards are not all equal
    return loss, valid


def _groups(batch: ListBatch, p: LossParams, name: LossName) -> tuple[Tensor, Tensor]:
    chosen, rejected, cmask, rmask, valid = _top_bottom(batch, p.group_size)
    ref = _ref(batch)
    args = (_take(batch.policy_logps, chosen), _take(batch.policy_logps, rejected), _take(ref, chosen), _take(ref, rejected))
    if name is LossName.MDPO:
        return mdpo_loss(*args, cmask, rmask, beta=p.beta_for(name), label_smoothing=p.label_smoothing), valid
    lens = (_take(batch.n_tokens, chosen), _take(batch.n_tokens, rejected))
    return mipo_loss(*args, *lens, cmask, rmask, beta=p.beta_for(name), unbiased=p.mipo_unbiased), valid


def _mdpo(batch: ListBatch, p: LossParams) -> tuple[Tensor, Tensor]:
    return _groups(batch, p, LossName.MDPO)


def _mipo(batch: ListBatch, p: LossParams) -> tuple[Tensor, Tensor]:
    return _groups(batch, p, LossName.MIPO)


def _leanpo_indices(batch: ListBatch) -> tuple[Tensor, Tensor, Tensor]:
    """Per list: LeanPO's own pair when the list holds a prior answer and a distorted-image answer (the best-reward
    prior_answer vs the worst-reward distorted_image, whatever the rewards), else the best vs worst by reward."""
    best, worst, valid = _best_worst(batch)
    rewards = batch.rewards.detach().cpu().tolist()
    masks = batch.mask.bool().cpu().tolist()
    best, worst, valid = best.clone(), worst.clone(), valid.clone()
    for row, (row_rewards, row_mask, row_origins) in enumerate(zip(rewards, masks, batch.origins)):
        winner = _pick(row_rewards, row_mask, row_origins, lambda o: o == Origin.PRIOR_ANSWER, best=True)
        loser = _pick(row_rewards, row_mask, row_origins, lambda o: o == Origin.DISTORTED_IMAGE, best=False)
        if winner is not None and loser is not None:
            best[row], worst[row], valid[row] = winner, loser, True
    return best, worst, valid


def _leanpo(batch: ListBatch, p: LossParams) -> tuple[Tensor, Tensor]:
    best, worst, valid = _leanpo_indices(batch)
    gap = _take(batch.rewards, best) - _take(batch.rewards, worst)
    loss = leanpo_loss(
        _take(batch.policy_logps, best),
        _take(batch.policy_logps, worst),
        _take(batch.n_tokens, best),
        _take(batch.n_tokens, worst),
        reward_gap=gap if p.leanpo_smoothing == "ours_reward_gap" else None,
        beta=p.beta_for(LossName.LEANPO),
        max_smoothing=p.max_smoothing,
    )
    return loss, valid


def _povid(batch: ListBatch, p: LossParams) -> tuple[Tensor, Tensor]:
    """POVID as published: chosen vs its worst hallucination and vs its image term (stage 1: hallucinations only)."""
    c, h, _, has_c, has_h, _ = _povid_indices(batch)
    ref, pol = _ref(batch), batch.policy_logps
    beta = p.beta_for(LossName.POVID)
    if p.povid_stage == 1:  # POVID's stage 1 (scripts/run_dpo.sh): plain DPO, chosen vs hallucinated
        return dpo_loss(_take(pol, c), _take(pol, h), _take(ref, c), _take(ref, h), beta), has_c & has_h
    if batch.policy_image_term is None or batch.ref_image_term is None:
        raise ValueError("povid needs the policy's and the reference's image term (policy_image_term, ref_image_term)")
    image_pol, image_ref = _take(batch.policy_image_term, c), _take(batch.ref_image_term, c)
    loss = povid_loss(_take(pol, c), _take(pol, h), image_pol, _take(ref, c), _take(ref, h), image_ref, beta=beta,
                      hallucinated_mask=has_h)
    return loss, has_c


def _povid_offline(batch: ListBatch, p: LossParams) -> tuple[Tensor, Tensor]:
    """Ours: chosen vs its worst hallucination and vs its worst answer sampled on a distorted image."""
    c, h, d, has_c, has_h, has_d = _povid_indices(batch)
    ref, pol = _ref(batch), batch.policy_logps
    loss = povid_loss(
        _take(pol, c), _take(pol, h), _take(pol, d), _take(ref, c), _take(ref, h), _take(ref, d),
        beta=p.beta_for(LossName.POVID_OFFLINE), hallucinated_mask=has_h, distorted_mask=has_d,
    )
    return loss, has_c & (has_h | has_d)


def _sft(batch: ListBatch, p: LossParams) -> tuple[Tensor, Tensor]:
    best, _, valid = _best_worst(batch)  # the lists the pairwise losses use (rewards not all equal)
    return sft_loss(_take(batch.policy_logps, best), _take(batch.n_tokens, best)), valid


# How each registered loss (stages.train.loss_registry.LOSSES) reads a listwise batch: per-row losses and which rows count.
ON_LISTS: Final[dict[LossName, Callable[[ListBatch, LossParams], tuple[Tensor, Tensor]]]] = {
    LossName.DPO: _dpo,
    LossName.IPO: _ipo,
    LossName.PERPO: _perpo,
    LossName.MDPO: _mdpo,
    LossName.MIPO: _mipo,
    LossName.LEANPO: _leanpo,
    LossName.POVID: _povid,
    LossName.POVID_OFFLINE: _povid_offline,
    LossName.SFT: _sft,
}


def list_loss(name: LossName | str, batch: ListBatch, params: LossParams = LossParams()) -> LossOutput:
    """Compute loss ``name`` on a listwise batch: the mean of the per-list losses over lists it can use.

    A list it cannot use (all rewards equal; for povid, whose preference comes from the origins
    instead, no clean answer or neither a hallucinated nor a distorted-image answer) adds nothing; a batch with no usable list gives a zero loss that still
    back-propagates (zero gradients).
    """
    per_row, valid = ON_LISTS[LossName(name)](batch, params)
    weights = valid.to(per_row.dtype)
    per_row = torch.where(valid, per_row, torch.zeros_like(per_row))
    loss = (per_row * weights).sum() / weights.sum().clamp(min=1)
    return LossOutput(loss=loss, per_row=per_row, row_valid=valid)


def usable_list(name: LossName | str, rewards: Sequence[float | None], origins: Sequence[str]) -> bool:
    """Whether loss ``name`` can learn anything from a list (same rule as :func:`list_loss` uses per row).

    povid needs a clean answer (its image term is always there); povid_offline a clean answer and a
    hallucinated or distorted-image one; every other loss needs two responses with different
    (non-null) rewards.
    """
    if LossName(name) is LossName.POVID:
        return any(o not in _REJECTED_ORIGINS for o in origins)
    if LossName(name) is LossName.POVID_OFFLINE:
        return any(o not in _REJECTED_ORIGINS for o in origins) and any(o in _REJECTED_ORIGINS for o in origins)
    if LossName(name) is LossName.LEANPO and Origin.PRIOR_ANSWER in origins and Origin.DISTORTED_IMAGE in origins:
        return True  # LeanPO's own pair: the origins decide (see _leanpo_indices)
    known = {r for r in rewards if r is not None}
    return len(known) >= 2


def implicit_rewards(name: LossName | str, batch: ListBatch, params: LossParams = LossParams()) -> Tensor:
    """The reward the loss implicitly trains, ``[B, N]``: β·(policy − ref), or β·policy/|y| for leanpo."""
    name = LossName(name)
    beta = params.beta_for(name)
    if LOSSES[name].needs_reference:
        return beta * (batch.policy_logps - _ref(batch))
    return beta * batch.policy_logps / batch.n_tokens.clamp(min=1)


@torch.no_grad()
def pair_metrics(scores: Tensor, rewards: Tensor, mask: Tensor) -> dict[str, float]:
    """Over all pairs (i, j) with ψ_i > ψ_j: fraction with score_i > score_j, and mean score_i − score_j."""
    mask = mask.bool()
    gap = rewards.unsqueeze(2) - rewards.unsqueeze(1)
    pairs = (gap > 0) & mask.unsqueeze(2) & mask.unsqueeze(1)
    margin = (scores.unsqueeze(2) - scores.unsqueeze(1))[pairs]
    if margin.numel() == 0:
        return {"reward_accuracy": float("nan"), "reward_margin": float("nan"), "pairs": 0.0}
    return {
        "reward_accuracy": (margin > 0).float().mean().item(),
        "reward_margin": margin.float().mean().item(),
        "pairs": float(margin.numel()),
    }
