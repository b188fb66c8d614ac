"""Grounding answers written as each model family documents them, with the pixel boxes they mean.

Each case is built from the family's own documentation or code (cited per case): the text a model
of that family prints for the ground-truth boxes, the image size, and the boxes in pixels of the
image. ``without_special_tokens`` gives the same answer decoded with ``skip_special_tokens=True``
(the family's special tokens, from its profile, removed), as the samplers decode today.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from stages.lib.boxes import smart_resize
from stages.lib.families import FAMILIES


@dataclass(frozen=True)
class Case:
    """One documented answer: ``text`` for boxes ``gt`` (pixels) on a ``size`` (w, h) image."""

    family: str
    text: str
    size: tuple[int, int]
    gt: tuple[tuple[float, float, float, float], ...]
    source: str
    boxes_survive_skipping: bool = True  # False when skipping special tokens destroys the coordinates

    @property
    def id(self) -> str:
        return f"{self.family}:{self.source}"


def without_special_tokens(case: Case) -> str:
    """``case.text`` as decoded with ``skip_special_tokens=True``: the special tokens of the family
    that writes this format gone (Gemini is an API: no tokens)."""
    patterns = [f.keep_tokens for f in FAMILIES.values() if f.box_format == case.family and f.keep_tokens]
    return re.sub(patterns[0], "", case.text) if patterns else case.text


def _norm1000(v: tuple[int, int, int, int], size: tuple[int, int], div: float = 1000.0) -> tuple[float, ...]:
    w, h = size
    return (v[0] / div * w, v[1] / div * h, v[2] / div * w, v[3] / div * h)


def _qwen25(box_px: tuple[float, float, float, float], size: tuple[int, int]) -> list[int]:
    h_bar, w_bar = smart_resize(size[1], size[0])
    sx, sy = w_bar / size[0], h_bar / size[1]
    return [round(box_px[0] * sx), round(box_px[1] * sy), round(box_px[2] * sx), round(box_px[3] * sy)]


def _padded(v: tuple[float, float, float, float], size: tuple[int, int]) -> tuple[float, ...]:
    w, h = size
    side = max(w, h)
    ox, oy = (side - w) // 2, (side - h) // 2
    return (v[0] * side - ox, v[1] * side - oy, v[2] * side - ox, v[3] * side - oy)


def _kosmos(ul: int, lr: int, size: tuple[int, int]) -> tuple[float, ...]:
    from transformers.models.kosmos2.processing_kosmos2 import patch_index_to_coordinate  # the reference decoder

    x1, y1, x2, y2 = patch_index_to_coordinate(ul, lr, 32)
    return (x1 * size[0], y1 * size[1], x2 * size[0], y2 * size[1])


QWEN_SIZE = (1280, 960)
PHOTO = (6000, 4000)  # a large photo: Qwen2.5-VL sees it resized to 4368 x 2912
DOG_PX = (1234.0, 456.0, 3456.0, 3210.0)
CAT_PX = (4000.0, 2000.0, 5800.0, 3900.0)
LLAVA_SIZE = (640, 480)

CASES: tuple[Case, ...] = (
    # Qwen2-VL: tags and 0-1000 (tech report sec. 2.3); several boxes are several tags.
    Case("qwen2_vl", "<|object_ref_start|>the dog<|object_ref_end|><|box_start|>(100,200),(500,750)<|box_end|>",
         QWEN_SIZE, (_norm1000((100, 200, 500, 750), QWEN_SIZE),), "tech report, one box"),
    Case("qwen2_vl", "<|object_ref_start|>dogs<|object_ref_end|><|box_start|>(100,200),(500,750)<|box_end|>"
         "<|box_start|>(600,100),(900,400)<|box_end|>",
         QWEN_SIZE, (_norm1000((100, 200, 500, 750), QWEN_SIZE), _norm1000((600, 100, 900, 400), QWEN_SIZE)),
         "tech report, two boxes"),
    # Qwen2.5-VL: JSON bbox_2d in pixels of the resized input (spatial_understanding cookbook).
    Case("qwen2_5_vl", "```json\n[\n\t{\"bbox_2d\": " + json.dumps(_qwen25(DOG_PX, PHOTO)) + ", \"label\": \"the dog\"}\n]\n```",
         PHOTO, (DOG_PX,), "cookbook JSON, 6000x4000 photo"),
    Case("qwen2_5_vl", json.dumps([{"bbox_2d": _qwen25(DOG_PX, PHOTO), "label": "dog"},
                                   {"bbox_2d": _qwen25(CAT_PX, PHOTO), "label": "cat"}]),
         PHOTO, (DOG_PX, CAT_PX), "cookbook JSON, two objects"),
    # Qwen3-VL: JSON bbox_2d, 0-1000 relative (README; ODinW-13 evaluation).
    Case("qwen3_vl", "```json\n[\n\t{\"bbox_2d\": [206, 114, 576, 803], \"label\": \"the dog\"}\n]\n```",
         PHOTO, (_norm1000((206, 114, 576, 803), PHOTO),), "README / ODinW-13, one box"),
    Case("qwen3_vl", json.dumps([{"bbox_2d": [206, 114, 576, 803], "label": "dog"}, {"bbox_2d": [667, 500, 967, 975], "label": "cat"}]),
         PHOTO, (_norm1000((206, 114, 576, 803), PHOTO), _norm1000((667, 500, 967, 975), PHOTO)), "ODinW-13, two boxes"),
    # InternVL: <ref>..</ref><box>[[..]]</box>, 0-1000 (refcoco evaluation).
    Case("internvl", "<ref>the dog</ref><box>[[100, 200, 500, 750]]</box>",
         QWEN_SIZE, (_norm1000((100, 200, 500, 750), QWEN_SIZE),), "refcoco evaluation, one box"),
    Case("internvl", "<ref>dogs</ref><box>[[100, 200, 500, 750], [600, 100, 900, 400]]</box>",
         QWEN_SIZE, (_norm1000((100, 200, 500, 750), QWEN_SIZE), _norm1000((600, 100, 900, 400), QWEN_SIZE)),
         "chat data format, two boxes in one tag"),
    # LLaVA-1.5: [x1, y1, x2, y2] 0-1 of the padded square, 2 decimals (LLaVA issues #606 / #623).
    Case("llava", "[0.10, 0.28, 0.50, 0.69]", LLAVA_SIZE, (_padded((0.10, 0.28, 0.50, 0.69), LLAVA_SIZE),), "REC answer"),
    Case("llava", "There are two: [0.10, 0.28, 0.50, 0.69] and [0.60, 0.20, 0.90, 0.40].", LLAVA_SIZE,
         (_padded((0.10, 0.28, 0.50, 0.69), LLAVA_SIZE), _padded((0.60, 0.20, 0.90, 0.40), LLAVA_SIZE)), "two boxes"),
    # CogVLM: [[x1,y1,x2,y2]] thousandths, three digits; several boxes ';'-separated (README, grounding_parser.py).
    Case("cogvlm", "Tell me what you see within the designated area [[086,540,400,760]]", (1000, 800),
         (_norm1000((86, 540, 400, 760), (1000, 800)),), "README example"),
    Case("cogvlm", "children in blue T-shirts [[086,540,400,760;512,300,640,900]]", (1000, 800),
         (_norm1000((86, 540, 400, 760), (1000, 800)), _norm1000((512, 300, 640, 900), (1000, 800))), "two boxes, ';'"),
    # Shikra: [x1,y1,x2,y2;...] 0-1 of the padded square, 3 decimals (PlainBoxFormatter).
    Case("shikra", "A dog [0.100,0.275,0.500,0.688] is there.", LLAVA_SIZE,
         (_padded((0.1, 0.275, 0.5, 0.688), LLAVA_SIZE),), "PlainBoxFormatter, one box"),
    Case("shikra", "two dogs [0.100,0.275,0.500,0.688;0.600,0.200,0.900,0.400]", LLAVA_SIZE,
         (_padded((0.1, 0.275, 0.5, 0.688), LLAVA_SIZE), _padded((0.6, 0.2, 0.9, 0.4), LLAVA_SIZE)), "PlainBoxFormatter, ';'"),
    # Kosmos-2: patch-index pairs on a 32x32 grid (transformers docstring example, decoded by transformers itself).
    Case("kosmos2", "<grounding> An image of<phrase> a snowman</phrase><object><patch_index_0044><patch_index_0863>"
         "</object> warming himself by<phrase> a fire</phrase><object><patch_index_0005><patch_index_0911></object>.",
         (640, 480), (_kosmos(44, 863, (640, 480)), _kosmos(5, 911, (640, 480))), "processing_kosmos2 docstring"),
    Case("kosmos2", "<grounding><phrase> two cats</phrase><object><patch_index_0044><patch_index_0863>"
         "</delimiter_of_multi_objects/><patch_index_0005><patch_index_0911></object>", (640, 480),
         (_kosmos(44, 863, (640, 480)), _kosmos(5, 911, (640, 480))), "multi-object delimiter"),
    # PaliGemma: <locYYYY><locXXXX><locYYYY><locXXXX> label ; ... (big_vision: /1023, y first).
    Case("paligemma", "<loc0256><loc0128><loc0768><loc0896> cat", (640, 480),
         ((128 / 1023 * 640, 256 / 1023 * 480, 896 / 1023 * 640, 768 / 1023 * 480),), "detect output, one box"),
    Case("paligemma", "<loc0256><loc0128><loc0768><loc0896> cat ; <loc0010><loc0020><loc0200><loc0300> dog", (640, 480),
         ((128 / 1023 * 640, 256 / 1023 * 480, 896 / 1023 * 640, 768 / 1023 * 480),
          (20 / 1023 * 640, 10 / 1023 * 480, 300 / 1023 * 640, 200 / 1023 * 480)), "detect output, ' ; '"),
    # Florence-2: label<loc_X1><loc_Y1><loc_X2><loc_Y2>, bin centres of 1000 bins (Florence2PostProcessor).
    Case("florence2", "</s><s>car<loc_52><loc_332><loc_932><loc_774></s>", (640, 480),
         (((52.5) * 0.64, 332.5 * 0.48, 932.5 * 0.64, 774.5 * 0.48),), "<OD> output", boxes_survive_skipping=False),
    Case("florence2", "car<loc_52><loc_332><loc_932><loc_774>door<loc_100><loc_400><loc_200><loc_600>", (640, 480),
         ((52.5 * 0.64, 332.5 * 0.48, 932.5 * 0.64, 774.5 * 0.48), (100.5 * 0.64, 400.5 * 0.48, 200.5 * 0.64, 600.5 * 0.48)),
         "<OD> output, two objects", boxes_survive_skipping=False),
    # MiniCPM-V: <ref>..</ref><box>x1 y1 x2 y2</box>, read as 0-1000 (our choice, see the format's source).
    Case("minicpm_v", "<ref>the dog</ref><box>100 200 500 750</box>", QWEN_SIZE,
         (_norm1000((100, 200, 500, 750), QWEN_SIZE),), "ref/box tags"),
    # Without its special tokens the two boxes' numbers run together ("...750600 100..."): unrecoverable.
    Case("minicpm_v", "<ref>dogs</ref><box>100 200 500 750</box><box>600 100 900 400</box>", QWEN_SIZE,
         (_norm1000((100, 200, 500, 750), QWEN_SIZE), _norm1000((600, 100, 900, 400), QWEN_SIZE)), "two box tags",
         boxes_survive_skipping=False),
    # DeepSeek-VL2: <|ref|>..<|/ref|><|det|>[[..]]<|/det|>, 0-999 (README example, parse_ref_bbox).
    Case("deepseek_vl2", "<|ref|>The giraffe at the back.<|/ref|><|det|>[[580, 270, 999, 900]]<|/det|>", (1998, 999),
         (_norm1000((580, 270, 999, 900), (1998, 999), 999.0),), "README example"),
    Case("deepseek_vl2", "<|ref|>Watermelon slices<|/ref|><|det|>[[10, 20, 300, 400], [500, 520, 900, 990]]<|/det|>", (1998, 999),
         (_norm1000((10, 20, 300, 400), (1998, 999), 999.0), _norm1000((500, 520, 900, 990), (1998, 999), 999.0)), "two boxes"),
    # Gemini: [{"box_2d": [ymin, xmin, ymax, xmax], "label": ..}], 0-1000 (Gemini API docs).
    Case("gemini", "```json\n[\n  {\"box_2d\": [200, 100, 750, 500], \"label\": \"dog\"}\n]\n```", QWEN_SIZE,
         (_norm1000((100, 200, 500, 750), QWEN_SIZE),), "API docs JSON"),
    Case("gemini", json.dumps([{"box_2d": [200, 100, 750, 500], "label": "dog"}, {"box_2d": [100, 600, 400, 900], "label": "cat"}]),
         QWEN_SIZE, (_norm1000((100, 200, 500, 750), QWEN_SIZE), _norm1000((600, 100, 900, 400), QWEN_SIZE)), "two objects"),
)

MOLMO_POINTS = (
    '<point x="61.5" y="40.6" alt="the dog">the dog</point>',
    '<points x1="10.0" y1="20.0" x2="60.5" y2="70.5" alt="dogs">dogs</points>',
)
