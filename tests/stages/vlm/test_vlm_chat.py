import pytest

from stages.lib.errors import ModelError
from stages.vlm.chat import build_messages, render_prompt


def test_messages_with_image_use_trl_conversational_format():
    assert build_messages("What colour?") == [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}
    ]


def test_messages_without_image_use_plain_string_content():
    assert build_messages("Rewrite this.", with_image=False) == [{"role": "user", "content": "Rewrite this."}]


def test_render_prompt_with_tiny_processor(tiny_sampler):
    text = render_prompt(tiny_sampler.processor, "What colour?")
    assert text == "<|user|>\n<image>\nWhat colour?</s>\n<|assistant|>\n"
    assert render_prompt(tiny_sampler.processor, "Hi", with_image=False) == "<|user|>\nHi</s>\n<|assistant|>\n"


def test_prompt_is_a_prefix_of_the_rendered_conversation(tiny_sampler):
    processor = tiny_sampler.processor
    full = processor.apply_chat_template(
        build_messages("What colour?") + [{"role": "assistant", "content": [{"type": "text", "text": "red"}]}],
        tokenize=False,
    )
    assert full.startswith(render_prompt(processor, "What colour?"))


def test_missing_chat_template_is_a_model_error(tiny_sampler):
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tiny_sampler.tokenizer.backend_tokenizer)
    with pytest.raises(ModelError, match="no chat template"):
        render_prompt(tokenizer, "x", with_image=False)
