import pytest

from stages.vlm.engines import BACKENDS, make_sampler
from stages.vlm.engine_config import Backend, EngineConfig
from stages.vlm.requests import Sampler


def test_registry_covers_every_backend():
    assert set(BACKENDS) == set(Backend)


@pytest.mark.parametrize("backend", list(Backend))
def test_make_sampler(backend, tiny_model_dir):
    config = EngineConfig(backend=backend, model=str(tiny_model_dir))
    if backend == Backend.VLLM:
        try:
            import vllm
        except ImportError:
            with pytest.raises(ImportError, match="perpo-pipeline\\[vllm\\]"):
                make_sampler(config, "sample")
            return
        pytest.skip("vllm is installed: covered by the GPU test")
    sampler = make_sampler(config, "sample")
    assert isinstance(sampler, Sampler) and sampler.backend == backend.value
