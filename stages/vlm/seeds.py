"""The seed rule: where every sampled candidate's randomness comes from.

``request_seed(base, task_id, origin, key)`` seeds one request (all ``n`` samples of one task for
one origin); ``sequence_seed(request_seed, i)`` seeds its ``i``-th sample on the hf backend. Both
are hashes of their inputs only, so a candidate does not depend on the shard layout, the batch
size, the order of tasks or which actor ran it. vLLM takes ``request_seed`` as
``SamplingParams.seed`` and draws its ``n`` samples from it.
"""

from __future__ import annotations

import hashlib

from data_schemas.tables import Origin

__all__ = ["request_seed", "sequence_seed"]

_SEED_MASK = (1 << 63) - 1  # fits the int64 ``seed`` column and torch.Generator.manual_seed


def _hash_seed(*parts: object) -> int:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & _SEED_MASK


def request_seed(base_seed: int, task_id: str, origin: Origin = Origin.POLICY, key: str = "") -> int:
    """Return the seed of the request for (``task_id``, ``origin``, ``key``) under the stage's ``base_seed``.

    ``key`` tells apart several requests of one task and origin (e.g. one per image distortion).
    """
    return _hash_seed("request", base_seed, task_id, origin, key)


def sequence_seed(request_seed_: int, index: int) -> int:
    """Return the seed of sample ``index`` of a request (the hf backend's per-sequence generator)."""
    return _hash_seed("sequence", request_seed_, index)
