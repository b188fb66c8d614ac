"""Image frames that are not the stored image: Qwen2.5-VL's resized input, LLaVA's padded square."""

from __future__ import annotations

import math

from stages.lib.boxes.formats.spec import Affine

__all__ = ["QWEN2_5_VL_MIN_PIXELS", "QWEN2_5_VL_MAX_PIXELS", "smart_resize", "resized_frame", "padded_square_frame"]

# Qwen2.5-VL's released checkpoints ship preprocessor_config.json with min_pixels 3136 and max_pixels
# 12845056 (patch 14 x merge 2 = factor 28), e.g. Qwen/Qwen2.5-VL-7B-Instruct; transformers'
# Qwen2VLImageProcessor defaults differ (56*56 / 28*28*1280), so the checkpoint values are used.
QWEN2_5_VL_MIN_PIXELS = 3136
QWEN2_5_VL_MAX_PIXELS = 12845056


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = QWEN2_5_VL_MIN_PIXELS,
                 max_pixels: int = QWEN2_5_VL_MAX_PIXELS) -> tuple[int, int]:
    """The (height, width) Qwen2-VL / Qwen2.5-VL resize the image to: both multiples of ``factor``,
    ``min_pixels <= h * w <= max_pixels``, aspect kept. Same arithmetic as transformers'
    ``models/qwen2_vl/image_processing_qwen2_vl.py::smart_resize`` (and qwen-vl-utils); the
    aspect-ratio > 200 error there is not raised here (the box is then read as well as it can be)."""
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return max(h_bar, factor), max(w_bar, factor)


def resized_frame(width: float, height: float) -> Affine:
    """Pixels of Qwen2.5-VL's resized input -> pixels of the stored image (the cookbook's
    ``input_height = image_grid_thw[0][1] * 14``, boxes scaled by original / input size)."""
    h_bar, w_bar = smart_resize(int(height), int(width))
    return Affine(width / w_bar, 0.0, height / h_bar, 0.0)


def padded_square_frame(width: float, height: float) -> Affine:
    """0-1 of the square the image is padded to (centred, the short side padded) -> pixels.
    The offset is ``(side - w) // 2`` as LLaVA's ``expand2square`` (llava/mm_utils.py), Shikra's
    ``Expand2square`` (mllm/dataset/utils/transform.py) and transformers'
    ``LlavaImageProcessor.pad_to_square`` paste the image."""
    side = max(width, height)
    return Affine(side, -float((int(side) - int(width)) // 2), side, -float((int(side) - int(height)) // 2))
