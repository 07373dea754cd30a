"""Training checkpoints: ``checkpoints/step-N/`` with ``weights.safetensors`` (the image tower),
``state.safetensors`` (the state's tensors) and ``state.json`` (everything else, and the SHA-256 of
both tensor files). No pickle: nothing in a checkpoint folder can execute code when read.

A checkpoint is written into ``.tmp-step-N-PID/`` and renamed into place, so a crash never leaves
half a checkpoint under a ``step-*`` name; :func:`clean_stale_tmp` removes the temporary folders of
writers that are gone. :func:`check_checkpoint` verifies a folder (readable JSON, both hashes,
finite weights); :func:`resolve_resume` falls back from a damaged newest checkpoint to the newest
intact one, and says so.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..errors import ConfigError, CorruptFileError, UnsafeFileError
from ..models.checkpoint import save_safetensors_atomic, save_vision_weights
from ..io import atomic_write_text, process_alive
from .state import decode, dumps_strict, encode, loads_strict

CHECKPOINT_DIR = "checkpoints"
WEIGHTS, STATE_TENSORS, STATE_JSON, LEGACY_STATE = "weights.safetensors", "state.safetensors", "state.json", "state.pt"
STATE_FORMAT, STATE_VERSION = "ucat-train-state", 1


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step-{step:08d}"


def list_checkpoints(run_dir: Path) -> List[Path]:
    """The ``step-*`` folders of ``run_dir``, oldest first (intact or not: see :func:`check_checkpoint`)."""
    d = Path(run_dir) / CHECKPOINT_DIR
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and p.name.startswith("step-")
                  and any((p / f).is_file() for f in (STATE_JSON, LEGACY_STATE)))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(run_dir: Path, step: int, encoder: nn.Module, state: Dict[str, Any],
                    metadata: Dict[str, Any], keep: int) -> Path:
    """Write the step-``step`` checkpoint (weights, state tensors, state JSON) and prune to ``keep``."""
    final = step_dir(run_dir, step)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_vision_weights(encoder, tmp / WEIGHTS, {**metadata, "step": step})
    tensors: Dict[str, torch.Tensor] = {}
    tree = encode(state, tensors)
    save_safetensors_atomic(tensors, tmp / STATE_TENSORS, {"format": STATE_FORMAT})
    manifest = {"format": STATE_FORMAT, "version": STATE_VERSION,
                "files": {name: sha256_file(tmp / name) for name in (WEIGHTS, STATE_TENSORS)}, "state": tree}
    atomic_write_text(tmp / STATE_JSON, dumps_strict(manifest))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in list_checkpoints(run_dir)[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _manifest(ckpt: Path) -> Dict[str, Any]:
    path = ckpt / STATE_JSON
    if not path.is_file():
        if (ckpt / LEGACY_STATE).is_file():
            raise UnsafeFileError(
                f"{ckpt / LEGACY_STATE}: a pickled training state (ucat before safetensors states); ucat does "
                f"not read pickles, since loading one can run code. Start a new run instead of resuming this one")
        raise CorruptFileError(f"{path}: missing; {ckpt} is not a complete checkpoint")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CorruptFileError(f"{path}: not a text file; the checkpoint is damaged") from None
    manifest = loads_strict(text, str(path))
    if not isinstance(manifest, dict) or manifest.get("format") != STATE_FORMAT:
        raise CorruptFileError(f"{path}: not a ucat training state (format {STATE_FORMAT!r} expected)")
    if manifest.get("version") != STATE_VERSION:
        raise CorruptFileError(f"{path}: training-state version {manifest.get('version')!r}; this ucat reads "
                               f"version {STATE_VERSION}")
    return manifest


def _read_tensors(path: Path) -> Dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CorruptFileError(f"{path}: not a readable safetensors file ({e}); the file is damaged") from None


def check_checkpoint(ckpt: Path) -> Optional[str]:
    """None if ``ckpt`` is intact (state JSON readable, both files match their SHA-256, every
    weight finite); else what is wrong. A pickled state raises :class:`UnsafeFileError`."""
    try:
        manifest = _manifest(ckpt)
    except CorruptFileError as e:
        return str(e)
    for name, digest in (manifest.get("files") or {}).items():
        path = ckpt / name
        if not path.is_file():
            return f"{path}: missing"
        if sha256_file(path) != digest:
            return f"{path}: its contents differ from the SHA-256 recorded in {STATE_JSON} (damaged)"
    try:
        weights = _read_tensors(ckpt / WEIGHTS)
    except CorruptFileError as e:
        return str(e)
    bad = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        return f"{ckpt / WEIGHTS}: non-finite weights ({', '.join(bad[:3])})"
    return None


def load_state(ckpt: Path) -> Dict[str, Any]:
    """The training state saved in ``ckpt`` (raises CorruptFileError / UnsafeFileError naming the file)."""
    manifest = _manifest(ckpt)
    tensors = _read_tensors(ckpt / STATE_TENSORS)
    return decode(manifest["state"], tensors, str(ckpt / STATE_TENSORS))


def _candidates(resume: str, run_dir: Path) -> List[Path]:
    p = Path(resume)
    if any((p / f).is_file() for f in (STATE_JSON, LEGACY_STATE, WEIGHTS)):
        return [p]
    found = list_checkpoints(p) if p.is_dir() else []
    if not found:
        raise ConfigError("resume", f"{resume}: no checkpoint there; give a run folder with a "
                                    f"'{CHECKPOINT_DIR}/step-*' folder, one such folder, or 'auto'")
    return found


def resolve_resume(resume: Optional[str], run_dir: Path, say: Callable[[str], None]) -> Optional[Path]:
    """The checkpoint to resume from: ``auto`` -> the newest intact one in ``run_dir`` (None, said,
    when there is none); a run folder -> its newest intact one; a step folder -> that one.

    A damaged newer checkpoint is skipped with a message; a step folder given explicitly must be intact.
    """
    if not resume:
        return None
    if resume == "auto":
        found = list_checkpoints(run_dir)
        if not found:
            say(f"ucat train: no checkpoint in {run_dir} to resume from; starting a fresh run")
            return None
    else:
        found = _candidates(resume, run_dir)
    problems = []
    for ckpt in reversed(found):
        problem = check_checkpoint(ckpt)
        if problem is None:
            if problems:
                say(f"ucat train: skipping damaged checkpoint(s): {'; '.join(problems)}; resuming from the "
                    f"newest intact one, {ckpt}")
            return ckpt
        problems.append(problem)
    raise CorruptFileError(f"no intact checkpoint to resume from: {'; '.join(problems)}")


def last_intact_checkpoint(run_dir: Path) -> Optional[Path]:
    """The newest checkpoint whose files verify and whose weights are all finite (None if none)."""
    for ckpt in reversed(list_checkpoints(run_dir)):
        try:
            if check_checkpoint(ckpt) is None:
                return ckpt
        except UnsafeFileError:
            continue
    return None


    return True


def clean_stale_tmp(run_dir: Path) -> List[Path]:
    """Remove ``.tmp-step-*-PID`` folders left by checkpoint writers that no longer run."""
    d = Path(run_dir) / CHECKPOINT_DIR
    removed = []
    for p in (sorted(d.glob(".tmp-step-*")) if d.is_dir() else []):
        pid = p.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and process_alive(int(pid)):
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def set_aside(run_dir: Path) -> Path:
    """Move an earlier run's checkpoints to ``checkpoints.previous`` (one generation kept)."""
    previous = Path(run_dir) / f"{CHECKPOINT_DIR}.previous"
    shutil.rmtree(previous, ignore_errors=True)
    os.replace(Path(run_dir) / CHECKPOINT_DIR, previous)
    return previous
