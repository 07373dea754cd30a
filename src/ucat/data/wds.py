"""CLIP_benchmark's WebDataset shards read directly, so its users download nothing twice.

The layout (CLIP_benchmark ``clip_benchmark/datasets/builder.py`` ``build_wds_dataset`` and its
README, "Webdataset"): a folder (``wds_<dataset>``, e.g. ``wds_vtab-cifar10``) holding
``<split>/{nshards.txt, 0.tar, 1.tar, ...}``, ``classnames.txt`` (one name per line, index =
label) and ``zeroshot_classification_templates.txt``. Each tar holds, per example, an image
(``KEY.webp`` / ``.png`` / ``.jpg``) and its label (``KEY.cls``, the class index as text), grouped
by KEY as webdataset does (the member name up to the first dot of its last path component).

ucat reads the tars with the standard library (random access by member, no ``webdataset``
dependency). When the shards stand in for a registered benchmark (``wds_vtab-cifar10`` for
``cifar10``), the caller applies that benchmark's protocol class names and prompts by label
index (:func:`wds_dataset` ``classes=``/``templates=``); where they differ from the shards'
``classnames.txt`` the differences are reported (:attr:`WdsDataset.name_differences`).
"""
from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from PIL import Image

from ..errors import CorruptFileError
from .base import LabeledImageDataset

IMAGE_SUFFIXES = ("webp", "png", "jpg", "jpeg")
CLASSNAMES = "classnames.txt"
TEMPLATES = "zeroshot_classification_templates.txt"
# CLIP_benchmark's wds dataset names (``wds/<name>``, folder ``wds_<name with / -> ->``) of the
# benchmarks ucat registers, as its builder names them (builder.py, the vtab/ prefix for VTAB's).
CLIP_BENCHMARK_NAMES: Dict[str, str] = {
    "cifar10": "vtab-cifar10", "cifar100": "vtab-cifar100", "dtd": "vtab-dtd", "eurosat": "vtab-eurosat",
    "flowers102": "vtab-flowers", "oxfordpet": "vtab-pets", "caltech101": "vtab-caltech101", "pcam": "vtab-pcam",
    "sun397": "sun397", "food101": "food101", "stl10": "stl10", "fgvc_aircraft": "fgvc_aircraft",
    "stanfordcars": "cars", "imagenet": "imagenet1k", "imagenet-a": "imagenet-a", "imagenet-o": "imagenet-o",
    "imagenet-r": "imagenet-r", "imagenet-sketch": "imagenet_sketch",
}


def _key_and_ext(member: str) -> Tuple[str, str]:
    """webdataset's grouping: ``dir/abc.def.png`` -> (``dir/abc``, ``def.png``)."""
    head, _, last = member.rpartition("/")
    stem, _, ext = last.partition(".")
    return (f"{head}/{stem}" if head else stem), ext.lower()


def _read_lines(path: Path) -> List[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent}: no {path.name}; a CLIP_benchmark webdataset folder holds "
                                f"{CLASSNAMES}, {TEMPLATES} and <split>/<n>.tar shards")
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def _shards(split_dir: Path) -> List[Path]:
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: no such split folder of the webdataset (expected "
                                f"{split_dir.parent}/<split>/0.tar ...)")
    n_file = split_dir / "nshards.txt"
    if n_file.is_file():
        n = int(n_file.read_text().strip())
        shards = [split_dir / f"{i}.tar" for i in range(n)]
        missing = [s.name for s in shards if not s.is_file()]
        if missing:
            raise FileNotFoundError(f"{split_dir}: nshards.txt says {n} shards but {', '.join(missing[:3])} "
                                    f"are missing (a half-finished download?)")
        return shards
    shards = sorted(split_dir.glob("*.tar"), key=lambda p: (len(p.stem), p.stem))
    if not shards:
        raise FileNotFoundError(f"{split_dir}: no .tar shards")
    return shards


def index_shards(shards: Sequence[Path]) -> List[Tuple[int, str, int]]:
    """(shard number, image member name, label) of every example, in shard and member order."""
    out: List[Tuple[int, str, int]] = []
    for s_i, shard in enumerate(shards):
        try:
            with tarfile.open(shard) as tar:
                groups: Dict[str, Dict[str, tarfile.TarInfo]] = {}
                order: List[str] = []
                for m in tar.getmembers():
                    if not m.isfile():
                        continue
                    key, ext = _key_and_ext(m.name)
                    if key not in groups:
                        groups[key] = {}
                        order.append(key)
                    groups[key][ext] = m
                for key in order:
                    g = groups[key]
                    image = next((g[e] for e in IMAGE_SUFFIXES if e in g), None)
                    if image is None or "cls" not in g:
                        raise CorruptFileError(f"{shard}: example {key!r} lacks an image (.webp/.png/.jpg) or a "
                                               f"label (.cls); members: {', '.join(sorted(g))}")
                    label = int(tar.extractfile(g["cls"]).read().decode().strip())
                    out.append((s_i, image.name, label))
        except (tarfile.TarError, ValueError) as e:
            raise CorruptFileError(f"{shard}: not a readable webdataset shard ({e}); re-download it") from e
    return out


class WdsDataset(LabeledImageDataset):
    """Examples of CLIP_benchmark shards, decoded on access (one open tar per shard and process)."""

    def __init__(self, shards: Sequence[Path], index: List[Tuple[int, str, int]], classes: Sequence[str],
                 templates: Sequence[str], name_differences: Sequence[Tuple[int, str, str]] = (), **kw):
        super().__init__(classes, templates, **kw)
        self.shards = [Path(s) for s in shards]
        self.index = index
        self.name_differences = list(name_differences)
        self._open: Dict[Tuple[int, int], tarfile.TarFile] = {}
        n = len(self.classes)
        bad = [y for _, _, y in index if not 0 <= y < n]
        if bad:
            raise CorruptFileError(f"{self.name}: label {bad[0]} is outside the {n} class names")

    def __len__(self) -> int:
        return len(self.index)

    def _tar(self, s_i: int) -> tarfile.TarFile:
        key = (os.getpid(), s_i)              # loader workers each open their own handle
        if key not in self._open:
            self._open[key] = tarfile.open(self.shards[s_i])
        return self._open[key]

    def _load(self, i: int):
        s_i, member, label = self.index[i]
        data = self._tar(s_i).extractfile(member).read()
        img = Image.open(io.BytesIO(data))
        img.load()
        return img, label

    def _labels(self) -> List[int]:
        return [y for _, _, y in self.index]

    def _describe(self, i: int) -> str:
        s_i, member, _ = self.index[i]
        return f"{self.shards[s_i]}:{member}"

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_open"] = {}                   # tar handles do not cross process boundaries
        return state


def wds_dataset(root: str | os.PathLike, split: str = "test", transform: Optional[Callable] = None,
                classes: Optional[Sequence[str]] = None, templates: Optional[Sequence[str]] = None,
                strict: bool = False, name: str = "") -> WdsDataset:
    """Open a CLIP_benchmark webdataset folder as a ucat dataset.

    ``classes``/``templates``: the protocol's names and prompts to apply by label index (for a
    registered benchmark); default the shards' own ``classnames.txt`` and templates file.
    """
    root = Path(root).expanduser()
    own_classes = _read_lines(root / CLASSNAMES)
    own_templates = _read_lines(root / TEMPLATES) if (root / TEMPLATES).is_file() else ["a photo of a {c}."]
    if classes is not None and len(classes) != len(own_classes):
        raise CorruptFileError(f"{root}: {CLASSNAMES} lists {len(own_classes)} classes but the protocol's list has "
                               f"{len(classes)}; these shards are not that dataset")
    diffs = [(i, a, b) for i, (a, b) in enumerate(zip(own_classes, classes or own_classes)) if a != b]
    shards = _shards(root / split)
    tpl = [t.replace("{c}", "{}") for t in (templates if templates is not None else own_templates)]
    return WdsDataset(shards, index_shards(shards), list(classes or own_classes), tpl, diffs, transform=transform,
                      strict=strict, name=name or root.name)
