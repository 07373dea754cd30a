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
        ``epistemic``  mutual information I[y; p] = predictive - aleatoric (>= 0).
        ``epistemic_paper``  C / (alpha_0 + C), the UCAT paper's EU (vacuity form).

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
           "epistemic": epistemic, "epistemic_paper": vacuity}
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
                      temperature: float = DEFAULT_TEMPERATURE, normalize: bool = True) -> Dict[str, torch.Tensor]:
    """All per-sample uncertainty scores ucat reports, from zero-shot logits.

    ``entropy`` is the entropy of CLIP's own softmax(logits) (the distribution that accuracy and
    calibration use); the Dirichlet statistics use :func:`concentration` with the training-time
    tau', the same parameterization the UCAT loss trains (the official evaluation code used a
    different one; we use one form throughout). Normalized by log C by default.
    """
    stats = dirichlet_stats(concentration(logits, logit_scale, temperature), normalize=normalize)
    stats["entropy"] = softmax_entropy(logits, normalize=normalize)
    stats["confidence"] = torch.softmax(logits.float(), dim=-1).amax(-1)
    return stats
