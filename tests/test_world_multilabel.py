"""world-multilabel: deterministic multi-object scenes, labels = the shapes present; scored by the
multi-label metrics against the shipped model's zero-shot logits."""
import torch

from ucat.models import ZeroShotClassifier, load_clip
from ucat.multilabel import multilabel_metrics
from ucat.world import multilabel as WM
from ucat.world.scenes import SHAPES


def test_scenes_are_deterministic_and_targets_match_the_drawn_shapes():
    a, b = WM.load_multilabel("test", n=30, seed=3), WM.load_multilabel("test", n=30, seed=3)
    assert a is b                                                           # cached
    c = WM.multilabel_scenes("test", n=30, seed=4)
    assert [s.shapes for s in a.scenes] != [s.shapes for s in c]
    train = WM.multilabel_scenes("train", n=30, seed=3)
    assert [s.layout_seed for s in train] != [s.layout_seed for s in a.scenes]
    assert a.images.shape == (30, 3, 32, 32) and 0 <= a.images.min() and a.images.max() <= 1
    for s, t in zip(a.scenes, a.targets_multihot):
        assert 2 <= len(s.shapes) <= 3 and len(set(s.shapes)) == len(s.shapes)
        assert t.tolist() == [int(i in s.shapes) for i in range(len(SHAPES))]
    assert a.classes == list(SHAPES) and a[0][1].dtype == torch.int64


def test_the_shipped_model_ranks_present_shapes_above_chance(one_thread):
    ds = WM.load_multilabel("test", n=200, seed=0)
    clf = ZeroShotClassifier.from_bundle(load_clip("ucat-world"), ds.classes, ds.templates).eval()
    with torch.no_grad():
        logits = clf(ds.images)
    m = multilabel_metrics(logits, ds.targets_multihot, 3)
    chance = float(ds.targets_multihot.double().mean())                    # AP of a random ranking
    assert m["mAP"] > chance and m["n_classes_with_ap"] == 6
