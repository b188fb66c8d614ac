"""The command line: one-line errors with exit code 2, status, make-demo, config-reference."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stages.registry import stage_names

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_one_line_error(result: subprocess.CompletedProcess, pattern: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert pattern in lines[0]


def test_help_lists_every_command():
    result = cli("--help")
    assert result.returncode == 0
    for command in ("run", "status", "make-demo", "make-tiny-model", "export", "view", "publish", "train", "config-reference"):
        assert command in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "sample.nn=3"], "[sample] nn: unknown key"),
        (["--set", "sample.n=lots"], "[sample] n: Input should be a valid integer"),
        (["--set", "ingest.format=tiff"], "[ingest] format:"),
        (["--config", "absent.toml"], "config file absent.toml not found"),
        (["--stages", "smaple"], "--stages 'smaple': unknown stage; available: ingest, sample"),
        (["--set", "ingest.format=jsonl", "--set", "ingest.path=/no/such/manifest.jsonl"], "does not exist"),
    ],
)
def test_run_user_mistakes_are_one_line_exit_2(tmp_path, args, message):
    run_dir = tmp_path / "run"
    result = cli("run", "--run-dir", str(run_dir), "--no-ray", *args)
    assert_one_line_error(result, message)
    if "--set" in args and "ingest.path" not in " ".join(args):
        assert not run_dir.exists(), "a config error must write nothing"


def test_status_of_missing_run_dir(tmp_path):
    assert_one_line_error(cli("status", "--run-dir", str(tmp_path / "none")), "does not exist")


def test_export_of_unranked_run_is_an_error(tmp_path):
    assert_one_line_error(cli("export", "--run-dir", str(tmp_path)), "not a run folder")


def test_export_takes_no_config_it_would_ignore(tmp_path):
    """export reads the run's own config snapshot; a --config it would not use is refused, not ignored."""
    result = cli("export", "--run-dir", str(tmp_path), "--config", "pipeline.toml")
    assert result.returncode == 2 and "No such option: --config" in result.stderr, result.stderr


def test_make_demo_then_ingest_it_and_status(tmp_path):
    result = cli("make-demo", "--out", str(tmp_path / "demo"), "--n-tasks", "6", "--seed", "3")
    assert result.returncode == 0, result.stderr
    manifest = tmp_path / "demo" / "manifest.jsonl"
    assert manifest.is_file() and len(manifest.read_text().splitlines()) == 6
    run_dir = tmp_path / "run"
    disable = [f"--set={s}.enabled=false" for s in ("sample", "perturb", "score", "rank", "reference", "train", "eval")]
    result = cli(
        "run", "--run-dir", str(run_dir), "--no-ray", "--no-progress",
        "--set", "ingest.format=jsonl", "--set", f"ingest.path={manifest}", "--set", "ingest.shard_size=4",
        "--set", "ingest.eval_fraction=0", *disable,
    )
    assert result.returncode == 0, result.stderr
    status = cli("status", "--run-dir", str(run_dir))
    assert status.returncode == 0
    ingest_line = next(line for line in status.stdout.splitlines() if line.startswith("ingest"))
    assert ingest_line.split()[1] == "2/2" and "tasks=6" in ingest_line


def test_config_reference_covers_every_section():
    result = cli("config-reference")
    assert result.returncode == 0
    for section in ("[run]", "[ray]", "[ingest]", "[sample]", "[perturb]", "[perturb.distortion]", "[score]",
                    "[rank]", "[reference]", "[train]", "[export]"):
        assert f"`{section}`" in result.stdout


def test_readme_config_reference_is_current():
    """README.md embeds the generated pipeline.toml reference; regenerate it when a config field changes."""
    from pipeline.config_docs import config_reference_markdown

    readme = (REPO / "README.md").read_text()
    assert config_reference_markdown().strip() in readme, "run: perpo-pipeline config-reference, paste into README.md"


@pytest.mark.slow
def test_train_with_two_processes_via_torchrun(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    common = ["--set", "ingest.n_tasks=6", "--set", "ingest.shard_size=3", "--set", f"sample.engine.model={tiny_model_dir}",
              "--set", "sample.max_tokens=6", "--set", "perturb.max_tokens=6", "--set", "train.max_steps=1"]
    data = cli("run", "--run-dir", str(run_dir), "--no-ray", "--no-progress", "--set", "train.enabled=false",
               "--set", "eval.enabled=false", *common)
    assert data.returncode == 0, data.stderr
    result = cli("train", "--nproc", "2", "--run-dir", str(run_dir), *common)
    assert result.returncode == 0, result.stderr
    assert "with 2 process(es)" in result.stdout + result.stderr
    assert (run_dir / "train" / "artifacts" / "model" / "config.json").is_file()


# --- issue 11: an unwritable run folder is one line naming the folder and the cause


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the CLI entry point in this process (so a test can make the disk fail); return (exit code, stderr)."""
    from pipeline import cli as cli_module

    monkeypatch.setattr(sys, "argv", ["perpo-pipeline", *args])
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main()
    return exit_info.value.code, capsys.readouterr().err


INGEST_ONLY = ["--no-ray", "--no-progress", "--set", "ingest.n_tasks=2", "--set", "run.export=false",
               "--set", "run.report=false"] + [f"--set={s}.enabled=false" for s in stage_names() if s != "ingest"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT])
def test_full_or_read_only_run_folder_is_one_line_exit_2(tmp_path, monkeypatch, capsys, code):
    import stages.lib.files as files

    run_dir = tmp_path / "run"

    def refuse(path, write):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(files, "atomic_write", refuse)
    exit_code, stderr = _main(monkeypatch, capsys, "run", "--run-dir", str(run_dir), *INGEST_ONLY)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert exit_code == 2 and len(lines) == 1, stderr
    assert lines[0].startswith(f"error: cannot write the run folder {run_dir}: {os.strerror(code)}")


def test_read_only_run_folder_fails_at_the_lock_with_one_line(tmp_path, monkeypatch, capsys):
    import builtins

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    real_open = builtins.open

    def read_only(file, mode="r", *args, **kwargs):
        if str(file).endswith(".lock") and "w" in mode:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only)
    exit_code, stderr = _main(monkeypatch, capsys, "export", "--run-dir", str(run_dir))
    assert exit_code == 2 and stderr.count("\n") == 1 and f"cannot write the run folder {run_dir}" in stderr, stderr


# --- issue 11, item 12: more one-line errors


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path):
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[run]\nname = "d\xe9mo"\n'.encode("latin-1"))
    assert_one_line_error(cli("run", "--config", str(bad), "--run-dir", str(tmp_path / "r")), "is not UTF-8")


@pytest.mark.parametrize("command", ["run", "train", "status", "export"])
def test_run_dir_that_is_a_file_is_one_line(tmp_path, command):
    target = tmp_path / "a-file"
    target.write_text("x")
    assert_one_line_error(cli(command, "--run-dir", str(target)), f"run folder {target} is a file")


def test_train_on_a_missing_run_folder_creates_nothing(tmp_path):
    typo = tmp_path / "runz" / "demo"
    assert_one_line_error(cli("train", "--run-dir", str(typo), "--no-ray"), "does not exist")
    assert not (tmp_path / "runz").exists()


def test_status_verify_names_a_damaged_shard_and_run_redoes_it(tmp_path):
    """`status --verify` lists a shard file whose bytes changed (same size); `run` logs one line naming it and
    the stage that wrote it, and redoes it (a final table here: ingest alone runs)."""
    run_dir = tmp_path / "run"
    disable = [f"--set={s}.enabled=false" for s in ("sample", "perturb", "score", "rank", "reference", "train", "eval")]
    args = ["run", "--run-dir", str(run_dir), "--no-ray", "--no-progress", "--set", "ingest.n_tasks=4",
            "--set", "ingest.shard_size=2", "--set", "run.export=false", "--set", "run.report=false", *disable]
    assert cli(*args).returncode == 0
    path = run_dir / "ingest" / "part-00001.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "damaged" not in cli("status", "--run-dir", str(run_dir)).stdout  # plain status reads no shard
    verified = cli("status", "--run-dir", str(run_dir), "--verify")
    assert verified.returncode == 0 and "damaged: ingest/part-00001.parquet (sha256 mismatch" in verified.stdout
    again = cli(*args)
    assert again.returncode == 0, again.stderr
    assert ("shard file ingest/part-00001.parquet does not match the sha256 recorded when stage ingest wrote it "
            "(shard 1); redoing that shard") in again.stderr
    assert "damaged" not in cli("status", "--run-dir", str(run_dir), "--verify").stdout
