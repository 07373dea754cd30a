"""The one place where ucat's built-in datasets are registered.

Importing this module (``ucat.data`` does) registers the paper's benchmarks with the ``zs16``
collection (:mod:`ucat.data.benchmarks`, whose builders register where they are defined), the
ImageNet family (:mod:`ucat.data.imagenet`: ImageNet, TinyImageNet, ImageNet-A/-O/-R/-Sketch) and
the procedural world's tasks with the ``world-suite`` collection (:mod:`ucat.world.scenes`,
which knows nothing of the registry). A new dataset is one builder plus one registration here
or in ``benchmarks.py``.
"""
from __future__ import annotations

from ..world import multilabel
from ..world import tasks as world
from ..world.scenes import IMAGE_SIZE
from . import coco
from . import benchmarks  # noqa: F401  (its @register_dataset decorators register the benchmarks)
from . import imagenet  # noqa: F401  (registers the ImageNet family the same way)
from .registry import register_collection, register_dataset


def _register_world_task(task: world.WorldTask) -> None:
    def builder(root=None, split="test", transform=None, n=None, seed=0, **_ignored):
        # ``root`` is ignored: the world is generated, not read from disk.
        return world.load_task(task.name, split or "test", n=n, seed=seed, transform=transform)

    register_dataset(task.name, num_classes=len(task.classes), layout="(generated in memory; no files)",
                     how_to_get="nothing to get: generated procedurally from a seed",
                     default_split="test" if task.name != "world-train" else "train",
                     splits=("train", "val", "test"), needs_root=False,
                     extra={"world": True, "image_size": IMAGE_SIZE, "description": task.description})(builder)


for _task in world.TASKS.values():
    _register_world_task(_task)
register_collection("world-suite", world.SUITE)


# ----------------------------------------------------------------------------- multi-label sets
def _world_multilabel(root=None, split="test", transform=None, n=None, seed=0, **_ignored):
    return multilabel.load_multilabel(split or "test", n=n, seed=seed)


def _coco_check(root, split):
    base = root / "coco2017" if (root / "coco2017").is_dir() else root
    ann = base / "annotations" / f"instances_{split}2017.json"
    return ann.is_file(), ann


def _coco(root, split="val", transform=None, **_ignored):
    return coco.coco2017(root, split, transform)


register_dataset(multilabel.NAME, num_classes=6, layout="(generated in memory; no files)",
                 how_to_get="nothing to get: generated procedurally from a seed", default_split="test",
                 splits=("train", "val", "test"), needs_root=False,
                 extra={"world": True, "multilabel": True, "image_size": IMAGE_SIZE,
                        "description": "which shapes a 2-3 object scene holds (multi-label, 6 labels)"})(_world_multilabel)
register_dataset("coco2017", num_classes=80, layout=coco.LAYOUT, how_to_get=coco.HOW_TO_GET, default_split="val",
                 splits=("val", "train"), extra={"multilabel": True, "check": _coco_check, "resize": "crop",
                                                 "loader": "ucat (own)"})(_coco)
