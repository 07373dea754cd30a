"""The method contract, its registry and the shared base class.

Pattern learned from open_clip's ``DistillCLIPTask`` and timm's distillation task: a method is a
module that owns its frozen teacher (here the original CLIP image encoder), keeps it in eval
mode whatever ``train()`` is called with, and returns its loss with named parts in one dict.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, Mapping, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from ..registry import Registry
from .frozen import LowPrecisionCopy

METHODS: Registry = Registry("method")


class Method(nn.Module):
    """Base of every fine-tuning objective.

    Args:
        classifier: a :class:`ucat.models.ZeroShotClassifier` whose image encoder is trained.
        reference: a frozen deep copy of the *original* :class:`ucat.models.ImageEncoder`; its
            parameters get ``requires_grad=False`` and it stays in eval mode.
        attack: the training attack, ``attack(classifier, images, labels) -> adversarial images``
            (``ucat.attacks`` contract: gradients w.r.t. the input only, so no parameter ``.grad``
            is touched). Methods that do not use it accept ``None``.

    Subclasses implement ``forward(images, labels) -> {"loss": scalar tensor, <parts>}``; parts are
    detached scalars (logged per term) and optionally ``logits_adv`` / ``logits`` (B, C) tensors
    used for accuracy logging.
    """

    #: whether ``forward`` calls the training attack (``clean`` does not).
    uses_attack: bool = True
    #: number of data-parallel processes (set by the trainer). DDP averages gradients over the
    #: processes, which is right for batch-mean terms; terms *summed* over the batch multiply by
    #: it so that a run on N processes matches one process with the same global batch.
    world_size: int = 1

    def __init__(self, classifier: nn.Module, reference: nn.Module, attack: Optional[Callable] = None):
        super().__init__()
        if self.uses_attack and attack is None:
            raise ValueError(f"method {type(self).__name__} needs a training attack (e.g. ucat.attacks.PGD)")
        self.classifier = classifier
        self.reference = reference
        for p in self.reference.parameters():
            p.requires_grad_(False)
        self.reference.eval()
        self.attack = attack
        # the reference's no-grad forward under CPU autocast runs a bf16 copy (ucat.methods.frozen);
        # a plain attribute, so the copy stays out of state_dict, parameters() and .to()
        self._reference_lowp = LowPrecisionCopy()

    def train(self, mode: bool = True) -> "Method":
        """Switch the trainable parts; the frozen reference always stays in eval mode."""
        super().train(mode)
        self.reference.eval()
        return self

    # -- helpers shared by the methods ---------------------------------------------------------
    def adversarial(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Training adversarial examples of the *current* model, (B, 3, H, W) in [0,1], detached."""
        return self.attack(self.classifier, images, labels)

    @torch.no_grad()
    def reference_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, D) float32 *unnormalized* embeddings of the frozen original encoder.

        In float32 this is ``reference(images)``; under CPU autocast a bf16 copy of the reference runs
        instead, with autocast off (several times faster there, see :mod:`ucat.methods.frozen`)."""
        return self._reference_lowp(self.reference, images).float()

    @torch.no_grad()
    def reference_logits(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C) zero-shot logits s*cos(f_0(x), t_c) of the frozen original encoder,
        against the same text head as the trainable classifier."""
        feats = F.normalize(self.reference_features(images), dim=-1)          # (B, D)
        return self.classifier.logits_from_features(feats)                     # (B, C)

    def bind(self, bundle) -> "Method":
        """Take what the method needs of the CLIP beyond the classifier (the trainer calls this once, with
        the :class:`ucat.models.ClipBundle` the classifier was built from); the default needs nothing."""
        return self

    def options(self) -> Dict[str, Any]:
        """The method's resolved hyperparameters (for logs and the run config)."""
        return {}


def method_options(name: str) -> Dict[str, Any]:
    """The options a method accepts, with their defaults."""
    cls = METHODS.get(name)
    sig = inspect.signature(cls.__init__)
    skip = {"self", "classifier", "reference", "attack"}
    return {k: (None if p.default is inspect.Parameter.empty else p.default)
            for k, p in sig.parameters.items() if k not in skip and p.kind == p.KEYWORD_ONLY}


def check_method_options(name: str, options: Mapping[str, Any]) -> Dict[str, Any]:
    """The one check of a method's options, before any model is built (``create_method`` and the
    trainer's fail-fast check both call it).

    Returns the options as a plain dict. Raises:
        KeyError: unknown method (the message lists the known ones).
        ConfigError (``method_options``): an option the method does not take (the valid ones are
            listed), a non-number where the method takes a number, a non-finite number, or a
            non-string where it takes a name.
    """
    valid = method_options(name)            # KeyError for an unknown method
    if not isinstance(options, Mapping):
        raise ConfigError("method_options", f"must be a mapping of option: value, got {options!r}")
    unknown = sorted(set(options) - set(valid))
    if unknown:
        listing = ", ".join(f"{k}={v!r}" for k, v in valid.items()) or "(none)"
        raise ConfigError("method_options", f"{', '.join(map(str, unknown))}: method {name!r} has no such "
                                            f"option(s); its options are: {listing}")
    hints = _option_types(name)
    for key, value in options.items():
        _check_option_value(name, key, value, hints.get(key, ""), valid[key])
    return dict(options)


def _option_types(name: str) -> Dict[str, str]:
    sig = inspect.signature(METHODS.get(name).__init__)
    return {k: str(p.annotation) for k, p in sig.parameters.items() if p.annotation is not inspect.Parameter.empty}


def _check_option_value(method: str, key: str, value: Any, hint: str, default: Any) -> None:
    numeric = "float" in hint or "int" in hint or (isinstance(default, (int, float)) and not isinstance(default, bool))
    if value is None and (default is None or "None" in hint or "Optional" in hint):
        return
    if numeric and "str" not in hint:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError("method_options", f"{key}={value!r}: method {method!r} takes a number here "
                                                f"(default {default!r})")
        if not math.isfinite(value):
            raise ConfigError("method_options", f"{key}={value!r}: must be a finite number")
    elif isinstance(default, str) and not isinstance(value, str):
        raise ConfigError("method_options", f"{key}={value!r}: method {method!r} takes a name here "
                                            f"(default {default!r})")


def create_method(name: str, classifier: nn.Module, reference: nn.Module, attack: Optional[Callable] = None,
                  **options: Any) -> Method:
    """Build a registered method by name; the options are checked by :func:`check_method_options`."""
    cls = METHODS.get(name)
    return cls(classifier, reference, attack, **check_method_options(name, options))


def ce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Batch-mean cross-entropy in float32 (also under autocast): (B, C), (B,) -> scalar."""
    return F.cross_entropy(logits.float(), labels)
