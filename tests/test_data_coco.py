"""COCO 2017 multi-label on a tiny copy written here in the release's exact layout and JSON format."""
import json

import pytest
import torch
from PIL import Image

from ucat.data.coco import CATEGORIES, CLASSES, TEMPLATE, coco2017
from ucat.errors import CorruptFileError


def _write_coco(root, images=((397133, [1, 44]), (37777, [62, 62, 67]), (252219, []), (87038, [90]))):
    base = root / "coco2017"
    (base / "annotations").mkdir(parents=True)
    (base / "val2017").mkdir()
    data = {"info": {"year": 2017}, "licenses": [], "images": [], "annotations": [],
            "categories": [{"supercategory": "x", "id": i, "name": n} for i, n in CATEGORIES]}
    k = 0
    for img_id, cats in images:
        name = f"{img_id:012d}.jpg"
        Image.new("RGB", (20, 16), (img_id % 255, 90, 40)).save(base / "val2017" / name)
        data["images"].append({"id": img_id, "file_name": name, "height": 16, "width": 20})
        for c in cats:
            k += 1
            data["annotations"].append({"id": k, "image_id": img_id, "category_id": c, "iscrowd": int(c == 62),
                                        "area": 10.0, "bbox": [0, 0, 2, 2]})
    (base / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root


def test_targets_names_and_order_follow_the_official_loader(tmp_path):
    with pytest.warns(UserWarning, match="1 images have no label"):
        ds = coco2017(_write_coco(tmp_path))
    assert len(CLASSES) == 80 and CLASSES[0] == "person" and CLASSES[-1] == "toothbrush" and ds.templates == [TEMPLATE]
    assert len(ds) == 4 and ds.n_unlabelled == 1                                 # kept, as officially
    idx = {cid: i for i, (cid, _) in enumerate(CATEGORIES)}
    expected = [[idx[1], idx[44]], [idx[62], idx[67]], [], [idx[90]]]           # json order; crowd counted
    for i, want in enumerate(expected):
        t = ds.target(i)
        assert t.sum() == len(want) and all(t[j] == 1 for j in want)
    img, target = ds[0]
    assert img.size == (20, 16) and target.dtype == torch.int64 and CLASSES[idx[44]] == "bottle"
    assert len(coco2017(tmp_path, unlabelled="drop")) == 3


def test_bad_coco_input_is_one_clear_error(tmp_path):
    root = _write_coco(tmp_path / "a")
    with pytest.raises(CorruptFileError, match="no label"):
        coco2017(root, unlabelled="error")
    (root / "coco2017" / "val2017" / f"{87038:012d}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="does not match the images.*1 of 4"):
        coco2017(root)
    root = _write_coco(tmp_path / "b")
    ann = root / "coco2017" / "annotations" / "instances_val2017.json"
    data = json.loads(ann.read_text())
    data["categories"][0]["name"] = "human"
    ann.write_text(json.dumps(data))
    with pytest.raises(CorruptFileError, match="differ from COCO 2017"):
        coco2017(root)
    ann.write_text("{not json")
    with pytest.raises(CorruptFileError, match="not a COCO instances file"):
        coco2017(root)
    with pytest.raises(FileNotFoundError, match="annotation file"):
        coco2017(tmp_path / "nothing")
