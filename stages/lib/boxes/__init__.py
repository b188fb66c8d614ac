"""Boxes everywhere in the pipeline: one home for what a box is and how it is read and written.

- :mod:`.geometry`: the pixel xyxy box, IoU, EXIF re-orientation;
- :mod:`.annotations`: ground-truth boxes as corpora give them (``BoxLayout`` xyxy / xywh, pixels),
  checked against the image;
- :mod:`.frames`: the coordinate frame numbers are written in (pixel, 0-1, 0-1000), the one rule
  that guesses it, conversion to pixels;
- :mod:`.scan`: every spelling of a box in free text, with where each coordinate sits;
- :mod:`.parse` / :mod:`.batch`: model output -> pixel boxes under a ``BoxFormat`` (one text, many);
- :mod:`.formats`: the registry of box formats, generic and per model family (read, write, source);
- :mod:`.edit`: rewriting a text's boxes in place (hallucinated boxes keep the notation);
- :mod:`.write`: the pipeline's own spelling of ground-truth boxes.
"""

from stages.lib.boxes.annotations import BadBox, BoxLayout, boxes_from_annotation, check_pixel_box
from stages.lib.boxes.batch import parse_boxes_batch
from stages.lib.boxes.edit import BoxText, box_skeleton, parse_box_text
from stages.lib.boxes.frames import CoordFrame, frame_extent, infer_frame, to_pixel_box
from stages.lib.boxes.geometry import Box, box_iou, iou_matrix, orient_box, paired_ious
from stages.lib.boxes.parse import BOX_FORMATS, BoxFormat, BoxParse, check_box_format, parse_boxes, parse_boxes_detailed
from stages.lib.boxes.formats import FORMATS, GENERIC_FORMATS, BoxFormatSpec, get_format, quantized, smart_resize
from stages.lib.boxes.scan import BoxMention, BoxScan, scan_boxes
from stages.lib.boxes.write import BOX_DECIMALS, format_coordinate, pixel_boxes_text

__all__ = [
    "BadBox",
    "BoxLayout",
    "boxes_from_annotation",
    "check_pixel_box",
    "parse_boxes_batch",
    "BoxText",
    "box_skeleton",
    "parse_box_text",
    "CoordFrame",
    "frame_extent",
    "infer_frame",
    "to_pixel_box",
    "Box",
    "box_iou",
    "iou_matrix",
    "orient_box",
    "paired_ious",
    "FORMATS",
    "GENERIC_FORMATS",
    "BoxFormatSpec",
    "get_format",
    "quantized",
    "smart_resize",
    "BOX_FORMATS",
    "BoxFormat",
    "BoxParse",
    "check_box_format",
    "parse_boxes",
    "parse_boxes_detailed",
    "BoxMention",
    "BoxScan",
    "scan_boxes",
    "BOX_DECIMALS",
    "format_coordinate",
    "pixel_boxes_text",
]
