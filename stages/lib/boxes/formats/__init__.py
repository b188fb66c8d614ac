"""The box formats: one registry of how each model family writes boxes, and how the pipeline reads
and writes them. Keyed by :class:`BoxFormat` (the public ``box_format`` values); each entry cites
where its convention is documented (or says the choice is ours).
"""

from __future__ import annotations

from stages.lib.boxes.formats.generic import GENERIC_SPECS
from stages.lib.boxes.formats.names import GENERIC_FORMATS, BoxFormat
from stages.lib.boxes.formats.numeric import NUMERIC_FORMATS
from stages.lib.boxes.formats.points import POINT_FORMATS
from stages.lib.boxes.formats.resize import smart_resize
from stages.lib.boxes.formats.spec import BoxFormatSpec, quantized
from stages.lib.boxes.formats.tokens import TOKEN_FORMATS

__all__ = ["BoxFormat", "GENERIC_FORMATS", "BoxFormatSpec", "FORMATS", "get_format", "quantized", "smart_resize"]

FORMATS: dict[BoxFormat, BoxFormatSpec] = {**GENERIC_SPECS, **NUMERIC_FORMATS, **TOKEN_FORMATS, **POINT_FORMATS}


def get_format(name: str) -> BoxFormatSpec:
    """The spec of format ``name``; ``ValueError`` naming the available ones otherwise."""
    try:
        return FORMATS[BoxFormat(name)]
    except ValueError:
        raise ValueError(f"unknown box_format {name!r}; available: {', '.join(BoxFormat)}") from None
