"""Loading any open_clip model, with pixels in [0,1] and normalization inside the model.

Attacks work in pixel space, so ucat's image transforms stop at ``ToTensor`` (values in [0,1])
and :class:`ImageEncoder` applies the model's mean/std itself. This is the RobustVLM/FARE
arrangement (normalization split off the preprocessing), and it fixes the class of bugs where an
attack clamps normalized values to [0,1].
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple
from urllib.parse import urlparse

import torch
import torch.nn as nn
import torch.nn.functional as F

import open_clip
from huggingface_hub import constants, try_to_load_from_cache
from open_clip.factory import load_state_dict as open_clip_load_state_dict
from torchvision import transforms as T

from ..errors import ConfigError, UcatError
from .checkpoint import READ_ERRORS, describe_mismatch, load_error
from .decode import to_rgb

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# Models that ship inside the package: name -> weights file under ucat/assets (set by ucat.world).
BUILTIN_WEIGHTS: Dict[str, str] = {"ucat-world": "assets/ucat-world.safetensors"}

_CONFIGS_ADDED = False


def register_model_configs() -> None:
    """Add ucat's own architecture configs (tiny test models, the world model) to open_clip."""
    global _CONFIGS_ADDED
    if _CONFIGS_ADDED:
        return
    cfg_dir = resources.files("ucat.models") / "model_configs"
    open_clip.add_model_config(Path(str(cfg_dir)))
    _CONFIGS_ADDED = True


def builtin_weights_path(name: str) -> Optional[Path]:
    rel = BUILTIN_WEIGHTS.get(name)
    if rel is None:
        return None
    return Path(str(resources.files("ucat") / rel))


class ImageEncoder(nn.Module):
    """Pixels in [0,1] -> (optional resize) -> normalize -> CLIP image tower -> embedding.

    The embedding is returned *unnormalized* (FARE's loss needs the raw embedding); callers that
    want cosine geometry normalize it. Inputs of another spatial size are resized bicubically to
    ``image_size`` inside the model, as the research code did for 32-px CIFAR images.
    """

    def __init__(self, visual: nn.Module, mean: Sequence[float], std: Sequence[float], image_size: int):
        super().__init__()
        self.visual = visual
        self.image_size = int(image_size)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 3, H, W) in [0,1] -> (B, D) unnormalized embedding."""
        return self.visual(self.normalize(x))


@dataclass
class ClipBundle:
    """Everything a command needs from a loaded CLIP."""

    model: nn.Module                 # the open_clip CLIP model (both towers)
    encoder: ImageEncoder            # pixels in [0,1] -> embedding; shares weights with model.visual
    tokenizer: Callable              # open_clip tokenizer: list[str] -> LongTensor (N, context)
    arch: str                        # open_clip architecture name (or hf-hub:... id)
    pretrained: Optional[str]        # tag, file path, or None (random init)
    image_size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]

    @property
    def logit_scale(self) -> float:
        """s = exp(logit_scale) as trained (100 for OpenAI CLIP)."""
        return float(self.model.logit_scale.detach().exp().item())

    def transform(self, resize: str = "crop") -> Callable:
        """PIL image -> float tensor in [0,1] at the model's resolution (no normalization)."""
        return image_transform(self.image_size, resize)


INTERPOLATIONS = ("bilinear", "bicubic")


def image_transform(image_size: int, resize: str = "crop", interpolation: str = "bilinear") -> Callable:
    """PIL image (any mode) -> float tensor (3, S, S) in [0,1].

    ``crop``: Resize(short side) + CenterCrop (the paper's default, 256->224 at 224 px);
    ``squash``: Resize((s, s)) (the paper's CIFAR/STL10 transform). ``interpolation``: ``bilinear``
    (default: torchvision's ``Resize`` default, which the official UCAT preprocessing uses in training
    and evaluation, VivienLu/UCAT utils.py:139-147) or ``bicubic`` (ucat before the official protocol;
    open_clip's preprocessing). The image is converted to RGB first with :func:`ucat.models.decode.to_rgb`
    (16-bit and float modes scaled, not clipped).
    """
    if interpolation not in INTERPOLATIONS:
        raise ConfigError("interpolation", f"must be 'bilinear' or 'bicubic', got {interpolation!r}")
    mode = T.InterpolationMode.BILINEAR if interpolation == "bilinear" else T.InterpolationMode.BICUBIC
    if resize == "crop":
        short = int(round(image_size * 256 / 224))
        ops = [T.Resize(short, interpolation=mode), T.CenterCrop(image_size)]
    elif resize == "squash":
        ops = [T.Resize((image_size, image_size), interpolation=mode)]
    else:
        raise ConfigError("resize", f"must be 'crop' or 'squash', got {resize!r}")
    return T.Compose([T.Lambda(_to_rgb), *ops, T.ToTensor()])


def _to_rgb(img):
    """Any PIL image -> RGB with its values scaled for the mode (:func:`ucat.models.decode.to_rgb`)."""
    return to_rgb(img) if getattr(img, "mode", "RGB") != "RGB" else img


def list_architectures() -> list[str]:
    register_model_configs()
    return open_clip.list_models()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes") or \
        os.environ.get("UCAT_OFFLINE", "0").lower() in ("1", "true", "yes")


def _reachable(url: str, timeout: float = 3.0) -> bool:
    host = urlparse(url).hostname
    if not host:
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


class WeightsUnavailableError(UcatError, RuntimeError):
    """Pretrained weights cannot be had here (not cached, and offline); the message names the fix."""


def _no_weights_error(what: str, arch: str, why: str) -> WeightsUnavailableError:
    return WeightsUnavailableError(
        f"cannot load pretrained weights {what} for {arch}: {why}. "
        f"Pass a local weights file instead, e.g. --model {arch} --pretrained /path/to/weights.safetensors "
        f"(.pt/.bin/.safetensors), or run offline on the shipped model with --model ucat-world."
    )


def _resolve_hf(repo_id: str, filenames: Sequence[str], arch: str, what: str) -> Optional[str]:
    """Local path of a cached hub file, or None if a download is possible; raises when neither."""
    for name in filenames:
        hit = try_to_load_from_cache(repo_id, name)
        if isinstance(hit, str):
            return hit
    if _offline():
        raise _no_weights_error(what, arch, "they are not in the local cache and HF_HUB_OFFLINE is set")
    if not _reachable(constants.ENDPOINT):
        raise _no_weights_error(what, arch, f"they are not in the local cache and {constants.ENDPOINT} is unreachable")
    return None


def _resolve_pretrained(arch: str, pretrained: Optional[str]) -> Tuple[str, Optional[str]]:
    """(model_name, pretrained) to pass to open_clip, with every failure turned into a clear error."""
    if pretrained is None or str(pretrained).lower() in ("", "none", "random"):
        builtin = builtin_weights_path(arch)
        if builtin is not None:
            if not builtin.is_file():
                raise FileNotFoundError(f"the shipped weights of {arch} are missing at {builtin}; reinstall ucat")
            return arch, str(builtin)
        return arch, None
    p = str(pretrained)
    if p.startswith("hf-hub:"):
        return p, None
    looks_like_file = p.endswith(WEIGHT_SUFFIXES) or os.sep in p or p.startswith(".")
    if looks_like_file:
        if not Path(p).is_file():
            raise FileNotFoundError(f"--pretrained {p}: no such weights file (expected a .pt/.bin/.safetensors file)")
        return arch, p
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if p not in tags:
        known = ", ".join(tags) if tags else "none (pass a local weights file)"
        raise ValueError(f"--pretrained {p!r} is not a known tag for {arch}; known tags: {known}")
    cfg = open_clip.get_pretrained_cfg(arch, p)
    what = f"'{p}'"
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])  # "org/repo/" -> ("org/repo", "")
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith(".bin"):
            names = [filename.replace(".bin", ".safetensors"), filename]
        local = _resolve_hf(repo_id, names, arch, what)
        return arch, (local or p)
    if cfg.get("url"):
        if _offline() or not _reachable(cfg["url"]):
            raise _no_weights_error(what, arch, "the download address is unreachable (offline)")
    return arch, p


def _create_model(name: str, weights: Optional[str], device) -> nn.Module:
    """``open_clip.create_model``; a local weights file that cannot be loaded is one line naming it: a
    pickle needing code (UnsafeFileError), a damaged file (CorruptFileError), or another architecture
    (ValueError with a few mismatching keys/shapes)."""
    local = weights is not None and Path(weights).is_file()
    try:
        return open_clip.create_model(name, pretrained=weights, device=torch.device(device))
    except READ_ERRORS as e:
        if not local:
            if isinstance(e, RuntimeError):
                raise RuntimeError(f"loading {name} with pretrained={weights!r} failed: {e}") from e
            raise
        if not (isinstance(e, RuntimeError) and "state_dict" in str(e)):
            raise load_error(Path(weights), e) from None
        expected = open_clip.create_model(name, pretrained=None).state_dict()
        state = open_clip_load_state_dict(weights)       # readable: create_model got as far as the keys
        raise ValueError(f"{weights} does not fit the architecture {name}: "
                         f"{describe_mismatch(expected, state) or e}") from None


LOCAL_DIR = "local-dir:"


def _check_local_dir(folder: str) -> None:
    """A ``local-dir:`` model folder in the open_clip Hugging Face layout (``ucat export`` writes one)."""
    d = Path(folder).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"{LOCAL_DIR}{folder}: no such folder")
    missing = [n for n in ("open_clip_config.json",) if not (d / n).is_file()]
    weights = [n for n in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin") if (d / n).is_file()]
    if missing or not weights:
        what = ", ".join(missing + ([] if weights else ["open_clip_model.safetensors"]))
        raise FileNotFoundError(f"{LOCAL_DIR}{folder} lacks {what} (a half-copied or half-downloaded model folder?); "
                                f"copy the whole folder again (ucat export writes all of it)")


def load_clip(model: str = "ucat-world", pretrained: Optional[str] = None,
              device: str | torch.device = "cpu") -> ClipBundle:
    """Load an open_clip CLIP by architecture name and weights source.

    Args:
        model: open_clip architecture (``ViT-B-32``), a ucat architecture (``ucat-tiny``,
            ``ucat-world``), an ``hf-hub:org/repo`` id, or a ``local-dir:DIR`` folder in the open_clip
            Hugging Face layout (what ``ucat export`` writes).
        pretrained: a pretrained tag of that architecture (``openai``), a local weights file
            (.pt/.bin/.safetensors), an ``hf-hub:`` id, or None: random init, except for models
            that ship their weights with ucat (``ucat-world``).
        device: where to put the model.
    Returns:
        A :class:`ClipBundle`; the model is in eval mode, fp32.
    Raises:
        ValueError / FileNotFoundError / RuntimeError with a message naming the problem and the fix.
    """
    register_model_configs()
    if not model:
        raise ValueError("--model is empty; give an open_clip architecture such as ViT-B-32 or ucat-world")
    if model.startswith(LOCAL_DIR):
        _check_local_dir(model[len(LOCAL_DIR):])
    elif not model.startswith("hf-hub:") and model not in open_clip.list_models():
        close = [m for m in open_clip.list_models() if model.lower().replace("/", "-") in m.lower()][:8]
        hint = f" Did you mean: {', '.join(close)}?" if close else " See `ucat models` for the list."
        raise ValueError(f"unknown architecture {model!r}.{hint}")
    if model.startswith("hf-hub:"):
        _resolve_hf(model[len("hf-hub:"):], ["open_clip_config.json"], model, "(config)")
    name, weights = _resolve_pretrained(model, pretrained)
    clip_model = _create_model(name, weights, device)
    clip_model.eval()
    pcfg = open_clip.get_model_preprocess_cfg(clip_model)
    size = pcfg.get("size", clip_model.visual.image_size)
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = tuple(pcfg.get("mean", OPENAI_MEAN))
    std = tuple(pcfg.get("std", OPENAI_STD))
    encoder = ImageEncoder(clip_model.visual, mean, std, size).to(device)
    tokenizer = open_clip.get_tokenizer(name)
    return ClipBundle(model=clip_model, encoder=encoder, tokenizer=tokenizer, arch=model,
                      pretrained=weights if weights is not None else pretrained,
                      image_size=size, mean=mean, std=std)
