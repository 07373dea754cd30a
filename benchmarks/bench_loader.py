#!/usr/bin/env python
"""Data-loading throughput: images/s of ucat's loader (JPEG decode + CLIP preprocessing) per worker count.

A training or evaluation step can only run as fast as the loader feeds it. This times
``ucat.data.make_loader`` over an image folder, the path ``ucat train`` and ``ucat eval`` take for
folder/CSV datasets and the 16 benchmarks: open the file, decode, resize to the model's input
size, centre-crop, convert to a float tensor, collate (and pin, on CUDA). With no ``--folder`` it
writes ``--images`` synthetic JPEG photos of ``--size`` (default 500x375, ImageNet's typical
shape) to a temporary folder first, so the numbers are comparable between machines.

``--target-img-s`` (e.g. a step's images/s from bench_train_step.py) adds how many workers it
would take to keep up, from the measured rate per worker.

``--cache on|both`` also times the preprocessed uint8 cache (:mod:`ucat.data.cache`, ``ucat data
cache``): it is built once (``mode: cache-build``, the decode rate), then read through the same
``make_loader`` (``mode: cache``: memory-mapped uint8 pixels, converted to float32 in the collate on
a CPU device, on the GPU with a CUDA one). On a CPU device ``mode: cache-uint8`` is what a CUDA run's
workers do (uint8 batches, the float conversion left to the device). Every cached batch is checked
against the uncached one (``identical``) when both are timed.

Example::

    python benchmarks/bench_loader.py --workers 0,1,2 --batch 64 --images 512
    python benchmarks/bench_loader.py --folder /data/imagenet/val --workers 2 --target-img-s 2400
    python benchmarks/bench_loader.py --images 512 --workers 0,1 --cache both --target-img-s 2400
"""
from __future__ import annotations

import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import common  # noqa: E402


def build_parser():
    p = common.base_parser(__doc__.splitlines()[1])
    p.add_argument("--folder", default=None, help="an image folder (one sub-folder per class); default: synthetic JPEGs")
    p.add_argument("--images", type=int, default=512, help="synthetic images to write (without --folder)")
    p.add_argument("--size", default="500x375", help="synthetic image size WxH")
    p.add_argument("--classes", type=int, default=10, help="synthetic class folders")
    p.add_argument("--image-size", type=int, default=224, help="model input size (resize + centre crop)")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=common.int_list_or_zero, default=[0, 1, 2])
    p.add_argument("--target-img-s", type=float, default=None,
                   help="a step's images/s to keep up with; reports the workers that would need")
    p.add_argument("--cache", choices=("off", "on", "both"), default="off",
                   help="time the uncached loader (off), the uint8 cache (on), or both")
    return p


def write_synthetic_folder(root: Path, n: int, size: str, classes: int, seed: int) -> Path:
    """``n`` JPEG photos (quality 90) with smooth structure plus noise, as real photos compress."""
    import numpy as np
    from PIL import Image

    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size {size!r}: give WIDTHxHEIGHT such as 500x375") from None
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        d = root / f"class_{i % classes:03d}"
        d.mkdir(parents=True, exist_ok=True)
        f = rng.uniform(0.005, 0.05, size=(3, 2))
        ph = rng.uniform(0, 2 * np.pi, size=3)
        img = np.stack([127 + 100 * np.sin(f[c, 0] * xx + f[c, 1] * yy + ph[c]) for c in range(3)], -1)
        img += rng.normal(0, 12, size=img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / f"{i:06d}.jpg", quality=90)
    return root


def _uint8_loader(ds, batch: int, workers: int, device: torch.device):
    """The CPU share of a CUDA run over a cache: uint8 batches (pinned on CUDA), no float conversion."""
    from ucat.data.loader import collate_uint8

    return torch.utils.data.DataLoader(ds, batch_size=batch, num_workers=workers, collate_fn=collate_uint8,
                                       pin_memory=device.type == "cuda")


def time_loader(ds, batch: int, workers: int, device: torch.device, warmup: int, reps: int, uint8: bool = False):
    """Seconds per full pass over ``ds`` (workers started inside each pass, as in evaluation)."""
    from ucat.data import make_loader

    def one_pass():
        n = 0
        loader = _uint8_loader(ds, batch, workers, device) if uint8 else \
            make_loader(ds, batch_size=batch, num_workers=workers, device=device)
        for images, labels, _ in loader:
            n += int(labels.shape[0])
        return n

    for _ in range(max(0, warmup)):
        one_pass()
    times, n = [], 0
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        n = one_pass()
        times.append(time.perf_counter() - t0)
    return times, n


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.images, args.size, args.classes, args.batch, args.workers = 16, "96x72", 2, 8, [0, 1]
        args.image_size, args.warmup, args.reps = 64, 0, 1
    device = common.init_torch(args)
    machine = common.machine_info(device)
    from ucat.data import build_dataset

    with tempfile.TemporaryDirectory() as tmp:
        if args.folder:
            folder, source = Path(args.folder), "folder"
        else:
            t0 = time.perf_counter()
            folder = write_synthetic_folder(Path(tmp) / "images", args.images, args.size, args.classes, args.seed)
            source = f"synthetic {args.size} JPEG q90 (written in {time.perf_counter() - t0:.1f} s)"
        ds = build_dataset(str(folder), image_size=args.image_size)
        pin = device.type == "cuda"
        base = {"bench": "loader", "source": source, "images": len(ds), "image_size": args.image_size,
                "batch": args.batch, "pin_memory": pin, "device": str(device), "warmup": args.warmup,
                "reps": args.reps, "machine": machine}
        modes = [("decode", ds, False)] if args.cache != "on" else []
        if args.cache != "off":
            cached, build_rec = build_cache_timed(ds, Path(tmp) / "cache", args)
            common.emit(dict(base, **build_rec), args.jsonl)
            modes += [("cache", cached, False)] + ([("cache-uint8", cached, True)] if device.type == "cpu" else [])
            if args.cache == "both":
                base["identical"] = same_batches(ds, cached, args.batch)
        failures = 0 if base.get("identical", True) else 1
        for mode, data, uint8 in modes:
            for w in args.workers:
                times, n = time_loader(data, args.batch, w, device, args.warmup, args.reps, uint8)
                failures += n != len(ds)
                rec = dict(base, mode=mode, workers=w, images_seen=n, **common.summarize(times))
                common.emit(with_rates(rec, n / rec["median_s"], max(1, w), args.target_img_s), args.jsonl)
    return 1 if failures else 0


def with_rates(rec: dict, images_per_s: float, procs: int, target) -> dict:
    """images/s, images/s per loading process (core), and the cores a target step rate needs."""
    rec = dict(rec, images_per_s=images_per_s, images_per_s_per_process=images_per_s / procs)
    if target:
        rec["target_images_per_s"] = target
        rec["workers_for_target"] = math.ceil(target / rec["images_per_s_per_process"])
    return rec


def build_cache_timed(ds, cache_dir: Path, args):
    """(the cache of ``ds``, the record of building it in one process: the decode-and-resize rate)."""
    from ucat.data.cache import build_cache

    t0 = time.perf_counter()
    cached = build_cache(ds, cache_dir, num_workers=0)
    seconds = time.perf_counter() - t0
    rec = {"mode": "cache-build", "workers": 0, "median_s": seconds, "images_seen": len(cached),
           "cache_bytes": cached.path.stat().st_size}
    return cached, with_rates(rec, len(cached) / seconds, 1, args.target_img_s)


def same_batches(ds, cached, batch: int) -> bool:
    """Whether every batch read through the cache equals the uncached batch bit for bit."""
    from ucat.data import make_loader

    pairs = zip(make_loader(ds, batch_size=batch), make_loader(cached, batch_size=batch))
    return all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in pairs)


if __name__ == "__main__":
    sys.exit(main())
