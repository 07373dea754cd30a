"""Files ucat writes: one atomic writer, strict JSON, the run record next to every output.

Every file is written to a uniquely named temporary file in its target folder and moved into
place with ``os.replace``, so a crash, a full disk or a concurrent run never leaves half a file
and two writers never share a temporary name. JSON is strict (RFC 8259): NaN and infinities are
written as ``null`` (:func:`to_jsonable`); results that hold one say so in their own flags.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, Iterator, Mapping

import torch
import yaml


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary name is unique (``mkstemp``), so concurrent writers of the same file never
    collide; on any error the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _FILE_MODE)             # mkstemp makes 0600; a result file gets the usual umask mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` via a unique temporary file and ``os.replace``: never half a file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def process_alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (the owner of a lock or a temporary folder)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:            # it exists, under another user
        return True
    return True


def to_jsonable(obj: Any) -> Any:
    """Plain JSON types; non-finite floats become None (strict JSON has no NaN)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, argparse.Namespace):
        return to_jsonable(vars(obj))
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "item") and callable(obj.item):
        try:
            return to_jsonable(obj.item())
        except (TypeError, ValueError, RuntimeError):
            pass
    return str(obj)


def dumps_json(obj: Any) -> str:
    """Strict JSON text of ``obj`` (indent 2, trailing newline)."""
    return json.dumps(to_jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n"


def save_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, dumps_json(obj))


def package_versions() -> Dict[str, str]:
    """Versions of everything that changes numbers: recorded next to every result."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("ucat", "torch", "torchvision", "open_clip_torch", "pyautoattack", "numpy", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    out["cuda"] = torch.version.cuda or "none"
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name(0)
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        if sha.returncode == 0:
            out["git"] = sha.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def save_run_config(out_dir: str | os.PathLike, config: Any, name: str = "config") -> None:
    """Save the resolved config (YAML, reusable with --config) and versions (JSON) in ``out_dir``."""
    out = Path(out_dir)
    data = to_jsonable(config)
    atomic_write_text(out / f"{name}.yaml", yaml.safe_dump(data, sort_keys=False))
    save_json(out / "versions.json", package_versions())
