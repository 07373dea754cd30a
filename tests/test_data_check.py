"""Missing-data messages, ``ucat data list/show/check/download/classes``, and generated trees through
``ucat eval`` end to end."""
import warnings

import pytest

from data_trees import folder, no_env_root, tiny_tree  # noqa: F401
from ucat.cli import main
from ucat.data import DATASETS, benchmark_meta, build_dataset, check_dataset, classnames, expand_datasets


def test_missing_root_and_missing_data_messages(tmp_path):
    with pytest.raises(FileNotFoundError, match="UCAT_DATA_CIFAR10=DIR for this dataset alone"):
        build_dataset("cifar10")
    with pytest.raises(FileNotFoundError) as e:
        build_dataset("sun397", root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "SUN397" / "ClassName.txt") in msg and "Layout:" in msg and "How to get it:" in msg
    with pytest.raises(KeyError, match="unknown dataset 'cifar11'"):
        build_dataset("cifar11")


def test_data_check_cli_present_and_missing(tmp_path, capsys):
    root = tiny_tree(tmp_path / "data")
    assert main(["data", "check", "tinyimagenet", "--data-root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "found" in out and "3 images, 200 classes" in out and "1/1 datasets ready" in out
    assert main(["data", "check", "tinyimagenet", "imagenet", "--data-root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and str(root / "imagenet" / "val") in out and "imagenet/{train,val}/<wnid>" in out
    assert "missing or broken: imagenet" in out
    assert main(["data", "check", "cifar10", "--data-root", str(tmp_path / "nonexistent")]) == 1
    assert "cifar-10-batches-py/test_batch" in capsys.readouterr().out
    rep = check_dataset("imagenet", root=tmp_path / "empty")
    assert rep["status"] == "missing" and rep["path"] == str(tmp_path / "empty" / "imagenet" / "val")
    assert check_dataset(str(tmp_path / "no_such_folder"))["status"] == "missing"
    expand_datasets([])
    generated = [n for n in DATASETS.names() if not DATASETS.get(n).needs_root]
    assert "world-shape" in generated and len(generated) >= 5
    rep = check_dataset("world-shape")
    assert rep["status"] == "generated" and "needs no data root" in rep["detail"]
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "zs16: tinyimagenet cifar10" in out and "sun397" in out and "imagenet-sketch" in out
    assert main(["data", "show", "pcam"]) == 0
    out = capsys.readouterr().out
    assert "Tthis is a photo of healthy lymph node tissue." in out and "   1 lymph node containing" in out
    assert main(["data", "download", "imagenet", "--data-root", str(tmp_path)]) == 1   # no automatic download
    assert "cannot be downloaded automatically" in capsys.readouterr().out
    assert main(["data", "show", "cifar11"]) == 2                          # one clear error line
    assert "unknown dataset 'cifar11'" in capsys.readouterr().err


def test_data_check_reports_warnings_instead_of_hiding_them(tmp_path, capsys):
    import os

    root = folder(tmp_path / "mine", classes=("cat", "dog"), per_class=1)
    os.symlink(root / "cat", root / "cat" / "loop")
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "found" in out and "warning:" in out and "symlinked folder" in out


def test_data_classes_prints_names_and_prompts_without_data(capsys):
    assert main(["data", "classes", "imagenet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == classnames("imagenet") and lines[0] == "tench" and len(lines) == 1000
    assert main(["data", "classes", "imagenet", "--classnames", "clip"]) == 0
    assert capsys.readouterr().out.splitlines()[999] == "toilet paper"
    # the official prompt construction, transcribed: template.format(refine_classname(name)), main.py:226,
    # utils.py:264-277, one prompt per class in sorted-wnid (ImageFolder) order
    assert main(["data", "classes", "imagenet", "--prompts"]) == 0
    prompts = capsys.readouterr().out.splitlines()
    assert prompts == ["This is a photo of a " + c for c in classnames("imagenet")]
    assert main(["data", "classes", "cifar10", "--prompts", "--templates", "ensemble"]) == 0
    ens = capsys.readouterr().out.splitlines()
    assert len(ens) == 180 and ens[0] == "a photo of a airplane." and ens[18] == "a photo of a automobile."
    assert main(["data", "classes", "pcam", "--prompts"]) == 0
    assert capsys.readouterr().out.splitlines() == [p[0] for p in benchmark_meta("pcam")["prompts"]]
    assert main(["data", "classes", "flowers102", "--prompts"]) == 0
    assert "A photo of a cyclamen , a type of flower." in capsys.readouterr().out.splitlines()   # as the source
    assert main(["data", "classes", "world-shape"]) == 2
    assert "class names from the data itself" in capsys.readouterr().err


def test_data_classes_with_a_protocol(capsys, monkeypatch):
    from ucat import protocols

    proto = protocols.Protocol(name="test-clip-ensemble", description="a test protocol", datasets=("cifar10",),
                               attacks=(), eps=(), steps=0, step_size=None, classnames="clip", templates="ensemble")
    monkeypatch.setitem(protocols.PROTOCOLS._items, protocols.PROTOCOLS._key(proto.name), proto)
    assert main(["data", "classes", "dtd", "--protocol", proto.name]) == 0
    assert "polka-dotted" in capsys.readouterr().out.splitlines()                    # the protocol's 'clip'
    assert main(["data", "classes", "dtd", "--protocol", proto.name, "--classnames", "official", "--prompts"]) == 0
    got = capsys.readouterr().out.splitlines()                                       # the flag wins; 8 templates
    assert len(got) == 47 * 8 and "a photo of a polka dotted texture." in got
    if "ucat-paper" in protocols.PROTOCOLS:
        assert main(["data", "classes", "imagenet", "--protocol", "ucat-paper", "--prompts"]) == 0
        got = capsys.readouterr().out.splitlines()
        assert got[:2] == ["This is a photo of a tench", "This is a photo of a goldfish"] and len(got) == 1000
    assert main(["data", "classes", "imagenet", "--protocol", "no-such-protocol"]) == 2
    assert "no-such-protocol" in capsys.readouterr().err


def test_generated_trees_pass_through_ucat_eval(tmp_path):
    """Issue 3's "done when": the generated trees (a registry dataset under --data-root and a user
    folder with a corrupt image) go through `ucat eval` end to end; the bad image is counted."""
    import csv

    root = tiny_tree(tmp_path / "data")
    mine = folder(tmp_path / "mine", classes=("cat", "dog"), per_class=2)
    (mine / "dog" / "broken.jpg").write_bytes(b"garbage")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["eval", "--model", "ucat-tiny", "--datasets", "tinyimagenet", str(mine), "--data-root", str(root),
                   "--attacks", "none", "--batch-size", "4", "--out", str(out), "--no-plots", "--no-progress"])
    assert rc == 0
    rows = {r["dataset"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert (rows["tinyimagenet"]["n"], rows["tinyimagenet"]["n_skipped"]) == ("3", "0")
    assert (rows[str(mine)]["n"], rows[str(mine)]["n_skipped"]) == ("4", "1")
