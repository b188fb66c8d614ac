"""serve_isolating: batch, isolate the bad items, halve on OOM, and never retry the same batch forever."""

import pytest

from stages.vlm.isolate import Rejected, serve_isolating


def _fail(item, reason, message):
    return f"failed:{item}:{reason}:{message}"


def _serve(items, run, **kw):
    return serve_isolating(items, run, _fail, reject_reason="rejected", **kw)


def test_a_good_batch_runs_once():
    calls = []
    assert _serve([1, 2, 3], lambda b: calls.append(list(b)) or [f"ok:{i}" for i in b]) == ["ok:1", "ok:2", "ok:3"]
    assert calls == [[1, 2, 3]]


def test_a_bad_item_fails_alone_and_the_rest_run_together():
    calls = []

    def run(batch):
        calls.append(list(batch))
        if 2 in batch:
            raise Rejected("image_rejected", "bad image")
        return [f"ok:{i}" for i in batch]

    def probe(item):
        if item == 2:
            raise ValueError("cannot decode")

    assert _serve([1, 2, 3], run, probe=probe) == ["ok:1", "failed:2:rejected:ValueError: cannot decode", "ok:3"]
    assert calls == [[1, 2, 3], [1, 3]]


def test_without_a_probe_each_item_runs_alone():
    def run(batch):
        if 2 in batch:
            raise Rejected("scoring_failed", "too long")
        return [f"ok:{i}" for i in batch]

    assert _serve([1, 2, 3], run) == ["ok:1", "failed:2:scoring_failed:too long", "ok:3"]


def test_every_item_passes_alone_but_the_batch_fails_terminates():
    """The SmolVLM / Gemma 3 case: a processor that refuses any batch of two or more."""
    calls = []

    def run(batch):
        calls.append(len(batch))
        if len(batch) > 1:
            raise Rejected("image_rejected", "cannot batch")
        return [f"ok:{i}" for i in batch]

    items = list(range(9))
    assert _serve(items, run, probe=lambda item: None) == [f"ok:{i}" for i in items]
    assert len(calls) < 40  # halving: no retry of the same batch


def test_a_batch_that_always_fails_fails_every_item_with_its_reason():
    def run(batch):
        raise Rejected("image_rejected", "never")

    assert _serve([1, 2, 3, 4], run, probe=lambda item: None) == [f"failed:{i}:image_rejected:never" for i in range(1, 5)]


def test_oom_halves_down_to_one_item():
    freed = []

    def run(batch):
        if len(batch) > 2:
            raise MemoryError("out of memory")
        if 5 in batch:
            raise MemoryError("out of memory")
        return [f"ok:{i}" for i in batch]

    got = _serve([1, 2, 3, 4, 5], run, is_oom=lambda e: isinstance(e, MemoryError), free_memory=lambda: freed.append(1),
                 oom_reason="oom")
    assert got == ["ok:1", "ok:2", "ok:3", "ok:4", "failed:5:oom:MemoryError: out of memory"]
    assert freed


def test_a_bug_propagates():
    def run(batch):
        raise KeyError("bug")

    with pytest.raises(KeyError):
        _serve([1, 2], run)
    assert _serve([1, 2], lambda b: (_ for _ in ()).throw(ValueError("refused")), rejects=(ValueError,)) == [
        "failed:1:rejected:ValueError: refused", "failed:2:rejected:ValueError: refused"]


def test_empty():
    assert _serve([], lambda b: 1 / 0) == []
