"""A static HTML viewer of a run's ranked lists: opened from ``file://``, no server, no network.

``write_viewer(cfg, run_dir)`` writes ``<run>/viewer/`` (index with filters, one page per task, the
quarantine and eval tables); a person's flags and reorderings download as ``review.jsonl``, which
``[rank] review`` feeds back into the rank stage. ``write_gallery`` draws example lists as PNGs for the
dataset card.
"""

from pipeline.viewer.gallery import write_gallery
from pipeline.viewer.palette import ANNOTATION, COLOUR_MEANINGS, ORIGIN_COLOURS, colour_of
from pipeline.viewer.writer import looks_like_viewer, write_viewer

__all__ = ["write_viewer", "write_gallery", "looks_like_viewer", "ORIGIN_COLOURS", "COLOUR_MEANINGS", "ANNOTATION", "colour_of"]
