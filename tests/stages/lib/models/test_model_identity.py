"""What identifies a model in a shard fingerprint (stages/lib/models/identity.py): content, not path text."""

from __future__ import annotations

import os
import shutil

import pytest

from stages.lib.models import identity
from stages.lib.models.identity import model_fingerprint
from stages.lib.models.tiny_vlm import build_tiny_vlm


@pytest.fixture(autouse=True)
def _fresh_hub_cache(monkeypatch):
    monkeypatch.setattr(identity, "_HUB_SHAS", {})


@pytest.fixture
def model_dir(tmp_path):
    return build_tiny_vlm(tmp_path / "models" / "vlm", seed=0)


def test_path_spellings_of_one_folder_give_one_fingerprint(model_dir, tmp_path, monkeypatch):
    (tmp_path / "alias").symlink_to(model_dir)
    monkeypatch.chdir(model_dir.parent)
    spellings = [str(model_dir), f"{model_dir}/", "vlm", "./vlm/", str(tmp_path / "alias"), f"{model_dir}/../vlm"]
    assert len({str(model_fingerprint(s)) for s in spellings}) == 1


def test_a_copy_elsewhere_is_the_same_model(model_dir, tmp_path):
    copy = shutil.copytree(model_dir, tmp_path / "elsewhere")
    assert model_fingerprint(str(copy)) == model_fingerprint(str(model_dir))


def test_a_different_model_rebuilt_into_the_same_folder_changes_it(model_dir):
    """Issue 11, item 5: the folder's path is unchanged, its weights are not."""
    before = model_fingerprint(str(model_dir))
    build_tiny_vlm(model_dir, seed=1)
    assert model_fingerprint(str(model_dir)) != before


def test_a_changed_config_or_tokenizer_file_changes_it_a_readme_does_not(model_dir):
    before = model_fingerprint(str(model_dir))
    (model_dir / "README.md").write_text("notes")
    (model_dir / ".cache").mkdir()
    (model_dir / ".cache" / "x.lock").write_text("lock")
    assert model_fingerprint(str(model_dir)) == before
    config = model_dir / "generation_config.json"
    config.write_text(config.read_text().replace("{", '{"max_length": 7, ', 1))
    assert model_fingerprint(str(model_dir)) != before


def test_hub_id_is_pinned_to_its_revision_sha(monkeypatch):
    class FakeApi:
        def model_info(self, repo_id, timeout=None):
            assert repo_id == "org/vlm"
            return type("Info", (), {"sha": "a" * 40})()

    monkeypatch.setattr(identity, "_hub_api", FakeApi)
    assert model_fingerprint("org/vlm") == {"hub": "org/vlm", "revision": "a" * 40}


def test_offline_hub_id_reads_the_revision_from_the_local_cache(monkeypatch, tmp_path):
    class OfflineApi:
        def model_info(self, repo_id, timeout=None):
            raise OSError("offline")

    monkeypatch.setattr(identity, "_hub_api", OfflineApi)
    monkeypatch.setattr(identity, "_hub_cache_dir", lambda: tmp_path)
    assert model_fingerprint("org/vlm") == {"hub": "org/vlm", "revision": None}
    refs = tmp_path / "models--org--vlm" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("b" * 40)
    assert model_fingerprint("org/vlm") == {"hub": "org/vlm", "revision": "b" * 40}


def test_a_missing_path_is_normalised(tmp_path):
    missing = tmp_path / "no" / "model"
    assert model_fingerprint(f"{missing}/") == model_fingerprint(str(missing)) == {"path": os.fspath(missing)}
