"""Config loading: typed sections, errors that name the file and key, --set overrides."""

from __future__ import annotations

import tomllib

import pytest

from pipeline import config as config_module
from pipeline.config import config_to_toml, load_config, parse_overrides
from pipeline.errors import ConfigError
from stages import registry
from tests.pipeline import fake_stages


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.setattr(registry, "stage_specs", lambda: fake_stages.SPECS)
    config_module.pipeline_config_cls.cache_clear()
    yield
    config_module.pipeline_config_cls.cache_clear()


def test_defaults_and_file_values(fake_registry, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[src]\nn_rows = 3\n[ray]\naddress = "auto"\n')
    cfg = load_config(path)
    assert cfg.src.n_rows == 3 and cfg.src.shard_size == 4
    assert cfg.ray.address == "auto" and cfg.run.max_retries == 2


def test_unknown_key_names_file_section_and_key(fake_registry, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[src]\nn_rowz = 3\n")
    with pytest.raises(ConfigError, match=r"p\.toml: \[src\] n_rowz: unknown key"):
        load_config(path)


def test_unknown_section(fake_registry, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[smaple]\nn = 3\n")
    with pytest.raises(ConfigError, match=r"\[smaple\]: unknown key"):
        load_config(path)


def test_wrong_type_shows_value(fake_registry, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[src]\nn_rows = "many"\n')
    with pytest.raises(ConfigError, match=r"\[src\] n_rows: .*integer.*\(got 'many'\)"):
        load_config(path)


def test_missing_file_and_bad_toml(fake_registry, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[src\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_overrides_parse_toml_values():
    assert parse_overrides(["a.b=3", "a.c=true", "a.d=[1, 2]", "x.y.z=hello"]) == {
        "a": {"b": 3, "c": True, "d": [1, 2]},
        "x": {"y": {"z": "hello"}},
    }
    with pytest.raises(ConfigError, match="expected section.key=value"):
        parse_overrides(["nodot=1"])


def test_override_beats_file_and_is_validated(fake_registry, tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[src]\nn_rows = 3\n")
    assert load_config(path, ["src.n_rows=7"]).src.n_rows == 7
    with pytest.raises(ConfigError, match=r"with --set\): \[src\] n_rows"):
        load_config(path, ["src.n_rows=seven"])


def test_snapshot_round_trips(fake_registry, tmp_path):
    cfg = load_config(None, ["src.tag=x", "src.bad_rows=[1, 2]"])
    text = config_to_toml(cfg)
    tomllib.loads(text)
    path = tmp_path / "snap.toml"
    path.write_text(text)
    assert load_config(path).model_dump() == cfg.model_dump()
