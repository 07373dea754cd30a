"""Recipes shipped in the package (issue 12 item 7): usable by name, listed, and equal to configs/."""
import argparse
from pathlib import Path

import pytest

from ucat.cli import main as cli_main
from ucat.commands.train import add_arguments, config_from_args
from ucat.config import apply_config_file
from ucat.methods import method_options
from ucat.recipes import list_recipes, recipe_names, recipe_path
from ucat.train.config import resolve_precision

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_configs_folder_equals_the_shipped_recipes_byte_for_byte():
    shipped = set(recipe_names())
    assert shipped == {p.stem for p in CONFIGS.glob("*.yaml")}
    assert {"ucat", "tecoa", "pmg-aft", "fare", "tga-zsr"} <= shipped
    for name in shipped:
        assert recipe_path(name).read_bytes() == (CONFIGS / f"{name}.yaml").read_bytes(), name


@pytest.mark.parametrize("name", recipe_names())
def test_each_recipe_by_name_parses_and_validates(name):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    apply_config_file(parser, ["--recipe", name])
    cfg = config_from_args(parser.parse_args(["--recipe", name]))
    cfg.validate()
    assert cfg.method == name and set(cfg.method_options) <= set(method_options(name))
    assert cfg.eps == 1 and cfg.attack_steps == 2 and cfg.epochs == 10 and cfg.data == "tinyimagenet"
    # the official AMP (fp16 + GradScaler) on CUDA; fp32 where fp16 cannot run
    assert resolve_precision(cfg.precision, "cuda") == "fp16" and resolve_precision(cfg.precision, "cpu") == "fp32"


def test_list_recipes_and_unknown_name(capsys):
    assert cli_main(["train", "--list-recipes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == recipe_names()
    assert all(desc for _, desc in list_recipes())
    with pytest.raises(SystemExit):
        cli_main(["train", "--recipe", "no-such-recipe"])
    assert "no such file or shipped recipe (recipes: " in capsys.readouterr().err
    assert recipe_path("../configs/ucat") is None


def test_model_flag_over_a_recipe_drops_the_recipes_weights_tag(capsys):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    apply_config_file(parser, ["--recipe", "ucat", "--model", "ucat-world"])
    cfg = config_from_args(parser.parse_args(["--recipe", "ucat", "--model", "ucat-world"]))
    assert cfg.model == "ucat-world" and cfg.pretrained is None
    assert "--pretrained 'openai' is not used" in capsys.readouterr().err
    both = ["--recipe", "ucat", "--model", "ViT-B-16", "--pretrained", "openai"]
    apply_config_file(parser, both)
    assert config_from_args(parser.parse_args(both)).pretrained == "openai"
    assert config_from_args(parser.parse_args(["--recipe", "ucat"])).pretrained == "openai"
