import pytest
from pydantic import ValidationError

from stages.sample.config import DEFAULT_MODEL, SampleConfig, SamplingSettings
from stages.vlm.engine_config import Backend


def test_defaults_point_to_the_tiny_model_on_hf():
    config = SampleConfig()
    assert config.engine.backend == Backend.HF and config.engine.model == DEFAULT_MODEL
    assert config.settings() == SamplingSettings(n=4, temperature=1.0, top_p=1.0, max_tokens=64, seed=0)


def test_every_field_has_a_description():
    assert all(f.description for name, f in SampleConfig.model_fields.items() if name != "enabled")


def test_unknown_key_is_rejected():
    with pytest.raises(ValidationError, match="extra"):
        SampleConfig(nn=3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": {"backend": "vllm", "device": "cpu"}}, "backend = 'vllm' needs a GPU but device = 'cpu'"),
        ({"engine": {"backend": "vllm", "num_gpus": 1, "tensor_parallel_size": 2}}, "num_gpus = 1.0 per actor is less than tensor_parallel_size = 2"),
        ({"engine": {"backend": "tgi"}}, "'hf' or 'vllm'"),
        ({"top_p": 0.0}, "greater than 0"),
        ({"n": 0}, "greater than or equal to 1"),
    ],
)
def test_invalid_values_name_the_field(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        SampleConfig(**kwargs)
