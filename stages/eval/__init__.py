"""Eval: the held-out comparison of the starting policy and the trained model (see :mod:`stages.eval.stage`)."""

from stages.eval.config import EvalConfig
from stages.eval.metrics import format_table, markdown_table, summarize
from stages.eval.stage import EVAL_JSON, EVAL_PNG, SPEC, evaluate_models, run_shard, write_summary_files

__all__ = [
    "SPEC",
    "EvalConfig",
    "EVAL_JSON",
    "EVAL_PNG",
    "run_shard",
    "evaluate_models",
    "write_summary_files",
    "summarize",
    "format_table",
    "markdown_table",
]
