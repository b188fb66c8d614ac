"""`perpo-pipeline eval` and the new run settings: user mistakes are one line and exit code 2."""

from __future__ import annotations

import pytest

from tests.pipeline.test_cli import assert_one_line_error, cli


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "run.rounds=0"], "[run] rounds: Input should be greater than or equal to 1"),
        (["--set", "ingest.eval_fraction=-0.5"], "[ingest] eval_fraction: Input should be greater than or equal to 0"),
        (["--set", "ingest.eval_fraction=0"], "the held-out split would have no tasks"),
        (["--set", "train.enabled=false"], "add --set eval.enabled=false"),
    ],
)
def test_run_refuses_bad_loop_settings(tmp_path, args, message):
    assert_one_line_error(cli("run", "--run-dir", str(tmp_path / "r"), *args), message)


def test_eval_of_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "weights").mkdir()
    result = cli("eval", "--model", str(tmp_path / "weights"), "--run-dir", str(tmp_path / "run"))
    assert_one_line_error(result, "has no config.json; it is not a saved transformers model")


def test_eval_of_a_run_without_a_trained_model_or_run_folder(tmp_path):
    (tmp_path / "run").mkdir()
    assert_one_line_error(cli("eval", "--run-dir", str(tmp_path / "run")), "has no trained model")
    assert_one_line_error(cli("eval", "--run-dir", str(tmp_path / "none")), "does not exist")


def test_eval_of_a_run_whose_held_out_split_is_empty(tiny_model_dir, tmp_path):
    run_dir = tmp_path / "run"
    setup = cli("run", "--run-dir", str(run_dir), "--no-ray", "--no-progress", "--stages", "ingest",
                "--set", "ingest.n_tasks=3", "--set", "ingest.eval_fraction=0", "--set", "eval.enabled=false")
    assert setup.returncode == 0, setup.stderr
    result = cli("eval", "--model", str(tiny_model_dir), "--run-dir", str(run_dir))
    assert_one_line_error(result, "the held-out split has no tasks")
