"""``build_dataset``: one name (registry name, folder path or CSV path) -> a labelled dataset.

Roots: ``root`` (``--data-root``; ``{dataset}`` is replaced by the registry name), else the
``UCAT_DATA`` environment variable, else a clear error. The root is the folder that *contains*
each dataset's own folder (torchvision's convention: ``ROOT/cifar-10-batches-py``,
``ROOT/tiny-imagenet-200``, ``ROOT/imagenet/val``...), so one root serves all 16 benchmarks.
"""
from __future__ import annotations

import inspect
import os
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

from ..errors import ConfigError
from ..models import image_transform
from ..models.clip import INTERPOLATIONS
from ..models.zero_shot import DEFAULT_TEMPLATE
from .folder import CSV_LAYOUT, FOLDER_LAYOUT, csv_dataset, image_folder, read_classnames_file
from .meta import benchmark_meta, check_classnames_kind, resolve_templates, select_classes, text_fingerprint
from .registry import COLLECTIONS, DATASETS, DatasetInfo
from .wds import CLIP_BENCHMARK_NAMES, wds_dataset

ENV_ROOT = "UCAT_DATA"


def expand_datasets(names: Sequence[str]) -> List[str]:
    """Expand collections (``zs16``, ...) in order; comma-separated items are split; duplicates dropped."""
    out: List[str] = []
    for item in names:
        for name in (s.strip() for s in str(item).split(",")):
            if not name:
                continue
            members = COLLECTIONS.get(name) or COLLECTIONS.get(name.lower())
            for m in (members if members is not None else [name]):
                if m not in out:
                    out.append(m)
    return out


def is_path_dataset(name: str) -> bool:
    return str(name).lower().endswith(".csv") or os.sep in str(name) or "/" in str(name) or Path(str(name)).is_dir()


def env_override(name: str) -> str:
    """The per-dataset root variable: ``fgvc_aircraft`` -> ``UCAT_DATA_FGVC_AIRCRAFT``."""
    return f"{ENV_ROOT}_" + "".join(c if c.isalnum() else "_" for c in name.upper())


def resolve_root(info: DatasetInfo, root: Optional[Union[str, os.PathLike]] = None,
                 split: Optional[str] = None) -> Path:
    """The data root for ``info``: ``root`` (with ``{dataset}``), else ``$UCAT_DATA_<NAME>`` (a
    per-dataset override, e.g. ``UCAT_DATA_IMAGENET``), else ``$UCAT_DATA``; error if none.

    Several roots may be given separated by ``os.pathsep`` (``:`` on Linux); the first one holding
    the dataset wins (the first one when none does, so the error names it).
    """
    if root is None or str(root) == "":
        root = os.environ.get(env_override(info.name)) or os.environ.get(ENV_ROOT) or None
    if root is None:
        raise FileNotFoundError(
            f"no data root for dataset {info.name!r}: pass --data-root DIR (root=DIR) or set {ENV_ROOT}=DIR "
            f"(or {env_override(info.name)}=DIR for this dataset alone). "
            f"Under DIR it expects {info.layout}. How to get it: {info.how_to_get}")
    text = os.fspath(root)
    parts = [p for p in text.split(os.pathsep) if p] if isinstance(text, str) else [text]
    roots = [Path(str(p).replace("{dataset}", info.name)).expanduser() for p in parts] or [Path(text)]
    for r in roots:
        if locate(info, r, split or info.default_split)[0]:
            return r
    return roots[0]


def missing_message(info: DatasetInfo, root: Path, expected: Path, split: str) -> str:
    return (f"dataset {info.name!r} (split {split!r}) not found: expected {expected} under the data root {root}. "
            f"Layout: {info.layout}. How to get it: {info.how_to_get}")


def locate(info: DatasetInfo, root: Path, split: str):
    """(found, the path it expected) for a dataset under ``root``."""
    check = info.extra.get("check")
    if check is None:
        return root.exists(), root
    return check(root, split)


def default_transform(info: Optional[DatasetInfo], image_size: int, resize: Optional[str] = None,
                      interpolation: str = "bilinear") -> Callable:
    """The protocol transform: ``resize`` ("crop" | "squash") overrides the dataset's own;
    ``interpolation`` ("bilinear", the official UCAT preprocessing's torchvision default,
    VivienLu/UCAT utils.py:139-147; or "bicubic") is the resize filter."""
    resize = resize or (info.extra.get("resize", "crop") if info is not None else "crop")
    return image_transform(image_size, resize, interpolation)


def _accepts(fn: Callable, name: str) -> bool:
    """Whether ``fn`` names the parameter ``name`` (a ``**kw`` catch-all does not count)."""
    return name in inspect.signature(fn).parameters


def build_dataset(name: str, root: Optional[Union[str, os.PathLike]] = None, split: Optional[str] = None,
                  transform: Optional[Callable] = None, image_size: int = 224, download: bool = False,
                  templates: Union[None, str, Sequence[str]] = None, template: Optional[str] = None,
                  classnames_file: Optional[str] = None, strict: bool = False, resize: Optional[str] = None,
                  classnames: str = "official", interpolation: str = "bilinear", **kw):
    """Build a labelled image dataset with ``.classes``, ``.templates`` and optional ``.prompts``.

    Args:
        name: a registry name (``cifar10``, ``tinyimagenet``, ... see ``ucat data list``), a folder
            in ImageFolder layout, or a ``.csv`` file of ``path,label`` rows.
        root: the data root (``{dataset}`` is replaced by the name); default ``$UCAT_DATA``.
            Ignored for folder/CSV names and for generated datasets.
        split: default the paper's protocol split (``test``; ``val`` for TinyImageNet/ImageNet;
            ``all`` for EuroSAT, Caltech101/256, SUN397). A split the dataset lacks is an error.
        transform: PIL -> tensor; default the dataset's protocol transform at ``image_size``
            (pixels in [0,1], no normalization).
        download: let torchvision download a missing dataset.
        templates: ``"paper"`` (default), ``"ensemble"`` (CLIP's ensemble) or a list of templates.
        template: one template string with ``{}`` (wins over ``templates``).
        classnames_file: one class name per line, replacing the shipped/derived names (count checked).
        strict: raise on an unreadable image instead of skipping it (skips are counted).
        resize: ``"crop"`` or ``"squash"`` to override the dataset's protocol resize (only used
            when ``transform`` is None).
        classnames: ``"official"`` (default: the names and prompts the official UCAT code encodes,
            VivienLu/UCAT utils.py:253-280 and replace/datasets/*) or ``"clip"`` (CLIP's curated names,
            where they differ; see ``resources/benchmarks.json``). Ignored for folder/CSV datasets.
        interpolation: ``"bilinear"`` (default, as the official preprocessing, utils.py:139-147) or
            ``"bicubic"``: the resize filter of the default transform.
        **kw: passed to the dataset's builder (e.g. ``partition=2`` for DTD).
    """
    name = str(name)
    spec = template if template is not None else templates
    _check_choices(classnames, interpolation)
    if name.startswith(WDS_PREFIX):
        return _wds_dataset(name[len(WDS_PREFIX):], root, split, transform, image_size, spec, classnames,
                            interpolation, strict)
    if name not in DATASETS and is_path_dataset(name):
        if kw:
            raise ValueError(f"options {', '.join(kw)} do not apply to a folder or CSV dataset")
        tf = transform or default_transform(None, image_size, resize, interpolation)
        return _path_dataset(Path(name).expanduser(), split, tf, classnames_file, spec, strict)
    info = _registered(name)
    split = split or info.default_split
    if info.splits and split not in info.splits:
        whole = " (the paper evaluates it on the whole dataset: split 'all')" if "all" in info.splits else ""
        raise ValueError(f"dataset {info.name!r} has no split {split!r}; its splits: {', '.join(info.splits)}{whole}")
    call: Dict = dict(kw)
    if info.needs_root:
        root_path = resolve_root(info, root, split)
        found, expected = locate(info, root_path, split)
        if not found and not (download and info.extra.get("downloadable")):
            raise FileNotFoundError(missing_message(info, root_path, expected, split))
        if transform is None:
            transform = default_transform(info, image_size, resize, interpolation)
    else:
        root_path = Path(str(root).replace("{dataset}", info.name)) if root else None
    for opt, val in (("download", download), ("strict", strict), ("image_size", image_size),
                     ("classnames", classnames)):
        if _accepts(info.builder, opt):
            call[opt] = val
    return _finish(info.builder(root_path, split, transform, **call), info, split, spec, classnames_file)


WDS_PREFIX = "wds:"


def _wds_dataset(target: str, root, split, transform, image_size, spec, classnames, interpolation, strict):
    """``wds:NAME`` (a registered benchmark whose CLIP_benchmark shards ``wds_<its name>`` lie under the
    data root, read with the protocol's own class names and prompts) or ``wds:FOLDER`` (any such folder)."""
    info = DATASETS.get(target) if target in DATASETS else None
    if info is not None:
        base = resolve_root(info, root, split) if root or os.environ.get(ENV_ROOT) else Path(".")
        folder = Path(base).expanduser() / f"wds_{CLIP_BENCHMARK_NAMES.get(target, target)}"
        meta = benchmark_meta(target)
        classes = select_classes(meta, classnames)
        templates = resolve_templates(spec, [meta["template"]], meta.get("ensemble"))
    else:
        folder, classes, templates = Path(target).expanduser(), None, None
    if not folder.is_dir():
        raise FileNotFoundError(f"{WDS_PREFIX}{target}: no CLIP_benchmark webdataset folder {folder} (layout "
                                f"<folder>/{{classnames.txt, zeroshot_classification_templates.txt, <split>/<n>.tar}})")
    tf = transform or default_transform(info, image_size, None, interpolation)
    ds = wds_dataset(folder, split or "test", tf, classes, templates, strict, name=f"{WDS_PREFIX}{target}")
    if ds.name_differences:
        i, theirs, ours = ds.name_differences[0]
        warnings.warn(f"{WDS_PREFIX}{target}: {len(ds.name_differences)} of {len(ds.classes)} class names differ from "
                      f"CLIP_benchmark's classnames.txt (e.g. label {i}: {theirs!r} there, {ours!r} here); the "
                      f"protocol's names are used (classnames={classnames!r})", stacklevel=2)
    if info is None and spec not in (None, "paper", ["paper"]):
        ds.templates = resolve_templates(spec, ds.templates)
    return ds


def _check_choices(classnames: str, interpolation: str) -> None:
    check_classnames_kind(classnames)
    if interpolation not in INTERPOLATIONS:
        raise ConfigError("interpolation", f"must be 'bilinear' or 'bicubic', got {interpolation!r}")


def _registered(name: str) -> DatasetInfo:
    if name not in DATASETS:
        known = ", ".join(DATASETS.names())
        cols = ", ".join(COLLECTIONS)
        raise KeyError(f"unknown dataset {name!r}; known datasets: {known}; collections: {cols}; "
                       f"or give a folder path (ImageFolder layout) or a .csv file")
    return DATASETS.get(name)


def _path_dataset(path: Path, split, transform, classnames_file, spec, strict: bool):
    """A folder (ImageFolder layout) or CSV dataset with the default prompt ``DEFAULT_TEMPLATE``."""
    tpl = resolve_templates(spec, [DEFAULT_TEMPLATE])
    if path.suffix.lower() == ".csv":
        return csv_dataset(path, split, transform, classnames_file, tpl, strict)
    if path.is_dir():
        return image_folder(path, split, transform, classnames_file, tpl, strict)
    raise FileNotFoundError(f"dataset folder {path} does not exist; a folder dataset needs {FOLDER_LAYOUT}, "
                            f"a CSV dataset needs {CSV_LAYOUT}")


def _finish(ds, info: DatasetInfo, split: str, spec, classnames_file: Optional[str]):
    """Check a built registry dataset against its release's class list, then apply the templates,
    the class-names file and the ``split`` / ``name`` attributes."""
    mismatch = getattr(ds, "release_mismatch", None)
    if mismatch and not classnames_file:
        raise ValueError(mismatch)
    paper = getattr(ds, "templates", None) or [DEFAULT_TEMPLATE]
    if spec is not None and spec != "paper" and list(spec) != ["paper"]:
        ds.templates = resolve_templates(spec, paper, info.extra.get("ensemble"))
        if getattr(ds, "prompts", None) is not None:
            ds.prompts = None           # explicit templates replace fixed sentences (PCAM)
    if classnames_file:
        ds.classes = read_classnames_file(classnames_file, len(ds.classes), f"dataset {info.name!r}")
    for attr, val in (("split", split), ("name", info.name)):
        if getattr(ds, attr, None) in (None, ""):
            try:
                setattr(ds, attr, val)
            except AttributeError:      # a read-only property on someone else's dataset class
                pass
    return ds


def check_dataset(name: str, root: Optional[Union[str, os.PathLike]] = None, split: Optional[str] = None,
                  load: bool = True) -> Dict:
    """Where a dataset is expected and whether it is there (``ucat data check``).

    Returns a dict with ``name, status`` (``found`` | ``missing`` | ``error`` | ``generated``),
    ``split, path, layout, how_to_get, detail`` and, when loaded, ``n_images, n_classes``.
    """
    if name not in DATASETS and is_path_dataset(name):
        path = Path(name).expanduser()
        rep = dict(name=name, split=split, path=str(path), layout=CSV_LAYOUT if name.lower().endswith(".csv")
                   else FOLDER_LAYOUT, how_to_get="your own data", detail="")
        if not path.exists():
            rep.update(status="missing", detail=f"expected {path}")
            return rep
    else:
        info = DATASETS.get(name)
        split = split or info.default_split
        rep = dict(name=info.name, split=split, path="", layout=info.layout, how_to_get=info.how_to_get, detail="")
        if not info.needs_root:
            rep.update(status="generated", detail="generated on the fly; needs no data root")
            return rep
        try:
            root_path = resolve_root(info, root, split)
        except FileNotFoundError as e:
            rep.update(status="missing", detail=str(e).split(":")[0] + ": pass --data-root DIR or set UCAT_DATA")
            return rep
        found, expected = locate(info, root_path, split)
        rep["path"] = str(expected)
        if not found:
            rep.update(status="missing", detail=f"expected {expected}")
            return rep
    if not load:
        rep["status"] = "found"
        return rep
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = build_dataset(name, root=root, split=split)
        rep.update(status="found", n_images=len(ds), n_classes=len(ds.classes))
        notes = list(dict.fromkeys(str(w.message) for w in caught))
        if notes:
            rep["warnings"] = notes            # reported by ``ucat data check``, not hidden
    except Exception as e:  # noqa: BLE001 - a check reports every failure instead of stopping
        rep.update(status="error", detail=f"{type(e).__name__}: {e}")
    return rep


def describe(ds) -> Dict:
    """What a results file should record about a dataset: name, split, size, classes, prompts and a
    fingerprint of the class names + templates (two runs with different prompts differ here)."""
    classes = list(getattr(ds, "classes", []))
    templates = list(getattr(ds, "templates", []) or [])
    prompts = getattr(ds, "prompts", None)
    return dict(name=getattr(ds, "name", None), split=getattr(ds, "split", None), n_images=len(ds),
                num_classes=len(classes), templates=templates, fixed_prompts=prompts is not None,
                text_fingerprint=text_fingerprint(classes, templates, prompts))
