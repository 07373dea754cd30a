"""Calibration estimators, bootstrap intervals and temperature scaling against float64 references
written here independently (plain Python loops), and their invariants."""
import math

import numpy as np
import pytest
import torch

from ucat import calibration as K
from ucat.errors import ConfigError, NonFiniteError
from ucat.metrics import ece


def _data(n=600, c=5, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(n, c, generator=g, dtype=torch.float64)
    labels = torch.randint(0, c, (n,), generator=g)
    return logits, labels


def _top_label_bins_by_hand(probs, labels, n_bins, edges=None):
    """(conf, acc, count) per non-empty right-closed bin, by a loop over images."""
    p = probs.numpy()
    conf, pred = p.max(1), p.argmax(1)
    correct = (pred == labels.numpy()).astype(float)
    edges = np.linspace(0, 1, n_bins + 1) if edges is None else edges
    out = []
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        sel = [(lo < x <= hi) or (b == 0 and x == lo) for x in conf]
        sel = np.array(sel)
        if sel.any():
            out.append((conf[sel].mean(), correct[sel].mean(), int(sel.sum())))
    return out


def test_rms_calibration_error_matches_a_hand_loop():
    logits, labels = _data()
    probs = torch.softmax(logits, -1)
    bins = _top_label_bins_by_hand(probs, labels, 15)
    n = sum(k for _, _, k in bins)
    ref = math.sqrt(sum(k * (c - a) ** 2 for c, a, k in bins) / n)
    assert K.rms_calibration_error(probs, labels, 15) == pytest.approx(ref, rel=1e-12)
    assert K.rms_calibration_error(probs, labels, 15) >= ece(probs, labels, 15) - 1e-12   # L2 >= L1 (Jensen)


def test_classwise_ece_matches_a_hand_loop():
    logits, labels = _data(n=300, c=4, seed=1)
    probs = torch.softmax(logits, -1).numpy()
    y = labels.numpy()
    n, c = probs.shape
    edges = np.linspace(0, 1, 11)
    total = 0.0
    for k in range(c):
        for b in range(10):
            lo, hi = edges[b], edges[b + 1]
            sel = np.array([(lo < x <= hi) or (b == 0 and x == 0) for x in probs[:, k]])
            if sel.any():
                total += sel.sum() / n * abs(probs[sel, k].mean() - (y[sel] == k).mean())
    assert K.classwise_ece(torch.from_numpy(probs), labels, 10) == pytest.approx(total / c, rel=1e-10)


def test_adaptive_ece_uses_equal_mass_bins():
    logits, labels = _data(n=450, seed=2)
    probs = torch.softmax(logits, -1)
    conf = probs.max(-1).values.numpy()
    edges = np.quantile(conf, np.linspace(0, 1, 16))
    edges[0], edges[-1] = 0.0, 1.0
    bins = _top_label_bins_by_hand(probs, labels, 15, edges)
    assert max(k for *_, k in bins) - min(k for *_, k in bins) <= 2                    # equal mass
    ref = sum(k * abs(c - a) for c, a, k in bins) / sum(k for *_, k in bins)
    assert K.adaptive_ece(probs, labels, 15) == pytest.approx(ref, rel=1e-10)


def test_debiased_l2_matches_the_formula_and_removes_the_bias():
    logits, labels = _data(n=300, seed=3)
    probs = torch.softmax(logits, -1)
    conf = probs.max(-1).values.numpy()
    edges = np.quantile(conf, np.linspace(0, 1, 11))
    edges[0], edges[-1] = 0.0, 1.0
    bins = _top_label_bins_by_hand(probs, labels, 10, edges)
    n = sum(k for *_, k in bins)
    est = sum(k / n * ((c - a) ** 2 - a * (1 - a) / (k - 1)) for c, a, k in bins if k >= 2)
    assert K.debiased_l2_calibration_error(probs, labels, 10) == pytest.approx(math.sqrt(max(est, 0)), rel=1e-10)
    # A perfectly calibrated predictor (labels drawn from its own probabilities): the plug-in squared
    # L2 error is positive from sampling noise alone; the debiased one is far closer to 0 on average.
    g = torch.Generator().manual_seed(4)
    plug, deb = [], []
    for _ in range(30):
        p = torch.softmax(2 * torch.randn(1000, 3, generator=g, dtype=torch.float64), -1)
        y = torch.multinomial(p, 1, generator=g).squeeze(1)     # the top label is right w.p. max p
        plug.append(K.rms_calibration_error(p, y, 10, binning="mass") ** 2)
        deb.append(K.debiased_l2_calibration_error(p, y, 10) ** 2)
    assert np.mean(deb) < 0.5 * np.mean(plug)


def test_bootstrap_interval_is_seeded_and_has_the_binomial_width():
    g = torch.Generator().manual_seed(5)
    n = 400
    labels = torch.zeros(n, dtype=torch.long)
    correct = torch.rand(n, generator=g) < 0.7
    logits = torch.stack([correct.double(), (~correct).double()], 1)           # argmax = 0 iff correct
    acc = lambda z, y: float((z.argmax(-1) == y).double().mean())             # noqa: E731
    a = K.bootstrap_interval(acc, logits, labels, n_boot=400, seed=1)
    b = K.bootstrap_interval(acc, logits, labels, n_boot=400, seed=1)
    assert a == b
    p = acc(logits, labels)
    assert a[0] < p < a[1]
    expected = 2 * 1.96 * math.sqrt(p * (1 - p) / n)                            # normal approximation
    assert (a[1] - a[0]) == pytest.approx(expected, rel=0.2)
    two = K.bootstrap_mean_interval(acc, [(logits, labels), (logits, labels)], n_boot=400, seed=1)
    assert two[0] < p < two[1] and (two[1] - two[0]) < (a[1] - a[0])            # averaging two halves the variance
    with pytest.raises(ConfigError, match="n_boot"):
        K.bootstrap_interval(acc, logits, labels, n_boot=2)


def test_temperature_fit_is_the_nll_minimum_and_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(6)
    z = 4 * torch.randn(3000, 6, generator=g, dtype=torch.float64)
    t_true = 2.5
    y = torch.multinomial(torch.softmax(z / t_true, -1), 1, generator=g).squeeze(1)
    fit = K.fit_temperature(z, y)
    assert fit["temperature"] == pytest.approx(t_true, rel=0.08)
    assert fit["nll_after"] <= fit["nll_before"]
    grid = np.exp(np.linspace(np.log(0.2), np.log(20), 2001))                   # brute force, float64
    nlls = [K.nll_at(z, y, t) for t in grid]
    assert fit["nll_after"] <= min(nlls) + 1e-9
    assert abs(math.log(fit["temperature"]) - math.log(grid[int(np.argmin(nlls))])) < 0.01
    assert K.fit_temperature(z, y) == fit                                      # deterministic


def test_temperature_fit_never_raises_the_nll_and_flags_the_bound():
    z = torch.tensor([[5.0, 0.0]] * 30, dtype=torch.float64)
    y = torch.zeros(30, dtype=torch.long)
    y[0] = 1                                                                   # one error: a finite optimum
    fit = K.fit_temperature(z, y)
    assert fit["nll_after"] <= fit["nll_before"] and not fit["at_bound"]
    # every image right with a margin: the NLL falls all the way to T -> 0, so the fit stops at
    # the bracket's end and says so
    y_right = torch.cat([torch.zeros(15), torch.ones(15)]).long()
    z_right = torch.where(y_right.view(-1, 1) == torch.arange(2), 5.0, 0.0).double()
    all_right = K.fit_temperature(z_right, y_right)
    assert all_right["at_bound"] and all_right["temperature"] < 0.01
    assert all_right["nll_after"] <= all_right["nll_before"]


@pytest.mark.parametrize("case, exc, match", [
    ("one_class", ConfigError, "one class"),
    ("few", ConfigError, "at least"),
    ("nan", NonFiniteError, "NaN"),
    ("single_label", ConfigError, "single class"),
])
def test_temperature_fit_refuses_bad_calibration_sets(case, exc, match):
    z, y = _data(n=50, c=3, seed=7)
    if case == "one_class":
        z, y = z[:, :1], torch.zeros(50, dtype=torch.long)
    elif case == "few":
        z, y = z[:5], y[:5]
    elif case == "nan":
        z = z.clone()
        z[3, 1] = float("nan")
    else:
        y = torch.ones(50, dtype=torch.long)
    with pytest.raises(exc, match=match):
        K.fit_temperature(z, y)
