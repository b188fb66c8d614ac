"""Load a VLM with transformers: the one loader every stage uses, with errors that name the stage.

``load_vlm(engine, stage)`` takes a stage's :class:`~stages.vlm.engine_config.EngineConfig`; the
device, dtype and model-source checks are reusable on their own (the vLLM engine checks its model
source the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stages.lib.errors import ConfigError, ModelError, first_line
from stages.vlm.engine_config import EngineConfig

__all__ = ["load_vlm", "load_shared_vlm", "check_model_source", "resolve_device", "resolve_dtype"]

_DTYPES = ("auto", "float32", "bfloat16", "float16")


def resolve_device(device: str, stage: str = "sample") -> str:
    """Return ``"cuda"`` or ``"cpu"`` for ``"auto" | "cpu" | "cuda"``; ``"cuda"`` without a GPU is a :class:`ConfigError`."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"[{stage}] engine.device = 'cuda' but no CUDA GPU is visible; set device = 'cpu' or 'auto'")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"[{stage}] engine.device = {device!r} is not one of 'auto', 'cpu', 'cuda'")
    return device


def resolve_dtype(dtype: str, device: str, stage: str = "sample"):
    """Return the torch dtype for ``dtype``; ``"auto"`` is bfloat16 on GPU and float32 on CPU."""
    import torch

    if dtype not in _DTYPES:
        raise ConfigError(f"[{stage}] engine.dtype = {dtype!r} is not one of {', '.join(_DTYPES)}")
    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, dtype)


def check_model_source(name: str, stage: str = "sample") -> None:
    """Raise :class:`ModelError` for a path that does not exist and cannot be a Hub id, or a folder without config.json."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"[{stage}] model folder {str(path)!r} has no config.json; it is not a saved transformers model")
        return
    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelError(
            f"[{stage}] model path {name!r} does not exist; build the offline test model with "
            f"`perpo-pipeline make-tiny-model --out {name}` or set [{stage}] engine.model to a Hub model id"
        ) from None


def missing_package_hint(exc: ImportError) -> str:
    """One line naming the missing package and its install command (transformers' own messages are long)."""
    import re

    package = getattr(exc, "name", None)
    words = set(re.findall(r"[a-z0-9_]+", str(exc).lower()))
    for known in ("torchvision", "num2words", "timm", "einops", "av", "vllm"):
        if package == known or known in words:
            package = known
            break
    if package:
        return f"the Python package {package!r} is missing; install it with `pip install {package}` (or `pip install -e .` for this project's pins)"
    return first_line(exc)


def load_vlm(engine: EngineConfig, stage: str) -> tuple[Any, Any]:
    """Load ``(model, processor)`` of ``engine.model`` (a folder or Hub id) with transformers, in eval mode on
    ``engine.device`` in ``engine.dtype``.

    Every stage loads its model here, so every stage fails the same way on a bad model, and the
    error names the stage: a :class:`ModelError` ``"[<stage>] ..."`` with one line when the path does
    not exist, cannot be loaded, or is not an image-text model (e.g. a text-only causal LM); a
    :class:`ConfigError` for a device or dtype that cannot be had.
    """
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    name = str(engine.model)
    if not name:
        raise ConfigError(f"[{stage}] engine.model is empty; set it (or [sample] engine.model, which \"\" stands for)")
    check_model_source(name, stage)
    device = resolve_device(engine.device, stage)
    torch_dtype = resolve_dtype(engine.dtype, device, stage)
    try:
        config = AutoConfig.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise ModelError(f"[{stage}] cannot load model config from {name!r}: {first_line(exc)}") from exc
    if config.model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise ModelError(
            f"[{stage}] {name!r} is not an image-text model (model_type {config.model_type!r}); "
            f"engine.model must be a vision-language model loadable with AutoModelForImageTextToText"
        )
    try:
        processor = AutoProcessor.from_pretrained(name)
        model = AutoModelForImageTextToText.from_pretrained(name, dtype=torch_dtype)
    except ImportError as exc:  # an optional package the family's processor or model needs (torchvision, num2words)
        raise ModelError(f"[{stage}] cannot load image-text model {name!r}: {missing_package_hint(exc)}") from exc
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"[{stage}] cannot load image-text model {name!r}: {first_line(exc)}") from exc
    except Exception as exc:
        # Without torchvision some video processors fail inside transformers' auto classes with an
        # AttributeError rather than an ImportError (LLaVA-OneVision on transformers 5.23).
        import importlib.util

        if importlib.util.find_spec("torchvision") is None:
            hint = missing_package_hint(ModuleNotFoundError("No module named 'torchvision'", name="torchvision"))
            raise ModelError(f"[{stage}] cannot load image-text model {name!r}: {hint}") from exc
        raise
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ModelError(f"[{stage}] {name!r} has no image processor; engine.model must be a vision-language model")
    model.to(device).eval()
    return model, processor


def load_shared_vlm(engine: EngineConfig, stage: str) -> tuple[Any, Any]:
    """:func:`load_vlm`, through the process's one shared engine (:mod:`stages.vlm.shared`): a stage asking for
    the model the previous stage loaded with the same settings gets the same ``(model, processor)``.
    For inference only: the caller must not change the model's weights."""
    from stages.vlm.shared import engine_identity, shared

    return shared(engine_identity(engine), lambda: load_vlm(engine, stage))
