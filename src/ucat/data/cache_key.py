"""What a data cache is keyed by: the deterministic preprocessing, the source files, the decoder.

:func:`preprocessing` reads ucat's default transform (:func:`ucat.models.image_transform`) into the
description the sidecar records (and refuses any other transform); :func:`source_fingerprint`
digests every source file's (path, size, mtime); :func:`cache_stem` names the files of one
(dataset, split, preprocessing). Used by :mod:`ucat.data.cache`.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from torchvision import transforms as T

from ..errors import ConfigError
from .base import FileListDataset, LabeledImageDataset, WrappedDataset
from .wds import WdsDataset

_FILE_LISTS = ("_image_files", "_images", "_samples", "samples", "imgs")   # torchvision datasets' file lists


# ----------------------------------------------------------------------------- what is cached
def preprocessing(transform: Optional[Callable], what: str = "dataset") -> Dict[str, Any]:
    """The deterministic preprocessing of ``transform`` as the sidecar records it.

    Only ucat's default transform is cacheable: ``Compose([Lambda(to_rgb)?, Resize, CenterCrop?,
    ToTensor()])`` with a fixed output size; anything else (a custom or random transform) is refused.
    """
    ops = list(getattr(transform, "transforms", None) or [])
    if not ops or not isinstance(ops[-1], T.ToTensor):
        raise ConfigError("data_cache", f"{what}: the cache stores the output of ucat's default preprocessing (resize, "
                          f"centre crop, ToTensor); this dataset's transform is {transform!r}. Build it without "
                          f"transform= or leave the cache out")
    desc: Dict[str, Any] = {"resize": None, "interpolation": None, "crop": None, "antialias": None}
    for op in ops[:-1]:
        if isinstance(op, T.Resize):
            desc.update(resize=list(op.size) if isinstance(op.size, (list, tuple)) else int(op.size),
                        interpolation=op.interpolation.value, max_size=op.max_size, antialias=op.antialias)
        elif isinstance(op, T.CenterCrop):
            desc["crop"] = [int(v) for v in op.size]
        elif not isinstance(op, T.Lambda):
            raise ConfigError("data_cache", f"{what}: transform step {op!r} is not deterministic ucat preprocessing "
                              f"(resize, centre crop); the cache cannot store it")
    size = desc["crop"] or (desc["resize"] if isinstance(desc["resize"], list) else None)
    if size is None:
        raise ConfigError("data_cache", f"{what}: the transform has no fixed output size (no centre crop); "
                          f"the cache needs one array shape")
    desc["output"] = [3, int(size[0]), int(size[-1])]
    desc["steps"] = [_describe_op(op) for op in ops[:-1]] + ["PILToTensor (uint8); /255 to float32 at batch time"]
    return desc


def _describe_op(op) -> str:
    if isinstance(op, T.Lambda):
        fn = op.lambd
        return f"Lambda({getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))})"
    return repr(op).replace("\n", " ")


def uint8_transform(transform: Callable) -> Callable:
    """The same transform with its final ``ToTensor`` replaced by ``PILToTensor``: uint8 (3, H, W)."""
    return T.Compose(list(transform.transforms[:-1]) + [T.PILToTensor()])


def decoder_versions() -> Dict[str, str]:
    """The libraries whose versions decide the decoded and resized pixels."""
    out = {}
    for pkg in ("Pillow", "torchvision"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:     # pragma: no cover - both are dependencies
            out[pkg] = "not installed"
    return out


# ----------------------------------------------------------------------------- the source's fingerprint
def _stat_row(path: str) -> List[Any]:
    try:
        st = os.stat(path)
        return [str(path), st.st_size, st.st_mtime_ns]
    except OSError:
        return [str(path), -1, -1]                 # missing now: unreadable, as the loader would find it


def _walk(folder: Path) -> List[List[Any]]:
    """(relative path, size, mtime_ns) of every file under ``folder``, sorted."""
    rows = []
    for d, dirs, files in os.walk(folder):
        dirs.sort()
        for f in sorted(files):
            row = _stat_row(os.path.join(d, f))
            rows.append([os.path.relpath(row[0], folder), row[1], row[2]])
    return rows


def _file_list(base) -> Optional[List[str]]:
    """Absolute image paths a torchvision dataset keeps in one of its list attributes, if any."""
    for attr in _FILE_LISTS:
        items = getattr(base, attr, None)
        if not isinstance(items, (list, tuple)) or not items:
            continue
        paths = [str(it[0] if isinstance(it, (tuple, list)) else it) for it in items]
        if all(os.path.isabs(p) for p in paths):
            return paths
    return None


def source_files(ds) -> Tuple[Optional[List[str]], Optional[Path]]:
    """(the files ``ds`` reads, or None; else the folder they all lie in)."""
    if isinstance(ds, FileListDataset):
        return [p for p, _ in ds.samples], None                    # folders, CSVs, the ImageNet family
    if isinstance(ds, WdsDataset):
        return [str(s) for s in ds.shards], None                   # CLIP_benchmark webdataset shards
    base = getattr(ds, "base", None) if isinstance(ds, WrappedDataset) else None
    if base is None:
        return None, None
    files = _file_list(base)
    if files is not None:
        return files, None
    for folder in (getattr(base, "_base_folder", None),
                   os.path.join(base.root, base.base_folder) if hasattr(base, "base_folder") else None,
                   getattr(base, "root", None)):
        if folder is not None and Path(folder).is_dir():
            return None, Path(folder)
    return None, None


def source_fingerprint(ds) -> Dict[str, Any]:
    """Digest of every source file's (path, size, mtime_ns), with the file count and total bytes."""
    files, folder = source_files(ds)
    if files is None and folder is None:
        raise ConfigError("data_cache", f"{getattr(ds, 'name', '') or type(ds).__name__}: cannot tell which files it "
                          f"reads, so a cache could not tell when it goes stale; leave the cache out")
    rows = [_stat_row(p) for p in files] if files is not None else _walk(folder)
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:32]
    return {"kind": "files" if files is not None else "folder", "folder": str(folder) if folder else None,
            "n_files": len(rows), "bytes": int(sum(max(0, r[1]) for r in rows)), "digest": digest}


def labels_digest(labels: Sequence[int]) -> str:
    return hashlib.sha256(json.dumps([int(v) for v in labels]).encode()).hexdigest()[:32]


# ----------------------------------------------------------------------------- where it lives
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "x"


def cache_stem(ds, prep: Dict[str, Any]) -> str:
    """``<dataset>-<split>-<H>x<W>-<resize>-<interpolation>-<8 hex of the exact steps>``; a folder or
    CSV dataset is named by its last path component plus 8 hex of its path."""
    name = str(getattr(ds, "name", "") or type(ds).__name__)
    if "/" in name or os.sep in name:
        name = f"{Path(name.rstrip('/')).name}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    split = str(getattr(ds, "split", None) or "all")
    size = prep["resize"]
    short = size if isinstance(size, int) else "x".join(map(str, size))
    resize = "squash" if prep["crop"] is None else f"resize{short}-crop"
    steps = hashlib.sha256(json.dumps(prep["steps"]).encode()).hexdigest()[:8]
    _, h, w = prep["output"]
    return _slug(f"{name}-{split}-{h}x{w}-{resize}-{prep['interpolation']}-{steps}")


def cacheable(ds) -> bool:
    """Whether ``ds`` decodes files (a single-label :class:`LabeledImageDataset`); generated sets are not."""
    return isinstance(ds, LabeledImageDataset) and not getattr(ds, "multilabel", False)
