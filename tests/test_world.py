"""The procedural world: determinism, labels that match captions and pixels, the registry entries,
pretraining that learns, and the shipped ``ucat-world`` weights."""
import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from ucat.world import scenes as S
from ucat.world import tasks as T
from ucat.data.registry import COLLECTIONS, DATASETS


def _u8(ds):
    return (ds.images.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(int)      # (N, H, W, 3)


def _object_mask(img):
    """Saturated pixels = the objects (backgrounds are grey, objects are saturated colours)."""
    return (img.max(-1) - img.min(-1)) > 40                                       # (H, W) bool


def test_world_is_deterministic_for_a_seed():
    a, la = T.task_scenes("world-shape", "test", n=40, seed=5)
    b, lb = T.task_scenes("world-shape", "test", n=40, seed=5)
    c, _ = T.task_scenes("world-shape", "test", n=40, seed=6)
    assert a == b and np.array_equal(la, lb)
    assert a != c
    xa, xb = S.render_batch(a), S.render_batch(b)
    assert xa.shape == (40, 3, 32, 32) and xa.dtype == torch.float32
    assert torch.equal(xa, xb)
    assert 0.0 <= float(xa.min()) and float(xa.max()) <= 1.0
    rng1, rng2 = np.random.default_rng(1), np.random.default_rng(1)
    assert [S.caption(s, rng1) for s in a] == [S.caption(s, rng2) for s in a]
    # splits differ, and the in-memory cache returns the same tensors
    tr, _ = T.task_scenes("world-shape", "train", n=40, seed=5)
    assert tr != a
    assert T.load_task("world-shape", "test", n=40, seed=5).images is T.load_task("world-shape", "test", n=40, seed=5).images


@pytest.mark.parametrize("task", list(T.TASKS))
def test_task_labels_match_captions(task):
    ds = T.load_task(task, "test", n=60, seed=1)
    assert len(ds) == 60 and len(ds.classes) == T.TASKS[task].__getattribute__("classes").__len__()
    counts = np.bincount(ds.labels.numpy(), minlength=len(ds.classes))
    assert counts.max() - counts.min() <= 1                                # balanced
    for i in range(len(ds)):
        cap = ds.captions(i)
        words = ds.classes[int(ds.labels[i])].split()
        # every word of the class name is in the full caption (plural nouns: "circles")
        for wd in words:
            assert wd in cap.replace(".", " ").split() or S.SHAPE_PLURALS.get(wd, "#") in cap.split(), (task, wd, cap)
        x, y = ds[i]
        assert x.shape == (3, 32, 32) and isinstance(y, int)


def test_labels_match_pixels():
    """Independent of the captions: count by connected components, colour by the mean object
    pixel, position by the object's centroid, size by the area per object."""
    from scipy import ndimage

    ds = T.load_task("world-count", "test", n=120, seed=2)
    for img, y in zip(_u8(ds), ds.labels.tolist()):
        _, k = ndimage.label(_object_mask(img))
        assert k == y + 1
    ds = T.load_task("world-colour", "test", n=80, seed=2)
    palette = np.array(list(S.COLOURS.values()))                              # (8, 3)
    for img, y in zip(_u8(ds), ds.labels.tolist()):
        px = img[(img.max(-1) - img.min(-1)) > 80].mean(0)                     # (3,)
        assert int(np.abs(palette - px).sum(1).argmin()) == y
    ds = T.load_task("world-position", "test", n=80, seed=2)
    for img, y in zip(_u8(ds), ds.labels.tolist()):
        ys, xs = np.nonzero(_object_mask(img))
        assert 2 * int(ys.mean() >= 16) + int(xs.mean() >= 16) == y
    ds = T.load_task("world-size", "test", n=80, seed=2)
    for img, y, sc in zip(_u8(ds), ds.labels.tolist(), ds.scenes):
        area = _object_mask(img).sum() / sc.count
        assert (area > 57) == (y == 1)


def test_heldout_combinations_never_pretrained():
    held = set(S.HELDOUT)
    assert len(held) == 12 and not held & set(S.SEEN) and len(S.SEEN) == 36
    # neither attribute alone identifies a held-out class: each shape and colour occurs twice
    assert all(sum(s == x for s, _ in S.HELDOUT) == 2 for x in S.SHAPES)
    assert all(sum(c == x for _, c in S.HELDOUT) in (0, 2) for x in S.COLOUR_NAMES)
    _, scenes = S.pretraining_pairs(500, seed=0)
    assert not {(S.SHAPES[s.shape], S.COLOUR_NAMES[s.colour]) for s in scenes} & held
    ds = T.load_task("world-heldout", "test", n=24)
    assert {(S.SHAPES[s.shape], S.COLOUR_NAMES[s.colour]) for s in ds.scenes} <= held
    assert not set(T.load_task("world-train", "test", n=10).classes) & set(ds.classes)


def test_registry_entries_and_collection():
    assert COLLECTIONS["world-suite"] == list(T.SUITE) and len(T.SUITE) >= 6
    assert "world-train" not in T.SUITE and not set(T.UNLEARNED) & set(T.SUITE)
    for name in T.TASKS:
        info = DATASETS.get(name)
        assert info.needs_root is False and info.num_classes == len(T.TASKS[name].classes)
        ds = info.builder(None, "val", None, n=8)
        assert len(ds) == 8 and ds.templates and all("{}" in t for t in ds.templates)
    assert len(DATASETS.get("world-train").builder(None, "train", None, n=50).classes) == 36
    # a transform (e.g. another resolution) is applied to a PIL image of the stored pixels
    from ucat.models import image_transform

    ds = DATASETS.get("world-shape").builder("/no/such/root", "test", image_transform(48, "squash"), n=4)
    assert ds[0][0].shape == (3, 48, 48)
    with pytest.raises(ValueError, match="split"):
        T.task_scenes("world-shape", "nope", n=4)


def test_pretraining_smoke_lowers_the_loss(tmp_path):
    from ucat.world.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(out=str(tmp_path), steps=80, batch_size=32, pool=640, group=1, warmup=5, lr=3e-3, eval_n=24,
                         log_every=1, tasks=["world-colour"], seed=0)
    rec = pretrain(cfg, log=lambda s: None)
    losses = [h["loss"] for h in rec["history"]]
    assert len(losses) == 80
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.3
    w = tmp_path / "ucat-world.safetensors"
    assert w.is_file() and (tmp_path / "ucat-world.json").is_file()
    from ucat.world.pretrain import sha256_file

    assert (tmp_path / "ucat-world.sha256").read_text().split()[0] == sha256_file(w)
    # the written file is loadable by open_clip by architecture name (as `--pretrained FILE`)
    from ucat.models import load_clip

    b = load_clip("ucat-world", pretrained=str(w))
    assert b.image_size == 32


def _assets():
    return Path(str(resources.files("ucat") / "assets"))


def test_shipped_weights_checksum_and_recorded_accuracy():
    from ucat.models import load_clip
    from ucat.models.clip import BUILTIN_WEIGHTS
    from ucat.world.pretrain import sha256_file, zero_shot_accuracy

    assert BUILTIN_WEIGHTS.get("ucat-world") == "assets/ucat-world.safetensors"
    weights = _assets() / "ucat-world.safetensors"
    record = json.loads((_assets() / "ucat-world.json").read_text())
    assert weights.stat().st_size <= 20 * 1024 * 1024
    digest = sha256_file(weights)
    assert (_assets() / "ucat-world.sha256").read_text().split()[0] == digest == record["sha256"]
    b = load_clip("ucat-world")                                           # no pretrained -> shipped weights
    assert b.pretrained and Path(b.pretrained).name == "ucat-world.safetensors"
    ev = record["eval"]
    acc = zero_shot_accuracy(b, list(record["zero_shot_accuracy"]), ev["n_per_task"], ev["seed"], ev["split"])
    for task, want in record["zero_shot_accuracy"].items():
        assert abs(acc[task] - want) <= 1.0, (task, acc[task], want)
    # CLIP's logit geometry (docs/world.md): s = 100 as OpenAI CLIP's, and the recorded cosine
    # statistics are those of the shipped file
    from ucat.world.geometry import cosine_stats

    assert b.logit_scale == pytest.approx(100.0, rel=1e-3)
    cos = cosine_stats(b, record["suite"], ev["n_per_task"], ev["seed"], ev["split"])["all"]
    for key, want in record["geometry"]["cosines"].items():
        assert cos[key] == pytest.approx(want, abs=1e-3), key
    # far above chance on every suite task and on the fine-tuning task
    assert set(T.SUITE) | {"world-train"} <= set(acc)
    for task in list(T.SUITE) + ["world-train"]:
        chance = 100.0 / len(T.TASKS[task].classes)
        assert acc[task] >= chance + 0.4 * (100 - chance), (task, acc[task], chance)


def test_world_cli(tmp_path, capsys):
    from ucat.cli import main

    assert main(["world", "render", "--out", str(tmp_path), "--n", "9"]) == 0
    assert (tmp_path / "pretraining.png").is_file()
    assert len((tmp_path / "pretraining.txt").read_text().splitlines()) == 9
    assert main(["world", "render", "--out", str(tmp_path), "--task", "world-count", "--n", "4"]) == 0
    assert (tmp_path / "world-count.png").is_file()
    assert main(["world", "zeroshot", "--n", "40", "--tasks", "world-colour"]) == 0
    out = capsys.readouterr().out
    assert "world-colour" in out
    assert main(["world", "zeroshot", "--tasks", "world-nope"]) == 2
