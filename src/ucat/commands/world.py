"""``ucat world``: render samples of the procedural world, pretrain its tiny CLIP, test zero-shot.

    ucat world render --out runs/world-samples [--task world-count] [--n 64]
    ucat world pretrain --out runs/world-pretrain [--steps 1500 --seed 0]   (the shipped recipe)
    ucat world zeroshot [--model ucat-world] [--pretrained FILE] [--n 500]
    ucat world geometry [--pretrained FILE] [--eps 4] [--robust-eps 0 1 2 4]   (cosines, UCAT's KL/CE)
"""
from __future__ import annotations

import argparse
import json
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
from torchvision.utils import save_image

from ..io import save_json
from ..models import load_clip
from ..world import scenes as world_scenes
from ..world import tasks as world
from ..world.geometry import cosine_stats, robust_vs_eps, ucat_loss_ratio
from ..world.pretrain import PretrainConfig, chance_levels, pretrain, zero_shot_accuracy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    r = sub.add_parser("render", help="write a PNG grid of scenes and their captions")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--task", default=None, help="a world task (default: pretraining scenes with captions)")
    r.add_argument("--split", default="test")
    r.add_argument("--n", type=int, default=64, help="number of scenes")
    r.add_argument("--seed", type=int, default=0)

    d = PretrainConfig()
    p = sub.add_parser("pretrain", help="contrastively pretrain the tiny CLIP on the world (seeded)")
    p.add_argument("--out", required=True, help="output folder for weights, checksum and record")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--pool", type=int, default=d.pool, help="distinct pretraining scenes")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--eval-n", type=int, default=d.eval_n, help="images per task in the recorded evaluation")
    p.add_argument("--log-every", type=int, default=d.log_every)
    p.add_argument("--device", default=d.device)
    p.add_argument("--logit-scale", type=float, default=d.logit_scale,
                   help="CLIP's logit scale s (default 100, OpenAI CLIP's trained value)")
    p.add_argument("--learn-scale", action="store_true", help="learn s (clamped at 100) instead of holding it fixed")
    p.add_argument("--install", action="store_true",
                   help="also copy the weights, checksum and record into the installed package's assets "
                        "(replaces the shipped ucat-world)")

    z = sub.add_parser("zeroshot", help="zero-shot accuracy of a CLIP on every world task")
    z.add_argument("--model", default="ucat-world")
    z.add_argument("--pretrained", default=None, help="weights file (default: the shipped weights)")
    z.add_argument("--n", type=int, default=500, help="images per task")
    z.add_argument("--seed", type=int, default=0)
    z.add_argument("--split", default="test")
    z.add_argument("--tasks", nargs="+", default=None, help="world tasks (default: all of them)")

    g = sub.add_parser("geometry", help="a world CLIP's cosine statistics, UCAT's lambda*KL/CE, robustness vs eps")
    g.add_argument("--model", default="ucat-world")
    g.add_argument("--pretrained", default=None, help="weights file (default: the shipped weights)")
    g.add_argument("--n", type=int, default=500, help="images per suite task for the cosine statistics")
    g.add_argument("--eps", type=float, default=4.0, help="UCAT's training eps for the KL/CE ratio (1/255 units)")
    g.add_argument("--robust-eps", type=float, nargs="*", default=[],
                   help="also PGD-10 robust accuracy at these eps (1/255 units), 200 images per task")
    g.add_argument("--json", default=None, help="also write the numbers to this JSON file")


def run(args: argparse.Namespace) -> int:
    return {"render": _render, "pretrain": _pretrain, "zeroshot": _zeroshot,
            "geometry": _geometry}[args.action](args)


def _render(args) -> int:
    if args.n < 1:
        raise ValueError(f"--n {args.n}: give at least 1")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.task:
        ds = world.load_task(args.task, args.split, n=args.n, seed=args.seed)
        images = ds.images
        lines = [f"{i}\t{ds.classes[int(y)]}\t{ds.captions(i)}" for i, y in enumerate(ds.labels)]
        name = args.task
    else:
        images, scenes = world_scenes.pretraining_pairs(args.n, args.seed)
        images = images.float() / 255.0
        rng = np.random.default_rng([args.seed, 11])
        lines = [f"{i}\t{world_scenes.caption(s, rng)}" for i, s in enumerate(scenes)]
        name = "pretraining"
    png = out / f"{name}.png"
    save_image(images, str(png), nrow=int(max(1, round(len(images) ** 0.5))), padding=1)
    (out / f"{name}.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {png} and {out / (name + '.txt')}")
    for line in lines[:8]:
        print("  " + line)
    return 0


def _pretrain(args) -> int:
    cfg = PretrainConfig(out=args.out, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                         warmup=args.warmup, weight_decay=args.weight_decay, pool=args.pool, seed=args.seed,
                         threads=args.threads, eval_n=args.eval_n, log_every=args.log_every, device=args.device,
                         logit_scale=args.logit_scale, learn_scale=args.learn_scale)
    record = pretrain(cfg)
    _print_accuracy(record["zero_shot_accuracy"])
    if args.install:
        assets = Path(str(resources.files("ucat") / "assets"))
        assets.mkdir(parents=True, exist_ok=True)
        for suffix in (".safetensors", ".sha256", ".json"):
            shutil.copyfile(Path(args.out) / f"{cfg.arch}{suffix}", assets / f"{cfg.arch}{suffix}")
        print(f"installed into {assets}")
    return 0


def _zeroshot(args) -> int:
    tasks = args.tasks or list(world.TASKS)
    unknown = [t for t in tasks if t not in world.TASKS]
    if unknown:
        raise ValueError(f"unknown world task(s) {', '.join(unknown)}; known: {', '.join(world.TASKS)}")
    bundle = load_clip(args.model, args.pretrained)
    acc = zero_shot_accuracy(bundle, tasks, args.n, args.seed, args.split)
    _print_accuracy(acc)
    return 0


def _geometry(args) -> int:
    if args.n < 2:
        raise ValueError(f"--n {args.n}: give at least 2 images per task")
    if args.eps < 0 or any(e < 0 for e in args.robust_eps):
        raise ValueError("--eps / --robust-eps: budgets are >= 0 (1/255 units)")
    bundle = load_clip(args.model, args.pretrained)
    stats = cosine_stats(bundle, n=args.n)
    ratio = ucat_loss_ratio(bundle, eps=args.eps)
    print(f"logit scale s = {bundle.logit_scale:.2f}")
    print(f"{'task':18s} {'mean cos':>9s} {'std(cls)':>9s} {'true':>7s} {'wrong*':>7s} {'margin':>7s}")
    for task, v in stats.items():
        print(f"{task:18s} {v['mean']:9.3f} {v['std_across_classes']:9.3f} {v['true']:7.3f} "
              f"{v['best_wrong']:7.3f} {v['margin']:7.3f}")
    print(f"UCAT at the start of fine-tuning (world-train, PGD-2 at eps {args.eps:g}/255): CE {ratio['ce']:.3f}, "
          f"lambda*KL {ratio['kl_weighted']:.3f} (lambda {ratio['lambda']:.3e}), lambda*KL/CE {ratio['ratio']:.2f}; "
          f"mean |cos shift| {ratio['cos_shift']:.4f}")
    result = {"logit_scale": bundle.logit_scale, "cosines": stats, "ucat_start": {"eps": args.eps, **ratio}}
    if args.robust_eps:
        result["robust_vs_eps"] = robust_vs_eps(bundle, args.robust_eps)
        for eps, row in result["robust_vs_eps"].items():
            print(f"PGD-10 eps {eps}/255: suite mean {row['mean']:.1f}%  " +
                  " ".join(f"{t.removeprefix('world-')} {a:.0f}" for t, a in row.items() if t != "mean"))
    if args.json:
        save_json(args.json, result)
        print(f"wrote {args.json}")
    return 0


def _print_accuracy(acc: dict) -> None:
    chance = chance_levels(list(acc))
    print(f"{'task':18s} {'acc %':>7s} {'chance %':>9s}")
    for t, a in acc.items():
        print(f"{t:18s} {a:7.2f} {chance[t]:9.2f}")
    print(json.dumps(acc))
