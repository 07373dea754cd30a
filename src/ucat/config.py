"""Configuration helpers shared by every command.

Units are converted once, here: perturbation sizes and step sizes are given in **1/255 pixel
units** at the CLI and in YAML (``--eps 1`` means 1/255 of the [0,1] pixel range) and converted
to fractions with :func:`to_fraction`. Every output states the unit.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Dict, Mapping

EPS_UNIT = "1/255"


def parse_eps(value: str | float | int, name: str = "--eps", upper: float | None = 64.0,
              refuse_fractions: bool = True) -> float:
    """Parse a perturbation size given in 1/255 units; returns the number of 1/255 steps.

    Accepts ``1``, ``0.5``, ``"4/255"`` (explicit unit). A value such as ``0.0039`` looks like a
    fraction of the pixel range and is refused with the conversion, since silently reading it as
    0.0039/255 would make the attack ~255x weaker than meant. ``upper`` bounds L-inf sizes (None
    for L2 radii, which may exceed 64/255); ``refuse_fractions=False`` skips the fraction check.
    """
    text = str(value).strip()
    if text.endswith("/255"):
        text = text[: -len("/255")]
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a number; give it in 1/255 units, e.g. {name} 1 (= 1/255)") from None
    if v < 0:
        raise ValueError(f"{name} {value!r} is negative; give a size >= 0 in 1/255 units")
    if refuse_fractions and 0 < v < 0.1:
        raise ValueError(
            f"{name} {value!r} looks like a fraction of the [0,1] pixel range, but ucat takes 1/255 units: "
            f"{v:g} of the range is {name} {v * 255:.4g} (i.e. {v * 255:.4g}/255)"
        )
    if upper is not None and v > upper:
        raise ValueError(f"{name} {value!r} is over {upper:g}/255; ucat takes 1/255 units, e.g. {name} 4 for 4/255")
    return v


def parse_cli_value(text: str) -> Any:
    """A ``key=value`` option value from the command line: '1e5' -> 1e5, '3' -> 3, 'true' -> True,
    'none' -> None, anything else stays a string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def to_fraction(v_255: float) -> float:
    """1/255 units -> fraction of the [0,1] pixel range."""
    return float(v_255) / 255.0


def fmt_eps(v_255: float) -> str:
    return f"{v_255:g}/255"


def load_config_file(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a YAML (or JSON) file of defaults; keys use the flag names with ``_`` or ``-``."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    with open(p) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"--config {path}: expected a mapping of option: value, got {type(data).__name__}")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def apply_config_file(parser: argparse.ArgumentParser, argv: list[str] | None) -> None:
    """timm-style: values from ``--config FILE`` become parser defaults; explicit flags still win."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", default=None)
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        return
    cfg = load_config_file(known.config)
    valid = {a.dest for a in parser._actions}
    unknown = sorted(set(cfg) - valid)
    if unknown:
        raise ValueError(f"--config {known.config}: unknown option(s) {', '.join(unknown)}; "
                         f"valid options are the command's flags (see --help)")
    parser.set_defaults(**cfg)


def package_versions() -> Dict[str, str]:
    """Versions of everything that changes numbers: recorded next to every result."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("ucat", "torch", "torchvision", "open_clip_torch", "pyautoattack", "numpy", "safetensors"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    try:
        import torch

        out["cuda"] = torch.version.cuda or "none"
        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # pragma: no cover - torch import problems surface elsewhere
        pass
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
        if sha.returncode == 0:
            out["git"] = sha.stdout.strip()
    except Exception:
        pass
    return out


def to_jsonable(obj: Any) -> Any:
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
    if hasattr(obj, "item") and callable(obj.item):
        try:
            return obj.item()
        except Exception:
            pass
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temporary file and ``os.replace`` so a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False) + "\n")


def save_run_config(out_dir: str | os.PathLike, config: Any, name: str = "config") -> None:
    """Save the resolved config (YAML, reusable with --config) and versions (JSON) in ``out_dir``."""
    import yaml

    out = Path(out_dir)
    data = to_jsonable(config)
    atomic_write_text(out / f"{name}.yaml", yaml.safe_dump(data, sort_keys=False))
    save_json(out / "versions.json", package_versions())

