"""Methods: each loss equals its formula on fixed tensors; the frozen reference stays frozen;
attack gradients never reach parameters; no unused forward passes; one step lowers the loss."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from ucat.attacks import PGD
from ucat.errors import ConfigError
from ucat.methods import METHODS, create_method, method_options
from ucat.methods.base import check_method_options
from ucat.methods.pmg_aft import kl_sum
from ucat.methods.tga_zsr import attention_map, vit_tokens
from ucat.methods.ucat import ucat_lambda

B, C = 6, 5


pytestmark = pytest.mark.usefixtures("one_thread")



class FixedAttack:
    """A stand-in attack returning fixed 'adversarial' images (so formulas can be checked exactly)."""

    def __init__(self, x_adv):
        self.x_adv, self.calls = x_adv, 0
        self.eps, self.step_size = 1 / 255, 1 / 255

    def __call__(self, classifier, images, labels):
        self.calls += 1
        return self.x_adv


@pytest.fixture()
def batch():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(B, 3, 32, 32, generator=g)
    x_adv = (x + (torch.rand(B, 3, 32, 32, generator=g) - 0.5) * 0.05).clamp(0, 1)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    return x, x_adv, y


@pytest.fixture()
def parts(tiny_bundle, tiny_classifier):
    """(classifier, frozen reference) over the session's tiny CLIP; the encoder is restored after."""
    saved = copy.deepcopy(tiny_bundle.model.visual.state_dict())
    reference = copy.deepcopy(tiny_classifier.encoder)
    yield tiny_classifier, reference
    tiny_bundle.model.visual.load_state_dict(saved)
    for p in tiny_bundle.model.parameters():
        p.grad = None


def ce_by_hand(logits, y):
    logp = logits.double() - torch.logsumexp(logits.double(), dim=-1, keepdim=True)
    return -logp[torch.arange(len(y)), y].mean()


def test_ucat_lambda_is_the_official_value():
    # tau / exp(softplus(2/0.07)), paper.md Sec. 1.4: 1e5 / 2.561e12 = 3.905e-8
    assert ucat_lambda() == pytest.approx(3.905e-8, rel=1e-3)
    assert ucat_lambda(1e5, 0.07) == pytest.approx(1e5 / math.exp(math.log1p(math.exp(2 / 0.07))), rel=1e-12)


def test_ucat_loss_on_fixed_logits(parts):
    clf, ref = parts
    m = create_method("ucat", clf, ref, FixedAttack(None), tau=1e5)
    s = clf.logit_scale
    g = torch.Generator().manual_seed(1)
    z_adv = (torch.rand(B, C, generator=g) * 0.6 - 0.1) * s        # cosines in [-0.1, 0.5]
    z_ref = (torch.rand(B, C, generator=g) * 0.6 - 0.1) * s
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    out = m.loss_from_logits(z_adv, z_ref, y)
    a = torch.exp((z_adv.double() / s + 1) / 0.07) + 1e-6
    b = torch.exp((z_ref.double() / s + 1) / 0.07) + 1e-6
    kl = torch.distributions.kl_divergence(torch.distributions.Dirichlet(a), torch.distributions.Dirichlet(b)).mean()
    lam = 1e5 / math.exp(math.log1p(math.exp(2 / 0.07)))
    expected = ce_by_hand(z_adv, y) + lam * kl
    assert float(out["kl"]) == pytest.approx(float(kl), rel=1e-4)
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    # direction matters: KL(adv || ref) differs from KL(ref || adv)
    rev = torch.distributions.kl_divergence(torch.distributions.Dirichlet(b), torch.distributions.Dirichlet(a)).mean()
    assert abs(float(rev) - float(kl)) > 1e-3 * abs(float(kl))


def test_ucat_forward_uses_adv_trainable_and_clean_frozen(parts, batch):
    clf, ref = parts
    x, x_adv, y = batch
    with torch.no_grad():
        clf.encoder.visual.proj.add_(0.05 * torch.randn_like(clf.encoder.visual.proj))  # theta != theta_0
    attack = FixedAttack(x_adv)
    m = create_method("ucat", clf, ref, attack)
    out = m(x, y)
    with torch.no_grad():
        z_adv = clf(x_adv)
        z_ref = clf.logit_scale * F.normalize(ref(x), dim=-1) @ clf.text_head.t()      # frozen, clean
    s = clf.logit_scale
    a = torch.exp((z_adv.double() / s + 1) / 0.07) + 1e-6
    b = torch.exp((z_ref.double() / s + 1) / 0.07) + 1e-6
    kl = torch.distributions.kl_divergence(torch.distributions.Dirichlet(a), torch.distributions.Dirichlet(b)).mean()
    expected = ce_by_hand(z_adv, y) + ucat_lambda() * kl
    assert attack.calls == 1
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(out["logits_adv"], z_adv, atol=1e-5)


def test_tecoa_and_clean_losses(parts, batch):
    clf, ref = parts
    x, x_adv, y = batch
    out = create_method("tecoa", clf, ref, FixedAttack(x_adv))(x, y)
    with torch.no_grad():
        assert float(out["loss"].detach()) == pytest.approx(float(ce_by_hand(clf(x_adv), y)), rel=1e-5)
        out = create_method("clean", clf, ref, None)(x, y)
        assert float(out["loss"].detach()) == pytest.approx(float(ce_by_hand(clf(x), y)), rel=1e-5)


def test_pmg_aft_loss(parts, batch):
    clf, ref = parts
    x, x_adv, y = batch
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        clf.encoder.visual.proj.add_(0.05 * torch.randn(clf.encoder.visual.proj.shape, generator=g))
    out = create_method("pmg-aft", clf, ref, FixedAttack(x_adv), ref_weight=0.7, clean_weight=1.3)(x, y)
    with torch.no_grad():
        z_adv, z_clean = clf(x_adv).double(), clf(x).double()
        z0_adv = clf.logit_scale * F.normalize(ref(x_adv), dim=-1).double() @ clf.text_head.double().t()
    p0, pc, pa = z0_adv.softmax(-1), z_clean.softmax(-1), z_adv.softmax(-1)
    kl_ref = (p0 * (p0.log() - pa.log())).sum()            # summed over batch AND classes
    kl_clean = (pc * (pc.log() - pa.log())).sum()
    expected = ce_by_hand(z_adv, y) + 0.7 * kl_ref + 1.3 * kl_clean
    # kl_ref is a KL between nearly equal distributions (~1e-4): float32 cancellation in the
    # method's log-softmax differences costs ~0.3% against this float64 reference.
    assert float(out["kl_ref"]) == pytest.approx(float(kl_ref), rel=1e-2, abs=1e-7)
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    # under 2 data-parallel processes the batch sums count twice (DDP then averages the gradients)
    m2 = create_method("pmg-aft", clf, ref, FixedAttack(x_adv))
    m2.world_size = 2
    out2 = m2(x, y)
    assert float(out2["kl_clean"]) == pytest.approx(2 * float(out["kl_clean"]), rel=1e-6)
    # the official nn.KLDivLoss(reduction="sum")(log_softmax(input), softmax(target)) is the same number
    official = torch.nn.KLDivLoss(reduction="sum")(F.log_softmax(z_adv, -1), F.softmax(z_clean, -1))
    assert float(kl_sum(z_clean, z_adv)) == pytest.approx(float(official), rel=1e-3, abs=1e-7)


def test_fare_loss_and_inner_attack(parts, batch):
    clf, ref = parts
    x, x_adv, y = batch
    with torch.no_grad():
        clf.encoder.visual.proj.add_(0.05 * torch.randn_like(clf.encoder.visual.proj))
    m = create_method("fare", clf, ref, PGD(eps=2 / 255, step_size=1 / 255, steps=2), steps=3)
    assert m.eps == pytest.approx(2 / 255) and m.steps == 3
    m.inner_attack = lambda images, target: x_adv
    out = m(x, y)
    with torch.no_grad():
        expected = ((clf.encoder(x_adv).double() - ref(x).double()) ** 2).sum(-1).mean()   # unnormalized
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    # the real inner attack stays in the ball and raises the embedding distance over clean inputs
    m2 = create_method("fare", clf, ref, None, eps=4 / 255, step_size=1 / 255, steps=4)
    torch.manual_seed(0)
    target = m2.reference_features(x)
    adv = m2.inner_attack(x, target)
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        d_clean = ((clf.encoder(x) - target) ** 2).sum()
        d_adv = ((clf.encoder(adv) - target) ** 2).sum()
    assert d_adv > d_clean


def test_attention_map_by_hand():
    g = torch.Generator().manual_seed(2)
    tokens = torch.randn(2, 1 + 4, 3, generator=g)       # class token + a 2x2 grid of patches, D = 3
    text = torch.randn(2, 3, generator=g)
    am = attention_map(tokens, text, out_size=2)          # upsampling 2 -> 2 is the identity
    normed = tokens / tokens.norm(dim=1, keepdim=True)     # official quirk: norm over the token axis
    raw = torch.einsum("bnd,bd->bn", normed[:, 1:], text)
    mm = (raw - raw.min(1, keepdim=True)[0]) / (raw.max(1, keepdim=True)[0] - raw.min(1, keepdim=True)[0])
    assert torch.allclose(am, mm, atol=1e-6)
    assert am.shape == (2, 4) and float(am.min()) == 0.0 and float(am.max()) == pytest.approx(1.0)
    assert attention_map(tokens, text, out_size=8).shape == (2, 64)


def test_vit_tokens_match_the_encoder(parts, batch):
    clf, _ = parts
    x, _, _ = batch
    with torch.no_grad():
        pooled, tokens = vit_tokens(clf.encoder, x)
        assert torch.allclose(pooled, clf.encoder(x), atol=1e-5)
    grid = (32 // 8) ** 2
    assert tokens.shape == (B, 1 + grid, 32)
    assert clf.encoder.visual.output_tokens is False       # the switch is restored


def test_tga_zsr_loss(parts, batch):
    clf, ref = parts
    x, x_adv, y = batch
    with torch.no_grad():
        clf.encoder.visual.proj.add_(0.05 * torch.randn_like(clf.encoder.visual.proj))
    out = create_method("tga-zsr", clf, ref, FixedAttack(x_adv))(x, y)
    with torch.no_grad():
        t = clf.text_head[y]
        a_adv = attention_map(vit_tokens(clf.encoder, x_adv)[1], t, 32)
        a_cln = attention_map(vit_tokens(clf.encoder, x)[1], t, 32)
        a_ref = attention_map(vit_tokens(ref, x)[1], t, 32)
        expected = (ce_by_hand(clf(x_adv), y) + 0.08 * (a_adv - a_ref).norm(dim=1).mean()
                    + 0.05 * (a_cln - a_ref).norm(dim=1).mean())
    assert float(out["attn_adv"]) > 0
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)


def _count_forwards(module):
    calls = []
    handle = module.register_forward_hook(lambda *a: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("name,trainable,frozen", [("ucat", 1, 1), ("tecoa", 1, 0), ("clean", 1, 0),
                                                   ("pmg-aft", 2, 1), ("tga-zsr", 2, 1)])
def test_no_unused_forward_passes(parts, batch, name, trainable, frozen):
    clf, ref = parts
    x, x_adv, y = batch
    m = create_method(name, clf, ref, FixedAttack(x_adv))
    n_train, h1 = _count_forwards(clf.encoder.visual)
    n_ref, h2 = _count_forwards(ref.visual)
    m(x, y)
    h1.remove(), h2.remove()
    assert (len(n_train), len(n_ref)) == (trainable, frozen)


@pytest.mark.parametrize("name", sorted(METHODS.names()))
def test_reference_frozen_grads_clean_and_one_step_lowers_loss(parts, batch, name, tiny_bundle):
    clf, ref = parts
    x, _, y = batch
    ref_before = copy.deepcopy(ref.state_dict())
    with torch.no_grad():                      # mid-training: theta != theta_0
        clf.encoder.visual.proj.add_(0.05 * torch.randn(clf.encoder.visual.proj.shape,
                                                        generator=torch.Generator().manual_seed(3)))
    attack = PGD(eps=1 / 255, step_size=1 / 255, steps=2, random_start=False)
    opts = {"steps": 2} if name == "fare" else {}
    m = create_method(name, clf, ref, attack, **opts).train()
    if hasattr(m, "bind_text"):                # comp-tga embeds its non-class prompts
        m.bind_text(tiny_bundle)
    assert not ref.training and all(not p.requires_grad for p in ref.parameters())
    params = list(clf.encoder.visual.parameters())
    # attack/forward must not touch .grad: pre-set sentinels survive the forward pass
    for p in params:
        p.grad = torch.full_like(p, 7.0)
    torch.manual_seed(0)
    out = m(x, y)
    assert all(torch.equal(p.grad, torch.full_like(p, 7.0)) for p in params)
    assert set(out) >= {"loss"} and out["loss"].ndim == 0 and out["loss"].requires_grad
    for p in params:
        p.grad = None
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    assert all(p.grad is None for p in ref.parameters())
    grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in params if p.grad is not None))
    with torch.no_grad():                      # one small normalized gradient step
        for p in params:
            if p.grad is not None:
                p -= (1e-4 / grad_norm) * p.grad
    torch.manual_seed(0)
    with torch.no_grad() if name in ("clean",) else torch.enable_grad():
        after = m(x, y)["loss"]
    assert float(after.detach()) < float(out["loss"].detach())
    for k, v in ref.state_dict().items():
        assert torch.equal(v, ref_before[k]), f"reference weight {k} changed"


def test_create_method_errors(parts):
    clf, ref = parts
    with pytest.raises(KeyError, match="known methods: clean, comp-tga, fare, pmg-aft, tecoa, tga-zsr, ucat"):
        create_method("trades", clf, ref, None)
    with pytest.raises(ConfigError, match="lamda: method 'ucat' has no such option.*tau=") as e:
        create_method("ucat", clf, ref, FixedAttack(None), lamda=1.0)
    assert e.value.param == "method_options"
    with pytest.raises(ConfigError, match="tau='abc': method 'ucat' takes a number"):
        create_method("ucat", clf, ref, FixedAttack(None), tau="abc")
    with pytest.raises(ConfigError, match="tau=inf: must be a finite number"):
        check_method_options("ucat", {"tau": float("inf")})
    with pytest.raises(ConfigError, match="distance=2: method 'tga-zsr' takes a name"):
        check_method_options("tga-zsr", {"distance": 2})
    assert check_method_options("ucat", {"kl_weight": None, "tau": 3}) == {"kl_weight": None, "tau": 3}
    with pytest.raises(ValueError, match="needs a training attack"):
        create_method("tecoa", clf, ref, None)
    assert method_options("tga-zsr")["alpha"] == 0.08 and method_options("tga-zsr")["beta"] == 0.05
    assert create_method("PMG_AFT", clf, ref, FixedAttack(None)).ref_weight == 1.0    # name normalization


def test_reference_features_fp32_is_the_reference_bit_for_bit(parts, batch):
    clf, ref = parts
    x, _, _ = batch
    m = create_method("tecoa", clf, ref, FixedAttack(x))
    with torch.no_grad():
        assert torch.equal(m.reference_features(x), ref(x).float())
    assert m._reference_lowp._copy is None                       # no copy is built in float32


def test_reference_features_under_cpu_bf16_autocast_run_a_bf16_copy(parts, batch):
    clf, ref = parts
    x, _, _ = batch
    m = create_method("tecoa", clf, ref, FixedAttack(x))
    keys = set(m.state_dict())
    with torch.no_grad():
        fp32 = ref(x).float()
        bf16_tower = copy.deepcopy(ref.visual).to(torch.bfloat16)        # the copy, built independently
        expected = bf16_tower(ref.normalize(x).to(torch.bfloat16)).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = m.reference_features(x)
    assert got.dtype == torch.float32 and torch.equal(got, expected)
    assert float((got - fp32).norm() / fp32.norm()) < 0.05               # bf16 rounding, not another model
    assert set(m.state_dict()) == keys                                   # the copy is not part of the method
    assert all(p.dtype == torch.float32 for p in m.parameters())
    with torch.no_grad():                                                # a changed reference is re-copied
        ref.visual.proj.mul_(2.0)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            doubled = m.reference_features(x)
    assert torch.equal(doubled, 2.0 * got)                               # x2 is exact in bf16
