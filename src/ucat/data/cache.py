"""A preprocessed image cache: decode, resize and centre-crop once; memory-map uint8 pixels afterwards.

``ucat data cache NAME`` (or ``--data-cache DIR`` on ``ucat train`` / ``ucat eval``, which builds it on
first use) writes, per (dataset, split, preprocessing), two files into the cache folder:

* ``<stem>.npy``: a raw NumPy array (N, 3, H, W) uint8, written with ``numpy.lib.format.open_memmap``
  and read with ``np.load(..., mmap_mode="r", allow_pickle=False)``: no pickle, no copy in memory;
* ``<stem>.json``: the sidecar: labels, class names, the preprocessing, the source fingerprint (every
  file's path, size and mtime, digested), the decoder versions, the indices of unreadable images.

Why it is exact: ucat's default transform (:func:`ucat.models.image_transform`) resizes and crops the
decoded *PIL* image, which stays uint8, and quantizes nowhere else; the only float step is the last,
``ToTensor``'s ``uint8 -> float32 / 255``. The cache stores the pixels just before that step
(``PILToTensor`` of the same resized, cropped image) and the loader does that one division at batch
time (:func:`ucat.data.loader.to_float_pixels`), so every batch equals the uncached batch bit for bit.

Staleness: the sidecar is compared with the dataset now (the source fingerprint, the labels, the
preprocessing, the format version, the Pillow/torchvision versions that decoded it, the array's
shape and the ``.npy`` file's own size and mtime); a missing, half-written or stale cache is never
used: :func:`cached_dataset` rebuilds it, saying why in one line; :func:`open_cache` refuses it.
Both files are written through :func:`ucat.io.atomic_path` (the ``.npy`` first, the sidecar last).
"""
from __future__ import annotations

import copy
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..errors import ConfigError, UcatError
from ..io import atomic_path, atomic_write_text, to_jsonable
from .base import UnreadableImageError
from .cache_key import (cache_stem, cacheable, decoder_versions, labels_digest, preprocessing, source_fingerprint,
                        uint8_transform)
from .loader import usable_cpus

CACHE_FORMAT = "ucat-image-cache"
CACHE_VERSION = 1
_ATTRS = ("classes", "templates", "prompts", "name", "split")


class StaleCacheError(UcatError):
    """A cache that does not match its dataset now (or is incomplete); rebuild it with ``ucat data cache``."""


# ----------------------------------------------------------------------------- where it lives
def cache_files(ds, cache_dir: str | os.PathLike) -> Tuple[Path, Path]:
    """(the ``.npy`` array, the ``.json`` sidecar) of ``ds`` under ``cache_dir``."""
    stem = cache_stem(ds, preprocessing(getattr(ds, "transform", None), getattr(ds, "name", "dataset")))
    root = Path(cache_dir).expanduser()
    return root / f"{stem}.npy", root / f"{stem}.json"


def _expected(ds) -> Dict[str, Any]:
    """What a fresh sidecar of ``ds`` must say (the fields compared when the cache is opened)."""
    prep = preprocessing(ds.transform, ds.name or "dataset")
    return {"format": CACHE_FORMAT, "version": CACHE_VERSION, "preprocessing": prep,
            "source": source_fingerprint(ds), "labels_sha256": labels_digest(ds.targets),
            "n": len(ds), "decoder": decoder_versions()}


# ----------------------------------------------------------------------------- fresh, missing or stale
def _mismatch(meta: Dict[str, Any], want: Dict[str, Any]) -> str:
    """Why a sidecar does not describe the dataset now ('' when it does)."""
    if meta.get("format") != CACHE_FORMAT or meta.get("version") != CACHE_VERSION:
        return f"it was written by another cache format ({meta.get('format')} v{meta.get('version')})"
    if meta.get("preprocessing") != want["preprocessing"]:
        return "it was built with different preprocessing"
    old, new = meta.get("source") or {}, want["source"]
    if old != new:
        then, now = (f"{d.get('n_files')} files, {d.get('bytes')} bytes" for d in (old, new))
        return (f"the source files changed since it was built ({then} then, {now} now)" if then != now else
                f"the source files were rewritten since it was built (the same {now}; other modification times)")
    if meta.get("n") != want["n"] or meta.get("labels_sha256") != want["labels_sha256"]:
        return "the dataset's items or labels changed since it was built"
    if meta.get("decoder") != want["decoder"]:
        return f"it was decoded with {meta.get('decoder')}, this environment has {want['decoder']}"
    return ""


def _array_problem(npy: Path, meta: Dict[str, Any]) -> str:
    """Why the ``.npy`` does not hold what its sidecar says ('' when it does)."""
    rec = meta.get("array") or {}
    try:
        st = npy.stat()
    except OSError:
        return f"its array {npy.name} is missing"
    if (st.st_size, st.st_mtime_ns) != (rec.get("size"), rec.get("mtime_ns")):
        return f"its array {npy.name} was truncated or replaced after the sidecar was written"
    try:
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        return f"its array {npy.name} is unreadable ({e})"
    if arr.dtype != np.uint8 or list(arr.shape) != meta.get("shape"):
        return f"its array {npy.name} is {arr.dtype} {list(arr.shape)}, the sidecar says uint8 {meta.get('shape')}"
    return ""


def check_cache(ds, cache_dir: str | os.PathLike) -> Tuple[str, str, Optional[Dict[str, Any]]]:
    """(``"fresh"`` | ``"missing"`` | ``"stale"``, why, the sidecar) of the cache of ``ds`` in ``cache_dir``."""
    npy, side = cache_files(ds, cache_dir)
    if not side.exists() and not npy.exists():
        return "missing", "not built yet", None
    try:
        meta = json.loads(side.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        why = f"its sidecar {side.name} is missing or unreadable ({type(e).__name__}): a half-written cache"
        return "stale", why, None
    why = _mismatch(meta, _expected(ds)) or _array_problem(npy, meta)
    return ("stale", why, meta) if why else ("fresh", "", meta)


def open_cache(ds, cache_dir: str | os.PathLike) -> "CachedDataset":
    """The fresh cache of ``ds``; a missing or stale one is refused (:class:`StaleCacheError`)."""
    status, why, meta = check_cache(ds, cache_dir)
    if status != "fresh":
        npy, _ = cache_files(ds, cache_dir)
        raise StaleCacheError(f"data cache {npy}: {why}; rebuild it with `ucat data cache` (or delete it)")
    return CachedDataset(cache_files(ds, cache_dir)[0], meta, ds)


def cached_dataset(ds, cache_dir: Optional[str | os.PathLike], num_workers: Optional[int] = None,
                   rebuild: bool = True):
    """``ds`` read from its cache in ``cache_dir`` (built on first use, rebuilt when stale, saying why on
    stderr); ``ds`` itself when ``cache_dir`` is None or ``ds`` is generated in memory (one warning)."""
    if cache_dir is None or str(cache_dir) == "":
        return ds
    if not cacheable(ds):
        warnings.warn(f"data cache: {getattr(ds, 'name', '') or type(ds).__name__} is not a single-label dataset "
                      f"decoded from image files (generated in memory, or multi-label); it is read without the cache",
                      stacklevel=2)
        return ds
    status, why, meta = check_cache(ds, cache_dir)
    npy, _ = cache_files(ds, cache_dir)
    if status == "fresh":
        return CachedDataset(npy, meta, ds)
    if not rebuild:
        raise StaleCacheError(f"data cache {npy}: {why}; rebuild it with `ucat data cache` (or delete it)")
    print(f"data cache {npy}: {why}; building it ({len(ds)} images)", file=sys.stderr)
    return build_cache(ds, cache_dir, num_workers)


# ----------------------------------------------------------------------------- building
class _Indexed(Dataset):
    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return i, self.ds[i]


def _as_list(batch):
    return batch


def build_cache(ds, cache_dir: str | os.PathLike, num_workers: Optional[int] = None,
                progress: bool = False) -> "CachedDataset":
    """Decode, resize and crop every image of ``ds`` once into its cache (both files written atomically).

    ``num_workers``: decoding processes (default: none for under 256 images, else the usable cores, at
    most 8). The fingerprint is taken before decoding, so a file changed meanwhile makes it stale.
    """
    if not cacheable(ds):
        raise ConfigError("data_cache", f"{getattr(ds, 'name', '') or type(ds).__name__}: only single-label datasets "
                          f"decoded from image files are cached (generated sets need no cache)")
    if len(ds) == 0:
        raise ConfigError("data_cache", f"{ds.name}: the dataset is empty; nothing to cache")
    want = _expected(ds)
    npy, side = cache_files(ds, cache_dir)
    n, (_, h, w) = len(ds), want["preprocessing"]["output"]
    src = copy.copy(ds)
    src.transform = uint8_transform(ds.transform)
    workers = num_workers if num_workers is not None else (0 if n < 256 else min(8, usable_cpus()))
    loader = DataLoader(_Indexed(src), batch_size=32, num_workers=int(workers), collate_fn=_as_list)
    unreadable: List[int] = []
    t0 = time.perf_counter()
    with atomic_path(npy) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, h, w))
        for chunk in (_progress(loader, n) if progress else loader):
            for i, item in chunk:
                if item is None:
                    unreadable.append(i)
                    continue
                x = item[0]
                if x.dtype != torch.uint8 or tuple(x.shape) != (3, h, w):
                    raise UcatError(f"data cache: {ds._describe(i)} became {x.dtype} {tuple(x.shape)}, not uint8 "
                                    f"(3, {h}, {w}); the preprocessing is not the cacheable default")
                arr[i] = x.numpy()
        arr.flush()
        del arr
    st = npy.stat()
    meta = dict(want, dataset=ds.name, split=getattr(ds, "split", None), shape=[n, 3, h, w], dtype="uint8",
                labels=[int(v) for v in ds.targets], classes=list(ds.classes), unreadable=sorted(unreadable),
                unreadable_files=[ds._describe(i) for i in sorted(unreadable)[:20]],
                array={"file": npy.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns},
                build_s=round(time.perf_counter() - t0, 3), workers=int(workers))
    atomic_write_text(side, json.dumps(to_jsonable(meta), separators=(",", ":"), allow_nan=False) + "\n")
    return CachedDataset(npy, meta, ds)


def _progress(loader, n: int):
    with tqdm(total=n, unit="img", desc="caching", file=sys.stderr) as bar:
        for chunk in loader:
            bar.update(len(chunk))
            yield chunk


# ----------------------------------------------------------------------------- reading
class CachedDataset(Dataset):
    """Items ``(uint8 (3, H, W) tensor, label)`` from a cache's memory-mapped array (``None`` for an image
    that was unreadable when the cache was built, as the source dataset returns). Class names, templates
    and prompts are the live dataset's (they do not change pixels); labels are the sidecar's, equal to
    the live ones (checked). The loader turns the uint8 pixels into the float32 the source yields."""

    yields_uint8 = True

    def __init__(self, path: Path, meta: Dict[str, Any], source):
        self.path = Path(path)
        self.meta = {k: v for k, v in meta.items() if k not in ("labels", "unreadable")}
        self.labels = [int(v) for v in meta["labels"]]
        self.unreadable = frozenset(int(i) for i in meta.get("unreadable", []))
        self.strict = bool(getattr(source, "strict", False))
        for a in _ATTRS:
            setattr(self, a, getattr(source, a, None))
        self.multilabel = False
        self._array = None
        if self.unreadable:
            first = (meta.get("unreadable_files") or ["?"])[0]
            warnings.warn(f"{self.name or 'dataset'}: {len(self.unreadable)} image(s) were unreadable when the cache "
                          f"{self.path.name} was built (e.g. {first}); they are skipped and counted", stacklevel=3)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def targets(self) -> List[int]:
        return self.labels

    @property
    def num_classes(self) -> int:
        return len(self.classes or [])

    def _arr(self) -> np.ndarray:
        if self._array is None:          # opened lazily, once per process (loader workers open their own)
            self._array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        return self._array

    def __getitem__(self, i: int):
        i = int(i)
        if i in self.unreadable:
            if self.strict:
                raise UnreadableImageError(f"{self.name or 'dataset'}: item {i} was unreadable when the cache "
                                           f"{self.path} was built; replace the file and rebuild the cache")
            return None
        return torch.from_numpy(np.array(self._arr()[i])), self.labels[i]      # (3, H, W) uint8, a copy

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_array"] = None           # a memory map does not travel to worker processes; each reopens it
        return state

    def __repr__(self) -> str:
        return f"CachedDataset(name={self.name!r}, n={len(self)}, file={str(self.path)!r})"
