"""Batched response log-probs: equal to one-at-a-time scoring and to the model's own masked loss."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from stages.vlm.engine_config import EngineConfig

from stages.vlm.load import load_vlm
from stages.vlm.logprobs import response_logprobs, tokenize_triples

PROMPTS = ["What colour is the shape?", "Locate the red circle and answer with its bounding box.", "Read the text."]
RESPONSES = ["red", "[12, 34, 56, 78] box", "The answer is yes and two three"]


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_vlm(EngineConfig(model=str(tiny_model_dir), device="cpu"), "test")


@pytest.fixture(scope="module")
def images():
    return [Image.new("RGB", (64, 64), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]


def test_batched_equals_one_at_a_time(loaded, images):
    model, processor = loaded
    imgs = [images[0], None, images[1], images[2], None]
    prompts = [PROMPTS[0], PROMPTS[1], PROMPTS[1], PROMPTS[2], PROMPTS[2]]
    resps = [RESPONSES[0], RESPONSES[1], RESPONSES[2], RESPONSES[1], RESPONSES[0]]
    with torch.no_grad():
        sums, counts = response_logprobs(model, processor, imgs, prompts, resps, batch_size=3)
        single = [response_logprobs(model, processor, [i], [p], [r], batch_size=1) for i, p, r in zip(imgs, prompts, resps)]
    torch.testing.assert_close(sums, torch.cat([s for s, _ in single]), rtol=1e-5, atol=1e-4)
    assert counts.tolist() == [int(n) for _, n in single]


def test_only_response_tokens_count(loaded, images):
    """The sum equals −(model's mean loss with prompt labels masked) × response tokens, EOS included."""
    model, processor = loaded
    with torch.no_grad():
        sums, counts = response_logprobs(model, processor, [images[0]], [PROMPTS[1]], [RESPONSES[1]], batch_size=1)
        batch = tokenize_triples(processor, [images[0]], [PROMPTS[1]], [RESPONSES[1]])
        labels = batch["input_ids"].masked_fill(~batch["response_mask"], -100)
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    pixel_values=batch["pixel_values"], labels=labels)
    n_response = len(processor.tokenizer(RESPONSES[1], add_special_tokens=False)["input_ids"]) + 1  # + EOS
    assert counts.item() == n_response == int(batch["response_mask"].sum())
    torch.testing.assert_close(sums, -out.loss.reshape(1) * n_response, rtol=1e-5, atol=1e-4)
    ids = batch["input_ids"][0][batch["response_mask"][0]]
    assert processor.tokenizer.decode(ids) == RESPONSES[1] + processor.tokenizer.eos_token


def test_changing_the_prompt_does_not_change_the_token_count(loaded, images):
    model, processor = loaded
    with torch.no_grad():
        _, a = response_logprobs(model, processor, [images[0]], [PROMPTS[0]], [RESPONSES[2]])
        _, b = response_logprobs(model, processor, [images[0]], [PROMPTS[1] * 3], [RESPONSES[2]])
    assert a.item() == b.item()


def test_gradients_flow_in_training_mode(loaded, images):
    model, processor = loaded
    model.zero_grad()
    sums, _ = response_logprobs(model, processor, [images[0], images[1]], PROMPTS[:2], RESPONSES[:2], batch_size=2)
    sums.sum().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    model.zero_grad()


def test_mismatched_inputs_are_rejected(loaded):
    model, processor = loaded
    with pytest.raises(ValueError, match="differ in length"):
        response_logprobs(model, processor, [None], PROMPTS[:2], RESPONSES[:2])
    with pytest.raises(ValueError, match="batch_size"):
        response_logprobs(model, processor, [None], PROMPTS[:1], RESPONSES[:1], batch_size=0)


def test_scores_match_the_sampler_on_the_same_prompt_format(tiny_model_dir, images):
    """One sampled token's log-prob from the hf sampler equals the score of its text: same prompt, same tokens."""
    from stages.vlm.hf_engine import HFSampler
    from stages.vlm.requests import SampleRequest

    sampler = HFSampler(tiny_model_dir, device="cpu")
    (result,) = sampler.sample([SampleRequest("r", PROMPTS[0], images[0], n=12, max_tokens=1, seed=3)])
    texts = [o.text for o in result.outputs]
    with torch.no_grad():
        sums, counts = response_logprobs(
            sampler.model, sampler.processor, [images[0]] * len(texts), [PROMPTS[0]] * len(texts), texts, append_eos=False
        )
    # a sampled byte fragment decodes to U+FFFD and re-encodes differently: compare the tokens that round-trip
    same = [(o.logprob_sum, s) for o, s, n in zip(result.outputs, sums.tolist(), counts.tolist()) if n == 1]
    assert len(same) >= len(texts) // 2
    assert [a for a, _ in same] == pytest.approx([b for _, b in same], abs=1e-4)


@pytest.mark.parametrize("append_eos", [True, False])
def test_shared_prompt_path_equals_the_batched_path(loaded, images, append_eos):
    """Responses sharing an image and prompt run the prompt once: same sums, counts and gradients."""
    model, processor = loaded
    imgs = [images[0]] * 4 + [images[1]] * 2 + [None] * 2
    prompts = [PROMPTS[0]] * 4 + [PROMPTS[1]] * 2 + [PROMPTS[2]] * 2
    resps = [RESPONSES[0], "", RESPONSES[1], RESPONSES[2], RESPONSES[2], RESPONSES[0], RESPONSES[1], "no"]
    results = {}
    for shared in (True, False):
        model.zero_grad()
        sums, counts = response_logprobs(model, processor, imgs, prompts, resps, batch_size=3, append_eos=append_eos, share_prompt=shared)
        (sums * torch.linspace(0.5, 2.0, len(resps))).sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results[shared] = (sums.detach(), counts, grads)
    model.zero_grad()
    (s1, c1, g1), (s0, c0, g0) = results[True], results[False]
    torch.testing.assert_close(s1, s0, rtol=1e-5, atol=1e-4)
    assert c1.tolist() == c0.tolist()
    assert len(g1) == len(g0)
    for a, b in zip(g1, g0):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
