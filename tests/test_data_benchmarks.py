"""The benchmarks' on-disk formats: tiny trees the tests create in each release's exact layout
(TinyImageNet, ImageNet, ImageNet-A/-O/-R/-Sketch, the torchvision-backed releases), protocol
splits, official vs CLIP names, and a release whose own class list disagrees with ucat's (an error)."""
import os
import warnings

import pytest
import torch

from data_trees import FAKES, IMNET, TINY, fake_fgvc_aircraft, fake_sun397, img, no_env_root, sun397_class_lines, tiny_tree  # noqa: F401,E501
from ucat.cli import main
from ucat.data import DATASETS, benchmark_meta, build_dataset, check_dataset, classnames


def test_tinyimagenet_tree(tmp_path):
    root = tiny_tree(tmp_path / "data")
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
    clip = build_dataset("tinyimagenet", root=root, image_size=32, classnames="clip")
    assert clip.targets == ds.targets and clip.classes[30] == "tabby cat"     # open_clip's name of n02123045


def test_imagenet_tree_official_and_clip_names(tmp_path):
    for k, w in enumerate(IMNET):
        img(tmp_path / "imagenet" / "imagenet" / "val" / w / f"ILSVRC2012_val_{k}.JPEG", k, fmt="JPEG")
    ds = build_dataset("imagenet", root=str(tmp_path / "{dataset}"), image_size=32)   # {dataset} -> imagenet
    assert len(ds) == 3 and len(ds.classes) == 1000
    assert ds.targets == [0, 1, 999]
    assert [ds.classes[y] for y in ds.targets] == [n for _, n in IMNET.values()]
    clip = build_dataset("imagenet", root=str(tmp_path / "{dataset}"), classnames="clip")
    assert clip.classes[999] == "toilet paper" and clip.targets == ds.targets
    with pytest.raises(ValueError, match="classnames"):
        build_dataset("imagenet", root=str(tmp_path / "{dataset}"), classnames="curated")
    (tmp_path / "imagenet" / "imagenet" / "val" / "not_a_wnid").mkdir()
    with pytest.raises(ValueError, match="not an ImageNet-1k WordNet id"):
        build_dataset("imagenet", root=str(tmp_path / "{dataset}"))


# ImageNet-A/-O/-R: hendrycks' tars extract to <name>/README.txt + <wnid>/<file>.jpg; ImageNet-Sketch's zip to
# sketch/<wnid>/sketch_<k>.JPEG
VARIANT_FILES = {"imagenet-a": ("imagenet-a", "0.000116_digital clock _ digital clock_0.865662.jpg"),
                 "imagenet-o": ("imagenet-o", "0.000118_bubble _ bubble_0.9812.jpg"),
                 "imagenet-r": ("imagenet-r", "art_0.jpg"),
                 "imagenet-sketch": ("imagenet-sketch/sketch", "sketch_0.JPEG")}


@pytest.mark.parametrize("name", sorted(VARIANT_FILES))
def test_imagenet_variant_release_layouts(name, tmp_path):
    rel, fname = VARIANT_FILES[name]
    wnids = benchmark_meta(name)["wnids"]
    picks = [0, 7, len(wnids) - 1]
    for k in picks:
        img(tmp_path / rel / wnids[k] / fname, k, size=(20, 24), fmt="JPEG")
    if name != "imagenet-sketch":
        (tmp_path / rel / "README.txt").write_text("release notes")
    assert check_dataset(name, root=tmp_path, load=False)["status"] == "found"
    ds = build_dataset(name, root=tmp_path, image_size=16)
    assert ds.split == "test" and len(ds.classes) == len(wnids) and ds.targets == picks
    full = dict(zip(benchmark_meta("imagenet")["wnids"], classnames("imagenet")))
    assert [ds.classes[y] for y in ds.targets] == [full[wnids[k]] for k in picks]    # official names by wnid
    assert ds.templates == ["This is a photo of a {}"] and ds[2][0].shape == (3, 16, 16)
    if name != "imagenet-sketch":
        outside = sorted(set(full) - set(wnids))[0]                                   # a wnid not in the subset
        img(tmp_path / rel / outside / fname, 99, fmt="JPEG")
        with pytest.raises(ValueError, match=f"{outside} is not one of its 200 WordNet ids"):
            build_dataset(name, root=tmp_path)


def test_imagenet_variant_missing_names_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"imagenet-r/<wnid>/\*\.jpg.*imagenet-r\.tar"):
        build_dataset("imagenet-r", root=tmp_path)


def test_torchvision_backed_eurosat_tree(tmp_path, monkeypatch):
    folders = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture", "PermanentCrop",
               "Residential", "River", "SeaLake"]
    for k, f in enumerate(folders):
        img(tmp_path / "eurosat" / "2750" / f / f"{f}_1.jpg", k, size=(64, 64), fmt="JPEG")
    monkeypatch.setenv("UCAT_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("UCAT_DATA_EUROSAT", str(tmp_path))      # the per-dataset override wins
    ds = build_dataset("eurosat", image_size=32)
    assert ds.split == "all" and len(ds) == 10 and ds.targets == list(range(10))
    assert ds.classes[1] == "a forest" and ds.templates == ["A centered satellite photo of {}."]
    assert ds[3][0].shape == (3, 32, 32)
    assert build_dataset("eurosat", classnames="clip").classes[1] == "forest"
    ens = build_dataset("eurosat", image_size=32, templates="ensemble")
    assert ens.templates[0] == "a centered satellite photo of {}." and len(ens.templates) == 3
    assert build_dataset("eurosat", templates=["ensemble"]).templates == ens.templates      # a CLI list
    assert build_dataset("eurosat", templates=["paper"]).templates == ds.templates
    with pytest.raises(ValueError, match="whole dataset"):
        build_dataset("eurosat", split="test")


@pytest.mark.parametrize("name", sorted(FAKES))
def test_torchvision_layouts(name, tmp_path):
    """Each torchvision-backed benchmark loads from its documented layout with the protocol split,
    the shipped class names, labels read without decoding images, and tensors in [0,1]."""
    FAKES[name](tmp_path)
    assert check_dataset(name, root=tmp_path, load=False)["status"] == "found"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = build_dataset(name, root=tmp_path, image_size=16)
    assert ds.split == DATASETS.get(name).default_split
    assert ds.classes == benchmark_meta(name)["classes"]
    assert build_dataset(name, root=tmp_path, classnames="clip").classes == classnames(name, "clip")
    t = ds.targets
    assert len(t) == len(ds) and all(0 <= y < len(ds.classes) for y in t)
    x, y = ds[len(ds) - 1]
    assert x.shape == (3, 16, 16) and 0 <= x.min() and x.max() <= 1 and y == t[-1]
    if name == "stanfordcars":
        assert t == [0, 5, 195]
    else:
        assert sorted(set(t)) == list(range(len(ds.classes)))


def test_label_order_mismatch_with_the_shipped_names_is_an_error(tmp_path):
    fake_fgvc_aircraft(tmp_path, swap=True)
    with pytest.raises(ValueError, match=r"2 label\(s\) \(label 3: the release says '737-400', ucat says "
                                         r"'boeing 737-300'; label 4: the release says '737-300'"):
        build_dataset("fgvc_aircraft", root=tmp_path)
    names = tmp_path / "names.txt"                           # the user's own names in the release's order
    names.write_text("\n".join(f"n{k}" for k in range(100)) + "\n")
    assert build_dataset("fgvc_aircraft", root=tmp_path, classnames_file=str(names)).classes[3] == "n3"


def test_sun397_labels_follow_classname_txt_and_a_swapped_list_is_an_error(tmp_path, capsys):
    good = tmp_path / "good"
    fake_sun397(good, images=[206, 207])
    ds = build_dataset("sun397", root=good, image_size=16)
    by_folder = {os.path.relpath(os.path.dirname(ds._describe(i)), good / "SUN397"): ds.classes[y]
                 for i, y in enumerate(ds.targets)}
    assert by_folder == {os.path.join("j", "jail", "indoor"): "jail indoor", os.path.join("j", "jail_cell"): "jail cell"}
    bad = tmp_path / "bad"
    lines = sun397_class_lines()
    lines[206], lines[207] = lines[207], lines[206]           # the order ucat shipped before the fix
    fake_sun397(bad, lines=lines, images=[206, 207])
    with pytest.raises(ValueError, match=r"label 206: the release says 'jail_cell', ucat says 'jail indoor'; "
                                         r"label 207: the release says 'jail/indoor', ucat says 'jail cell'"):
        build_dataset("sun397", root=bad)
    assert main(["data", "check", "sun397", "--data-root", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "ERROR" in out and "label 206: the release says 'jail_cell'" in out
    assert main(["data", "check", "sun397", "--data-root", str(good)]) == 0
