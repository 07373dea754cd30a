"""The training state on disk without pickle: tensors in safetensors, everything else in strict JSON.

A checkpoint's state (optimizer, scheduler, GradScaler, every rank's RNG states, the position in
the data, the best held-out result, the config) is a nest of dicts, lists, tuples, numbers,
strings, tensors and numpy arrays. :func:`encode` splits it into a flat ``{name: tensor}`` dict
(written with safetensors) and a JSON tree in which each tensor is a ``{"__tensor__": name}``
reference; :func:`decode` puts it back together. Nothing in either file can execute code when read
(safetensors holds raw tensor bytes; JSON holds data), unlike ``torch.load(weights_only=False)``.

Tags keep what JSON cannot say: ``{"__tuple__": [...]}`` (Python's ``random`` state is a tuple),
``{"__items__": [[key, value], ...]}`` for dicts with non-string keys (optimizer states are keyed by
parameter index), ``{"__float__": "nan"}`` for non-finite floats (strict JSON has no NaN),
``{"__ndarray__": name, "dtype": ...}`` for numpy arrays (numpy's RNG state).
"""
from __future__ import annotations

import json
import math
from typing import Any, Dict

import numpy as np
import torch

from ..errors import CorruptFileError

_TAGS = ("__tensor__", "__tuple__", "__items__", "__float__", "__ndarray__")


def encode(obj: Any, tensors: Dict[str, torch.Tensor], name: str = "s") -> Any:
    """``obj`` as a JSON-able tree; its tensors are added to ``tensors`` (CPU copies) by path name."""
    if isinstance(obj, torch.Tensor):
        tensors[name] = obj.detach().to("cpu").clone().contiguous()
        return {"__tensor__": name}
    if isinstance(obj, np.ndarray):
        tensors[name] = torch.from_numpy(obj.astype(np.int64) if obj.dtype.kind in "iu" else obj.copy())
        return {"__ndarray__": name, "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {"__float__": repr(obj)}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, tensors, f"{name}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode(v, tensors, f"{name}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and k not in _TAGS for k in obj):
            return {k: encode(v, tensors, f"{name}.{k}") for k, v in obj.items()}
        return {"__items__": [[encode(k, tensors, f"{name}.k{i}"), encode(v, tensors, f"{name}.{i}")]
                              for i, (k, v) in enumerate(obj.items())]}
    raise TypeError(f"training state: cannot store a {type(obj).__name__} at {name} (tensors, numbers, "
                    f"strings, lists, tuples and dicts only)")


def decode(tree: Any, tensors: Dict[str, torch.Tensor], where: str = "state") -> Any:
    """Inverse of :func:`encode`. ``where`` names the files in errors."""
    if isinstance(tree, list):
        return [decode(v, tensors, where) for v in tree]
    if not isinstance(tree, dict):
        return tree
    if "__tensor__" in tree or "__ndarray__" in tree:
        key = tree.get("__tensor__", tree.get("__ndarray__"))
        if key not in tensors:
            raise CorruptFileError(f"{where}: the state refers to tensor {key!r}, which its .safetensors file lacks")
        if "__tensor__" in tree:
            return tensors[key]
        return tensors[key].numpy().astype(np.dtype(tree["dtype"]))
    if "__tuple__" in tree:
        return tuple(decode(v, tensors, where) for v in tree["__tuple__"])
    if "__items__" in tree:
        return {decode(k, tensors, where): decode(v, tensors, where) for k, v in tree["__items__"]}
    if "__float__" in tree:
        return float(tree["__float__"])
    return {k: decode(v, tensors, where) for k, v in tree.items()}


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def loads_strict(text: str, where: str) -> Any:
    """Parse strict JSON (no NaN/Infinity literals); a damaged file is a :class:`CorruptFileError`."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except ValueError as e:
        raise CorruptFileError(f"{where}: not a valid JSON file ({e}); the file is damaged") from None


def dumps_strict(tree: Any) -> str:
    return json.dumps(tree, indent=1, allow_nan=False) + "\n"
