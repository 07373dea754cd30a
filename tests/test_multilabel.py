"""Multi-label metrics against scikit-learn and the official construction (VivienLu/UCAT
main-multilabel.py compute_multilabel_metrics, transcribed here as the reference)."""
import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score

from ucat import multilabel as ML
from ucat.errors import ConfigError


def _data(n=120, c=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = (torch.rand(n, c, generator=g) < 0.3).long()
    targets[:, 6] = 0                                       # a class never present: no AP
    scores = 2 * targets.double() + torch.randn(n, c, generator=g, dtype=torch.float64)
    return scores, targets


def _official(outputs, targets, top_k, eps=1e-12):
    """The official function's arithmetic on numpy (lines 113-206), without its batching."""
    probs, y_true = outputs.numpy(), targets.numpy().astype(np.int32)
    k = min(top_k, probs.shape[1])
    y_pred = np.zeros_like(y_true)
    np.put_along_axis(y_pred, np.argsort(-probs, axis=1)[:, :k], 1, axis=1)
    aps = [np.nan if y_true[:, c].max() == y_true[:, c].min() else average_precision_score(y_true[:, c], probs[:, c])
           for c in range(probs.shape[1])]
    tp = (y_true * y_pred).sum(); fp = ((1 - y_true) * y_pred).sum(); fn = (y_true * (1 - y_pred)).sum()  # noqa: E702
    mp, mr = tp / max(tp + fp, eps), tp / max(tp + fn, eps)
    ps, rs, fs = [], [], []
    for c in range(probs.shape[1]):
        yt, yp = y_true[:, c], y_pred[:, c]
        tpc, fpc, fnc = (yt & yp).sum(), ((1 - yt) & yp).sum(), (yt & (1 - yp)).sum()
        p, r = tpc / max(tpc + fpc, eps), tpc / max(tpc + fnc, eps)
        ps.append(p); rs.append(r); fs.append(2 * p * r / max(p + r, eps))  # noqa: E702
    return {"mAP": np.nanmean(aps), "micro_precision": mp, "micro_recall": mr,
            "micro_f1": 2 * mp * mr / max(mp + mr, eps), "macro_precision": np.mean(ps),
            "macro_recall": np.mean(rs), "macro_f1": np.mean(fs)}


@pytest.mark.parametrize("k", [3, 5])
def test_metrics_equal_the_official_construction(k):
    scores, targets = _data()
    ours, ref = ML.multilabel_metrics(scores, targets, k), _official(scores, targets, k)
    for key, v in ref.items():
        assert ours[key] == pytest.approx(float(v), abs=1e-12), key
    assert ours["n_classes_with_ap"] == 6 and ours["top_k"] == k


def test_ap_is_invariant_to_the_logit_scale_and_batch_mean_is_the_official_aggregation():
    scores, targets = _data(seed=1)
    a = ML.multilabel_metrics(scores, targets, 3)
    b = ML.multilabel_metrics(torch.sigmoid(scores / 100.0), targets, 3)
    assert a["mAP"] == pytest.approx(b["mAP"], abs=1e-12) and a["micro_f1"] == b["micro_f1"]
    bm = ML.batch_mean(lambda s, t: ML.multilabel_metrics(s, t, 3), scores, targets, 50)
    parts = [ML.multilabel_metrics(scores[i:i + 50], targets[i:i + 50], 3)["mAP"] for i in (0, 50, 100)]
    assert bm["mAP"] == pytest.approx((50 * parts[0] + 50 * parts[1] + 20 * parts[2]) / 120, abs=1e-12)
    assert bm["mAP"] != pytest.approx(a["mAP"], abs=1e-6)          # per-batch mAP is another number


def test_label_ece_by_hand_and_bad_input():
    logits = torch.tensor([[100.0, -100.0], [0.0, 50.0]])
    targets = torch.tensor([[1, 0], [1, 1]])
    p = torch.sigmoid(logits.double() / 100.0).flatten()          # 0.731, 0.269, 0.5, 0.622
    y = targets.flatten().double()
    # 15 bins: 0.269 -> bin 4, 0.5 -> bin 7, 0.622 -> bin 9, 0.731 -> bin 10: each alone
    ref = float((p - y).abs().sum() / 4)
    assert ML.label_ece(logits, targets, 100.0) == pytest.approx(ref, abs=1e-12)
    with pytest.raises(ConfigError, match="multi-hot"):
        ML.multilabel_metrics(logits, torch.tensor([0, 1]), 1)
    with pytest.raises(ConfigError, match="only 0 and 1"):
        ML.multilabel_metrics(logits, torch.tensor([[2, 0], [0, 1]]), 1)
