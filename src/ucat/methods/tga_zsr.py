"""TGA-ZSR: text-guided attention for zero-shot robustness.

Yu et al., "Text-Guided Attention is All You Need for Zero-Shot Robustness in Vision-Language
Models", NeurIPS 2024 (official code github.com/zhyblue424/TGA-ZSR, TGA-ZSR.py:334-345, 467-483;
attention_map.py:4-22).

How the attention maps are taken from open_clip: ``VisionTransformer`` has an ``output_tokens``
switch; with it on, ``visual(x)`` returns ``(pooled, tokens)``, where ``pooled`` is the class
token after ``ln_post`` and ``proj`` (the usual embedding) and ``tokens`` are the patch tokens
after ``ln_post`` (before ``proj``). :func:`vit_tokens` turns the switch on for one call only,
projects the patch tokens with ``visual.proj`` and returns the class token and the patch tokens
stacked as (B, 1 + N, D), the tensor the official code gets from its patched ``encode_image``.
The pooled output is the ordinary embedding, so the adversarial logits come from the same forward.
"""
from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import METHODS, Method, ce_loss


def vit_tokens(encoder: nn.Module, images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Class embedding and projected patch tokens of an open_clip ViT image encoder.

    Args:
        encoder: a ``ucat.models.ImageEncoder`` around an open_clip ``VisionTransformer``.
        images: (B, 3, H, W) pixels in [0,1].
    Returns:
        pooled (B, D) unnormalized embedding (= ``encoder(images)``), and all tokens (B, 1 + N, D):
        the pooled class embedding followed by the N projected patch tokens.
    """
    visual = encoder.visual
    if not hasattr(visual, "output_tokens") or not hasattr(visual, "proj"):
        raise ValueError("tga-zsr needs an open_clip VisionTransformer image tower (ViT-*); "
                         f"got {type(visual).__name__}")
    before = visual.output_tokens
    visual.output_tokens = True
    try:
        pooled, tokens = visual(encoder.normalize(images))    # (B, D), (B, N, width)
    finally:
        visual.output_tokens = before
    if visual.proj is not None:
        tokens = tokens @ visual.proj                          # (B, N, D)
    return pooled, torch.cat([pooled.unsqueeze(1), tokens], dim=1)   # (B, D), (B, 1 + N, D)


def attention_map(tokens: torch.Tensor, text: torch.Tensor, out_size: int, token_norm: str = "tokens") -> torch.Tensor:
    """Text-guided attention map A(x), flattened (official attention_map.py, "text" branch).

    Args:
        tokens: (B, 1 + N, D) class + patch tokens (see :func:`vit_tokens`), N a square number.
        text: (B, D) the text embedding of each sample's true class, t_y.
        out_size: side of the upsampled map (the model's input size, 224 for ViT-B/32).
        token_norm: ``"tokens"`` L2-normalizes over the token axis, as the official code does
            (``norm(dim=1)``); ``"features"`` normalizes each token over its D features.
    Returns:
        (B, out_size * out_size) maps, min-max normalized over the patches before upsampling.
    """
    tokens = tokens.float()
    if token_norm == "tokens":
        tokens = tokens / tokens.norm(dim=1, keepdim=True).clamp_min(1e-12)      # (B, 1 + N, D)
    elif token_norm == "features":
        tokens = F.normalize(tokens, dim=-1)
    else:
        raise ValueError(f"tga-zsr: token_norm must be 'tokens' or 'features', got {token_norm!r}")
    patches = tokens[:, 1:]                                                       # (B, N, D)
    am = patches @ text.float().unsqueeze(-1)                                     # (B, N, 1)
    lo = am.min(dim=1, keepdim=True)[0]
    hi = am.max(dim=1, keepdim=True)[0]
    am = (am - lo) / (hi - lo).clamp_min(1e-12)                                   # (B, N, 1) in [0, 1]
    side = int(round(math.sqrt(am.shape[1])))
    if side * side != am.shape[1]:
        raise ValueError(f"tga-zsr: {am.shape[1]} patch tokens do not form a square grid")
    am = am.reshape(am.shape[0], side, side, 1).permute(0, 3, 1, 2)               # (B, 1, side, side)
    am = F.interpolate(am, size=(out_size, out_size), mode="bilinear", align_corners=False)
    return am.flatten(1)                                                          # (B, out_size^2)


def map_distance(a: torch.Tensor, b: torch.Tensor, metric: str = "l2") -> torch.Tensor:
    """Batch mean of a per-sample distance between flattened maps, (B, P), (B, P) -> ()."""
    if metric == "l2":
        return (a - b).norm(p=2, dim=1).mean()
    if metric == "l1":
        return (a - b).abs().mean()
    if metric == "cos":
        return (1 - F.cosine_similarity(a, b, dim=1, eps=1e-8)).mean()
    raise ValueError(f"tga-zsr: distance must be l2, l1 or cos, got {metric!r}")


@METHODS.register("tga-zsr")
class TGAZSR(Method):
    """TGA-ZSR (Yu et al., NeurIPS 2024).

        L = CE(z_theta(x_adv), y) + alpha * mean_b ||A_theta(x_adv) - A_0(x)||_2
                                  + beta  * mean_b ||A_theta(x)     - A_0(x)||_2

    A(x) is the text-guided attention map of :func:`attention_map` with t_y, the text embedding
    of the true class; A_0 uses the frozen original encoder (no_grad). Three encoder passes per
    step besides the attack: trainable on x_adv (its pooled output also gives the logits),
    trainable on x, frozen on x.

    Options:
        alpha: weight of the adversarial attention term (0.08).
        beta: weight of the clean attention term (0.05).
        distance: ``l2`` (default), ``l1`` or ``cos``.
        token_norm: ``tokens`` (official quirk: normalize over the token axis) or ``features``.
        ce_weight: weight of the CE term (1).
    """

    def __init__(self, classifier, reference, attack, *, alpha: float = 0.08, beta: float = 0.05,
                 distance: str = "l2", token_norm: str = "tokens", ce_weight: float = 1.0):
        super().__init__(classifier, reference, attack)
        map_distance(torch.zeros(1, 1), torch.zeros(1, 1), distance)   # validates the name
        if token_norm not in ("tokens", "features"):
            raise ValueError(f"tga-zsr: token_norm must be 'tokens' or 'features', got {token_norm!r}")
        self.alpha, self.beta, self.ce_weight = float(alpha), float(beta), float(ce_weight)
        self.distance, self.token_norm = distance, token_norm

    def options(self):
        return {"alpha": self.alpha, "beta": self.beta, "distance": self.distance,
                "token_norm": self.token_norm, "ce_weight": self.ce_weight}

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        clf = self.classifier
        size = int(clf.encoder.image_size)
        text = clf.text_head[labels]                                        # (B, D) t_y
        x_adv = self.adversarial(images, labels)                            # (B, 3, H, W)
        pooled_adv, tok_adv = vit_tokens(clf.encoder, x_adv)                # (B, D), (B, 1+N, D)
        logits_adv = clf.logits_from_features(F.normalize(pooled_adv.float(), dim=-1))   # (B, C)
        _, tok_clean = vit_tokens(clf.encoder, images)
        with torch.no_grad():
            _, tok_ref = vit_tokens(self.reference, images)
            am_ref = attention_map(tok_ref, text, size, self.token_norm)    # (B, size^2)
        am_adv = attention_map(tok_adv, text, size, self.token_norm)
        am_clean = attention_map(tok_clean, text, size, self.token_norm)
        ce = ce_loss(logits_adv, labels)
        am1 = map_distance(am_adv, am_ref, self.distance)
        am2 = map_distance(am_clean, am_ref, self.distance)
        loss = self.ce_weight * ce + self.alpha * am1 + self.beta * am2
        return {"loss": loss, "ce": ce.detach(), "attn_adv": am1.detach(), "attn_clean": am2.detach(),
                "logits_adv": logits_adv.detach()}
