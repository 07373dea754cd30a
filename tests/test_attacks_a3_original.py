"""The authors' A3 (a3.variant=original) against transcriptions of liuye6666/adaptive_auto_attack@c3650cd
Adaptive_Auto_Attack_main.py (AAA_white_box 101-271, the outer schedule 346-436, margin_loss 66-80),
and the attack contract's invariants. A tiny linear classifier keeps the authors' ~4700-step
schedule for a robust sample fast."""
import math

import numpy as np
import pytest
import torch

from ucat.attacks import create_attack
from ucat.attacks.a3_original import REGIMES, A3Run, _uniform, margin, outer_schedule
from ucat.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")
EPS = 4 / 255


class _Linear(torch.nn.Module):
    def __init__(self, n_classes=10, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = torch.nn.Linear(3 * 6 * 6, n_classes)
        self.num_classes = n_classes

    def forward(self, x):
        return 30 * self.fc(x.flatten(1) - 0.5)


def _data(model, n=24, seed=0):
    x = torch.rand(n, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % model.num_classes                 # two images misclassified clean
    return x, y


def _official_margin(logits, y):
    T = torch.eye(logits.shape[1])[y] * 999999
    return (-logits.gather(1, y.view(-1, 1)) + logits.gather(1, (logits - T).argmax(1, keepdim=True))).squeeze(1)


def _official_white_box(model, X, y, epsilon, step_num, ADI_step_num, w_logit_dir, c_logit_dir, sorted_logits,
                        No_class, BIAS_ATK, final_bias_ODI, out_re, num_class=10):
    """AAA_white_box (101-271) with data_set='cifar10', Lnorm='Linf', MT=False, random start, cold,
    bias_ODI=True; Python's random.uniform replaced by ucat's torch draw; the shadowed ADI count left out."""
    threshold_class, k = 9, num_class / 10
    X_adv = torch.clamp(X + torch.FloatTensor(*X.shape).uniform_(-epsilon, epsilon), 0, 1.0)
    atk_filed_index = torch.ones(len(y), dtype=torch.bool)
    each_max_loss = -100000 * np.ones(X.shape[0])
    total = np.zeros((num_class, num_class + 1))
    rv = torch.FloatTensor(X_adv.shape[0], num_class).uniform_(-1.0, 1.0)
    rows, sl = torch.arange(X_adv.shape[0]), torch.as_tensor(sorted_logits)
    no_r = -2 - No_class % threshold_class
    if out_re > 1:
        if BIAS_ATK:
            rv[rows, y] = k * _uniform(-0.1, 0.5)
            rv[rows, sl[:, no_r]] = k * 0.8
        else:
            if w_logit_dir > 0 and c_logit_dir > 0:
                rv[rows, y] = k * _uniform(-0.1, 0.5)
                rv[rows, sl[:, no_r]] = k * 0.8
            if w_logit_dir < 0 and c_logit_dir > 0:
                rv[rows, y] = k * _uniform(-0.1, 0.5)
                rv[rows, sl[:, no_r]] = -k * 0.8
            if w_logit_dir < 0 and c_logit_dir < 0:
                rv[rows, y] = k * _uniform(-0.5, 0.1)
                rv[rows, sl[:, no_r]] = -k * 0.8
            if w_logit_dir >= 0 and c_logit_dir <= 0:
                rv[rows, y] = k * _uniform(-0.5, 0.1)
                rv[rows, sl[:, no_r]] = k * 0.8
        if final_bias_ODI:
            if BIAS_ATK:
                rv[rows, y] = 0.0
                rv[rows, sl[:, no_r]] = k * 0.8
            else:
                rv[rows, y] = k * _uniform(-0.8, 0.1)
                rv[rows, sl[:, -2 - No_class % 4]] = k * 0.8
    sort_rand = np.stack([rv.numpy()[i, sorted_logits[i, :]] for i in range(len(y))])
    for i in range(ADI_step_num + step_num):
        X_adv_f = X_adv[atk_filed_index].clone().requires_grad_(True)
        X_f, y_f = X[atk_filed_index], y[atk_filed_index]
        if i < ADI_step_num:
            loss = (model(X_adv_f) * rv[atk_filed_index]).sum()
        else:
            loss = _official_margin(model(X_adv_f), y_f).sum()
        loss.backward()
        if i < ADI_step_num:
            eta = epsilon * X_adv_f.grad.sign()
        else:
            min_ssize = epsilon * 0.1 if step_num <= 10 else epsilon * 0.001
            s = i - ADI_step_num
            eta = (min_ssize + (epsilon - min_ssize) * (1 + math.cos(math.pi * s / (step_num + 1))) / 2) * X_adv_f.grad.sign()
        X_adv_f = X_adv_f.detach() + eta
        X_adv_f = torch.clamp(X_f + torch.clamp(X_adv_f - X_f, -epsilon, epsilon), 0, 1.0)
        with torch.no_grad():
            output_ = model(X_adv_f)
        loss_now = _official_margin(output_, y_f).numpy()
        np_idx = atk_filed_index.numpy().copy()
        each_max_loss[np_idx] = np.where(each_max_loss[np_idx] > loss_now, each_max_loss[np_idx], loss_now)
        X_adv[atk_filed_index] = X_adv_f
        _f_index = output_.max(1)[1] == y_f
        if out_re >= 1 and int((~_f_index).sum()) > 0 and ADI_step_num > 0:
            wrong_class = output_.max(1)[1][~_f_index].numpy()
            for j in range(int((~_f_index).sum())):
                r = sort_rand[np_idx][(~_f_index).numpy()][j]
                total[0, :num_class] += r
                total[0, num_class] += 1
                atk_class = np.where(sorted_logits[np_idx][(~_f_index).numpy()][j] == wrong_class[j])[0].item()
                total[9 - atk_class, :num_class] += r
                total[9 - atk_class, num_class] += 1
        atk_filed_index[atk_filed_index.clone()] = _f_index
    return X_adv, atk_filed_index, each_max_loss, total


@pytest.mark.parametrize("out_re,bias,final,w_dir,c_dir", [(1, False, False, 0, 0), (2, False, False, 1.5, -2.0),
                                                           (3, False, False, -1.0, 3.0), (5, True, False, 1, 1),
                                                           (11, True, True, 1, 1), (10, False, True, -1, -1)])
def test_one_restart_equals_the_authors_white_box(out_re, bias, final, w_dir, c_dir):
    model = _Linear()
    x, y = _data(model)
    run = A3Run(model, x, y, 1 / 255, REGIMES["cifar10"], False, 100, 1000)
    torch.manual_seed(0)
    run.first_pass()
    run.wrong_dir, run.correct_dir = w_dir, c_dir
    idx = run.left.nonzero().squeeze(1)
    steps, adi, no_class = 12, 7, 4
    torch.manual_seed(3)
    top = run.white_box(idx, steps, adi, out_re, bias, final, no_class)
    torch.manual_seed(3)
    ref_x, ref_left, ref_top, ref_stats = _official_white_box(
        model, x[idx], y[idx], 1 / 255, steps, adi, w_dir, c_dir, run.sorted[idx].numpy(), no_class, bias, final, out_re)
    assert torch.equal(run.left[idx], ref_left)
    assert 0 < int(ref_left.sum()) < idx.numel()           # some fooled, some not: both paths exercised
    assert np.allclose(top.numpy(), ref_top, atol=1e-5)
    assert np.allclose(run.stats.numpy(), ref_stats, atol=1e-5)
    fooled = ~ref_left
    assert torch.allclose(run.best[idx][fooled], ref_x[fooled], atol=1e-6)


def _official_schedule(out_re, total_adi, restart_1, data_set):
    """346-434 (the 10% rule of 435-436 left to the caller)."""
    restart_num, alpha = 1, 1
    adi_iter_num, max_iter = (0, 8) if out_re == 0 else (7, 8)
    if out_re > 2:
        if total_adi < 0.05 * restart_1:
            steps = [(2, 0.7, 25), (3, 0.6, 30), (4, 0.5, 30), (5, 0.4, 35), (6, 0.3, 40), (7, 0.2, 45), (8, 0.1, 50)]
            for after, a, m in steps:
                if out_re > after:
                    alpha, max_iter = a, m
            if out_re > 9:
                alpha, max_iter, restart_num = 0.1, 50, 4
            if out_re > 10:
                alpha, max_iter, restart_num = 0.065, 55, 4
            if out_re > 11:
                alpha, max_iter, restart_num = 0.03, 60, (31 if data_set == "imagenet" else 50)
        else:
            cascade = [(2, 1, 5, 10, 10), (3, 1, 5, 15, 1), (4, 1, 10, 15, 1), (5, 1, 10, 10, 1), (6, 1, 15, 10, 1),
                       (7, 1, 18, 10, 1), (8, 1, 20, 10, 1), (9, 0.8, 25, 10, 5), (10, 0.5, 35, 10, 5),
                       (11, 0.5, 45, 10, 20)]
            for after, a, m, d, r in cascade:
                if out_re > after:
                    alpha, max_iter, adi_iter_num, restart_num = a, m, d, r
    alpha = max(alpha, 0.03)
    if data_set == "imagenet":
        max_iter, restart_num = max_iter + 10, restart_num + 1
    return alpha, max_iter, adi_iter_num, restart_num


@pytest.mark.parametrize("data_set", ["cifar10", "cifar100", "imagenet"])
def test_outer_schedule_equals_the_authors_cascade(data_set):
    for out_re in range(13):
        for bias in (False, True):
            ref = _official_schedule(out_re, 10 if bias else 0, 100, data_set)
            ours = outer_schedule(out_re, bias, REGIMES[data_set], data_set == "imagenet")
            assert ours == pytest.approx(ref), (out_re, bias)


def test_margin_osd_selection_and_budget():
    logits = torch.randn(7, 5, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    assert torch.allclose(margin(logits, y), _official_margin(logits, y))
    model = _Linear(5)
    x, y = _data(model, n=8)
    run = A3Run(model, x, y, EPS, REGIMES["cifar10"], False, 2, 10)
    run.left = torch.tensor([True, True, True, True, False, True, True, False])
    run.max_loss = torch.tensor([-5.0, -1.0, -3.0, -0.5, 1.0, -2.0, -100000.0, 1.0], dtype=torch.float64)
    # 6 left; keep max(2, int(6 * 0.5)) = 3 of them: the highest losses -0.5, -1, -2
    assert sorted(run.select(0.5).tolist()) == [1, 3, 5]
    assert sorted(run.select(1.0).tolist()) == [0, 1, 2, 3, 5, 6]
    assert run.steps_for(3, 1, 6, 25, 7) == 32              # the budget does not bind: max_iter + adi
    run.used = run.total_budget                              # spent: the authors' floor of 15 steps
    assert run.steps_for(3, 1, 6, 25, 7) == 15 and run.steps_for(0, 1, 6, 8, 0) == 8


def test_contract_eps_zero_budget_robust_and_determinism():
    model = _Linear()
    x, y = _data(model)
    attack = create_attack("a3", eps=EPS, step_size=1 / 255, steps=100, variant="original")
    assert torch.equal(create_attack("a3", eps=0.0, step_size=1 / 255, steps=5, variant="original")(model, x, y), x)
    torch.manual_seed(1)
    adv = attack(model, x, y)
    torch.manual_seed(1)
    assert torch.equal(attack(model, x, y), adv)
    assert adv.shape == x.shape and adv.dtype == torch.float32 and adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() <= EPS + 1e-6
    with torch.no_grad():
        fooled = model(adv).argmax(1) != y
        clean_fooled = model(x).argmax(1) != y
    assert bool(fooled[clean_fooled].all()) and torch.equal(adv[:2], x[:2])   # misclassified clean: the clean image
    assert 0 < int((~fooled).sum()) < len(y)
    torch.manual_seed(1)
    simple = create_attack("a3", eps=EPS, step_size=1 / 255, steps=100)(model, x, y)
    with torch.no_grad():
        assert int((model(simple).argmax(1) != y).sum()) <= int(fooled.sum())   # never weaker here
    cfg = attack.config()
    assert cfg["variant"] == "original" and cfg["osd_min"] == 100 and "steps" not in cfg


def test_runs_on_a_clip_classifier(spread_classifier):
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = spread_classifier(x).argmax(-1)
    torch.manual_seed(0)
    adv = create_attack("a3", eps=8 / 255, step_size=1 / 255, steps=10, variant="original")(spread_classifier, x, y)
    assert (adv - x).abs().max() <= 8 / 255 + 1e-6
    with torch.no_grad():
        assert (spread_classifier(adv).argmax(-1) == y).float().mean() <= 1.0 / 6


@pytest.mark.parametrize("opts,param,match", [(dict(variant="adaptive"), "attack_options", "a3.variant"),
                                              (dict(variant="original", osd_start=0.2), "attack_options", "a3.osd_start"),
                                              (dict(variant="original", restarts=3), "restarts", "variant=ucat only"),
                                              (dict(osd_min=10), "attack_options", "a3.osd_min"),
                                              (dict(variant="original", regime="svhn"), "attack_options", "a3.regime"),
                                              (dict(variant="original", budget=0), "attack_options", "a3.osd_min")])
def test_bad_options_are_one_clear_error(opts, param, match):
    with pytest.raises(ConfigError, match=match) as e:
        create_attack("a3", eps=EPS, step_size=1 / 255, steps=5, **opts)
    assert e.value.param == param


class _OneClass(torch.nn.Module):
    num_classes = 1

    def forward(self, x):
        return x.flatten(1).sum(1, keepdim=True)


def test_fewer_than_two_classes_is_one_clear_error():
    with pytest.raises(ConfigError, match="at least 2 classes"):
        create_attack("a3", eps=EPS, step_size=1 / 255, steps=5, variant="original")(
            _OneClass(), torch.rand(2, 3, 6, 6), torch.zeros(2).long())
