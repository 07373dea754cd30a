"""CAA (L-inf component), A3 and the multi-label attacks against transcriptions of the official
loops (VivienLu/UCAT composite_attack.py caa_linf, attacks.py attack_a3, attacks_multilabel.py),
and the attack contract's invariants."""
import pytest
import torch
import torch.nn.functional as F

from ucat.attacks import create_attack
from ucat.errors import ConfigError

EPS = 2 / 255


def _official_caa_linf(model, images, labels, eps, steps):
    """composite_attack.py caa_linf with step_size_pool[5] from the default ImageNet pool (4/255)."""
    step = 2.5 * ((4 / 255 - (-4 / 255)) / 2) / steps
    sur, adv = images.detach(), images.detach().requires_grad_()
    attacked = torch.zeros(images.shape[0]).bool()
    for _ in range(steps):
        out = model(adv)
        attacked = torch.logical_or(attacked, out.max(1, keepdim=True)[1].squeeze() != labels)
        grad = torch.autograd.grad(F.cross_entropy(out, labels), adv)[0]
        grad[attacked] = 0
        adv = adv + step * torch.sign(grad)
        eta = torch.clamp(adv - sur, min=-eps, max=eps)
        adv = torch.clamp(sur + eta, min=0., max=1.).detach_().requires_grad_()
    return adv.detach()


def _official_a3_one_restart(model, images, target, eps, steps, step_size):
    """attacks.py attack_a3 with num_restarts=1 (OSD keeps every sample, no ADI on restart 0)."""
    x0 = images.detach()
    delta = torch.empty_like(images).uniform_(-eps, eps)
    x = torch.clamp(x0 + delta, 0., 1.)
    alive = torch.ones(images.shape[0], dtype=torch.bool)
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        logits = model(x)
        grad = torch.autograd.grad(F.cross_entropy(logits, target).sum(), x)[0]
        succ = logits.argmax(1) != target
        update = alive & ~succ
        alive = alive & ~succ
        if update.any():
            st = torch.where(update.view(-1, 1, 1, 1), step_size * torch.sign(grad), torch.zeros_like(grad))
            x = torch.clamp(x0 + torch.clamp(x + st - x0, -eps, eps), 0., 1.)
        else:
            x = torch.clamp(x0 + torch.clamp(x - x0, -eps, eps), 0., 1.)
        if (~alive).all():
            break
    return x.detach()


def test_caa_equals_the_official_linf_component(spread_classifier, spread_batch):
    x, y = spread_batch
    ours = create_attack("caa", eps=EPS, step_size=1 / 255, steps=30)(spread_classifier, x, y)
    ref = _official_caa_linf(spread_classifier, x, y, EPS, 30)
    assert torch.allclose(ours, ref, atol=1e-7)
    assert ours is not x and (ours - x).abs().max() <= EPS + 1e-7
    assert create_attack("caa", eps=EPS, step_size=1 / 255, steps=30).step_size == pytest.approx(2.5 * 4 / 255 / 30)


def test_a3_equals_the_official_simplified_attack(spread_classifier, spread_batch):
    x, y = spread_batch
    torch.manual_seed(5)
    ours = create_attack("a3", eps=EPS, step_size=0.5 / 255, steps=20)(spread_classifier, x, y)
    torch.manual_seed(5)
    ref = _official_a3_one_restart(spread_classifier, x, y, EPS, 20, 0.5 / 255)
    assert torch.allclose(ours, ref, atol=1e-7)
    torch.manual_seed(5)
    more = create_attack("a3", eps=EPS, step_size=0.5 / 255, steps=20, restarts=3)(spread_classifier, x, y)
    with torch.no_grad():
        fooled1 = (spread_classifier(ours).argmax(-1) != y).sum()
        fooled3 = (spread_classifier(more).argmax(-1) != y).sum()
    assert fooled3 >= fooled1 and (more - x).abs().max() <= EPS + 1e-7


@pytest.mark.parametrize("name", ["caa", "a3"])
def test_contract_eps_zero_budget_and_bad_options(name, spread_classifier, spread_batch):
    x, y = spread_batch
    assert torch.equal(create_attack(name, eps=0.0, step_size=1 / 255, steps=5)(spread_classifier, x, y), x)
    adv = create_attack(name, eps=EPS, step_size=1 / 255, steps=10)(spread_classifier, x, y)
    with torch.no_grad():
        assert (spread_classifier(adv).argmax(-1) == y).float().mean() <= (spread_classifier(x).argmax(-1) == y).float().mean()
    with pytest.raises(ConfigError):
        create_attack(name, eps=EPS, step_size=1 / 255, steps=0)
    with pytest.raises(ConfigError):
        create_attack(name, eps=EPS, step_size=1 / 255, steps=5, norm="l2")


def test_multilabel_attacks_equal_the_official_losses(spread_classifier, spread_batch):
    x, _ = spread_batch
    g = torch.Generator().manual_seed(2)
    targets = (torch.rand(10, 5, generator=g) < 0.4).long()
    targets[0] = 0                                                        # an image with no positive
    with torch.no_grad():
        logits = spread_classifier(x).float()
    pgd = create_attack("pgd-bce", eps=EPS, step_size=1 / 255, steps=3)
    assert float(pgd.objective(logits, targets.float())) == pytest.approx(
        float(torch.nn.BCEWithLogitsLoss(reduction="sum")(logits, targets.float())), rel=1e-6)
    cw = create_attack("cw-ml", eps=EPS, step_size=1 / 255, steps=3)
    mask = targets.float()
    correct = (mask * logits).sum(1) / mask.sum(1).clamp(min=1.0)
    wrong = logits.masked_fill(mask.bool(), torch.finfo(logits.dtype).min).max(1).values
    assert float(cw.objective(logits, mask)) == pytest.approx(float(-torch.sum(F.relu(correct - wrong + 50))), rel=1e-6)
    for attack in (pgd, cw):
        adv = attack(spread_classifier, x, targets)
        assert (adv - x).abs().max() <= EPS + 1e-7 and adv.min() >= 0 and adv.max() <= 1
    with pytest.raises(ValueError, match="multi-hot"):
        pgd(spread_classifier, x, targets[:, 0])
