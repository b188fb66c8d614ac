"""Families that write boxes as numbers in text: which numbers, in which order and frame.

Every family here is read with the generic scan (:mod:`stages.lib.boxes.scan`: brackets, point
pairs, box tags, a bare four-number answer), so a box reads the same with its tags decoded or
skipped as special tokens; what differs per family is the frame (and y-first order for Gemini),
plus ``;``-separated boxes inside one bracket (CogVLM, Shikra) and tag-less number runs (MiniCPM-V).
Writers emit the family's documented notation without the object label (the pipeline does not
know it) and quantize as the family's own conversion code does where it is published.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from stages.lib.boxes.formats.names import BoxFormat
from stages.lib.boxes.formats.resize import padded_square_frame, resized_frame, smart_resize
from stages.lib.boxes.formats.spec import Affine, BoxFormatSpec, Found, place_found
from stages.lib.boxes.parse import BoxParse
from stages.lib.boxes.scan import NUM_RE, scan_boxes

__all__ = ["NUMERIC_FORMATS"]

_D = r"[-+]?\d+(?:\.\d+)?"
_FOUR = rf"\s*{_D}\s*,\s*{_D}\s*,\s*{_D}\s*,\s*{_D}\s*"
# [[x1,y1,x2,y2;x1,y1,x2,y2]] (CogVLM) or [x1,y1,x2,y2;...] (Shikra): two or more boxes in one bracket.
_SEMI_RE = re.compile(rf"\[\[?({_FOUR}(?:;{_FOUR}){{1,63}})\]\]?")
# Four numbers in a row separated by blanks or commas, not part of a longer number run (a label may
# touch the first number: "<ref>dog</ref><box>1 2 3 4</box>" decoded without its tags is "dog1 2 3 4").
_RUN_RE = re.compile(rf"(?<![\d.])({_D})[ \t,]+({_D})[ \t,]+({_D})[ \t,]+({_D})(?!\w|\.\d|[ \t,]+\d)")

FrameFn = Callable[[float, float], Affine]


def _scale(div: float) -> FrameFn:
    """Written value / ``div`` of the image width (x) or height (y)."""
    return lambda w, h: Affine(w / div, 0.0, h / div, 0.0)


def _numeric_reader(name: str, frame: FrameFn, *, y_first: bool = False, semicolons: bool = False, runs: bool = False):
    def read(text: str, width: float, height: float) -> BoxParse:
        f = frame(width, height)
        found: list[Found] = []
        raws: list[tuple[tuple[float, ...], str]] = []
        rest = text
        if semicolons and ";" in text:
            for m in _SEMI_RE.finditer(text):
                nums = [float(n) for n in NUM_RE.findall(m.group(1))]
                raws.extend((tuple(nums[i : i + 4]), m.group(0)) for i in range(0, len(nums), 4))
            rest = _SEMI_RE.sub(" ", text)
        scan = scan_boxes(rest)
        dropped = [{"text": t, "reason": r} for t, r in scan.malformed]
        raws.extend((m.raw, m.notation) for m in scan.tagged + scan.untagged)
        if runs and not raws:
            raws.extend((tuple(float(g) for g in m.groups()), m.group(0)) for m in _RUN_RE.finditer(rest))
        for raw, notation in raws:
            x1, y1, x2, y2 = (raw[1], raw[0], raw[3], raw[2]) if y_first else raw
            found.append(Found(f.to_pixels(x1, y1, x2, y2), notation))
        return place_found(found, name, width, height, dropped)

    return read


def _encode(frame: FrameFn, quantize: Callable[[float, float], float], top: Callable[[float, float], tuple[float, float]]):
    """Pixel box -> written values: inverse frame, then ``quantize(value, limit)`` into [0, limit]."""

    def encode(box: Sequence[float], width: float, height: float) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = frame(width, height).from_pixels(box)
        tx, ty = top(width, height)
        return (quantize(x1, tx), quantize(y1, ty), quantize(x2, tx), quantize(y2, ty))

    return encode


def _round_int(v: float, top: float) -> int:
    return int(min(max(round(v), 0), top))


def _trunc_int(v: float, top: float) -> int:
    return int(min(max(int(v), 0), top))


def _decimals(n: int) -> Callable[[float, float], float]:
    return lambda v, top: round(min(max(v, 0.0), top), n)


def _fixed(top: float) -> Callable[[float, float], tuple[float, float]]:
    return lambda w, h: (top, top)


def _qwen2_5_top(w: float, h: float) -> tuple[float, float]:
    h_bar, w_bar = smart_resize(int(h), int(w))
    return float(w_bar), float(h_bar)


_norm1000 = _scale(1000.0)
_norm999 = _scale(999.0)

_enc_qwen = _encode(_norm1000, _round_int, _fixed(1000))
_enc_qwen2_5 = _encode(resized_frame, _round_int, _qwen2_5_top)
_enc_internvl = _encode(_norm1000, _trunc_int, _fixed(1000))
_enc_llava = _encode(padded_square_frame, _decimals(2), _fixed(1.0))
_enc_shikra = _encode(padded_square_frame, _decimals(3), _fixed(1.0))
_enc_cogvlm = _encode(_norm1000, _round_int, _fixed(999))
_enc_deepseek = _encode(_norm999, _round_int, _fixed(999))


def _w(encode, render: Callable[[list[tuple]], str]):
    return lambda boxes, w, h: render([encode(b, w, h) for b in boxes])


def _list(v: tuple) -> str:
    return "[" + ", ".join(str(x) for x in v) + "]"


def _fmt(v: float, n: int) -> str:
    return f"{v:.{n}f}"


NUMERIC_FORMATS: dict[BoxFormat, BoxFormatSpec] = {
    BoxFormat.QWEN2_VL: BoxFormatSpec(
        "qwen2_vl",
        "<|box_start|>(x1,y1),(x2,y2)<|box_end|> per box (after <|object_ref_start|>label<|object_ref_end|>), 0-1000 of the image",
        "Qwen2-VL tech report (arXiv 2409.12191, sec. 2.3 visual grounding): boxes normalized to [0, 1000), "
        "written (X_tl,Y_tl),(X_br,Y_br) between <|box_start|>/<|box_end|>; rounding when we write: ours",
        _numeric_reader("qwen2_vl", _norm1000),
        _w(_enc_qwen, lambda vs: "".join(f"<|box_start|>({a},{b}),({c},{d})<|box_end|>" for a, b, c, d in vs)),
    ),
    BoxFormat.QWEN2_5_VL: BoxFormatSpec(
        "qwen2_5_vl",
        '[{"bbox_2d": [x1, y1, x2, y2], "label": ...}] in pixels of the smart_resize-d input (factor 28)',
        "QwenLM/Qwen2.5-VL cookbooks/spatial_understanding.ipynb (absolute coordinates; input size = "
        "image_grid_thw * 14) and QwenLM/Qwen3-VL evaluation/ODinW-13/run_odinw.py (pred / resized * original)",
        _numeric_reader("qwen2_5_vl", resized_frame),
        _w(_enc_qwen2_5, lambda vs: json.dumps([{"bbox_2d": list(v)} for v in vs])),
    ),
    BoxFormat.QWEN3_VL: BoxFormatSpec(
        "qwen3_vl",
        '[{"bbox_2d": [x1, y1, x2, y2], "label": ...}] 0-1000 of the image (relative)',
        "QwenLM/Qwen3-VL README (2D grounding with relative coordinates) and evaluation/ODinW-13/run_odinw.py "
        "(bbox_2d / 1000 * [img_w, img_h, img_w, img_h])",
        _numeric_reader("qwen3_vl", _norm1000),
        _w(_enc_qwen, lambda vs: json.dumps([{"bbox_2d": list(v)} for v in vs])),
    ),
    BoxFormat.INTERNVL: BoxFormatSpec(
        "internvl",
        "<ref>label</ref><box>[[x1, y1, x2, y2], ...]</box>, 0-1000 of the image",
        "OpenGVLab/InternVL internvl_chat/eval/refcoco/evaluate_grounding.py (pred / 1000 * [w, h]); "
        "int(x / width * 1000) when writing: maintainer's answer in OpenGVLab/InternVL issue #285",
        _numeric_reader("internvl", _norm1000),
        _w(_enc_internvl, lambda vs: "<box>[" + ", ".join(_list(v) for v in vs) + "]</box>"),
    ),
    BoxFormat.LLAVA: BoxFormatSpec(
        "llava",
        "[x1, y1, x2, y2], 0-1 of the image padded to a square (2 decimals, LLaVA-1.5)",
        "haotian-liu/LLaVA issues #606 / #623 (REC boxes of llava_v1_5_mix665k are 0-1 of the expand2square "
        "image, 2 decimals) and llava/mm_utils.py expand2square; #822 reports RefCOCO may differ: unresolved upstream",
        _numeric_reader("llava", padded_square_frame),
        _w(_enc_llava, lambda vs: ", ".join("[" + ", ".join(_fmt(x, 2) for x in v) + "]" for v in vs)),
    ),
    BoxFormat.COGVLM: BoxFormatSpec(
        "cogvlm",
        "[[x1,y1,x2,y2]] (several: [[...;...]]), thousandths of the image, three digits",
        "THUDM/CogVLM README ('relative coordinates multiplied by 1000, prefixed with zeros to three digits') and "
        "utils/utils/grounding_parser.py (boxes split on ';', int(v) / 1000); clamping to 999 when writing: ours",
        _numeric_reader("cogvlm", _norm1000, semicolons=True),
        _w(_enc_cogvlm, lambda vs: "[[" + ";".join(",".join(f"{int(x):03d}" for x in v) for v in vs) + "]]"),
    ),
    BoxFormat.SHIKRA: BoxFormatSpec(
        "shikra",
        "[x1,y1,x2,y2] (several: [...;...]), 0-1 of the padded square, 3 decimals",
        "shikras/shikra mllm/dataset/process_function/box_process_function.py (PlainBoxFormatter, precision 3, "
        "';' between boxes), utils/transform.py (Expand2square, norm_box_xyxy) and single_image_convsation.py "
        "(normalized by the transformed image's size)",
        _numeric_reader("shikra", padded_square_frame, semicolons=True),
        _w(_enc_shikra, lambda vs: "[" + ";".join(",".join(_fmt(x, 3) for x in v) for v in vs) + "]"),
    ),
    BoxFormat.MINICPM_V: BoxFormatSpec(
        "minicpm_v",
        "<ref>label</ref><box>x1 y1 x2 y2</box>, read as 0-1000 of the image",
        "OpenBMB/MiniCPM-V: <box></box><ref></ref> are special tokens (omnilmm/model/omnilmm.py) and the web demos "
        "strip <box>...</box>; no published coordinate convention found: 0-1000 (as Qwen-VL / InternVL, whose tags "
        "it shares) is OUR CHOICE",
        _numeric_reader("minicpm_v", _norm1000, runs=True),
        _w(_enc_qwen, lambda vs: "".join(f"<box>{a} {b} {c} {d}</box>" for a, b, c, d in vs)),
    ),
    BoxFormat.DEEPSEEK_VL2: BoxFormatSpec(
        "deepseek_vl2",
        "<|ref|>label<|/ref|><|det|>[[x1, y1, x2, y2], ...]<|/det|>, 0-999 of the image",
        "deepseek-ai/DeepSeek-VL2 README example and deepseek_vl2/serve/app_modules/utils.py parse_ref_bbox "
        "(box / 999 * image_w); rounding when we write: ours",
        _numeric_reader("deepseek_vl2", _norm999),
        _w(_enc_deepseek, lambda vs: "<|det|>[" + ", ".join(_list(v) for v in vs) + "]<|/det|>"),
    ),
    BoxFormat.GEMINI: BoxFormatSpec(
        "gemini",
        '[{"box_2d": [ymin, xmin, ymax, xmax], "label": ...}], y first, 0-1000 of the image',
        "Gemini API docs, image understanding / object detection (ai.google.dev/gemini-api/docs/vision): box_2d is "
        "[ymin, xmin, ymax, xmax] normalized to 0-1000",
        _numeric_reader("gemini", _norm1000, y_first=True),
        _w(_enc_qwen, lambda vs: json.dumps([{"box_2d": [b, a, d, c]} for a, b, c, d in vs])),
    ),
}
