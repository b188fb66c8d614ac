"""Discriminative rewards for the score stage: box IoU, OCR edit similarity / ANLS, VQA accuracy.

Pure functions of (model output, ground truth); they never raise on model output (unparseable
text gives reward 0 and ``parse_ok`` false) and raise :class:`GroundTruthError` only when the
ground truth itself is unusable. Box parsing and IoU live in :mod:`stages.lib.boxes`.
"""

from stages.lib.rewards.iou import iou_reward
from stages.lib.rewards.ocr import normalize_ocr_text, ocr_reward
from stages.lib.rewards.registry import (
    DEFAULT_REWARD_BY_TASK,
    REWARDS,
    GroundTruth,
    RewardKind,
    RewardOptions,
    RewardSpec,
    get_reward,
    reward_kind_for,
    score_batch,
)
from stages.lib.rewards.result import GroundTruthError, RewardResult, encode_detail, gc_paused
from stages.lib.rewards.vqa import SOFT_ACCURACY_MODES, SoftAccuracy, extract_choice, vqa_reward
from stages.lib.rewards.vqa_normalize import normalize_vqa_answer

__all__ = [
    "iou_reward",
    "normalize_ocr_text",
    "ocr_reward",
    "SOFT_ACCURACY_MODES",
    "SoftAccuracy",
    "extract_choice",
    "vqa_reward",
    "normalize_vqa_answer",
    "DEFAULT_REWARD_BY_TASK",
    "REWARDS",
    "GroundTruth",
    "RewardKind",
    "RewardOptions",
    "RewardSpec",
    "get_reward",
    "reward_kind_for",
    "score_batch",
    "GroundTruthError",
    "RewardResult",
    "encode_detail",
    "gc_paused",
]
