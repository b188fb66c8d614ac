"""Molmo answers grounding with points, not boxes: recognised so that they score 0 with a reason."""

from __future__ import annotations

import re

from stages.lib.boxes.formats.names import BoxFormat
from stages.lib.boxes.formats.spec import BoxFormatSpec
from stages.lib.boxes.parse import BoxParse
from stages.lib.snippet import snippet

__all__ = ["POINT_FORMATS"]

# <point x="61.5" y="40.6" alt="dog">dog</point>, <points x1=".." y1=".." x2=".." ...>; Molmo 2 writes coords="...".
_POINT_RE = re.compile(r"<points?\b[^>]{0,512}>|\bcoords=\"[^\"]{0,512}\"")


def _read_molmo(text: str, width: float, height: float) -> BoxParse:
    dropped = [{"text": snippet(m.group(0)), "reason": "a point, not a box (molmo)"} for m in _POINT_RE.finditer(text)]
    return BoxParse([], "molmo" if dropped else "none", dropped)


POINT_FORMATS: dict[BoxFormat, BoxFormatSpec] = {
    BoxFormat.MOLMO: BoxFormatSpec(
        "molmo",
        '<point x="X" y="Y" alt="label">label</point> (percent of the image): points, never boxes',
        "allenai Molmo model cards (pointing output <point x= y= alt=>, <points x1= y1= ...>); a point cannot be "
        "scored by IoU, so every Molmo answer has parse_ok false and reward 0",
        _read_molmo,
        None,
        points_only=True,
    ),
}
