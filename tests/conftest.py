"""Shared fixtures: everything tiny, CPU-only, offline and seeded."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and do not fight other jobs for the cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_bundle():
    """A randomly initialised ``ucat-tiny`` CLIP (32 px, width 64, 2 layers), seeded."""
    from ucat.models import load_clip

    torch.manual_seed(0)
    return load_clip("ucat-tiny", pretrained=None)


@pytest.fixture()
def tiny_classifier(tiny_bundle):
    """A 5-class zero-shot classifier over the tiny CLIP (fresh text head per test)."""
    from ucat.models import ZeroShotClassifier

    names = ["red circle", "blue square", "green triangle", "yellow star", "black cross"]
    return ZeroShotClassifier.from_bundle(tiny_bundle, names, ["a photo of a {}."])


@pytest.fixture()
def spread_classifier(tiny_bundle):
    """5 classes whose text embeddings are the tiny CLIP's embeddings of 5 random images, at the
    paper's logit scale 100: predictions on random images then spread over the classes (the random
    tiny text tower alone predicts one class for everything)."""
    import torch.nn.functional as F

    from ucat.models import ZeroShotClassifier

    g = torch.Generator().manual_seed(1)
    protos = torch.rand(5, 3, 32, 32, generator=g)
    with torch.no_grad():
        head = F.normalize(tiny_bundle.encoder(protos).float(), dim=-1)       # (5, D)
    return ZeroShotClassifier(tiny_bundle.encoder, head, 100.0, [f"class{i}" for i in range(5)])


@pytest.fixture()
def spread_batch(spread_classifier):
    """10 seeded random images labelled with ``spread_classifier``'s clean predictions."""
    x = torch.rand(10, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = spread_classifier(x).argmax(-1)
    return x, y
