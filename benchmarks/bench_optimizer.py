#!/usr/bin/env python
"""Optimizer step time on an image tower: torch's default implementation vs ucat's (fused kernels).

``ucat.train.trainer.make_optimizer`` asks for torch's fused SGD/AdamW. This times one
``optimizer.step()`` over every parameter of the architecture's image tower (random gradients),
for the per-tensor loop, the ``foreach`` implementation and what ``make_optimizer`` builds.

Example::

    python benchmarks/bench_optimizer.py --arch ViT-B-32 --optimizers sgd,adamw --reps 5
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import common  # noqa: E402


def build_parser():
    p = common.base_parser(__doc__.splitlines()[1])
    p.add_argument("--optimizers", type=common.str_list, default=["sgd", "adamw"])
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.arch, args.warmup, args.reps = "ucat-tiny", 1, 2
    device = common.init_torch(args)
    machine = common.machine_info(device)
    from ucat.models import load_clip
    from ucat.train import TrainConfig
    from ucat.train.trainer import make_optimizer

    params = list(load_clip(args.arch, pretrained=None, device=device).model.visual.parameters())
    n_params = sum(p.numel() for p in params)
    failures = 0
    for name in args.optimizers:
        cfg = TrainConfig(optimizer=name, lr=1e-5)
        cls = {"sgd": torch.optim.SGD, "adamw": torch.optim.AdamW}.get(name)
        if cls is None:
            raise SystemExit(f"--optimizers {name!r}: choose from sgd, adamw")
        extra = {"momentum": cfg.momentum} if name == "sgd" else {}
        variants = {"loop": lambda: cls(params, lr=cfg.lr, foreach=False, **extra),
                    "foreach": lambda: cls(params, lr=cfg.lr, foreach=True, **extra),
                    "ucat": lambda: make_optimizer(cfg, params)}
        for variant, make in variants.items():
            base = {"bench": "optimizer", "optimizer": name, "variant": variant, "arch": args.arch,
                    "params": n_params, "tensors": len(params), "device": str(device)}
            try:
                opt = make()
                for p in params:
                    p.grad = torch.randn_like(p)
                times = common.time_fn(opt.step, device, warmup=args.warmup, reps=args.reps)
                rec = dict(base, status="ok", fused=bool(opt.defaults.get("fused")), **common.summarize(times))
            except Exception as e:       # e.g. foreach unsupported on this device
                rec = dict(base, status="error", error=f"{type(e).__name__}: {str(e)[:300]}")
                failures += variant == "ucat"
            common.emit(dict(rec, warmup=args.warmup, reps=args.reps, machine=machine), args.jsonl)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
