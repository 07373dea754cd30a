"""The preprocessed uint8 image cache: every batch bit-identical to the uncached loader (JPEG, PNG,
grey, RGBA, an unreadable file; crop and squash; bilinear and bicubic; with loader workers), the
exact uint8 -> float table, stale / half-written caches detected and rebuilt or refused, the
``ucat data cache`` command, and ``ucat eval`` logits identical with and without the cache."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as TF

from data_trees import no_env_root  # noqa: F401
from ucat.cli import main as cli_main
from ucat.data import build_dataset, make_loader
from ucat.data.cache import (CachedDataset, StaleCacheError, build_cache, cache_files, cached_dataset, check_cache,
                             open_cache)
from ucat.data.loader import DeviceLoader, collate_uint8, pixel_table, to_float_pixels
from ucat.errors import ConfigError
from ucat.train.config import TrainConfig
from ucat.train.data import build_training_data


def _noise(path, seed, size, mode="RGB", fmt=None):
    """An image of random pixels (so every resize filter really interpolates) in ``mode``."""
    rng = np.random.default_rng(seed)
    w, h = size
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    image.save(path, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))


@pytest.fixture
def photos(tmp_path):
    """3 classes of odd-sized JPEG / PNG / grey / RGBA images, and one unreadable file."""
    root = tmp_path / "photos"
    kinds = [("RGB", "JPEG", ".jpg"), ("RGB", "PNG", ".png"), ("L", "PNG", ".png"), ("RGBA", "PNG", ".png")]
    for k, c in enumerate(("cat", "dog", "zebra")):
        for j, (mode, fmt, ext) in enumerate(kinds[: 3 + (k == 1)]):
            _noise(root / c / f"{j}{ext}", 10 * k + j, (37 + 7 * j + k, 29 + 5 * k), mode, fmt)
    (root / "zebra" / "9.jpg").write_bytes(b"not a jpeg")            # skipped and counted, both ways
    return root


def _batches(ds, **kw):
    return list(make_loader(ds, batch_size=3, **kw))


def _assert_same_batches(a, b):
    assert len(a) == len(b)
    for (xa, ya, sa), (xb, yb, sb) in zip(a, b):
        assert xa.dtype == xb.dtype == torch.float32
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and sa == sb


@pytest.mark.parametrize("resize,interpolation,workers", [("crop", "bilinear", 0), ("squash", "bicubic", 1)])
def test_every_batch_is_bit_identical_with_and_without_the_cache(photos, tmp_path, resize, interpolation, workers):
    def build():
        return build_dataset(str(photos), image_size=24, resize=resize, interpolation=interpolation)

    with pytest.warns(UserWarning):                                    # the unreadable file, both ways
        plain = _batches(build(), num_workers=workers)
        cached = cached_dataset(build(), tmp_path / "cache", num_workers=workers)
    assert isinstance(cached, CachedDataset) and len(cached) == 11
    with pytest.warns(UserWarning, match="1 image"):
        reopened = cached_dataset(build(), tmp_path / "cache")          # fresh: opened, not rebuilt
    _assert_same_batches(plain, _batches(cached, num_workers=workers))
    _assert_same_batches(plain, _batches(reopened))
    assert sum(b[2] for b in plain) == 1 and sum(b[0].shape[0] for b in plain) == 10
    arr = np.load(cache_files(build(), tmp_path / "cache")[0], mmap_mode="r", allow_pickle=False)
    assert arr.dtype == np.uint8 and arr.shape == (11, 3, 24, 24)


def test_device_path_gathers_exactly_what_totensor_makes(photos, tmp_path):
    every = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    reference = TF.to_tensor(every.convert("RGB"))                      # torchvision's own float conversion
    x = TF.pil_to_tensor(every.convert("RGB")).unsqueeze(0)             # (1, 3, 16, 16) uint8
    assert torch.equal(to_float_pixels(x, gather=True)[0], reference)
    assert torch.equal(to_float_pixels(x, gather=False)[0], reference)
    assert torch.equal(pixel_table("cpu"), reference[0].flatten())
    # why a table and not x * (1/255): the reciprocal product differs from ToTensor's division
    assert not torch.equal(x.float() * torch.tensor(1 / 255, dtype=torch.float32), reference.unsqueeze(0))
    with pytest.warns(UserWarning):
        ds = build_dataset(str(photos), image_size=24)
        plain = _batches(ds)
        cached = cached_dataset(build_dataset(str(photos), image_size=24), tmp_path / "c")
    dev = DeviceLoader(cached, batch_size=3, collate_fn=collate_uint8, target_device="cpu")
    assert next(iter(torch.utils.data.DataLoader(cached, batch_size=3, collate_fn=collate_uint8)))[0].dtype == torch.uint8
    _assert_same_batches(plain, list(dev))


def _fresh(photos, cache):
    ds = build_dataset(str(photos), image_size=24)
    with pytest.warns(UserWarning, match="unreadable"):
        build_cache(ds, cache)
    return ds


def test_a_changed_source_is_detected_refused_and_rebuilt(photos, tmp_path, capsys):
    cache = tmp_path / "cache"
    ds = _fresh(photos, cache)
    assert check_cache(ds, cache)[0] == "fresh"
    os.utime(photos / "cat" / "1.png", ns=(1, 10 ** 18))                # same bytes, a new modification time
    n_bytes = sum(f.stat().st_size for f in photos.rglob("*.*"))
    assert check_cache(ds, cache)[:2] == ("stale", f"the source files were rewritten since it was built (the same "
                                                   f"11 files, {n_bytes} bytes; other modification times)")
    _noise(photos / "cat" / "0.jpg", 999, (37, 29), "RGB", "JPEG")      # same name, new pixels
    os.utime(photos / "cat" / "0.jpg", ns=(1, 10 ** 18))
    status, why, _ = check_cache(ds, cache)
    assert status == "stale" and "source files" in why
    with pytest.raises(StaleCacheError, match="ucat data cache"):
        open_cache(ds, cache)
    with pytest.warns(UserWarning):
        rebuilt = cached_dataset(ds, cache)
        plain = _batches(build_dataset(str(photos), image_size=24))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "source files" in err[0] and "building" in err[0]
    _assert_same_batches(plain, _batches(rebuilt))
    _noise(photos / "dog" / "7.png", 5, (30, 30))                       # one more file
    grown = build_dataset(str(photos), image_size=24)
    assert "11 files" in check_cache(grown, cache)[1] and "12 files" in check_cache(grown, cache)[1]


def test_half_written_or_tampered_caches_are_never_used(photos, tmp_path):
    cache = tmp_path / "cache"
    ds = _fresh(photos, cache)
    npy, side = cache_files(ds, cache)
    (cache / f".{npy.name}.abc.tmp").write_bytes(b"\x93NUMPY half")     # a crashed build's temporary file
    assert check_cache(ds, cache)[0] == "fresh"
    meta = json.loads(side.read_text())
    with open(npy, "r+b") as f:                                         # truncated array
        f.truncate(npy.stat().st_size - 100)
    assert check_cache(ds, cache)[:2] == ("stale", f"its array {npy.name} was truncated or replaced after the "
                                                   f"sidecar was written")
    _fresh(photos, cache)
    side.write_text(side.read_text()[:50])                              # half a sidecar
    assert "half-written" in check_cache(ds, cache)[1]
    side.unlink()
    assert check_cache(ds, cache)[0] == "stale"
    _fresh(photos, cache)
    for key, value, words in (("decoder", {"Pillow": "1.0", "torchvision": "0.1"}, "decoded with"),
                              ("version", 0, "another cache format"),
                              ("labels_sha256", "0" * 32, "labels changed")):
        meta = json.loads(side.read_text())
        side.write_text(json.dumps(dict(meta, **{key: value})))
        assert words in check_cache(ds, cache)[1]
        _fresh(photos, cache)
    other = build_dataset(str(photos), image_size=16)
    assert check_cache(other, cache)[0] == "missing" and cache_files(other, cache)[0] != npy


def test_what_cannot_be_cached_is_said_in_one_line(photos, tmp_path):
    custom = build_dataset(str(photos), transform=T.Compose([T.RandomResizedCrop(24), T.ToTensor()]))
    with pytest.raises(ConfigError, match="RandomResizedCrop"):
        cached_dataset(custom, tmp_path / "c")
    world = build_dataset("world-shape", n=6)
    with pytest.warns(UserWarning, match="read without the cache"):
        assert cached_dataset(world, tmp_path / "c") is world
    with pytest.raises(ConfigError, match="generated sets need no cache"):
        build_cache(world, tmp_path / "c")


def test_sidecar_records_labels_classes_preprocessing_and_source(photos, tmp_path):
    ds = _fresh(photos, tmp_path / "c")
    meta = json.loads(cache_files(ds, tmp_path / "c")[1].read_text())
    assert meta["labels"] == ds.targets and meta["classes"] == ["cat", "dog", "zebra"]
    assert meta["shape"] == [11, 3, 24, 24] and meta["unreadable"] == [10]
    p = meta["preprocessing"]
    assert (p["resize"], p["crop"], p["interpolation"]) == (27, [24, 24], "bilinear")   # round(24 * 256 / 224)
    assert meta["source"]["n_files"] == 11 and meta["source"]["bytes"] == sum(
        os.path.getsize(f) for f, _ in ds.samples)


def test_training_data_and_cli(photos, tmp_path, capsys):
    cache = tmp_path / "cache"
    args = ["data", "cache", str(photos), "--image-size", "24", "--cache-dir", str(cache)]
    with pytest.warns(UserWarning):
        assert cli_main(args) == 0
        assert "built" in capsys.readouterr().out
        assert cli_main(args) == 0 and "up to date" in capsys.readouterr().out
        os.utime(photos / "dog" / "1.png", ns=(1, 10 ** 18))
        assert cli_main(args + ["--check"]) == 1 and "stale" in capsys.readouterr().out
        assert cli_main(args) == 0 and "was stale" in capsys.readouterr().out
        full, train_set, _ = build_training_data(TrainConfig(data=str(photos), data_cache=str(cache)), 24)
    assert isinstance(full, CachedDataset) and capsys.readouterr().err == ""     # the fresh cache, not rebuilt
    assert cli_main(["data", "cache", "world-shape", "--cache-dir", str(cache)]) == 0
    assert "nothing to cache" in capsys.readouterr().out


def test_eval_logits_identical_with_and_without_the_cache(photos, tmp_path):
    def run(out, *extra):
        argv = ["eval", "--model", "ucat-world", "--datasets", str(photos), "--device", "cpu", "--no-progress",
                "--no-plots", "--n-samples", "4", "--batch-size", "4", "--attacks", "pgd", "--steps", "1",
                "--save-logits", "--out", str(out), *extra]
        with pytest.warns(UserWarning):
            assert cli_main(argv) == 0
        return {k: v for k, v in np.load(next(out.rglob("*_logits.npz")), allow_pickle=False).items()}

    plain = run(tmp_path / "plain")
    cached = run(tmp_path / "cached", "--data-cache", str(tmp_path / "cache"))
    assert list((tmp_path / "cache").glob("*.npy"))
    assert set(plain) == set(cached) == {"index", "labels", "clean", "adv"}
    for k in plain:
        assert np.array_equal(plain[k], cached[k]), k
    assert not np.array_equal(plain["clean"], plain["adv"])            # the attack did something
