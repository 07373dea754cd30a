"""Zero-shot CLIP as a plain classifier: pixels in [0,1] -> logits s * cos(f(x), t_c).

This module is the only view of CLIP that attacks, losses and metrics get. The class text
embeddings t_c are built once from class names x templates (the mean of the normalized template
embeddings, renormalized: Radford et al., "Learning Transferable Visual Models From Natural
Language Supervision", ICML 2021, Sec. 3.1.4) and held as a buffer; they are never recomputed per
forward pass, unlike the research code that re-ran (and back-propagated through) the text tower
on every attack step.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from .checkpoint import save_safetensors_atomic
from .clip import ClipBundle, ImageEncoder

DEFAULT_TEMPLATE = "This is a photo of a {}"   # the UCAT/TeCoA training prompt


def make_prompts(classnames: Sequence[str], templates: Sequence[str]) -> List[List[str]]:
    """Per-class prompt lists: ``templates`` use ``{}`` (or ``{c}``) for the class name."""
    if not classnames:
        raise ValueError("class names are empty: a zero-shot classifier needs at least one class")
    if not templates:
        raise ValueError("templates are empty: give at least one prompt template such as 'a photo of a {}.'")
    bad = [t for t in templates if "{}" not in t and "{c}" not in t]
    if bad:
        raise ValueError(f"template {bad[0]!r} has no '{{}}' placeholder for the class name")
    return [[t.replace("{c}", "{}").format(c) for t in templates] for c in classnames]


@torch.no_grad()
def build_text_head(model: nn.Module, tokenizer: Callable, prompts: Sequence[Sequence[str]],
                    device: torch.device | str | None = None, batch_size: int = 256) -> torch.Tensor:
    """(C, D) unit-norm class embeddings: mean of each class's normalized prompt embeddings, renormalized.

    Args:
        model: an open_clip CLIP (its ``encode_text`` is used, without gradients).
        tokenizer: the model's tokenizer.
        prompts: per-class lists of prompts (see :func:`make_prompts`); lists may differ in length.
    """
    if len(prompts) == 0:
        raise ValueError("build_text_head: no classes")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    flat = [p for ps in prompts for p in ps]
    owner = torch.tensor([i for i, ps in enumerate(prompts) for _ in ps], device=device)
    if any(len(ps) == 0 for ps in prompts):
        raise ValueError("build_text_head: a class has no prompts")
    was_training = model.training
    model.eval()
    embs = []
    for i in range(0, len(flat), batch_size):
        tokens = tokenizer(flat[i:i + batch_size]).to(device)
        embs.append(F.normalize(model.encode_text(tokens).float(), dim=-1))
    model.train(was_training)
    emb = torch.cat(embs)                                                      # (P, D)
    head = torch.zeros(len(prompts), emb.shape[1], device=device).index_add_(0, owner, emb)
    return F.normalize(head, dim=-1)                                           # (C, D)


def _text_tower_fingerprint(model: nn.Module) -> str:
    """Hash of every parameter outside the image tower (what the text head depends on)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        if name.startswith("visual."):
            continue
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()


def cached_text_head(model: nn.Module, tokenizer: Callable, prompts: Sequence[Sequence[str]],
                     cache_dir: str | os.PathLike | None = None, device: torch.device | str | None = None,
                     batch_size: int = 256) -> torch.Tensor:
    """:func:`build_text_head` with an optional on-disk cache keyed by text weights + prompts."""
    if cache_dir is None:
        return build_text_head(model, tokenizer, prompts, device, batch_size)
    key = hashlib.sha256((_text_tower_fingerprint(model) + json.dumps([list(p) for p in prompts])).encode()).hexdigest()
    path = Path(cache_dir) / f"text_head_{key[:24]}.safetensors"
    if path.is_file():
        head = load_file(str(path))["head"]
        return head.to(device if device is not None else next(model.parameters()).device)
    head = build_text_head(model, tokenizer, prompts, device, batch_size)
    save_safetensors_atomic({"head": head.detach().cpu().contiguous()}, path)
    return head


class ZeroShotClassifier(nn.Module):
    """Pixels in [0,1] -> zero-shot logits ``s * cos(f(x), t_c)``.

    Args:
        encoder: the image encoder (normalization inside; may be trainable).
        text_head: (C, D) unit-norm class embeddings, held as a buffer (never trained).
        logit_scale: s; OpenAI CLIP's exp(logit_scale) = 100.
        classnames: optional, for reports.

    Logits depend on each image alone: no batch statistics are involved (CLIP's towers use
    LayerNorm), so they do not change with batch size or order.
    """

    def __init__(self, encoder: ImageEncoder, text_head: torch.Tensor, logit_scale: float,
                 classnames: Optional[Sequence[str]] = None):
        super().__init__()
        if text_head.ndim != 2 or text_head.shape[0] < 1:
            raise ValueError(f"text_head must be (C, D) with C >= 1, got {tuple(text_head.shape)}")
        self.encoder = encoder
        self.register_buffer("text_head", F.normalize(text_head.detach().float(), dim=-1))
        self.logit_scale = float(logit_scale)
        self.classnames = list(classnames) if classnames is not None else None

    @property
    def num_classes(self) -> int:
        return int(self.text_head.shape[0])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0,1] -> (B, D) unit-norm image embeddings."""
        return F.normalize(self.encoder(x).float(), dim=-1)

    def logits_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, D) unit-norm features -> (B, C) logits."""
        return self.logit_scale * feats @ self.text_head.to(feats.dtype).t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.features(x))

    @classmethod
    def from_bundle(cls, bundle: ClipBundle, classnames: Sequence[str], templates: Sequence[str] | None = None,
                    prompts: Sequence[Sequence[str]] | None = None, cache_dir: str | os.PathLike | None = None,
                    logit_scale: float | None = None, encoder: ImageEncoder | None = None) -> "ZeroShotClassifier":
        """Build the text head for ``classnames`` x ``templates`` (or explicit per-class ``prompts``)."""
        if prompts is None:
            prompts = make_prompts(classnames, templates or [])
        elif len(prompts) != len(classnames):
            raise ValueError(f"{len(prompts)} prompt lists for {len(classnames)} classes")
        device = next(bundle.model.parameters()).device
        head = cached_text_head(bundle.model, bundle.tokenizer, prompts, cache_dir, device)
        s = bundle.logit_scale if logit_scale is None else float(logit_scale)
        return cls(encoder if encoder is not None else bundle.encoder, head, s, classnames)

    @classmethod
    def from_dataset(cls, bundle: ClipBundle, dataset, templates: Sequence[str] | None = None,
                     **kw) -> "ZeroShotClassifier":
        """The classifier of a ucat dataset: its ``.classes`` with its ``.prompts`` (explicit per-class
        prompts, e.g. PCAM's) or ``.templates``; ``templates`` given here override both."""
        classes = list(getattr(dataset, "classes", None) or [])
        if not classes:
            raise ValueError(f"dataset {getattr(dataset, 'name', type(dataset).__name__)!r} has no .classes: "
                             f"a zero-shot classifier needs class names")
        prompts = None if templates else getattr(dataset, "prompts", None)
        templates = list(templates or getattr(dataset, "templates", None) or [DEFAULT_TEMPLATE])
        return cls.from_bundle(bundle, classes, templates=templates, prompts=prompts, **kw)
