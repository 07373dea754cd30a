"""No-grad forwards of a frozen encoder under CPU autocast: a low-precision copy instead of autocast.

Why (measured, docs/performance.md "bf16 on a CPU with native bf16"): under CPU bf16 autocast a
frozen ViT's no-grad forward is several times slower than the same forward of a bf16 copy, for two
reasons that both come from autocast itself:

* ``nn.MultiheadAttention`` leaves its fused fast path whenever autocast is enabled, and the slow
  path calls ``F.linear`` on the (L, N, E) *transposed* (non-contiguous) input. Without grad,
  ``at::matmul`` does not fold such an input into one matrix product: it broadcasts the in-projection
  weight to (L, E, 3E) and the CPU ``bmm`` copies it, 50 x 768 x 2304 elements per block for
  ViT-B-32 (with grad it folds, so the attack and trainable passes are not affected).
* autocast caches its bf16 weight casts only for leaf tensors that require grad, so a frozen
  encoder's weights are re-cast on every op.

:class:`LowPrecisionCopy` keeps a copy of the encoder's image tower in the autocast dtype and runs
it with autocast off. The input is normalized in float32 and then cast to that dtype, as autocast
casts the input of the first convolution; the matrix products see the same bf16 weights autocast
would make. The rest of the tower (LayerNorm, softmax, GELU, the residual stream) then runs in bf16
storage where autocast kept float32, so the features differ from autocast's by bf16 rounding (the
loss check in ``benchmarks/bench_train_step.py --loss-check`` keeps fp32 vs bf16 within 1%).

Only CPU autocast takes this path; float32 (no autocast) and CUDA run the module itself, unchanged.
"""
from __future__ import annotations

import copy
from typing import Optional, Tuple

import torch
import torch.nn as nn


def cpu_autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    """The dtype CPU autocast casts to when it is enabled for ``device_type`` 'cpu', else None."""
    if device_type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return None
    return torch.get_autocast_dtype("cpu")


def _state_key(module: nn.Module, device: torch.device, dtype: torch.dtype) -> Tuple:
    # a copy is stale once a source tensor is replaced (.to, load_state_dict with assign) or changed
    # in place (load_state_dict copies into the parameters and bumps their version counter)
    tensors = list(module.parameters()) + list(module.buffers())
    return (str(device), dtype, tuple((t.data_ptr(), t._version) for t in tensors))


def _cast_copy(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """A deep copy of ``module`` with every floating parameter and buffer in ``dtype``, built without a
    second float32 copy (the deepcopy memo maps each source tensor to its cast)."""
    memo = {}
    for p in module.parameters():
        if p.is_floating_point():
            memo[id(p)] = nn.Parameter(p.detach().to(dtype), requires_grad=False)
    for b in module.buffers():
        if b.is_floating_point():
            memo[id(b)] = b.detach().to(dtype)
    return copy.deepcopy(module, memo).eval().requires_grad_(False)


class LowPrecisionCopy:
    """A frozen encoder's no-grad forward, run by a low-precision copy under CPU autocast.

    ``runner(encoder, images)`` returns ``encoder(images)`` computed as described in the module
    docstring when CPU autocast is enabled, and calls ``encoder(images)`` itself otherwise (float32
    is untouched, bit for bit). The copy is built on first use and rebuilt when the encoder's
    tensors, the device or the dtype change. It is held outside the module tree, so it never enters
    a ``state_dict`` or the optimizer. An encoder with ``normalize`` and ``visual`` (ucat's
    :class:`ucat.models.ImageEncoder`) is normalized in float32 and only its ``visual`` is copied;
    any other module is copied whole and fed the input cast to the dtype.
    """

    def __init__(self):
        self._key: Optional[Tuple] = None
        self._copy: Optional[nn.Module] = None

    def _tower(self, encoder: nn.Module) -> nn.Module:
        split = hasattr(encoder, "normalize") and isinstance(getattr(encoder, "visual", None), nn.Module)
        return encoder.visual if split else encoder

    def copy_for(self, encoder: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
        tower = self._tower(encoder)
        key = _state_key(tower, device, dtype)
        if key != self._key:
            self._copy, self._key = None, None          # free the stale copy before building the new one
            self._copy, self._key = _cast_copy(tower, dtype), key
        return self._copy

    @torch.no_grad()
    def __call__(self, encoder: nn.Module, images: torch.Tensor) -> torch.Tensor:
        dtype = cpu_autocast_dtype(images.device.type)
        if dtype is None:
            return encoder(images)
        split = self._tower(encoder) is not encoder
        lowp = self.copy_for(encoder, images.device, dtype)
        with torch.autocast("cpu", enabled=False):
            x = encoder.normalize(images.float()) if split else images
            return lowp(x.to(dtype))
