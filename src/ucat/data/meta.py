"""Class names and prompt templates shipped as package data (``resources/benchmarks.json``).

Each benchmark entry holds ``classes`` (index = label: the names the official UCAT code encodes,
VivienLu/UCAT utils.py:253-280 and replace/datasets/*; the default), ``clip_classes`` (CLIP's
curated names, only where they differ), ``template`` (the paper's per-dataset prompt, the
default), ``ensemble`` (CLIP's template ensemble, the option), optional ``prompts`` (fixed
per-class sentences, PCAM), ``wnids`` (the ImageNet family), ``subset_of`` (ImageNet-A/-O/-R and
-Sketch take their names from ImageNet's entry by wnid), and the ``source`` / ``clip_source`` each
list was transcribed from (file:line). ``official_files`` keeps the official name files verbatim.
"""
from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from ..errors import ConfigError
from ..models.zero_shot import make_prompts

TEMPLATE_KINDS = ("paper", "ensemble")
CLASSNAME_KINDS = ("official", "clip")


@lru_cache(maxsize=1)
def _document() -> dict:
    text = resources.files("ucat.data").joinpath("resources", "benchmarks.json").read_text(encoding="utf-8")
    return json.loads(text)


def _benchmarks() -> Dict[str, dict]:
    return _document()["datasets"]


def official_file(name: str) -> List[str]:
    """An official name file as shipped, one string per line in the file's order
    (``imagenet_classes_names.txt``, ``tinyimagenet_classes_name.txt`` of VivienLu/UCAT)."""
    files = _document()["official_files"]
    if name not in files or name.startswith("_"):
        raise KeyError(f"no official file {name!r}; shipped: {', '.join(k for k in files if not k.startswith('_'))}")
    return list(files[name])


def benchmark_names() -> List[str]:
    return list(_benchmarks())


def benchmark_meta(name: str) -> dict:
    """The package-data entry of a benchmark (a copy); KeyError names the known ones."""
    data = _benchmarks()
    if name not in data:
        raise KeyError(f"no shipped class names for {name!r}; known: {', '.join(data)}")
    entry = json.loads(json.dumps(data[name]))
    parent = entry.get("subset_of")
    if parent:                                       # ImageNet-A/-O/-R/-Sketch: names of their wnids
        base = data[parent]
        for key in ("classes", "clip_classes"):
            if key in base:
                by_wnid = dict(zip(base["wnids"], base[key]))
                entry[key] = [by_wnid[w] for w in entry["wnids"]]
    return entry


def check_classnames_kind(kind: str) -> str:
    """``"official"`` or ``"clip"``, else a ConfigError naming the parameter."""
    if kind not in CLASSNAME_KINDS:
        raise ConfigError("classnames", f"must be 'official' (the official UCAT code's names) or 'clip' "
                                        f"(CLIP's curated names), got {kind!r}")
    return kind


def select_classes(meta: dict, kind: str = "official") -> List[str]:
    """A benchmark entry's class names of one kind; ``clip`` falls back to ``classes`` where the
    two agree (then no ``clip_classes`` is stored)."""
    check_classnames_kind(kind)
    return list(meta["clip_classes"] if kind == "clip" and "clip_classes" in meta else meta["classes"])


def classnames(name: str, kind: str = "official") -> List[str]:
    """A benchmark's class names in label order: ``official`` (default) or ``clip``."""
    return select_classes(benchmark_meta(name), kind)


def benchmark_prompts(name: str, classnames: str = "official",
                      templates: Union[None, str, Sequence[str]] = None) -> List[List[str]]:
    """Per-class prompt lists of a benchmark, in label order, exactly as the text head encodes them
    (``ZeroShotClassifier.from_dataset`` on ``build_dataset(name, classnames=..., templates=...)``),
    without the data: fixed sentences (PCAM) with the paper's templates, else every template filled
    with every class name (class-major: all of class 0's prompts first)."""
    meta = benchmark_meta(name)
    if (templates is None or templates == "paper" or list(templates) == ["paper"]) and meta.get("prompts"):
        return [list(p) for p in meta["prompts"]]
    tpl = resolve_templates(templates, [meta["template"]], meta.get("ensemble"))
    return make_prompts(select_classes(meta, classnames), tpl)


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
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"templates file {p} does not exist; give a text file with one template such as "
                                f"'a photo of a {{}}.' per line, or 'paper' / 'ensemble'")
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    return [ln for ln in lines if ln and not ln.startswith("#")]


def text_fingerprint(classes: Sequence[str], templates: Sequence[str], prompts=None) -> str:
    """A short hash of what the text head is built from (class names, templates, prompts), for reports."""
    blob = json.dumps({"classes": list(classes), "templates": list(templates),
                       "prompts": [list(p) for p in prompts] if prompts is not None else None}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def readable(name: str) -> str:
    """A folder name or label value as a class name: ``"003.golden_retriever"`` -> ``"golden retriever"``."""
    s = re.sub(r"^\d+[._\- ]+(?=\D)", "", str(name).strip())
    s = re.sub(r"[_\-]+", " ", s)
    return re.sub(r"\s+", " ", s).strip() or str(name)
