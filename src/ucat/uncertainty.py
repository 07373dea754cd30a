"""Dirichlet view of CLIP logits: concentration, closed-form KL and uncertainty statistics.

UCAT (Lu et al., "Calibrating Uncertainty for Zero-Shot Adversarial CLIP", arXiv 2512.12997,
ICML 2026) reads CLIP's zero-shot logits z_c = s * cos(f(x), t_c) as the concentration of a
Dirichlet distribution,

    alpha_c = exp((z_c / s + 1) / tau') + eps,        tau' = 0.07,

which keeps the ranking of classes (argmax alpha = argmax z) *and* the magnitude of the evidence
(alpha_0 = sum_c alpha_c grows with the cosine similarities). The uncertainty decomposition
follows Malinin & Gales ("Predictive Uncertainty Estimation via Prior Networks", NeurIPS 2018):
total (predictive entropy of the expected distribution) = aleatoric (expected entropy) +
epistemic (mutual information).

Numerics: UCAT's alphas reach e^(2/0.07) ~ 2.6e12, where lgamma is ~7e13; the KL is a small
difference of such terms, so in float32 it loses all precision. Every function here therefore
leaves autocast and computes in float64 (float32 on devices without float64), returning float32.
"""
from __future__ import annotations

import math
from typing import Dict

import torch

DEFAULT_LOGIT_SCALE = 100.0  # exp(logit_scale) of OpenAI CLIP
DEFAULT_TEMPERATURE = 0.07   # tau' in the UCAT paper and code (--target_concentration)
ALPHA_FORMS = ("official", "ucat")
"""How the uncertainty *columns* of an evaluation build alpha from logits z (:func:`alpha_from_logits`):
``"official"`` = 1e-6 + exp(softplus(z)), the official UCAT evaluation (VivienLu/UCAT main.py:496,
505, 583); ``"ucat"`` = exp((z/s + 1)/tau') + 1e-6, the form the UCAT loss trains (main.py:390, 396)."""
ALPHA_DESCRIPTIONS = {"official": "alpha = 1e-6 + exp(softplus(z)) (VivienLu/UCAT main.py:496,505,583)",
                      "ucat": "alpha = exp((z / s + 1) / tau') + 1e-6 (VivienLu/UCAT main.py:390,396)"}


def _wide_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _no_autocast(t: torch.Tensor):
    return torch.autocast(device_type=t.device.type, enabled=False)


def concentration(logits: torch.Tensor, logit_scale: float = DEFAULT_LOGIT_SCALE,
                  temperature: float = DEFAULT_TEMPERATURE, eps: float = 1e-6) -> torch.Tensor:
    """Dirichlet concentration from CLIP logits, exactly UCAT's training form.

    alpha = exp((logits / logit_scale + 1) / temperature) + eps, with logits/logit_scale the
    cosine similarity in [-1, 1], so alpha lies in [exp(0) + eps, exp(2/temperature) + eps].

    Args:
        logits: (..., C) zero-shot logits s * cos(f(x), t_c), any float dtype.
        logit_scale: s, the multiplier that turned cosines into logits.
        temperature: tau' (0.07 in the paper).
        eps: added to alpha (1e-6 in the official code).
    Returns:
        (..., C) float32 concentrations.
    """
    if logit_scale <= 0 or temperature <= 0:
        raise ValueError("concentration: logit_scale and temperature must be > 0")
    with _no_autocast(logits):
        return torch.exp((logits.float() / logit_scale + 1.0) / temperature) + eps


def official_concentration(logits: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The official evaluation's concentration: alpha = eps + exp(softplus(z)) = 1 + e^z + eps.

    VivienLu/UCAT main.py:496 (clean), 505 (original CLIP), 583 (adversarial), on the scaled
    logits z = s * cos, with ``nn.Softplus()``'s defaults as there (beta 1, linear above z = 20, so
    alpha = e^z + 1e-6 for z > 20). Computed in float64 (float32 on MPS): e^z overflows float32 for z > 88.

    Args:
        logits: (..., C) zero-shot logits.
    Returns:
        (..., C) concentrations in the wide dtype.
    """
    with _no_autocast(logits):
        return torch.exp(torch.nn.functional.softplus(logits.to(_wide_dtype(logits.device)))) + eps


def alpha_from_logits(logits: torch.Tensor, form: str = "ucat", logit_scale: float = DEFAULT_LOGIT_SCALE,
                      temperature: float = DEFAULT_TEMPERATURE) -> torch.Tensor:
    """alpha of the Dirichlet read from ``logits`` (..., C) in one of :data:`ALPHA_FORMS`."""
    if form == "official":
        return official_concentration(logits)
    if form == "ucat":
        return concentration(logits, logit_scale, temperature)
    raise ValueError(f"uncertainty alpha form must be one of {ALPHA_FORMS}, got {form!r}")


def official_epistemic(alpha: torch.Tensor) -> torch.Tensor:
    """The EU column the official evaluation prints: C / logsumexp(alpha + 1) / log C, (...,) float32.

    VivienLu/UCAT main.py:318-322 (``eu_dirichlet``). Its comment (and the paper) give
    C / sum(alpha + 1); the code takes a logsumexp instead, which this reproduces as written.
    """
    with _no_autocast(alpha):
        a = alpha.to(_wide_dtype(alpha.device))
        C = a.shape[-1]
        eu = C / torch.logsumexp(a + 1.0, dim=-1) / (math.log(C) if C > 1 else 1.0)
    return eu.float()


def dirichlet_kl(alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(Dir(alpha) || Dir(beta)) in closed form.

        KL = lgamma(a0) - sum lgamma(a_c) - lgamma(b0) + sum lgamma(b_c)
             + sum (a_c - b_c) (digamma(a_c) - digamma(a0)),    a0 = sum a_c, b0 = sum b_c.

    Computed in float64 outside autocast (see the module docstring), so it matches a float64
    reference from float32 inputs for alphas up to ~1e13 and C up to thousands of classes, also
    when the caller runs under bf16/fp16 autocast. Differentiable in both arguments.

    Args:
        alpha, beta: (..., C) positive concentrations.
    Returns:
        (...,) float32 KL divergences.
    """
    if alpha.shape != beta.shape:
        raise ValueError(f"dirichlet_kl: shapes differ {tuple(alpha.shape)} vs {tuple(beta.shape)}")
    out_dtype = torch.promote_types(alpha.dtype, torch.float32)
    with _no_autocast(alpha):
        wide = _wide_dtype(alpha.device)
        a, b = alpha.to(wide), beta.to(wide)
        a0, b0 = a.sum(-1), b.sum(-1)                          # (...,)
        kl = (torch.lgamma(a0) - torch.lgamma(a).sum(-1)
              - torch.lgamma(b0) + torch.lgamma(b).sum(-1)
              + ((a - b) * (torch.digamma(a) - torch.digamma(a0).unsqueeze(-1))).sum(-1))
    return kl.to(out_dtype)


def expected_probs(alpha: torch.Tensor) -> torch.Tensor:
    """E[p] = alpha / alpha_0, (..., C)."""
    return alpha / alpha.sum(-1, keepdim=True)


def dirichlet_stats(alpha: torch.Tensor, normalize: bool = False) -> Dict[str, torch.Tensor]:
    """Per-sample uncertainty statistics of Dir(alpha).

    Returns a dict of (...,) float32 tensors:
        ``evidence``   alpha_0 = sum_c alpha_c (total evidence).
        ``predictive`` H(E[p]), entropy of the expected distribution (total uncertainty).
        ``aleatoric``  E_{p~Dir}[H(p)] = -sum_c (a_c/a0) (digamma(a_c + 1) - digamma(a0 + 1)).
        ``epistemic``  mutual information I[y; p] = predictive - aleatoric (>= 0); also under
                       the key ``mutual_information``.
        ``epistemic_paper``  C / (alpha_0 + C), the UCAT paper's EU (vacuity form); also under
                       the key ``vacuity``.

    With ``normalize=True`` the three entropy-type quantities are divided by log C so that they
    lie in [0, 1]; ``evidence`` and ``epistemic_paper`` are unchanged.
    """
    with _no_autocast(alpha):
        wide = _wide_dtype(alpha.device)
        a = alpha.to(wide)
        C = a.shape[-1]
        a0 = a.sum(-1)                                                        # (...,)
        p = a / a0.unsqueeze(-1)                                              # (..., C)
        predictive = -(p * torch.log(p.clamp_min(torch.finfo(wide).tiny))).sum(-1)
        aleatoric = -(p * (torch.digamma(a + 1) - torch.digamma(a0 + 1).unsqueeze(-1))).sum(-1)
        epistemic = (predictive - aleatoric).clamp_min(0.0)
        vacuity = C / (a0 + C)
        if normalize:
            logc = math.log(C) if C > 1 else 1.0
            predictive, aleatoric, epistemic = predictive / logc, aleatoric / logc, epistemic / logc
    out = {"evidence": a0, "predictive": predictive, "aleatoric": aleatoric,
           "epistemic": epistemic, "epistemic_paper": vacuity, "mutual_information": epistemic, "vacuity": vacuity}
    return {k: v.float() for k, v in out.items()}


def softmax_entropy(logits: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """Entropy of softmax(logits), (...,) float32; divided by log C when ``normalize``."""
    with _no_autocast(logits):
        logp = torch.log_softmax(logits.float(), dim=-1)
        h = -(logp.exp() * logp).sum(-1)
    if normalize and logits.shape[-1] > 1:
        h = h / math.log(logits.shape[-1])
    return h


def logit_uncertainty(logits: torch.Tensor, logit_scale: float = DEFAULT_LOGIT_SCALE,
                      temperature: float = DEFAULT_TEMPERATURE, normalize: bool = True,
                      alpha: str = "ucat") -> Dict[str, torch.Tensor]:
    """All per-sample uncertainty scores ucat reports, from zero-shot logits (..., C).

    Scores of CLIP's own softmax(logits) (the distribution accuracy and calibration use):
    ``entropy``, ``confidence`` (max p) and ``one_minus_max_prob`` (1 - max p). Dirichlet scores
    from :func:`alpha_from_logits` with ``alpha`` (``"ucat"``: the training form; ``"official"``:
    the official evaluation's, main.py:496): ``predictive``, ``aleatoric``, ``mutual_information``
    (= ``epistemic``), ``vacuity`` (= ``epistemic_paper``, C / (alpha_0 + C)), ``evidence`` and
    ``epistemic_official`` (the official code's EU, :func:`official_epistemic`). Entropy-type
    scores are divided by log C when ``normalize`` (the official code normalizes all of them).
    """
    a = alpha_from_logits(logits, alpha, logit_scale, temperature)
    stats = dirichlet_stats(a, normalize=normalize)
    stats["epistemic_official"] = official_epistemic(a)
    stats["entropy"] = softmax_entropy(logits, normalize=normalize)
    stats["confidence"] = torch.softmax(logits.float(), dim=-1).amax(-1)
    stats["one_minus_max_prob"] = 1.0 - stats["confidence"]
    return stats
