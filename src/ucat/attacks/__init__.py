"""Adversarial attacks under one contract: ``attack(classifier, images, labels) -> adversarial images``.

Sizes are fractions of the [0,1] pixel range in the library (the CLI takes 1/255 units and converts
once with :func:`ucat.units.to_fraction`). See :mod:`ucat.attacks.base` for the contract and
:mod:`ucat.attacks.options` for how every attack's options are checked at construction.
"""
from .base import ATTACKS, Attack, check_images, create_attack, num_classes_of, pgd_perturb, sample_correct
from .options import check_options, option_parameters
from .pgd import CW, PGD, PGDL2, margin
from .autoattack import MIN_CLASSES, AutoAttackAdapter, AutoAttackPaper, AutoAttackRobustVLM, AutoAttackStandard
from .uncertainty import SCORES, UncertaintyAttack, uncertainty_score
from .composite import AdaptiveAutoAttack, CompositeLinf
from .multilabel import MultiLabelCW, MultiLabelPGD
from .calibration import CalibrationAttack

__all__ = ["ATTACKS", "CalibrationAttack", "AdaptiveAutoAttack", "Attack", "CompositeLinf", "MultiLabelCW", "MultiLabelPGD", "AutoAttackAdapter", "AutoAttackPaper", "AutoAttackRobustVLM", "AutoAttackStandard",
           "CW", "MIN_CLASSES", "PGD", "PGDL2", "SCORES", "UncertaintyAttack", "check_images", "check_options",
           "create_attack", "margin", "num_classes_of", "option_parameters", "pgd_perturb", "sample_correct",
           "uncertainty_score"]
