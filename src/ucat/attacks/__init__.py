"""Adversarial attacks under one contract: ``attack(classifier, images, labels) -> adversarial images``.

Sizes are fractions of the [0,1] pixel range in the library (the CLI takes 1/255 units and converts
once with :func:`ucat.units.to_fraction`). See :mod:`ucat.attacks.base` for the contract.
"""
from .base import ATTACKS, Attack, check_images, create_attack, num_classes_of, pgd_perturb, sample_correct
from .pgd import CW, PGD, PGDL2, margin
from .autoattack import AutoAttackAdapter, AutoAttackPaper, AutoAttackStandard
from .uncertainty import SCORES, UncertaintyAttack, uncertainty_score

__all__ = ["ATTACKS", "Attack", "AutoAttackAdapter", "AutoAttackPaper", "AutoAttackStandard", "CW", "PGD", "PGDL2",
           "SCORES", "UncertaintyAttack", "check_images", "create_attack", "margin", "num_classes_of", "pgd_perturb",
           "sample_correct", "uncertainty_score"]
