"""The viewer's colours, one per candidate origin plus the annotation's boxes (the one place they are named).

The HTML viewer reads them from its data files, the dataset card's example gallery draws with them and
the README's colour table is checked against them. Okabe-Ito colours, told apart by colour-blind readers.
"""

from __future__ import annotations

from typing import Final

__all__ = ["ANNOTATION", "ORIGIN_COLOURS", "COLOUR_MEANINGS", "colour_of"]

ANNOTATION: Final[str] = "annotation"  # the task's ground-truth boxes (dashed), not a candidate

ORIGIN_COLOURS: Final[dict[str, str]] = {
    "ground_truth": "#009E73",  # bluish green: the annotation written as an answer
    "policy": "#0072B2",  # blue: the policy's own samples
    "distorted_image": "#E69F00",  # orange: the policy's answers on a distorted image (POVID)
    "hallucination": "#D55E00",  # vermillion: hallucinations injected into the ground truth (POVID)
    "prior_answer": "#CC79A7",  # reddish purple: the policy's answers given the ground truth as a hint (LeanPO)
    ANNOTATION: "#000000",  # black, dashed: the task's ground-truth boxes
}

COLOUR_MEANINGS: Final[dict[str, str]] = {
    "ground_truth": "the annotation written as an answer (its boxes coincide with the dashed ones)",
    "policy": "the policy's own sampled answers",
    "distorted_image": "the policy's answers on a distorted image (POVID)",
    "hallucination": "hallucinations injected into the ground-truth answer (POVID)",
    "prior_answer": "the policy's answers given the ground truth as a hint (LeanPO's winners)",
    ANNOTATION: "the task's ground-truth boxes, drawn dashed",
}

def colour_of(origin: str) -> str:
    """Return the hex colour of ``origin`` (grey for an origin the palette does not know)."""
    return ORIGIN_COLOURS.get(origin, "#777777")
