"""Attack invariants on the tiny CLIP: budget, range, untouched gradients/mode, monotonicity; the PGD core
against a hand-written reference loop. AutoAttack: tests/test_attacks_autoattack.py; options: tests/test_attacks_options.py."""
import pytest
import torch
import torch.nn.functional as F

from ucat.attacks import ATTACKS, CW, PGD, PGDL2, create_attack, margin, pgd_perturb

EPS = 4 / 255


@pytest.fixture()
def batch(spread_classifier):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 32, 32, generator=g)
    with torch.no_grad():
        y = spread_classifier(x).argmax(-1)   # labels = clean predictions: every point starts correct
    assert len(set(y.tolist())) >= 3
    return x, y


def _acc(clf, x, y):
    with torch.no_grad():
        return (clf(x).argmax(-1) == y).float().mean().item()


@pytest.mark.parametrize("attack", [PGD(EPS, 1 / 255, 5), CW(EPS, 1 / 255, 5), PGD(EPS, 1 / 255, 3, restarts=2)],
                         ids=["pgd", "cw", "pgd-restarts"])
def test_linf_budget_range_and_contract(spread_classifier, batch, attack):
    x, y = batch
    clf = spread_classifier
    clf.train()  # a non-default mode must come back unchanged
    params = list(clf.parameters())
    for p in params:
        p.grad = torch.full_like(p, 0.5)
    before = [p.grad.clone() for p in params]
    grad_objs = [p.grad for p in params]
    x_adv = attack(clf, x, y)
    assert clf.training and all(m.training for m in clf.modules())
    for p, b, o in zip(params, before, grad_objs):
        assert p.grad is o and torch.equal(p.grad, b)
    assert x_adv.dtype == torch.float32 and x_adv.shape == x.shape and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert not torch.equal(x_adv, x)
    clf.eval()
    assert _acc(clf, x_adv, y) < 1.0  # something is fooled on a random tiny model


def test_none_grads_stay_none(spread_classifier, batch):
    x, y = batch
    for p in spread_classifier.parameters():
        p.grad = None
    PGD(EPS, 1 / 255, 2)(spread_classifier, x, y)
    assert all(p.grad is None for p in spread_classifier.parameters())


def test_l2_budget(spread_classifier, batch):
    x, y = batch
    eps = 0.5
    x_adv = PGDL2(eps, 0.2, 5)(spread_classifier, x, y)
    norms = (x_adv - x).flatten(1).norm(dim=1)
    assert norms.max() <= eps + 1e-5 and norms.min() > 0
    assert x_adv.min() >= 0 and x_adv.max() <= 1


@pytest.mark.parametrize("name", ["pgd", "cw", "pgd-l2"])
def test_eps_zero_is_identity(spread_classifier, batch, name):
    x, y = batch
    x_adv = create_attack(name, eps=0.0, step_size=1 / 255, steps=3)(spread_classifier, x, y)
    assert torch.equal(x_adv, x)
    assert torch.equal(pgd_perturb(lambda z: z.sum(), x, 0.0, 0.01, 3), x)


def test_more_steps_never_raise_accuracy(spread_classifier, batch):
    x, y = batch
    accs = {}
    for steps in (1, 10):
        runs = []
        for seed in range(3):
            torch.manual_seed(seed)
            runs.append(_acc(spread_classifier, PGD(2 / 255, 0.5 / 255, steps)(spread_classifier, x, y), y))
        accs[steps] = sum(runs) / len(runs)
    assert accs[10] <= accs[1]
    assert accs[1] < 1.0


def test_pgd_increases_loss(spread_classifier, batch):
    x, y = batch
    torch.manual_seed(0)
    x_adv = PGD(EPS, 1 / 255, 5, random_start=False)(spread_classifier, x, y)
    with torch.no_grad():
        assert F.cross_entropy(spread_classifier(x_adv), y) > F.cross_entropy(spread_classifier(x), y)


@pytest.mark.parametrize("kappa", [0.0, 50.0])
def test_cw_gradient_nonzero_on_correct_points(spread_classifier, batch, kappa):
    x, y = batch
    attack = CW(EPS, 1 / 255, 1, kappa=kappa)
    xr = x.clone().requires_grad_(True)
    logits = spread_classifier(xr)
    assert (logits.argmax(-1) == y).all()
    loss = attack.sample_loss(logits, y, spread_classifier).sum()
    (g,) = torch.autograd.grad(loss, [xr])
    assert (g.flatten(1).abs().sum(1) > 0).all()


def test_margin_reference_values():
    logits = torch.tensor([[3.0, 1.0, 2.0], [0.0, 5.0, 1.0]])
    assert torch.allclose(margin(logits, torch.tensor([0, 0])), torch.tensor([1.0, -5.0]))


def test_cw_kappa_rescaled_to_logit_scale(spread_classifier):
    assert CW(EPS, 1 / 255, 1).kappa_for(spread_classifier) == pytest.approx(50 * spread_classifier.logit_scale / 100)
    assert CW(EPS, 1 / 255, 1, kappa_scale=None).kappa_for(spread_classifier) == 50


@pytest.mark.parametrize("bad, match", [
    (lambda x: x.double(), "float32"),
    (lambda x: x * 2.0, r"\[0,1\]"),
    (lambda x: x[0], r"\(B, C, H, W\)"),
])
def test_bad_inputs_refused(spread_classifier, batch, bad, match):
    x, y = batch
    with pytest.raises(ValueError, match=match):
        PGD(EPS, 1 / 255, 1)(spread_classifier, bad(x), y)


def test_bad_budget_refused():
    with pytest.raises(ValueError, match="to_fraction"):
        PGD(4.0, 1.0, 10)
    with pytest.raises(ValueError, match="norm"):
        PGD(EPS, 1 / 255, 10, norm="l3")
    with pytest.raises(KeyError, match="known attacks"):
        create_attack("nope", EPS)


def test_registry_names():
    assert {"pgd", "pgd-l2", "cw"} <= set(ATTACKS.names())


def test_pgd_perturb_under_autocast_and_sum_loss(spread_classifier, batch):
    """The functional core works inside a bf16 autocast region and keeps a float32 iterate."""
    x, y = batch
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = pgd_perturb(lambda z: F.cross_entropy(spread_classifier(z).float(), y, reduction="sum"),
                            x, EPS, 1 / 255, 2)
    assert x_adv.dtype == torch.float32
    assert (x_adv - x).abs().max() <= EPS + 1e-6


# ---------------------------------------------------------------- uncertainty-targeted attack

@pytest.mark.parametrize("score", ["entropy", "max-prob", "epistemic"])
def test_uncertainty_attack_lowers_uncertainty_on_flipped_points(spread_classifier, batch, score):
    from ucat.attacks import UncertaintyAttack, uncertainty_score

    x, y = batch
    clf = spread_classifier
    torch.manual_seed(0)
    x_adv = UncertaintyAttack(8 / 255, 2 / 255, 10, score=score)(clf, x, y)
    torch.manual_seed(0)
    x_pgd = PGD(8 / 255, 2 / 255, 10)(clf, x, y)
    with torch.no_grad():
        la, lp, lc = clf(x_adv), clf(x_pgd), clf(x)
    flipped = la.argmax(-1) != y
    assert flipped.float().mean() >= 0.5
    u = lambda l: uncertainty_score(l, score, clf.logit_scale)  # noqa: E731
    # more confident than on the clean images and than plain PGD's mistakes
    assert u(la)[flipped].mean() < u(lc)[flipped].mean()
    pgd_flipped = lp.argmax(-1) != y
    assert u(la)[flipped].mean() < u(lp)[pgd_flipped].mean()
    assert (x_adv - x).abs().max() <= 8 / 255 + 1e-6


def test_uncertainty_score_reference_values():
    from ucat.attacks import uncertainty_score

    uniform = torch.zeros(1, 4)
    assert uncertainty_score(uniform, "entropy", 100.0).item() == pytest.approx(1.0, abs=1e-6)
    assert uncertainty_score(uniform, "max-prob", 100.0).item() == pytest.approx(0.75, abs=1e-6)
    sharp = torch.tensor([[100.0, 0.0, 0.0, 0.0]])
    assert uncertainty_score(sharp, "entropy", 100.0).item() < 1e-6
    with pytest.raises(ValueError, match="choose one of"):
        uncertainty_score(uniform, "variance", 100.0)


# ---------------------------------------------------------------- the PGD core against a reference

def _reference_pgd(loss, x, eps, step, steps, delta0, momentum=0.0):
    """Madry et al.'s L-inf PGD written out independently in float64: ascend sign(grad) (or FARE's
    normalized momentum v <- sign(m v + sign(g))), project on the eps-box and on [0,1]."""
    x = x.double()
    adv = (x + delta0.double()).clamp(0, 1)
    v = torch.zeros_like(x)
    for _ in range(steps):
        z = adv.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(z), [z])
        d = g.sign()
        if momentum > 0:
            v = (momentum * v + d).sign()
            d = v
        adv = torch.min(torch.max(adv + step * d, x - eps), x + eps).clamp(0, 1)
    return adv


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_pgd_core_matches_a_hand_written_loop(momentum):
    """pgd_perturb against an independent float64 loop with the same random start (a wrong sign,
    a missing projection or a momentum bug changes points by at least one step of 0.5/255)."""
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    w = torch.randn(3 * 8 * 8)
    loss = lambda z: torch.sin(3 * z.flatten(1) @ w.to(z.dtype)).sum()           # noqa: E731
    eps, step, steps = 2 / 255, 0.5 / 255, 6
    torch.manual_seed(1)
    delta0 = torch.empty_like(x).uniform_(-eps, eps)         # the random start pgd_perturb draws first
    torch.manual_seed(1)
    ours = pgd_perturb(loss, x, eps, step, steps, momentum=momentum)
    ref = _reference_pgd(loss, x, eps, step, steps, delta0, momentum)
    assert (ours.double() - ref).abs().max() < 1e-6
    assert not torch.equal(ours, (x + delta0).clamp(0, 1))    # it moved


def test_pgd_momentum_core_contract():
    """FARE's momentum variant keeps the budget and range in both norms and raises the loss."""
    torch.manual_seed(0)
    x = torch.rand(4, 3, 8, 8)
    w = torch.randn(3 * 8 * 8)
    loss = lambda z: (z.flatten(1) @ w).pow(2).sum()                   # noqa: E731
    eps = 2 / 255
    for norm in ("linf", "l2"):
        torch.manual_seed(1)
        adv = pgd_perturb(loss, x, eps, eps / 4, 5, norm=norm, momentum=0.9)
        d = (adv - x).flatten(1)
        size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
        assert torch.all(size <= eps + 1e-6) and adv.min() >= 0 and adv.max() <= 1
        assert loss(adv) > loss(x)
    with pytest.raises(ValueError, match="momentum"):
        pgd_perturb(loss, x, eps, eps, 1, momentum=1.0)


def test_pgd_attack_matches_the_reference_loop(spread_classifier, batch):
    """The PGD class (CE, sum over samples) is the same loop on the classifier's logits."""
    x, y = batch
    eps, step, steps = 2 / 255, 1 / 255, 3
    loss = lambda z: F.cross_entropy(spread_classifier(z.float()).double(), y, reduction="sum")  # noqa: E731
    torch.manual_seed(3)
    delta0 = torch.empty_like(x).uniform_(-eps, eps)
    torch.manual_seed(3)
    ours = PGD(eps, step, steps)(spread_classifier, x, y)
    ref = _reference_pgd(loss, x, eps, step, steps, delta0)
    # float32 logits may flip the sign of a near-zero gradient entry: compare all but a sliver
    assert ((ours.double() - ref).abs() > 1e-6).float().mean() < 0.01
