"""Named protocols: consistent with ucat's registries, every setting sourced, defaults are EvalConfig fields."""
import dataclasses
import re

import pytest

from ucat.attacks import ATTACKS, create_attack
from ucat.data import DATASETS, expand_datasets
from ucat.protocols import DEFAULT_KEYS, PROTOCOLS, get_protocol, list_protocols, protocol_defaults
from ucat.uncertainty import ALPHA_FORMS

try:
    from ucat.eval.config import CLASSNAMES, INTERPOLATIONS, EvalConfig
except ImportError:  # pragma: no cover - before the eval package split
    from ucat.eval import EvalConfig
    CLASSNAMES, INTERPOLATIONS = ("official", "clip"), ("bilinear", "bicubic")

NAMES = ["quick", "ucat-paper", "robustvlm"]
#: datasets a protocol names that ucat's registry may still lack (added with the ImageNet variants)
PENDING = {"imagenet-r", "imagenet-sketch"}
FILE_LINE = re.compile(r"[\w/.-]+\.(py|sh|txt|md|json):\d+|Table \d+")


def test_the_protocols_are_registered():
    assert set(NAMES) <= set(list_protocols())
    for name in NAMES:
        assert get_protocol(name).name == name


def test_unknown_protocol_is_a_key_error_naming_the_known_ones():
    with pytest.raises(KeyError) as e:
        get_protocol("ucat-papr")
    assert all(name in str(e.value) for name in NAMES)
    with pytest.raises(KeyError, match="known protocols"):
        protocol_defaults("nope")


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_eval_config_fields_and_build_one(name):
    fields = {f.name for f in dataclasses.fields(EvalConfig)}
    d = protocol_defaults(name)
    assert tuple(d) == DEFAULT_KEYS and set(d) <= fields
    cfg = EvalConfig(**d)
    assert cfg.datasets == list(get_protocol(name).datasets) and cfg.eps == [float(e) for e in get_protocol(name).eps]


def test_defaults_are_fresh_copies():
    d = protocol_defaults("ucat-paper")
    d["datasets"].append("x")
    d["attack_options"]["cw"]["kappa"] = 0.0
    again = protocol_defaults("ucat-paper")
    assert "x" not in again["datasets"] and again["attack_options"]["cw"]["kappa"] == 50.0


@pytest.mark.parametrize("name", NAMES)
def test_settings_are_valid_for_ucat(name):
    p = get_protocol(name)
    assert p.classnames in CLASSNAMES and p.interpolation in INTERPOLATIONS
    assert p.uncertainty_alpha in ALPHA_FORMS and p.templates in ("paper", "ensemble")
    assert p.steps >= 1 and p.restarts >= 1 and all(e > 0 for e in p.eps)
    assert set(p.attack_options) <= set(p.attacks)
    for attack in p.attacks:                    # each attack builds with the protocol's options
        built = create_attack(attack, eps=p.eps[0] / 255, step_size=(p.step_size or p.eps[0]) / 255,
                              steps=p.steps, **p.attack_options.get(attack, {}))
        assert attack in ATTACKS and built.name == attack


@pytest.mark.parametrize("name", NAMES)
def test_datasets_exist_in_the_registry(name):
    wanted = expand_datasets(list(get_protocol(name).datasets))
    missing = [d for d in wanted if d not in DATASETS]
    assert set(missing) <= PENDING, missing
    assert len(set(wanted)) == len(wanted)


def test_ucat_paper_is_the_official_single_label_evaluation():
    p = get_protocol("ucat-paper")
    assert set(p.datasets) == {DATASETS._key(d) for d in expand_datasets(["zs16"])}
    assert len(p.datasets) == 16 and p.datasets[:5] == ("tinyimagenet", "cifar10", "cifar100", "stl10", "sun397")
    assert p.attacks == ("pgd", "cw", "aa-paper") and p.eps == (1.0,)
    assert (p.steps, p.step_size, p.restarts, p.n_samples) == (100, 1.0, 1, None)
    assert p.attack_options["cw"] == {"random_start": True, "kappa": 50.0, "kappa_scale": None}
    assert (p.classnames, p.templates, p.interpolation, p.uncertainty_alpha) == \
        ("official", "paper", "bilinear", "official")
    assert ATTACKS.get("aa-paper").attacks_to_run == ["apgd-ce", "apgd-dlr"]


def test_robustvlm_is_fares_clip_benchmark_run():
    p = get_protocol("robustvlm")
    assert p.attacks == ("aa-robustvlm",) and p.eps == (2.0, 4.0) and p.n_samples == 1000
    assert (p.classnames, p.templates, p.interpolation) == ("clip", "ensemble", "bicubic")
    assert {"imagenet-r", "imagenet-sketch", "imagenet", "pcam"} <= set(p.datasets) and len(p.datasets) == 14
    aa = ATTACKS.get("aa-robustvlm")
    assert aa.attacks_to_run == ["apgd-ce", "apgd-t"] and (aa.apgd_restarts, aa.apgd_t_restarts) == (5, 1)


def test_quick_is_the_documented_first_look():
    p = get_protocol("quick")
    assert not p.published
    assert (p.datasets, p.attacks, p.eps, p.steps, p.step_size, p.restarts) == \
        (("world-suite",), ("pgd",), (1.0,), 10, 1.0, 1)
    assert (p.classnames, p.templates, p.interpolation, p.uncertainty_alpha) == \
        ("official", "paper", "bilinear", "official")


@pytest.mark.parametrize("name", NAMES)
def test_every_setting_has_a_source(name):
    p = get_protocol(name)
    assert set(DEFAULT_KEYS) <= set(p.sources), set(DEFAULT_KEYS) - set(p.sources)
    if p.published:
        assert {"splits", "resize", "precision", "aa_composition", "seed"} <= set(p.sources)
        cited = [k for k, v in p.sources.items() if FILE_LINE.search(v)]
        assert len(cited) >= len(p.sources) - 1, set(p.sources) - set(cited)   # at most one "not used"
        assert p.differences and all(":" in d for d in p.differences)


def test_docs_give_every_protocol_and_setting():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "protocols.md").read_text(encoding="utf-8")
    for name in NAMES:
        assert f"`{name}`" in text
    for name in PROTOCOLS.names():
        for key in get_protocol(name).sources:
            assert f"`{key}`" in text, (name, key)
