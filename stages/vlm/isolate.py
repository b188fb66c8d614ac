"""Run a batch; when it fails, find the items that make it fail and serve every other item.

One helper for the "batch, then isolate the bad request" pattern of the engines and scorers:

- the batch runs: its results are returned;
- it runs out of memory: the memory is freed and each half runs on its own (a batch of one fails
  its item with the OOM reason);
- it is *rejected* (the run raised :class:`Rejected`, or a ``rejects`` exception): a batch of one
  fails its item with the rejection's reason; otherwise each item is tried alone (``probe``, or a
  run of one), the items that fail alone fail with their reason, and the rest run together again;
- every item passes alone but the batch is still rejected (a processor that cannot take these
  items together: SmolVLM and Gemma 3 at batch size > 1 did this): the batch is split in halves,
  never retried whole, so the recursion ends (depth at most log2 of the batch).

Results keep the order of the items.
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from data_schemas.quarantine import QuarantineReason
from stages.lib.errors import first_line

__all__ = ["Rejected", "serve_isolating"]

T = TypeVar("T")
R = TypeVar("R")


class Rejected(Exception):
    """Raised by a batch run when the engine refused its input (not a bug, not out of memory)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def serve_isolating(
    items: Sequence[T],
    run: Callable[[list[T]], list[R]],
    fail: Callable[[T, str, str], R],
    *,
    reject_reason: str,
    oom_reason: str = QuarantineReason.OOM,
    probe: Callable[[T], object] | None = None,
    rejects: tuple[type[BaseException], ...] = (),
    is_oom: Callable[[BaseException], bool] = lambda exc: False,
    free_memory: Callable[[], None] | None = None,
) -> list[R]:
    """Return one result per item of ``items``, in order: ``run``'s where the batch ran, ``fail(item, reason,
    message)`` for items that cannot be served (rejected, or out of memory alone).

    ``run(batch)`` returns one result per item or raises: :class:`Rejected` or one of ``rejects``
    (the input was refused; ``reject_reason`` is the reason of a plain exception), an exception
    ``is_oom`` says is out-of-memory, or anything else, which propagates (a bug is not a data
    problem). ``probe(item)`` is a cheap check of one item (raises when the item alone is refused);
    without it the item is run alone and that result kept.
    """
    items = list(items)
    if not items:
        return []
    try:
        return run(items)
    except Rejected as exc:
        return _isolate(items, run, fail, exc.reason, exc.message, reject_reason, oom_reason, probe, rejects, is_oom, free_memory)
    except Exception as exc:
        if is_oom(exc):
            if free_memory is not None:
                free_memory()
            if len(items) == 1:
                return [fail(items[0], oom_reason, first_line(exc))]
            kwargs = dict(reject_reason=reject_reason, oom_reason=oom_reason, probe=probe, rejects=rejects,
                          is_oom=is_oom, free_memory=free_memory)
            mid = len(items) // 2
            return serve_isolating(items[:mid], run, fail, **kwargs) + serve_isolating(items[mid:], run, fail, **kwargs)
        if isinstance(exc, rejects):
            return _isolate(items, run, fail, reject_reason, first_line(exc), reject_reason, oom_reason, probe, rejects, is_oom, free_memory)
        raise


def _isolate(items, run, fail, reason, message, reject_reason, oom_reason, probe, rejects, is_oom, free_memory):
    """The batch ``items`` was rejected with ``reason`` / ``message``: serve what can be served."""
    kwargs = dict(reject_reason=reject_reason, oom_reason=oom_reason, probe=probe, rejects=rejects,
                  is_oom=is_oom, free_memory=free_memory)
    if len(items) == 1:
        return [fail(items[0], reason, message)]
    results: dict[int, object] = {}
    for i, item in enumerate(items):
        if probe is not None:
            try:
                probe(item)
            except Exception as exc:  # the item alone is refused
                if is_oom(exc) and free_memory is not None:
                    free_memory()
                results[i] = _failure(item, exc, fail, reject_reason, oom_reason, is_oom)
        else:
            results[i] = serve_isolating([item], run, fail, **kwargs)[0]
    if probe is None:
        return [results[i] for i in range(len(items))]
    good = [i for i in range(len(items)) if i not in results]
    if len(good) == len(items):
        # Every item passes alone but not together: halve, never retry the same batch.
        mid = len(items) // 2
        return serve_isolating(items[:mid], run, fail, **kwargs) + serve_isolating(items[mid:], run, fail, **kwargs)
    served = iter(serve_isolating([items[i] for i in good], run, fail, **kwargs) if good else [])
    return [results[i] if i in results else next(served) for i in range(len(items))]


def _failure(item, exc, fail, reject_reason, oom_reason, is_oom):
    if isinstance(exc, Rejected):
        return fail(item, exc.reason, exc.message)
    if is_oom(exc):
        return fail(item, oom_reason, first_line(exc))
    return fail(item, reject_reason, first_line(exc))
