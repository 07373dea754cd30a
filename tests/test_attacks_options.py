"""Every attack checks its options when it is constructed: one clear ConfigError, before any image is attacked."""
import math

import pytest

from ucat.attacks import ATTACKS, CW, PGD, create_attack, option_parameters
from ucat.errors import ConfigError

EPS = 2 / 255
ITERATIVE = ["pgd", "pgd-l2", "cw", "uncertainty"]


def test_every_attack_lists_its_options():
    assert set(option_parameters(CW)) == {"eps", "step_size", "steps", "norm", "random_start", "restarts",
                                          "kappa", "kappa_scale"}
    for name in ATTACKS.names():           # what every evaluation passes to every attack
        opts = option_parameters(ATTACKS.get(name))
        assert {"eps", "step_size", "steps", "norm"} <= set(opts), name
    for name in ITERATIVE + ["aa-paper", "aa-standard", "aa-robustvlm", "none"]:
        assert "restarts" in option_parameters(ATTACKS.get(name)), name


@pytest.mark.parametrize("name", sorted(ATTACKS.names()))
def test_unknown_option_names_the_attack_and_the_valid_ones(name):
    with pytest.raises(ConfigError) as e:
        create_attack(name, eps=0.0 if name == "none" else EPS, step_size=1 / 255, steps=2, foo=1)
    msg = str(e.value)
    assert e.value.param == "attack_options"
    assert f"{name}: unknown option 'foo'" in msg
    valid = msg.split("valid options of", 1)[1]
    assert all(opt in valid for opt in option_parameters(ATTACKS.get(name)))


@pytest.mark.parametrize("name, key, value, match", [
    ("cw", "kappa", "abc", "cw.kappa must be a number, got 'abc'"),
    ("cw", "kappa", True, "cw.kappa must be a number"),
    ("cw", "kappa", math.nan, "cw.kappa must be a finite number"),
    ("uncertainty", "beta", "x", "uncertainty.beta must be a number"),
    ("pgd", "random_start", "yes", "pgd.random_start must be true or false"),
    ("pgd", "restarts", 1.5, r"restarts \(pgd\) must be an integer"),
    ("uncertainty", "score", 3, "uncertainty.score must be a string"),
    ("aa-standard", "n_queries", "lots", "aa-standard.n_queries must be a number"),
])
def test_wrong_kind_of_value_is_one_clear_error(name, key, value, match):
    with pytest.raises(ConfigError, match=match):
        create_attack(name, eps=EPS, step_size=1 / 255, steps=2, **{key: value})


def test_direct_construction_is_checked_too():
    with pytest.raises(ConfigError, match="cw.kappa must be a number"):
        CW(EPS, 1 / 255, 5, kappa="abc")
    with pytest.raises(ConfigError, match="steps .*must be a number"):
        PGD(EPS, 1 / 255, "ten")
    with pytest.raises(ConfigError, match="unknown option 'kapa'"):
        CW(EPS, 1 / 255, 5, kapa=1.0)


def test_none_is_accepted_where_an_option_allows_it():
    assert create_attack("cw", eps=EPS, kappa_scale=None).kappa_scale is None
    with pytest.raises(ConfigError, match="cw.kappa must be set"):
        create_attack("cw", eps=EPS, kappa=None)


@pytest.mark.parametrize("name", ITERATIVE)
def test_zero_steps_refused_for_iterative_attacks(name):
    with pytest.raises(ConfigError) as e:
        create_attack(name, eps=EPS, step_size=1 / 255, steps=0)
    assert e.value.param == "steps" and f"for {name}" in str(e.value)


def test_zero_steps_fine_where_there_are_no_steps():
    assert create_attack("none", eps=0.0, steps=0).steps == 0
    assert create_attack("aa-paper", eps=EPS, steps=0).n_iter == 100   # AutoAttack counts n_iter, not steps


def test_out_of_range_values_refused():
    with pytest.raises(ConfigError, match="cw.kappa must be >= 0"):
        create_attack("cw", eps=EPS, kappa=-1.0)
    with pytest.raises(ConfigError, match="kappa_scale must be > 0"):
        create_attack("cw", eps=EPS, kappa_scale=0.0)
    with pytest.raises(ConfigError, match="restarts must be >= 1"):
        create_attack("pgd", eps=EPS, restarts=0)
    with pytest.raises(ConfigError, match="choose one of"):
        create_attack("uncertainty", eps=EPS, score="variance")
