"""``ucat demo``: the UCAT paper's Table 16 (Lu et al., arXiv 2512.12997) in miniature, offline, on CPU.

Seven rows on the procedural world (:mod:`ucat.world`): the shipped tiny CLIP ``ucat-world`` as it
ships, and TeCoA, FARE, PMG-AFT, TGA-ZSR, Comp-TGA and UCAT, each fine-tuned on ``world-train``
with :func:`ucat.train.train` from its own shipped paper recipe scaled to one shared budget
(:mod:`ucat.demo.recipes`). Every row is evaluated with :func:`ucat.eval.run_eval` clean and under
PGD, CW, AutoAttack (APGD-CE + APGD-DLR) and the uncertainty-targeted attack, with the oracle
temperature-scaling baseline ("<row> + TS"), at several seeds; the tables are ``ucat eval``'s
report rows (:func:`ucat.eval.summary_rows`) as mean +- std over seeds, and the phenomenon (does
the attack lower the uncertainty?) is stated per row from the numbers, whichever way it goes.

Modules: ``config`` (settings, rows, validation), ``recipes`` (the scaling rule), ``progress``
(stages and ETA), ``stages`` (the run), ``aggregate`` (per-seed rows, mean and std), ``phenomenon``,
``table`` (Markdown), ``plots`` (PNG).
"""
from .config import ATTACKS, BASE_LABEL, LABELS, METHODS, DemoConfig, validate
from .recipes import scaled_settings, train_config
from .stages import run_demo

__all__ = ["ATTACKS", "BASE_LABEL", "DemoConfig", "LABELS", "METHODS", "run_demo", "scaled_settings",
           "train_config", "validate"]
