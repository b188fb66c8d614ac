"""Config loading: typed sections, errors that name the file and key, --set overrides."""

from __future__ import annotations

import tomllib

import pytest

from pipeline import config as config_module
from pipeline.config import config_to_toml, load_config, parse_overrides
from stages.lib.errors import ConfigError


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


def test_snapshot_round_trips_strings_that_need_escapes(fake_registry, tmp_path):
    """Newlines, tabs, control characters, quotes and backslashes survive config.toml (export reads it back)."""
    tag = 'line one\nline two\ttab "q" \\ \x01 \x7f é'
    cfg = load_config(None)
    cfg.src.tag = tag
    path = tmp_path / "snap.toml"
    path.write_text(config_to_toml(cfg), encoding="utf-8")
    assert load_config(path).src.tag == tag


def test_snapshot_quotes_table_keys_that_are_not_bare(fake_registry):
    """Inline-table keys that TOML cannot write bare (spaces, dots) are quoted."""
    assert tomllib.loads("v = " + config_module._toml_value({"a b": 1, "c.d": "x", "ok_1": True}))["v"] == {
        "a b": 1,
        "c.d": "x",
        "ok_1": True,
    }


def test_number_given_for_a_text_field_says_how_to_quote_it(fake_registry):
    """`--set run.name=2024` parses as a TOML integer; the error shows the quoted form that works."""
    with pytest.raises(ConfigError, match=r"\[run\] name: Input should be a valid string \(got 2024\); quote text: --set 'run.name=\"2024\"'"):
        load_config(None, ["run.name=2024"])
    assert load_config(None, ['run.name="2024"']).run.name == "2024"


def test_family_is_resolved_once_from_the_policy_and_shared(tiny_model_dir):
    cfg = load_config(None, [f'sample.engine.model="{tiny_model_dir}"'])
    assert cfg.sample.family == "llava"  # the tiny model's config.json says model_type = "llava"
    assert cfg.perturb.family == cfg.score.family == cfg.train.family == "llava"
    assert cfg.score.reward_options().box_format == "llava"


def test_explicit_family_and_section_overrides_are_kept(tiny_model_dir):
    cfg = load_config(None, [f'sample.engine.model="{tiny_model_dir}"', 'sample.family="qwen2_vl"', 'train.family="generic"'])
    assert cfg.sample.family == cfg.score.family == "qwen2_vl" and cfg.train.family == "generic"
    assert "family = \"qwen2_vl\"" in config_to_toml(cfg)  # the run's snapshot holds the resolved name


def test_missing_model_gets_the_generic_family(tmp_path):
    cfg = load_config(None, [f'sample.engine.model="{tmp_path / "missing"}"'])
    assert cfg.sample.family == "generic"  # the sample stage reports the missing model


def test_unknown_family_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"\[sample\] family: Value error, unknown model family 'qwen'"):
        load_config(None, ['sample.family="qwen"'])


def test_eval_scores_in_the_policy_family_too(tiny_model_dir):
    cfg = load_config(None, [f'sample.engine.model="{tiny_model_dir}"', "eval.score.box_format=\"auto\""])
    assert cfg.eval.score.family == "llava" and cfg.eval.score.candidate_box_format() == "llava"
