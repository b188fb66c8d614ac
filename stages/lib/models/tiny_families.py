"""Tiny random-weight builds of real VLM families, built offline, for the family test matrix.

Each builder writes a folder that loads through exactly the path a Hub checkpoint takes
(``AutoModelForImageTextToText.from_pretrained`` + ``AutoProcessor.from_pretrained``): the
family's own config, model and processor classes (Qwen2VLProcessor, LlavaNextProcessor,
SmolVLMProcessor, Gemma3Processor, PaliGemmaProcessor, ...), a locally trained byte-level BPE
tokenizer carrying the family's real special tokens (image/vision tokens, box and ref tags, BOS/EOS
and turn tokens, and whether the tokenizer itself adds BOS), and the family's real chat template.
Widths are tiny (2 layers, 64-wide text, 32-wide vision towers, 32-pixel image inputs), so a
forward pass costs milliseconds on a CPU. The answers are random text; what matters is that every
API (processor, chat template, special tokens, image token expansion, rope variants) behaves like
the real family's.

Sources of the chat templates and special tokens (cited per family below):
- transformers' processor tests (``tests/models/<family>/test_processing_<family>.py``), which
  carry the checkpoints' templates: llava-1.5 (llava-hf/llava-1.5-7b-hf), LLaVA-OneVision,
  SmolVLM (HuggingFaceTB/SmolVLM), Gemma 3 (google/gemma-3 tokenizer_config.json);
- transformers' ``convert_internvl_weights_to_hf.py`` (the template of OpenGVLab/InternVL3-*-hf);
- the Qwen2-VL / Qwen2.5-VL template (Qwen/Qwen2-VL-7B-Instruct chat_template.json) and the
  Qwen3-VL one (Qwen/Qwen3-VL-*-Instruct, no default system turn; its tool and thinking branches
  are left out: the pipeline never sends tools);
- mistralai/Mistral-Small-3.1-24B-Instruct-2503's template (``{{- bos_token }}``,
  ``[SYSTEM_PROMPT]``, ``[INST]``/``[/INST]``, ``[IMG]``), with its long default system message
  cut to one line (our choice: it only costs tokens on a CPU);
- PaliGemma ships no chat template: transformers' PaliGemmaProcessor builds
  ``"<image>" * n + bos + prefix + "\\n"`` itself and adds the 1024 ``<locNNNN>`` / 128
  ``<segNNN>`` tokens as normal tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Final

from stages.lib.errors import ModelError
from stages.lib.models.folder import save_model_folder

__all__ = ["TINY_FAMILY_MARKER", "TinyFamily", "TINY_FAMILIES", "tiny_family_names", "build_tiny_family"]

TINY_FAMILY_MARKER: Final[str] = "perpo_tiny_family.json"
_FORMAT_VERSION: Final[int] = 1
TEXT_HIDDEN: Final[int] = 64
VISION_HIDDEN: Final[int] = 32
IMAGE: Final[int] = 32  # square image input of every vision tower
PATCH: Final[int] = 8

_CORPUS: Final[tuple[str, ...]] = (
    "0 1 2 3 4 5 6 7 8 9 10 12 16 20 24 25 32 48 50 64 75 100 128 200 256 500 1000",
    "[12, 34, 56, 78] [0.1, 0.25, 0.5, 0.75] (x1,y1),(x2,y2) {\"bbox_2d\": [1, 2, 3, 4]} { } ( ) [ ]",
    "red green blue yellow orange purple black white gray pink brown circle square triangle",
    "Locate the red circle and answer with its bounding box. What colour is the square?",
    "Read the text in the image. Describe the image in one sentence. There is a small blue shape.",
    "You are a helpful assistant. user assistant system model USER ASSISTANT Assistant User",
)

_QWEN_SPECIALS: Final[tuple[str, ...]] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
    "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)

# Qwen/Qwen2-VL-7B-Instruct (and Qwen2.5-VL) chat_template.json.
QWEN2_VL_TEMPLATE: Final[str] = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen/Qwen3-VL-*-Instruct chat_template.json, without the tools / reasoning branches.
QWEN3_VL_TEMPLATE: Final[str] = (
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\n' }}"
    "{%- if message.content is string %}{{- message.content }}"
    "{%- else %}{%- for content in message.content %}"
    "{%- if content.type == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content.type == 'video' or 'video' in content %}"
    "{%- set video_count.value = video_count.value + 1 %}{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)

# llava-hf/llava-1.5-7b-hf (transformers tests/models/llava/test_processing_llava.py; the LLaVA-NeXT
# processor test uses the same template).
LLAVA_TEMPLATE: Final[str] = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# llava-hf/llava-onevision-qwen2-*-ov-hf (transformers tests/models/llava_onevision/test_processing_llava_onevision.py).
LLAVA_ONEVISION_TEMPLATE: Final[str] = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# HuggingFaceTB/SmolVLM-Instruct (transformers tests/models/smolvlm/test_processing_smolvlm.py).
SMOLVLM_TEMPLATE: Final[str] = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

# OpenGVLab/InternVL3-*-hf (transformers models/internvl/convert_internvl_weights_to_hf.py).
INTERNVL_TEMPLATE: Final[str] = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}{{'<|im_end|>\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\n' }}{% endif %}"
)

# google/gemma-3-*-it tokenizer_config.json (transformers tests/models/gemma3/test_processing_gemma3.py).
GEMMA3_TEMPLATE: Final[str] = (
    "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n"
    "    {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n"
    "    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n"
    "    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n"
    "        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n"
    "    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n"
    "    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n"
    "    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n"
    "    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n"
    "    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n"
    "            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n"
    "            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n"
    "            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n"
    "        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n"
    "    {{ '<end_of_turn>\n' }}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n"
    "    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n"
)

# mistralai/Mistral-Small-3.1-24B-Instruct-2503 (default system message shortened, our choice).
MISTRAL3_TEMPLATE: Final[str] = (
    "{%- set default_system_message = \"You are a helpful assistant.\" %}"
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}{%- if messages[0]['content'] is string %}"
    "{%- set system_message = messages[0]['content'] %}{%- else %}"
    "{%- set system_message = messages[0]['content'][0]['text'] %}{%- endif %}"
    "{%- set loop_messages = messages[1:] %}{%- else %}{%- set system_message = default_system_message %}"
    "{%- set loop_messages = messages %}{%- endif %}"
    "{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}"
    "{%- for message in loop_messages %}{%- if message['role'] == 'user' %}"
    "{%- if message['content'] is string %}{{- '[INST]' + message['content'] + '[/INST]' }}"
    "{%- else %}{{- '[INST]' }}{%- for block in message['content'] %}"
    "{%- if block['type'] == 'text' %}{{- block['text'] }}"
    "{%- elif block['type'] in ['image', 'image_url'] %}{{- '[IMG]' }}"
    "{%- else %}{{- raise_exception('Only text and image blocks are supported in message content!') }}"
    "{%- endif %}{%- endfor %}{{- '[/INST]' }}{%- endif %}"
    "{%- elif message['role'] == 'system' %}"
    "{{- '[SYSTEM_PROMPT]' + (message['content'] if message['content'] is string else message['content'][0]['text']) + '[/SYSTEM_PROMPT]' }}"
    "{%- elif message['role'] == 'assistant' %}"
    "{{- (message['content'] if message['content'] is string else message['content'][0]['text']) + eos_token }}"
    "{%- else %}{{- raise_exception('Only user, system and assistant roles are supported!') }}{%- endif %}{%- endfor %}"
)


@dataclass(frozen=True)
class TinyTokens:
    """The special tokens of a family's tokenizer and how it frames a sequence."""

    specials: tuple[str, ...]  # added as special tokens, in this order, ids from 0
    bos: str | None
    eos: str
    pad: str
    unk: str | None = None
    adds_bos: bool = False  # the tokenizer's post-processor prepends BOS (Llama, Mistral, Gemma)
    extra: dict[str, str] = field(default_factory=dict)  # named extra special tokens (image_token, ...)
    normal: tuple[str, ...] = ()  # added as normal (non-special) tokens


def _tokenizer(tokens: TinyTokens, chat_template: str | None, vocab_size: int = 400):
    """A byte-level BPE trained on a small corpus, wrapped with the family's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size + len(tokens.specials), special_tokens=list(tokens.specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    bpe.train_from_iterator(list(_CORPUS), trainer)
    if tokens.adds_bos and tokens.bos:
        bos_id = bpe.token_to_id(tokens.bos)
        bpe.post_processor = processors.TemplateProcessing(
            single=f"{tokens.bos} $A", pair=f"{tokens.bos} $A $B", special_tokens=[(tokens.bos, bos_id)]
        )
    kwargs: dict[str, Any] = {"eos_token": tokens.eos, "pad_token": tokens.pad}
    if tokens.bos:
        kwargs["bos_token"] = tokens.bos
    if tokens.unk:
        kwargs["unk_token"] = tokens.unk
    if tokens.extra:
        kwargs["extra_special_tokens"] = dict(tokens.extra)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, padding_side="left", **kwargs)
    if tokens.normal:
        tokenizer.add_tokens(list(tokens.normal))
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def _ids(tokenizer, *names: str) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(n) for n in names]


def _llama(tokenizer, **extra) -> dict[str, Any]:
    return dict(
        vocab_size=len(tokenizer), hidden_size=TEXT_HIDDEN, intermediate_size=2 * TEXT_HIDDEN, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        **extra,
    )


def _clip(**extra) -> dict[str, Any]:
    return dict(
        hidden_size=VISION_HIDDEN, intermediate_size=2 * VISION_HIDDEN, num_hidden_layers=2, num_attention_heads=2,
        image_size=IMAGE, patch_size=PATCH, **extra,
    )


# -- per family: (tokens, chat template, build(tokenizer) -> (config, processor)) ---------------------------------


def _qwen_tokens() -> TinyTokens:
    return TinyTokens(_QWEN_SPECIALS, None, "<|im_end|>", "<|endoftext|>", extra={
        "image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
        "vision_start_token": "<|vision_start|>", "vision_end_token": "<|vision_end|>",
    })


def _qwen_ip(patch: int, factor: int):
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    return Qwen2VLImageProcessor(
        patch_size=patch, merge_size=2, temporal_patch_size=2,
        size={"shortest_edge": factor * factor, "longest_edge": 4 * factor * factor},
    )


def _build_qwen2_vl(tokenizer, version: str):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLProcessor, Qwen2VLConfig, Qwen2VLProcessor

    image, video, vstart, vend = _ids(tokenizer, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    text = _llama(tokenizer, rope_parameters={"rope_type": "mrope", "mrope_section": [2, 3, 3], "rope_theta": 10000.0})
    text["bos_token_id"] = None
    patch = 14
    if version == "2":
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

        vision = dict(depth=2, embed_dim=VISION_HIDDEN, hidden_size=TEXT_HIDDEN, num_heads=2, patch_size=patch)
        config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=image, video_token_id=video,
                               vision_start_token_id=vstart, vision_end_token_id=vend)
        processor = Qwen2VLProcessor(image_processor=_qwen_ip(patch, 28), tokenizer=tokenizer,
                                     video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN2_VL_TEMPLATE)
    else:
        from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

        vision = dict(depth=2, hidden_size=VISION_HIDDEN, intermediate_size=2 * VISION_HIDDEN, num_heads=2,
                      out_hidden_size=TEXT_HIDDEN, patch_size=patch, window_size=56, fullatt_block_indexes=[1])
        config = Qwen2_5_VLConfig(text_config=text, vision_config=vision, image_token_id=image, video_token_id=video,
                                  vision_start_token_id=vstart, vision_end_token_id=vend)
        processor = Qwen2_5_VLProcessor(image_processor=_qwen_ip(patch, 28), tokenizer=tokenizer,
                                        video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN2_VL_TEMPLATE)
    return config, processor


def _build_qwen3_vl(tokenizer):
    from transformers import Qwen3VLConfig, Qwen3VLProcessor
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor

    image, video, vstart, vend = _ids(tokenizer, "<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")
    text = _llama(tokenizer, head_dim=16, rope_parameters={
        "rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True, "rope_theta": 10000.0,
    })
    text["bos_token_id"] = None
    patch = 16
    vision = dict(depth=2, hidden_size=VISION_HIDDEN, intermediate_size=2 * VISION_HIDDEN, num_heads=2,
                  out_hidden_size=TEXT_HIDDEN, patch_size=patch, num_position_embeddings=16, deepstack_visual_indexes=[1])
    config = Qwen3VLConfig(text_config=text, vision_config=vision, image_token_id=image, video_token_id=video,
                           vision_start_token_id=vstart, vision_end_token_id=vend)
    processor = Qwen3VLProcessor(image_processor=_qwen_ip(patch, 32), tokenizer=tokenizer,
                                 video_processor=Qwen3VLVideoProcessor(patch_size=patch), chat_template=QWEN3_VL_TEMPLATE)
    return config, processor


def _clip_image_processor(**kw):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE}, **kw)


def _build_llava(tokenizer):
    from transformers import LlavaConfig, LlavaProcessor

    config = LlavaConfig(vision_config={"model_type": "clip_vision_model", **_clip(projection_dim=32)},
                         text_config={"model_type": "llama", **_llama(tokenizer)},
                         image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         image_seq_length=(IMAGE // PATCH) ** 2, vision_feature_select_strategy="default",
                         vision_feature_layer=-1)
    processor = LlavaProcessor(image_processor=_clip_image_processor(), tokenizer=tokenizer, patch_size=PATCH,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA_TEMPLATE)
    return config, processor


_PINPOINTS: Final[list[list[int]]] = [[IMAGE, IMAGE], [IMAGE, 2 * IMAGE], [2 * IMAGE, IMAGE]]


def _build_llava_next(tokenizer):
    from transformers import LlavaNextConfig, LlavaNextImageProcessor, LlavaNextProcessor

    config = LlavaNextConfig(vision_config={"model_type": "clip_vision_model", **_clip(projection_dim=32)},
                             text_config={"model_type": "llama", **_llama(tokenizer)},
                             image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                             image_grid_pinpoints=_PINPOINTS, vision_feature_select_strategy="default",
                             vision_feature_layer=-1)
    image_processor = LlavaNextImageProcessor(size={"shortest_edge": IMAGE}, crop_size={"height": IMAGE, "width": IMAGE},
                                              image_grid_pinpoints=_PINPOINTS)
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=LLAVA_TEMPLATE)
    return config, processor


def _build_llava_onevision(tokenizer):
    from transformers import LlavaOnevisionConfig, LlavaOnevisionImageProcessor, LlavaOnevisionProcessor
    from transformers.models.llava_onevision.video_processing_llava_onevision import LlavaOnevisionVideoProcessor

    text = _llama(tokenizer)
    text["bos_token_id"] = None
    config = LlavaOnevisionConfig(vision_config={"model_type": "siglip_vision_model", **_clip()},
                                  text_config={"model_type": "qwen2", **text},
                                  image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                                  video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
                                  image_grid_pinpoints=_PINPOINTS, vision_feature_select_strategy="full",
                                  vision_feature_layer=-1, vision_aspect_ratio="anyres_max_9")
    image_processor = LlavaOnevisionImageProcessor(size={"height": IMAGE, "width": IMAGE}, image_grid_pinpoints=_PINPOINTS)
    video_processor = LlavaOnevisionVideoProcessor(size={"height": IMAGE, "width": IMAGE})
    processor = LlavaOnevisionProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                        video_processor=video_processor, num_image_tokens=(IMAGE // PATCH) ** 2,
                                        vision_feature_select_strategy="full", chat_template=LLAVA_ONEVISION_TEMPLATE)
    return config, processor


def _build_smolvlm(tokenizer):
    from transformers import SmolVLMConfig, SmolVLMImageProcessor, SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    scale = 2
    text = _llama(tokenizer)
    config = SmolVLMConfig(vision_config={**_clip()}, text_config={"model_type": "llama", **text},
                           image_token_id=tokenizer.convert_tokens_to_ids("<image>"), scale_factor=scale)
    image_processor = SmolVLMImageProcessor(do_image_splitting=False, size={"longest_edge": IMAGE},
                                            max_image_size={"longest_edge": IMAGE})
    video_processor = SmolVLMVideoProcessor(size={"longest_edge": IMAGE}, max_image_size={"longest_edge": IMAGE})
    processor = SmolVLMProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                 image_seq_len=(IMAGE // PATCH) ** 2 // scale**2, chat_template=SMOLVLM_TEMPLATE)
    return config, processor


def _build_internvl(tokenizer):
    from transformers import GotOcr2ImageProcessor, InternVLConfig, InternVLProcessor
    from transformers.models.internvl.video_processing_internvl import InternVLVideoProcessor

    text = _llama(tokenizer)
    text["bos_token_id"] = None
    vision = dict(hidden_size=VISION_HIDDEN, intermediate_size=2 * VISION_HIDDEN, num_hidden_layers=2,
                  num_attention_heads=2, image_size=[IMAGE, IMAGE], patch_size=[PATCH, PATCH])
    config = InternVLConfig(vision_config=vision, text_config={"model_type": "qwen2", **text},
                            image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"), downsample_ratio=0.5,
                            projector_hidden_act="gelu")
    image_processor = GotOcr2ImageProcessor(size={"height": IMAGE, "width": IMAGE}, crop_to_patches=False,
                                            image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    video_processor = InternVLVideoProcessor(size={"height": IMAGE, "width": IMAGE})
    processor = InternVLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                  image_seq_length=(IMAGE // PATCH) ** 2 // 4, chat_template=INTERNVL_TEMPLATE)
    return config, processor


def _build_mistral3(tokenizer):
    from transformers import Mistral3Config, PixtralImageProcessor, PixtralProcessor

    vision = dict(hidden_size=VISION_HIDDEN, intermediate_size=2 * VISION_HIDDEN, num_hidden_layers=2,
                  num_attention_heads=2, head_dim=16, image_size=IMAGE, patch_size=PATCH)
    config = Mistral3Config(vision_config={"model_type": "pixtral", **vision},
                            text_config={"model_type": "mistral", **_llama(tokenizer, head_dim=16)},
                            image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"), spatial_merge_size=2,
                            vision_feature_layer=-1)
    image_processor = PixtralImageProcessor(size={"longest_edge": IMAGE}, patch_size=PATCH)
    processor = PixtralProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=PATCH,
                                 spatial_merge_size=2, chat_template=MISTRAL3_TEMPLATE)
    return config, processor


def _build_gemma3(tokenizer):
    from transformers import Gemma3Config, Gemma3ImageProcessor, Gemma3Processor

    text = _llama(tokenizer, head_dim=16, sliding_window=64, query_pre_attn_scalar=16)
    tokens_per_image = 4
    config = Gemma3Config(text_config=text, vision_config={"model_type": "siglip_vision_model", **_clip()},
                          mm_tokens_per_image=tokens_per_image,
                          boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
                          eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
                          image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"))
    image_processor = Gemma3ImageProcessor(size={"height": IMAGE, "width": IMAGE})
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                image_seq_length=tokens_per_image, chat_template=GEMMA3_TEMPLATE)
    return config, processor


def _build_paligemma(tokenizer):
    from transformers import PaliGemmaConfig, PaliGemmaProcessor, SiglipImageProcessor

    image_processor = SiglipImageProcessor(size={"height": IMAGE, "width": IMAGE})
    image_processor.image_seq_length = (IMAGE // PATCH) ** 2
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer)  # adds <image>, <loc>, <seg>
    text = _llama(tokenizer, head_dim=16)
    text["vocab_size"] = len(processor.tokenizer)
    config = PaliGemmaConfig(vision_config={"model_type": "siglip_vision_model", **_clip(projection_dim=TEXT_HIDDEN)},
                             text_config={"model_type": "gemma", **text}, projection_dim=TEXT_HIDDEN,
                             image_token_index=processor.tokenizer.convert_tokens_to_ids("<image>"))
    config.vision_config.projection_dim = TEXT_HIDDEN
    return config, processor


_LLAMA_SPECIALS: Final[tuple[str, ...]] = ("<unk>", "<s>", "</s>", "<pad>", "<image>")
_GEMMA_SPECIALS: Final[tuple[str, ...]] = ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>")


@dataclass(frozen=True)
class TinyFamily:
    """One buildable family: its tokenizer's tokens, its chat template, and its config + processor builder."""

    name: str
    model_type: str
    tokens: TinyTokens
    chat_template: str | None
    build: Callable[[Any], tuple[Any, Any]]
    source: str


TINY_FAMILIES: Final[dict[str, TinyFamily]] = {
    f.name: f
    for f in (
        TinyFamily("qwen2_vl", "qwen2_vl", _qwen_tokens(), QWEN2_VL_TEMPLATE, lambda t: _build_qwen2_vl(t, "2"),
                   "Qwen/Qwen2-VL-7B-Instruct chat_template.json and tokenizer special tokens"),
        TinyFamily("qwen2_5_vl", "qwen2_5_vl", _qwen_tokens(), QWEN2_VL_TEMPLATE, lambda t: _build_qwen2_vl(t, "2.5"),
                   "Qwen/Qwen2.5-VL-7B-Instruct (same template and special tokens as Qwen2-VL)"),
        TinyFamily("qwen3_vl", "qwen3_vl", _qwen_tokens(), QWEN3_VL_TEMPLATE, _build_qwen3_vl,
                   "Qwen/Qwen3-VL-*-Instruct chat_template.json (tools/thinking branches left out)"),
        TinyFamily("llava", "llava", TinyTokens(_LLAMA_SPECIALS, "<s>", "</s>", "<pad>", "<unk>", adds_bos=True,
                                                extra={"image_token": "<image>"}),
                   LLAVA_TEMPLATE, _build_llava, "llava-hf/llava-1.5-7b-hf (transformers test_processing_llava.py)"),
        TinyFamily("llava_next", "llava_next", TinyTokens(_LLAMA_SPECIALS, "<s>", "</s>", "<pad>", "<unk>", adds_bos=True,
                                                          extra={"image_token": "<image>"}),
                   LLAVA_TEMPLATE, _build_llava_next, "transformers test_processing_llava_next.py (llava-1.5 template)"),
        TinyFamily("llava_onevision", "llava_onevision",
                   TinyTokens(("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"), None, "<|im_end|>",
                              "<|endoftext|>", extra={"image_token": "<image>", "video_token": "<video>"}),
                   LLAVA_ONEVISION_TEMPLATE, _build_llava_onevision,
                   "llava-hf/llava-onevision-qwen2-0.5b-ov-hf (transformers test_processing_llava_onevision.py)"),
        TinyFamily("smolvlm", "smolvlm",
                   TinyTokens(("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<end_of_utterance>",
                               "<fake_token_around_image>", "<global-img>", "<image>", "<video>"),
                              "<|im_start|>", "<end_of_utterance>", "<|im_end|>", "<|endoftext|>",
                              extra={"image_token": "<image>", "fake_image_token": "<fake_token_around_image>",
                                     "global_image_token": "<global-img>", "end_of_utterance_token": "<end_of_utterance>",
                                     "video_token": "<video>"}),
                   SMOLVLM_TEMPLATE, _build_smolvlm, "HuggingFaceTB/SmolVLM-Instruct (transformers test_processing_smolvlm.py)"),
        TinyFamily("internvl", "internvl",
                   TinyTokens(("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>",
                               "<video>", "<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>"),
                              None, "<|im_end|>", "<|endoftext|>",
                              extra={"start_image_token": "<img>", "end_image_token": "</img>",
                                     "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"}),
                   INTERNVL_TEMPLATE, _build_internvl, "OpenGVLab/InternVL3-1B-hf (transformers convert_internvl_weights_to_hf.py)"),
        TinyFamily("mistral3", "mistral3",
                   TinyTokens(("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]",
                               "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]", "<pad>"),
                              "<s>", "</s>", "<pad>", "<unk>", adds_bos=True),
                   MISTRAL3_TEMPLATE, _build_mistral3, "mistralai/Mistral-Small-3.1-24B-Instruct-2503 chat template"),
        TinyFamily("gemma3", "gemma3",
                   TinyTokens(_GEMMA_SPECIALS + ("<start_of_image>", "<end_of_image>", "<image_soft_token>"),
                              "<bos>", "<eos>", "<pad>", "<unk>", adds_bos=True,
                              extra={"image_token": "<image_soft_token>", "boi_token": "<start_of_image>",
                                     "eoi_token": "<end_of_image>"}),
                   GEMMA3_TEMPLATE, _build_gemma3, "google/gemma-3-4b-it tokenizer_config.json (transformers test_processing_gemma3.py)"),
        TinyFamily("paligemma", "paligemma", TinyTokens(_GEMMA_SPECIALS[:4], "<bos>", "<eos>", "<pad>", "<unk>", adds_bos=True),
                   None, _build_paligemma, "google/paligemma-3b-pt-224: no chat template; transformers PaliGemmaProcessor"),
    )
}


def tiny_family_names() -> tuple[str, ...]:
    """The families :func:`build_tiny_family` can build."""
    return tuple(TINY_FAMILIES)


def build_tiny_family(name: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Write the tiny build of family ``name`` (model, processor, tokenizer, chat template) to ``out_dir``.

    Same ``name`` and ``seed`` -> the same weights. The generation config's eos is the token the
    family's instruct checkpoints end a turn with (``<|im_end|>``, ``<end_of_turn>``,
    ``<end_of_utterance>``, ``</s>``). Raises :class:`ModelError` for an unknown name or a
    transformers without the family's classes (one line naming what is missing).
    """
    import torch

    try:
        family = TINY_FAMILIES[name]
    except KeyError:
        raise ModelError(f"no tiny build for family {name!r}; available: {', '.join(TINY_FAMILIES)}") from None
    from transformers import AutoModelForImageTextToText

    tokenizer = _tokenizer(family.tokens, family.chat_template)
    try:
        config, processor = family.build(tokenizer)
    except ImportError as exc:
        raise ModelError(f"cannot build the tiny {name} model: {exc}".splitlines()[0]) from exc
    tokenizer = processor.tokenizer
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForImageTextToText.from_config(config)
    gen = model.generation_config
    turn_end = {"gemma3": "<end_of_turn>"}.get(name)
    eos = [tokenizer.convert_tokens_to_ids(turn_end)] if turn_end else []
    eos += [tokenizer.eos_token_id]
    gen.eos_token_id = eos if len(eos) > 1 else eos[0]
    gen.bos_token_id = tokenizer.bos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    marker = {"format_version": _FORMAT_VERSION, "family": name, "seed": seed, "source": family.source}
    return save_model_folder(model, processor, Path(out_dir), {TINY_FAMILY_MARKER: json.dumps(marker, indent=2) + "\n"})
