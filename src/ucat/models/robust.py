"""Published adversarially robust CLIP checkpoints, by name: what they are and where to get them.

``ucat eval --model fare4-b32`` (names from :data:`ROBUST`) loads the checkpoint once it is on
disk, and otherwise tells an offline user exactly what to fetch and where to put it. Two shapes
are published (chs20/RobustVLM README.md, "Models" and "Additional Models"):

* a vision-encoder state dict (``.pt``, ``model.visual.load_state_dict(torch.load(f))`` on top
  of the named base model): ucat reads it with ``torch.load(weights_only=True)`` (tensors only,
  no code) into the base model's image tower;
* an open_clip repository on the Hugging Face hub (``hf-hub:chs20/...``), loaded by open_clip
  from the local hub cache.

Facts are as the publishers state them (RobustVLM README.md; its models come from Schlarmann et
al., ICML 2024, and the follow-up fra31/perceptual-metrics). Licenses: the RobustVLM repository
is MIT-licensed (its LICENSE file) and states no separate license for the weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

from ..errors import UcatError

ENV_WEIGHTS = "UCAT_WEIGHTS"
_RVLM = "chs20/RobustVLM README.md"
_LICENSE = "MIT (RobustVLM repository LICENSE; no separate license stated for the weights)"
_NC = "https://nc.mlcloud.uni-tuebingen.de/index.php/s/"


@dataclass(frozen=True)
class RobustCheckpoint:
    name: str
    arch: str                       # open_clip architecture of the base model
    base: str                       # the base model's pretrained tag (its text tower is used as is)
    method: str                     # tecoa | fare
    data: str                       # what it was fine-tuned on
    eps: float                      # L-inf training radius, 1/255 units
    source: str                     # where the facts are stated
    url: Optional[str] = None       # a vision-encoder .pt to download
    hub: Optional[str] = None       # an open_clip hf-hub repository id
    license: str = _LICENSE

    @property
    def filename(self) -> Optional[str]:
        return self.url.rsplit("/", 1)[-1] if self.url else None


def _l14(method: str, eps: int, share: str) -> RobustCheckpoint:
    return RobustCheckpoint(f"{method}{eps}-l14", "ViT-L-14", "openai", method, "ImageNet, 2 epochs", eps, _RVLM,
                            url=f"{_NC}{share}/download/{method}_eps_{eps}.pt", hub=f"chs20/{method}{eps}-clip")


def _b32(method: str, eps: int, share: str) -> RobustCheckpoint:
    return RobustCheckpoint(f"{method}{eps}-b32", "ViT-B-32", "openai", method, "ImageNet", eps, _RVLM,
                            url=f"{_NC}{share}/download/vitb32_{method}_eps_{eps}.pt")


def _laion(method: str, arch: str, base: str, repo: str, short: str) -> RobustCheckpoint:
    return RobustCheckpoint(f"{method}4-{short}-laion", arch, base, method, "ImageNet", 4,
                            _RVLM + " (from fra31/perceptual-metrics)", hub=f"chs20/{repo}")


ROBUST: Dict[str, RobustCheckpoint] = {c.name: c for c in (
    _l14("tecoa", 2, "5SQzfAbp8JHS3o7"), _l14("tecoa", 4, "92req4Pak5i56tX"),
    _l14("fare", 2, "d83Lqm8Jpowxp4m"), _l14("fare", 4, "jnQ2qmp9tst8kyQ"),
    _b32("tecoa", 1, "LHgi84RskrtYCiX"), _b32("fare", 1, "cCgQAS8QW9arj9d"),
    _b32("tecoa", 4, "RiWGQzBrqYNCaDk"), _b32("fare", 4, "3nMxBKEwbWnDymT"),
    _laion("tecoa", "ViT-B-32", "laion2b_s34b_b79k", "TeCoA4-ViT-B-32-laion2B-s34B-b79K", "b32"),
    _laion("fare", "ViT-B-32", "laion2b_s34b_b79k", "FARE4-ViT-B-32-laion2B-s34B-b79K", "b32"),
    _laion("tecoa", "ViT-B-16", "laion2b_s34b_b88k", "TeCoA4-ViT-B-16-laion2B-s34B-b88K", "b16"),
    _laion("fare", "ViT-B-16", "laion2b_s34b_b88k", "FARE4-ViT-B-16-laion2B-s34B-b88K", "b16"),
    _laion("tecoa", "convnext_base_w", "laion2b_s13b_b82k_augreg", "TeCoA4-convnext_base_w-laion2B-s13B-b82K-augreg",
           "convnext"),
    _laion("fare", "convnext_base_w", "laion2b_s13b_b82k_augreg", "FARE4-convnext_base_w-laion2B-s13B-b82K-augreg",
           "convnext"),
)}


class CheckpointNotDownloaded(UcatError, FileNotFoundError):
    """A published checkpoint that is not on this machine; the message says what to fetch and where."""


def weights_dir() -> Path:
    """Where ucat looks for downloaded checkpoints: ``$UCAT_WEIGHTS`` or ``~/.cache/ucat/weights``."""
    return Path(os.environ.get(ENV_WEIGHTS) or Path.home() / ".cache" / "ucat" / "weights").expanduser()


def resolve_robust(name: str) -> Tuple[str, Optional[str], Optional[str]]:
    """(architecture, pretrained, vision checkpoint) for ``load_clip`` + ``load_vision_weights``.

    Raises:
        KeyError: not a known name (the message lists them).
        CheckpointNotDownloaded: the ``.pt`` file is not in :func:`weights_dir`.
    """
    if name not in ROBUST:
        raise KeyError(f"unknown robust checkpoint {name!r}; known: {', '.join(ROBUST)} (ucat models --robust)")
    c = ROBUST[name]
    if c.url is None:                       # an open_clip hub repository: open_clip reads the hub cache
        return f"hf-hub:{c.hub}", None, None
    path = weights_dir() / c.filename
    if not path.is_file():
        alt = f", or the hub copy with: hf download {c.hub}" if c.hub else ""
        raise CheckpointNotDownloaded(
            f"{name} ({c.method} eps {c.eps:g}/255 on {c.arch} {c.base}) is not downloaded: fetch {c.url} and save it "
            f"as {path} (or set {ENV_WEIGHTS} to the folder holding {c.filename}){alt}; it also needs the base "
            f"weights {c.arch} pretrained={c.base!r} in open_clip's cache")
    return c.arch, c.base, str(path)


def describe(c: RobustCheckpoint) -> str:
    """One line of ``ucat models --robust``."""
    where = f"hf-hub:{c.hub}" if c.url is None else f"{c.filename} <- {c.url}"
    return (f"{c.name:24s} {c.method:6s} eps {c.eps:g}/255  {c.arch} ({c.base})  {c.data}  {where}  "
            f"[{c.license.split(' ')[0]}]")
