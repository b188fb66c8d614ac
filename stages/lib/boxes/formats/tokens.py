"""Families that write boxes as location tokens: PaliGemma, Florence-2, Kosmos-2."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from stages.lib.boxes.formats.names import BoxFormat
from stages.lib.boxes.formats.spec import BoxFormatSpec, Found, place_found
from stages.lib.boxes.parse import BoxParse

__all__ = ["TOKEN_FORMATS", "KOSMOS2_GRID"]

_PALI_RE = re.compile(r"<loc(\d{4})>\s*<loc(\d{4})>\s*<loc(\d{4})>\s*<loc(\d{4})>")
_PALI_BINS = 1023  # big_vision: round(bbox * 1023) clipped to [0, 1023] (pp), tokens / 1023 back (evaluator)
_FLORENCE_RE = re.compile(r"<loc_(\d{1,4})><loc_(\d{1,4})><loc_(\d{1,4})><loc_(\d{1,4})>")
_FLORENCE_BINS = 1000
_KOSMOS_RE = re.compile(r"<patch_index_(\d{4})>\s*<patch_index_(\d{4})>")
KOSMOS2_GRID = 32  # Kosmos2Processor: num_patch_index_tokens = 1024 = 32 x 32


def _read_paligemma(text: str, width: float, height: float) -> BoxParse:
    found = []
    for m in _PALI_RE.finditer(text):
        y1, x1, y2, x2 = (int(g) / _PALI_BINS for g in m.groups())
        found.append(Found((x1 * width, y1 * height, x2 * width, y2 * height), m.group(0)))
    return place_found(found, "paligemma", width, height, [])


def _write_paligemma(boxes: Sequence[Sequence[float]], width: float, height: float) -> str:
    def loc(v: float, size: float) -> str:
        return f"<loc{min(max(round(v / size * _PALI_BINS), 0), _PALI_BINS):04d}>"

    return " ; ".join(loc(b[1], height) + loc(b[0], width) + loc(b[3], height) + loc(b[2], width) for b in boxes)


def _read_florence2(text: str, width: float, height: float) -> BoxParse:
    found, dropped = [], []
    bw, bh = width / _FLORENCE_BINS, height / _FLORENCE_BINS
    for m in _FLORENCE_RE.finditer(text):
        b = [int(g) for g in m.groups()]
        if max(b) >= _FLORENCE_BINS:
            dropped.append({"text": m.group(0), "reason": f"location token beyond bin {_FLORENCE_BINS - 1}"})
            continue
        # Florence2PostProcessor.dequantize: the centre of the bin, (bin + 0.5) * size / bins.
        found.append(Found(((b[0] + 0.5) * bw, (b[1] + 0.5) * bh, (b[2] + 0.5) * bw, (b[3] + 0.5) * bh), m.group(0)))
    return place_found(found, "florence2", width, height, dropped)


def _write_florence2(boxes: Sequence[Sequence[float]], width: float, height: float) -> str:
    # Florence2PostProcessor.quantize: floor(coordinate / (size / bins)) clamped to [0, bins - 1].
    def loc(v: float, size: float) -> str:
        return f"<loc_{int(min(max(math.floor(v / (size / _FLORENCE_BINS)), 0), _FLORENCE_BINS - 1))}>"

    return "".join(loc(b[0], width) + loc(b[1], height) + loc(b[2], width) + loc(b[3], height) for b in boxes)


def _kosmos_cell_box(ul: int, lr: int, n: int = KOSMOS2_GRID) -> tuple[float, float, float, float]:
    """transformers ``processing_kosmos2.patch_index_to_coordinate``: normalized (x1, y1, x2, y2)."""
    cell = 1.0 / n
    ul_x, ul_y, lr_x, lr_y = ul % n, ul // n, lr % n, lr // n
    if ul == lr or ul_x == lr_x or ul_y == lr_y:
        return ul_x * cell, ul_y * cell, lr_x * cell + cell, lr_y * cell + cell
    return ul_x * cell + cell / 2, ul_y * cell + cell / 2, lr_x * cell + cell / 2, lr_y * cell + cell / 2


def _read_kosmos2(text: str, width: float, height: float) -> BoxParse:
    found, dropped = [], []
    for m in _KOSMOS_RE.finditer(text):
        ul, lr = int(m.group(1)), int(m.group(2))
        if max(ul, lr) >= KOSMOS2_GRID * KOSMOS2_GRID:
            dropped.append({"text": m.group(0), "reason": "patch index beyond the 32 x 32 grid"})
            continue
        x1, y1, x2, y2 = _kosmos_cell_box(ul, lr)
        found.append(Found((x1 * width, y1 * height, x2 * width, y2 * height), m.group(0)))
    return place_found(found, "kosmos2", width, height, dropped)


def _kosmos_indices(box: Sequence[float], width: float, height: float, n: int = KOSMOS2_GRID) -> tuple[int, int]:
    """transformers ``processing_kosmos2.coordinate_to_patch_index`` on the normalized box."""
    x1, y1, x2, y2 = box[0] / width, box[1] / height, box[2] / width, box[3] / height
    ul_x, ul_y = min(max(math.floor(x1 * n), 0), n - 1), min(max(math.floor(y1 * n), 0), n - 1)
    lr_x, lr_y = min(max(math.ceil(x2 * n - 1), 0), n - 1), min(max(math.ceil(y2 * n - 1), 0), n - 1)
    return ul_y * n + ul_x, lr_y * n + lr_x


def _write_kosmos2(boxes: Sequence[Sequence[float]], width: float, height: float) -> str:
    pairs = ["<patch_index_{:04d}><patch_index_{:04d}>".format(*_kosmos_indices(b, width, height)) for b in boxes]
    return "<object>" + "</delimiter_of_multi_objects/>".join(pairs) + "</object>"


TOKEN_FORMATS: dict[BoxFormat, BoxFormatSpec] = {
    BoxFormat.PALIGEMMA: BoxFormatSpec(
        "paligemma",
        "<locYYYY><locXXXX><locYYYY><locXXXX> label, boxes joined by ' ; '; y first, 1024 bins of the image",
        "google-research/big_vision big_vision/pp/proj/paligemma/segmentation.py (round(bbox * 1023) into "
        "<loc%04d>, tfds bbox order ymin, xmin, ymax, xmax) and evaluators/proj/paligemma/transfers/segmentation.py "
        "(tokens / 1023); model cards say '/ 1024' (0.1% apart); ' ; ' between detections: PaliGemma demo parser",
        _read_paligemma,
        _write_paligemma,
    ),
    BoxFormat.FLORENCE2: BoxFormatSpec(
        "florence2",
        "label<loc_X1><loc_Y1><loc_X2><loc_Y2> per box, 1000 bins of the image (x first)",
        "transformers models/florence2/processing_florence2.py Florence2PostProcessor (quantize: floor, "
        "clamp 0..999; dequantize: (bin + 0.5) * size / 1000); decoded with skip_special_tokens=False there",
        _read_florence2,
        _write_florence2,
    ),
    BoxFormat.KOSMOS2: BoxFormatSpec(
        "kosmos2",
        "<phrase>label</phrase><object><patch_index_UL><patch_index_LR></object>, cells of a 32 x 32 grid; "
        "several boxes joined by </delimiter_of_multi_objects/>",
        "transformers models/kosmos2/processing_kosmos2.py (coordinate_to_patch_index, patch_index_to_coordinate, "
        "extract_entities_with_patch_indices; 1024 patch-index tokens added as normal tokens)",
        _read_kosmos2,
        _write_kosmos2,
    ),
}
