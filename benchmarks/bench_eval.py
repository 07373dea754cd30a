#!/usr/bin/env python
"""Evaluation throughput: PGD-k and CW-k per image (ucat.attacks vs the research-style PGD) and a full `ucat eval`.

Attack lines (``bench: "eval_attack"``), one per attack x variant x precision x batch:

* ``ours``: ``ucat.attacks.create_attack(name, eps, step_size, steps)(classifier, x, y)`` then the
  adversarial logits, on a zero-shot classifier with a cached (C, D) text head, the model's
  parameters left as ``load_clip`` gives them (``requires_grad=True``; the attack takes
  gradients w.r.t. the input only);
* ``ours-frozen``: the same with every parameter ``requires_grad=False`` (what a "frozen" model
  looks like): on CPU under bf16 autocast this hits the slow path noted in
  ../docs/performance.md, so it is measured separately;
* ``baseline`` (PGD only): research-style PGD, CLIP's full forward with the text tower for all
  C classes re-encoded and back-propagated through at every step (benchmarks/baseline.py).

plus a ``summary`` line per attack with the speed-up. ``--full-eval`` also times ``ucat eval`` on one
small dataset end to end (``bench: "eval_full"``).

Example (a CPU-sized cut of the paper's setting; per-step cost is linear in k)::

    python benchmarks/bench_eval.py --arch ViT-B-32 --classes 397 --batch 16 --steps 2
"""
from __future__ import annotations

import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import common  # noqa: E402


def build_parser():
    p = common.base_parser(__doc__.splitlines()[1])
    p.add_argument("--attacks", type=common.str_list, default=["pgd", "cw"])
    p.add_argument("--variants", type=common.str_list, default=["ours", "baseline"],
                   help="ours, ours-frozen, baseline")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--eps", type=float, default=1.0, help="in 1/255 units")
    p.add_argument("--step-size", type=float, default=1.0, help="in 1/255 units")
    p.add_argument("--batch", type=common.int_list, default=[512])
    p.add_argument("--classes", type=int, default=397)
    p.add_argument("--precision", type=common.str_list, default=["fp32"])
    p.add_argument("--mem-limit-gb", type=float, default=None,
                   help="CPU: cap the extra address space once the model exists (a configuration that needs "
                        "more reports 'oom' instead of waking the OOM killer)")
    p.add_argument("--full-eval", action="store_true", help="also time `ucat eval` on one small dataset")
    p.add_argument("--eval-model", default="ucat-tiny", help="model of the --full-eval run")
    p.add_argument("--eval-dataset", default=None, help="dataset of the --full-eval run (default: first of world-suite)")
    p.add_argument("--eval-samples", type=int, default=64)
    p.add_argument("--eval-steps", type=int, default=10)
    return p


def attack_runner(variant, attack_name, bundle, cfg, device):
    """A zero-argument callable doing one attack on the batch, plus the batch."""
    from ucat.attacks import create_attack
    from ucat.units import to_fraction
    from ucat.device import autocast
    from ucat.models import ZeroShotClassifier

    images, labels = common.random_batch(cfg["batch"], bundle.image_size, cfg["classes"], device, cfg["seed"])
    eps, step = to_fraction(cfg["eps"]), to_fraction(cfg["step_size"])
    precision = cfg["precision"]
    if variant == "baseline":
        from baseline import ResearchPGDEval

        if attack_name != "pgd":
            return None
        research = ResearchPGDEval(bundle, cfg["classes"], eps, step, cfg["steps"], precision, device)
        return lambda: research(images, labels)
    head = common.random_text_head(cfg["classes"], common.embed_dim(bundle), cfg["seed"], device)
    classifier = ZeroShotClassifier(bundle.encoder, head, bundle.logit_scale).eval()
    classifier.requires_grad_(variant != "ours-frozen")
    attack = create_attack(attack_name, eps=eps, step_size=step, steps=cfg["steps"])

    def run():
        with autocast(device, precision):
            x_adv = attack(classifier, images, labels)
            with torch.no_grad():
                return classifier(x_adv)

    return run


def bench_attacks(args, device, machine) -> int:
    from ucat.device import check_precision
    from ucat.models import load_clip

    failures = 0
    bundle = load_clip(args.arch, pretrained=None, device=device)
    if device.type == "cpu":
        common.limit_address_space(args.mem_limit_gb)
    for precision in args.precision:
        check_precision(precision, device)
        for batch in args.batch:
            for attack_name in args.attacks:
                base = {"bench": "eval_attack", "attack": attack_name, "arch": args.arch, "batch": batch,
                        "classes": args.classes, "steps": args.steps, "eps_255": args.eps,
                        "step_size_255": args.step_size, "precision": precision, "device": str(device)}
                cfg = dict(base, seed=args.seed, eps=args.eps, step_size=args.step_size)
                results = {}
                for variant in args.variants:
                    rec = {"status": "ok"}
                    try:
                        run = attack_runner(variant, attack_name, bundle, cfg, device)
                        if run is None:
                            continue
                        mem = common.PeakMemory(device)
                        mem.start()
                        times = common.time_fn(run, device, warmup=args.warmup, reps=args.reps)
                        if device.type == "cuda":
                            rec.update(mem.stop())
                        rec.update(common.summarize(times))
                        rec["images_per_s"] = batch / rec["median_s"]
                        rec["s_per_image"] = rec["median_s"] / batch
                        rec["s_per_image_per_step"] = rec["median_s"] / batch / max(1, args.steps)
                    except Exception as e:
                        rec["status"] = "oom" if common.is_oom(e) else "error"
                        rec["error"] = f"{type(e).__name__}: {str(e)[:300]}"
                        rec["traceback"] = traceback.format_exc(limit=4)[-1500:]
                        failures += rec["status"] == "error"
                    results[variant] = rec
                    common.emit(dict(base, variant=variant, warmup=args.warmup, reps=args.reps, **rec,
                                     machine=machine), args.jsonl)
                    bundle.model.zero_grad(set_to_none=True)
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
                summ = dict(base, variant="summary")
                ok = {k: v for k, v in results.items() if v.get("status") == "ok"}
                if "ours" in ok and "baseline" in ok:
                    summ["speedup_vs_baseline"] = round(ok["baseline"]["median_s"] / ok["ours"]["median_s"], 3)
                if "ours-frozen" in ok and "baseline" in ok:       # what `ucat eval` runs
                    summ["frozen_speedup_vs_baseline"] = round(
                        ok["baseline"]["median_s"] / ok["ours-frozen"]["median_s"], 3)
                summ["not_ok"] = {k: v["status"] for k, v in results.items() if v.get("status") != "ok"}
                if "ours" in ok and "ours-frozen" in ok:
                    summ["frozen_params_slowdown"] = round(ok["ours-frozen"]["median_s"] / ok["ours"]["median_s"], 3)
                common.emit(dict(summ, machine=machine), args.jsonl)
    return failures


def bench_full_eval(args, device, machine) -> int:
    """Wall time of ``ucat eval`` (the CLI entry point, in-process) on one small dataset."""
    from ucat.cli import main as ucat_main

    dataset = args.eval_dataset
    if dataset is None:
        from ucat.data import expand_datasets

        dataset = expand_datasets(["world-suite"])[0]
    with tempfile.TemporaryDirectory() as out:
        argv = ["eval", "--model", args.eval_model, "--datasets", dataset, "--attacks", "pgd",
                "--steps", str(args.eval_steps), "--n-samples", str(args.eval_samples),
                "--batch-size", "32", "--device", str(device), "--no-progress", "--out", out]
        base = {"bench": "eval_full", "model": args.eval_model, "dataset": dataset, "attack": "pgd",
                "steps": args.eval_steps, "n_samples": args.eval_samples, "device": str(device),
                "command": "ucat " + " ".join(argv[:-2] + ["--out", "OUT"])}
        rec = {"status": "ok"}
        try:
            t0 = time.perf_counter()
            rc = ucat_main(argv)
            wall = time.perf_counter() - t0
            rec.update(wall_s=wall, images_per_s=args.eval_samples / wall, rc=rc)
            if rc != 0:
                rec["status"] = "error"
        except SystemExit as e:  # argparse errors
            rec.update(status="error", error=f"SystemExit {e.code}")
        except Exception as e:
            rec.update(status="error", error=f"{type(e).__name__}: {str(e)[:300]}",
                       traceback=traceback.format_exc(limit=4)[-1500:])
        common.emit(dict(base, **rec, machine=machine), args.jsonl)
        return int(rec["status"] != "ok")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.arch, args.batch, args.classes, args.steps = "ucat-tiny", [4], 10, 2
        args.warmup, args.reps, args.full_eval = 0, 1, True
        args.eval_samples, args.eval_steps = 8, 2
        if "ours-frozen" not in args.variants:
            args.variants = args.variants + ["ours-frozen"]
    device = common.init_torch(args)
    machine = common.machine_info(device)
    failures = bench_attacks(args, device, machine)
    if args.full_eval:
        failures += bench_full_eval(args, device, machine)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
