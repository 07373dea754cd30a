"""The procedural world's tasks: zero-shot classification problems over its scenes.

Each task maps a scene to a label and names its classes; its prompt templates are the world's
"This is a photo of a {}" equivalents. Splits are disjoint seed streams (train/val/test), and a
task's split is rendered once per (task, split, n, seed) and cached in memory. The tasks are
registered as datasets by :mod:`ucat.data.catalog`:

* ``world-shape``, ``world-colour``, ``world-count``, ``world-size``, ``world-count-shape``,
  ``world-heldout``: the zero-shot suite (collection ``world-suite``, this world's ``zs16``);
* ``world-position``, ``world-background``: registered, but outside the suite, because the
  shipped model does not solve them (zero-shot accuracy at chance);
* ``world-train``: the fine-tuning task (36 seen shape x colour classes; this world's
  TinyImageNet).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from .scenes import (BACKGROUNDS, COLOUR_NAMES, COUNT_WORDS, HELDOUT, POSITIONS, SEEN, SHAPE_PLURALS, SHAPES,
                     SIZES, Scene, caption, render_batch, sample_scene)

@dataclass(frozen=True)
class WorldTask:
    """A zero-shot classification task over the world: which attribute the label pins."""

    name: str
    classes: Tuple[str, ...]
    templates: Tuple[str, ...]
    description: str
    fix: Callable[[int], Dict[str, int]]           # label -> fixed scene attributes
    allowed: Tuple[Tuple[str, str], ...] = SEEN    # (shape, colour) pairs it draws from
    default_n: Dict[str, int] = None               # images per split

    def sample(self, rng: np.random.Generator, label: int) -> Scene:
        return sample_scene(rng, self.allowed, **self.fix(label))


_N_EVAL = {"train": 2000, "val": 500, "test": 1000}
_SHAPE_T = ("a photo of a {}.", "a {}.", "a picture of a {}.", "an image of a {}.", "a drawing of a {}.")
_PAIR_T = _SHAPE_T

TASKS: Dict[str, WorldTask] = {}


def _add(task: WorldTask) -> None:
    TASKS[task.name] = task


_add(WorldTask("world-shape", SHAPES, _SHAPE_T, "which shape is drawn (6-way)",
               lambda y: {"shape": y}, default_n=_N_EVAL))
_add(WorldTask("world-colour", COLOUR_NAMES,
               ("a photo of a {} shape.", "a {} object.", "a picture of a {} shape.", "an image of {} objects.",
                "a drawing of a {} shape."),
               "which colour the objects have (8-way)", lambda y: {"colour": y}, default_n=_N_EVAL))
_add(WorldTask("world-count", COUNT_WORDS,
               ("a photo of {} shapes.", "{} objects.", "a picture of {} shapes.", "there are {} objects.",
                "an image of {} shapes."),
               "how many objects there are (4-way)", lambda y: {"count": y + 1}, default_n=_N_EVAL))
_add(WorldTask("world-size", SIZES,
               ("a photo of a {} shape.", "a {} object.", "a picture of {} shapes.", "an image of a {} object."),
               "whether the objects are small or large (2-way)", lambda y: {"size": y}, default_n=_N_EVAL))
_add(WorldTask("world-position", POSITIONS,
               ("a photo of a shape in the {}.", "an object at the {}.", "a picture of a shape in the {} corner.",
                "a shape in the {}."),
               "which quadrant a single object sits in (4-way)", lambda y: {"position": y, "count": 1},
               default_n=_N_EVAL))
_add(WorldTask("world-background", BACKGROUNDS,
               ("a photo of a shape on a {} background.", "an object against a {} backdrop.",
                "a picture of shapes over a {} pattern.", "a {} background."),
               "the background texture (4-way)", lambda y: {"background": y}, default_n=_N_EVAL))
_add(WorldTask("world-count-shape",
               tuple(f"{COUNT_WORDS[k]} {SHAPES[s] if k == 0 else SHAPE_PLURALS[SHAPES[s]]}"
                     for k in range(4) for s in range(len(SHAPES))),
               ("a photo of {}.", "{}.", "a picture of {}.", "an image of {}.", "a drawing of {}."),
               "how many objects of which shape (24-way: count x shape)",
               lambda y: {"count": y // len(SHAPES) + 1, "shape": y % len(SHAPES)}, default_n=_N_EVAL))
_add(WorldTask("world-heldout", tuple(f"{c} {s}" for s, c in HELDOUT), _PAIR_T,
               "shape x colour combinations never seen in pretraining (12-way; colour or shape alone "
               "gives at most 50%)",
               lambda y: {"shape": SHAPES.index(HELDOUT[y][0]), "colour": COLOUR_NAMES.index(HELDOUT[y][1])},
               allowed=HELDOUT, default_n=_N_EVAL))
_add(WorldTask("world-train", tuple(f"{c} {s}" for s, c in SEEN), _PAIR_T,
               "the fine-tuning task: 36 seen shape x colour classes (this world's TinyImageNet)",
               lambda y: {"shape": SHAPES.index(SEEN[y][0]), "colour": COLOUR_NAMES.index(SEEN[y][1])},
               default_n={"train": 10000, "val": 1000, "test": 2000}))

SUITE: Tuple[str, ...] = ("world-shape", "world-colour", "world-count", "world-size", "world-count-shape",
                          "world-heldout")
# Registered but outside the suite: the shipped model has not learned these two (its zero-shot
# accuracy on them is at chance; see docs/world.md). They stay available as open problems.
UNLEARNED: Tuple[str, ...] = ("world-position", "world-background")
_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


def task_scenes(task: str | WorldTask, split: str = "test", n: Optional[int] = None, seed: int = 0
                ) -> Tuple[List[Scene], np.ndarray]:
    """The scenes and labels of a task's split: balanced labels, deterministic in (task, split, seed, n)."""
    t = TASKS[task] if isinstance(task, str) else task
    if split not in _SPLIT_OFFSET:
        raise ValueError(f"split {split!r} of {t.name}: choose one of {', '.join(_SPLIT_OFFSET)}")
    n = int(t.default_n[split] if n is None else n)
    if n < 1:
        raise ValueError(f"n={n}: a world dataset needs at least one image")
    name_key = sum((i + 1) * ord(ch) for i, ch in enumerate(t.name))
    rng = np.random.default_rng([int(seed), _SPLIT_OFFSET[split], name_key])
    labels = np.arange(n) % len(t.classes)
    rng.shuffle(labels)
    scenes = [t.sample(rng, int(y)) for y in labels]
    return scenes, labels.astype(np.int64)


class WorldDataset(torch.utils.data.Dataset):
    """An in-memory world task: items ``(image (3, 32, 32) float in [0,1], label)``.

    ``transform`` (optional) is applied to a PIL image of each item, for callers that want
    another resolution; without it the stored tensors are returned as they are.
    """

    def __init__(self, task: WorldTask, split: str, images: torch.Tensor, labels: torch.Tensor,
                 scenes: Sequence[Scene], transform: Optional[Callable] = None):
        self.task = task
        self.split = split
        self.images = images            # (N, 3, H, W) float32 in [0,1]
        self.labels = labels            # (N,) int64
        self.scenes = list(scenes)
        self.transform = transform
        self.classes = list(task.classes)
        self.templates = list(task.templates)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, i: int):
        x = self.images[i]
        if self.transform is not None:
            arr = (x.permute(1, 2, 0).numpy() * 255.0 + 0.5).astype(np.uint8)
            x = self.transform(Image.fromarray(arr))
        return x, int(self.labels[i])

    def captions(self, i: int) -> str:
        """The canonical full caption of item ``i`` (mentions every attribute)."""
        return caption(self.scenes[i], full=True)


@functools.lru_cache(maxsize=32)
def _cached(task: str, split: str, n: Optional[int], seed: int):
    scenes, labels = task_scenes(task, split, n, seed)
    images = render_batch(scenes)                                           # (N, 3, 32, 32)
    return images, torch.from_numpy(labels), scenes


def load_task(task: str, split: str = "test", n: Optional[int] = None, seed: int = 0,
              transform: Optional[Callable] = None) -> WorldDataset:
    """Build (or fetch from the in-memory cache) a world task's split as a :class:`WorldDataset`."""
    if task not in TASKS:
        raise KeyError(f"unknown world task {task!r}; known: {', '.join(TASKS)}")
    images, labels, scenes = _cached(task, split, None if n is None else int(n), int(seed))
    return WorldDataset(TASKS[task], split, images, labels, scenes, transform)




