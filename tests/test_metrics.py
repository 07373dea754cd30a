"""Calibration and selective-prediction metrics against hand-computed cases and scikit-learn."""
import math

import pytest
import torch

from ucat import metrics as M


def _probs(conf_and_pred, C=3):
    """Rows with top-1 confidence c on class k; the rest spread evenly."""
    rows = []
    for c, k in conf_and_pred:
        r = torch.full((C,), (1 - c) / (C - 1), dtype=torch.float64)
        r[k] = c
        rows.append(r)
    return torch.stack(rows)


def test_ece_hand_computed_with_confidence_one_and_empty_bins():
    # 4 points, 10 bins. conf 1.0 (correct) must land in the LAST bin, not a hidden 11th.
    probs = _probs([(1.0, 0), (0.95, 1), (0.55, 2), (0.55, 0)])
    labels = torch.tensor([0, 0, 2, 1])       # correct, wrong, correct, wrong
    bins = M.reliability_bins(probs, labels, n_bins=10)
    assert bins["count"][9] == 2 and bins["count"][5] == 2 and sum(bins["count"]) == 4
    assert math.isnan(bins["confidence"][0])                     # empty bin reported as NaN
    # bin 9: conf (1.0+0.95)/2=0.975, acc 0.5 ; bin 5: conf 0.55, acc 0.5
    expected = 0.5 * abs(0.975 - 0.5) + 0.5 * abs(0.55 - 0.5)
    assert M.ece(probs, labels, n_bins=10) == pytest.approx(expected, abs=1e-12)
    assert M.mce(probs, labels, n_bins=10) == pytest.approx(0.475, abs=1e-12)
    assert bins["n_bins"] == 10 and bins["binning"] == "width"


def test_bin_edges_are_right_closed():
    # confidence exactly on an edge (0.6 with 5 bins) belongs to the bin that ends there: (0.4, 0.6]
    bins = M.reliability_bins(_probs([(0.6, 0)]), torch.tensor([0]), n_bins=5)
    assert bins["count"] == [0, 0, 1, 0, 0]


def test_perfectly_calibrated_sample_has_near_zero_ece():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    conf = torch.rand(n, generator=g, dtype=torch.float64) * 0.5 + 0.5     # top-1 conf in [0.5, 1)
    correct = torch.rand(n, generator=g, dtype=torch.float64) < conf       # P(correct) = conf exactly
    probs = torch.stack([conf, 1 - conf], 1)
    labels = torch.where(correct, 0, 1)
    assert M.ece(probs, labels, n_bins=15) < 0.01
    assert M.ece(probs, labels, n_bins=15, binning="mass") < 0.01


def test_ece_matches_independent_loop_and_mass_binning_counts():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(500, 6, generator=g) * 3
    labels = torch.randint(0, 6, (500,), generator=g)
    probs = logits.softmax(-1).double()
    conf, pred = probs.max(-1)
    # independent reference: loop over (lo, hi]
    ref = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        m = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if m.any():
            ref += m.double().mean() * abs(conf[m].mean() - (pred[m] == labels[m]).double().mean())
    assert M.ece(probs, labels) == pytest.approx(float(ref), abs=1e-12)
    counts = M.reliability_bins(probs, labels, n_bins=10, binning="mass")["count"]
    assert sum(counts) == 500 and max(counts) - min(counts) <= 2


def test_nll_brier_accuracy_against_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(300, 4, generator=g) * 2
    labels = torch.randint(0, 4, (300,), generator=g)
    probs = logits.double().softmax(-1)
    assert M.nll(logits, labels) == pytest.approx(sk.log_loss(labels.numpy(), probs.numpy(), labels=[0, 1, 2, 3]), rel=1e-9)
    onehot = torch.nn.functional.one_hot(labels, 4).double()
    assert M.brier(probs, labels) == pytest.approx(float(((probs - onehot) ** 2).sum(1).mean()), rel=1e-12)
    assert M.accuracy(logits, labels) == pytest.approx(sk.accuracy_score(labels.numpy(), logits.argmax(1).numpy()))
    # binary Brier in sklearn is half of the two-class multi-class form
    p1 = probs[:, :2] / probs[:, :2].sum(1, keepdim=True)
    y2 = (labels % 2)
    assert M.brier(p1, y2) == pytest.approx(2 * sk.brier_score_loss(y2.numpy(), p1[:, 1].numpy()), rel=1e-9)


def test_auroc_against_sklearn_with_ties_and_degenerate_cases():
    sk = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(0, 5, (400,), generator=g).double()           # many ties
    errors = torch.rand(400, generator=g) < 0.3
    assert M.auroc(scores, errors) == pytest.approx(sk.roc_auc_score(errors.numpy(), scores.numpy()), abs=1e-12)
    assert math.isnan(M.auroc(scores, torch.zeros(400, dtype=torch.bool)))
    assert M.auroc(torch.tensor([0.1, 0.9]), torch.tensor([0, 1])) == 1.0


def test_risk_coverage_and_aurc():
    unc = torch.tensor([0.1, 0.2, 0.3, 0.4])
    err = torch.tensor([0, 0, 1, 1])
    rc = M.risk_coverage(unc, err)
    assert rc["coverage"] == [0.25, 0.5, 0.75, 1.0]
    assert rc["risk"] == pytest.approx([0, 0, 1 / 3, 0.5])
    assert M.aurc(unc, err) == pytest.approx((0 + 0 + 1 / 3 + 0.5) / 4)
    # an oracle ordering has lower AURC than the reversed one
    assert M.aurc(unc, err) < M.aurc(-unc, err)


def test_harmonic_mean_matches_paper_table16():
    # Table 16 averages: UCAT 54.17 / 32.20 -> H 40.39; TeCoA 43.83 / 29.86 -> 35.52; CLIP 64.45 / 3.46 -> 6.56
    assert M.harmonic_mean(54.17, 32.20) == pytest.approx(40.39, abs=0.005)
    assert M.harmonic_mean(43.83, 29.86) == pytest.approx(35.52, abs=0.005)   # TeCoA
    assert M.harmonic_mean(64.45, 3.46) == pytest.approx(6.56, abs=0.01)     # inputs are rounded
    assert M.harmonic_mean(0.0, 0.0) == 0.0


def test_calibration_report_records_bins_and_bad_shapes_fail():
    rep = M.calibration_report(torch.randn(10, 3), torch.randint(0, 3, (10,)), n_bins=5, binning="mass")
    assert rep["bins"] == {"n_bins": 5, "binning": "mass"} and rep["n"] == 10
    with pytest.raises(ValueError):
        M.ece(torch.rand(4, 3), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="binning"):
        M.ece(torch.rand(4, 3), torch.zeros(4, dtype=torch.long), binning="log")
