"""Robust + calibrated zero-shot evaluation (``ucat eval``): logits once, pure metrics, JSON/CSV/Markdown/PNG."""
from .estimate import estimate_eval, format_estimate
from .evaluator import EvalConfig, Evaluator, ModelSpec, run_eval, sanity_checks, split_metrics
from .report import summary_csv, summary_rows, summary_table, write_summary

__all__ = ["EvalConfig", "Evaluator", "ModelSpec", "estimate_eval", "format_estimate", "run_eval", "sanity_checks", "split_metrics", "summary_csv",
           "summary_rows", "summary_table", "write_summary"]
