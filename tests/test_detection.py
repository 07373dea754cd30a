"""OOD detection scores against scikit-learn and hand cases; selective thresholds by brute force."""
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from ucat import detection as D
from ucat.errors import ConfigError


def _scores(seed=0, n_in=300, n_out=200, shift=1.0, ties=False):
    g = torch.Generator().manual_seed(seed)
    s_in = torch.randn(n_in, generator=g, dtype=torch.float64)
    s_out = torch.randn(n_out, generator=g, dtype=torch.float64) + shift
    if ties:
        s_in, s_out = (s_in * 4).round() / 4, (s_out * 4).round() / 4
    return s_in, s_out


@pytest.mark.parametrize("ties", [False, True])
def test_ood_scores_match_sklearn(ties):
    s_in, s_out = _scores(ties=ties)
    r = D.ood_scores(s_in, s_out)
    y = np.r_[np.zeros(len(s_in)), np.ones(len(s_out))]
    s = np.r_[s_in.numpy(), s_out.numpy()]
    assert r["auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert r["aupr"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    fpr, tpr, _ = roc_curve(y, s)
    assert r["fpr_at_95_tpr"] == pytest.approx(fpr[np.searchsorted(tpr, 0.95, side="left")], abs=1e-12)
    assert (r["n_in"], r["n_out"]) == (300, 200)


def test_ood_hand_cases_and_bad_input():
    perfect = D.ood_scores(torch.tensor([0.0, 0.1]), torch.tensor([1.0, 2.0]))
    assert perfect == {"auroc": 1.0, "aupr": 1.0, "fpr_at_95_tpr": 0.0, "n_in": 2, "n_out": 2}
    backwards = D.ood_scores(torch.tensor([1.0, 2.0]), torch.tensor([0.0, 0.1]))
    assert backwards["auroc"] == 0.0 and backwards["fpr_at_95_tpr"] == 1.0
    with pytest.raises(ConfigError, match="at least one"):
        D.ood_scores(torch.tensor([]), torch.tensor([1.0]))
    with pytest.raises(ConfigError, match="NaN"):
        D.ood_scores(torch.tensor([float("nan")]), torch.tensor([1.0]))


def test_threshold_for_risk_is_the_largest_admissible_by_brute_force():
    g = torch.Generator().manual_seed(3)
    u = torch.rand(400, generator=g, dtype=torch.float64)
    errors = torch.rand(400, generator=g, dtype=torch.float64) < u           # more uncertain, more errors
    for target in (0.05, 0.1, 0.3):
        t = D.threshold_for_risk(u, errors, target)
        best = -np.inf
        for cand in np.unique(u.numpy()):                                   # every possible threshold
            keep = u.numpy() <= cand
            if errors.numpy()[keep].mean() <= target + 1e-12:
                best = max(best, cand)
        assert t == best
        sel = D.selective_at_threshold(u, errors, t)
        assert sel["risk"] <= target + 1e-12 and 0 < sel["coverage"] <= 1
    assert D.threshold_for_risk(torch.tensor([0.1, 0.2]), torch.tensor([True, True]), 0.1) == float("-inf")
    assert D.selective_at_threshold(torch.tensor([0.1, 0.2]), torch.tensor([True, True]), float("-inf"))["coverage"] == 0
    with pytest.raises(ConfigError, match="target_risk"):
        D.threshold_for_risk(u, errors, 1.5)
