"""The loader: unreadable images counted not fatal, one collate (with or without a sample index),
worker settings, deterministic subsampling, and the resize interpolation of the default transform."""
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from data_trees import folder, img, no_env_root  # noqa: F401
from ucat.data import (UnreadableImageError, build_dataset, collate_indexed, collate_skip_unreadable, make_loader,
                       subsample)
from ucat.data.build import default_transform
from ucat.errors import ConfigError
from ucat.models import image_transform


def test_corrupt_image_is_counted_not_fatal(tmp_path):
    root = folder(tmp_path / "imgs", classes=("cat", "dog"), per_class=3)
    (root / "dog" / "9_garbage.png").write_bytes(b"this is not an image")
    good = root / "cat" / "9_truncated.jpg"
    img(good, 7, size=(64, 64), fmt="JPEG")
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
    assert images.shape == (0, 3, 0, 0) and labels.shape == (0,) and n == 2


def test_one_collate_with_and_without_the_index():
    x = [torch.full((3, 2, 2), float(k)) for k in range(3)]
    plain = collate_skip_unreadable([(x[0], 4), None, (x[2], 1)])
    indexed = collate_indexed([(x[0], 4, 10), None, (x[2], 1, 12)])
    assert torch.equal(plain[0], indexed[0]) and torch.equal(plain[1], indexed[1]) and plain[2] == indexed[3] == 1
    assert indexed[0].shape == (2, 3, 2, 2) and indexed[1].tolist() == [4, 1] and indexed[2].tolist() == [10, 12]
    assert indexed[2].dtype == torch.int64
    e_plain, e_indexed = collate_skip_unreadable([None, None]), collate_indexed([None, None])
    assert e_plain[0].shape == e_indexed[0].shape == (0, 3, 0, 0)           # the same empty batch either way
    assert e_indexed[1].shape == e_indexed[2].shape == (0,) and e_plain[2] == e_indexed[3] == 2
    with pytest.raises(ValueError, match="expected 3"):
        collate_indexed([(x[0], 1)])


def test_num_workers_auto_and_bad_values(monkeypatch):
    from ucat.data import loader as loader_mod
    from ucat.data import resolve_num_workers

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
        with pytest.raises(ConfigError, match="num_workers .*'auto' or a whole number >= 0") as e:
            resolve_num_workers(bad)
        assert e.value.for_flags().startswith("--num-workers ")             # what the CLI prints
    with pytest.raises(ValueError, match="resolve 'auto'"):
        make_loader([], batch_size=2, num_workers="auto")


def test_num_workers_flag_reaches_the_configs():
    from ucat.eval.evaluator import EvalConfig
    from ucat.train.config import TrainConfig

    assert EvalConfig().num_workers == "auto" and EvalConfig(num_workers="2").num_workers == 2
    with pytest.raises(ConfigError, match="num_workers"):
        EvalConfig(num_workers="many")
    cfg = TrainConfig(num_workers="1")
    cfg.validate()
    assert cfg.num_workers == 1
    with pytest.raises(ConfigError, match="num_workers"):
        TrainConfig(num_workers=-2).validate()


def test_loader_with_worker_processes_matches_the_main_process(tmp_path):
    root = folder(tmp_path / "imgs", classes=("a", "b"), per_class=3)
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
    root = folder(tmp_path / "imgs", classes=("a", "b", "c"), per_class=5)
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

    ds = subsample(build_dataset(str(folder(tmp_path / "f")), image_size=tiny_bundle.image_size), 4, seed=0)
    clf = ZeroShotClassifier.from_bundle(tiny_bundle, ds.classes, ds.templates)
    images, labels, _ = next(iter(make_loader(ds, batch_size=4)))
    with torch.no_grad():
        logits = clf(images)
    assert logits.shape == (4, 3) and torch.isfinite(logits).all()


# ---- resize interpolation: the official preprocessing is torchvision's Resize default (bilinear),
# VivienLu/UCAT utils.py:139-147; ucat's transform must equal torchvision's with the chosen mode
def _photo():
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (61, 83, 3), dtype=np.uint8))


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("resize", ["crop", "squash"])
def test_transform_equals_torchvision_resize_with_that_mode(interpolation, resize):
    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}[interpolation]
    if resize == "crop":
        ref = T.Compose([T.Resize(37, interpolation=mode), T.CenterCrop(32), T.ToTensor()])
    else:
        ref = T.Compose([T.Resize((32, 32), interpolation=mode), T.ToTensor()])
    want = ref(_photo())
    assert torch.equal(image_transform(32, resize, interpolation)(_photo()), want)
    assert torch.equal(default_transform(None, 32, resize, interpolation)(_photo()), want)


def test_default_interpolation_is_bilinear_as_the_official_code(tmp_path):
    official = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])          # utils.py:143-147, transcribed
    assert torch.equal(image_transform(224)(_photo()), official(_photo()))
    _photo().save(tmp_path / "p.png")
    (tmp_path / "c" / "x").mkdir(parents=True)
    _photo().save(tmp_path / "c" / "x" / "p.png")
    bil = build_dataset(str(tmp_path / "c"), image_size=224)[0][0]
    bic = build_dataset(str(tmp_path / "c"), image_size=224, interpolation="bicubic")[0][0]
    assert torch.equal(bil, official(_photo())) and not torch.equal(bil, bic)
    with pytest.raises(ConfigError, match="interpolation"):
        build_dataset(str(tmp_path / "c"), interpolation="nearest")
    with pytest.raises(ConfigError, match="interpolation"):
        image_transform(32, "crop", "lanczos")
