"""The held-out split: which tasks only the eval stage sees.

A task is ``eval`` when its corpus row says so (the ``[ingest] split_column`` of a JSONL or Parquet
corpus), else when a hash of its task id falls below ``[ingest] eval_fraction``. The task id is a
content hash (image bytes, task type, prompt), so the split is deterministic: the same task lands on
the same side whatever the sharding, the order of the corpus or the run, and a task repeated in
another corpus file is still on its side.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from data_schemas.quarantine import QuarantineReason
from stages.ingest.rejected import Rejected

__all__ = ["TRAIN", "EVAL", "SPLIT_ALIASES", "parse_split", "hash_fraction", "assign_split"]

TRAIN: Final[str] = "train"
EVAL: Final[str] = "eval"

# Split names as corpora write them (Hub datasets: train / validation / test).
SPLIT_ALIASES: Final[dict[str, str]] = {
    "train": TRAIN,
    "training": TRAIN,
    "eval": EVAL,
    "evaluation": EVAL,
    "val": EVAL,
    "valid": EVAL,
    "validation": EVAL,
    "dev": EVAL,
    "test": EVAL,
    "heldout": EVAL,
    "held_out": EVAL,
}


def parse_split(value: Any) -> str | None:
    """Return ``"train"``, ``"eval"`` or None (not given) for a corpus row's split value; raise ``Rejected`` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or value.strip().casefold() not in SPLIT_ALIASES:
        raise Rejected(
            QuarantineReason.MALFORMED_RECORD,
            f"split {value!r:.40} is not one of {', '.join(sorted(SPLIT_ALIASES))}",
        )
    return SPLIT_ALIASES[value.strip().casefold()]


def hash_fraction(task_id: str) -> float:
    """A number in [0, 1) fixed by the task id (the first 8 bytes of sha256("split:" + task_id))."""
    digest = hashlib.sha256(f"split:{task_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(task_id: str, declared: str | None, eval_fraction: float) -> str:
    """The task's split: ``declared`` when the corpus gave one, else ``eval`` iff ``hash_fraction(task_id) < eval_fraction``."""
    if declared is not None:
        return declared
    return EVAL if hash_fraction(task_id) < eval_fraction else TRAIN
