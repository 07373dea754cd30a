"""PCAM (binary, HDF5) through torchvision with generated .h5 files: labels, fixed prompts, eval-ready."""
import numpy as np
import pytest
import torch

h5py = pytest.importorskip("h5py")

from ucat.data import build_dataset, make_loader


def _write_pcam(root, n=6, split="test"):
    base = root / "pcam"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 96, 96, 3), dtype=np.uint8)
    y = (np.arange(n) % 2).astype(np.uint8).reshape(n, 1, 1, 1)
    with h5py.File(base / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as f:
        f.create_dataset("x", data=x)
    with h5py.File(base / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as f:
        f.create_dataset("y", data=y)
    return y.reshape(-1)


def test_pcam_from_generated_h5(tmp_path):
    labels = _write_pcam(tmp_path)
    ds = build_dataset("pcam", root=tmp_path, image_size=32)
    assert len(ds) == 6 and len(ds.classes) == 2
    # the paper's two fixed sentences (original typo kept) instead of a template
    assert ds.prompts[0][0].startswith("Tthis is a photo of healthy lymph node tissue")
    assert ds.prompts[1][0].startswith("This is a photo of lymph node tumor tissue")
    images, ys, skipped = next(iter(make_loader(ds, batch_size=6)))
    assert images.shape == (6, 3, 32, 32) and skipped == 0
    assert torch.equal(ys, torch.as_tensor(labels, dtype=torch.long))
    assert 0.0 <= images.min() and images.max() <= 1.0
