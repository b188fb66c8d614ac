"""Decoding responses: the family's box tokens survive, the other special tokens are dropped."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from stages.lib.families import FAMILIES
from stages.lib.rewards import iou_reward
from stages.vlm.engines import keep_tokens_of
from stages.vlm.engine_config import EngineConfig
from stages.vlm.decode import ResponseDecoder
from stages.vlm.vllm_engine import result_from_vllm_output


@pytest.fixture(scope="module")
def qwen_like_tokenizer(tiny_model_dir):
    """The tiny model's tokenizer with Qwen2-VL's grounding tags added as special tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>"]})
    return tok


ANSWER = "<|object_ref_start|>dog<|object_ref_end|><|box_start|>(100,200),(500,750)<|box_end|>"


def test_box_tags_survive_and_eos_is_dropped(qwen_like_tokenizer):
    tok = qwen_like_tokenizer
    ids = tok.encode(ANSWER, add_special_tokens=False) + [tok.eos_token_id]
    assert "<|box_start|>" not in tok.decode(ids, skip_special_tokens=True)  # the bug
    kept = ResponseDecoder(tok, FAMILIES["qwen2_vl"].keep_tokens).decode(ids)
    assert kept == ANSWER
    assert iou_reward(kept, [[128, 192, 640, 720]], 1280, 960, box_format="auto").reward == pytest.approx(1.0)


def test_without_keep_tokens_it_is_skip_special_tokens(qwen_like_tokenizer):
    tok = qwen_like_tokenizer
    ids = tok.encode(ANSWER, add_special_tokens=False) + [tok.eos_token_id]
    decoder = ResponseDecoder(tok, "")
    assert not decoder.keeps_tokens and decoder.decode(ids) == tok.decode(ids, skip_special_tokens=True)
    # a pattern the tokenizer has no special token for keeps nothing either
    assert not ResponseDecoder(tok, FAMILIES["florence2"].keep_tokens).keeps_tokens


def test_vllm_output_is_redecoded_only_when_tokens_are_kept(qwen_like_tokenizer):
    tok = qwen_like_tokenizer
    ids = tok.encode(ANSWER, add_special_tokens=False)
    completion = SimpleNamespace(index=0, text="dog(100,200),(500,750)", token_ids=ids, cumulative_logprob=-1.0, finish_reason="stop")
    output = SimpleNamespace(outputs=[completion])
    assert result_from_vllm_output("r", output).outputs[0].text == "dog(100,200),(500,750)"
    keep = ResponseDecoder(tok, FAMILIES["qwen2_vl"].keep_tokens)
    assert result_from_vllm_output("r", output, keep).outputs[0].text == ANSWER


def test_keep_tokens_follow_the_family(tiny_model_dir, tmp_path):
    assert keep_tokens_of(EngineConfig(model=str(tiny_model_dir))) == ""  # llava writes plain numbers
    assert keep_tokens_of(EngineConfig(model=str(tiny_model_dir)), "internvl") == FAMILIES["internvl"].keep_tokens
    assert keep_tokens_of(EngineConfig(model=str(tmp_path / "missing"))) == ""
