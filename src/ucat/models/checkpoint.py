"""Model weights on disk: safetensors everywhere (no pickle, no code execution on load).

Three kinds of file:

* **vision weights** (:func:`save_vision_weights`): the image tower only, keys ``visual.*``, with
  a metadata header (method, eps, steps, data, step, architecture) - what ``ucat train`` writes in
  its checkpoints;
* **open_clip export** (:func:`export_open_clip`): the full CLIP state dict, loadable with
  ``open_clip.create_model(arch, pretrained=FILE)`` as well as by ``ucat eval --checkpoint FILE``;
* **community checkpoints** read by :func:`load_vision_weights`: torch files holding
  ``vision_encoder_state_dict`` (TeCoA / PMG-AFT / TGA-ZSR / UCAT research code), ``state_dict``,
  a bare visual or full-model state dict, with or without a ``module.`` prefix.
"""
from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional

import torch
import torch.nn as nn
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..errors import CorruptFileError, UnsafeFileError
from ..io import atomic_path, to_jsonable

VISUAL_PREFIX = "visual."


def save_safetensors_atomic(tensors: Dict[str, torch.Tensor], path: str | os.PathLike,
                            metadata: Optional[Dict[str, str]] = None) -> None:
    """Write a safetensors file through :func:`ucat.io.atomic_path`: never half a file."""
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _metadata_strings(metadata: Optional[Mapping[str, Any]]) -> Dict[str, str]:
    """safetensors headers hold str -> str; non-strings are JSON-encoded."""
    out: Dict[str, str] = {}
    for k, v in (metadata or {}).items():
        out[str(k)] = v if isinstance(v, str) else json.dumps(to_jsonable(v))
    return out


def _cpu_copy(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage; contiguous + cpu for a portable file.
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}


def _visual_of(encoder_or_visual: nn.Module) -> nn.Module:
    return getattr(encoder_or_visual, "visual", encoder_or_visual)


def save_vision_weights(encoder: nn.Module, path: str | os.PathLike,
                        metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Write the image tower of ``encoder`` (an ``ImageEncoder`` or the visual module itself) as
    safetensors with keys ``visual.<name>``; ``metadata`` goes into the header. Atomic."""
    visual = _visual_of(encoder)
    if hasattr(visual, "module"):  # DistributedDataParallel
        visual = visual.module
    state = {VISUAL_PREFIX + k: v for k, v in visual.state_dict().items()}
    meta = {"format": "ucat-vision", **_metadata_strings(metadata)}
    path = Path(path)
    save_safetensors_atomic(_cpu_copy(state), path, meta)
    return path


def export_open_clip(model: nn.Module, path: str | os.PathLike,
                     metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Write the full open_clip CLIP state dict as safetensors (atomic).

    The file loads with ``open_clip.create_model(arch, pretrained=FILE)`` and with
    :func:`load_vision_weights` (``ucat eval --checkpoint FILE``).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"export path {path} must end in .safetensors (open_clip picks the loader by suffix)")
    meta = {"format": "open_clip", **_metadata_strings(metadata)}
    save_safetensors_atomic(_cpu_copy(model.state_dict()), path, meta)
    return path


def read_metadata(path: str | os.PathLike) -> Dict[str, Any]:
    """The header metadata of a safetensors file (JSON values decoded); {} for other files."""
    path = Path(path)
    if path.suffix != ".safetensors":
        return {}
    try:
        with safe_open(str(path), framework="pt") as fh:
            raw = fh.metadata() or {}
    except (SafetensorError, OSError) as e:
        raise load_error(path, e) from None
    out: Dict[str, Any] = {}
    for k, v in raw.items():
        try:
            out[k] = json.loads(v)
        except (TypeError, ValueError):
            out[k] = v
    return out


def load_error(path: Path, e: BaseException) -> Exception:
    """A weights file that cannot be read, as one line naming it: a pickle that would need code to
    load (:class:`UnsafeFileError`), or a damaged / truncated / empty file (:class:`CorruptFileError`)."""
    if isinstance(e, pickle.UnpicklingError) and "weights_only" in str(e).replace(" ", "_").lower() \
            or "Weights only load failed" in str(e):
        return UnsafeFileError(f"{path}: a pickle that needs code to load (not only tensors); ucat refuses it, "
                               f"since loading it could run code. Save the weights as safetensors (or a plain "
                               f"state dict of tensors) and pass that file")
    size = path.stat().st_size if path.is_file() else 0
    what = "empty" if size == 0 else "truncated or not a weights file"
    return CorruptFileError(f"{path}: cannot be read ({what}: {str(e).splitlines()[0] if str(e) else type(e).__name__})")


#: errors torch / safetensors raise for files that are not (intact) weight files.
READ_ERRORS = (pickle.UnpicklingError, SafetensorError, EOFError, zipfile.BadZipFile, RuntimeError, OSError,
               ValueError, AttributeError, ImportError, IndexError, KeyError, TypeError)


def _read_state(path: Path) -> Dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except READ_ERRORS as e:
        raise load_error(path, e) from None
    if isinstance(obj, Mapping):
        for key in ("vision_encoder_state_dict", "state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CorruptFileError(f"{path}: not a state dict (expected tensors by name, or a dict holding "
                         f"'vision_encoder_state_dict' / 'state_dict')")
    return dict(obj)


def extract_visual_state(state: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The image-tower entries of any supported state dict, keyed as ``model.visual`` expects."""
    state = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}
    if any(k.startswith(VISUAL_PREFIX) for k in state):
        return {k[len(VISUAL_PREFIX):]: v for k, v in state.items() if k.startswith(VISUAL_PREFIX)}
    return dict(state)  # a bare visual state dict


def describe_mismatch(expected: Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor]) -> str:
    """'' when ``state`` has exactly the keys and shapes of ``expected``; else a few of the
    missing, unexpected and differently shaped weights, in one line."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shape_bad = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
    if shape_bad:
        k = shape_bad[0]
        parts.append(f"{len(shape_bad)} with another shape (e.g. {k}: file {tuple(state[k].shape)} vs "
                     f"model {tuple(expected[k].shape)})")
    return "; ".join(parts)


def load_vision_weights(bundle, path: str | os.PathLike) -> Dict[str, Any]:
    """Load a fine-tuned image tower into ``bundle.model.visual`` (and so ``bundle.encoder``).

    Accepts a ``ucat train`` checkpoint/export (.safetensors), an open_clip full-model file, or a
    community torch checkpoint (see the module docstring).

    Returns:
        the file's metadata (empty for files without any).
    Raises:
        FileNotFoundError: no such file.
        UnsafeFileError: a pickle that would need code to load (never executed).
        CorruptFileError: an empty, truncated or damaged file.
        ValueError: the file does not match the architecture (missing, unexpected or
            differently shaped weights), with the first offending names.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file (give a .safetensors file written by "
                                f"`ucat train`, an open_clip checkpoint, or a .pt/.pth training checkpoint)")
    state = extract_visual_state(_read_state(path))
    meta = read_metadata(path)
    visual = bundle.model.visual
    expected = visual.state_dict()
    problem = describe_mismatch(expected, state)
    if problem:
        trained_on = meta.get("arch")
        hint = f" (the file was trained from {trained_on}; load it into that architecture)" if trained_on else ""
        raise ValueError(f"{path} does not fit the image tower of {bundle.arch}: {problem}{hint}")
    ref = next(iter(expected.values()))
    visual.load_state_dict({k: v.to(device=ref.device, dtype=expected[k].dtype) for k, v in state.items()})
    return meta


__all__ = ["READ_ERRORS", "describe_mismatch", "export_open_clip", "extract_visual_state", "load_error", "load_vision_weights", "read_metadata",
           "save_vision_weights"]
