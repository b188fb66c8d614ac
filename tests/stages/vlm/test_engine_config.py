"""EngineConfig: nested in every model stage, the old flat keys migrated (one warning), resource fields out of fingerprints."""

import logging

import pytest

from pipeline.config import load_config, section_for_fingerprint
from stages.eval.config import EvalConfig
from stages.perturb.config import PerturbConfig
from stages.reference.config import ReferenceConfig
from stages.sample.config import DEFAULT_MODEL, SampleConfig
from stages.vlm.engine_config import ENGINE_RESOURCE_FIELDS, EngineConfig

GENERIC = ['sample.family="generic"']  # no config.json lookup for a made-up model id


@pytest.mark.parametrize("cls", [SampleConfig, PerturbConfig, ReferenceConfig, EvalConfig])
def test_every_model_stage_holds_an_engine(cls):
    assert isinstance(cls().engine, EngineConfig)


def test_stage_defaults_differ_where_they_did():
    assert SampleConfig().engine.model == DEFAULT_MODEL and ReferenceConfig().engine.model == ""
    assert ReferenceConfig().engine.batch_size == 16 and SampleConfig().engine.batch_size == 8


def test_flat_keys_move_into_engine_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="stages.vlm.engine_config"):
        flat = load_config(None, [*GENERIC, 'sample.model="org/vlm"', "sample.batch_size=2", 'reference.backend="hf"'])
    nested = load_config(None, [*GENERIC, 'sample.engine.model="org/vlm"', "sample.engine.batch_size=2",
                                'reference.engine.backend="hf"'])
    assert flat.model_dump() == nested.model_dump()
    warnings = [r.getMessage() for r in caplog.records]
    sample = [w for w in warnings if w.startswith("[sample]")]
    assert len(sample) == 1 and "sample.engine.model" in sample[0] and "sample.engine.batch_size" in sample[0]
    assert any(w.startswith("[reference]") and "reference.engine.backend" in w for w in warnings)


def test_flat_keys_keep_the_stage_defaults_and_nested_values_win():
    cfg = ReferenceConfig.model_validate({"model": "m", "engine": {"device": "cpu"}})
    assert cfg.engine.model == "m" and cfg.engine.device == "cpu" and cfg.engine.batch_size == 16
    assert ReferenceConfig.model_validate({"model": "flat", "engine": {"model": "nested"}}).engine.model == "nested"


def test_empty_model_is_the_sample_model_in_every_stage():
    cfg = load_config(None, [*GENERIC, 'sample.engine.model="org/vlm"'])
    assert cfg.perturb.engine.model == cfg.reference.engine.model == cfg.eval.engine.model == cfg.train.model == "org/vlm"
    cfg = load_config(None, [*GENERIC, 'sample.model="org/vlm"', 'reference.engine.model="other/vlm"'])
    assert cfg.reference.engine.model == "other/vlm" and cfg.perturb.engine.model == "org/vlm"


def test_unknown_engine_key_names_the_section():
    from stages.lib.errors import ConfigError

    with pytest.raises(ConfigError, match=r"\[reference\] engine.modle: unknown key"):
        load_config(None, ["reference.engine.modle=1"])


@pytest.mark.parametrize("field", sorted(ENGINE_RESOURCE_FIELDS))
def test_resource_fields_stay_out_of_fingerprints(field):
    base = ReferenceConfig(engine={"model": "org/vlm"})
    value = {"batch_size": 3, "num_actors": 4, "num_gpus": 1.0, "num_cpus": 2.0, "gpu_memory_utilization": 0.5}[field]
    changed = ReferenceConfig(engine={"model": "org/vlm", field: value})
    assert section_for_fingerprint(base) == section_for_fingerprint(changed)


def test_engine_fields_that_change_outputs_enter_fingerprints_flat():
    base = section_for_fingerprint(SampleConfig(engine={"model": "org/vlm"}))
    assert "engine" not in base and base["backend"] == "hf" and "batch_size" not in base
    assert base != section_for_fingerprint(SampleConfig(engine={"model": "org/vlm", "dtype": "bfloat16"}))
    assert base["model"] != section_for_fingerprint(SampleConfig(engine={"model": "org/other"}))["model"]
