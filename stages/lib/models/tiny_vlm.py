"""A tiny LLaVA-style VLM built offline: random weights, a locally trained tokenizer, no download.

It exists so the whole pipeline (sampling, scoring, reference log-probs, training) runs on a laptop
CPU and in tests, through exactly the code path a Hub model takes:
``AutoModelForImageTextToText.from_pretrained(dir)`` and ``AutoProcessor.from_pretrained(dir)``.

Architecture (about 0.5M parameters): a CLIP vision tower (2 layers x 64 wide, 64x64 images,
patch 8 -> 64 image tokens) feeding a Llama decoder (2 layers x 128 wide) through LLaVA's
projector. Its answers are random text; what matters is that every API behaves like a real VLM's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from stages.lib.errors import ModelError
from stages.lib.models.folder import save_model_folder

__all__ = [
    "TINY_MODEL_MARKER",
    "IMAGE_SIZE",
    "PATCH_SIZE",
    "CHAT_TEMPLATE",
    "TinySpec",
    "DEMO_POLICY_SPEC",
    "build_tiny_vlm",
    "is_tiny_model_dir",
]

TINY_MODEL_MARKER: Final[str] = "perpo_tiny_vlm.json"
IMAGE_SIZE: Final[int] = 64
PATCH_SIZE: Final[int] = 8
_FORMAT_VERSION: Final[int] = 1

# Special tokens: pad, bos, eos, the image placeholder and the two role markers of the chat template.
_PAD, _BOS, _EOS, _IMAGE = "<pad>", "<s>", "</s>", "<image>"
_SPECIAL_TOKENS: Final[tuple[str, ...]] = (_PAD, _BOS, _EOS, _IMAGE, "<|system|>", "<|user|>", "<|assistant|>")

# One turn per message: "<|role|>\n" + content + "</s>\n"; list content renders images as "<image>\n".
# The assistant turn ends with eos, so a rendered prompt + response is a prefix-consistent extension
# of the prompt rendered with add_generation_prompt (what TRL's DPOTrainer relies on).
CHAT_TEMPLATE: Final[str] = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '</s>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# What the byte-level BPE learns its merges from: digits, box syntax, colours, shapes, task words.
_TOKENIZER_CORPUS: Final[tuple[str, ...]] = (
    "0 1 2 3 4 5 6 7 8 9 10 12 16 20 24 25 32 48 50 64 75 100 128 200 256 500 1000",
    "[12, 34, 56, 78] [0.1, 0.25, 0.5, 0.75] (x1,y1),(x2,y2) <box>(10,20),(30,40)</box> { } ( ) [ ]",
    "red green blue yellow orange purple black white gray grey pink brown cyan magenta",
    "circle square triangle rectangle star ellipse shape object box line text word letter",
    "Locate the red circle and answer with its bounding box as [x1, y1, x2, y2] in pixels.",
    "What colour is the square? Answer with a single word. What shape is shown? How many?",
    "Read the text in the image. The answer is A. B. C. D. yes no one two three four five",
    "Describe the image in one sentence. There is a small blue triangle on the left, a large one on the right.",
)


@dataclass(frozen=True)
class TinySpec:
    """The sizes of a tiny VLM. The default is the 0.5M-parameter test model every test uses.

    ``number_tokens``: teach the tokenizer every integer up to this as one token (with and without a
    leading space), so a pixel coordinate is always one token; 0 keeps the original tokenizer.
    ``squash_images``: resize images to the square input instead of resizing the short side and
    cropping the centre (which cuts the ends off a wide OCR image).
    """

    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 128
    text_layers: int = 2
    vocab_size: int = 512
    number_tokens: int = 0
    squash_images: bool = False


# The warm-started demo policy (stages/lib/models/warm_start.py): one token per pixel coordinate of
# the 96x96 demo images and whole OCR images; same widths, so it stays as fast as the test model.
DEMO_POLICY_SPEC: Final[TinySpec] = TinySpec(vocab_size=1024, number_tokens=128, squash_images=True)


def _build_tokenizer(spec: TinySpec = TinySpec()):
    """Train a byte-level BPE on the corpus above and wrap it as a fast tokenizer with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=list(_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = list(_TOKENIZER_CORPUS)
    if spec.number_tokens:
        # each number many times, alone and after a space, so BPE merges it into one token either way
        numbers = [str(i) for i in range(spec.number_tokens + 1)]
        corpus += [" ".join(numbers)] * 4 + [",".join(numbers)] * 4 + [f"[{n}, " for n in numbers] * 4
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=_BOS,
        eos_token=_EOS,
        pad_token=_PAD,
        extra_special_tokens={"image_token": _IMAGE},
        padding_side="left",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def _build_model(tokenizer, seed: int, spec: TinySpec = TinySpec()):
    """Return a randomly initialised LlavaForConditionalGeneration sized by ``spec``."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(
        hidden_size=spec.vision_hidden,
        intermediate_size=2 * spec.vision_hidden,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=64,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.text_hidden,
        intermediate_size=2 * spec.text_hidden,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(_IMAGE),
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_select_strategy="default",  # drops CLS: the processor adds it back (see below)
        vision_feature_layer=-1,
    )
    with torch.random.fork_rng(devices=[]):  # deterministic weights without touching the caller's RNG
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
    return model


def _build_processor(tokenizer, spec: TinySpec = TinySpec()):
    """Return a LlavaProcessor whose image-token count matches the model (64 tokens per image)."""
    from transformers import LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    if spec.squash_images:
        image_processor = CLIPImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_center_crop=False)
    else:
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
        )
    # With the "default" strategy the model drops the CLS feature; num_additional_image_tokens=1
    # counts it so the processor emits exactly (64/8)^2 = 64 <image> tokens per image.
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )


def is_tiny_model_dir(path: str | Path) -> bool:
    """Return True when ``path`` is a folder written by :func:`build_tiny_vlm` (marker and config present)."""
    p = Path(path)
    return (p / TINY_MODEL_MARKER).is_file() and (p / "config.json").is_file()


def build_tiny_vlm(out_dir: str | Path, seed: int = 0, spec: TinySpec = TinySpec()) -> Path:
    """Write the tiny VLM (model, processor, tokenizer, chat template) to ``out_dir`` and return it.

    Same ``seed`` and ``spec`` -> identical weights and tokenizer. The folder loads with
    ``AutoModelForImageTextToText.from_pretrained`` / ``AutoProcessor.from_pretrained``. An existing
    tiny-model folder is replaced; any other non-empty folder raises :class:`ModelError` (never
    overwritten). The files are written to a temporary sibling folder and moved into place, so an
    interrupted build leaves no half-written model behind.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ModelError(f"cannot build the tiny model at {out}: it is a file; choose a folder path")
    if out.is_dir() and any(out.iterdir()) and not is_tiny_model_dir(out):
        raise ModelError(
            f"cannot build the tiny model at {out}: the folder is not empty and is not a tiny model; "
            "choose an empty or new folder"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(spec)
    model = _build_model(tokenizer, seed, spec)
    processor = _build_processor(tokenizer, spec)
    marker = {"format_version": _FORMAT_VERSION, "seed": seed, "image_size": IMAGE_SIZE, "patch_size": PATCH_SIZE}
    if spec != TinySpec():
        marker["spec"] = asdict(spec)
    return save_model_folder(model, processor, out, {TINY_MODEL_MARKER: json.dumps(marker, indent=2) + "\n"})
