"""The ``[perturb]`` config section: hallucination injection, image distortions, and the sampler that answers.

The model that answers sits in ``[perturb.engine]`` (``engine.model = ""`` is the sample stage's
model, filled in by the loader); its resource fields (``batch_size``, ``num_actors`` ...) stay out of
fingerprints. The sampling settings (``temperature`` ...) sit at the top of the section.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stages.base import OMITTED
from stages.lib.families import checked_family
from stages.perturb.distortions import DistortionName, DistortionSpec
from stages.perturb.injectors import InjectorKind
from stages.vlm.engine_config import EngineConfig, ModelStageConfig, engine_field

__all__ = ["HallucinationMode", "HallucinationConfig", "DistortionConfig", "PriorAnswerConfig", "PerturbConfig"]


class HallucinationMode(StrEnum):
    """How hallucinated answers are made: ``rule`` (offline, deterministic) or ``llm`` (a model rewrites)."""

    RULE = "rule"
    LLM = "llm"


class HallucinationConfig(BaseModel):
    """POVID text hallucinations injected into the ground-truth answer (origin ``hallucination``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(True, description="Add hallucinated versions of the ground-truth answer as candidates.")
    mode: HallucinationMode = Field(
        HallucinationMode.RULE,
        description="`rule`: deterministic injectors (offline); `llm`: the model rewrites the answer, checked, "
        "with rule fallback.",
    )
    n: int = Field(2, ge=0, le=64, description="Hallucinated answers per task (fewer when the answer offers fewer errors).")
    kinds: list[InjectorKind] = Field(
        default_factory=lambda: list(InjectorKind),
        description=f"Injector kinds to use; each applies to its task types. Available: {', '.join(InjectorKind)}.",
    )
    max_kinds: int = Field(2, ge=1, le=len(InjectorKind), description="At most this many kinds combined in one answer.")
    max_edits: int = Field(2, ge=1, le=16, description="At most this many edits per kind (words, numbers, characters).")
    iou_band: tuple[float, float] = Field(
        (0.1, 0.5), description="Box injections land at an IoU with the true box inside [low, high]."
    )
    llm_retries: int = Field(3, ge=1, le=20, description="LLM mode: tries per answer before the rule injector fills in.")
    llm_with_image: bool = Field(False, description="LLM mode: send the image with the prompt (needs a VLM).")
    llm_max_tokens: int = Field(128, ge=1, le=4096, description="LLM mode: token budget of one rewrite.")
    seed: int = Field(0, ge=0, description="Base seed; each row's seed derives from it and the task id.")

    @field_validator("kinds")
    @classmethod
    def _kinds_unique(cls, value: list[InjectorKind]) -> list[InjectorKind]:
        if not value:
            raise ValueError("kinds is empty; list at least one of " + ", ".join(InjectorKind) + " or set enabled = false")
        return list(dict.fromkeys(value))

    @field_validator("iou_band")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low < high < 1.0:
            raise ValueError(
                f"iou_band={list(value)}: need 0 <= low < high < 1 (high < 1 so the box moves), e.g. [0.1, 0.5]"
            )
        return value


class DistortionConfig(BaseModel):
    """POVID image distortions: the policy answers on a distorted image (origin ``distorted_image``)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(True, description="Answer each task on distorted copies of its image.")
    distortions: list[DistortionSpec] = Field(
        default_factory=lambda: [DistortionSpec(name=DistortionName.DIFFUSION)],
        description="Distortions to apply, each `{ name, label, params }`; names: " + ", ".join(DistortionName) + ".",
    )
    n_answers: int = Field(2, ge=1, le=64, description="Answers sampled per distorted image.")
    keep_images: bool = Field(False, description="Write distorted images as PNG into the shard's scratch folder.")
    seed: int = Field(0, ge=0, description="Base seed of the distortions and of the answers on distorted images.")

    @model_validator(mode="after")
    def _labels_unique(self) -> "DistortionConfig":
        labels = [d.label for d in self.distortions]
        dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
        if dupes:
            raise ValueError(f"distortions: labels {dupes} are used twice; give each entry a distinct `label`")
        return self


class PriorAnswerConfig(BaseModel):
    """LeanPO's winning answers: the model answers each task with its ground truth in the prompt as a hint
    (origin ``prior_answer``; LeanPO's losers are the answers on distorted images). The hint's wording is
    ours (prompts/prior_answer.txt) and LeanPO's self-reflection step is not built: see stages/perturb/prior.py."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = Field(
        False,
        description="Add `prior_answer` candidates: the model's answer when the ground truth is given in its prompt "
        "(LeanPO's winning answer; the `leanpo` preset turns it on and trains prior answer vs distorted-image answer).",
    )
    n: int = Field(1, ge=1, le=64, description="Answers sampled per task with the ground truth as a hint (ours: LeanPO's count was not found).")
    seed: int = Field(0, ge=0, description="Base seed of the prior answers; each request's seed derives from it and the task id.")


class PerturbConfig(ModelStageConfig):
    """POVID dispreferred candidates: hallucinated answers and answers on distorted images (and, optionally,
    LeanPO's answers given the ground truth as a prior)."""

    fingerprint_before: ClassVar[dict[str, Any]] = {"prior_answer": OMITTED}  # added after runs existed

    section = "perturb"

    hallucination: HallucinationConfig = Field(default_factory=HallucinationConfig, description=HallucinationConfig.__doc__)
    distortion: DistortionConfig = Field(default_factory=DistortionConfig, description=DistortionConfig.__doc__)
    prior_answer: PriorAnswerConfig = Field(default_factory=PriorAnswerConfig, description=PriorAnswerConfig.__doc__)
    family: str = Field(
        "",
        description="Model family of the POLICY, whose candidate format hallucinated boxes are written in: '' = the "
        "[sample] family (filled in when the config is loaded; used alone: generic).",
    )

    # -- the model that answers on distorted images (and rewrites answers in llm mode) --------------
    engine: EngineConfig = engine_field('The model that answers on distorted images; engine.model "" means the same as [sample] engine.model.')
    temperature: float = Field(1.0, ge=0.0, le=5.0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(64, ge=1, le=8192, description="Token budget of one answer on a distorted image.")

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        return checked_family(value)

    def needs_sampler(self) -> bool:
        """True when this config asks a model for text (distortions to answer, prior answers, or llm-mode hallucination)."""
        if not self.enabled:
            return False
        answers = self.distortion.enabled and bool(self.distortion.distortions)
        llm = self.hallucination.enabled and self.hallucination.mode == HallucinationMode.LLM and self.hallucination.n > 0
        return answers or llm or self.prior_answer.enabled
