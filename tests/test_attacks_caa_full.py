"""The full CAA (caa.variant=full and any composite): its semantic operations against independent
references (colorsys in float64, torchvision's rotate, kornia's formulas), the attack against a
transcription of the authors' evaluation loop (IBM/composite-adv@3ade39a composite_attack.py,
mode='eval'), and the attack contract's invariants."""
import colorsys
import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from torchvision.transforms import InterpolationMode

from ucat.attacks import create_attack
from ucat.attacks import semantic as S
from ucat.attacks.caa_full import CompositeSpec, composite_attack, replay
from ucat.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = dict(hue_range=0.15, saturation_range=0.1, rotation_range=3.0, brightness_range=0.03, contrast_range=0.1)
TINY = {k: 0.3 * v for k, v in SMALL.items()}           # weak enough that some images survive every pass


def test_hue_and_saturation_match_colorsys():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 4, 6, generator=g, dtype=torch.float64)
    x[0, :, 0, 0] = 0.4                                            # grey: hue undefined, saturation 0
    x[1, :, 0, 0] = torch.tensor([0.9, 0.1, 0.95])                 # near the red/magenta wrap
    hue, sat = torch.tensor([1.3, -2.9], dtype=torch.float64), torch.tensor([0.75, 1.6], dtype=torch.float64)
    out_h, out_s = S.adjust_hue(x, hue), S.adjust_saturation(x, sat)
    for b in range(2):
        for i in range(4):
            for j in range(6):
                h, s, v = colorsys.rgb_to_hsv(*x[b, :, i, j].tolist())
                ref_h = colorsys.hsv_to_rgb((h + hue[b].item() / (2 * math.pi)) % 1.0, s, v)
                ref_s = colorsys.hsv_to_rgb(h, min(max(s * sat[b].item(), 0.0), 1.0), v)
                assert out_h[b, :, i, j].tolist() == pytest.approx(ref_h, abs=1e-7)
                assert out_s[b, :, i, j].tolist() == pytest.approx(ref_s, abs=1e-7)
    assert torch.allclose(S.hsv_to_rgb(S.rgb_to_hsv(x)), x, atol=1e-7)


@pytest.mark.parametrize("shape", [(3, 3, 32, 32), (3, 3, 9, 14)])
def test_rotation_matches_torchvision_bilinear_zero_fill(shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(1))
    angle = torch.tensor([7.5, -10.0, 0.0])
    ours = S.rotate(x, angle)
    ref = torch.stack([TF.rotate(x[k], float(angle[k]), interpolation=InterpolationMode.BILINEAR) for k in range(3)])
    assert (ours - ref).abs().max() < 1e-5
    assert torch.allclose(ours[2], x[2], atol=1e-5)
    # a quarter turn of a square image is an exact pixel permutation, counter-clockwise
    sq = torch.rand(1, 3, 5, 5, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(S.rotate(sq, torch.tensor([90.0])), torch.rot90(sq, 1, dims=(2, 3)), atol=1e-5)


def test_brightness_contrast_are_kornias_additive_and_multiplicative_forms():
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    b, c = torch.tensor([0.3, -0.2], dtype=torch.float64), torch.tensor([1.4, 0.6], dtype=torch.float64)
    assert torch.equal(S.adjust_brightness(x, b), (x + b.view(-1, 1, 1, 1)).clamp(0, 1))
    assert torch.equal(S.adjust_contrast(x, c), (x * c.view(-1, 1, 1, 1)).clamp(0, 1))
    # torchvision's contrast blends with the mean grey level, a different operation
    assert not torch.allclose(TF.adjust_contrast(x[0].float(), 0.6), S.adjust_contrast(x, c)[1].float(), atol=1e-3)


@pytest.mark.parametrize("name", ["hue", "saturation", "rotation", "brightness", "contrast"])
def test_operations_are_differentiable_in_their_parameter(name):
    x = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 0.8 + 0.1
    start = {"hue": [0.4, -1.1], "saturation": [0.9, 1.1], "rotation": [4.0, -6.0],
             "brightness": [0.05, -0.04], "contrast": [0.9, 1.05]}[name]
    p = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: S.OPERATIONS[name](x, v), (p,), eps=1e-6, atol=1e-4)


class _OfficialCAA:
    """CompositeAttack(mode='eval') of IBM/composite-adv@3ade39a composite_attack.py, transcribed:
    ucat's semantic operations stand in for kornia's (not installed), the eps pool is Python
    floats, and the unused ``linf_space`` draw (96) is left out."""

    def __init__(self, model, enabled_attack, pool, inner_iter_num, order_schedule, iter_num=5, start_num=1):
        self.model, self.fixed_order = model, enabled_attack
        self.enabled_attack = tuple(sorted(enabled_attack))
        self.seq_num = len(enabled_attack)
        self.attack_pool_base = (S.adjust_hue, S.adjust_saturation, S.rotate, S.adjust_brightness, S.adjust_contrast)
        self.identity = (0.0, 1.0, 0.0, 0.0, 1.0)
        self.linf_idx = self.enabled_attack.index(5) if 5 in self.enabled_attack else None
        self.eps_pool, self.order_schedule = pool, order_schedule
        self.start_num, self.inner_iter_num = start_num, inner_iter_num
        self.iter_num = iter_num if order_schedule == "scheduled" else 1
        self.is_scheduling = False
        self.step_size_pool = [2.5 * ((e[1] - e[0]) / 2) / inner_iter_num for e in pool]
        self.curr_dsm = self.curr_seq = None

    def attack(self, idx, data, labels, adv_val=None):
        a = self.enabled_attack[idx]
        if a == 5:
            return self.caa_linf(data, labels)
        param = adv_val.detach().clone()
        param[self.is_attacked] = self.identity[a]
        return self._comp_pgd(data.detach().requires_grad_(), labels, a, param.requires_grad_(), self.is_attacked.clone())

    def _comp_pgd(self, data, labels, attack_idx, attack_parameter, ori_is_attacked):
        adv_data = self.attack_pool_base[attack_idx](data, attack_parameter)
        for _ in range(self.inner_iter_num):
            outputs = self.model(adv_data)
            if not self.is_scheduling:
                self.is_attacked = torch.logical_or(ori_is_attacked, outputs.max(1)[1] != labels)
            _grad = torch.autograd.grad(F.cross_entropy(outputs, labels), attack_parameter)[0]
            if not self.is_scheduling:
                _grad[self.is_attacked] = 0
            attack_parameter = torch.clamp(attack_parameter + torch.sign(_grad) * self.step_size_pool[attack_idx],
                                           *self.eps_pool[attack_idx]).detach().requires_grad_()
            adv_data = self.attack_pool_base[attack_idx](data, attack_parameter)
        return adv_data, attack_parameter

    def caa_linf(self, data, labels):
        sur_data, adv_data = data.detach(), data.detach().requires_grad_()
        ori_is_attacked = self.is_attacked.clone()
        for _ in range(self.inner_iter_num):
            outputs = self.model(adv_data)
            if not self.is_scheduling:
                self.is_attacked = torch.logical_or(ori_is_attacked, outputs.max(1)[1] != labels)
            _grad = torch.autograd.grad(F.cross_entropy(outputs, labels), adv_data)[0]
            if not self.is_scheduling:
                _grad[self.is_attacked] = 0
            adv_data = adv_data + self.step_size_pool[5] * torch.sign(_grad)
            eta = torch.clamp(adv_data - sur_data, *self.eps_pool[5])
            adv_data = torch.clamp(sur_data + eta, 0., 1.).detach_().requires_grad_()
        return adv_data

    def update_attack_order(self, images, labels, adv_val):
        def hungarian(m):
            sol = torch.tensor([-i for i in range(1, m.shape[0] + 1)], dtype=torch.int32)
            for i in range(m.shape[0]):
                topk = 1
                sol[i] = torch.topk(m[i], topk)[1][topk - 1]
                while sol.shape != torch.unique(sol).shape:
                    topk += 1
                    sol[i] = torch.topk(m[i], topk)[1][topk - 1]
            return sol

        def sinkhorn_normalization(d, n_iters=20):
            for _ in range(n_iters):
                d /= d.sum(dim=0, keepdim=True)
                d /= d.sum(dim=1, keepdim=True)
            return d

        if self.order_schedule == "fixed":
            if self.curr_seq is None:
                self.curr_seq = torch.tensor([self.enabled_attack.index(i) for i in self.fixed_order])
            return
        if self.order_schedule == "random":
            self.curr_seq = torch.randperm(self.seq_num)
            return
        if self.curr_dsm is None:
            self.curr_dsm = sinkhorn_normalization(torch.rand((self.seq_num, self.seq_num)))
            self.curr_seq = hungarian(self.curr_dsm)
        self.curr_dsm = self.curr_dsm.detach().requires_grad_()
        adv_img = images.clone().detach().requires_grad_()
        original_iter_num, self.inner_iter_num, self.is_scheduling = self.inner_iter_num, 3, True
        for tdx in range(self.seq_num):
            prev_img = adv_img.clone()
            adv_img = torch.zeros_like(adv_img)
            for idx in range(self.seq_num):
                out = self.attack(idx, prev_img, labels, adv_val[idx])
                out = out if idx == self.linf_idx else out[0]
                adv_img = adv_img + self.curr_dsm[tdx][idx] * out
        self.is_scheduling, self.inner_iter_num = False, original_iter_num
        dsm_grad = torch.autograd.grad(F.cross_entropy(self.model(adv_img), labels), self.curr_dsm)[0]
        prev_seq, dsm_noise = self.curr_seq.clone(), torch.zeros_like(self.curr_dsm)
        while torch.equal(prev_seq, self.curr_seq):
            self.curr_dsm = sinkhorn_normalization(torch.exp(self.curr_dsm + dsm_grad + dsm_noise).detach())
            self.curr_seq = hungarian(self.curr_dsm.detach())
            dsm_noise = (torch.randn_like(self.curr_dsm) + 1) * 2

    def __call__(self, images, labels):
        b = images.shape[0]
        spaces = [torch.rand((self.start_num, b)) * (p[1] - p[0]) + p[0] for p in self.eps_pool[:5]]
        adv_val_space = [spaces[i] if i < 5 else None for i in self.enabled_attack]
        self.is_attacked = torch.zeros(b).bool()
        adv_img = images.detach().clone()
        for i in range(self.start_num):
            adv_val = [None if v is None else v[i] for v in adv_val_space]
            for _ in range(self.iter_num):
                self.update_attack_order(images, labels, adv_val)
                adv_img = adv_img.detach().clone()
                not_attacked = torch.logical_not(self.is_attacked)
                adv_img[not_attacked] = images[not_attacked].clone()
                for tdx in range(self.seq_num):
                    idx = int(self.curr_seq[tdx])
                    if idx == self.linf_idx:
                        adv_img = self.attack(idx, adv_img, labels)
                    else:
                        adv_img, adv_val[idx] = self.attack(idx, adv_img, labels, adv_val[idx])
                self.is_attacked = torch.logical_or(self.is_attacked, self.model(adv_img).max(1)[1] != labels)
                if self.is_attacked.sum() == b:
                    break
        return adv_img.detach()


def _pool(eps):
    ranges = {**S.DEFAULT_RANGES}
    for name in S.SEMANTIC:
        w = TINY[f"{name}_range"]
        ranges[name] = (S.IDENTITY[name] - w, S.IDENTITY[name] + w)
    return [ranges[n] for n in S.SEMANTIC] + [(-eps, eps)]


@pytest.mark.parametrize("order,enabled", [("fixed", (4, 0, 5, 2, 1, 3)), ("scheduled", (0, 1, 2, 3, 4, 5)),
                                           ("random", (0, 2, 5))])
def test_full_caa_equals_a_transcription_of_the_authors_loop(spread_classifier, spread_batch, order, enabled):
    x, y = spread_batch
    eps, steps = 0.15 / 255, 3
    names = ",".join(S.COMPONENTS[i] for i in enabled)
    attack = create_attack("caa", eps=eps, step_size=1 / 255, steps=steps, enabled=names, order=order,
                           schedule_iters=2, linf_step_from_eps=True, **TINY)
    torch.manual_seed(7)
    ours = attack(spread_classifier, x, y)
    torch.manual_seed(7)
    ref = _OfficialCAA(spread_classifier, enabled, _pool(eps), steps, order, iter_num=2)(x, y)
    assert (ours - ref).abs().max() < 1e-4
    with torch.no_grad():
        fooled = spread_classifier(ours).argmax(-1) != y
    assert 0 < int(fooled.sum()) < len(y)                  # the early stop and the passes both matter here
    assert torch.equal(fooled, spread_classifier(ref).argmax(-1) != y)


@pytest.mark.parametrize("opts", [dict(variant="full"), dict(variant="full", order="random", **SMALL),
                                  dict(enabled="rotation,linf,hue", order="fixed", starts=2, **SMALL)])
def test_contract_budget_replay_and_determinism(spread_classifier, spread_batch, opts):
    x, y = spread_batch
    eps = 1 / 255
    attack = create_attack("caa", eps=eps, step_size=1 / 255, steps=4, schedule_iters=2, **opts)
    assert torch.equal(create_attack("caa", eps=0.0, step_size=1 / 255, steps=4, **opts)(spread_classifier, x, y), x)
    torch.manual_seed(11)
    adv = attack(spread_classifier, x, y)
    trace = attack.last_trace
    torch.manual_seed(11)
    assert torch.equal(attack(spread_classifier, x, y), adv)
    assert adv.shape == x.shape and adv.dtype == torch.float32 and adv.min() >= 0 and adv.max() <= 1
    assert trace["linf"].abs().max() <= eps + 1e-6
    for name, values in trace["values"].items():
        lo, hi = attack.spec.ranges[name]
        assert bool(((values >= lo - 1e-6) & (values <= hi + 1e-6)).all()), name
    assert (replay(x, trace) - adv).abs().max() < 1e-5
    with torch.no_grad():
        clean = (spread_classifier(x).argmax(-1) == y).float().mean()
        robust = (spread_classifier(adv).argmax(-1) == y).float().mean()
    assert robust <= clean
    cfg = attack.config()
    assert cfg["enabled"] == list(attack.components) and cfg["order"] == attack.order


def test_zero_ranges_leave_the_image_unchanged_and_misclassified_clean_images_stay(spread_classifier, spread_batch):
    x, y = spread_batch
    zero = {k: 0.0 for k in SMALL}
    attack = create_attack("caa", eps=2 / 255, step_size=1 / 255, steps=3, enabled="hue,saturation,rotation,"
                           "brightness,contrast", order="scheduled", schedule_iters=2, **zero)
    assert torch.equal(attack(spread_classifier, x, y), x)
    wrong = (y + 1) % 5                                     # every clean image misclassified
    adv = create_attack("caa", eps=2 / 255, step_size=1 / 255, steps=3, variant="full")(spread_classifier, x, wrong)
    with torch.no_grad():
        assert bool((spread_classifier(adv).argmax(-1) != wrong).all())


def test_the_linf_component_of_the_engine_is_the_paper_variant(spread_classifier, spread_batch):
    x, y = spread_batch
    paper = create_attack("caa", eps=2 / 255, step_size=1 / 255, steps=20)
    assert paper.spec is None and paper.config()["variant"] == "ucat"
    spec = CompositeSpec(("linf",), "fixed", {**S.DEFAULT_RANGES, "linf": (-2 / 255, 2 / 255)}, 20, paper.step_size)
    adv, trace, _ = composite_attack(spread_classifier, x, y, spec)
    assert torch.equal(adv, paper(spread_classifier, x, y))
    full = create_attack("caa", eps=2 / 255, step_size=1 / 255, steps=10, variant="full")
    assert full.components == S.COMPONENTS and full.order == "scheduled" and full.spec.schedule_iters == 5
    assert full.step_size == pytest.approx(2.5 * (2 / 255) / 10)                 # the authors' rule with this eps
    assert full.spec.ranges["hue"] == pytest.approx((-math.pi, math.pi)) and full.spec.ranges["rotation"] == (-10, 10)


class _OneClass(torch.nn.Module):
    num_classes = 1

    def forward(self, x):
        return x.flatten(1).sum(1, keepdim=True)


@pytest.mark.parametrize("opts,match", [(dict(variant="scheduled"), "caa.variant"), (dict(order="sorted"), "caa.order"),
                                        (dict(enabled="hue,blur"), "caa.enabled"), (dict(enabled="hue,hue"), "caa.enabled"),
                                        (dict(rotation_range=-1.0), "caa.rotation_range"),
                                        (dict(saturation_range=1.5), "caa.saturation_range"),
                                        (dict(schedule_iters=0), "caa.schedule_iters"), (dict(hue_range="big"), "number")])
def test_bad_options_are_one_clear_error(opts, match):
    with pytest.raises(ConfigError, match=match):
        create_attack("caa", eps=1 / 255, step_size=1 / 255, steps=5, **opts)


def test_fewer_than_two_classes_is_one_clear_error():
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ConfigError, match="at least 2 classes"):
        create_attack("caa", eps=1 / 255, step_size=1 / 255, steps=2, variant="full")(_OneClass(), x, torch.zeros(2).long())


def test_ucat_eval_runs_both_new_variants_on_the_world_model(tmp_path):
    import json

    from ucat.eval import EvalConfig, ModelSpec, run_eval

    cfg = EvalConfig(models=[ModelSpec("m", "ucat-world")], datasets=["world-shape"], attacks=["caa", "a3"], eps=[4.0],
                     steps=2, n_samples=16, out=str(tmp_path), plots=False, progress=False,
                     attack_options={"caa": {"variant": "full"}, "a3": {"variant": "original"}})
    results = {r["attack"]: r for r in run_eval(cfg)}
    for name in ("caa", "a3"):
        assert results[name]["adv"]["accuracy"] <= results[name]["clean"]["accuracy"]
        saved = json.loads((tmp_path / "m" / "world-shape" / f"{name}-eps4.json").read_text())
        assert saved["attack_config"]["variant"] == {"caa": "full", "a3": "original"}[name]
