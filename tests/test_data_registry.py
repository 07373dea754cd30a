"""ucat.data registry and package data: the zs16 collection, class counts, the paper's templates,
the official UCAT names (default) against CLIP's curated names (the option), and the official
name files shipped verbatim. Reference values are transcribed by hand from the official code
(VivienLu/UCAT @ e3bea1d; file:line in each test)."""
import re

import pytest

from data_trees import no_env_root  # noqa: F401  (autouse fixture)
from ucat.data import (DATASETS, ZS16, benchmark_meta, benchmark_prompts, classnames, expand_datasets,
                       official_file, readable)
from ucat.errors import ConfigError

COUNTS = dict(tinyimagenet=200, cifar10=10, cifar100=100, stl10=10, food101=101, oxfordpet=37, flowers102=102, dtd=47,
              eurosat=10, fgvc_aircraft=100, caltech101=101, caltech256=257, stanfordcars=196, pcam=2, imagenet=1000,
              sun397=397)
# paper.md §3.1; the official loaders' prompt_template defaults (replace/datasets/*.py)
PAPER_TEMPLATES = {
    "dtd": "A surface with a {} texture.", "oxfordpet": "A photo of a {}, a type of pet.",
    "flowers102": "A photo of a {}, a type of flower.", "food101": "A photo of {}, a type of food.",
    "fgvc_aircraft": "A photo of a {}, a type of aircraft.", "stanfordcars": "A photo of a {}.",
    "eurosat": "A centered satellite photo of {}.", "caltech256": "A photo of a {}.",
}
# the official names keep the source's spelling: two flowers carry a trailing space
# (replace/datasets/flowers102.py:43-60 'cyclamen ', 'hippeastrum '); the official prompt keeps it
TRAILING_SPACE = {"cyclamen ", "hippeastrum "}


def test_zs16_is_the_papers_order_and_every_member_is_registered():
    assert ZS16 == ["tinyimagenet", "cifar10", "cifar100", "stl10", "food101", "oxfordpet", "flowers102", "dtd",
                    "eurosat", "fgvc_aircraft", "caltech101", "caltech256", "stanfordcars", "pcam", "imagenet", "sun397"]
    assert expand_datasets(["zs16"]) == ZS16
    assert expand_datasets(["cifar10,zs16", "dtd"])[:2] == ["cifar10", "tinyimagenet"]
    assert len(expand_datasets(["cifar10,zs16", "dtd"])) == 16            # duplicates dropped, order kept
    for name in ZS16 + ["imagenet-a", "imagenet-o", "imagenet-r", "imagenet-sketch"]:
        assert name in DATASETS


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_class_counts_and_default_templates(name):
    meta = benchmark_meta(name)
    assert len(meta["classes"]) == COUNTS[name] == DATASETS.get(name).num_classes
    assert all(isinstance(c, str) and c and (c.strip() == c or c in TRAILING_SPACE) for c in meta["classes"])
    if name not in ("imagenet", "stanfordcars"):  # ImageNet: 3 duplicate names; cars without the year: 7 pairs
        assert len(set(meta["classes"])) == COUNTS[name]
    assert len(meta.get("clip_classes", meta["classes"])) == COUNTS[name]
    assert meta["source"].startswith("VivienLu/UCAT") and (("clip_classes" in meta) == ("clip_source" in meta))
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


def _refine(c):          # VivienLu/UCAT utils.py:19-22, transcribed
    return c.lower().replace("_", " ").replace("-", " ").replace("/", " ")


def test_imagenet_official_names_come_from_the_shipped_official_file():
    lines = official_file("imagenet_classes_names.txt")
    assert len(lines) == 1000 and lines[0] == "n02119789 1 kit_fox" and lines[-1] == "n03255030 1000 dumbbell"
    by_wnid = {ln.split()[0]: ln.split()[2] for ln in lines}                 # utils.py:112-123: third field
    meta = benchmark_meta("imagenet")
    assert meta["wnids"] == sorted(by_wnid)                                  # ImageFolder order, utils.py:216
    assert meta["classes"] == [_refine(by_wnid[w]) for w in meta["wnids"]]
    clip = classnames("imagenet", "clip")
    assert sum(_refine(a) != _refine(b) for a, b in zip(meta["classes"], clip)) == 293      # issue 12's count
    i = meta["wnids"].index("n01491361")
    assert (meta["classes"][i], clip[i]) == ("tiger shark", "tiger shark")
    i = meta["wnids"].index("n01494475")
    assert (meta["classes"][i], clip[i]) == ("hammerhead", "hammerhead shark")
    tiny = official_file("tinyimagenet_classes_name.txt")
    assert len(tiny) == 200 and tiny[0] == "n01443537\t1\tgoldfish"
    assert classnames("tinyimagenet")[:2] == ["goldfish", "european fire salamander"]


def test_official_against_clip_names_per_dataset():
    fg, fg_clip = classnames("fgvc_aircraft"), classnames("fgvc_aircraft", "clip")
    prefixed = [o for o, c in zip(fg, fg_clip) if o != c.lower()]                 # fgvc_aircraft.py:104-115
    assert len(prefixed) == 21 and all(o.startswith("boeing 7") for o in prefixed)
    assert fg[0] == "boeing 707-320" and fg_clip[0] == "707-320" and "boeing 717" in fg
    assert fg[fg_clip.index("A300B4")] == "a300b4"
    assert "polka dotted" in classnames("dtd") and "polka-dotted" in classnames("dtd", "clip")     # dtd.py:81-84
    cal = classnames("caltech101")
    assert cal[:6] == ["faces", "faces easy", "leopards", "motorbikes", "accordion", "airplanes"]  # caltech.py:55-56
    assert classnames("caltech101", "clip")[:2] == ["off-center face", "centered face"]
    assert classnames("stanfordcars")[0] == "am general hummer suv"                # stanford_cars.py:78-81: [:-5]
    assert classnames("stanfordcars", "clip")[0] == "am general hummer suv 2000"
    assert classnames("oxfordpet")[2] == "american pit bull terrier"
    assert classnames("oxfordpet", "clip")[2] == "American Pit Bull Terrier"
    assert classnames("eurosat")[1] == "a forest" and classnames("eurosat", "clip")[1] == "forest"
    fl = classnames("flowers102")
    assert fl[1] == "hard leaved pocket orchid" and classnames("flowers102", "clip")[1] == "hard-leaved pocket orchid"
    for same in ("cifar10", "cifar100", "stl10", "food101", "caltech256", "sun397", "pcam"):
        assert classnames(same, "clip") == classnames(same)
    with pytest.raises(ConfigError, match="classnames"):
        classnames("cifar10", "curated")


def test_sun397_jail_labels_follow_classname_txt():
    sun = classnames("sun397")
    assert sun[206] == "jail indoor" and sun[207] == "jail cell"    # ClassName.txt: /j/jail/indoor, /j/jail_cell
    assert sun[0] == "abbey" and sun[-1] == "youth hostel" and len(set(sun)) == 397


def test_official_prompts_as_the_text_head_encodes_them():
    im = benchmark_prompts("imagenet")
    assert im[0] == ["This is a photo of a tench"] and len(im) == 1000              # main.py:226, utils.py:277
    assert benchmark_prompts("flowers102")[0] == ["A photo of a pink primrose, a type of flower."]
    assert benchmark_prompts("pcam") == benchmark_meta("pcam")["prompts"]
    ens = benchmark_prompts("cifar10", templates="ensemble")
    assert len(ens) == 10 and ens[0][0] == "a photo of a airplane." and len(ens[0]) == 18
    assert benchmark_prompts("fgvc_aircraft", "clip")[0] == ["A photo of a 707-320, a type of aircraft."]


def test_imagenet_variants_are_200_class_subsets_of_imagenet():
    im = benchmark_meta("imagenet")
    for name, first in (("imagenet-a", "n01498041"), ("imagenet-r", "n01443537"), ("imagenet-o", "n01443537")):
        meta = benchmark_meta(name)
        assert len(meta["wnids"]) == 200 and meta["wnids"] == sorted(meta["wnids"]) and meta["wnids"][0] == first
        assert set(meta["wnids"]) <= set(im["wnids"]) and meta["template"] == "This is a photo of a {}"
        for kind in ("official", "clip"):
            full = dict(zip(im["wnids"], classnames("imagenet", kind)))
            assert classnames(name, kind) == [full[w] for w in meta["wnids"]]
    assert classnames("imagenet-sketch") == classnames("imagenet")
    assert re.search(r"builder\.py:179", benchmark_meta("imagenet-a")["source"])
