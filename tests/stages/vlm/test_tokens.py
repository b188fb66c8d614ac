"""response_token_ids: the one tokenisation of responses, shared by the hf log-probs and the vllm scorer."""

from stages.vlm.tokens import response_token_ids
from stages.vlm.vllm_scorer import build_reference_requests


def test_ids_are_the_tokenizers_without_special_tokens_then_eos(tiny_sampler):
    processor = tiny_sampler.processor
    tok = processor.tokenizer
    texts = ["a red box", "", "[1, 2, 3, 4]"]
    plain = tok(texts, add_special_tokens=False)["input_ids"]
    assert response_token_ids(processor, texts, append_eos=False) == plain
    assert response_token_ids(processor, texts, append_eos=True) == [ids + [tok.eos_token_id] for ids in plain]
    assert response_token_ids(tok, texts, append_eos=False) == plain  # a bare tokenizer works too
    assert response_token_ids(processor, [], append_eos=True) == []


def test_the_vllm_scorer_scores_the_same_ids(tiny_sampler):
    processor = tiny_sampler.processor
    requests = build_reference_requests([(None, "Say hi.", "hi there"), (None, "Say hi.", "")], processor, True)
    assert [r.response_ids for r in requests] == response_token_ids(processor, ["hi there", ""], True)
