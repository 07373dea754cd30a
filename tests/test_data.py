"""ucat.data: registry, shipped class names/templates, generated tiny trees for every own loader,
own folders/CSVs, roots and missing-data messages, corrupt images, subsampling, ``ucat data``."""
import os
import warnings
from pathlib import Path

import pytest
import torch
from PIL import Image

from ucat.cli import main
from ucat.data import (DATASETS, ZS16, UnreadableImageError, benchmark_meta, build_dataset, check_dataset, describe,
                       expand_datasets, make_loader, readable, subsample)

COUNTS = dict(tinyimagenet=200, cifar10=10, cifar100=100, stl10=10, food101=101, oxfordpet=37, flowers102=102, dtd=47,
              eurosat=10, fgvc_aircraft=100, caltech101=101, caltech256=257, stanfordcars=196, pcam=2, imagenet=1000,
              sun397=397)
# paper.md §3.1
PAPER_TEMPLATES = {
    "dtd": "A surface with a {} texture.", "oxfordpet": "A photo of a {}, a type of pet.",
    "flowers102": "A photo of a {}, a type of flower.", "food101": "A photo of {}, a type of food.",
    "fgvc_aircraft": "A photo of a {}, a type of aircraft.", "stanfordcars": "A photo of a {}.",
    "eurosat": "A centered satellite photo of {}.", "caltech256": "A photo of a {}.",
}
TINY = {"n01443537": (0, "goldfish"), "n02123045": (30, "tabby"), "n12267677": (199, "acorn")}
IMNET = {"n01440764": (0, "tench"), "n01443537": (1, "goldfish"), "n15075141": (999, "toilet paper")}


def _img(path: Path, seed: int, size=(40, 36), fmt=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    colour = tuple(int(v) for v in torch.randint(0, 256, (3,), generator=g))
    Image.new("RGB", size, colour).save(path, format=fmt)


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch):
    monkeypatch.delenv("UCAT_DATA", raising=False)


# ------------------------------------------------------------------ registry and package data
def test_zs16_is_the_papers_order_and_every_member_is_registered():
    assert ZS16 == ["tinyimagenet", "cifar10", "cifar100", "stl10", "food101", "oxfordpet", "flowers102", "dtd",
                    "eurosat", "fgvc_aircraft", "caltech101", "caltech256", "stanfordcars", "pcam", "imagenet", "sun397"]
    assert expand_datasets(["zs16"]) == ZS16
    assert expand_datasets(["cifar10,zs16", "dtd"])[:2] == ["cifar10", "tinyimagenet"]
    assert len(expand_datasets(["cifar10,zs16", "dtd"])) == 16            # duplicates dropped, order kept
    for name in ZS16:
        assert name in DATASETS


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_class_counts_and_default_templates(name):
    meta = benchmark_meta(name)
    assert len(meta["classes"]) == COUNTS[name] == DATASETS.get(name).num_classes
    assert all(isinstance(c, str) and c.strip() == c and c for c in meta["classes"])
    if name != "imagenet":                       # ImageNet has two known duplicate names (CLIP #235)
        assert len(set(meta["classes"])) == COUNTS[name]
    assert meta["template"] == PAPER_TEMPLATES.get(name, "This is a photo of a {}" if name != "pcam"
                                                   else "this is a photo of {}")
    assert meta["ensemble"] and all("{}" in t for t in meta["ensemble"])
    info = DATASETS.get(name)
    assert info.default_split in info.splits and info.layout and info.how_to_get
    whole = {"eurosat", "caltech101", "caltech256", "sun397"}
    expected_split = "all" if name in whole else ("val" if name in ("tinyimagenet", "imagenet") else "test")
    assert info.default_split == expected_split
    assert info.extra["resize"] == ("squash" if name in ("cifar10", "cifar100", "stl10") else "crop")


def test_reference_names_and_prompts():
    assert benchmark_meta("pcam")["prompts"] == [["Tthis is a photo of healthy lymph node tissue."],
                                                 ["This is a photo of lymph node tumor tissue."]]
    assert benchmark_meta("eurosat")["classes"][0] == "annual crop land"       # sorted-folder (AnnualCrop) order
    assert benchmark_meta("caltech256")["classes"][-1] == "clutter"
    assert benchmark_meta("imagenet")["wnids"][0] == "n01440764"
    assert len(benchmark_meta("imagenet")["ensemble"]) == 80
    assert readable("003.golden_retriever") == "golden retriever" and readable("ak47") == "ak47"


# ------------------------------------------------------------------ TinyImageNet and ImageNet trees
def _tiny_tree(root: Path) -> Path:
    d = root / "tiny-imagenet-200"
    d.mkdir(parents=True)
    (d / "wnids.txt").write_text("\n".join(TINY) + "\n")
    (d / "words.txt").write_text("".join(f"{w}\t{n}\n" for w, (_, n) in TINY.items()))
    ann = []
    for k, w in enumerate(TINY):
        for j in range(2):
            _img(d / "train" / w / "images" / f"{w}_{j}.JPEG", 10 * k + j, fmt="JPEG")
        _img(d / "val" / "images" / f"val_{k}.JPEG", 100 + k, fmt="JPEG")
        ann.append(f"val_{k}.JPEG\t{w}\t0\t0\t10\t10")
    (d / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    return root


def test_tinyimagenet_tree(tmp_path):
    root = _tiny_tree(tmp_path / "data")
    ds = build_dataset("tinyimagenet", root=root, image_size=32)
    assert ds.split == "val" and len(ds) == 3 and len(ds.classes) == 200
    assert ds.targets == [idx for idx, _ in TINY.values()]
    assert [ds.classes[y] for y in ds.targets] == [n for _, n in TINY.values()]
    assert ds.templates == ["This is a photo of a {}"] and ds.prompts is None
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and y == 0
    train = build_dataset("tinyimagenet", root=root, split="train", image_size=32, templates="ensemble")
    assert len(train) == 6 and sorted(set(train.targets)) == [0, 30, 199] and len(train.templates) == 80
    with pytest.raises(ValueError, match="no split 'test'"):
        build_dataset("tinyimagenet", root=root, split="test")
    several = f"{tmp_path / 'elsewhere'}{os.pathsep}{root}"                 # first root holding it wins
    assert len(build_dataset("tinyimagenet", root=several, image_size=32)) == 3


def test_imagenet_tree_and_dataset_templating(tmp_path):
    for k, w in enumerate(IMNET):
        _img(tmp_path / "imagenet" / "imagenet" / "val" / w / f"ILSVRC2012_val_{k}.JPEG", k, fmt="JPEG")
    ds = build_dataset("imagenet", root=str(tmp_path / "{dataset}"), image_size=32)   # {dataset} -> imagenet
    assert len(ds) == 3 and len(ds.classes) == 1000
    assert ds.targets == [0, 1, 999]
    assert [ds.classes[y] for y in ds.targets] == [n for _, n in IMNET.values()]
    (tmp_path / "imagenet" / "imagenet" / "val" / "not_a_wnid").mkdir()
    with pytest.raises(ValueError, match="not an ImageNet-1k WordNet id"):
        build_dataset("imagenet", root=str(tmp_path / "{dataset}"))


def test_torchvision_backed_eurosat_tree(tmp_path, monkeypatch):
    folders = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
               "Residential", "River", "SeaLake"]
    for k, f in enumerate(folders):
        _img(tmp_path / "eurosat" / "2750" / f / f"{f}_1.jpg", k, size=(64, 64), fmt="JPEG")
    monkeypatch.setenv("UCAT_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("UCAT_DATA_EUROSAT", str(tmp_path))      # the per-dataset override wins
    ds = build_dataset("eurosat", image_size=32)
    assert ds.split == "all" and len(ds) == 10 and ds.targets == list(range(10))
    assert ds.classes[1] == "a forest" and ds.templates == ["A centered satellite photo of {}."]
    assert ds[3][0].shape == (3, 32, 32)
    ens = build_dataset("eurosat", image_size=32, templates="ensemble")
    assert ens.templates[0] == "a centered satellite photo of {}." and len(ens.templates) == 3
    assert build_dataset("eurosat", templates=["ensemble"]).templates == ens.templates      # a CLI list
    assert build_dataset("eurosat", templates=["paper"]).templates == ds.templates
    with pytest.raises(ValueError, match="whole dataset"):
        build_dataset("eurosat", split="test")


# ------------------------------------------------------------------ own data: ImageFolder and CSV
def _folder(root: Path, classes=("golden_retriever", "003.tabby-cat", "zebra"), per_class=2) -> Path:
    for k, c in enumerate(classes):
        for j in range(per_class):
            _img(root / c / f"{j}.png", 10 * k + j)
    return root


def test_image_folder(tmp_path):
    root = _folder(tmp_path / "pets")
    ds = build_dataset(str(root), image_size=32)
    assert ds.classes == ["tabby cat", "golden retriever", "zebra"]          # sorted folders: 003.tabby-cat first
    assert ds[0][0].shape == (3, 32, 32)
    assert build_dataset(str(root), image_size=16, resize="squash")[0][0].shape == (3, 16, 16)
    assert ds.targets == [0, 0, 1, 1, 2, 2]
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n\nzebra\n")
    ds = build_dataset(str(root), classnames_file=str(names), template="a photo of a {}, a pet.")
    assert ds.classes == ["cat", "dog", "zebra"] and ds.templates == ["a photo of a {}, a pet."]
    names.write_text("cat\ndog\n")
    with pytest.raises(ValueError, match="2 names but .* 3 classes"):
        build_dataset(str(root), classnames_file=str(names))
    with pytest.raises(ValueError, match="placeholder"):
        build_dataset(str(root), template="a photo")
    tfile = tmp_path / "templates.txt"
    tfile.write_text("# mine\na photo of a {}.\n\na drawing of a {}.\n")
    ds2 = build_dataset(str(root), templates=str(tfile))
    assert ds2.templates == ["a photo of a {}.", "a drawing of a {}."]
    d1, d2 = describe(ds), describe(ds2)
    assert d1["num_classes"] == 3 and d1["n_images"] == 6 and d1["templates"] == ["a photo of a {}, a pet."]
    assert d1["text_fingerprint"] != d2["text_fingerprint"] == describe(build_dataset(str(root), templates=str(tfile)))[
        "text_fingerprint"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_dataset(str(tmp_path / "nope"))


def test_csv_dataset(tmp_path):
    for k in range(4):
        _img(tmp_path / "imgs" / f"{k}.jpg", k, fmt="JPEG")
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label,split\nimgs/0.jpg,sea_lion,test\nimgs/1.jpg,cat,test\n"
                   f"{tmp_path / 'imgs' / '2.jpg'},sea_lion,train\nimgs/3.jpg,cat,test\n")
    ds = build_dataset(str(csv), image_size=32)
    assert ds.classes == ["cat", "sea lion"] and ds.targets == [1, 0, 1, 0]
    assert ds[2][0].shape == (3, 32, 32)                                     # absolute path row
    assert build_dataset(str(csv), split="test").targets == [1, 0, 0]
    ints = tmp_path / "ints.csv"
    ints.write_text("path,label\nimgs/0.jpg,1\nimgs/1.jpg,0\n")
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    ds = build_dataset(str(ints), classnames_file=str(names))
    assert ds.classes == ["cat", "dog"] and ds.targets == [1, 0]
    names.write_text("cat\n")
    with pytest.raises(ValueError, match="uses label 1"):
        build_dataset(str(ints), classnames_file=str(names))
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\nimgs/0.jpg,cat\n")
    with pytest.raises(ValueError, match="'path' and 'label'"):
        build_dataset(str(bad))


# ------------------------------------------------------------------ roots and missing data
def test_missing_root_and_missing_data_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match="UCAT_DATA_CIFAR10=DIR for this dataset alone"):
        build_dataset("cifar10")
    with pytest.raises(FileNotFoundError) as e:
        build_dataset("sun397", root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "SUN397" / "ClassName.txt") in msg and "Layout:" in msg and "How to get it:" in msg
    with pytest.raises(KeyError, match="unknown dataset 'cifar11'"):
        build_dataset("cifar11")


def test_data_check_cli_present_and_missing(tmp_path, capsys):
    root = _tiny_tree(tmp_path / "data")
    assert main(["data", "check", "tinyimagenet", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "found" in out and "3 images, 200 classes" in out and "1/1 datasets ready" in out
    assert main(["data", "check", "tinyimagenet", "imagenet", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and str(root / "imagenet" / "val") in out and "imagenet/{train,val}/<wnid>" in out
    assert "missing or broken: imagenet" in out
    rep = check_dataset("imagenet", root=tmp_path / "empty")
    assert rep["status"] == "missing" and rep["path"] == str(tmp_path / "empty" / "imagenet" / "val")
    assert check_dataset(str(tmp_path / "no_such_folder"))["status"] == "missing"
    expand_datasets([])                                                    # registers generated datasets too
    generated = [n for n in DATASETS.names() if not DATASETS.get(n).needs_root]
    for n in generated[:1]:
        assert check_dataset(n)["status"] == "generated"                   # needs no data root
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "zs16: tinyimagenet cifar10" in out and "sun397" in out
    assert main(["data", "show", "pcam"]) == 0
    out = capsys.readouterr().out
    assert "Tthis is a photo of healthy lymph node tissue." in out and "   1 lymph node containing" in out
    assert main(["data", "download", "imagenet", "--data-root", str(tmp_path)]) == 1   # no automatic download
    assert "cannot be downloaded automatically" in capsys.readouterr().out
    assert main(["data", "show", "cifar11"]) == 2                          # one clear error line
    assert "unknown dataset 'cifar11'" in capsys.readouterr().err


# ------------------------------------------------------------------ corrupt images and the loader
def test_corrupt_image_is_counted_not_fatal(tmp_path):
    root = _folder(tmp_path / "imgs", classes=("cat", "dog"), per_class=3)
    (root / "dog" / "9_garbage.png").write_bytes(b"this is not an image")
    good = root / "cat" / "9_truncated.jpg"
    _img(good, 7, size=(64, 64), fmt="JPEG")
    good.write_bytes(good.read_bytes()[:200])
    ds = build_dataset(str(root), image_size=32)
    assert len(ds) == 8
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        seen, skipped, batches = 0, 0, 0
        for images, labels, n_skipped in make_loader(ds, batch_size=3):
            assert images.dtype == torch.float32 and labels.dtype == torch.int64
            assert images.shape[0] == labels.shape[0]
            seen, skipped, batches = seen + images.shape[0], skipped + n_skipped, batches + 1
    assert (seen, skipped, batches) == (6, 2, 3)
    strict = build_dataset(str(root), image_size=32, strict=True)
    with pytest.raises(UnreadableImageError, match="strict=False"):
        [strict[i] for i in range(len(strict))]


def test_all_unreadable_batch_is_empty_not_an_error(tmp_path):
    root = tmp_path / "bad"
    (root / "a").mkdir(parents=True)
    for k in range(2):
        (root / "a" / f"{k}.jpg").write_bytes(b"nope")
    ds = build_dataset(str(root), image_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (images, labels, n), = list(make_loader(ds, batch_size=4))
    assert images.shape[0] == 0 and labels.shape == (0,) and n == 2


def test_num_workers_auto_and_bad_values(monkeypatch):
    from ucat.data import resolve_num_workers
    from ucat.data import loader as loader_mod

    monkeypatch.setattr(loader_mod, "usable_cpus", lambda: 32)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_num_workers("auto", "cpu") == 0            # the CPU step already uses every core
    assert resolve_num_workers("auto", "cuda") == 16          # capped per process
    assert resolve_num_workers("AUTO", "cuda", local_world_size=8) == 3      # 32 cores, 8 ranks, 1 core each
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert resolve_num_workers(None, "cuda:1") == 7           # torchrun's LOCAL_WORLD_SIZE
    monkeypatch.setattr(loader_mod, "usable_cpus", lambda: 2)
    assert resolve_num_workers("auto", "cuda") == 1           # at least one worker on CUDA
    assert resolve_num_workers(3, "cuda") == 3 and resolve_num_workers("0") == 0
    for bad in (-1, "two", "1.5", 2.5):
        with pytest.raises(ValueError, match="--num-workers .*'auto' or a whole number >= 0"):
            resolve_num_workers(bad)
    with pytest.raises(ValueError, match="resolve 'auto'"):
        make_loader([], batch_size=2, num_workers="auto")


def test_num_workers_flag_reaches_the_configs():
    from ucat.eval.evaluator import EvalConfig
    from ucat.train.config import TrainConfig

    assert EvalConfig().num_workers == "auto" and EvalConfig(num_workers="2").num_workers == 2
    with pytest.raises(ValueError, match="--num-workers"):
        EvalConfig(num_workers="many")
    cfg = TrainConfig(num_workers="1")
    cfg.validate()
    assert cfg.num_workers == 1
    with pytest.raises(ValueError, match="--num-workers"):
        TrainConfig(num_workers=-2).validate()


def test_loader_with_worker_processes_matches_the_main_process(tmp_path):
    root = _folder(tmp_path / "imgs", classes=("a", "b"), per_class=3)
    ds = build_dataset(str(root), image_size=32)
    ref = [(x.clone(), y.clone()) for x, y, _ in make_loader(ds, batch_size=4)]
    loader = make_loader(ds, batch_size=4, num_workers=1, persistent_workers=True)
    for _ in range(2):                                         # two epochs on the same worker
        got = [(x, y) for x, y, _ in loader]
        assert len(got) == len(ref)
        for (x, y), (rx, ry) in zip(got, ref):
            assert torch.equal(x, rx) and torch.equal(y, ry)
    assert loader.persistent_workers is True
    assert make_loader(ds, batch_size=4, persistent_workers=True).persistent_workers is False
    cpu = make_loader(ds, batch_size=4, num_workers="auto", device="cpu")    # auto on a CPU device: none
    assert cpu.num_workers == 0 and cpu.pin_memory is False


def test_subsample_is_deterministic_and_keeps_attributes(tmp_path):
    root = _folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=5)
    ds = build_dataset(str(root), image_size=32)
    s1, s2 = subsample(ds, 6, seed=0), subsample(ds, 6, seed=0)
    assert s1.indices == s2.indices and len(s1) == 6 and s1.indices == sorted(s1.indices)
    assert subsample(ds, 6, seed=1).indices != s1.indices
    assert s1.classes == ds.classes and s1.templates == ds.templates and s1.prompts is None
    assert s1.targets == [ds.targets[i] for i in s1.indices]
    pc = subsample(ds, 2, per_class=True, seed=3)
    assert len(pc) == 6 and sorted(pc.targets) == [0, 0, 1, 1, 2, 2]
    assert pc.indices == subsample(ds, 2, per_class=True, seed=3).indices
    assert subsample(ds, 100) is ds and subsample(ds, None) is ds
    with pytest.raises(ValueError, match="positive"):
        subsample(ds, 0)
    images, labels, n = next(iter(make_loader(pc, batch_size=6)))
    assert labels.tolist() == pc.targets and n == 0


def test_folder_dataset_feeds_a_zero_shot_classifier(tmp_path, tiny_bundle):
    from ucat.models import ZeroShotClassifier

    ds = subsample(build_dataset(str(_folder(tmp_path / "f")), image_size=tiny_bundle.image_size), 4, seed=0)
    clf = ZeroShotClassifier.from_bundle(tiny_bundle, ds.classes, ds.templates)
    images, labels, _ = next(iter(make_loader(ds, batch_size=4)))
    with torch.no_grad():
        logits = clf(images)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()


# ------------------------------------------------------------------ torchvision-backed layouts (fake trees)
def _fake_caltech101(r: Path):
    for k, c in enumerate(["BACKGROUND_Google"] + [f"cat{k:03d}" for k in range(101)]):
        _img(r / "caltech101" / "101_ObjectCategories" / c / "image_0001.jpg", k, size=(8, 8), fmt="JPEG")


def _fake_caltech256(r: Path):
    for k in range(257):
        _img(r / "caltech256" / "256_ObjectCategories" / f"{k + 1:03d}.c{k}" / f"{k + 1:03d}_0001.jpg", k, (8, 8), "JPEG")


def _fake_dtd(r: Path):
    lines = []
    for k, c in enumerate(benchmark_meta("dtd")["classes"]):
        _img(r / "dtd" / "dtd" / "images" / c / f"{c}_0001.jpg", k, (8, 8), "JPEG")
        lines.append(f"{c}/{c}_0001.jpg")
    (r / "dtd" / "dtd" / "labels").mkdir(parents=True)
    (r / "dtd" / "dtd" / "labels" / "test1.txt").write_text("\n".join(lines) + "\n")


def _fake_food101(r: Path):
    import json

    meta = {}
    for k, c in enumerate(benchmark_meta("food101")["classes"]):
        folder = c.replace(" ", "_")
        _img(r / "food-101" / "images" / folder / "1.jpg", k, (8, 8), "JPEG")
        meta[folder] = [f"{folder}/1"]
    (r / "food-101" / "meta").mkdir(parents=True)
    (r / "food-101" / "meta" / "test.json").write_text(json.dumps(meta))


def _fake_oxfordpet(r: Path):
    lines = []
    for k, c in enumerate(benchmark_meta("oxfordpet")["classes"]):
        image_id = c.replace(" ", "_") + "_1"
        _img(r / "oxford-iiit-pet" / "images" / f"{image_id}.jpg", k, (8, 8), "JPEG")
        lines.append(f"{image_id} {k + 1} 1 1")
    (r / "oxford-iiit-pet" / "annotations").mkdir(parents=True)
    (r / "oxford-iiit-pet" / "annotations" / "test.txt").write_text("\n".join(lines) + "\n")


def _fake_fgvc_aircraft(r: Path, swap: bool = False):
    d = r / "fgvc-aircraft-2013b" / "data"
    names = benchmark_meta("fgvc_aircraft")["classes"]
    if swap:                                            # a release whose label order differs from ucat's names
        names[3], names[4] = names[4], names[3]
    for k in range(len(names)):
        _img(d / "images" / f"{k:07d}.jpg", k, (8, 8), "JPEG")
    (d / "variants.txt").write_text("\n".join(names) + "\n")
    (d / "images_variant_test.txt").write_text("".join(f"{k:07d} {n}\n" for k, n in enumerate(names)))


def _fake_sun397(r: Path):
    d = r / "SUN397"
    names = [f"/{c[0]}/{c.replace(' ', '_')}" for c in benchmark_meta("sun397")["classes"]]
    for k, n in enumerate(names):
        _img(d / n.strip("/") / f"sun_{k:04d}.jpg", k, (8, 8), "JPEG")
    (d / "ClassName.txt").write_text("\n".join(names) + "\n")


def _fake_stanfordcars(r: Path):
    import numpy as np
    from scipy.io import savemat

    d = r / "stanford_cars"
    (d / "devkit").mkdir(parents=True)
    names = [c.title() for c in benchmark_meta("stanfordcars")["classes"]]
    savemat(d / "devkit" / "cars_meta.mat", {"class_names": np.array(names, dtype=object)})
    ann = np.zeros(3, dtype=[("fname", object), ("class", object)])
    for k, c in enumerate((0, 5, 195)):
        _img(d / "cars_test" / f"{k:05d}.jpg", k, (8, 8), "JPEG")
        ann[k] = (f"{k:05d}.jpg", c + 1)
    savemat(d / "cars_test_annos_withlabels.mat", {"annotations": ann})


FAKES = {"caltech101": _fake_caltech101, "caltech256": _fake_caltech256, "dtd": _fake_dtd, "food101": _fake_food101,
         "oxfordpet": _fake_oxfordpet, "fgvc_aircraft": _fake_fgvc_aircraft, "sun397": _fake_sun397,
         "stanfordcars": _fake_stanfordcars}


@pytest.mark.parametrize("name", sorted(FAKES))
def test_torchvision_layouts(name, tmp_path):
    """Each torchvision-backed benchmark loads from its documented layout with the protocol split,
    the shipped class names, labels read without decoding images, and tensors in [0,1]."""
    FAKES[name](tmp_path)
    assert check_dataset(name, root=tmp_path, load=False)["status"] == "found"
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # the data's own names agree with the shipped ones
        ds = build_dataset(name, root=tmp_path, image_size=16)
    assert ds.split == DATASETS.get(name).default_split
    assert ds.classes == benchmark_meta(name)["classes"]
    t = ds.targets
    assert len(t) == len(ds) and all(0 <= y < len(ds.classes) for y in t)
    x, y = ds[len(ds) - 1]
    assert x.shape == (3, 16, 16) and 0 <= x.min() and x.max() <= 1 and y == t[-1]
    if name == "stanfordcars":
        assert t == [0, 5, 195]
    elif name != "sun397":
        assert sorted(set(t)) == list(range(len(ds.classes)))
    else:
        assert sorted(set(t)) == list(range(397))


def test_label_order_mismatch_with_the_shipped_names_warns(tmp_path):
    _fake_fgvc_aircraft(tmp_path, swap=True)
    with pytest.warns(UserWarning, match=r"label 3 .*\(2 labels differ\)"):
        build_dataset("fgvc_aircraft", root=tmp_path)


def test_generated_trees_pass_through_ucat_eval(tmp_path):
    """Issue 3's "done when": the generated trees (a registry dataset under --data-root and a user
    folder with a corrupt image) go through `ucat eval` end to end; the bad image is counted."""
    import csv

    root = _tiny_tree(tmp_path / "data")
    mine = _folder(tmp_path / "mine", classes=("cat", "dog"), per_class=2)
    (mine / "dog" / "broken.jpg").write_bytes(b"garbage")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["eval", "--model", "ucat-tiny", "--datasets", "tinyimagenet", str(mine), "--data-root", str(root),
                   "--attacks", "none", "--batch-size", "4", "--out", str(out), "--no-plots", "--no-progress"])
    assert rc == 0
    rows = {r["dataset"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert (rows["tinyimagenet"]["n"], rows["tinyimagenet"]["n_skipped"]) == ("3", "0")
    assert (rows[str(mine)]["n"], rows[str(mine)]["n_skipped"]) == ("4", "1")
