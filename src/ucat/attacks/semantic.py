"""Differentiable semantic image operations of the composite adversarial attack (CAA), in plain torch.

The full CAA (Hsiung et al., "Towards Compositional Adversarial Robustness: Generalizing Adversarial
Training to Composite Semantic Perturbations", CVPR 2023) perturbs hue, saturation, rotation,
brightness and contrast with kornia (IBM/composite-adv@3ade39a composite_adv/composite_attack.py:25-27:
``kornia.enhance.adjust_hue``, ``adjust_saturation``, ``kornia.geometry.transform.rotate``,
``adjust_brightness``, ``adjust_contrast``). kornia is not a ucat dependency, so the same operations
are written here from kornia's definitions (kornia v0.6.9, the version line IBM/composite-adv's
requirements.txt allows, ``kornia>=0.6.3``):

* HSV: ``rgb_to_hsv`` / ``hsv_to_rgb`` follow kornia/color/hsv.py:36-55 and 79-93 (hue in radians,
  [0, 2 pi); ``s = delta / (max + 1e-8)``); the tests check them against ``colorsys`` in float64.
* hue: ``h -> fmod(h + factor, 2 pi)`` in HSV (kornia/enhance/adjust.py:145-176, 179-220).
* saturation: ``s -> clamp(s * factor, 0, 1)`` in HSV (adjust.py:14-42, 102-142). This is *not*
  torchvision's saturation (a blend with the grey image).
* brightness: ``clamp(x + factor, 0, 1)``, additive (adjust.py:421-485); torchvision's is
  multiplicative.
* contrast: ``clamp(x * factor, 0, 1)``, multiplicative without mean subtraction
  (adjust.py:296-361); torchvision's blends with the mean grey level.
* rotation: counter-clockwise by ``angle`` degrees about ((W-1)/2, (H-1)/2), bilinear, zero
  padding, ``align_corners=True`` (kornia/geometry/transform/affwarp.py:35-43, 225-280 and
  imgwarp.py:372-430: the OpenCV-style matrix). The tests check it against torchvision's
  ``rotate`` (bilinear, zero fill), which samples the same points.

Every operation takes images (B, 3, H, W) in [0,1] and one parameter per image, (B,), and is
differentiable in both (the attack ascends the parameter's gradient).
"""
from __future__ import annotations

import math
from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F

#: CAA's components in the authors' index order (composite_attack.py:23-27: 0 hue ... 5 L-inf)
COMPONENTS: Tuple[str, ...] = ("hue", "saturation", "rotation", "brightness", "contrast", "linf")
SEMANTIC: Tuple[str, ...] = COMPONENTS[:5]
#: the parameter value at which each operation is the identity (composite_attack.py:149-192)
IDENTITY: Dict[str, float] = {"hue": 0.0, "saturation": 1.0, "rotation": 0.0, "brightness": 0.0, "contrast": 1.0}
#: the authors' ranges (composite_attack.py:44-47; the same for CIFAR-10 and ImageNet except L-inf):
#: hue in radians, rotation in degrees, saturation/contrast factors, brightness added
DEFAULT_RANGES: Dict[str, Tuple[float, float]] = {
    "hue": (-math.pi, math.pi), "saturation": (0.7, 1.3), "rotation": (-10.0, 10.0),
    "brightness": (-0.2, 0.2), "contrast": (0.7, 1.3)}


def _per_image(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1) (or (B, 1, 1, 1) for a (B, C, H, W) ``like``), same dtype and device."""
    value = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    return value.reshape(-1, *([1] * (like.ndim - 1)))


def rgb_to_hsv(image: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0,1] -> HSV with hue in radians [0, 2 pi), saturation and value in [0,1]."""
    max_rgb, argmax_rgb = image.max(-3)
    min_rgb = image.min(-3).values
    delta = max_rgb - min_rgb
    s = delta / (max_rgb + eps)
    delta = torch.where(delta == 0, torch.ones_like(delta), delta)
    rc, gc, bc = torch.unbind(max_rgb.unsqueeze(-3) - image, dim=-3)
    candidates = torch.stack((bc - gc, (rc - bc) + 2.0 * delta, (gc - rc) + 4.0 * delta), dim=-3)
    h = torch.gather(candidates / delta.unsqueeze(-3), -3, argmax_rgb.unsqueeze(-3)).squeeze(-3)
    h = 2.0 * math.pi * ((h / 6.0) % 1.0)
    return torch.stack((h, s, max_rgb), dim=-3)


def hsv_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) HSV (hue in radians, any real value) -> RGB."""
    h = image[..., 0, :, :] / (2 * math.pi)
    s, v = image[..., 1, :, :], image[..., 2, :, :]
    sector = torch.floor(h * 6) % 6
    f = (h * 6) % 6 - sector
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    sector = sector.long()
    # per sector (0..5) the (r, g, b) sources: (v,t,p) (q,v,p) (p,v,t) (p,q,v) (t,p,v) (v,p,q)
    table = torch.stack((v, q, p, p, t, v, t, v, v, q, p, p, p, p, t, v, v, q), dim=-3)
    index = torch.stack((sector, sector + 6, sector + 12), dim=-3)
    return torch.gather(table, -3, index)


def adjust_hue(image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Shift the hue by ``factor`` radians (B,) in HSV."""
    h, s, v = torch.chunk(rgb_to_hsv(image), 3, dim=-3)
    h = torch.fmod(h + _per_image(factor, h), 2 * math.pi)
    return hsv_to_rgb(torch.cat((h, s, v), dim=-3))


def adjust_saturation(image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Scale the HSV saturation by ``factor`` (B,), clamped to [0,1]."""
    h, s, v = torch.chunk(rgb_to_hsv(image), 3, dim=-3)
    s = torch.clamp(s * _per_image(factor, s), 0.0, 1.0)
    return hsv_to_rgb(torch.cat((h, s, v), dim=-3))


def adjust_brightness(image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Add ``factor`` (B,) to every pixel, clamped to [0,1]."""
    return torch.clamp(image + _per_image(factor, image), 0.0, 1.0)


def adjust_contrast(image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Multiply every pixel by ``factor`` (B,), clamped to [0,1]."""
    return torch.clamp(image * _per_image(factor, image), 0.0, 1.0)


def rotate(image: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate counter-clockwise by ``angle`` degrees (B,) about the image centre; bilinear, zeros outside.

    Output pixel (x, y) samples the input at ``c + R(-angle) (p - c)`` with c = ((W-1)/2, (H-1)/2),
    in pixel coordinates with y pointing down (kornia's ``get_rotation_matrix2d`` + ``warp_affine``).
    """
    b, _, height, width = image.shape
    rad = torch.as_tensor(angle, dtype=image.dtype, device=image.device).reshape(b, 1, 1) * (math.pi / 180)
    cos, sin = torch.cos(rad), torch.sin(rad)
    ys = torch.arange(height, dtype=image.dtype, device=image.device).view(1, height, 1) - (height - 1) / 2
    xs = torch.arange(width, dtype=image.dtype, device=image.device).view(1, 1, width) - (width - 1) / 2
    src_x = cos * xs - sin * ys                                                  # (B, H, W), centred
    src_y = sin * xs + cos * ys
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    grid = torch.stack((src_x / max((width - 1) / 2, 1e-12), src_y / max((height - 1) / 2, 1e-12)), dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


OPERATIONS: Dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "hue": adjust_hue, "saturation": adjust_saturation, "rotation": rotate,
    "brightness": adjust_brightness, "contrast": adjust_contrast}


def apply(name: str, image: torch.Tensor, value: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Operation ``name`` at ``value`` (B,); images where ``keep`` (B,) is True pass through unchanged.

    (The authors apply an already-misclassified image's component at its identity value, which the
    HSV round trip and the resampling reproduce only up to float rounding; ucat passes it through.)
    """
    out = OPERATIONS[name](image, value)
    if keep is None:
        return out
    return torch.where(keep.view(-1, 1, 1, 1), image, out)


__all__ = ["COMPONENTS", "DEFAULT_RANGES", "IDENTITY", "OPERATIONS", "SEMANTIC", "adjust_brightness",
           "adjust_contrast", "adjust_hue", "adjust_saturation", "apply", "hsv_to_rgb", "rgb_to_hsv", "rotate"]
