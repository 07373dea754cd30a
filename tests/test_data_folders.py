"""Your own data: ImageFolder trees and CSV files; CSV label spellings; folder walks with symlink
loops; image decoding of every Pillow mode against reference pixels computed with numpy."""
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from data_trees import folder, img, no_env_root  # noqa: F401
from ucat.data import build_dataset, describe
from ucat.data.base import list_images, open_image
from ucat.models.decode import to_rgb


def test_image_folder(tmp_path):
    root = folder(tmp_path / "pets")
    ds = build_dataset(str(root), image_size=32)
    assert ds.classes == ["tabby cat", "golden retriever", "zebra"]          # sorted folders: 003.tabby-cat first
    assert ds[0][0].shape == (3, 32, 32)
    assert build_dataset(str(root), image_size=16, resize="squash")[0][0].shape == (3, 16, 16)
    assert ds.targets == [0, 0, 1, 1, 2, 2]
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n\nzebra\n")
    ds = build_dataset(str(root), classnames_file=str(names), template="a photo of a {}, a pet.")
    assert ds.classes == ["cat", "dog", "zebra"] and ds.templates == ["a photo of a {}, a pet."]
    assert build_dataset(str(root)).templates == ["This is a photo of a {}"]   # models.zero_shot.DEFAULT_TEMPLATE
    names.write_text("cat\ndog\n")
    with pytest.raises(ValueError, match="2 names but .* 3 classes"):
        build_dataset(str(root), classnames_file=str(names))
    with pytest.raises(ValueError, match="placeholder"):
        build_dataset(str(root), template="a photo")
    tfile = tmp_path / "templates.txt"
    tfile.write_text("# mine\na photo of a {}.\n\na drawing of a {}.\n")
    ds2 = build_dataset(str(root), templates=str(tfile))
    assert ds2.templates == ["a photo of a {}.", "a drawing of a {}."]
    d1, d2 = describe(ds), describe(ds2)
    assert d1["num_classes"] == 3 and d1["n_images"] == 6 and d1["templates"] == ["a photo of a {}, a pet."]
    assert d1["text_fingerprint"] != d2["text_fingerprint"] == describe(build_dataset(str(root), templates=str(tfile)))[
        "text_fingerprint"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_dataset(str(tmp_path / "nope"))


def test_csv_dataset(tmp_path):
    for k in range(4):
        img(tmp_path / "imgs" / f"{k}.jpg", k, fmt="JPEG")
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label,split\nimgs/0.jpg,sea_lion,test\nimgs/1.jpg,cat,test\n"
                   f"{tmp_path / 'imgs' / '2.jpg'},sea_lion,train\nimgs/3.jpg,cat,test\n")
    ds = build_dataset(str(csv), image_size=32)
    assert ds.classes == ["cat", "sea lion"] and ds.targets == [1, 0, 1, 0]
    assert ds[2][0].shape == (3, 32, 32)                                     # absolute path row
    assert build_dataset(str(csv), split="test").targets == [1, 0, 0]
    ints = tmp_path / "ints.csv"
    ints.write_text("path,label\nimgs/0.jpg,1\nimgs/1.jpg,0\n")
    names = tmp_path / "names.txt"
    names.write_text("cat\ndog\n")
    ds = build_dataset(str(ints), classnames_file=str(names))
    assert ds.classes == ["cat", "dog"] and ds.targets == [1, 0]
    names.write_text("cat\n")
    with pytest.raises(ValueError, match="uses label 1"):
        build_dataset(str(ints), classnames_file=str(names))
    bad = tmp_path / "bad.csv"
    bad.write_text("file,class\nimgs/0.jpg,cat\n")
    with pytest.raises(ValueError, match="'path' and 'label'"):
        build_dataset(str(bad))


def test_integer_labels_name_the_real_ways_to_give_names(tmp_path):
    img(tmp_path / "a.jpg", 0, fmt="JPEG")
    csv = tmp_path / "ints.csv"
    csv.write_text("path,label\na.jpg,0\na.jpg,1\n")
    with pytest.warns(UserWarning) as rec:
        ds = build_dataset(str(csv))
    msg = str(rec[0].message)
    assert ds.classes == ["0", "1"] and "--classnames" not in msg
    assert str(tmp_path / "classnames.txt") in msg and "classnames_file=" in msg
    (tmp_path / "classnames.txt").write_text("cat\ndog\n")                   # read automatically next to the CSV
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert build_dataset(str(csv)).classes == ["cat", "dog"]


def test_csv_labels_that_differ_in_case_or_spacing_are_an_error(tmp_path):
    img(tmp_path / "a.jpg", 0, fmt="JPEG")
    for a, b in (("Cat", "cat"), ("sea lion", "sea  lion"), ("sea_lion", "sea lion"), ("tabby-cat", "Tabby Cat")):
        csv = tmp_path / "labels.csv"
        csv.write_text(f"path,label\na.jpg,dog\na.jpg,{a}\na.jpg,{b}\n")
        with pytest.raises(ValueError) as e:
            build_dataset(str(csv))
        msg = str(e.value)
        assert "\n" not in msg and repr(a) in msg and repr(b) in msg and "use one spelling" in msg
        assert "(row 3)" in msg and "(row 4)" in msg


def test_csv_labels_one_typo_apart_warn_with_both_names(tmp_path):
    img(tmp_path / "a.jpg", 0, fmt="JPEG")
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\na.jpg,golden_retriever\na.jpg,golden_retreiver\na.jpg,zebra\n")
    with pytest.warns(UserWarning, match=r"'golden_retreiver' and 'golden_retriever' are one typo apart"):
        assert len(build_dataset(str(csv)).classes) == 3
    csv.write_text("path,label\na.jpg,class1\na.jpg,class2\na.jpg,cat\na.jpg,car\na.jpg,zebra\na.jpg,zebras\n")
    with pytest.warns(UserWarning, match="'zebra' and 'zebras'") as rec:
        build_dataset(str(csv))
    assert len(rec) == 1                     # class1/class2 (digits) and cat/car (short) are not flagged


def test_symlink_loop_lists_each_image_once(tmp_path):
    root = tmp_path / "imgs"
    for k in range(3):
        img(root / "cat" / "sub" / f"{k}.png", k)
    img(root / "cat" / "top.png", 9)
    os.symlink(root / "cat", root / "cat" / "sub" / "loop")             # cat/sub/loop -> cat: a loop
    os.symlink(root / "cat" / "sub", root / "cat" / "again")            # a second way to the same folder
    with pytest.warns(UserWarning, match="skipped 2 symlinked folder"):
        files = list_images(root / "cat")
    assert len(files) == 4 and len({os.path.realpath(f) for f in files}) == 4
    with pytest.warns(UserWarning, match="symlinked folder"):
        assert len(build_dataset(str(root))) == 4
    img(tmp_path / "elsewhere" / "x.png", 5)
    os.symlink(tmp_path / "elsewhere", root / "cat" / "linked")          # a plain link is followed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(list_images(root / "cat")) == 5


# ---- decoding: reference pixels from numpy on the raw values, independent of ucat and of Pillow's convert
RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
U16 = np.array([[0, 1, 128, 257, 32768, 65280, 65535]] * 5, dtype=np.uint16)


def _gray3(g):
    return np.repeat(g[:, :, None], 3, axis=2)


def _cases():
    palette = RNG.integers(0, 256, (256, 3), dtype=np.uint8)
    idx = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    p = Image.fromarray(idx, mode="L").convert("P")
    p.putpalette(palette.flatten().tolist())
    pa = p.copy()
    pa.info["transparency"] = 3
    cmyk = RNG.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    ref_cmyk = ((255 - cmyk[..., :3].astype(np.float64)) * (255 - cmyk[..., 3:].astype(np.float64)) / 255)
    alpha = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    bits = GRAY > 127
    return {
        "RGB": (Image.fromarray(RGB), RGB, 0),
        "RGBA": (Image.fromarray(np.dstack([RGB, alpha])), RGB, 0),              # alpha dropped
        "L": (Image.fromarray(GRAY), _gray3(GRAY), 0),
        "LA": (Image.fromarray(np.dstack([GRAY, alpha])), _gray3(GRAY), 0),
        "1": (Image.fromarray(bits), _gray3(bits.astype(np.uint8) * 255), 0),
        "P": (p, palette[idx], 0),
        "P+transparency": (pa, palette[idx], 0),
        "CMYK": (Image.fromarray(cmyk, mode="CMYK"), ref_cmyk, 1),
        "I;16": (Image.fromarray(U16), _gray3(np.rint(U16 / 257.0)), 0),        # 65535 -> 255, 257 -> 1
        "I 16-bit values": (Image.fromarray(U16.astype(np.int32)), _gray3(np.rint(U16 / 257.0)), 0),
        "I 8-bit values": (Image.fromarray(GRAY.astype(np.int32)), _gray3(GRAY), 0),
        "F [0,1]": (Image.fromarray(GRAY.astype(np.float32) / 255), _gray3(GRAY), 0),
        "F [0,255]": (Image.fromarray(GRAY.astype(np.float32)), _gray3(GRAY), 0),
    }


@pytest.mark.parametrize("case", sorted(_cases()))
def test_every_pillow_mode_decodes_to_the_reference_pixels(case):
    image, ref, tol = _cases()[case]
    out = to_rgb(image)
    assert out.mode == "RGB" and out.size == image.size
    got = np.asarray(out).astype(np.int64)
    assert np.abs(got - np.asarray(ref, dtype=np.float64).round()).max() <= tol, case


def test_a_16bit_png_on_disk_is_not_white(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(U16).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    got = np.asarray(open_image(path))
    assert np.array_equal(got, _gray3(np.rint(U16 / 257.0)).astype(np.uint8))
    (tmp_path / "c" / "a").mkdir(parents=True)
    Image.fromarray(U16).save(tmp_path / "c" / "a" / "deep.png")
    x, _ = build_dataset(str(tmp_path / "c"), image_size=7, resize="squash")[0]
    ref = Image.fromarray(_gray3(np.rint(U16 / 257.0)).astype(np.uint8))
    want = T.ToTensor()(T.Resize((7, 7), interpolation=T.InterpolationMode.BILINEAR)(ref))
    assert torch.equal(x, want) and float(x.mean()) < 0.45        # Pillow's clipping convert gives ~0.64
