"""Stable per-row seeds: the same (base seed, task, index) gives the same seed on every machine and run."""

from __future__ import annotations

import hashlib

__all__ = ["stable_seed"]


def stable_seed(*parts: object) -> int:
    """Return a non-negative 63-bit seed derived from ``parts`` (their ``str``), independent of PYTHONHASHSEED."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & (2**63 - 1)
