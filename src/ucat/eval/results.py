"""Where results live and what they are keyed by: paths, fingerprints of the inputs, keys, locks.

A result is finished when its JSON exists and its ``key`` equals the key the current settings
give. The key holds everything the numbers depend on: the model's weights (a SHA-256 of every
weights file, cached by path, size and modification time), the data (the sorted list of files
with their sizes and modification times; a generated dataset's parameters), the protocol and
every setting. A changed input means the result is recomputed, and the rerun says which input
changed. Result paths are unique per input: a folder or CSV dataset's folder name carries a short
hash of its resolved path. A lock file per result being computed keeps two runs into one
``--out`` from computing (and overwriting) the same result: the second one is refused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from .. import __version__
from ..data import DATASETS, resolve_root
from ..data.build import is_path_dataset, locate
from ..errors import UcatError
from ..io import process_alive, save_json, to_jsonable
from ..models.clip import BUILTIN_WEIGHTS
from .config import EvalConfig, ModelSpec

RESULT_VERSION = 2
_HASH_CACHE = ".file_hashes.json"
_PACKAGE = Path(__file__).resolve().parents[1]


class ResultLockedError(UcatError):
    """Another live run is computing this result in the same output folder."""


def slug(text: str) -> str:
    """A file-name-safe form of a label or name (a path's last component)."""
    text = str(text).rstrip("/\\")
    if "/" in text or "\\" in text:
        text = Path(text).name or text
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "x"


def dataset_slug(dataset: str) -> str:
    """A registered dataset's name; a folder or CSV path's name plus 8 hex of its resolved path."""
    if dataset in DATASETS or not is_path_dataset(dataset):
        return slug(dataset)
    resolved = str(Path(dataset).expanduser().resolve())
    return f"{slug(dataset)}-{hashlib.sha256(resolved.encode()).hexdigest()[:8]}"


def result_path(out: Path, label: str, dataset: str, attack: str, eps: float) -> Path:
    return Path(out) / slug(label) / dataset_slug(dataset) / f"{slug(attack)}-eps{eps:g}.json"


# ----------------------------------------------------------------------------- fingerprints

class FileHashes:
    """SHA-256 of files, cached in ``<out>/.file_hashes.json`` by (resolved path, size, mtime)."""

    def __init__(self, out: Path):
        self.path = Path(out) / _HASH_CACHE
        try:
            self.cache: Dict[str, str] = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.cache = {}
        self.dirty = False

    def __call__(self, file: str | os.PathLike) -> str:
        p = Path(file).expanduser().resolve()
        st = p.stat()
        tag = f"{p}|{st.st_size}|{st.st_mtime_ns}"
        if tag not in self.cache:
            h = hashlib.sha256()
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
            self.cache[tag] = h.hexdigest()
            self.dirty = True
        return self.cache[tag]

    def save(self) -> None:
        if self.dirty and self.path.parent.is_dir():
            save_json(self.path, self.cache)
            self.dirty = False


def weights_fingerprint(spec: ModelSpec, hashes: FileHashes) -> Dict[str, Optional[str]]:
    """The content hash of every weights file the model is built from (a tag or hub id as given)."""
    out: Dict[str, Optional[str]] = {"pretrained": spec.pretrained, "checkpoint": None}
    if spec.pretrained and Path(spec.pretrained).expanduser().is_file():
        out["pretrained"] = "sha256:" + hashes(spec.pretrained)
    elif spec.pretrained is None and spec.model in BUILTIN_WEIGHTS:
        shipped = _PACKAGE / BUILTIN_WEIGHTS[spec.model]
        out["pretrained"] = "sha256:" + hashes(shipped) if shipped.is_file() else f"builtin:{spec.model}"
    if spec.checkpoint:
        if not Path(spec.checkpoint).expanduser().is_file():
            raise FileNotFoundError(f"checkpoint {spec.checkpoint} does not exist (or is not a file): give the "
                                    f"vision weights `ucat train` wrote, e.g. RUN/final.safetensors")
        out["checkpoint"] = "sha256:" + hashes(spec.checkpoint)
    return out


def _walk(root: Path) -> List[List[Any]]:
    """(relative path, size, mtime_ns) of every file under ``root``, sorted; symlinked folders not followed."""
    rows: List[List[Any]] = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            p = Path(folder) / f
            try:
                st = p.stat()
            except OSError:
                continue                                   # a dangling link: unreadable, skipped by the loader too
            rows.append([str(p.relative_to(root)), st.st_size, st.st_mtime_ns])
    return rows


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:32]


def data_fingerprint(dataset: str, data_root: Optional[str], split: Optional[str]) -> Dict[str, Any]:
    """What the data of ``dataset`` is: its file list (sizes, mtimes) or a generated dataset's parameters.

    A registered dataset is fingerprinted at the folder its builder reads under the data root (the
    folder :func:`ucat.data.build.locate` names, or the folder of the file it names), not the whole
    root that holds every dataset.
    """
    if dataset not in DATASETS and is_path_dataset(dataset):
        p = Path(dataset).expanduser().resolve()
        if p.is_file():                                    # a CSV: its text and the folder beside it
            return {"path": str(p), "csv": _digest(p.read_bytes().hex()), "files": _digest(_walk(p.parent))}
        return {"path": str(p), "files": _digest(_walk(p)) if p.is_dir() else "missing"}
    if dataset not in DATASETS:
        return {"name": dataset}                           # unknown: build_dataset will say so
    info = DATASETS.get(dataset)
    if not info.needs_root:
        return {"generated": info.name, "split": split or info.default_split, "ucat": __version__,
                "parameters": _digest({k: v for k, v in info.extra.items() if isinstance(v, (str, int, float, bool))})}
    root = resolve_root(info, data_root, split)
    found, where = locate(info, root, split or info.default_split)
    where = Path(where)
    if not found or not where.exists():
        return {"root": str(root.resolve()), "files": "missing"}              # build_dataset will say what is missing
    folder = where.parent if where.is_file() else where                     # e.g. cifar-10-batches-py/, imagenet/val/
    return {"root": str(root.resolve()), "folder": str(folder.resolve()), "files": _digest(_walk(folder))}


# ----------------------------------------------------------------------------- keys

_SETTINGS = ("split", "steps", "step_size", "norm", "restarts", "n_samples", "seed", "precision", "n_bins",
             "binning", "temperature", "uncertainty_alpha", "image_size", "templates", "classnames",
             "interpolation", "batch_size")


_CALIBRATION = ("calibrate", "calibration_setting", "calibration_fit", "calibration_fraction", "calibration_data",
                "calibration_split", "calibration_n")


def result_key(cfg: EvalConfig, spec: ModelSpec, dataset: str, attack: str, eps: float,
               weights: Dict[str, Any], data: Dict[str, Any]) -> Dict[str, Any]:
    """Everything the numbers of one result depend on."""
    key = {"version": RESULT_VERSION, "model": dataclasses.asdict(spec), "weights": weights, "dataset": dataset,
           "data": data, "protocol": cfg.protocol, "attack": attack, "eps": eps,
           "attack_options": cfg.attack_options.get(attack, {})}
    key.update({k: getattr(cfg, k) for k in _SETTINGS})
    if cfg.bootstrap:
        key["bootstrap"] = cfg.bootstrap
    if cfg.calibrate:                   # only then: results without it keep their keys
        key["calibration"] = {k: getattr(cfg, k) for k in _CALIBRATION}
    return to_jsonable(key)


def changed(old: Dict[str, Any], new: Dict[str, Any]) -> str:
    """Why a stored key differs from the current one, in words ("weights changed", "settings changed: steps")."""
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    words = [f"{k} changed" for k in ("weights", "data") if k in diff]
    rest = [k for k in diff if k not in ("weights", "data")]
    if rest:
        words.append("settings changed: " + ", ".join(rest))
    return "; ".join(words) or "settings changed"


def load_finished(path: Path, key: Dict[str, Any]) -> tuple:
    """(the finished result or None, why it is not finished or None)."""
    if not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, "the result file is unreadable"
    if not isinstance(data, dict) or not isinstance(data.get("key"), dict):
        return None, "the result file has no key"
    if data["key"] != key:
        return None, changed(data["key"], key)
    if not data.get("sanity", {}).get("checks", {}).get("finite", True):
        return None, "it held non-finite metrics"
    return data, None


# ----------------------------------------------------------------------------- locks


    return True


class ResultLock:
    """``<result>.lock`` while a result is computed; a live lock of another process is refused."""

    def __init__(self, path: Path):
        self.path = Path(str(path) + ".lock")
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale():
                    self.path.unlink(missing_ok=True)
                    continue
                raise ResultLockedError(f"{self.path.with_suffix('')} is being computed by another run "
                                        f"({self.path.read_text(errors='replace').strip()}); wait for it to finish, "
                                        f"or write to another output folder") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            self.held = True
            return

    def _stale(self) -> bool:
        try:
            owner = json.loads(self.path.read_text())
        except (OSError, ValueError):              # unreadable: stale unless just created (being written)
            try:
                return time.time() - self.path.stat().st_mtime > 30
            except OSError:
                return True
        return owner.get("host") == socket.gethostname() and not process_alive(int(owner.get("pid", -1)))

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
