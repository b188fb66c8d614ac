"""The loss registry: every training loss, what it compares, where it comes from, its defaults.

Torch-free, so the config, its reference docs and the CLI read it cheaply. The objective
(:mod:`stages.train.objective`) dispatches on :class:`LossName` and reads ``needs_reference`` and
``default_beta`` from here; tests parametrize over :data:`LOSSES`; the ``[train] loss`` field's
description (and so ``perpo-pipeline config-reference``) lists it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = ["LossName", "LossSpec", "LOSSES", "loss_spec", "losses_markdown"]


class LossName(StrEnum):
    """Every loss the train stage knows; :data:`LOSSES` describes each."""

    DPO = "dpo"
    IPO = "ipo"
    PERPO = "perpo"
    MDPO = "mdpo"
    MIPO = "mipo"
    LEANPO = "leanpo"
    POVID = "povid"
    POVID_OFFLINE = "povid_offline"
    SFT = "sft"


@dataclass(frozen=True)
class LossSpec:
    """One loss: which responses of a list it compares, its source, whether it is implemented as published.

    ``published`` False means the formula or the data it is fed is ours; ``note`` says how and why.
    """

    name: LossName
    compares: str
    source: str
    published: bool
    note: str = ""
    default_beta: float = 0.1
    needs_reference: bool = True
    image_term: bool = False  # the policy's POVID image term is computed in the forward (stages.train.povid)


LOSSES: Final[dict[LossName, LossSpec]] = {
    spec.name: spec
    for spec in (
        LossSpec(
            LossName.DPO, "best vs worst of each list (cDPO label smoothing optional)",
            "Rafailov et al. 2023, arXiv 2305.18290 Eq. 7; TRL DPOTrainer loss_type='sigmoid'", True,
        ),
        LossSpec(
            LossName.IPO, "best vs worst, log-ratios divided by their token counts",
            "Azar et al. 2023, arXiv 2310.12036 Eq. 17; TRL DPOTrainer loss_type='ipo'", True,
        ),
        LossSpec(
            LossName.PERPO, "every pair of the list, weighted by the reward gap |ψi − ψj|^γ",
            "PerPO, arXiv 2502.04371; ningerhhh/PerPO perpo/trainer/base_perpo_trainer.py perpo_loss", True,
        ),
        LossSpec(
            LossName.MDPO, "top-k group vs bottom-k group, mean log-ratios",
            "Wang et al., arXiv 2410.12138 (multi-sample DPO)", False,
            "the group-mean form follows the abstract; the paper's equation and code could not be read, so a "
            "possible NLL term is not added",
        ),
        LossSpec(
            LossName.MIPO, "top-k group vs bottom-k group, IPO square of the mean length-normalised log-ratios",
            "Wang et al., arXiv 2410.12138 (multi-sample IPO)", False,
            "the paper's equation could not be read; the default is the plain square of the group means "
            "(bounded below); mipo_unbiased = true is our variance-corrected form (unbounded below)",
        ),
        LossSpec(
            LossName.LEANPO, "best vs worst (on LeanPO's own lists: the prior answer vs the worst distorted-image answer), "
            "reference-free reward β × mean per-token log-likelihood",
            "LeanPO, arXiv 2506.05260", False,
            "the reward is as published; the paper's dynamic label smoothing rule was not found, so none is applied "
            "by default (leanpo_smoothing = 'ours_reward_gap' is our own rule)",
            default_beta=2.0, needs_reference=False,
        ),
        LossSpec(
            LossName.POVID,
            "0.5 · DPO(best clean answer vs hallucinated) + 0.5 · DPO(it vs its argmax tokens on the diffusion-noised "
            "image, scored on the clean image); optional two-stage schedule",
            "POVID, arXiv 2402.11411; YiyangZhou/POVID tool/dpo_trainer_inherent.py (_get_noisy_batch_logps)", True,
            "as published, except: noise seeded per task (same image for policy and reference), clamped to [0, 1]",
            image_term=True,
        ),
        LossSpec(
            LossName.POVID_OFFLINE, "0.5 · DPO(best vs hallucinated) + 0.5 · DPO(best vs distorted-image answer)",
            "POVID, arXiv 2402.11411 (data recipe only)", False,
            "an offline variant: the image-side rejected answer is sampled beforehand on a distorted image by the "
            "perturb stage, not POVID's teacher-forced argmax",
        ),
        LossSpec(
            LossName.SFT, "the best response of each list alone: its mean token negative log-likelihood",
            "supervised fine-tuning, the baseline row of PerPO's and DPO's tables (e.g. TRL SFTTrainer)", True,
            needs_reference=False,
        ),
    )
}


def loss_spec(name: LossName | str) -> LossSpec:
    """The registry entry of loss ``name`` (a :class:`ValueError` naming the known losses if there is none)."""
    try:
        return LOSSES[LossName(name)]
    except ValueError:
        raise ValueError(f"unknown loss {name!r}; available: {', '.join(LossName)}") from None


def losses_markdown() -> str:
    """README's loss table, from the registry: name, what it compares, source, as published or ours (why)."""
    lines = ["| loss | what it compares | source | as published? |", "|---|---|---|---|"]
    for spec in LOSSES.values():
        status = "as published" if spec.published else f"ours: {spec.note}"
        cells = [f"`{spec.name}`", spec.compares, spec.source, status]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
