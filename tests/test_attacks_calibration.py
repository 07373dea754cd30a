"""The calibration attacks never change a predicted label and move the confidence the way they claim."""
import pytest
import torch

from ucat.attacks import create_attack

EPS = 4 / 255


def _conf(clf, x, pred):
    with torch.no_grad():
        return torch.softmax(clf(x).float(), -1).gather(1, pred.view(-1, 1)).squeeze(1)


@pytest.mark.parametrize("name", ["calib-under", "calib-over", "calib-max", "calib-random"])
def test_labels_unchanged_budget_kept(name, spread_classifier):
    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = spread_classifier(x).argmax(-1)
    labels = pred.clone()
    labels[:6] = (labels[:6] + 1) % 5                                    # 6 wrong predictions
    torch.manual_seed(0)
    adv = create_attack(name, eps=EPS, step_size=1 / 255, steps=8)(spread_classifier, x, labels)
    with torch.no_grad():
        assert torch.equal(spread_classifier(adv).argmax(-1), pred)                 # every predicted label unchanged
    assert (adv - x).abs().max() <= EPS + 1e-7 and adv.min() >= 0 and adv.max() <= 1
    before, after = _conf(spread_classifier, x, pred), _conf(spread_classifier, adv, pred)
    wrong = labels != pred
    if name == "calib-under":
        assert (after <= before + 1e-6).all() and after.mean() < before.mean()
    elif name == "calib-over":
        assert (after >= before - 1e-6).all() and after.mean() > before.mean()
    elif name == "calib-max":
        assert (after[wrong] >= before[wrong] - 1e-6).all() and (after[~wrong] <= before[~wrong] + 1e-6).all()
