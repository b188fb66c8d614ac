"""POVID's image term on the tiny model: a direct transcription of POVID's argmax procedure, and its noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from stages.perturb.noise import povid_alpha_bars
from stages.vlm.engine_config import EngineConfig
from stages.vlm.load import load_vlm
from stages.vlm.logprobs import response_logprobs, tokenize_triples
from stages.train.povid import NOISE_STEP, image_term_logprobs, noise_seed, noised_image

PROMPT = "What colour is the shape?"


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_vlm(EngineConfig(model=str(tiny_model_dir), device="cpu"), "test")


def _images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(3)]


def _transcribed(model, processor, image, noisy, prompt, response) -> tuple[float, float]:
    """POVID's ``_get_noisy_batch_logps`` written out one position at a time (no logits_to_keep, no batching):
    the argmax of the noisy-image logits at each position predicting a response token, scored under the
    clean-image logits of the same position; and the chosen tokens' own log-prob."""
    clean_batch = tokenize_triples(processor, [image], [prompt], [response])
    noisy_batch = tokenize_triples(processor, [noisy], [prompt], [response])
    with torch.no_grad():
        def logits(batch):
            args = {k: v for k, v in batch.items() if k not in ("response_mask", "prompt_lengths")}
            return model(**args, use_cache=False).logits[0].double()

        clean, noisy_logits = logits(clean_batch), logits(noisy_batch)
    ids, mask = clean_batch["input_ids"][0], clean_batch["response_mask"][0]
    term = chosen = 0.0
    for pos in range(1, len(ids)):
        if not mask[pos]:
            continue
        logp = torch.log_softmax(clean[pos - 1], dim=-1)  # position pos-1 predicts token pos (labels[:, 1:] vs logits[:, :-1])
        term += logp[int(torch.argmax(noisy_logits[pos - 1]))].item()
        chosen += logp[int(ids[pos])].item()
    return term, chosen


def test_term_equals_a_transcription_of_povids_argmax_procedure(loaded):
    model, processor = loaded
    images = _images()
    noisy = [noised_image(img, f"task-{i}") for i, img in enumerate(images)]
    responses = ["red", "a small blue square in the middle", "green"]  # different lengths: padding inside a batch
    prompts = [PROMPT] * 3
    with torch.no_grad():
        chosen, term, counts = image_term_logprobs(model, processor, images, noisy, prompts, responses, batch_size=3)
        sums, n = response_logprobs(model, processor, images, prompts, responses, batch_size=1, share_prompt=False)
    want = [_transcribed(model, processor, *args) for args in zip(images, noisy, prompts, responses)]
    torch.testing.assert_close(term.double(), torch.tensor([w[0] for w in want], dtype=torch.float64), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(chosen.double(), torch.tensor([w[1] for w in want], dtype=torch.float64), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(chosen, sums, rtol=1e-5, atol=1e-4)  # the chosen side equals the plain scoring
    assert counts.tolist() == n.tolist()
    assert (term <= 0).all() and not torch.allclose(term, chosen)  # the argmax tokens are not the chosen ones


def test_term_carries_gradients_through_the_clean_forward_only(loaded, tiny_model_dir):
    model, processor = load_vlm(EngineConfig(model=str(tiny_model_dir), device="cpu"), "test")  # a private copy: gradients are written
    image = _images()[0]
    _, term, _ = image_term_logprobs(model, processor, [image], [noised_image(image, "t")], [PROMPT], ["red"])
    term.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_noise_is_povids_forward_diffusion_at_step_500_seeded_per_task():
    image = Image.new("RGB", (64, 64), (128, 128, 128))
    a, b = noised_image(image, "t1"), noised_image(image, "t1")
    assert a.size == image.size and a.mode == "RGB" and np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(noised_image(image, "t2")))
    assert noise_seed("t1") == noise_seed("t1") != noise_seed("t2")
    # mean and spread follow x_t = sqrt(a)·x0 + sqrt(1 − a)·ε with a = alpha_bar_500 ≈ 0.7448 (METHODS.md)
    alpha_bar = povid_alpha_bars()[NOISE_STEP]
    assert alpha_bar == pytest.approx(0.7448, abs=5e-4)
    x = np.asarray(a, dtype=np.float64) / 255
    assert x.mean() == pytest.approx(np.sqrt(alpha_bar) * 128 / 255, abs=0.03)  # clamping at 0 and 1 shifts it a little


def test_reference_stage_stores_the_transcribed_term_for_every_response(loaded, train_tables):
    """train_tables' listwise comes from the reference stage with povid_image_term = true."""
    from stages.train.data import load_lists

    model, processor = loaded
    tasks, listwise = train_tables
    examples, _ = load_lists(tasks, listwise)
    ex = examples[0]
    assert ex.ref_povid_logps is not None and len(ex.ref_povid_logps) == len(ex.responses)
    image = ex.image()
    want = [_transcribed(model, processor, image, noised_image(image, ex.task_id), ex.prompt, r)[0] for r in ex.responses]
    assert ex.ref_povid_logps == pytest.approx(want, rel=1e-5, abs=1e-4)


def test_the_vllm_reference_cannot_compute_the_term():
    from pydantic import ValidationError

    from stages.reference import ReferenceConfig

    with pytest.raises(ValidationError, match="povid_image_term = true needs engine.backend = 'hf'"):
        ReferenceConfig(engine={"backend": "vllm", "num_gpus": 1}, povid_image_term=True)
