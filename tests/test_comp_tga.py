"""Comp-TGA (Yu et al., TPAMI 2026): the loss equals a float64 hand computation of its formula and
the official construction (Comp-TGA.py, attention_map.py of zhyblue424/TGA-ZSR) transcribed on a
second small open_clip ViT; the frozen reference stays frozen; gradients reach the image encoder
only; the shipped recipe parses."""
import copy
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
from torchvision import transforms

from ucat.attacks import PGD
from ucat.methods import create_method, method_options
from ucat.methods.comp_tga import NEGATIVE_TEMPLATE, complementary_attention
from ucat.methods.tga_zsr import attention_map
from ucat.models import ClipBundle, ImageEncoder, ZeroShotClassifier

pytestmark = pytest.mark.usefixtures("one_thread")

NAMES = ["red circle", "blue square", "green triangle", "yellow star", "black cross"]
ROOT = Path(__file__).resolve().parents[1]


class FixedAttack:
    """Returns fixed 'adversarial' images, so that the formula can be checked exactly."""

    def __init__(self, x_adv):
        self.x_adv = x_adv

    def __call__(self, classifier, images, labels):
        return self.x_adv


def _batch(size, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    x_adv = (x + (torch.rand(n, 3, size, size, generator=g) - 0.5) * 0.05).clamp(0, 1)
    return x, x_adv, torch.tensor([0, 1, 2, 3, 4, 0][:n])


def _nudge(visual, seed=3):
    """Move the trainable encoder away from the reference (mid-training: theta != theta_0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in visual.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


@pytest.fixture()
def tiny(tiny_bundle):
    """(bundle, classifier, frozen reference) over the session's tiny CLIP, restored afterwards."""
    saved = copy.deepcopy(tiny_bundle.model.state_dict())
    clf = ZeroShotClassifier.from_bundle(tiny_bundle, NAMES, ["This is a photo of a {}"])
    yield tiny_bundle, clf, copy.deepcopy(clf.encoder)
    tiny_bundle.model.load_state_dict(saved)
    for p in tiny_bundle.model.parameters():
        p.grad = None
        p.requires_grad_(True)


# -- float64 by hand ----------------------------------------------------------------------------
def _bilinear_matrix(n, size):
    """(size, n) weights of bilinear upsampling with half-pixel centres (align_corners=False)."""
    w = torch.zeros(size, n, dtype=torch.float64)
    for i in range(size):
        src = max((i + 0.5) * n / size - 0.5, 0.0)
        i0 = min(int(src), n - 1)
        i1, lam = min(i0 + 1, n - 1), src - min(int(src), n - 1)
        w[i, i0] += 1 - lam
        w[i, i1] += lam
    return w


def _map_by_hand(tokens, text, size):
    """tokens (B, 1+N, D), text (B, D) float64 -> (B, size^2): token-axis L2 norm, dot, min-max, upsample."""
    normed = tokens / tokens.pow(2).sum(dim=1, keepdim=True).sqrt()
    raw = (normed[:, 1:] * text[:, None, :]).sum(-1)                        # (B, N)
    lo, hi = raw.min(1, keepdim=True)[0], raw.max(1, keepdim=True)[0]
    mm = (raw - lo) / (hi - lo)
    side = int(round(mm.shape[1] ** 0.5))
    w = _bilinear_matrix(side, size)
    return torch.einsum("ih,bhw,jw->bij", w, mm.reshape(-1, side, side), w).reshape(len(mm), -1)


def _text_by_hand(model, tokenizer, template):
    return F.normalize(model.encode_text(tokenizer([template.format(c) for c in NAMES])), dim=-1)


def test_loss_equals_the_formula_in_float64(tiny):
    bundle, clf, ref = tiny
    x, x_adv, y = _batch(32)
    _nudge(clf.encoder.visual)
    m = create_method("comp-tga", clf, ref, FixedAttack(x_adv)).bind_text(bundle)
    out = m(x, y)
    with torch.no_grad():
        model64 = copy.deepcopy(bundle.model).double()
        ref64 = copy.deepcopy(ref.visual).double()
        t_c = _text_by_hand(model64, bundle.tokenizer, "This is a photo of a {}")          # (C, D)
        n_c = _text_by_hand(model64, bundle.tokenizer, "This is not a photo of a {}")
        assert torch.allclose(t_c.float(), clf.text_head, atol=1e-5)

        def tokens(visual, images):              # open_clip ViT in float64 -> (B, D), (B, 1+N, D)
            z = (images.double() - clf.encoder.mean.double()) / clf.encoder.std.double()
            visual.output_tokens = True
            pooled, toks = visual(z)
            visual.output_tokens = False
            return pooled, torch.cat([pooled[:, None], toks @ visual.proj], 1)

        def comp(toks):
            return (_map_by_hand(toks, t_c[y], 32) * (1 - _map_by_hand(toks, n_c[y], 32)))

        pooled_adv, tok_adv = tokens(model64.visual, x_adv)
        logits = bundle.logit_scale * F.normalize(pooled_adv, dim=-1) @ t_c.t()
        ce = -(logits.log_softmax(-1)[torch.arange(len(y)), y]).mean()
        c_ref = comp(tokens(ref64, x)[1])
        am1 = (comp(tok_adv) - c_ref).norm(dim=1).mean()
        am2 = (comp(tokens(model64.visual, x)[1]) - c_ref).norm(dim=1).mean()
        expected = ce + 0.10 * am1 + 0.07 * am2
        # the complementary fusion matters: the TGA-ZSR-style map alone gives another number
        plain = lambda toks: _map_by_hand(toks, t_c[y], 32)                            # noqa: E731
        without = ce + 0.10 * (plain(tok_adv) - plain(tokens(ref64, x)[1])).norm(dim=1).mean()
    assert float(am1) > 1e-3 and float(am2) > 1e-3 and abs(float(without - expected)) > 1e-3
    assert float(out["ce"]) == pytest.approx(float(ce), rel=1e-5)
    assert float(out["attn_adv"]) == pytest.approx(float(am1), rel=1e-5)
    assert float(out["attn_clean"]) == pytest.approx(float(am2), rel=1e-5)
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(out["logits_adv"].double(), logits, rtol=1e-4, atol=1e-4)


# -- the official construction, transcribed ----------------------------------------------------
def _small_vit_bundle():
    """A second small open_clip ViT (40 px, a 5x5 patch grid), seeded; not the tiny one."""
    torch.manual_seed(1)
    model = open_clip.model.CLIP(
        embed_dim=24, vision_cfg={"image_size": 40, "patch_size": 8, "width": 48, "layers": 2, "head_width": 24},
        text_cfg={"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}).eval()
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    enc = ImageEncoder(model.visual, mean, std, 40)
    tok = lambda texts: open_clip.tokenize(texts, context_length=16)                    # noqa: E731
    return ClipBundle(model=model, encoder=enc, tokenizer=tok, arch="test-vit", pretrained=None,
                      image_size=40, mean=mean, std=std)


def _official_encode_image(visual, images, mean, std):
    """clip_img_preprocessing (models/model.py:15-19, bicubic upsampling to the input size) and the
    patched VisionTransformer.forward (replace/model.py:226-250): ln_post and proj on ALL tokens."""
    X = F.interpolate(images, size=(40, 40), mode="bicubic")
    X = (X - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    x = visual.conv1(X)
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)
    x = torch.cat([visual.class_embedding + torch.zeros(x.shape[0], 1, x.shape[-1]), x], dim=1)
    x = x + visual.positional_embedding
    x = visual.ln_pre(x)
    x = visual.transformer(x)            # open_clip's Transformer takes N, L, D (its own permute)
    x = visual.ln_post(x)
    return x @ visual.proj


def _official_attention_map_comp(text_features, no_text_features, visual, images, mean, std):
    """attention_map.py:32-62 as written (transforms.Resize read as torchvision's)."""
    image_features = _official_encode_image(visual, images, mean, std)
    image_features = image_features / image_features.norm(dim=1, keepdim=True)
    img_spatial_feat = image_features[:, 1:, :]
    am = img_spatial_feat @ text_features.unsqueeze(-1)
    am = (am - am.min(1, keepdim=True)[0]) / (am.max(1, keepdim=True)[0] - am.min(1, keepdim=True)[0])
    side = int(am.shape[1] ** 0.5)
    am = am.reshape(am.shape[0], side, side, -1).permute(0, 3, 1, 2)
    resize_transform = transforms.Resize((40, 40), antialias=True)
    am = resize_transform(am)
    no_am = img_spatial_feat @ no_text_features.unsqueeze(-1)
    no_am = (no_am - no_am.min(1, keepdim=True)[0]) / (no_am.max(1, keepdim=True)[0] - no_am.min(1, keepdim=True)[0])
    no_am = no_am.reshape(no_am.shape[0], side, side, -1).permute(0, 3, 1, 2)
    no_am = resize_transform(no_am)
    return am * (1 - no_am)


def test_loss_equals_the_official_construction():
    bundle = _small_vit_bundle()
    clf = ZeroShotClassifier.from_bundle(bundle, NAMES, ["This is a photo of a {}"])
    frozen = copy.deepcopy(clf.encoder)
    _nudge(clf.encoder.visual, seed=5)
    x, x_adv, target = _batch(32, seed=1)           # 32 px images into a 40 px model: resized inside
    out = create_method("comp-tga", clf, frozen, FixedAttack(x_adv)).bind_text(bundle)(x, target)
    model, mean, std = bundle.model, bundle.mean, bundle.std
    with torch.no_grad():                            # Comp-TGA.py:327-335 (texts: 208, 233, 235)
        logit_scale = model.logit_scale.exp()
        text_features = model.encode_text(bundle.tokenizer([f"This is a photo of a {c}" for c in NAMES]))
        text_embed = logit_scale * (text_features / text_features.norm(dim=1, keepdim=True))
        no_text_features = model.encode_text(bundle.tokenizer([f"This is not a photo of a {c}" for c in NAMES]))
        no_text_embed = logit_scale * (no_text_features / no_text_features.norm(dim=1, keepdim=True))
        adv_features = _official_encode_image(model.visual, x_adv, mean, std)[:, 0, :]      # 350-352
        adv_features = adv_features / adv_features.norm(dim=1, keepdim=True)
        output = adv_features @ text_embed.t()
        B = x.size(0)                                                                    # 356-358
        attack_tar = _official_attention_map_comp(text_embed[target, :], no_text_embed[target, :],
                                                  model.visual, x_adv, mean, std).view(B, -1)
        clean_ori = _official_attention_map_comp(text_embed[target, :], no_text_embed[target, :],
                                                 frozen.visual, x, mean, std).view(B, -1)
        clean_tar = _official_attention_map_comp(text_embed[target, :], no_text_embed[target, :],
                                                 model.visual, x, mean, std).view(B, -1)
        loss_TeCoA = torch.nn.CrossEntropyLoss()(output, target)                         # 483-503
        loss_AM1 = torch.mean(torch.norm(attack_tar - clean_ori, dim=1, p=2))
        loss_AM2 = torch.mean(torch.norm(clean_tar - clean_ori, dim=1, p=2))
        loss = loss_TeCoA + 0.10 * loss_AM1 + 0.07 * loss_AM2                             # 102-103, 361
    assert float(loss_AM1) > 1e-3 and float(loss_AM2) > 1e-3
    assert torch.allclose(out["logits_adv"], output, rtol=1e-4, atol=1e-4)
    assert float(out["attn_adv"]) == pytest.approx(float(loss_AM1), rel=1e-4)
    assert float(out["attn_clean"]) == pytest.approx(float(loss_AM2), rel=1e-4)
    assert float(out["loss"].detach()) == pytest.approx(float(loss), rel=1e-5)


def test_official_resize_is_the_bilinear_upsampling_used():
    g = torch.Generator().manual_seed(4)
    tokens, t, n = torch.randn(3, 1 + 9, 6, generator=g), torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    fused = complementary_attention(tokens, t, n, 12)
    a = attention_map(tokens, t, 12).view(3, 1, 12, 12)
    assert torch.allclose(fused, (attention_map(tokens, t, 12) * (1 - attention_map(tokens, n, 12))))
    normed = tokens / tokens.norm(dim=1, keepdim=True)
    raw = (normed[:, 1:] @ t.unsqueeze(-1)).view(3, 1, 3, 3)
    small = (raw - raw.amin((2, 3), keepdim=True)) / (raw.amax((2, 3), keepdim=True) - raw.amin((2, 3), keepdim=True))
    assert torch.allclose(a, transforms.Resize((12, 12), antialias=True)(small), atol=1e-6)


# -- invariants -------------------------------------------------------------------------------
def test_reference_frozen_and_gradients_reach_the_image_encoder_only(tiny):
    bundle, clf, ref = tiny
    x, _, y = _batch(32)
    for p in bundle.model.parameters():              # the text tower could take gradients ...
        p.requires_grad_(True)
    ref_before = copy.deepcopy(ref.state_dict())
    m = create_method("comp-tga", clf, ref, PGD(eps=1 / 255, step_size=1 / 255, steps=2)).bind_text(bundle)
    m.train()
    assert not ref.training and all(not p.requires_grad for p in ref.parameters())
    assert all(not p.requires_grad for n, p in m.named_parameters() if n.startswith("reference."))
    visual = list(bundle.model.visual.parameters())
    for p in visual:                                 # the attack must not touch .grad
        p.grad = torch.full_like(p, 7.0)
    out = m(x, y)
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in visual)
    for p in visual:
        p.grad = None
    opt = torch.optim.SGD(visual, lr=1e-2)
    for _ in range(2):                               # ... but only the image encoder gets them
        opt.zero_grad()
        out = m(x, y)
        out["loss"].backward()
        opt.step()
    assert all(p.grad is not None for p in visual) and any(p.grad.abs().sum() > 0 for p in visual)
    visual_ids = {id(p) for p in visual}
    assert all(p.grad is None for p in bundle.model.parameters() if id(p) not in visual_ids)
    assert all(p.grad is None for p in ref.parameters())
    assert m.no_text_head.grad is None and not m.no_text_head.requires_grad
    assert "no_text_head" not in m.state_dict()      # derived, not a checkpointed weight
    for k, v in ref.state_dict().items():
        assert torch.equal(v, ref_before[k]), f"reference weight {k} changed"


def test_three_encoder_passes_and_the_non_class_head(tiny):
    bundle, clf, ref = tiny
    x, x_adv, y = _batch(32)
    m = create_method("comp-tga", clf, ref, FixedAttack(x_adv)).bind_text(bundle)
    calls = {"train": 0, "ref": 0}
    h1 = clf.encoder.visual.register_forward_hook(lambda *a: calls.__setitem__("train", calls["train"] + 1))
    h2 = ref.visual.register_forward_hook(lambda *a: calls.__setitem__("ref", calls["ref"] + 1))
    m(x, y)
    h1.remove(), h2.remove()
    assert calls == {"train": 2, "ref": 1}
    with torch.no_grad():
        want = F.normalize(bundle.model.encode_text(bundle.tokenizer([f"This is not a photo of a {c}" for c in NAMES])), dim=-1)
    assert torch.allclose(m.no_text_head, want, atol=1e-6)
    assert not torch.allclose(m.no_text_head, clf.text_head, atol=1e-3)


def test_options_and_errors(tiny):
    bundle, clf, ref = tiny
    opts = method_options("comp-tga")
    assert opts == {"alpha": 0.10, "beta": 0.07, "distance": "l2", "token_norm": "tokens", "ce_weight": 1.0,
                    "negative_template": NEGATIVE_TEMPLATE} and NEGATIVE_TEMPLATE == "This is not a photo of a {}"
    m = create_method("comp-tga", clf, ref, FixedAttack(None), alpha=0.2, negative_template="not a {}")
    assert m.options()["alpha"] == 0.2 and m.options()["negative_template"] == "not a {}"
    with pytest.raises(ValueError, match="bind_text"):
        m(*_batch(32)[::2])
    with pytest.raises(ValueError, match="placeholder"):
        create_method("comp-tga", clf, ref, FixedAttack(None), negative_template="no class here")
    with pytest.raises(ValueError, match="token_norm"):
        create_method("comp-tga", clf, ref, FixedAttack(None), token_norm="rows")
    with pytest.raises(ValueError, match="distance"):
        create_method("comp-tga", clf, ref, FixedAttack(None), distance="kl")
    with pytest.raises(ValueError, match="needs a training attack"):
        create_method("comp-tga", clf, ref, None)
    nameless = ZeroShotClassifier(clf.encoder, clf.text_head, 100.0)
    with pytest.raises(ValueError, match="no class names"):
        create_method("comp-tga", nameless, ref, FixedAttack(None)).bind_text(bundle)


def test_shipped_recipe_parses_and_is_packaged():
    import argparse

    from ucat.commands.train import add_arguments, config_from_args
    from ucat.config import apply_config_file

    path = ROOT / "configs" / "comp-tga.yaml"
    packaged = ROOT / "src" / "ucat" / "recipes" / "comp-tga.yaml"
    assert packaged.read_bytes() == path.read_bytes()
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    apply_config_file(parser, ["--config", str(path)])
    cfg = config_from_args(parser.parse_args(["--config", str(path)]))
    cfg.validate()
    assert (cfg.method, cfg.model, cfg.pretrained, cfg.data) == ("comp-tga", "ViT-B-32", "openai", "tinyimagenet")
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.optimizer, cfg.momentum, cfg.weight_decay) == (
        10, 128, 1e-4, "sgd", 0.9, 0.0)
    assert (cfg.eps, cfg.attack_steps, cfg.attack_step_size, cfg.warmup_steps) == (1, 2, 1, 1000)
    assert cfg.method_options == {"alpha": 0.10, "beta": 0.07, "distance": "l2"}


def test_ucat_train_runs_comp_tga_end_to_end(tmp_path, one_thread):
    """The trainer binds the non-class text head itself (Method.bind): `ucat train --method comp-tga` runs."""
    from ucat.cli import main

    out = tmp_path / "run"
    assert main(["train", "--method", "comp-tga", "--model", "ucat-world", "--data", "world-train", "--n-samples", "64",
                 "--max-steps", "2", "--batch-size", "8", "--out", str(out), "--no-progress"]) == 0
    assert (out / "final.safetensors").is_file()
