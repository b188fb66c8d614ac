"""ListScorer: one module call scores whole lists; the unused-parameter probe changes nothing it measures."""

from __future__ import annotations

import pytest
import torch

from stages.vlm.engine_config import EngineConfig

from stages.vlm.load import load_vlm
from stages.train.data import load_lists
from stages.vlm.logprobs import response_logprobs
from stages.train.scorer import ListScorer, has_unused_parameters

from train_tables import make_listwise, make_tasks


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_vlm(EngineConfig(model=str(tiny_model_dir), device="cpu"), "test")


@pytest.fixture(scope="module")
def lists():
    examples, _ = load_lists(make_tasks(), make_listwise())
    return examples


@pytest.mark.parametrize("share_prompt", [True, False])
def test_forward_scores_every_response_flat_in_list_order(loaded, lists, share_prompt):
    model, processor = loaded
    scorer = ListScorer(model, processor, forward_batch_size=3, share_prompt=share_prompt)
    with torch.no_grad():
        sums, counts, image_terms = scorer(lists[:2])
        one_by_one = [
            response_logprobs(model, processor, [ex.image()], [ex.prompt], [r], batch_size=1)
            for ex in lists[:2] for r in ex.responses
        ]
    assert sums.shape == (8,) and counts.tolist() == [int(n) for _, n in one_by_one] and image_terms is None
    torch.testing.assert_close(sums, torch.cat([s for s, _ in one_by_one]), rtol=1e-5, atol=1e-4)


def test_scorer_parameters_are_the_models(loaded):
    model, processor = loaded
    scorer = ListScorer(model, processor, 8, True)
    assert [id(p) for p in scorer.parameters()] == [id(p) for p in model.parameters()]


def _post_layernorm(model) -> list[torch.nn.Parameter]:
    """The tiny LLaVA reads a hidden layer of its vision tower, so the tower's final layer norm gets no gradient."""
    return [p for n, p in model.named_parameters() if "post_layernorm" in n]


def test_unused_parameter_probe(loaded, lists):
    model, processor = loaded
    scorer = ListScorer(model, processor, 8, True)
    text_only = [type(lists[0])(**{**lists[0].__dict__, "image_cell": None})]
    assert has_unused_parameters(scorer, text_only)  # no image: the vision tower gets no gradient
    assert has_unused_parameters(scorer, lists) and len(_post_layernorm(model)) == 2
    extra = torch.nn.Linear(2, 2)  # registered on the scorer below but never called by its forward
    before = torch.get_rng_state()
    for p in _post_layernorm(model):
        p.requires_grad_(False)
    try:
        assert not has_unused_parameters(scorer, lists)  # every trainable weight now takes part
        scorer.add_module("extra", extra)
        assert has_unused_parameters(scorer, lists)
    finally:
        for p in _post_layernorm(model):
            p.requires_grad_(True)
        del scorer.extra
    # the probe leaves no gradient behind and the RNG stream where it was
    assert all(p.grad is None for p in model.parameters()) and extra.weight.grad is None
    assert torch.equal(torch.get_rng_state(), before)


def test_with_the_image_term_each_list_gets_its_chosen_answers_term(loaded, lists):
    from stages.train.objective import povid_chosen
    from stages.train.povid import image_term_logprobs, noised_image

    model, processor = loaded
    scorer = ListScorer(model, processor, 8, True, image_term=True)
    with torch.no_grad():
        _, _, terms = scorer(lists[:2])
        want = []
        for ex in lists[:2]:
            image, chosen = ex.image(), ex.responses[povid_chosen(ex.rewards, ex.origins)]
            want.append(image_term_logprobs(model, processor, [image], [noised_image(image, ex.task_id)], [ex.prompt], [chosen])[1])
    torch.testing.assert_close(terms, torch.cat(want), rtol=1e-5, atol=1e-4)
