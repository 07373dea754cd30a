"""Dirichlet concentration, closed-form KL and uncertainty statistics against independent references."""
import math

import pytest
import torch
from torch.distributions import Dirichlet, kl_divergence

from ucat.uncertainty import (concentration, dirichlet_kl, dirichlet_stats, expected_probs, logit_uncertainty,
                              softmax_entropy)


def _kl_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """torch.distributions' Dirichlet KL in float64: the independent reference."""
    return kl_divergence(Dirichlet(a.double()), Dirichlet(b.double()))


def test_concentration_is_ucat_training_form():
    logits = torch.tensor([[30.0, -100.0, 100.0]])
    alpha = concentration(logits, logit_scale=100.0, temperature=0.07)
    expected = torch.exp((torch.tensor([0.3, -1.0, 1.0]) + 1) / 0.07) + 1e-6
    torch.testing.assert_close(alpha[0], expected, rtol=1e-6, atol=0)
    assert alpha.dtype == torch.float32
    # ranking of classes is kept
    assert torch.equal(alpha.argmax(-1), logits.argmax(-1))


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_kl_matches_torch_distributions_small_alphas(scale):
    g = torch.Generator().manual_seed(0)
    a = torch.rand(8, 5, generator=g) * scale + 0.2
    b = torch.rand(8, 5, generator=g) * scale + 0.2
    torch.testing.assert_close(dirichlet_kl(a, b).double(), _kl_reference(a, b), rtol=1e-5, atol=1e-6)


def test_kl_extreme_alphas_float32_inputs_match_float64():
    """UCAT's range: alpha up to e^(2/0.07) ~ 2.6e12 and C up to 1000; KL ~ 1e7..1e9."""
    g = torch.Generator().manual_seed(1)
    for C in (10, 200, 1000):
        cos_clean = 0.2 + 0.05 * torch.randn(4, C, generator=g)
        cos_adv = cos_clean + 0.01 * torch.randn(4, C, generator=g)
        cos_adv[:, 0] = 1.0                                      # the largest alpha UCAT can produce
        a = concentration(100 * cos_adv)                         # float32, like training
        b = concentration(100 * cos_clean)
        ours = dirichlet_kl(a, b)
        ref = _kl_reference(a, b)                                # same float32 inputs, float64 math
        assert ours.dtype == torch.float32
        assert torch.all(ref > 0)
        torch.testing.assert_close(ours.double(), ref, rtol=1e-4, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_kl_under_autocast_and_gradients_finite(dtype):
    g = torch.Generator().manual_seed(2)
    logits_adv = (100 * (0.25 + 0.05 * torch.randn(6, 200, generator=g))).requires_grad_()
    logits_clean = 100 * (0.25 + 0.05 * torch.randn(6, 200, generator=g))
    ref = _kl_reference(concentration(logits_adv.detach()), concentration(logits_clean))
    with torch.autocast("cpu", dtype=dtype):
        kl = dirichlet_kl(concentration(logits_adv), concentration(logits_clean))
    assert kl.dtype == torch.float32
    torch.testing.assert_close(kl.double(), ref, rtol=1e-4, atol=0)
    kl.mean().backward()
    assert torch.isfinite(logits_adv.grad).all() and logits_adv.grad.abs().sum() > 0


def test_kl_is_zero_for_identical_and_monte_carlo_agrees():
    a = torch.tensor([[2.0, 3.0, 4.0]])
    assert dirichlet_kl(a, a).abs().item() < 1e-9
    b = torch.tensor([[1.0, 5.0, 2.0]])
    torch.manual_seed(0)
    samples = Dirichlet(a.double()).sample((200_000,))                      # (S, 1, 3)
    mc = (Dirichlet(a.double()).log_prob(samples) - Dirichlet(b.double()).log_prob(samples)).mean()
    assert abs(dirichlet_kl(a, b).item() - mc.item()) < 0.02 * abs(mc.item()) + 5e-3


def test_kl_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        dirichlet_kl(torch.ones(2, 3), torch.ones(2, 4))


def test_stats_decomposition_and_references():
    g = torch.Generator().manual_seed(3)
    alpha = torch.rand(16, 7, generator=g) * 5 + 0.1
    s = dirichlet_stats(alpha)
    p = alpha.double() / alpha.double().sum(-1, keepdim=True)
    torch.testing.assert_close(expected_probs(alpha).double(), p, rtol=1e-6, atol=0)
    torch.testing.assert_close(s["evidence"].double(), alpha.double().sum(-1), rtol=1e-6, atol=0)
    torch.testing.assert_close(s["predictive"].double(), -(p * p.log()).sum(-1), rtol=1e-5, atol=1e-6)
    # expected entropy: Monte Carlo over Dirichlet samples for one row
    torch.manual_seed(0)
    smp = Dirichlet(alpha[0].double()).sample((100_000,))
    mc_h = -(smp * smp.clamp_min(1e-300).log()).sum(-1).mean()
    assert abs(s["aleatoric"][0].item() - mc_h.item()) < 0.01
    # total = aleatoric + epistemic, MI >= 0, vacuity C / (alpha0 + C)
    torch.testing.assert_close(s["predictive"], s["aleatoric"] + s["epistemic"], rtol=1e-5, atol=1e-6)
    assert torch.all(s["epistemic"] >= 0)
    torch.testing.assert_close(s["epistemic_paper"].double(), 7 / (alpha.double().sum(-1) + 7), rtol=1e-6, atol=0)
    sn = dirichlet_stats(alpha, normalize=True)
    torch.testing.assert_close(sn["predictive"], s["predictive"] / math.log(7), rtol=1e-6, atol=1e-7)


def test_more_evidence_means_less_epistemic_uncertainty():
    base = torch.tensor([[3.0, 1.0, 1.0]])
    low, high = dirichlet_stats(base), dirichlet_stats(base * 100)
    assert high["epistemic"] < low["epistemic"]
    assert high["epistemic_paper"] < low["epistemic_paper"]


def test_softmax_entropy_bounds_and_logit_uncertainty_keys():
    assert softmax_entropy(torch.zeros(1, 4), normalize=True).item() == pytest.approx(1.0)
    assert softmax_entropy(torch.tensor([[100.0, 0.0, 0.0]])).item() < 1e-6
    u = logit_uncertainty(torch.randn(5, 10) * 10)
    assert set(u) >= {"entropy", "aleatoric", "epistemic", "epistemic_paper", "predictive", "evidence", "confidence"}
    for k in ("entropy", "aleatoric", "epistemic", "predictive"):
        assert torch.all((u[k] >= 0) & (u[k] <= 1 + 1e-6)), k


def test_official_alpha_and_epistemic_as_the_official_code_writes_them():
    """VivienLu/UCAT main.py:496 alpha = 1e-6 + exp(softplus(z)); main.py:309-322 AU and EU, by hand in float64."""
    from ucat.uncertainty import alpha_from_logits, official_concentration, official_epistemic

    z = torch.tensor([[25.0, 20.0, -3.0], [0.0, 0.0, 0.0]])
    alpha = official_concentration(z)
    zd = z.double()
    # nn.Softplus() as the official code calls it: log(1 + e^z), linear (= z) above its threshold 20
    ref = 1e-6 + torch.exp(torch.where(zd > 20, zd, torch.log1p(torch.exp(zd))))
    torch.testing.assert_close(alpha, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(alpha_from_logits(z, "official"), alpha)
    a0 = ref.sum(-1)
    eu = 3 / torch.logsumexp(ref + 1, -1) / math.log(3)
    torch.testing.assert_close(official_epistemic(alpha).double(), eu, rtol=1e-6, atol=0)
    au = -(ref / a0[:, None] * (torch.digamma(ref + 1) - torch.digamma(a0[:, None] + 1))).sum(-1) / math.log(3)
    u = logit_uncertainty(z, alpha="official")
    torch.testing.assert_close(u["aleatoric"].double(), au, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(u["vacuity"].double(), 3 / (a0 + 3), rtol=1e-6, atol=0)
    torch.testing.assert_close(u["one_minus_max_prob"], 1 - torch.softmax(z, -1).amax(-1))
    torch.testing.assert_close(u["mutual_information"], u["epistemic"])
    # the two forms differ, and an unknown one is refused
    assert not torch.allclose(logit_uncertainty(z, alpha="ucat")["aleatoric"], u["aleatoric"])
    with pytest.raises(ValueError, match="official"):
        alpha_from_logits(z, "softmax")
