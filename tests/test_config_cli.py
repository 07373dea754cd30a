"""Units, config files, the registry and the CLI shell."""
import argparse

import pytest

from ucat.cli import main
from ucat.config import apply_config_file
from ucat.units import fmt_eps, parse_eps, to_fraction
from ucat.registry import Registry


@pytest.mark.parametrize("text,value", [("1", 1.0), ("0.5", 0.5), ("4/255", 4.0), (2, 2.0), ("0", 0.0)])
def test_parse_eps_in_255_units(text, value):
    assert parse_eps(text) == value


def test_parse_eps_refuses_fractions_with_the_conversion():
    with pytest.raises(ValueError, match=r"1/255 units.*0\.9945"):
        parse_eps("0.0039")
    with pytest.raises(ValueError, match="not a number"):
        parse_eps("one")
    with pytest.raises(ValueError, match="negative"):
        parse_eps("-1")
    assert to_fraction(1) == pytest.approx(1 / 255) and fmt_eps(4.0) == "4/255"


def test_registry_names_and_unknown_lookup():
    r = Registry("method")
    r.register("pmg_aft", 1)
    assert r.get("PMG-AFT") == 1 and "pmg-aft" in r and r.names() == ["pmg-aft"]
    with pytest.raises(KeyError, match="known methods: pmg-aft"):
        r.get("ucat")


def test_config_file_defaults_and_cli_override(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("lr: 0.5\nbatch-size: 7\n")
    p = argparse.ArgumentParser()
    p.add_argument("--config")
    p.add_argument("--lr", type=float, default=1.0)
    p.add_argument("--batch-size", type=int, default=1)
    argv = ["--config", str(cfg), "--lr", "0.1"]
    apply_config_file(p, argv)
    a = p.parse_args(argv)
    assert a.lr == 0.1 and a.batch_size == 7
    cfg.write_text("no_such_option: 1\n")
    with pytest.raises(ValueError, match="unknown option"):
        apply_config_file(p, ["--config", str(cfg)])


def test_cli_help_and_unknown_command(capsys):
    assert main([]) == 0
    assert "eval" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["frobnicate"])
    assert "unknown command" in capsys.readouterr().err


def test_models_command_lists_tiny_architecture(capsys):
    assert main(["models", "--filter", "ucat-tiny"]) == 0
    assert "ucat-tiny" in capsys.readouterr().out


def test_cli_offline_weights_error_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["eval", "--model", "ViT-B-32", "--pretrained", "openai", "--datasets", "world-colour"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Pass a local weights file" in err[0]
