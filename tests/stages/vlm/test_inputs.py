"""Family-aware prompt and response encoding (stages/vlm/inputs.py) on tiny builds of real families."""

from __future__ import annotations

import pytest
from PIL import Image

from stages.vlm.engine_config import EngineConfig
from stages.vlm.load import load_vlm
from stages.vlm.inputs import (
    encode_prompts,
    placeholder_ids,
    profile_of,
    turn_end_id,
    written_response_ids,
)
from stages.vlm.logprobs import response_logprobs, tokenize_triples


def _load(tiny_family_dir, name):
    return load_vlm(EngineConfig(model=str(tiny_family_dir(name)), device="cpu", dtype="float32"), "test")


def _images(n=2):
    return [Image.new("RGB", (96, 64), (30 * i, 200, 40)) for i in range(n)]


@pytest.mark.parametrize("family", ["smolvlm", "gemma3"])
def test_batched_prompts_give_their_images_one_list_per_prompt(family, tiny_family_dir):
    model, processor = _load(tiny_family_dir, family)
    quirks = profile_of(processor, model).chat
    assert quirks.images_nested_per_prompt
    batch = encode_prompts(processor, _images(), ["What colour?", "Where is it?"], quirks)
    assert batch["input_ids"].shape[0] == 2
    alone = encode_prompts(processor, _images()[1:], ["Where is it?"], quirks)
    n = int(alone["attention_mask"].sum())
    assert batch["input_ids"][1, -n:].tolist() == alone["input_ids"][0, -n:].tolist()
    # what the samplers did before: a flat list, which these processors read as the first prompt's images
    with pytest.raises(ValueError, match="images"):
        processor(text=[processor.apply_chat_template(m, add_generation_prompt=True) for m in (_msg("a"), _msg("b"))],
                  images=_images(), return_tensors="pt", padding=True)


def _msg(text):
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]


@pytest.mark.parametrize("family", ["gemma3", "mistral3"])
def test_a_template_that_writes_bos_gets_exactly_one(family, tiny_family_dir):
    model, processor = _load(tiny_family_dir, family)
    bos = processor.tokenizer.bos_token_id
    enc = encode_prompts(processor, _images(1), ["Where is it?"], profile_of(processor, model).chat)
    ids = enc["input_ids"][0].tolist()
    assert ids[0] == bos and ids[1] != bos
    with_image = [{"role": "user", "content": [{"type": "image", "image": _images(1)[0]}, {"type": "text", "text": "Where is it?"}]}]
    reference = processor.apply_chat_template(with_image, add_generation_prompt=True, tokenize=True,
                                              return_dict=True, return_tensors="pt")
    assert ids == reference["input_ids"][0].tolist()  # what transformers' own tokenize=True path encodes
    plain = processor(text=[processor.apply_chat_template(_msg("Where is it?"), add_generation_prompt=True)],
                      images=[[_images(1)[0]]] if family == "gemma3" else _images(1), return_tensors="pt")
    assert plain["input_ids"][0, :2].tolist() == [bos, bos]  # the processor's default: the double BOS we avoid


def test_paligemma_prefix_format_without_labels_and_suffix_token_types(tiny_family_dir):
    model, processor = _load(tiny_family_dir, "paligemma")
    quirks = profile_of(processor, model).chat
    assert not quirks.has_chat_template and processor.chat_template is None
    enc = encode_prompts(processor, _images(1), ["detect circle"], quirks)
    assert "labels" not in enc
    tok = processor.tokenizer
    ids = enc["input_ids"][0].tolist()
    image = tok.convert_tokens_to_ids("<image>")
    n_image = processor.image_seq_length
    # "<image>" * n + bos + prefix + "\n" (transformers PaliGemmaProcessor)
    assert ids[:n_image] == [image] * n_image and ids[n_image] == tok.bos_token_id
    assert tok.decode(ids[n_image + 1 :]) == "detect circle\n"
    batch = tokenize_triples(processor, _images(1), ["detect circle"], ["<loc0010><loc0020> circle"], model=model)
    n = int(batch["prompt_lengths"][0])
    assert batch["token_type_ids"][0, :n].tolist() == enc["token_type_ids"][0].tolist()
    assert batch["token_type_ids"][0, n:].tolist() == [1] * int(batch["response_mask"][0].sum())


def test_gemma3_responses_end_with_end_of_turn_not_eos(tiny_family_dir):
    model, processor = _load(tiny_family_dir, "gemma3")
    end = turn_end_id(processor, model)
    assert processor.tokenizer.convert_ids_to_tokens(end) == "<end_of_turn>" != processor.tokenizer.eos_token
    (ids,) = written_response_ids(processor, ["a red circle"], end)
    assert ids[-1] == end


def test_a_written_response_with_a_literal_image_token_is_text(tiny_family_dir):
    model, processor = _load(tiny_family_dir, "llava")
    (ids,) = written_response_ids(processor, ["see <image> here"], None)
    assert not placeholder_ids(processor, model).intersection(ids)
    sums, counts = response_logprobs(model, processor, _images(1), ["Where?"], ["see <image> here"])
    assert counts.tolist() == [len(ids) + 1] and float(sums[0]) < 0


def test_sampled_ids_are_scored_as_they_are(tiny_family_dir):
    """A response given as token ids is scored on exactly those ids (its text is not re-tokenized)."""
    import torch

    model, processor = _load(tiny_family_dir, "qwen2_vl")
    tok = processor.tokenizer
    text = "red"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    other = [tok.convert_tokens_to_ids(t) for t in tok.convert_ids_to_tokens(ids)] + [tok.eos_token_id]
    image = _images(1)[0]
    with torch.inference_mode():
        by_text, n_text = response_logprobs(model, processor, [image], ["Where?"], [text])
        by_ids, n_ids = response_logprobs(model, processor, [image], ["Where?"], ["ignored"], response_ids=[other])
    assert n_text.tolist() == n_ids.tolist() == [len(other)]
    assert float(by_text[0]) == pytest.approx(float(by_ids[0]), abs=1e-5)


def test_a_family_without_a_template_or_prompt_format_is_a_one_line_error():
    from stages.lib.errors import ModelError
    from stages.lib.families import get_family
    from stages.vlm.inputs import render_family_prompt

    class Florence2Processor:  # a stand-in: no chat template, no prompt format of ours
        chat_template = None

    with pytest.raises(ModelError, match="Florence2Processor has no chat template and the pipeline has no prompt format"):
        render_family_prompt(Florence2Processor(), "Where?", True, get_family("florence2").chat)
