"""CLIP_benchmark webdataset shards (tiny ones written here in its exact layout) read as datasets."""
import io
import pickle
import tarfile

import numpy as np
import pytest
from PIL import Image

from ucat.data.wds import CLIP_BENCHMARK_NAMES, wds_dataset
from ucat.errors import CorruptFileError


def _png(rgb):
    buf = io.BytesIO()
    Image.fromarray(np.full((6, 5, 3), rgb, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _add(tar, name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _write_wds(root, examples_per_shard, classnames=("cat", "dog", "bird"), drop_cls=None):
    split = root / "test"
    split.mkdir(parents=True)
    k = 0
    for s, n in enumerate(examples_per_shard):
        with tarfile.open(split / f"{s}.tar", "w") as tar:
            for _ in range(n):
                key = f"s{k:07d}"
                _add(tar, f"{key}.png", _png((10 * k, 5, 200)))
                if key != drop_cls:
                    _add(tar, f"{key}.cls", str(k % len(classnames)).encode())
                k += 1
    (split / "nshards.txt").write_text(f"{len(examples_per_shard)}\n")
    (root / "classnames.txt").write_text("\n".join(classnames) + "\n")
    (root / "zeroshot_classification_templates.txt").write_text("a photo of a {c}.\na blurry photo of a {c}.\n")
    return root


def test_shards_read_in_order_with_labels_pixels_and_prompts(tmp_path):
    root = _write_wds(tmp_path / "wds_vtab-cifar10", [3, 2])
    ds = wds_dataset(root, "test")
    assert len(ds) == 5 and ds.targets == [0, 1, 2, 0, 1] and ds.classes == ["cat", "dog", "bird"]
    assert ds.templates == ["a photo of a {}.", "a blurry photo of a {}."]
    img, label = ds[4]
    assert label == 1 and np.array(img)[0, 0].tolist() == [40, 5, 200]      # lossless PNG, exact pixels
    clone = pickle.loads(pickle.dumps(ds))                                  # loader workers get a copy
    assert np.array(clone[2][0]).tolist() == np.array(ds[2][0]).tolist()


def test_protocol_names_are_applied_and_differences_reported(tmp_path):
    root = _write_wds(tmp_path / "w", [3])
    ds = wds_dataset(root, classes=["cat", "dog", "small bird"], templates=["This is a photo of a {}"])
    assert ds.classes == ["cat", "dog", "small bird"] and ds.templates == ["This is a photo of a {}"]
    assert ds.name_differences == [(2, "bird", "small bird")]
    with pytest.raises(CorruptFileError, match="lists 3 classes"):
        wds_dataset(root, classes=["cat", "dog"])
    assert CLIP_BENCHMARK_NAMES["cifar10"] == "vtab-cifar10"


def test_bad_shards_are_one_clear_error(tmp_path):
    root = _write_wds(tmp_path / "a", [2, 2])
    (root / "test" / "1.tar").unlink()                                       # half-finished download
    with pytest.raises(FileNotFoundError, match="nshards.txt says 2 shards but 1.tar"):
        wds_dataset(root)
    root = _write_wds(tmp_path / "b", [2], drop_cls="s0000001")
    with pytest.raises(CorruptFileError, match="s0000001.*lacks"):
        wds_dataset(root)
    root = _write_wds(tmp_path / "c", [2])
    (root / "test" / "0.tar").write_bytes(b"not a tar at all" * 40)
    with pytest.raises(CorruptFileError, match="not a readable webdataset shard"):
        wds_dataset(root)
    with pytest.raises(FileNotFoundError, match="no such split"):
        wds_dataset(root, "train")


def test_wds_prefix_reads_a_benchmark_with_the_protocol_names(tmp_path):
    from ucat.data import build_dataset, classnames

    names = classnames("cifar10")
    _write_wds(tmp_path / "wds_vtab-cifar10", [4, 3], classnames=[n.upper() for n in names])
    with pytest.warns(UserWarning, match="10 of 10 class names differ"):
        ds = build_dataset("wds:cifar10", root=str(tmp_path), image_size=32)
    assert ds.classes == names and len(ds) == 7 and ds[0][0].shape == (3, 32, 32)
    assert len(ds.templates) == 1 and "{}" in ds.templates[0]               # the paper's prompt, not the shards'
    assert len(ds.name_differences) == 10                                   # CLIP_benchmark's own list differs
    any_folder = build_dataset(f"wds:{tmp_path / 'wds_vtab-cifar10'}", image_size=32)
    assert any_folder.classes[0] == names[0].upper()
    with pytest.raises(FileNotFoundError, match="no CLIP_benchmark webdataset folder"):
        build_dataset("wds:cifar100", root=str(tmp_path))


def test_ucat_eval_on_wds_shards(tmp_path):
    from ucat.cli import main

    _write_wds(tmp_path / "wds_vtab-cifar10", [6], classnames=[f"c{i}" for i in range(10)])
    out = tmp_path / "out"
    assert main(["eval", "--model", "ucat-tiny", "--datasets", "wds:cifar10", "--data-root", str(tmp_path),
                 "--attacks", "none", "--out", str(out), "--no-progress", "--no-plots"]) == 0
    assert list(out.rglob("none-eps0.json"))
