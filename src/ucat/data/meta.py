"""Class names and prompt templates shipped as package data (``resources/benchmarks.json``).

Each benchmark entry holds ``classes`` (readable names, index = label), ``template`` (the paper's
per-dataset prompt, the default), ``ensemble`` (CLIP's template ensemble, the option), optional
``prompts`` (fixed per-class sentences, PCAM) and ``wnids`` (ImageNet, TinyImageNet), plus the
``source`` each list was transcribed from.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from typing import Dict, List, Optional, Sequence, Union

TEMPLATE_KINDS = ("paper", "ensemble")


@lru_cache(maxsize=1)
def _benchmarks() -> Dict[str, dict]:
    text = resources.files("ucat.data").joinpath("resources", "benchmarks.json").read_text(encoding="utf-8")
    return json.loads(text)["datasets"]


def benchmark_names() -> List[str]:
    return list(_benchmarks())


def benchmark_meta(name: str) -> dict:
    """The package-data entry of a benchmark (a copy); KeyError names the known ones."""
    data = _benchmarks()
    if name not in data:
        raise KeyError(f"no shipped class names for {name!r}; known: {', '.join(data)}")
    return json.loads(json.dumps(data[name]))


def classnames(name: str) -> List[str]:
    return benchmark_meta(name)["classes"]


def ensemble_templates(name: Optional[str] = None) -> List[str]:
    """CLIP's template ensemble for a benchmark; without a name, ImageNet's 80 templates."""
    return benchmark_meta(name or "imagenet")["ensemble"]


def resolve_templates(spec: Union[None, str, Sequence[str]], paper: Sequence[str],
                      ensemble: Optional[Sequence[str]] = None) -> List[str]:
    """``None``/``"paper"`` -> the paper's template(s); ``"ensemble"`` -> CLIP's ensemble (ImageNet's
    80 when the dataset has none); a string with ``{}`` -> that one template; a ``.txt`` path -> one
    template per line; a list -> that list."""
    if not isinstance(spec, str) and spec is not None and len(spec) == 1 and (
            spec[0] in TEMPLATE_KINDS or str(spec[0]).lower().endswith(".txt")):
        spec = spec[0]              # a CLI list such as ["ensemble"] or ["my_templates.txt"]
    if spec is None or spec == "paper":
        return list(paper)
    if spec == "ensemble":
        return list(ensemble) if ensemble else ensemble_templates()
    if isinstance(spec, str) and "{" not in spec and spec.lower().endswith(".txt"):
        spec = read_templates_file(spec)
    if isinstance(spec, str):
        spec = [spec]
    out = [str(t) for t in spec]
    if not out:
        raise ValueError("templates are empty: pass 'paper', 'ensemble' or templates such as 'a photo of a {}.'")
    bad = [t for t in out if "{}" not in t and "{c}" not in t]
    if bad:
        raise ValueError(f"template {bad[0]!r} has no '{{}}' placeholder for the class name, "
                         f"e.g. 'a photo of a {{}}.'; or pass templates='paper' or 'ensemble'")
    return out


def read_templates_file(path: str) -> List[str]:
    """One template per line (blank lines and ``#`` comments skipped)."""
    from pathlib import Path

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"templates file {p} does not exist; give a text file with one template such as "
                                f"'a photo of a {{}}.' per line, or 'paper' / 'ensemble'")
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def text_fingerprint(classes: Sequence[str], templates: Sequence[str], prompts=None) -> str:
    """A short hash of what the text head is built from (class names, templates, prompts), for reports."""
    import hashlib

    blob = json.dumps({"classes": list(classes), "templates": list(templates),
                       "prompts": [list(p) for p in prompts] if prompts is not None else None}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def readable(name: str) -> str:
    """A folder name or label value as a class name: ``"003.golden_retriever"`` -> ``"golden retriever"``."""
    s = re.sub(r"^\d+[._\- ]+(?=\D)", "", str(name).strip())
    s = re.sub(r"[_\-]+", " ", s)
    return re.sub(r"\s+", " ", s).strip() or str(name)
