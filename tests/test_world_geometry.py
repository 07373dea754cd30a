"""The world CLIP's logit geometry (ucat.world.geometry) and the pretraining's logit-scale option.

References are computed through open_clip's own ``encode_image`` / ``encode_text`` and plain
torch, not through ucat's classifier; no test depends on the shipped model's exact numbers.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ucat.methods.ucat import ucat_lambda
from ucat.models import load_clip
from ucat.models.clip import OPENAI_MEAN, OPENAI_STD
from ucat.world.geometry import cosine_stats, robust_vs_eps, ucat_loss_ratio
from ucat.world.pretrain import PretrainConfig, pretrain, zero_shot_accuracy
from ucat.world.tasks import load_task


@pytest.fixture(scope="module")
def bundle():
    torch.manual_seed(0)
    return load_clip("ucat-world")


def _reference_cosines(bundle, task, n):
    """cos(f(x), t_c) through open_clip's encoders: template-mean text embeddings, renormalized."""
    ds = load_task(task, "test", n=n, seed=0)
    m = bundle.model
    mean = torch.tensor(OPENAI_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        img = F.normalize(m.encode_image((ds.images - mean) / std).double(), dim=-1)        # (N, D)
        heads = []
        for c in ds.classes:
            toks = bundle.tokenizer([t.format(c) for t in ds.templates])
            e = F.normalize(m.encode_text(toks).double(), dim=-1).mean(0)
            heads.append(e / e.norm())
        text = torch.stack(heads)                                                              # (C, D)
    return img @ text.t(), ds.labels.long()


def test_cosine_stats_match_open_clip_reference(bundle):
    stats = cosine_stats(bundle, ["world-count", "world-size"], n=40)
    pooled_std, pooled_margin = [], []
    for task in ("world-count", "world-size"):
        cos, y = _reference_cosines(bundle, task, 40)
        true = cos[torch.arange(len(y)), y]
        wrong = torch.stack([torch.cat([r[:k], r[k + 1:]]).max() for r, k in zip(cos, y)])
        got = stats[task]
        assert got["mean"] == pytest.approx(float(cos.mean()), abs=2e-4)
        assert got["std_across_classes"] == pytest.approx(float(cos.std(1, unbiased=False).mean()), abs=2e-4)
        assert got["true"] == pytest.approx(float(true.mean()), abs=2e-4)
        assert got["margin"] == pytest.approx(float((true - wrong).mean()), abs=2e-4)
        assert -1 <= got["min"] <= got["mean"] <= got["max"] <= 1
        pooled_std.append(cos.std(1, unbiased=False).numpy())
        pooled_margin.append((true - wrong).numpy())
    assert stats["all"]["std_across_classes"] == pytest.approx(float(np.concatenate(pooled_std).mean()), abs=2e-4)
    assert stats["all"]["margin"] == pytest.approx(float(np.concatenate(pooled_margin).mean()), abs=2e-4)


def test_ucat_loss_ratio_at_start(bundle):
    r = ucat_loss_ratio(bundle, eps=4.0, n=32, batch_size=16)
    assert r["lambda"] == pytest.approx(ucat_lambda(1e5, 0.07))
    assert r["ce"] > 0 and r["kl"] > 0
    assert r["kl_weighted"] == pytest.approx(r["lambda"] * r["kl"], rel=1e-6)
    assert r["ratio"] == pytest.approx(r["kl_weighted"] / r["ce"], rel=1e-9)
    # no perturbation and trainable == frozen: the two Dirichlets coincide, so lambda*KL vanishes
    # (KL itself is float32 rounding of the cosines times alpha_0 ~ 1e9, lambda * KL < 1e-6) and
    # CE is the clean CE
    r0 = ucat_loss_ratio(bundle, eps=0.0, n=32, batch_size=16)
    assert r0["kl_weighted"] < 1e-6 * r0["ce"] and r["kl_weighted"] > 1e3 * r0["kl_weighted"]
    assert r0["cos_shift"] < 1e-5 < r["cos_shift"] <= 2.0
    ds = load_task("world-train", "train", n=32, seed=0)
    from ucat.models.zero_shot import ZeroShotClassifier

    with torch.no_grad():
        ce = F.cross_entropy(ZeroShotClassifier.from_dataset(bundle, ds)(ds.images), ds.labels.long())
    assert r0["ce"] == pytest.approx(float(ce), rel=1e-5)
    assert r["ce"] > r0["ce"]                               # the attack raises the CE


def test_robust_vs_eps(bundle):
    res = robust_vs_eps(bundle, [0, 4], tasks=["world-size", "world-count"], n=40, steps=3)
    clean = zero_shot_accuracy(bundle, ["world-size", "world-count"], n=40, seed=0)
    for t in ("world-size", "world-count"):
        assert res["0"][t] == pytest.approx(clean[t])
        assert res["4"][t] <= res["0"][t]
    assert res["0"]["mean"] == pytest.approx((res["0"]["world-size"] + res["0"]["world-count"]) / 2, abs=0.01)


def _tiny(tmp_path, **kw):
    return PretrainConfig(out=str(tmp_path), steps=6, batch_size=16, pool=64, group=1, warmup=2, eval_n=8,
                          log_every=1, tasks=["world-size"], **kw)


def test_pretrain_holds_the_logit_scale_fixed(tmp_path):
    rec = pretrain(_tiny(tmp_path / "fixed"), log=lambda s: None)
    assert all(h["scale"] == 100.0 for h in rec["history"])
    b = load_clip("ucat-world", pretrained=str(tmp_path / "fixed" / "ucat-world.safetensors"))
    assert b.logit_scale == pytest.approx(100.0, rel=1e-3)            # stored fp16: log(100) to 3 digits
    assert rec["geometry"]["logit_scale"] == pytest.approx(b.logit_scale, rel=1e-3)
    assert set(rec["geometry"]["ucat_start"]) >= {"ce", "kl_weighted", "ratio"}
    learned = pretrain(_tiny(tmp_path / "learned", logit_scale=1 / 0.07, learn_scale=True, lr=1e-2), log=lambda s: None)
    scales = [h["scale"] for h in learned["history"]]
    assert scales[0] == pytest.approx(1 / 0.07, rel=0.05) and scales[-1] != scales[0]


@pytest.mark.parametrize("bad", [0.5, 101.0, math.nan])
def test_pretrain_refuses_bad_logit_scale(tmp_path, bad):
    with pytest.raises(ValueError, match="logit_scale"):
        pretrain(_tiny(tmp_path, logit_scale=bad), log=lambda s: None)


def test_world_geometry_cli(tmp_path, capsys):
    from ucat.cli import main

    out = tmp_path / "g.json"
    assert main(["world", "geometry", "--n", "8", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "lambda*KL/CE" in text and "logit scale" in text
    assert out.is_file()
    assert main(["world", "geometry", "--n", "1"]) == 2
