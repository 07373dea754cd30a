"""Fine-tuning objectives: one registry, one module per method.

Each method is an ``nn.Module`` that owns the trainable zero-shot classifier, the frozen reference
image encoder (the original CLIP, never updated, always in eval mode) and the training attack,
and maps a batch to ``{"loss": scalar, <named parts>}``. The trainer never knows which method runs.

    >>> method = create_method("ucat", classifier, reference, attack, tau=1e5)
    >>> out = method(images, labels)          # images (B, 3, H, W) in [0,1], labels (B,)
    >>> out["loss"].backward()

Registered: ``ucat``, ``tecoa``, ``pmg-aft``, ``fare``, ``tga-zsr``, ``comp-tga``, ``clean``.
"""
from .base import METHODS, Method, create_method, method_options

# Importing the modules registers the methods.
from . import clean, comp_tga, fare, pmg_aft, tecoa, tga_zsr, ucat  # noqa: F401,E402

__all__ = ["METHODS", "Method", "create_method", "method_options"]
