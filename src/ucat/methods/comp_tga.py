"""Comp-TGA: complementary text-guided attention for zero-shot robustness.

Yu, Zhang and Xu, "Complementary Text-Guided Attention for Zero-Shot Adversarial Robustness",
IEEE TPAMI 2026 (arXiv 2603.18598); official code ``Comp-TGA.py`` and ``attention_map.py`` in
github.com/zhyblue424/TGA-ZSR (commit 663fe57). It is TGA-ZSR (:mod:`ucat.methods.tga_zsr`) with
the class attention map replaced by a *complementary* one: the text-guided map of the class
prompt, damped wherever the map of the non-class prompt ("This is not a photo of a {c}") is high.

The official construction, term by term (``Comp-TGA.py:line``, ``attention_map.py:line``):

- Prompts: class ``"This is a photo of a {c}"`` (Comp-TGA.py:208, 233) and non-class
  ``"This is not a photo of a {c}"`` (Comp-TGA.py:235), embedded by the CLIP text tower under
  ``no_grad``, L2-normalized and scaled by the logit scale (Comp-TGA.py:327-335). The text tower
  is never trained (the optimizer holds ``model.visual`` only, Comp-TGA.py:174), so ucat embeds
  both prompt sets once: t_c is the classifier's text head, n_c the head :meth:`CompTGA.bind_text`
  builds. The logit-scale factor cancels in the min-max normalization of the maps.
- x_adv: PGD on the *trainable* model, CE loss, L-inf, 2 steps of 1/255, eps 1/255, uniform
  random start (Comp-TGA.py:339-342, 52-54, 128-131; attacks.py:63-103). ucat uses the training
  attack the trainer passes in (the recipe sets those values).
- Logits: class token of the trainable encoder on x_adv, normalized, times the scaled class text
  embeddings (Comp-TGA.py:346-352): z_theta(x_adv) = s * cos(f_theta(x_adv), t_c).
- Complementary attention of encoder f on images x with the true class y (attention_map.py:32-62):
  all tokens (class token + patches, after ``ln_post`` and ``proj``) L2-normalized over the
  *token* axis (attention_map.py:37-38, the TGA-ZSR quirk), patch tokens dotted with t_y (42) and
  with n_y (52), each min-max normalized over the patches (43, 53), reshaped to the patch grid and
  resized bilinearly to the input size (45-50, 55-59), then fused:
  ``C_f(x) = A_f(x; t_y) * (1 - A_f(x; n_y))`` (61). The per-prompt map is
  :func:`ucat.methods.tga_zsr.attention_map`.
- The three maps (Comp-TGA.py:356-358): C_theta(x_adv) (trainable, adversarial), C_0(x) (the
  frozen original encoder, clean) and C_theta(x) (trainable, clean).
- Loss (Comp-TGA.py:360-361, criterion 483-503, defaults 99, 102-103)::

      L = CE(z_theta(x_adv), y) + alpha * mean_b ||C_theta(x_adv) - C_0(x)||_2
                                + beta  * mean_b ||C_theta(x)     - C_0(x)||_2,
      alpha = 0.10, beta = 0.07, distance l2 (l1 and cos as the official options).

Differences from the official code, each on purpose:

- The attack touches no parameter ``.grad`` (ucat's attack contract). Officially ``attack_pgd``
  back-propagates into the model (attacks.py:89) after ``optimizer.zero_grad()``
  (Comp-TGA.py:317), so its parameter gradients leak into the update, though only at
  1/loss-scale (about 2^-16) of their size, since the GradScaler scales the training loss alone
  (Comp-TGA.py:363).
- C_0(x) is computed under ``no_grad``; officially it is not (Comp-TGA.py:357), which only fills
  the never-stepped frozen copy's ``.grad``: the loss and the trained gradient are the same.
- The global RNG is not reseeded inside the loss; officially ``attention_map_comp`` and
  ``criterion`` call ``torch.manual_seed(seed)`` every step (attention_map.py:33-35,
  Comp-TGA.py:484-486), so the next step's PGD random start redraws the same noise.
- The min-max denominator is clamped at 1e-12 (a constant map gives 0, not NaN as at
  attention_map.py:43, 53).
- ``attention_map.py:49`` calls ``transforms.Resize((size, size), antialias=True)`` without
  importing ``transforms`` (a NameError as published); we read it as torchvision's, whose
  bilinear *upsampling* equals ``F.interpolate(mode="bilinear", align_corners=False)``, the resize
  :func:`~ucat.methods.tga_zsr.attention_map` does (the tests check this).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F

from ..models import build_text_head, make_prompts
from .base import METHODS, Method, ce_loss
from .tga_zsr import attention_map, map_distance, vit_tokens

#: the official non-class prompt (Comp-TGA.py:235).
NEGATIVE_TEMPLATE = "This is not a photo of a {}"


def complementary_attention(tokens: torch.Tensor, text: torch.Tensor, no_text: torch.Tensor, out_size: int,
                            token_norm: str = "tokens") -> torch.Tensor:
    """Comp-TGA's fused map ``A(x; t_y) * (1 - A(x; n_y))`` (official attention_map.py:32-62).

    Args:
        tokens: (B, 1 + N, D) class + patch tokens (:func:`ucat.methods.tga_zsr.vit_tokens`).
        text: (B, D) class text embeddings t_y; no_text: (B, D) non-class embeddings n_y.
        out_size: side of the upsampled maps (the encoder's input size).
        token_norm: as in :func:`ucat.methods.tga_zsr.attention_map` (``tokens`` is official).
    Returns:
        (B, out_size * out_size) maps in [0, 1].
    """
    am = attention_map(tokens, text, out_size, token_norm)          # (B, P) class map
    no_am = attention_map(tokens, no_text, out_size, token_norm)    # (B, P) non-class map
    return am * (1 - no_am)                                         # (B, P)


@METHODS.register("comp-tga")
class CompTGA(Method):
    """Comp-TGA (Yu et al., TPAMI 2026); the loss and its sources are in the module docstring.

        L = CE(z_theta(x_adv), y) + alpha * mean_b ||C_theta(x_adv) - C_0(x)||_2
                                  + beta  * mean_b ||C_theta(x)     - C_0(x)||_2

    Needs the non-class text head n_c: call :meth:`bind_text` with the CLIP bundle (the model's
    text tower and tokenizer) once after construction; ``forward`` refuses to run without it.
    Three encoder passes per step besides the attack, as TGA-ZSR: trainable on x_adv (its pooled
    output also gives the logits), trainable on x, frozen on x.

    Options:
        alpha: weight of the adversarial attention term (0.10, Comp-TGA.py:102).
        beta: weight of the clean attention term (0.07, Comp-TGA.py:103).
        distance: ``l2`` (default, Comp-TGA.py:99), ``l1`` or ``cos``.
        token_norm: ``tokens`` (official: normalize over the token axis) or ``features``.
        ce_weight: weight of the CE term (1).
        negative_template: the non-class prompt, ``{}`` = class name (Comp-TGA.py:235).
    """

    def __init__(self, classifier, reference, attack, *, alpha: float = 0.10, beta: float = 0.07,
                 distance: str = "l2", token_norm: str = "tokens", ce_weight: float = 1.0,
                 negative_template: str = NEGATIVE_TEMPLATE):
        super().__init__(classifier, reference, attack)
        map_distance(torch.zeros(1, 1), torch.zeros(1, 1), distance)   # validates the name
        if token_norm not in ("tokens", "features"):
            raise ValueError(f"comp-tga: token_norm must be 'tokens' or 'features', got {token_norm!r}")
        make_prompts(["x"], [negative_template])                       # validates the placeholder
        visual = getattr(classifier.encoder, "visual", None)
        if not hasattr(visual, "output_tokens") or not hasattr(visual, "proj"):
            raise ValueError("comp-tga needs an open_clip VisionTransformer image tower (ViT-*); "
                             f"got {type(visual).__name__}")
        self.alpha, self.beta, self.ce_weight = float(alpha), float(beta), float(ce_weight)
        self.distance, self.token_norm, self.negative_template = distance, token_norm, negative_template
        self.register_buffer("no_text_head", None, persistent=False)    # (C, D) once bound

    def options(self):
        return {"alpha": self.alpha, "beta": self.beta, "distance": self.distance,
                "token_norm": self.token_norm, "ce_weight": self.ce_weight,
                "negative_template": self.negative_template}

    def bind(self, bundle) -> "CompTGA":
        """The trainer's hook (:meth:`ucat.methods.base.Method.bind`): builds the non-class text head."""
        return self.bind_text(bundle)

    def bind_text(self, bundle) -> "CompTGA":
        """Embed the non-class prompts of the classifier's classes with ``bundle``'s text tower.

        Args:
            bundle: anything with ``.model`` (an open_clip CLIP) and ``.tokenizer``, e.g. the
                :class:`ucat.models.ClipBundle` the classifier was built from.
        Returns:
            self, with ``no_text_head`` (C, D) unit-norm embeddings of ``negative_template``.
        """
        names = self.classifier.classnames
        if not names or len(names) != self.classifier.num_classes:
            raise ValueError("comp-tga: the classifier has no class names for its "
                             f"{self.classifier.num_classes} classes; build it with "
                             "ZeroShotClassifier.from_dataset or from_bundle")
        head = build_text_head(bundle.model, bundle.tokenizer, make_prompts(names, [self.negative_template]))
        if head.shape != self.classifier.text_head.shape:
            raise ValueError(f"comp-tga: non-class head {tuple(head.shape)} does not match the class head "
                             f"{tuple(self.classifier.text_head.shape)}; bind the bundle the classifier came from")
        self.no_text_head = head.float().to(self.classifier.text_head.device)   # (C, D)
        return self

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        if self.no_text_head is None:
            raise ValueError("comp-tga: the non-class text head is not built; call "
                             "method.bind_text(bundle) once before training")
        clf = self.classifier
        size = int(clf.encoder.image_size)
        text = clf.text_head[labels]                                         # (B, D) t_y
        no_text = self.no_text_head[labels]                                  # (B, D) n_y
        x_adv = self.adversarial(images, labels)                             # (B, 3, H, W)
        pooled_adv, tok_adv = vit_tokens(clf.encoder, x_adv)                 # (B, D), (B, 1+N, D)
        logits_adv = clf.logits_from_features(F.normalize(pooled_adv.float(), dim=-1))   # (B, C)
        _, tok_clean = vit_tokens(clf.encoder, images)
        with torch.no_grad():
            _, tok_ref = vit_tokens(self.reference, images)
            c_ref = complementary_attention(tok_ref, text, no_text, size, self.token_norm)   # (B, size^2)
        c_adv = complementary_attention(tok_adv, text, no_text, size, self.token_norm)
        c_clean = complementary_attention(tok_clean, text, no_text, size, self.token_norm)
        ce = ce_loss(logits_adv, labels)
        am1 = map_distance(c_adv, c_ref, self.distance)
        am2 = map_distance(c_clean, c_ref, self.distance)
        loss = self.ce_weight * ce + self.alpha * am1 + self.beta * am2
        return {"loss": loss, "ce": ce.detach(), "attn_adv": am1.detach(), "attn_clean": am2.detach(),
                "logits_adv": logits_adv.detach()}
