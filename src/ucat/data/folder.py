"""Your own images as a benchmark: an ImageFolder directory or a CSV of ``path,label`` rows.

Both are usable wherever a registry name is (``build_dataset("/data/my_photos")``,
``ucat eval --datasets my_labels.csv``). Class names default to the folder names / label values
made readable (``"golden_retriever"`` -> ``"golden retriever"``); ``classnames_file`` (one name per
line) overrides them, and ``template`` / ``templates`` set the prompts. A CSV with integer labels
reads ``classnames.txt`` next to it when no ``classnames_file`` is given. Text labels that differ
only in case, spacing or ``_``/``-`` are an error (they would be two classes with one name); labels
one typo apart (``golden retriever`` / ``golden retreiver``) are warned about.
"""
from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..models.zero_shot import DEFAULT_TEMPLATE
from .base import IMAGE_EXTENSIONS, FileListDataset, list_images
from .meta import readable

CLASSNAMES_NEXT_TO_CSV = "classnames.txt"

FOLDER_LAYOUT = "DIR/<class name>/<image>.jpg (one sub-folder per class; with split='val': DIR/val/<class name>/...)"
CSV_LAYOUT = ("a CSV with a header row holding 'path' and 'label' columns (optional 'split' column); "
              "relative paths are resolved against the CSV's folder; labels are class names or integers 0..C-1")


def read_classnames_file(path: str | Path, expected: Optional[int] = None, what: str = "") -> List[str]:
    """One class name per line (blank lines and lines starting with '#' ignored)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"class-names file {p} does not exist; give a text file with one class name per line")
    names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if expected is not None and len(names) != expected:
        raise ValueError(f"class-names file {p} has {len(names)} names but {what or 'the dataset'} has {expected} "
                         f"classes; give exactly one name per class, in label order")
    if not names:
        raise ValueError(f"class-names file {p} is empty; give one class name per line")
    return names


def image_folder(path: str | Path, split: Optional[str] = None, transform: Optional[Callable] = None,
                 classnames_file: Optional[str] = None, templates: Sequence[str] = (DEFAULT_TEMPLATE,),
                 strict: bool = False) -> FileListDataset:
    """ImageFolder layout: one sub-folder per class (sorted = label order), images inside (recursive)."""
    root = Path(path).expanduser()
    if split:
        root = root / split
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; expected layout: {FOLDER_LAYOUT}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        loose = [f for f in root.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS]
        hint = " (it holds images directly: put them in one sub-folder per class)" if loose else ""
        raise FileNotFoundError(f"image folder {root} has no class sub-folders{hint}; expected layout: {FOLDER_LAYOUT}")
    samples: List[Tuple[str, int]] = []
    for label, d in enumerate(class_dirs):
        samples += [(str(f), label) for f in list_images(d)]
    if not samples:
        raise FileNotFoundError(f"image folder {root} has class folders but no images "
                                f"({', '.join(IMAGE_EXTENSIONS)}); expected layout: {FOLDER_LAYOUT}")
    if classnames_file:
        classes = read_classnames_file(classnames_file, len(class_dirs), f"image folder {root}")
    else:
        classes = [readable(d.name) for d in class_dirs]
    ds = FileListDataset(samples, classes, templates, transform=transform, strict=strict, name=str(root))
    ds.folder_names = [d.name for d in class_dirs]
    return ds


def csv_dataset(path: str | Path, split: Optional[str] = None, transform: Optional[Callable] = None,
                classnames_file: Optional[str] = None, templates: Sequence[str] = (DEFAULT_TEMPLATE,),
                strict: bool = False) -> FileListDataset:
    """Rows of ``path,label``; integer labels index the class-names file (or become "0", "1", ...),
    text labels become the class names (sorted = label order)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"CSV file {p} does not exist; expected {CSV_LAYOUT}")
    with p.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = [c.strip().lower() for c in (reader.fieldnames or [])]
        if "path" not in cols or "label" not in cols:
            raise ValueError(f"CSV file {p} has columns {cols or '(none)'}; it needs a header row with 'path' and "
                             f"'label' columns, e.g. 'path,label' then 'images/cat1.jpg,cat'")
        rows = [{k.strip().lower(): (v or "").strip() for k, v in r.items() if k is not None} for r in reader]
    if split is not None:
        if "split" not in cols:
            raise ValueError(f"CSV file {p} has no 'split' column, so split={split!r} cannot be honoured; "
                             f"add a 'split' column or leave the split out")
        rows = [r for r in rows if r.get("split") == split]
    rows = [r for r in rows if r.get("path")]
    if not rows:
        raise ValueError(f"CSV file {p} has no rows{f' with split {split!r}' if split else ''}; expected {CSV_LAYOUT}")
    base = p.parent
    paths = [str(Path(r["path"]).expanduser() if Path(r["path"]).expanduser().is_absolute() else base / r["path"])
             for r in rows]
    raw = [r["label"] for r in rows]
    if any(v == "" for v in raw):
        i = raw.index("")
        raise ValueError(f"CSV file {p}: row {i + 2} ({rows[i]['path']}) has an empty label")
    if all(_is_int(v) for v in raw):
        labels = [int(v) for v in raw]
        if min(labels) < 0:
            raise ValueError(f"CSV file {p}: negative label {min(labels)}; labels are 0..C-1 or class names")
        classes = _integer_label_names(p, max(labels) + 1, classnames_file)
    else:
        values = sorted(set(raw))
        check_label_spellings(values, raw, f"CSV file {p}")
        index = {v: i for i, v in enumerate(values)}
        labels = [index[v] for v in raw]
        if classnames_file:
            classes = read_classnames_file(classnames_file, len(values), f"CSV file {p} (labels {', '.join(values[:5])}...)")
        else:
            classes = [readable(v) for v in values]
    return FileListDataset(list(zip(paths, labels)), classes, templates, transform=transform, strict=strict, name=str(p))


def _integer_label_names(p: Path, n: int, classnames_file: Optional[str]) -> List[str]:
    """Class names of a CSV with integer labels 0..n-1: ``classnames_file``, else ``classnames.txt``
    next to the CSV, else the numbers themselves (with a warning saying how to name them)."""
    beside = p.parent / CLASSNAMES_NEXT_TO_CSV
    source = classnames_file or (beside if beside.is_file() else None)
    if source is None:
        warnings.warn(f"CSV file {p} has integer labels and no class names: the prompts will use the numbers as "
                      f"class names. For meaningful prompts write one name per line (label 0 first) in {beside}, "
                      f"which is read automatically, or pass classnames_file= to build_dataset", stacklevel=3)
        return [str(i) for i in range(n)]
    classes = read_classnames_file(source)
    if len(classes) < n:
        raise ValueError(f"class-names file {source} has {len(classes)} names but CSV file {p} uses label {n - 1}; "
                         f"give one name per label 0..{n - 1}")
    return classes


def _spelling_key(label: str) -> str:
    return readable(label).casefold()


def _one_typo_apart(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` differ by one insertion, deletion, substitution or swap of neighbours."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    if len(a) == len(b):
        return a[i + 1:] == b[i + 1:] or (a[i:i + 2] == b[i:i + 2][::-1] and a[i + 2:] == b[i + 2:])
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return short[i:] == long_[i + 1:]


def check_label_spellings(values: Sequence[str], raw: Sequence[str], what: str, max_labels: int = 5000) -> None:
    """Text labels that name the same class twice: an error for a case/spacing/``_``-``-`` variant,
    a warning for two labels one typo apart (names of at least 5 letters)."""
    first: Dict[str, str] = {}
    for v in values:
        k = _spelling_key(v)
        if k in first:
            a, b = first[k], v
            ra, rb = raw.index(a) + 2, raw.index(b) + 2
            raise ValueError(f"{what}: labels {a!r} (row {ra}) and {b!r} (row {rb}) differ only in case, spacing or "
                             f"'_'/'-', so they would become two classes with the same name; use one spelling for "
                             f"both (e.g. {a!r})")
        first[k] = v
    if len(values) > max_labels:
        return
    keys = sorted(first, key=len)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if len(b) - len(a) > 1:
                break
            if min(len(a), len(b)) >= 5 and _one_typo_apart(a, b) and re.sub(r"\d", "", a) != re.sub(r"\d", "", b):
                warnings.warn(f"{what}: labels {first[a]!r} and {first[b]!r} are one typo apart and become two "
                              f"classes; if they are the same class, use one spelling", stacklevel=3)
                return


def _is_int(v: str) -> bool:
    try:
        int(v)
        return True
    except ValueError:
        return False
