"""Tiny on-disk dataset trees in each release's exact layout, shared by the tests/test_data_*.py files."""
import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from ucat.data import benchmark_meta, classnames

TINY = {"n01443537": (0, "goldfish"), "n02123045": (30, "tabby"), "n12267677": (199, "acorn")}
IMNET = {"n01440764": (0, "tench"), "n01443537": (1, "goldfish"), "n15075141": (999, "toilet tissue")}


@pytest.fixture(autouse=True)
def no_env_root(monkeypatch):
    monkeypatch.delenv("UCAT_DATA", raising=False)


def img(path: Path, seed: int, size=(40, 36), fmt=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    colour = tuple(int(v) for v in torch.randint(0, 256, (3,), generator=g))
    Image.new("RGB", size, colour).save(path, format=fmt)


def folder(root: Path, classes=("golden_retriever", "003.tabby-cat", "zebra"), per_class=2) -> Path:
    for k, c in enumerate(classes):
        for j in range(per_class):
            img(root / c / f"{j}.png", 10 * k + j)
    return root


def tiny_tree(root: Path) -> Path:
    d = root / "tiny-imagenet-200"
    d.mkdir(parents=True)
    (d / "wnids.txt").write_text("\n".join(TINY) + "\n")
    (d / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, (_, n) in TINY.items()))
    ann = []
    for k, w in enumerate(TINY):
        for j in range(2):
            img(d / "train" / w / "images" / f"{w}_{j}.JPEG", 10 * k + j, fmt="JPEG")
        img(d / "val" / "images" / f"val_{k}.JPEG", 100 + k, fmt="JPEG")
        ann.append(f"val_{k}.JPEG\t{w}\t0\t0\t10\t10")
    (d / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    return root


# ---- torchvision-backed releases; names as the releases spell them (ucat's 'clip' variant is the release form)
def fake_caltech101(r: Path):
    folders = ["BACKGROUND_Google"] + benchmark_meta("caltech101")["folders"]
    for k, c in enumerate(folders):
        img(r / "caltech101" / "101_ObjectCategories" / c / "image_0001.jpg", k, size=(8, 8), fmt="JPEG")


def fake_caltech256(r: Path):
    for k in range(257):
        img(r / "caltech256" / "256_ObjectCategories" / f"{k + 1:03d}.c{k}" / f"{k + 1:03d}_0001.jpg", k, (8, 8), "JPEG")


def fake_dtd(r: Path):
    lines = []
    for k, c in enumerate(classnames("dtd", "clip")):                 # the release's folders, e.g. polka-dotted
        img(r / "dtd" / "dtd" / "images" / c / f"{c}_0001.jpg", k, (8, 8), "JPEG")
        lines.append(f"{c}/{c}_0001.jpg")
    (r / "dtd" / "dtd" / "labels").mkdir(parents=True)
    (r / "dtd" / "dtd" / "labels" / "test1.txt").write_text("\n".join(lines) + "\n")


def fake_food101(r: Path):
    meta = {}
    for k, c in enumerate(benchmark_meta("food101")["classes"]):
        name = c.replace(" ", "_")
        img(r / "food-101" / "images" / name / "1.jpg", k, (8, 8), "JPEG")
        meta[name] = [f"{name}/1"]
    (r / "food-101" / "meta").mkdir(parents=True)
    (r / "food-101" / "meta" / "test.json").write_text(json.dumps(meta))


def fake_oxfordpet(r: Path):
    lines = []
    for k, c in enumerate(benchmark_meta("oxfordpet")["classes"]):
        image_id = c.replace(" ", "_") + "_1"
        img(r / "oxford-iiit-pet" / "images" / f"{image_id}.jpg", k, (8, 8), "JPEG")
        lines.append(f"{image_id} {k + 1} 1 1")
    (r / "oxford-iiit-pet" / "annotations").mkdir(parents=True)
    (r / "oxford-iiit-pet" / "annotations" / "test.txt").write_text("\n".join(lines) + "\n")


def fake_fgvc_aircraft(r: Path, swap: bool = False):
    d = r / "fgvc-aircraft-2013b" / "data"
    names = classnames("fgvc_aircraft", "clip")                       # variants.txt: '707-320', ..., 'A300B4'
    if swap:                                            # a release whose label order differs from ucat's names
        names[3], names[4] = names[4], names[3]
    for k in range(len(names)):
        img(d / "images" / f"{k:07d}.jpg", k, (8, 8), "JPEG")
    (d / "variants.txt").write_text("\n".join(names) + "\n")
    (d / "images_variant_test.txt").write_text("".join(f"{k:07d} {n}\n" for k, n in enumerate(names)))


def sun397_class_lines():
    """ClassName.txt lines: the release's first, the two jail entries and the last are spelled out
    (SUN397 ClassName.txt: '/a/abbey', ..., '/j/jail/indoor', '/j/jail_cell', ..., '/y/youth_hostel');
    the others are built from ucat's names (their '/' vs '_' does not matter to a label check)."""
    lines = [f"/{c[0]}/{c.replace(' ', '_')}" for c in benchmark_meta("sun397")["classes"]]
    lines[0], lines[206], lines[207], lines[396] = "/a/abbey", "/j/jail/indoor", "/j/jail_cell", "/y/youth_hostel"
    return lines


def fake_sun397(r: Path, lines=None, images=None):
    d = r / "SUN397"
    lines = lines or sun397_class_lines()
    for k in (images if images is not None else range(len(lines))):
        img(d / lines[k].strip("/") / f"sun_{k:04d}.jpg", k, (8, 8), "JPEG")
    (d / "ClassName.txt").write_text("\n".join(lines) + "\n")


def fake_stanfordcars(r: Path):
    import numpy as np
    from scipy.io import savemat

    d = r / "stanford_cars"
    (d / "devkit").mkdir(parents=True)
    names = [c.title() for c in classnames("stanfordcars", "clip")]      # cars_meta.mat keeps the year
    savemat(d / "devkit" / "cars_meta.mat", {"class_names": np.array(names, dtype=object)})
    ann = np.zeros(3, dtype=[("fname", object), ("class", object)])
    for k, c in enumerate((0, 5, 195)):
        img(d / "cars_test" / f"{k:05d}.jpg", k, (8, 8), "JPEG")
        ann[k] = (f"{k:05d}.jpg", c + 1)
    savemat(d / "cars_test_annos_withlabels.mat", {"annotations": ann})


FAKES = {"caltech101": fake_caltech101, "caltech256": fake_caltech256, "dtd": fake_dtd, "food101": fake_food101,
         "oxfordpet": fake_oxfordpet, "fgvc_aircraft": fake_fgvc_aircraft, "sun397": fake_sun397,
         "stanfordcars": fake_stanfordcars}
