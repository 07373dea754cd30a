"""The procedural image world: small scenes of coloured shapes, their captions, and its tasks.

Every scene is drawn from a seed, so the same ``(seed, index)`` always gives the same pixels and
the same caption. A scene has these attributes:

========== =====================================================================
shape      circle, square, triangle, diamond, cross, ring
colour     red, green, blue, yellow, purple, orange, pink, cyan
count      1-4 copies of the object (all alike)
size       small or large
position   where a single object sits: top left, top right, bottom left, bottom right
background plain, striped, dotted or checkered (grey tones)
========== =====================================================================

Captions mention the attributes in varied wording and order, each one left out now and then, so
that a short phrase ("a photo of a striped background") means something to a text encoder
trained on them. Twelve (shape, colour) combinations are *held out*: pretraining never draws
them, and the ``world-heldout`` task asks for exactly those, so it measures composition.

The tasks over these scenes are in :mod:`ucat.world.tasks`.
"""
from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw


# ----------------------------------------------------------------------------- vocabulary
SHAPES: Tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross", "ring")
SHAPE_PLURALS: Dict[str, str] = {"circle": "circles", "square": "squares", "triangle": "triangles",
                                 "diamond": "diamonds", "cross": "crosses", "ring": "rings"}
COLOURS: Dict[str, Tuple[int, int, int]] = {
    "red": (220, 35, 35), "green": (30, 165, 55), "blue": (35, 75, 225), "yellow": (240, 215, 30),
    "purple": (135, 50, 185), "orange": (250, 135, 20), "pink": (245, 120, 185), "cyan": (30, 205, 215),
}
COLOUR_NAMES: Tuple[str, ...] = tuple(COLOURS)
COUNT_WORDS: Tuple[str, ...] = ("one", "two", "three", "four")
SIZES: Tuple[str, ...] = ("small", "large")
POSITIONS: Tuple[str, ...] = ("top left", "top right", "bottom left", "bottom right")
BACKGROUNDS: Tuple[str, ...] = ("plain", "striped", "dotted", "checkered")

# Held-out (shape, colour) pairs: every shape twice and six colours twice each (a 12-cycle), so
# neither the colour nor the shape alone identifies a held-out class.
_HELD_SHAPE_IDX = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
_HELD_COLOUR_IDX = [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 0]
_CYCLE_COLOURS = ("red", "blue", "yellow", "green", "orange", "purple")
HELDOUT: Tuple[Tuple[str, str], ...] = tuple(
    (SHAPES[s], _CYCLE_COLOURS[c]) for s, c in zip(_HELD_SHAPE_IDX, _HELD_COLOUR_IDX))
SEEN: Tuple[Tuple[str, str], ...] = tuple(
    (s, c) for s in SHAPES for c in COLOUR_NAMES if (s, c) not in set(HELDOUT))

IMAGE_SIZE = 32          # pixels per side of a rendered scene
_SS = 2                  # supersampling factor (drawn at 64 px, box-filtered to 32 px)


@dataclass(frozen=True)
class Scene:
    """One scene's attributes (indices into the vocabularies above) and its random layout seed."""

    shape: int
    colour: int
    count: int        # 1..4
    size: int         # 0 small, 1 large
    position: int     # quadrant of a single object (ignored when count > 1)
    background: int
    layout_seed: int  # jitter, quadrants, shades and texture phase

    @property
    def names(self) -> Dict[str, str]:
        return {"shape": SHAPES[self.shape], "colour": COLOUR_NAMES[self.colour],
                "count": COUNT_WORDS[self.count - 1], "size": SIZES[self.size],
                "position": POSITIONS[self.position] if self.count == 1 else "",
                "background": BACKGROUNDS[self.background]}


# ----------------------------------------------------------------------------- rendering
@functools.lru_cache(maxsize=1024)
def _texture_mask(name: str, orient: int, period: int, phase: int, size: int) -> Image.Image:
    """PIL "L" mask (size x size) of the texture's foreground cells (cached: few distinct masks)."""
    yy, xx = np.mgrid[0:size, 0:size]
    if name == "striped":
        coord = yy if orient == 0 else xx if orient == 1 else (xx + yy)
        mask = ((coord + phase) % period) < period // 2
    elif name == "dotted":
        r = period // 4
        cy = (yy + phase) % period - period // 2
        cx = (xx + phase) % period - period // 2
        mask = cy * cy + cx * cx <= r * r
    elif name == "checkered":
        mask = (((yy + phase) // (period // 2)) + ((xx + phase) // (period // 2))) % 2 == 1
    else:
        mask = np.zeros((size, size), dtype=bool)
    return Image.fromarray(mask.astype(np.uint8) * 255, mode="L")


def _clip255(v: float) -> int:
    return 0 if v < 0 else 255 if v > 255 else int(v)


def _background(r: random.Random, kind: int, size: int) -> Image.Image:
    """A size x size RGB grey background with the texture ``BACKGROUNDS[kind]``."""
    base = r.randint(70, 164)
    delta = r.randint(35, 59) * (1 if base < 120 else -1)
    tint = [r.randint(-6, 6) for _ in range(3)]
    period = r.randint(3, 5) * _SS * 2
    phase = r.randrange(period)
    orient = r.randrange(3)
    img = Image.new("RGB", (size, size), tuple(_clip255(base + t) for t in tint))
    if BACKGROUNDS[kind] != "plain":
        hi = tuple(_clip255(base + delta + t) for t in tint)
        img.paste(hi, (0, 0, size, size), _texture_mask(BACKGROUNDS[kind], orient, period, phase, size))
    return img


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    """Draw one ``shape`` of radius ``r`` centred at (cx, cy) on the supersampled canvas."""
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        q = r * 0.85
        draw.rectangle([cx - q, cy - q, cx + q, cy + q], fill=fill)
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx + r * 0.95, cy + r * 0.8), (cx - r * 0.95, cy + r * 0.8)], fill=fill)
    elif shape == "diamond":
        draw.polygon([(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)], fill=fill)
    elif shape == "cross":
        w = r * 0.36
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    elif shape == "ring":
        w = max(r * 0.4, 2.0 * _SS)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=int(round(w)))
    else:  # pragma: no cover - the vocabulary is closed
        raise ValueError(f"unknown shape {shape!r}")


def render(scene: Scene, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """Draw ``scene`` as a (image_size, image_size, 3) uint8 array (deterministic)."""
    r = random.Random(scene.layout_seed)
    big = image_size * _SS
    canvas = _background(r, scene.background, big)
    draw = ImageDraw.Draw(canvas)
    half = big / 2.0
    radius = (0.22 if scene.size == 0 else 0.36) * half                     # of a quadrant's width
    jitter = max(0.5 * half - radius - 1.5 * _SS, 0.0)                      # keeps shapes inside the cell
    cells = [scene.position] if scene.count == 1 else r.sample(range(4), scene.count)
    colour = tuple(_clip255(v + r.randint(-18, 18)) for v in COLOURS[COLOUR_NAMES[scene.colour]])
    for cell in cells:
        cy0 = half * (0.5 + (cell // 2))
        cx0 = half * (0.5 + (cell % 2))
        dx, dy = r.uniform(-jitter, jitter), r.uniform(-jitter, jitter)
        _draw_shape(draw, SHAPES[scene.shape], cx0 + dx, cy0 + dy, radius, colour)
    return np.asarray(canvas.reduce(_SS), dtype=np.uint8)


def render_uint8(scenes: Sequence[Scene], image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """(N, 3, H, W) uint8 tensor for a list of scenes."""
    out = np.empty((len(scenes), image_size, image_size, 3), dtype=np.uint8)   # (N, H, W, 3)
    for i, s in enumerate(scenes):
        out[i] = render(s, image_size)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def render_batch(scenes: Sequence[Scene], image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """(N, 3, H, W) float32 tensor in [0,1] for a list of scenes."""
    return render_uint8(scenes, image_size).float().div_(255.0)


# ----------------------------------------------------------------------------- sampling scenes
def sample_scene(rng: np.random.Generator, allowed: Sequence[Tuple[str, str]] = SEEN, **fixed: int) -> Scene:
    """A random scene with (shape, colour) in ``allowed``; ``fixed`` pins attributes by index
    (``shape=``, ``colour=``, ``count=`` (1..4), ``size=``, ``position=``, ``background=``)."""
    pairs = [(SHAPES.index(s), COLOUR_NAMES.index(c)) for s, c in allowed]
    if "shape" in fixed or "colour" in fixed:
        pairs = [p for p in pairs if fixed.get("shape", p[0]) == p[0] and fixed.get("colour", p[1]) == p[1]]
        if not pairs:
            raise ValueError(f"no allowed (shape, colour) pair matches {fixed}")
    shape, colour = pairs[int(rng.integers(len(pairs)))]
    return Scene(
        shape=shape, colour=colour,
        count=int(fixed["count"]) if "count" in fixed else int(rng.integers(1, 5)),
        size=int(fixed["size"]) if "size" in fixed else int(rng.integers(2)),
        position=int(fixed["position"]) if "position" in fixed else int(rng.integers(4)),
        background=int(fixed["background"]) if "background" in fixed else int(rng.integers(len(BACKGROUNDS))),
        layout_seed=int(rng.integers(2**62)),
    )


# ----------------------------------------------------------------------------- captions
_FRAMES = (
    "a photo of {np}{pos}{bg}.", "{np}{pos}{bg}.", "an image of {np}{bg}{pos}.", "a picture of {np}{pos}{bg}.",
    "a rendering of {np}{bg}{pos}.", "there {be} {np}{pos}{bg}.", "this shows {np}{bg}{pos}.",
    "a drawing of {np}{pos}{bg}.",
)
_BG_FRAMES = (" on a {b} background", " against a {b} backdrop", " on a {b} background", " with a {b} background")
_POS_FRAMES = (" in the {p}", " at the {p}", " in the {p} corner")
_GENERIC = ("shape", "object")
# Probability that a pretraining caption mentions each attribute (the rest are left unsaid).
MENTION_P = {"shape": 0.9, "colour": 0.8, "count": 0.8, "size": 0.8, "position": 0.9, "background": 0.9}


def caption(scene: Scene, rng: Optional[np.random.Generator] = None, full: bool = False) -> str:
    """An English caption of ``scene``; with ``rng``, the wording varies and attributes are
    dropped at random; ``full=True`` mentions every attribute in the canonical wording."""
    n = scene.names
    if rng is None or full:
        keep = dict(shape=True, colour=True, count=True, size=True, position=True, background=True)
        pick = lambda seq: seq[0]  # noqa: E731 - canonical wording
    else:
        u = rng.random(6)
        keep = {k: bool(u[i] < MENTION_P[k]) for i, k in enumerate(MENTION_P)}
        pick = lambda seq: seq[int(rng.integers(len(seq)))]  # noqa: E731
    plural = scene.count > 1
    noun = n["shape"] if keep["shape"] else pick(_GENERIC)
    if plural:
        noun = SHAPE_PLURALS.get(noun, noun + "s")
    if plural:
        det = n["count"] if keep["count"] else pick(("some", "several"))
    else:
        det = pick(("one", "a")) if keep["count"] else "a"
    words = [det]
    if keep["size"]:
        words.append(n["size"])
    if keep["colour"]:
        words.append(n["colour"])
    words.append(noun)
    np_ = " ".join(words)
    if np_.startswith("a ") and words[1][0] in "aeiou":
        np_ = "an " + np_[2:]
    pos = pick(_POS_FRAMES).format(p=n["position"]) if (keep["position"] and scene.count == 1) else ""
    bg = pick(_BG_FRAMES).format(b=n["background"]) if keep["background"] else ""
    frame = pick(_FRAMES)
    return frame.format(np=np_, pos=pos, bg=bg, be="are" if plural else "is")


# ----------------------------------------------------------------------------- pretraining stream
_ATTRS = ("shape_colour", "count", "size", "position", "background")
PRETRAIN_COUNT_P = (0.4, 0.2, 0.2, 0.2)     # single objects more often: position only exists for them


def _vary(base: Scene, rng: np.random.Generator, allowed: Sequence[Tuple[str, str]]) -> Scene:
    """A sibling of ``base``: one or two attributes re-drawn, a fresh layout."""
    k = int(rng.integers(1, 3))
    change = set(rng.choice(len(_ATTRS), size=k, replace=False).tolist())
    fixed = {"count": base.count, "size": base.size, "position": base.position, "background": base.background}
    if 0 not in change:
        fixed.update(shape=base.shape, colour=base.colour)
    if 1 in change:
        others = [c for c in range(1, 5) if c != base.count]
        p = np.array([PRETRAIN_COUNT_P[c - 1] for c in others])
        fixed["count"] = int(rng.choice(others, p=p / p.sum()))
    for i, key, n in ((2, "size", len(SIZES)), (3, "position", len(POSITIONS)), (4, "background", len(BACKGROUNDS))):
        if i in change:
            del fixed[key]
    key = lambda sc: (sc.shape, sc.colour, sc.count, sc.size, sc.position if sc.count == 1 else -1,  # noqa: E731
                      sc.background)
    for _ in range(20):                                                     # make sure something differs
        sib = sample_scene(rng, allowed, **fixed)
        if key(sib) != key(base):
            return sib
    return sib


def pretraining_pairs(n: int, seed: int = 0, group: int = 4) -> Tuple[torch.Tensor, List[Scene]]:
    """``n`` pretraining scenes (held-out combinations never drawn) and their images as uint8
    (N, 3, 32, 32); captions are drawn afresh with :func:`caption` each time a scene is used.

    Scenes come in consecutive groups of ``group`` siblings that differ in one or two attributes,
    so a batch made of whole groups holds hard negatives for every attribute (without them the
    contrastive loss is satisfied by colour and count alone and never learns position or
    background).
    """
    rng = np.random.default_rng([int(seed), 7, 1])
    scenes: List[Scene] = []
    while len(scenes) < int(n):
        base = sample_scene(rng, SEEN, count=int(rng.choice(4, p=PRETRAIN_COUNT_P)) + 1)
        scenes.append(base)
        scenes.extend(_vary(base, rng, SEEN) for _ in range(max(0, group - 1)))
    scenes = scenes[: int(n)]
    return render_uint8(scenes), scenes
