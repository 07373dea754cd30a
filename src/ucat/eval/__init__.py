"""Robust + calibrated zero-shot evaluation (``ucat eval``): logits once, pure metrics, JSON/CSV/Markdown/PNG.

Modules: ``config`` (what a run depends on), ``sharding`` (batches over processes, the one
result type of a pass, the process group), ``table`` (every metric, defined once), ``record``
(one result), ``checks`` (sanity and cross-attack checks), ``results`` (paths, keys, locks),
``evaluator`` (the run), ``report`` (CSV/Markdown), ``plots``, ``estimate`` (``--estimate``).
"""
from .checks import sanity_checks
from .config import EvalConfig, ModelSpec, validate
from .estimate import estimate_eval, format_estimate
from .evaluator import Evaluator, run_eval
from .report import markdown_table, summary_csv, summary_rows, summary_table, write_summary
from .results import result_path
from .table import METRICS, columns, split_metrics

__all__ = ["EvalConfig", "Evaluator", "METRICS", "ModelSpec", "columns", "estimate_eval", "format_estimate",
           "markdown_table", "result_path", "run_eval", "sanity_checks", "split_metrics", "summary_csv",
           "summary_rows", "summary_table", "validate", "write_summary"]
