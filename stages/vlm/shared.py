"""One loaded model per process, shared by every stage that runs the same engine.

Sample, perturb (answers on distorted images), reference and eval usually run the policy with the
same engine settings. Loading it once per stage costs a minute or more per load for a 7B model
under vLLM, so the loaders of those stages go through :func:`shared`: the process keeps the last
engine it loaded, keyed by what determines the loaded weights and engine (:func:`engine_identity`),
and hands it to the next stage that asks for the same key. The executors keep their model actors
alive between such stages (:mod:`pipeline.executor`), so on Ray the actor's process, and with it
this cache, survives from sample to reference.

Sharing is on only where the orchestrator turns it on (:func:`sharing`: the in-process executor for
the length of a run, a Ray model actor for its life); elsewhere (a stage's ``setup`` called directly,
tests) every load is a fresh one, so nothing outlives the run that loaded it.

One slot only: asking for another key releases the held engine first (a GPU holds one model at a
time), and :func:`release` drops it (the executors call it before a stage that loads a model of its
own, e.g. train, and at the end of a run). The train stage never shares: it changes its weights.
A stage wraps the shared ``(model, processor)`` in objects of its own (a sampler, a scorer); they must
not change the model. The one shared mutable setting is the tokenizer's ``padding_side``, which the
hf sampler sets to ``"left"``; the log-prob code reads prompts through the attention mask and does
not depend on it.
"""

from __future__ import annotations

import gc
import os
import threading
from collections import Counter
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

__all__ = [
    "engine_identity", "shared", "sharing", "enable_sharing", "stop_sharing", "release", "held_key", "load_counts", "reset_load_counts",
]

T = TypeVar("T")

_lock = threading.Lock()
_held: dict[str, Any] = {"key": None, "value": None, "enabled": False}
_loads: Counter = Counter()


def _normalised_model(model: str) -> str:
    """``dir/`` and ``dir`` (and ``./dir``) are one model; a Hub id is kept as written."""
    path = os.path.expanduser(model)
    return os.path.realpath(path) if os.path.exists(path) else model


def engine_identity(engine: Any) -> tuple:
    """What makes two engine configs load the same engine: backend, model, device, dtype, and for vllm its engine
    arguments. Batch size and the actor resources (how many, CPUs, GPUs) are not part of it: they change how
    work is spread, not what is loaded. The vllm engine's seed is not either: every request carries its own."""
    base = (str(engine.backend), _normalised_model(str(engine.model)), str(engine.device), str(engine.dtype))
    if str(engine.backend) != "vllm":
        return base
    return base + (
        int(engine.tensor_parallel_size),
        engine.max_model_len,
        float(engine.gpu_memory_utilization),
        int(engine.limit_mm_per_prompt),
    )


def shared(key: tuple, load: Callable[[], T]) -> T:
    """Return the engine held under ``key``, or release the held one and ``load()`` a new one (counted in
    :func:`load_counts`). An exception from ``load`` propagates and leaves nothing held. Outside
    :func:`sharing` this is just ``load()`` (still counted)."""
    if not _held["enabled"]:
        value = load()
        _loads[key[1] if len(key) > 1 else str(key)] += 1
        return value
    with _lock:
        if _held["key"] == key and _held["value"] is not None:
            return _held["value"]
        _release_locked()
        value = load()
        _held["key"], _held["value"] = key, value
        _loads[key[1] if len(key) > 1 else str(key)] += 1
        return value


def _release_locked() -> None:
    if _held["value"] is None:
        return
    _held["key"], _held["value"] = None, None
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # no torch: nothing of it to free
        pass


def enable_sharing() -> None:
    """Turn sharing on for the rest of this process's life (a Ray model actor's process)."""
    _held["enabled"] = True


def stop_sharing() -> None:
    """Release the held engine and turn sharing off (the end of a run in this process)."""
    _held["enabled"] = False
    release()


@contextmanager
def sharing() -> Iterator[None]:
    """Share engines inside the block; on leaving it, release the held one and stop sharing."""
    before = _held["enabled"]
    _held["enabled"] = True
    try:
        yield
    finally:
        _held["enabled"] = before
        release()


def release() -> None:
    """Drop the held engine (its memory is freed once no stage object refers to it)."""
    with _lock:
        _release_locked()


def held_key() -> tuple | None:
    """The key of the engine this process holds, or None."""
    return _held["key"]


def load_counts() -> dict[str, int]:
    """How many times this process loaded each model through :func:`shared` (for benchmarks and tests)."""
    return dict(_loads)


def reset_load_counts() -> None:
    """Zero the counters of :func:`load_counts`."""
    _loads.clear()
