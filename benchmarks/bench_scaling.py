#!/usr/bin/env python
"""Scaling of ucat's training step: step time against the number of classes and against the batch size.

Once the (C, D) text head exists, the only class-dependent work in a step is the (B, D) x (D, C)
logits product and the per-class loss terms, so the step time should stay flat from 10 to 1000
classes (the research code's grows linearly: it re-encodes C prompts per call). Against batch
size the time should grow linearly (constant images/s) once the batch fills the device.

One JSON line per configuration (``bench: "scaling"``) and a summary line per sweep with
``max_over_min`` (the flatness: 1.0 is perfectly flat). Runs in-process (no memory numbers), the
configurations of a sweep timed round-robin so that a drifting machine load hits them alike.

Example::

    python benchmarks/bench_scaling.py --arch ViT-B-32 --batch 8 --classes 10,100,200,500,1000
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from bench_train_step import make_ours  # noqa: E402


def build_parser():
    p = common.base_parser(__doc__.splitlines()[1])
    p.add_argument("--method", default="ucat")
    p.add_argument("--classes", type=common.int_list, default=[10, 100, 200, 500, 1000])
    p.add_argument("--batch", type=int, default=8, help="batch of the classes sweep")
    p.add_argument("--batches", type=common.int_list, default=[1, 2, 4, 8, 16],
                   help="batch sizes of the batch sweep (at --sweep-classes classes)")
    p.add_argument("--sweep-classes", type=int, default=200)
    p.add_argument("--attack-steps", type=int, default=2)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--sweeps", type=common.str_list, default=["classes", "batch"])
    return p


def sweep(args, device, machine, configs, sweep_name):
    """Time every (classes, batch) config round-robin in this process (a drifting machine load then
    hits them alike): ``--warmup`` untimed rounds, ``--reps`` timed rounds."""
    steps = []
    for classes, batch in configs:
        cfg = {"method": args.method, "arch": args.arch, "batch": batch, "classes": classes, "seed": args.seed,
               "attack_steps": args.attack_steps, "eps": 1.0, "step_size": 1.0, "precision": args.precision}
        steps.append(make_ours(cfg, device)[0])
    times = [[] for _ in configs]
    for r in range(args.warmup + args.reps):
        for i in range(len(configs)):
            j = (i + r) % len(configs)
            t = common.time_fn(steps[j], device, warmup=0, reps=1)[0]
            if r >= args.warmup:
                times[j].append(t)
    recs = []
    for (classes, batch), ts in zip(configs, times):
        rec = {"bench": "scaling", "sweep": sweep_name, "method": args.method, "arch": args.arch, "batch": batch,
               "classes": classes, "attack_steps": args.attack_steps, "precision": args.precision,
               "device": str(device), **common.summarize(ts), "warmup": args.warmup, "reps": args.reps,
               "interleaved": True}
        rec["images_per_s"] = batch / rec["median_s"]
        common.emit(dict(rec, machine=machine), args.jsonl)
        recs.append(rec)
    return recs


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.arch, args.classes, args.batch, args.batches = "ucat-tiny", [10, 1000], 4, [2, 4]
        args.sweep_classes, args.warmup, args.reps = 10, 1, 1
    device = common.init_torch(args)
    machine = common.machine_info(device)
    from ucat.device import check_precision

    check_precision(args.precision, device)
    if "classes" in args.sweeps:
        recs = sweep(args, device, machine, [(c, args.batch) for c in args.classes], "classes")
        med = [r["median_s"] for r in recs]
        common.emit({"bench": "scaling", "sweep": "classes", "variant": "summary", "arch": args.arch,
                     "batch": args.batch, "classes": args.classes, "precision": args.precision,
                     "median_s": med, "max_over_min": round(max(med) / min(med), 4),
                     "machine": machine}, args.jsonl)
    if "batch" in args.sweeps:
        recs = sweep(args, device, machine, [(args.sweep_classes, b) for b in args.batches], "batch")
        ips = [r["images_per_s"] for r in recs]
        common.emit({"bench": "scaling", "sweep": "batch", "variant": "summary", "arch": args.arch,
                     "classes": args.sweep_classes, "batches": args.batches, "precision": args.precision,
                     "images_per_s": [round(v, 3) for v in ips], "s_per_image": [round(1 / v, 5) for v in ips],
                     "machine": machine}, args.jsonl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
