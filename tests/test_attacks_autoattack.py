"""The AutoAttack adapter: pyautoattack's schedule for any n_iter, restarts, the defined subset below 4 classes."""
import pytest
import torch
import torch.nn.functional as F
from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

from ucat.attacks import MIN_CLASSES, create_attack
from ucat.attacks.autoattack import _Logits
from ucat.errors import ConfigError

VARIANTS = ["aa-paper", "aa-standard", "aa-robustvlm"]


def _classifier_with(tiny_bundle, n_classes, seed, n=6):
    """A zero-shot head of ``n_classes`` tiny-CLIP image embeddings; labels = clean predictions."""
    from ucat.models import ZeroShotClassifier

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head = F.normalize(tiny_bundle.encoder(torch.rand(n_classes, 3, 32, 32, generator=g)), dim=-1)
    clf = ZeroShotClassifier(tiny_bundle.encoder, head, 100.0)
    x = torch.rand(n, 3, 32, 32, generator=g)
    with torch.no_grad():
        y = clf(x).argmax(-1)
    return clf, x, y


SCHEDULE = ("n_iter", "n_iter_orig", "n_iter_2", "n_iter_min", "size_decr")


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("n_iter", [10, 37, 100])
def test_any_n_iter_gets_the_schedule_pyautoattack_builds_for_it(tiny_bundle, name, n_iter):
    clf, _, _ = _classifier_with(tiny_bundle, 5, seed=0)
    model = _Logits(clf)
    aa = create_attack(name, eps=1 / 255, n_iter=n_iter).build(model, torch.device("cpu"), n_classes=5)
    fresh = APGDAttack(model, n_iter=n_iter, eps=1 / 255)
    fresh_t = APGDAttack_targeted(model, n_iter=n_iter, eps=1 / 255)
    for key in SCHEDULE:
        assert getattr(aa.apgd, key) == getattr(fresh, key), key
        assert getattr(aa.apgd_targeted, key) == getattr(fresh_t, key), key
    assert aa.fab.n_iter == n_iter
    # the rest of what AutoAttack's standard version set survives the rebuild
    assert aa.apgd.eps == 1 / 255 and aa.apgd.norm == "Linf" and aa.apgd.seed == 0 and aa.apgd.thr_decr == 0.75
    assert aa.apgd_targeted.n_target_classes == 4 and aa.apgd_targeted.loss == "dlr-targeted"


def test_short_schedule_differs_from_the_100_iteration_one(tiny_bundle):
    """The bug the rebuild fixes: patched-in n_iter=10 kept n_iter_2 = 22 (> 10: the step never halves)."""
    clf, _, _ = _classifier_with(tiny_bundle, 5, seed=0)
    aa = create_attack("aa-paper", eps=1 / 255, n_iter=10).build(_Logits(clf), torch.device("cpu"), 5)
    assert (aa.apgd.n_iter_2, aa.apgd.n_iter_min, aa.apgd.size_decr) == (2, 1, 1)   # max(int(.22*10),1), ...


@pytest.mark.parametrize("name, default", [("aa-paper", (1, 1)), ("aa-standard", (1, 1)), ("aa-robustvlm", (5, 1))])
def test_restarts_map_to_apgd_restarts(tiny_bundle, name, default):
    clf, _, _ = _classifier_with(tiny_bundle, 5, seed=0)
    model, cpu = _Logits(clf), torch.device("cpu")
    aa = create_attack(name, eps=1 / 255).build(model, cpu, 5)
    assert (aa.apgd.n_restarts, aa.apgd_targeted.n_restarts) == default
    attack = create_attack(name, eps=1 / 255, restarts=3)           # was: TypeError 'restarts'
    aa = attack.build(model, cpu, 5)
    assert (aa.apgd.n_restarts, aa.apgd_targeted.n_restarts) == (3, 3)
    assert attack.config()["restarts"] == {"apgd": 3, "apgd-t": 3, "fab-t": 1, "square": 1}


def test_bad_autoattack_settings_refused_before_running():
    with pytest.raises(ConfigError, match="restarts must be >= 1"):
        create_attack("aa-standard", eps=1 / 255, restarts=0)
    with pytest.raises(ConfigError, match="n_iter must be >= 1"):
        create_attack("aa-paper", eps=1 / 255, n_iter=0)
    with pytest.raises(ConfigError, match="aa-paper.n_iter must be a number"):
        create_attack("aa-paper", eps=1 / 255, n_iter="many")
    with pytest.raises(ConfigError, match="unknown option 'kappa'.*n_iter"):
        create_attack("aa-paper", eps=1 / 255, kappa=1)


@pytest.mark.parametrize("name", VARIANTS)
def test_autoattack_many_classes_runs_everything(tiny_bundle, name):
    clf, x, y = _classifier_with(tiny_bundle, 5, seed=1)
    attack = create_attack(name, eps=2 / 255, n_iter=5, n_queries=20, restarts=2)
    for p in clf.parameters():
        p.grad = torch.ones_like(p)
    x_adv = attack(clf, x, y)
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in clf.parameters())
    assert all(p.requires_grad for p in clf.parameters())
    assert all("classes" not in n for n in attack.notes)
    assert attack.last_run == attack.attacks_to_run == attack.config()["ran"]
    assert (x_adv - x).abs().max() <= 2 / 255 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert (clf(x_adv).argmax(-1) == y).float().mean() < 1.0


@pytest.mark.parametrize("name, n_classes, expected", [
    ("aa-standard", 3, ["apgd-ce", "fab-t", "square"]),      # was: IndexError in APGD-T's targeted DLR
    ("aa-robustvlm", 3, ["apgd-ce"]),
    ("aa-paper", 3, ["apgd-ce", "apgd-dlr"]),
    ("aa-paper", 2, ["apgd-ce"]),                           # the official PCAM setting (main.py:457-461)
    ("aa-standard", 2, ["apgd-ce", "fab-t", "square"]),
])
def test_fewer_than_four_classes_run_the_defined_subset(tiny_bundle, name, n_classes, expected):
    clf, x, y = _classifier_with(tiny_bundle, n_classes, seed=2)
    attack = create_attack(name, eps=2 / 255, n_iter=5, n_queries=20)
    x_adv = attack(clf, x, y)
    assert attack.last_run == expected == attack.config()["ran"]
    assert expected == [a for a in attack.attacks_to_run if MIN_CLASSES[a] <= n_classes]
    dropped = [a for a in attack.attacks_to_run if a not in expected]
    if dropped:
        assert any(f"{n_classes} classes" in n and f"{dropped[0]} needs >= {MIN_CLASSES[dropped[0]]}" in n
                   and "+".join(expected) in n for n in attack.notes)
    else:
        assert all("classes" not in n for n in attack.notes)
    assert (x_adv - x).abs().max() <= 2 / 255 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
