"""Weight files given to --checkpoint / --pretrained (issue 13): a pickle is refused by name and
never executed, a damaged file is named, a wrong architecture names a few mismatching keys."""
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from ucat.errors import CorruptFileError, UnsafeFileError
from ucat.models import load_clip
from ucat.models.checkpoint import load_vision_weights


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_clip("ucat-tiny")


@pytest.mark.parametrize("how", ["checkpoint", "pretrained"])
def test_a_pickle_payload_never_runs(tiny, tmp_path, how):
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    torch.save({"x": _Payload(marker)}, tmp_path / "evil-zip.pt")      # torch's zip format too
    for f in (evil, tmp_path / "evil-zip.pt"):
        with pytest.raises(UnsafeFileError, match=f"{f}: a pickle"):
            load_vision_weights(tiny, f) if how == "checkpoint" else load_clip("ucat-tiny", str(f))
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":"])
def test_empty_or_truncated_safetensors_names_the_file(tiny, tmp_path, content):
    f = tmp_path / "bad.safetensors"
    f.write_bytes(content)
    with pytest.raises(CorruptFileError, match=str(f)):
        load_vision_weights(tiny, f)
    with pytest.raises(CorruptFileError, match=str(f)):
        load_clip("ucat-tiny", str(f))


def test_wrong_architecture_names_file_and_keys(tiny, tmp_path):
    f = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, str(f))
    with pytest.raises(ValueError, match=rf"{f} does not fit the architecture ucat-world: .*missing .*another shape "
                                         r"\(e\.g\. positional_embedding: file \(32, 64\) vs model \(24, 64\)\)"):
        load_clip("ucat-world", str(f))
    other = tmp_path / "other.safetensors"
    save_file({"visual.a": torch.zeros(2)}, str(other))
    with pytest.raises(ValueError, match=rf"{other} does not fit the image tower of ucat-tiny: 32 missing.*1 unexpected"):
        load_vision_weights(tiny, other)
    assert load_clip("ucat-tiny", str(f)).model.state_dict()["visual.proj"].equal(tiny.model.state_dict()["visual.proj"])
