"""MS-COCO 2017 as a multi-label zero-shot set: the 80 categories present in each image.

As the official UCAT multi-label evaluation builds it (VivienLu/UCAT
replace/datasets/coco_multilabel_2017.py, ``COCOMultiLabel2017``): every image listed in
``annotations/instances_<split>2017.json``, its target the multi-hot vector of the categories of
its instances (crowd instances included, no area filter: the defaults there), categories in
ascending COCO id order (ids 1..90 with 10 gaps -> 80 labels), names as the file spells them,
passed through ``refine_classname`` (utils.py 19-22: lower case, '_', '-', '/' -> space) into the
prompt ``"This is a photo of a {}"`` (main-multilabel.py 328). The annotation file is read with
``json`` (no pycocotools needed). Images without any instance have an all-zero target; the
official code keeps them (they only count as negatives); ``unlabelled="drop"`` leaves them out and
``"error"`` refuses the set.

Layout: ``<root>/coco2017/{annotations/instances_val2017.json, val2017/<12-digit id>.jpg}``
(the official release's two archives, annotations_trainval2017.zip and val2017.zip, unpacked).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.utils.data import Dataset

from ..errors import CorruptFileError
from .base import _unreadable_errors, open_image

TEMPLATE = "This is a photo of a {}"
LAYOUT = "coco2017/{annotations/instances_val2017.json, val2017/*.jpg}"
HOW_TO_GET = ("download val2017.zip and annotations_trainval2017.zip from the COCO website (cocodataset.org) and "
              "unpack both into <root>/coco2017/")

# The 80 COCO 2017 categories, (id, name) in id order, as instances_*2017.json names them.
CATEGORIES: Tuple[Tuple[int, str], ...] = tuple(zip(
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34,
     35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
     64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90],
    ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
     "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
     "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
     "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
     "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
     "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
     "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
     "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
     "hair drier", "toothbrush"]))


def refine_classname(name: str) -> str:
    """The official ``refine_classname`` (utils.py 19-22)."""
    return name.lower().replace("_", " ").replace("-", " ").replace("/", " ")


CLASSES: List[str] = [refine_classname(n) for _, n in CATEGORIES]


class CocoMultiLabel(Dataset):
    """Items ``(image, multi-hot target (80,) int64)``, or None for an unreadable image."""

    multilabel = True

    def __init__(self, samples: List[Tuple[str, List[int]]], transform: Optional[Callable] = None,
                 split: str = "val", n_unlabelled: int = 0):
        self.samples, self.transform, self.split = samples, transform, split
        self.classes, self.templates, self.prompts = list(CLASSES), [TEMPLATE], None
        self.n_unlabelled = n_unlabelled

    def __len__(self) -> int:
        return len(self.samples)

    def target(self, i: int) -> torch.Tensor:
        t = torch.zeros(len(CLASSES), dtype=torch.long)
        t[self.samples[i][1]] = 1
        return t

    def __getitem__(self, i: int):
        try:
            img = open_image(self.samples[i][0])
        except _unreadable_errors():
            return None
        return (self.transform(img) if self.transform is not None else img), self.target(i)


def _read_annotations(ann: Path) -> Dict:
    if not ann.is_file():
        raise FileNotFoundError(f"COCO annotation file {ann} not found; layout {LAYOUT}; {HOW_TO_GET}")
    try:
        data = json.loads(ann.read_text(encoding="utf-8"))
        images, annotations, cats = data["images"], data["annotations"], data["categories"]
    except (ValueError, KeyError, TypeError) as e:
        raise CorruptFileError(f"{ann}: not a COCO instances file ({type(e).__name__}: {e}); re-download "
                               f"annotations_trainval2017.zip") from e
    ours = dict(CATEGORIES)
    theirs = {int(c["id"]): str(c["name"]) for c in cats}
    if theirs != ours:
        diff = sorted(set(theirs.items()) ^ set(ours.items()))[:4]
        raise CorruptFileError(f"{ann}: its categories differ from COCO 2017's 80 (e.g. {diff}); this is not an "
                               f"instances_*2017.json file")
    return {"images": images, "annotations": annotations}


def coco2017(root: str | os.PathLike, split: str = "val", transform: Optional[Callable] = None,
             unlabelled: str = "keep") -> CocoMultiLabel:
    """The COCO 2017 ``split`` under ``root`` (the folder holding ``coco2017/``, or ``coco2017/`` itself)."""
    if unlabelled not in ("keep", "drop", "error"):
        raise ValueError(f"unlabelled must be keep, drop or error, got {unlabelled!r}")
    base = Path(root).expanduser()
    base = base / "coco2017" if (base / "coco2017").is_dir() else base
    ann = base / "annotations" / f"instances_{split}2017.json"
    img_dir = base / f"{split}2017"
    data = _read_annotations(ann)
    index = {cid: i for i, (cid, _) in enumerate(CATEGORIES)}
    labels: Dict[int, set] = {int(im["id"]): set() for im in data["images"]}
    for a in data["annotations"]:
        if int(a["image_id"]) not in labels:
            raise CorruptFileError(f"{ann}: an annotation refers to image id {a['image_id']}, which the file "
                                   f"does not list; the annotation file is damaged")
        labels[int(a["image_id"])].add(index[int(a["category_id"])])
    files = {int(im["id"]): img_dir / im["file_name"] for im in data["images"]}
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"{ann} does not match the images in {img_dir}: {len(missing)} of {len(files)} "
                                f"listed images are missing (e.g. {missing[0]}); unpack the matching {split}2017.zip")
    empty = [i for i, ls in labels.items() if not ls]
    if empty and unlabelled == "error":
        raise CorruptFileError(f"{ann}: {len(empty)} images have no label (e.g. image id {empty[0]}); evaluate "
                               f"with unlabelled='keep' (the official protocol) or 'drop'")
    if empty and unlabelled == "keep":
        warnings.warn(f"{ann}: {len(empty)} images have no label; kept as the official evaluation keeps them "
                      f"(they count only as negatives; recorded as n_unlabelled); unlabelled='drop' leaves them out",
                      stacklevel=2)
    # the file's image order, as pycocotools' getImgIds() gives it to the official loader
    keep = [i for i in files if labels[i] or unlabelled == "keep"]
    samples = [(str(files[i]), sorted(labels[i])) for i in keep]
    return CocoMultiLabel(samples, transform, split, n_unlabelled=len(empty))
