from dataclasses import replace

import pytest
import torch
from PIL import Image

from data_schemas.quarantine import QuarantineReason
from stages.lib.errors import ModelError
from stages.vlm.chat import render_prompt
from stages.vlm.hf_engine import HFSampler, is_oom_error
from stages.vlm.requests import SampleRequest, Sampler


def _image(color, size=(64, 48)):
    return Image.new("RGB", size, color)


def _requests(k=3, n=3, **kw):
    colors = [(255, 0, 0), (0, 0, 255), (0, 160, 0), (200, 200, 0), (90, 0, 90)]
    return [
        # prompts of different lengths, so batches are left-padded
        SampleRequest(f"r{i}", f"What colour is object {i}?" + " Answer in one word." * i, _image(colors[i % 5], (40 + 9 * i, 30 + 5 * i)),
                      n=n, max_tokens=10, seed=1000 + i, **kw)
        for i in range(k)
    ]


def _texts(results):
    return [[o.text for o in r.outputs] for r in results]


@pytest.fixture
def sampler(tiny_sampler):
    """The session sampler with its batch size and generate kwargs restored after the test."""
    batch_size, kwargs = tiny_sampler.batch_size, dict(tiny_sampler.generate_kwargs)
    yield tiny_sampler
    tiny_sampler.batch_size, tiny_sampler.generate_kwargs = batch_size, kwargs


def test_is_a_sampler(sampler, tiny_model_dir):
    assert isinstance(sampler, Sampler)
    assert sampler.backend == "hf" and sampler.model_name == str(tiny_model_dir)


def test_batch_of_images_keeps_all_n_sequences_in_order(sampler):
    requests = _requests(k=3, n=4)
    results = sampler.sample(requests)
    assert [r.request_id for r in results] == ["r0", "r1", "r2"]
    for r in results:
        assert r.error is None
        assert len(r.outputs) == 4
        assert len(set(o.text for o in r.outputs)) > 1  # independent draws
        for o in r.outputs:
            assert 1 <= o.n_tokens <= 10
            assert o.logprob_sum is not None and o.logprob_sum <= 0
            assert o.finish_reason in ("stop", "length")
            assert (o.finish_reason == "length") == (o.n_tokens == 10)


def test_same_seed_same_texts_whatever_the_batch(sampler):
    requests = _requests(k=5, n=2)
    enc = sampler._encode(requests)
    assert int((enc["attention_mask"] == 0).sum()) > 0  # the batch really is padded
    sampler.batch_size = 5
    together = sampler.sample(requests)
    sampler.batch_size = 2
    in_pairs = sampler.sample(requests)
    sampler.batch_size = 1
    alone = sampler.sample(list(reversed(requests)))[::-1]
    assert _texts(together) == _texts(in_pairs) == _texts(alone)
    for a, b in zip(together, alone):
        for x, y in zip(a.outputs, b.outputs):
            assert x.logprob_sum == pytest.approx(y.logprob_sum, abs=1e-4)


def test_other_seed_other_texts(sampler):
    requests = _requests(k=2, n=3)
    reseeded = [replace(r, seed=r.seed + 1) for r in requests]
    assert _texts(sampler.sample(requests)) != _texts(sampler.sample(reseeded))


def test_logprob_sum_matches_a_forward_pass(sampler):
    request = _requests(k=1, n=3)[0]
    result = sampler.sample([request])[0]
    processor, model, tokenizer = sampler.processor, sampler.model, sampler.tokenizer
    prompt = render_prompt(processor, request.prompt)
    enc = processor(text=[prompt], images=[request.image], return_tensors="pt")
    for out in result.outputs:
        # re-generate the token ids of this output: the text alone may not re-tokenize identically
        ids = _generated_ids(sampler, request, result.outputs.index(out))
        assert len(ids) == out.n_tokens
        full = torch.cat([enc["input_ids"], torch.tensor([ids])], dim=1)
        with torch.no_grad():
            logits = model(input_ids=full, attention_mask=torch.ones_like(full), pixel_values=enc["pixel_values"]).logits
        start = enc["input_ids"].shape[1]
        logprobs = torch.log_softmax(logits[0, start - 1 : -1].double(), dim=-1)
        expected = logprobs.gather(1, torch.tensor(ids)[:, None]).sum().item()
        assert out.logprob_sum == pytest.approx(expected, abs=1e-3)
        assert tokenizer.decode(ids, skip_special_tokens=True) == out.text


def _generated_ids(sampler, request, index):
    """Token ids of output ``index``: replay generate on the sampler with the same seeds."""
    captured = {}
    original = sampler.model.generate

    def spy(**kwargs):
        sequences = original(**kwargs)
        captured["ids"] = sequences[:, kwargs["input_ids"].shape[1] :].tolist()
        return sequences

    sampler.model.generate = spy
    try:
        sampler.sample([request])
    finally:
        del sampler.model.generate
    ids = captured["ids"][index]
    eos = set(sampler.eos_ids)
    stop = next((k for k, t in enumerate(ids) if t in eos), None)
    return ids if stop is None else ids[: stop + 1]


def test_eos_gives_stop_and_an_empty_text_is_kept(sampler):
    eos = sampler.eos_ids[0]
    sampler.generate_kwargs = {"sequence_bias": {(eos,): 50.0}}  # make EOS the overwhelming first token
    result = sampler.sample(_requests(k=1, n=3))[0]
    assert [o.finish_reason for o in result.outputs] == ["stop"] * 3
    assert [o.text for o in result.outputs] == [""] * 3
    assert [o.n_tokens for o in result.outputs] == [1] * 3


def test_greedy_gives_identical_sequences(sampler):
    result = sampler.sample(_requests(k=1, n=3, temperature=0.0))[0]
    assert len({o.text for o in result.outputs}) == 1


def test_top_p_restricts_to_the_nucleus(sampler):
    # top_p tiny: only the most likely token survives, so sampling equals greedy decoding
    nucleus = sampler.sample(_requests(k=1, n=2, top_p=1e-6))[0]
    greedy = sampler.sample(_requests(k=1, n=1, temperature=0.0))[0]
    assert {o.text for o in nucleus.outputs} == {greedy.outputs[0].text}


def test_text_only_request(sampler):
    result = sampler.sample([SampleRequest("t", "Rewrite: a red circle.", None, n=2, max_tokens=5, seed=1)])[0]
    assert result.error is None and len(result.outputs) == 2


def test_rejected_image_is_an_error_not_an_exception(sampler):
    requests = _requests(k=3, n=2)
    requests[1] = replace(requests[1], image=Image.new("RGB", (0, 5)))
    results = sampler.sample(requests)
    assert results[1].error_reason == QuarantineReason.IMAGE_REJECTED and results[1].outputs == []
    assert "ZeroDivisionError" in results[1].error
    good = sampler.sample([requests[0], requests[2]])
    assert _texts([results[0], results[2]]) == _texts(good)


def test_a_processor_that_refuses_every_batch_still_serves_every_request(sampler, monkeypatch):
    """SmolVLM / Gemma 3 at batch size > 1: each request encodes alone, no batch does. Used to recurse forever."""
    requests = _requests(k=5, n=2)
    alone = sampler.sample(requests[:1]) + sampler.sample(requests[1:2])
    encode = sampler._encode

    def one_at_a_time(batch):
        if len(batch) > 1:
            raise ValueError("images must be one list per prompt")
        return encode(batch)

    monkeypatch.setattr(sampler, "_encode", one_at_a_time)
    results = sampler.sample(requests)
    assert [r.error for r in results] == [None] * 5
    assert _texts(results[:2]) == _texts(alone)  # per-sequence seeds: same samples whatever the batch


def test_a_request_that_fails_only_in_a_batch_of_one_fails_with_its_reason(sampler, monkeypatch):
    requests = _requests(k=3, n=1)
    encode, probed = sampler._encode, []

    def flaky(batch):
        probed.append(len(batch))
        if any(r.request_id == "r1" for r in batch) and len(probed) > 4:  # passes the probe, fails when served
            raise ValueError("refused late")
        if len(batch) > 1:
            raise ValueError("no batches")
        return encode(batch)

    monkeypatch.setattr(sampler, "_encode", flaky)
    results = sampler.sample(requests)
    assert results[0].error is None and results[2].error is None
    assert results[1].error_reason == QuarantineReason.IMAGE_REJECTED and "refused late" in results[1].error


def test_oom_halves_the_batch_and_keeps_the_samples(sampler, monkeypatch):
    requests = _requests(k=4, n=2)
    sampler.batch_size = 4
    expected = _texts(sampler.sample(requests))
    calls = []
    original = sampler.model.generate

    def flaky(**kwargs):
        calls.append(kwargs["input_ids"].shape[0])
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(**kwargs)

    monkeypatch.setattr(sampler.model, "generate", flaky)
    results = sampler.sample(requests)
    assert calls == [8, 4, 4]  # rows = requests x n: 4 requests, then 2 and 2
    assert _texts(results) == expected


def test_oom_at_one_request_marks_the_requests(sampler, monkeypatch):
    def always(**kwargs):
        raise RuntimeError("CUDA error: out of memory")

    monkeypatch.setattr(sampler.model, "generate", always)
    results = sampler.sample(_requests(k=3, n=2))
    assert [r.error_reason for r in results] == [QuarantineReason.OOM] * 3
    assert all(r.outputs == [] for r in results)


def test_prompt_longer_than_the_context_is_quarantined_before_generating(sampler, monkeypatch):
    """The tiny model's context is 2048 tokens; a longer prompt never reaches generate (issue 11, item 1)."""
    context = sampler.model.config.get_text_config().max_position_embeddings
    long = SampleRequest("long", "Describe it. " * context, _image((255, 0, 0)), n=2, max_tokens=10, seed=1)
    short = _requests(k=1, n=2)[0]
    seen = []
    original = sampler.model.generate

    def recording(**kwargs):
        seen.append(kwargs["input_ids"].shape)
        return original(**kwargs)

    monkeypatch.setattr(sampler.model, "generate", recording)
    results = sampler.sample([long, short])
    assert results[0].error_reason == QuarantineReason.PROMPT_TOO_LONG and results[0].outputs == []
    assert f"context of {context} tokens" in results[0].error
    assert len(results[1].outputs) == 2 and [shape[1] < context for shape in seen] == [True]  # only the short prompt


def test_cpu_allocator_failure_counts_as_out_of_memory(sampler, monkeypatch):
    def exhausted(**kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 96000000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(sampler.model, "generate", exhausted)
    results = sampler.sample(_requests(k=2, n=2))
    assert [r.error_reason for r in results] == [QuarantineReason.OOM] * 2


def test_other_generate_errors_propagate(sampler, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(sampler.model, "generate", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        sampler.sample(_requests(k=1))


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (torch.cuda.OutOfMemoryError("x"), True),
        (RuntimeError("CUDA out of memory. Tried to allocate"), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"), True),
        (RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes"), True),
        (MemoryError(), True),
        (RuntimeError("size mismatch"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_is_oom_error(exc, expected):
    assert is_oom_error(exc) is expected


def test_missing_model_path_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match=r"^\[sample\] model path .*does not exist.*make-tiny-model"):
        HFSampler(tmp_path / "nope" / "model")
    with pytest.raises(ModelError, match=r"^\[perturb\] model path"):
        HFSampler(tmp_path / "nope" / "model", stage="perturb")


def test_folder_without_config_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="has no config.json"):
        HFSampler(tmp_path)


def test_text_only_model_is_a_model_error(tmp_path, tiny_sampler):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "llama")
    tiny_sampler.tokenizer.save_pretrained(tmp_path / "llama")
    with pytest.raises(ModelError, match="not an image-text model.*'llama'"):
        HFSampler(tmp_path / "llama")


def test_cuda_without_gpu_is_a_config_error(tiny_model_dir):
    from stages.lib.errors import ConfigError

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError, match="device = 'cuda'"):
        HFSampler(tiny_model_dir, device="cuda")
