"""load_vlm: a package a family needs but this environment lacks is one line naming it."""

from __future__ import annotations

import importlib.util

import pytest

from stages.lib.errors import ModelError
from stages.vlm.engine_config import EngineConfig
from stages.vlm.load import load_vlm, missing_package_hint


@pytest.mark.parametrize(
    "exc, package",
    [
        (ModuleNotFoundError("No module named 'torchvision'", name="torchvision"), "torchvision"),
        (ImportError("Package `num2words` is required to run SmolVLM processor. Install it with `pip install num2words`."), "num2words"),
        (ImportError("Qwen2VLVideoProcessor requires the Torchvision library but it was not found in your environment."), "torchvision"),
    ],
)
def test_missing_package_hint_names_the_package_and_command(exc, package):
    assert missing_package_hint(exc).startswith(f"the Python package {package!r} is missing; install it with `pip install {package}`")


@pytest.mark.parametrize("raised", [ImportError("No module named 'torchvision'"), AttributeError("'VIDEO_PROCESSOR_MAPPING' has no attribute")])
def test_a_processor_that_needs_torchvision_is_a_one_line_model_error(raised, tiny_model_dir, monkeypatch):
    import transformers

    def refuse(*args, **kwargs):
        raise raised

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "torchvision" else real_find_spec(n, *a))
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", refuse)
    with pytest.raises(ModelError, match=r"^\[sample\] cannot load image-text model .*'torchvision' is missing; install it with `pip install torchvision`") as info:
        load_vlm(EngineConfig(model=str(tiny_model_dir), device="cpu"), "sample")
    assert "\n" not in str(info.value)
