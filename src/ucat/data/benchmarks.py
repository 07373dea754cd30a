"""The paper's 16 zero-shot benchmarks (and TinyImageNet/ImageNet training data) in the registry.

Protocol (Lu et al., "Calibrating Uncertainty for Zero-Shot Adversarial CLIP", arXiv 2512.12997,
§3.1, following TeCoA's loaders): test splits by default; TinyImageNet and ImageNet use val;
EuroSAT, Caltech101 (BACKGROUND_Google removed), Caltech256 and SUN397 use the whole dataset
(split ``all``). CIFAR-10/100 and STL10 are resized to a square ("squash"), the others are
resized on the short side and centre-cropped ("crop"). Prompts: the paper's per-dataset template
by default, CLIP's ensemble with ``templates="ensemble"``; PCAM uses its two fixed sentences.

Every entry states the folder it expects under the data root, its layout and how to get it, so
``ucat data check`` and the missing-data errors can say exactly what is wrong.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, List, Optional

import torchvision.datasets as tvd

from .base import FileListDataset, WrappedDataset, base_targets, list_images
from .meta import benchmark_meta, select_classes
from .registry import DATASETS, register_collection, register_dataset

ZS16 = ["tinyimagenet", "cifar10", "cifar100", "stl10", "food101", "oxfordpet", "flowers102", "dtd", "eurosat",
        "fgvc_aircraft", "caltech101", "caltech256", "stanfordcars", "pcam", "imagenet", "sun397"]


# --------------------------------------------------------------------------------------------
# how each dataset is found under the root: check(root, split) -> (found, path it expected)
def _markers(*rels: str) -> Callable:
    def check(root: Path, split: str):
        paths = [root / r.format(split=split) for r in rels]
        missing = [p for p in paths if not p.exists()]
        return (not missing, missing[0] if missing else paths[0])

    return check


def _meta_dataset_kwargs(name: str, transform, strict: bool):
    meta = benchmark_meta(name)
    return meta, dict(prompts=meta.get("prompts"), transform=transform, strict=strict, name=name)


def _norm(name: str) -> str:
    return " ".join(re.sub(r"[_\-/]+", " ", name.lower()).split())


def release_mismatch(name: str, root, found: List[str], meta: dict) -> Optional[str]:
    """The error text when a release's own class list (e.g. SUN397's ClassName.txt) disagrees with
    ucat's names in label order, else None. A label agrees when its release name matches either
    shipped variant (``classes`` or ``clip_classes``) up to case and ``_``/``-``/``/``."""
    official = meta["classes"]
    clip = meta.get("clip_classes", official)
    bad = [i for i, f in enumerate(found) if _norm(f) not in (_norm(official[i]), _norm(clip[i]))]
    if not bad:
        return None
    pairs = "; ".join(f"label {i}: the release says {found[i]!r}, ucat says {official[i]!r}" for i in bad[:2])
    return (f"dataset {name!r} at {root}: the release's own class list disagrees with ucat's class names in "
            f"{len(bad)} label(s) ({pairs}), so labels and prompts would not match. Use the standard release, or "
            f"pass classnames_file with the release's names in its label order")


def _torchvision(name: str, cls_name: str, split_kwargs: Callable[[str], dict],
                 targets_fn: Optional[Callable] = None, order_fn: Optional[Callable] = None,
                 names_from_data: bool = False) -> Callable:
    """A builder over ``torchvision.datasets.<cls_name>`` returning PIL images to our wrapper."""

    def builder(root: Path, split: str, transform=None, download: bool = False, strict: bool = False,
                classnames: str = "official", **kw):
        cls = getattr(tvd, cls_name)
        try:
            base = cls(str(root), transform=None, download=download, **split_kwargs(split), **kw)
        except RuntimeError as e:   # torchvision's "Dataset not found or corrupted" / missing scipy, h5py
            info = _info(name)
            raise FileNotFoundError(f"dataset {name!r}: torchvision's {cls_name} could not load it from {root}: {e}. "
                                    f"Expected layout under the data root: {info.layout}. How to get it: "
                                    f"{info.how_to_get}") from e
        meta, dkw = _meta_dataset_kwargs(name, transform, strict)
        found = getattr(base, "classes", None) or getattr(base, "categories", None)
        if found is not None and len(found) != len(meta["classes"]):
            raise ValueError(f"dataset {name!r} at {root} has {len(found)} classes but ucat's class names list "
                             f"{len(meta['classes'])}; the files are not the standard {cls_name} release")
        order = order_fn(base) if order_fn else None
        ds = WrappedDataset(base, select_classes(meta, classnames), [meta["template"]], targets_fn=targets_fn,
                            order=order, **dkw)
        if found is not None and names_from_data:
            ds.release_mismatch = release_mismatch(name, root, [str(c) for c in found], meta)
        return ds

    return builder


def _info(name: str):
    return DATASETS.get(name)


def _split_arg(split: str) -> dict:
    return {"split": split}


def _no_split(split: str) -> dict:
    return {}


def _pcam_targets(base) -> List[int]:
    try:
        f = base._base_folder / base._FILES[base._split]["targets"][0]
        with base.h5py.File(f) as h:
            return [int(v) for v in h["y"][:, 0, 0, 0]]            # (N,1,1,1) -> N labels
    except (AttributeError, KeyError):
        return base_targets(base)


def _sorted_files(base) -> Optional[List[int]]:
    """torchvision's SUN397 lists files in file-system order; sort them so runs are reproducible."""
    files = getattr(base, "_image_files", None)
    if files is None:
        return None
    return sorted(range(len(files)), key=lambda i: str(files[i]))


def _register_tv(name, cls_name, *, splits, default, split_kwargs, markers, layout, how, resize="crop",
                 targets_fn=None, order_fn=None, downloadable=True, names_from_data=True):
    meta = benchmark_meta(name)
    register_dataset(
        name, num_classes=len(meta["classes"]), layout=layout, how_to_get=how, default_split=default,
        splits=tuple(splits), extra=dict(resize=resize, check=_markers(*markers), downloadable=downloadable,
                                         ensemble=meta["ensemble"], loader=f"torchvision.datasets.{cls_name}"),
    )(_torchvision(name, cls_name, split_kwargs, targets_fn, order_fn, names_from_data))


_TV = "torchvision downloads it: ucat data download NAME --data-root DIR (download=True)"

_register_tv("cifar10", "CIFAR10", splits=("test", "train"), default="test",
             split_kwargs=lambda s: {"train": s == "train"}, markers=("cifar-10-batches-py/test_batch",),
             layout="cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}", resize="squash",
             how=f"{_TV}, or extract https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz under the root")
_register_tv("cifar100", "CIFAR100", splits=("test", "train"), default="test",
             split_kwargs=lambda s: {"train": s == "train"}, markers=("cifar-100-python/test",),
             layout="cifar-100-python/{train,test,meta}", resize="squash",
             how=f"{_TV}, or extract https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz under the root")
_register_tv("stl10", "STL10", splits=("test", "train"), default="test", split_kwargs=_split_arg,
             markers=("stl10_binary/test_X.bin",), layout="stl10_binary/{train,test}_{X,y}.bin, class_names.txt",
             resize="squash", how=f"{_TV}, or extract http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz")
_register_tv("food101", "Food101", splits=("test", "train"), default="test", split_kwargs=_split_arg,
             markers=("food-101/images", "food-101/meta/{split}.json"),
             layout="food-101/images/<class>/<id>.jpg, food-101/meta/{train,test}.json",
             how=f"{_TV} (5 GB), or extract http://data.vision.ee.ethz.ch/cvl/food-101.tar.gz")
_register_tv("oxfordpet", "OxfordIIITPet", splits=("test", "trainval"), default="test", split_kwargs=_split_arg,
             markers=("oxford-iiit-pet/images", "oxford-iiit-pet/annotations/{split}.txt"),
             layout="oxford-iiit-pet/images/*.jpg, oxford-iiit-pet/annotations/{trainval,test}.txt",
             how=f"{_TV}, or extract images.tar.gz and annotations.tar.gz from https://www.robots.ox.ac.uk/~vgg/data/pets/ "
                 "into oxford-iiit-pet/")
_register_tv("flowers102", "Flowers102", names_from_data=False, splits=("test", "train", "val"), default="test", split_kwargs=_split_arg,
             markers=("flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"),
             layout="flowers-102/jpg/image_*.jpg, flowers-102/imagelabels.mat, flowers-102/setid.mat (needs scipy)",
             how=f"{_TV}, or get 102flowers.tgz, imagelabels.mat, setid.mat from "
                 "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ into flowers-102/")
_register_tv("dtd", "DTD", splits=("test", "train", "val"), default="test", split_kwargs=_split_arg,
             markers=("dtd/dtd/images", "dtd/dtd/labels"),
             layout="dtd/dtd/images/<class>/*.jpg, dtd/dtd/labels/{train,val,test}1.txt (option partition=1..10)",
             how=f"{_TV}, or extract https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz into dtd/")
_register_tv("eurosat", "EuroSAT", names_from_data=False, splits=("all",), default="all", split_kwargs=_no_split,
             markers=("eurosat/2750",), layout="eurosat/2750/<class>/*.jpg (10 classes, RGB)",
             how=f"{_TV}, or extract EuroSAT.zip (RGB) from https://github.com/phelber/EuroSAT into eurosat/")
_register_tv("fgvc_aircraft", "FGVCAircraft", splits=("test", "train", "val", "trainval"), default="test",
             split_kwargs=lambda s: {"split": s, "annotation_level": "variant"},
             markers=("fgvc-aircraft-2013b/data/images", "fgvc-aircraft-2013b/data/variants.txt"),
             layout="fgvc-aircraft-2013b/data/{images/,variants.txt,images_variant_<split>.txt}",
             how=f"{_TV}, or extract https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz")
_register_tv("caltech101", "Caltech101", names_from_data=False, splits=("all",), default="all", split_kwargs=_no_split,
             markers=("caltech101/101_ObjectCategories",),
             layout="caltech101/101_ObjectCategories/<class>/image_*.jpg (BACKGROUND_Google is dropped)",
             how=f"{_TV}, or extract 101_ObjectCategories.tar.gz from https://data.caltech.edu/records/mzrjq-6wc02 "
                 "into caltech101/")
_register_tv("caltech256", "Caltech256", names_from_data=False, splits=("all",), default="all", split_kwargs=_no_split,
             markers=("caltech256/256_ObjectCategories",),
             layout="caltech256/256_ObjectCategories/NNN.<class>/NNN_*.jpg (257 classes incl. clutter)",
             how=f"{_TV}, or extract 256_ObjectCategories.tar from https://data.caltech.edu/records/nyy15-4j048 "
                 "into caltech256/")
_register_tv("stanfordcars", "StanfordCars", splits=("test", "train"), default="test", split_kwargs=_split_arg,
             markers=("stanford_cars/devkit/cars_meta.mat",),
             layout="stanford_cars/{devkit/cars_meta.mat, cars_test/, cars_test_annos_withlabels.mat, cars_train/, "
                    "devkit/cars_train_annos.mat} (needs scipy)",
             how="the original URL is gone, so torchvision cannot download it; get the Stanford Cars release (e.g. the "
                 "Kaggle mirror 'stanford-car-dataset-by-classes-folder' or 'jessicali9530/stanford-cars-dataset') and "
                 "arrange it as the layout says", downloadable=False)
_register_tv("pcam", "PCAM", names_from_data=False, splits=("test", "train", "val"), default="test", split_kwargs=_split_arg,
             markers=("pcam",), targets_fn=_pcam_targets,
             layout="pcam/camelyonpatch_level_2_split_{test,train,valid}_{x,y}.h5 (needs the h5py package)",
             how=f"{_TV} (pip install h5py first), or get the .h5 files from https://github.com/basveeling/pcam")
_register_tv("sun397", "SUN397", splits=("all",), default="all", split_kwargs=_no_split,
             markers=("SUN397/ClassName.txt",), order_fn=_sorted_files,
             layout="SUN397/ClassName.txt, SUN397/<letter>/<class>[/<sub>]/sun_*.jpg (all 108,754 images)",
             how=f"{_TV} (37 GB), or extract http://vision.princeton.edu/projects/2010/SUN/SUN397.tar.gz")


register_collection("zs16", ZS16)
