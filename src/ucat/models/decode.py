"""Any PIL image -> 8-bit RGB with the pixel values its mode means (ucat's one image decoder).

Pillow's ``convert("RGB")`` is right for the 8-bit modes but clips wider ones: a 16-bit PNG
(mode ``I;16``, values 0..65535) comes out almost all white, a float image (``F``, values in
[0,1]) almost all black. :func:`to_rgb` scales those to 0..255 first:

- ``1``, ``L``, ``LA``, ``P``, ``PA``, ``RGBA``, ``RGBX``, ``RGBa``, ``La``, ``CMYK``, ``YCbCr``:
  Pillow's conversion (gray replicated to three channels; palettes looked up, through RGBA so a
  transparency entry is honoured; alpha dropped, as ``convert("RGB")`` and torchvision do;
  CMYK -> R = (255 - C)(255 - K)/255 per channel).
- ``I;16``, ``I;16L``, ``I;16B``, ``I;16N`` (unsigned 16-bit): ``round(v / 257)``, so 65535 -> 255
  and 257 -> 1 exactly (the scale of the type).
- ``I`` (32-bit integer; older Pillow opens 16-bit PNGs so): values in 0..255 are kept, values in
  0..65535 are divided by 257; any other range is min-max scaled to 0..255.
- ``F`` (32-bit float): values in [0, 1] are multiplied by 255, values in [0, 255] kept; any other
  range is min-max scaled.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

_PILLOW_RGB = ("1", "L", "LA", "La", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr")
_UINT16 = ("I;16", "I;16L", "I;16B", "I;16N")


def _scaled_uint8(values: np.ndarray, mode: str) -> np.ndarray:
    """(H, W) raw values of a wide single-channel mode -> (H, W) uint8."""
    a = values.astype(np.float64)
    finite = a[np.isfinite(a)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if mode in _UINT16 or (mode == "I" and lo >= 0 and hi > 255 and hi <= 65535):
        out = a / 257.0
    elif mode == "F" and lo >= 0 and hi <= 1:
        out = a * 255.0
    elif lo >= 0 and hi <= 255:
        out = a
    else:                                                   # an unusual range: stretch it to 0..255
        out = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    out = np.nan_to_num(out, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """A PIL image of any mode Pillow opens -> an ``RGB`` image (see the module docstring)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("P", "PA"):
        return img.convert("RGBA").convert("RGB")
    if mode in _PILLOW_RGB:
        return img.convert("RGB")
    if mode in _UINT16 or mode in ("I", "F"):
        gray = _scaled_uint8(np.asarray(img), mode)                             # (H, W)
        return Image.fromarray(np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2)))      # (H, W, 3) uint8 -> RGB
    return img.convert("RGB")                               # LAB, HSV, ...: Pillow's own conversion
