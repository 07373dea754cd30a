"""``world-multilabel``: several different objects per scene; the labels are the set of shapes present.

The procedural world's counterpart of multi-label MS-COCO (the official UCAT multi-label
evaluation, VivienLu/UCAT main-multilabel.py): each scene holds 2 or 3 objects of *different*
shapes, one per quadrant, each in its own colour, on one of the world's backgrounds; the target is
the multi-hot vector over the 6 shapes. Prompts are the single-label shape task's templates, so
zero-shot logits over the 6 shapes are scored per label (mAP, P/R/F1 at top-k). Deterministic in
(split, n, seed) as every world task.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch
from PIL import ImageDraw

from .scenes import (BACKGROUNDS, COLOUR_NAMES, COLOURS, IMAGE_SIZE, SHAPES, _SS, _background, _clip255,
                     _draw_shape)

NAME = "world-multilabel"
TEMPLATES: Tuple[str, ...] = ("a photo of a {}.", "a {}.", "a picture of a {}.", "an image of a {}.",
                              "a drawing of a {}.")
_SPLITS = {"train": 0, "val": 1, "test": 2}
DEFAULT_N = {"train": 2000, "val": 500, "test": 1000}


@dataclass(frozen=True)
class MultiScene:
    """Shapes (distinct indices into SHAPES), their colours, background and layout seed."""

    shapes: Tuple[int, ...]
    colours: Tuple[int, ...]
    background: int
    layout_seed: int


def render_multi(scene: MultiScene, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """(image_size, image_size, 3) uint8: one object per quadrant, large, jittered inside its cell."""
    r = random.Random(scene.layout_seed)
    big = image_size * _SS
    canvas = _background(r, scene.background, big)
    draw = ImageDraw.Draw(canvas)
    half = big / 2.0
    radius = 0.34 * half
    jitter = max(0.5 * half - radius - 1.5 * _SS, 0.0)
    for cell, (shape, colour) in zip(r.sample(range(4), len(scene.shapes)), zip(scene.shapes, scene.colours)):
        fill = tuple(_clip255(v + r.randint(-18, 18)) for v in COLOURS[COLOUR_NAMES[colour]])
        cx, cy = half * (0.5 + cell % 2) + r.uniform(-jitter, jitter), half * (0.5 + cell // 2) + r.uniform(-jitter, jitter)
        _draw_shape(draw, SHAPES[shape], cx, cy, radius, fill)
    return np.asarray(canvas.reduce(_SS), dtype=np.uint8)


def multilabel_scenes(split: str = "test", n: Optional[int] = None, seed: int = 0) -> List[MultiScene]:
    if split not in _SPLITS:
        raise ValueError(f"split {split!r} of {NAME}: choose one of {', '.join(_SPLITS)}")
    n = int(DEFAULT_N[split] if n is None else n)
    if n < 1:
        raise ValueError(f"n={n}: a world dataset needs at least one image")
    rng = np.random.default_rng([int(seed), _SPLITS[split], 7331])
    out = []
    for _ in range(n):
        k = int(rng.integers(2, 4))                                       # 2 or 3 objects
        shapes = tuple(sorted(int(s) for s in rng.choice(len(SHAPES), size=k, replace=False)))
        colours = tuple(int(c) for c in rng.integers(len(COLOUR_NAMES), size=k))
        out.append(MultiScene(shapes, colours, int(rng.integers(len(BACKGROUNDS))), int(rng.integers(2**62))))
    return out


class MultiLabelWorldDataset(torch.utils.data.Dataset):
    """Items ``(image (3, 32, 32) float in [0,1], multi-hot target (6,) int64)``; ``.classes`` the shapes."""

    multilabel = True

    def __init__(self, split: str, images: torch.Tensor, targets: torch.Tensor, scenes: List[MultiScene]):
        self.split, self.images, self.targets_multihot, self.scenes = split, images, targets, scenes
        self.classes = list(SHAPES)
        self.templates = list(TEMPLATES)
        self.prompts = None

    def __len__(self) -> int:
        return int(self.targets_multihot.shape[0])

    def __getitem__(self, i: int):
        return self.images[i], self.targets_multihot[i]


@functools.lru_cache(maxsize=8)
def load_multilabel(split: str = "test", n: Optional[int] = None, seed: int = 0) -> MultiLabelWorldDataset:
    scenes = multilabel_scenes(split, n, seed)
    arr = np.stack([render_multi(s) for s in scenes])                      # (N, H, W, 3)
    images = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    targets = torch.zeros(len(scenes), len(SHAPES), dtype=torch.long)
    for i, s in enumerate(scenes):
        targets[i, list(s.shapes)] = 1
    return MultiLabelWorldDataset(split, images, targets, scenes)
