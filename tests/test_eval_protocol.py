"""`ucat eval --protocol`, the default step size, the uncertainty keys and alpha form, the metric table."""
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from ucat.cli import main as cli_main
from ucat.eval import report, table
from ucat.eval.results import dataset_slug


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("proto") / "colours"
    g = torch.Generator().manual_seed(0)
    for name, rgb in {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}.items():
        (root / name).mkdir(parents=True)
        for i in range(3):
            arr = (torch.tensor(rgb).view(1, 1, 3) + torch.randint(-40, 40, (32, 32, 3), generator=g)).clamp(0, 255)
            Image.fromarray(arr.to(torch.uint8).numpy()).save(root / name / f"{i}.png")
    return root


def _args(folder, out, *extra):
    return ["eval", "--model", "ucat-tiny", "--datasets", str(folder), "--device", "cpu", "--no-progress",
            "--batch-size", "5", "--out", str(out), *extra]


def test_save_logits_without_plots_on_a_fresh_folder(folder, tmp_path):
    out = tmp_path / "fresh" / "deeper"
    assert cli_main(_args(folder, out, "--attacks", "none", "--save-logits", "--no-plots")) == 0
    res_dir = out / "ucat-tiny" / dataset_slug(str(folder))
    z = np.load(res_dir / "none-eps0_logits.npz")
    assert z["clean"].shape == (9, 3) and not list(res_dir.glob("*.png"))


def test_protocol_recorded_with_overrides_and_step_one_255(folder, tmp_path):
    out = tmp_path / "p"
    assert cli_main(_args(folder, out, "--attacks", "pgd", "--eps", "2", "--steps", "2", "--no-plots")) == 0
    r = json.loads((out / "ucat-tiny" / dataset_slug(str(folder)) / "pgd-eps2.json").read_text())
    assert r["protocol"] == "quick"
    assert r["protocol_overrides"] == {"datasets": [str(folder)], "eps": [2.0], "steps": 2}
    assert r["step_size"] == 1.0                                  # 1/255 at every eps, not eps
    assert r["attack_config"]["step_size"] == pytest.approx(1 / 255)
    assert r["attack_config"]["eps"] == pytest.approx(2 / 255)


def test_unknown_protocol_is_one_line(folder, tmp_path, capsys):
    assert cli_main(_args(folder, tmp_path / "x", "--protocol", "no-such-protocol")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-protocol" in err[0]


def test_uncertainty_keys_and_official_alpha_from_saved_logits(folder, tmp_path):
    out = tmp_path / "u"
    assert cli_main(_args(folder, out, "--attacks", "none", "--save-logits", "--no-plots",
                          "--uncertainty-alpha", "official")) == 0
    res_dir = out / "ucat-tiny" / dataset_slug(str(folder))
    r = json.loads((res_dir / "none-eps0.json").read_text())
    assert r["uncertainty_alpha"] == "official" and "softplus" in r["alpha_form"]
    assert "uncertainty_alpha" not in r["protocol_overrides"]           # quick's own alpha form
    for k in ("mean_mutual_information", "mean_vacuity", "mean_aleatoric", "mean_epistemic_official",
              "auroc_one_minus_max_prob"):
        assert k in r["clean"]
    assert "mean_epistemic" not in r["clean"] and "auroc_max_prob" not in r["clean"]
    z = torch.from_numpy(np.load(res_dir / "none-eps0_logits.npz")["clean"]).double()   # (N, C)
    zs = torch.where(z > 20, z, torch.log1p(torch.exp(z)))                              # nn.Softplus()
    alpha = 1e-6 + torch.exp(zs)
    a0, C = alpha.sum(-1, keepdim=True), z.shape[1]
    au = -(alpha / a0 * (torch.digamma(alpha + 1) - torch.digamma(a0 + 1))).sum(-1) / math.log(C)
    assert r["clean"]["mean_aleatoric"] == pytest.approx(au.mean().item(), rel=1e-5)
    assert r["clean"]["mean_vacuity"] == pytest.approx((C / (a0 + C)).mean().item(), rel=1e-5)
    p = torch.softmax(z, -1)
    assert r["clean"]["mean_confidence"] == pytest.approx(p.amax(-1).mean().item(), rel=1e-5)


def _fake(model, dataset, clean, robust, ece=0.1):
    m = {"ece": ece, "mean_entropy": 0.25}
    return {"model": model, "dataset": dataset, "attack": "pgd", "eps": 1.0, "counts": {"n": 10, "n_skipped": 0},
            "clean": {**m, "accuracy": clean}, "adv": {**m, "accuracy": robust, "ece": 2 * ece},
            "sanity": {"checks": {"finite": True}}}


def test_a_new_metric_is_one_row(monkeypatch):
    extra = table.Metric("mean_answer", lambda sp: 42.0, ("clean_answer", "adv_answer"), ("Clean ans", "Adv ans"),
                         False, frozenset({"csv", "md"}))
    monkeypatch.setattr(table, "METRICS", table.METRICS + (extra,))
    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0])
    m = table.split_metrics(logits, labels, 100.0, 0.07)
    assert m["mean_answer"] == 42.0
    r = _fake("m", "d", 0.5, 0.5)
    r["clean"]["mean_answer"] = r["adv"]["mean_answer"] = 42.0
    assert "clean_answer" in report.summary_csv([r]).splitlines()[0]
    assert "| Clean ans | Adv ans |" in report.summary_table([r]) and "42.000" in report.summary_table([r])


def test_named_protocol_gives_every_default_and_records_overrides():
    import argparse

    from ucat.commands.eval import add_arguments, config_from_args
    from ucat.protocols import protocol_defaults

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = config_from_args(p.parse_args(["--protocol", "ucat-paper"]))
    for field, value in protocol_defaults("ucat-paper").items():
        assert getattr(cfg, field) == value, field
    assert cfg.protocol == "ucat-paper" and cfg.protocol_overrides == {}
    cfg = config_from_args(p.parse_args(["--protocol", "ucat-paper", "--steps", "10", "--uncertainty-alpha", "ucat",
                                         "--eps", "1"]))
    assert cfg.steps == 10 and cfg.attacks == protocol_defaults("ucat-paper")["attacks"]
    assert cfg.protocol_overrides == {"steps": 10, "uncertainty_alpha": "ucat"}   # eps 1 is the protocol's own
    # -A merges into the protocol's attack options key by key (it never drops the protocol's others)
    base = protocol_defaults("ucat-paper")["attack_options"]
    cfg = config_from_args(p.parse_args(["--protocol", "ucat-paper", "-A", "aa-paper.n_iter=5"]))
    assert cfg.attack_options["aa-paper"]["n_iter"] == 5
    for attack, opts in base.items():
        for key, value in opts.items():
            if (attack, key) != ("aa-paper", "n_iter"):
                assert cfg.attack_options[attack][key] == value, (attack, key)


def test_evalconfig_defaults_are_the_quick_protocol():
    """A Python EvalConfig() and a plain `ucat eval` compute the same results (same keys): both are `quick`."""
    from ucat.eval import EvalConfig
    from ucat.protocols import protocol_defaults

    cfg = EvalConfig()
    assert cfg.protocol == "quick"
    for field, value in protocol_defaults("quick").items():
        assert getattr(cfg, field) == value, field
