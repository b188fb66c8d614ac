import pytest

from stages.vlm.engines import BACKENDS, make_sampler
from stages.sample.config import Backend, SampleConfig
from stages.vlm.requests import Sampler


def test_registry_covers_every_backend():
    assert set(BACKENDS) == set(Backend)


@pytest.mark.parametrize("backend", list(Backend))
def test_make_sampler(backend, tiny_model_dir):
    config = SampleConfig(backend=backend, model=str(tiny_model_dir))
    if backend == Backend.VLLM:
        try:
            import vllm
        except ImportError:
            with pytest.raises(ImportError, match="perpo-pipeline\\[vllm\\]"):
                make_sampler(config)
            return
        pytest.skip("vllm is installed: covered by the GPU test")
    sampler = make_sampler(config)
    assert isinstance(sampler, Sampler) and sampler.backend == backend.value
