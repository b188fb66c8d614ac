"""Preference losses as pure functions of per-response summed log-probs.

Every function returns a per-example loss tensor (no reduction); the trainer weights and averages.
Symbols follow ``shared/METHODS.md``: ``s = logp_policy - logp_ref`` is a response's log-ratio,
β the inverse temperature, ψ the discriminative reward in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


__all__ = [
    "dpo_loss",
    "ipo_loss",
    "perpo_loss",
    "mdpo_loss",
    "mipo_loss",
    "leanpo_loss",
    "povid_loss",
    "sft_loss",
    "dynamic_smoothing",
]

Tensor = torch.Tensor


def _smoothed_logistic(logits: Tensor, label_smoothing: float | Tensor = 0.0) -> Tensor:
    """−(1−ε)·log σ(z) − ε·log σ(−z): the Bradley–Terry NLL with labels flipped with probability ε (cDPO)."""
    loss = -F.logsigmoid(logits)
    if isinstance(label_smoothing, Tensor) or label_smoothing > 0:
        loss = (1 - label_smoothing) * loss - label_smoothing * F.logsigmoid(-logits)
    return loss


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> Tensor:
    """DPO (Rafailov et al. 2023, arXiv 2305.18290, Eq. 7): −log σ(β[(pc − rc) − (pr − rr)]), as published.

    With ``label_smoothing`` ε > 0 this is conservative DPO (cDPO, Mitchell 2023):
    −(1−ε)·log σ(βΔ) − ε·log σ(−βΔ). Equals TRL's ``loss_type="sigmoid"`` at ε = 0.
    """
    delta = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return _smoothed_logistic(beta * delta, label_smoothing)


def ipo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    chosen_len: Tensor,
    rejected_len: Tensor,
    beta: float = 0.1,
) -> Tensor:
    """IPO (Azar et al. 2023, arXiv 2310.12036, Eq. 17): (Δ̄ − 1/(2β))².

    Δ̄ is the difference of the two log-ratios each divided by its response's token count
    (clamped to ≥ 1), as TRL's ``loss_type="ipo"`` does (TRL DPOTrainer, which averages the log-probs
    for ipo); the paper's Eq. 17 writes the log-ratios without a length; β plays the role of τ.
    """
    chosen = (policy_chosen - ref_chosen) / chosen_len.clamp(min=1)
    rejected = (policy_rejected - ref_rejected) / rejected_len.clamp(min=1)
    return (chosen - rejected - 1 / (2 * beta)) ** 2


def perpo_loss(
    policy_logps: Tensor,
    ref_logps: Tensor,
    rewards: Tensor,
    mask: Tensor,
    beta: float = 0.1,
    gamma: float = 0.5,
) -> Tensor:
    """PerPO listwise loss (arXiv 2502.04371), all inputs ``[B, N]``, result ``[B]``.

    Source: ningerhhh/PerPO ``perpo/trainer/base_perpo_trainer.py`` ``perpo_loss``, as published
    (it computes log(1 + exp(·)); softplus is the stable form of the same value). Over every pair
    (i, j) of valid entries with ψ_i > ψ_j:
    Σ softplus(−β(s_i − s_j)) · |ψ_i − ψ_j|^γ / Σ |ψ_i − ψ_j|^γ, with s = policy − ref (summed log-probs).
    Pairs are found from the rewards, so the N entries may come in any order; ties and masked
    entries add nothing (masked values may be anything, even NaN); a row without a valid pair
    gives 0 with a zero (not NaN) gradient.
    """
    mask = mask.bool()
    s = torch.where(mask, policy_logps - ref_logps, torch.zeros_like(policy_logps))
    psi = torch.where(mask, rewards, torch.zeros_like(rewards))
    gap = psi.unsqueeze(2) - psi.unsqueeze(1)  # [B, N, N]: ψ_i − ψ_j
    valid = (gap > 0) & mask.unsqueeze(2) & mask.unsqueeze(1)
    weight = torch.where(valid, gap.clamp(min=0) ** gamma, torch.zeros_like(gap))
    pair_loss = F.softplus(-beta * (s.unsqueeze(2) - s.unsqueeze(1)))
    z = weight.sum(dim=(1, 2))
    total = (pair_loss * weight).sum(dim=(1, 2))
    return torch.where(z > 0, total / z.clamp(min=torch.finfo(z.dtype).tiny), torch.zeros_like(z))


def _group_mean(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Masked mean over the last axis and the count of valid entries (count clamped to ≥ 1 for the division)."""
    mask = mask.to(values.dtype)
    count = mask.sum(dim=-1)
    mean = (torch.where(mask.bool(), values, torch.zeros_like(values))).sum(dim=-1) / count.clamp(min=1)
    return mean, count


def mdpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Multi-sample DPO (Wang et al., arXiv 2410.12138, "mDPO"): −log σ(β[mean_i s(y_w^i) − mean_j s(y_l^j)]).

    Source: the paper's abstract and METHODS.md (the group comparison through the group's mean
    log-ratio). The paper's own equation and its code (alecwangcq/multi-sample-alignment) could not
    be read from here, so whether it adds an NLL term was not verified: none is added. Inputs are
    ``[B, K]`` groups with boolean masks; s uses summed log-probs as in DPO. ``label_smoothing``
    (ours, off by default) applies cDPO smoothing to the group comparison. A row whose chosen or
    rejected group is empty gives 0.
    """
    chosen, n_chosen = _group_mean(policy_chosen - ref_chosen, chosen_mask)
    rejected, n_rejected = _group_mean(policy_rejected - ref_rejected, rejected_mask)
    loss = _smoothed_logistic(beta * (chosen - rejected), label_smoothing)
    return torch.where((n_chosen > 0) & (n_rejected > 0), loss, torch.zeros_like(loss))


def _variance_of_mean(values: Tensor, mean: Tensor, mask: Tensor, count: Tensor) -> Tensor:
    """Unbiased estimate of Var(mean) = s²/k with Bessel's s²; 0 for groups of fewer than 2."""
    dev = torch.where(mask.bool(), values - mean.unsqueeze(-1), torch.zeros_like(values))
    s2 = (dev**2).sum(dim=-1) / (count - 1).clamp(min=1)
    return torch.where(count >= 2, s2 / count.clamp(min=1), torch.zeros_like(s2))


def mipo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    chosen_len: Tensor,
    rejected_len: Tensor,
    chosen_mask: Tensor,
    rejected_mask: Tensor,
    beta: float = 0.1,
    unbiased: bool = False,
) -> Tensor:
    """Multi-sample IPO (Wang et al., arXiv 2410.12138, "mIPO") on ``[B, K]`` groups.

    h = (policy − ref) / n_tokens per response (IPO's length normalisation, as in :func:`ipo_loss`);
    h̄_w, h̄_l are the group means, c = 1/(2β). The default is the IPO square of the group means,

        (h̄_w − h̄_l − c)²,

    which is bounded below by 0. Source and deviation: the paper's equation and code
    (alecwangcq/multi-sample-alignment) could not be read from here; its summaries say it also
    gives a low-variance unbiased estimator for mIPO, whose exact form is not known to us. So the
    default is the conservative plain square (ours, as a reading of "IPO on the group means"), and
    ``unbiased=True`` is our own variance-corrected form, not the paper's:

        (h̄_w − h̄_l − c)² − s_w²/k_w − s_l²/k_l,

    s² being Bessel-corrected sample variances (a group of one contributes no correction): the
    U-statistic mean of (h_w^i − h_l^j − c)(h_w^i' − h_l^j' − c) over i ≠ i', j ≠ j'. It is
    unbiased for (E h_w − E h_l − c)² only if group members are i.i.d. samples (top-k / bottom-k
    picks are not), and it is unbounded below: spreading the log-ratios inside a group lowers it
    without limit (k = 2, chosen log-ratios at h̄_w ± t: t² below the plain square). A row whose chosen or
    rejected group is empty gives 0.
    """
    h_w = (policy_chosen - ref_chosen) / chosen_len.clamp(min=1)
    h_l = (policy_rejected - ref_rejected) / rejected_len.clamp(min=1)
    mean_w, k_w = _group_mean(h_w, chosen_mask)
    mean_l, k_l = _group_mean(h_l, rejected_mask)
    loss = (mean_w - mean_l - 1 / (2 * beta)) ** 2
    if unbiased:
        loss = loss - _variance_of_mean(h_w, mean_w, chosen_mask, k_w) - _variance_of_mean(h_l, mean_l, rejected_mask, k_l)
    return torch.where((k_w > 0) & (k_l > 0), loss, torch.zeros_like(loss))


def dynamic_smoothing(reward_gap: Tensor, max_smoothing: float = 0.1) -> Tensor:
    """OURS, not LeanPO's: per-pair label smoothing ε = ε_max · (1 − clamp(ψ_w − ψ_l, 0, 1)).

    Offered by :func:`leanpo_loss` when a ``reward_gap`` is passed (``[train] leanpo_smoothing =
    "ours_reward_gap"``). A pair whose discriminative rewards are far apart is trusted (ε → 0); a
    pair with nearly equal rewards is treated as a noisy label (ε → ε_max). The paper's own rule
    was not found (see :func:`leanpo_loss`).
    """
    return max_smoothing * (1 - reward_gap.clamp(0.0, 1.0))


def leanpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    chosen_len: Tensor,
    rejected_len: Tensor,
    reward_gap: Tensor | None = None,
    beta: float = 2.0,
    max_smoothing: float = 0.1,
) -> Tensor:
    """LeanPO (Wang et al., arXiv 2506.05260): reference-free, reward r(y) = (β/|y|) · Σ_t log π_θ(y_t | x, y_<t).

    loss = −log σ(r_w − r_l) by default (``reward_gap=None``: ε = 0), and with a ``reward_gap``
    −(1−ε)·log σ(r_w − r_l) − ε·log σ(r_l − r_w), ε from :func:`dynamic_smoothing`.

    Source: the implicit reward (the policy's mean per-token log-likelihood, scaled by β) as the
    paper's abstract, method figure and reviews give it (arXiv 2506.05260 §3; METHODS.md). The
    paper's *dynamic label smoothing* rule could not be found (the authors' repository
    Wang-Xiaodong1899/LeanPO holds only a README and figures; only the abstract and introduction
    were readable), so no smoothing is the default, and the reward-gap rule of
    :func:`dynamic_smoothing` is ours, an option.
    """
    margin = beta * (policy_chosen / chosen_len.clamp(min=1) - policy_rejected / rejected_len.clamp(min=1))
    epsilon = 0.0 if reward_gap is None else dynamic_smoothing(reward_gap, max_smoothing).to(margin.dtype)
    return _smoothed_logistic(margin, epsilon)


def povid_loss(
    policy_chosen: Tensor,
    policy_hallucinated: Tensor,
    policy_image: Tensor,
    ref_chosen: Tensor,
    ref_hallucinated: Tensor,
    ref_image: Tensor,
    beta: float = 0.1,
    hallucinated_mask: Tensor | None = None,
    distorted_mask: Tensor | None = None,
) -> Tensor:
    """POVID (arXiv 2402.11411): 0.5·DPO(chosen vs hallucinated) + 0.5·DPO(chosen vs image-side rejected).

    Transcribes YiyangZhou/POVID ``tool/dpo_trainer_inherent.py`` ``get_batch_metrics``:
    ``losses = 0.5 * self_losses + 0.5 * losses``, each a sigmoid DPO loss with the trainer's β
    (0.1). For ``povid`` the image-side "rejected" log-probs are POVID's image term
    (:func:`stages.train.povid.image_term_logprobs`, the policy's and the reference's own); for
    ``povid_offline`` (ours) they are a distorted-image answer's log-probs on the clean image. The
    optional boolean masks drop a term for rows that lack that kind of rejected response (ours:
    POVID's rows always have both).
    """
    hallucination = dpo_loss(policy_chosen, policy_hallucinated, ref_chosen, ref_hallucinated, beta)
    distortion = dpo_loss(policy_chosen, policy_image, ref_chosen, ref_image, beta)
    if hallucinated_mask is not None:
        hallucination = torch.where(hallucinated_mask.bool(), hallucination, torch.zeros_like(hallucination))
    if distorted_mask is not None:
        distortion = torch.where(distorted_mask.bool(), distortion, torch.zeros_like(distortion))
    return 0.5 * hallucination + 0.5 * distortion


def sft_loss(policy_best: Tensor, best_len: Tensor) -> Tensor:
    """Supervised fine-tuning, the baseline row: −logp(y_best) / |y_best|, the mean token negative
    log-likelihood of each list's best response (TRL's SFTTrainer likewise averages over tokens). No
    reference model and no rejected response."""
    return -policy_best / best_len.clamp(min=1)
