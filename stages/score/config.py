"""``[score]`` settings: which reward each task type gets and how outputs are parsed and normalized."""

from __future__ import annotations

from pydantic import Field, field_validator

from data_schemas.tables import TASK_TYPES
from stages.base import StageConfig
from stages.lib.boxes import BoxFormat
from stages.lib.rewards import DEFAULT_REWARD_BY_TASK, RewardKind, RewardOptions, SoftAccuracy, reward_kind_for

__all__ = ["ScoreConfig"]


class ScoreConfig(StageConfig):
    """``[score]``: which reward each task type gets and how outputs are parsed and normalized."""

    reward_kinds: dict[str, RewardKind] = Field(
        default_factory=dict,
        description=(
            "Per task type override of the reward kind, e.g. {ocr = \"anls\"}. Task types: "
            + ", ".join(TASK_TYPES)
            + f"; kinds: {', '.join(RewardKind)}. Defaults: "
            + ", ".join(f"{t} -> {k}" for t, k in DEFAULT_REWARD_BY_TASK.items())
            + "."
        ),
    )
    box_format: BoxFormat = Field(
        "auto",
        description=(
            "Coordinate scale of predicted boxes: pixel, norm1 (0-1), norm1000 (0-1000, Qwen-VL) or auto "
            "(Qwen box tags -> 0-1000; all coordinates <= 1 -> 0-1; a coordinate beyond the image but all "
            "<= 1000 -> 0-1000; else pixels)."
        ),
    )
    ocr_ignore_case: bool | None = Field(
        None,
        description="Compare OCR text case-insensitively. Unset: case-sensitive for 'ocr', case-insensitive for 'anls' (DocVQA).",
    )
    ocr_normalize_whitespace: bool = Field(
        True, description="Collapse whitespace runs to one space and strip the ends before comparing OCR text."
    )
    anls_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="ANLS: a normalized edit distance at or above this scores 0 (reward kind 'anls')."
    )
    vqa_soft_accuracy: SoftAccuracy = Field(
        "min3",
        description=(
            "VQA soft accuracy with several annotator answers: min3 = min(#matching / 3, 1); "
            "leave_one_out = the official VQA average of that over annotator subsets."
        ),
    )
    vqa_extended_numbers: bool = Field(
        False, description="Also map number words eleven..twenty to digits (the official VQA map stops at ten)."
    )

    @field_validator("reward_kinds")
    @classmethod
    def _known_task_types(cls, value: dict[str, RewardKind]) -> dict[str, RewardKind]:
        unknown = sorted(set(value) - set(TASK_TYPES))
        if unknown:
            raise ValueError(
                f"score.reward_kinds has unknown task type(s) {unknown}; use one of: {', '.join(TASK_TYPES)}"
            )
        return value

    def reward_options(self) -> RewardOptions:
        """The reward settings of this config, in the form the reward functions take."""
        return RewardOptions(
            box_format=self.box_format,
            ocr_ignore_case=self.ocr_ignore_case,
            ocr_normalize_whitespace=self.ocr_normalize_whitespace,
            anls_threshold=self.anls_threshold,
            vqa_soft_accuracy=self.vqa_soft_accuracy,
            vqa_extended_numbers=self.vqa_extended_numbers,
        )

    def kind_for(self, task_type: str) -> RewardKind:
        """The reward kind of ``task_type`` under this config (``KeyError`` for an unknown type)."""
        return reward_kind_for(task_type, self.reward_kinds)
