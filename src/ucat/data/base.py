"""Dataset classes shared by every ucat loader.

:class:`LabeledImageDataset` is the one contract: items are ``(image, label)`` with the image
already transformed (a float tensor in [0,1] with the default transforms) and ``label`` an int;
the dataset carries ``.classes`` (readable names, index = label), ``.templates`` (prompt
templates with ``{}``), ``.prompts`` (explicit per-class prompt lists or ``None``) and
``.targets`` (all labels, without reading an image).

An unreadable or corrupt image does not crash a long evaluation: the item comes back as ``None``
(one warning per dataset object), :func:`ucat.data.make_loader`'s collate drops it and counts it.
``strict=True`` raises instead.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

from PIL import Image
from torch.utils.data import Dataset

from ..models.decode import to_rgb

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def _unreadable_errors() -> Tuple[type, ...]:
    """The exceptions that mean "this image file cannot be decoded" (not a bug in our code)."""
    return (OSError, SyntaxError, EOFError, Image.DecompressionBombError)


class UnreadableImageError(OSError):
    """Raised for an unreadable image when a dataset is built with ``strict=True``."""


def open_image(path: str | os.PathLike):
    """Open an image file as an RGB PIL image (decoded now, so truncation errors surface here), with
    the pixel values its mode means (16-bit and float images scaled, not clipped: :func:`to_rgb`)."""
    with Image.open(path) as img:
        img.load()
        return to_rgb(img)


class LabeledImageDataset(Dataset):
    """Base class: subclasses implement ``__len__``, ``_load(i) -> (PIL image, label)`` and
    ``_labels() -> list[int]``; optionally ``_describe(i)`` (a path, for messages)."""

    def __init__(self, classes: Sequence[str], templates: Sequence[str], prompts: Optional[Sequence[Sequence[str]]] = None,
                 transform: Optional[Callable] = None, strict: bool = False, name: str = ""):
        self.classes: List[str] = list(classes)
        self.templates: List[str] = list(templates)
        self.prompts = [list(p) for p in prompts] if prompts is not None else None
        self.transform = transform
        self.strict = bool(strict)
        self.name = name
        self.n_unreadable = 0          # counted in this process only; the loader's count is authoritative
        self._warned = False
        self._targets: Optional[List[int]] = None

    # -- to implement -------------------------------------------------------------------------
    def _load(self, index: int):
        raise NotImplementedError

    def _labels(self) -> List[int]:
        raise NotImplementedError

    def _describe(self, index: int) -> str:
        return f"item {index}"

    # -- shared -------------------------------------------------------------------------------
    @property
    def targets(self) -> List[int]:
        """Every item's label, in order, computed once without decoding images."""
        if self._targets is None:
            self._targets = [int(t) for t in self._labels()]
        return self._targets

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __getitem__(self, index: int):
        try:
            img, label = self._load(index)
            if hasattr(img, "mode") and img.mode != "RGB":      # PIL image in L / RGBA / P / CMYK / I;16 ...
                img = to_rgb(img)
            if self.transform is not None:
                img = self.transform(img)
        except _unreadable_errors() as e:
            where = self._describe(index)
            if self.strict:
                raise UnreadableImageError(
                    f"{self.name or 'dataset'}: cannot read {where}: {e}. Remove or replace the file, or build the "
                    f"dataset with strict=False to skip unreadable images (they are counted in the results)") from e
            self.n_unreadable += 1
            if not self._warned:
                self._warned = True
                warnings.warn(f"{self.name or 'dataset'}: skipping unreadable image {where} ({e}); further unreadable "
                              f"images of this dataset are skipped without a warning and counted", stacklevel=2)
            return None
        return img, int(label)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, n={len(self)}, classes={len(self.classes)})"


class FileListDataset(LabeledImageDataset):
    """Images listed as ``(path, label)`` pairs (ImageFolder, CSV, TinyImageNet, ImageNet)."""

    def __init__(self, samples: Sequence[Tuple[str, int]], classes: Sequence[str], templates: Sequence[str], **kw):
        super().__init__(classes, templates, **kw)
        self.samples = [(str(p), int(y)) for p, y in samples]
        n = len(self.classes)
        bad = [y for _, y in self.samples if not 0 <= y < n]
        if bad:
            raise ValueError(f"{self.name or 'dataset'}: label {bad[0]} is outside the {n} class names; "
                             f"give one class name per label (labels 0..{n - 1})")

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int):
        path, label = self.samples[index]
        return open_image(path), label

    def _labels(self) -> List[int]:
        return [y for _, y in self.samples]

    def _describe(self, index: int) -> str:
        return self.samples[index][0]


class WrappedDataset(LabeledImageDataset):
    """A torchvision dataset (built with ``transform=None``, so it returns PIL images) behind the
    ucat contract. ``order`` optionally fixes the item order (e.g. sorted file names)."""

    def __init__(self, base, classes: Sequence[str], templates: Sequence[str],
                 targets_fn: Optional[Callable] = None, order: Optional[Sequence[int]] = None, **kw):
        super().__init__(classes, templates, **kw)
        self.base = base
        self._targets_fn = targets_fn or base_targets
        self.order = list(order) if order is not None else None

    def __len__(self) -> int:
        return len(self.order) if self.order is not None else len(self.base)

    def _index(self, index: int) -> int:
        return self.order[index] if self.order is not None else index

    def _load(self, index: int):
        img, label = self.base[self._index(index)]
        return img, label

    def _labels(self) -> List[int]:
        labels = list(self._targets_fn(self.base))
        return [labels[i] for i in self.order] if self.order is not None else labels

    def _describe(self, index: int) -> str:
        i = self._index(index)
        for attr in ("_image_files", "_images", "_samples", "samples", "imgs"):
            files = getattr(self.base, attr, None)
            if files is not None and i < len(files):
                f = files[i]
                return str(f[0] if isinstance(f, (tuple, list)) else f)
        return f"item {i} of {type(self.base).__name__}"


def base_targets(base) -> List[int]:
    """Labels of a torchvision dataset from the attribute it keeps them in, without decoding images."""
    for attr in ("targets", "labels", "_labels", "y"):
        v = getattr(base, attr, None)
        if v is not None:
            return [int(t) for t in v]
    samples = getattr(base, "_samples", None) or getattr(base, "samples", None)
    if samples is not None:
        return [int(s[1]) for s in samples]
    return [int(base[i][1]) for i in range(len(base))]      # slow fallback: reads every item


def list_images(folder: Path) -> List[Path]:
    """Image files under ``folder`` (recursive), sorted, hidden files skipped.

    Directory symlinks are followed, but each real directory is walked once: a link back to a
    folder already walked (a loop, or a second link to the same folder) is skipped with one warning
    naming it, so no image is listed twice.
    """
    out = []
    seen = set()
    skipped: List[str] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:                       # reached again through a symlink: walk it once
            skipped.append(dirpath)
            dirnames[:] = []
            continue
        seen.add(real)
        keep = []
        for d in sorted(dirnames):
            sub = os.path.join(dirpath, d)
            if d.startswith("."):
                continue
            if os.path.realpath(sub) in seen:  # a link back to a folder already walked (e.g. a loop)
                skipped.append(sub)
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS):
                out.append(Path(dirpath) / f)
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} symlinked folder(s) that lead to a folder already listed "
                      f"(e.g. {skipped[0]} -> {os.path.realpath(skipped[0])}); each folder's images are listed once. "
                      f"Remove the link if it is a loop", stacklevel=2)
    return sorted(out)

