"""The names of the box formats (the public values of ``box_format``)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BoxFormat", "GENERIC_FORMATS"]


class BoxFormat(StrEnum):
    """How a model writes boxes in text: a generic frame, or one model family's documented notation."""

    AUTO = "auto"
    PIXEL = "pixel"
    NORM1 = "norm1"
    NORM1000 = "norm1000"
    QWEN2_VL = "qwen2_vl"
    QWEN2_5_VL = "qwen2_5_vl"
    QWEN3_VL = "qwen3_vl"
    INTERNVL = "internvl"
    LLAVA = "llava"
    COGVLM = "cogvlm"
    SHIKRA = "shikra"
    KOSMOS2 = "kosmos2"
    PALIGEMMA = "paligemma"
    FLORENCE2 = "florence2"
    MINICPM_V = "minicpm_v"
    DEEPSEEK_VL2 = "deepseek_vl2"
    GEMINI = "gemini"
    MOLMO = "molmo"


GENERIC_FORMATS = frozenset({BoxFormat.AUTO, BoxFormat.PIXEL, BoxFormat.NORM1, BoxFormat.NORM1000})
"""Formats read by the generic scan with a frame rule (:mod:`stages.lib.boxes.parse`)."""
