"""The ImageNet family: ImageNet-1k, TinyImageNet and the robustness sets ImageNet-A/-O/-R/-Sketch.

All are folders of WordNet-id class folders read by ucat itself (torchvision has no loader for
them). Class names come from package data by wnid: ``official`` (default) are the official UCAT
code's names (VivienLu/UCAT imagenet_classes_names.txt / tinyimagenet_classes_name.txt, third
field per wnid, utils.py:112-123, made readable by refine_classname, utils.py:19-22, for ImageNet
and ImageNet-A/-O/-R alike, utils.py:264-277); ``clip`` are open_clip's curated ImageNet names.
Labels follow the sorted wnids, which is the order ImageFolder gives the official code
(utils.py:216, 222-228). ImageNet-A/-O/-R each hold 200 of the 1000 classes (the wnid lists of
CLIP_benchmark builder.py:179, 191, 207, equal to the folders of Hendrycks et al.'s releases); a
label is an index into that sorted subset, as ImageFolder over the release gives. ImageNet-Sketch
(Wang et al. 2019) has all 1000 classes (RobustVLM's CLIP_benchmark builder.py:151-167).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .base import FileListDataset, list_images
from .meta import benchmark_meta, select_classes
from .registry import register_dataset


# --------------------------------------------------------------------------------------------
# TinyImageNet: our own loader (torchvision has none)
TINY_LAYOUT = ("tiny-imagenet-200/{wnids.txt, words.txt, train/<wnid>/images/*.JPEG, "
               "val/val_annotations.txt, val/images/*.JPEG}")


def _tiny_dir(root: Path) -> Optional[Path]:
    for cand in (root / "tiny-imagenet-200", root):
        if (cand / "wnids.txt").is_file():
            return cand
    return None


def _wnid_dataset(name: str, transform, strict: bool, options: dict, classnames: str = "official"):
    """(class names, dataset kwargs, wnid -> label) of a WordNet-id dataset; it takes no extra options."""
    if options:
        raise ValueError(f"{name} takes no option(s) {', '.join(options)}")
    meta = benchmark_meta(name)
    dkw = dict(prompts=meta.get("prompts"), transform=transform, strict=strict, name=name)
    return select_classes(meta, classnames), [meta["template"]], dkw, {w: i for i, w in enumerate(meta["wnids"])}


def _tiny_check(root: Path, split: str):
    d = _tiny_dir(root)
    if d is None:
        return False, root / "tiny-imagenet-200" / "wnids.txt"
    p = d / split
    return p.is_dir(), p


@register_dataset("tinyimagenet", num_classes=200, layout=TINY_LAYOUT, default_split="val", splits=("val", "train"),
                  how_to_get="download http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it under the root "
                             "(the test split has no labels, so ucat offers train and val)",
                  extra=dict(resize="crop", check=_tiny_check, downloadable=False,
                             ensemble=benchmark_meta("tinyimagenet")["ensemble"], loader="ucat (own)"))
def build_tinyimagenet(root: Path, split: str, transform=None, download: bool = False, strict: bool = False,
                       classnames: str = "official", **kw):
    """TinyImageNet (200 classes; labels = sorted wnid order, as ImageFolder on train/ gives)."""
    classes, templates, dkw, index = _wnid_dataset("tinyimagenet", transform, strict, kw, classnames)
    d = _tiny_dir(root)
    listed = (d / "wnids.txt").read_text().split()
    unknown = [w for w in listed if w not in index]
    if unknown:
        raise ValueError(f"{d / 'wnids.txt'} lists {unknown[0]!r}, not one of TinyImageNet's 200 classes; "
                         f"is this the tiny-imagenet-200 release?")
    samples = []
    if split == "train":
        for w in sorted(os.listdir(d / "train")):
            if w not in index:
                continue
            folder = d / "train" / w / "images"
            samples += [(str(f), index[w]) for f in list_images(folder if folder.is_dir() else d / "train" / w)]
    else:
        ann = d / split / "val_annotations.txt"
        if ann.is_file():
            for line in ann.read_text().splitlines():
                parts = line.split("\t")
                if len(parts) >= 2 and parts[1] in index:
                    samples.append((str(d / split / "images" / parts[0]), index[parts[1]]))
        else:   # a val/ already sorted into <wnid>/ folders
            for w in sorted(os.listdir(d / split)):
                if w in index and (d / split / w).is_dir():
                    samples += [(str(f), index[w]) for f in list_images(d / split / w)]
        if not samples:
            raise FileNotFoundError(f"tinyimagenet: no labelled images in {d / split}; expected {ann} "
                                    f"(lines 'file<TAB>wnid<TAB>...') and {d / split / 'images'}/")
    if not samples:
        raise FileNotFoundError(f"tinyimagenet: no images under {d / split}; expected layout {TINY_LAYOUT}")
    return FileListDataset(samples, classes, templates, **dkw)


# --------------------------------------------------------------------------------------------
# ImageNet: class folders named by WordNet id; names from package data
IMAGENET_LAYOUT = "imagenet/{train,val}/<wnid>/*.JPEG (val sorted into the 1000 wnid folders)"


def _imagenet_dir(root: Path, split: str) -> Optional[Path]:
    for cand in (root / "imagenet" / split, root / split):
        if cand.is_dir():
            return cand
    return None


def _imagenet_check(root: Path, split: str):
    d = _imagenet_dir(root, split)
    return (d is not None), (d or root / "imagenet" / split)


@register_dataset("imagenet", num_classes=1000, layout=IMAGENET_LAYOUT, default_split="val", splits=("val", "train"),
                  how_to_get="download ILSVRC2012 from https://image-net.org (login), extract train/ and val/, and sort "
                             "val/ into wnid folders (e.g. with the widely used valprep.sh)",
                  extra=dict(resize="crop", check=_imagenet_check, downloadable=False,
                             ensemble=benchmark_meta("imagenet")["ensemble"], loader="ucat (own)"))
def build_imagenet(root: Path, split: str, transform=None, download: bool = False, strict: bool = False,
                   classnames: str = "official", **kw):
    """ImageNet-1k from wnid class folders; label = index of the wnid in the sorted 1000 (standard order)."""
    classes, templates, dkw, index = _wnid_dataset("imagenet", transform, strict, kw, classnames)
    d = _imagenet_dir(root, split)
    dirs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not dirs:
        raise FileNotFoundError(f"imagenet: {d} has no wnid class folders; the {split} images must be sorted into "
                                f"<wnid>/ folders ({IMAGENET_LAYOUT})")
    unknown = [p.name for p in dirs if p.name not in index]
    if unknown:
        raise ValueError(f"imagenet: folder {d / unknown[0]} is not an ImageNet-1k WordNet id (like n01440764); "
                         f"expected layout {IMAGENET_LAYOUT}")
    samples = []
    for p in dirs:
        samples += [(str(f), index[p.name]) for f in list_images(p)]
    if not samples:
        raise FileNotFoundError(f"imagenet: no images under {d}; expected layout {IMAGENET_LAYOUT}")
    return FileListDataset(samples, classes, templates, **dkw)




# --------------------------------------------------------------------------------------------
# ImageNet-A / -O / -R / -Sketch: one folder of wnid class folders each
_HENDRYCKS = ("download https://people.eecs.berkeley.edu/~hendrycks/{tar} (Hendrycks et al., {paper}) and extract "
              "it under the root (tar xf {tar}: it creates {folder}/)")
VARIANTS: Dict[str, Tuple[Tuple[str, ...], str, str]] = {
    # name: (folders tried under the root, layout, how to get it)
    "imagenet-a": (("imagenet-a",), "imagenet-a/<wnid>/*.jpg (200 wnid folders, README.txt)",
                   _HENDRYCKS.format(tar="imagenet-a.tar", paper="'Natural Adversarial Examples', CVPR 2021",
                                     folder="imagenet-a")),
    "imagenet-o": (("imagenet-o",), "imagenet-o/<wnid>/*.jpg (200 wnid folders, README.txt)",
                   _HENDRYCKS.format(tar="imagenet-o.tar", paper="'Natural Adversarial Examples', CVPR 2021",
                                     folder="imagenet-o")),
    "imagenet-r": (("imagenet-r",), "imagenet-r/<wnid>/*.jpg (200 wnid folders, README.txt)",
                   _HENDRYCKS.format(tar="imagenet-r.tar", paper="'The Many Faces of Robustness', ICCV 2021",
                                     folder="imagenet-r")),
    "imagenet-sketch": (("imagenet-sketch/sketch", "imagenet-sketch", "sketch"),
                        "imagenet-sketch/sketch/<wnid>/*.JPEG (1000 wnid folders; also accepted: sketch/<wnid>/ or "
                        "imagenet-sketch/<wnid>/)",
                        "download ImageNet-Sketch.zip (Wang et al., NeurIPS 2019: https://github.com/HaohanWang/"
                        "ImageNet-Sketch, or the Hugging Face dataset 'imagenet_sketch', data/ImageNet-Sketch.zip) and "
                        "unzip it into DIR/imagenet-sketch/ (it creates sketch/<wnid>/)"),
}


def _variant_dir(name: str, root: Path) -> Optional[Path]:
    for rel in VARIANTS[name][0]:
        cand = root / rel
        if cand.is_dir() and any(p.is_dir() and p.name.startswith("n") for p in cand.iterdir()):
            return cand
    return None


def _variant_check(name: str):
    def check(root: Path, split: str):
        d = _variant_dir(name, root)
        return (d is not None), (d or root / VARIANTS[name][0][0])

    return check


def wnid_folder_samples(name: str, d: Path, index: Dict[str, int], layout: str) -> List[Tuple[str, int]]:
    """``(path, label)`` of every image in the wnid folders of ``d``; a folder whose wnid is not one
    of the dataset's classes is an error naming it (a different release or a mixed-up root)."""
    dirs = sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in dirs if p.name not in index]
    if unknown:
        raise ValueError(f"{name}: folder {d / unknown[0]} is not one of its {len(index)} WordNet ids "
                         f"({len(unknown)} such folders); expected layout {layout}")
    samples: List[Tuple[str, int]] = []
    for p in dirs:
        samples += [(str(f), index[p.name]) for f in list_images(p)]
    if not samples:
        raise FileNotFoundError(f"{name}: no images under {d}; expected layout {layout}")
    return samples


def _variant_builder(name: str):
    def builder(root: Path, split: str, transform=None, download: bool = False, strict: bool = False,
                classnames: str = "official", **kw):
        classes, templates, dkw, index = _wnid_dataset(name, transform, strict, kw, classnames)
        d = _variant_dir(name, root)
        if d is None:
            raise FileNotFoundError(f"{name}: no wnid folders under {root}; expected layout {VARIANTS[name][1]}")
        return FileListDataset(wnid_folder_samples(name, d, index, VARIANTS[name][1]), classes, templates, **dkw)

    builder.__doc__ = f"{name}: wnid class folders; label = index of the wnid in the sorted class list."
    return builder


def _register_variants(names: Sequence[str]) -> None:
    for name in names:
        meta = benchmark_meta(name)
        folders, layout, how = VARIANTS[name]
        register_dataset(name, num_classes=len(meta["wnids"]), layout=layout, how_to_get=how, default_split="test",
                         splits=("test",), extra=dict(resize="crop", check=_variant_check(name), downloadable=False,
                                                      ensemble=meta["ensemble"], loader="ucat (own)"))(
            _variant_builder(name))


_register_variants(list(VARIANTS))
