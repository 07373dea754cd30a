#!/usr/bin/env python
"""Training-step throughput and peak memory: ucat's step vs the research-style baseline vs the floor.

For each method x precision x batch size it measures up to three variants, each as one JSON line:

* ``ours``: ``ucat.methods.create_method(method, classifier, reference, attack)`` plus the
  optimizer step, as ``ucat train`` runs it (cached text head, attack gradients w.r.t. the
  input only);
* ``baseline``: the research-style step of ``baseline.py`` (text tower re-encoded and
  back-propagated through on every call, attack via ``loss.backward()``);
* ``floor``: the image-tower passes one step cannot avoid, alone: ``attack_steps`` forward +
  input-gradient passes, the method's trainable forward+backward passes, and its no-grad passes
  of the frozen model (``FLOOR_PASSES``).

then a ``summary`` line with the ratios (baseline/ours speed-up, ours/floor overhead, memory).
On CPU every variant runs in a fresh subprocess (peak RSS; see common.py); on CUDA in-process.

Example (this machine's paper-setting row)::

    python benchmarks/bench_train_step.py --arch ViT-B-32 --methods ucat --batch 8 --classes 200 \
        --attack-steps 2 --precision fp32 --baseline-reps 1 --baseline-warmup 0
"""
from __future__ import annotations

import copy
import json
import statistics
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import common  # noqa: E402

# Image-tower passes per step beyond the attack: (trainable forward+backward batches, frozen no-grad batches).
# From each method's loss (the official codes of UCAT, TeCoA, PMG-AFT, FARE, TGA-ZSR): UCAT: f_theta(x_adv) and f_0(x); TeCoA:
# f_theta(x_adv); FARE: f_theta(x_adv) and f_0(x); PMG-AFT: f_theta(x_adv), f_theta(x) and f_0(x_adv);
# TGA-ZSR: f_theta(x_adv), f_theta(x) and f_0(x); clean: f_theta(x), no attack.
FLOOR_PASSES = {
    "ucat": (1, 1), "tecoa": (1, 0), "fare": (1, 1), "pmg-aft": (2, 1), "tga-zsr": (2, 1), "clean": (1, 0),
}
NO_ATTACK = {"clean"}


def build_parser():
    p = common.base_parser(__doc__.splitlines()[1])
    p.add_argument("--methods", type=common.str_list, default=["ucat", "tecoa"])
    p.add_argument("--variants", type=common.str_list, default=["ours", "baseline", "floor"],
                   help="ours, baseline, floor, ours-autocast-ref (ours with the reference under autocast, before 2026-12-03)")
    p.add_argument("--batch", type=common.int_list, default=[8])
    p.add_argument("--classes", type=common.int_list, default=[200])
    p.add_argument("--attack-steps", type=int, default=2)
    p.add_argument("--eps", type=float, default=1.0, help="in 1/255 units")
    p.add_argument("--step-size", type=float, default=1.0, help="in 1/255 units")
    p.add_argument("--precision", type=common.str_list, default=["fp32"], help="fp32,bf16,fp16")
    p.add_argument("--baseline-warmup", type=int, default=None, help="default: --warmup")
    p.add_argument("--baseline-reps", type=int, default=None, help="default: --reps")
    p.add_argument("--isolate", default="auto", choices=["auto", "yes", "no"],
                   help="fresh subprocess per variant (auto: on CPU)")
    p.add_argument("--mem-limit-gb", type=float, default=None,
                   help="CPU: cap each worker's extra address space (a larger config reports 'oom')")
    p.add_argument("--worker-timeout", type=float, default=None, help="seconds per variant (isolated)")
    p.add_argument("--compile", action="store_true", help="torch.compile the trainable image tower (CUDA)")
    p.add_argument("--interleave", action="store_true",
                   help="one process, variants timed in alternation (round-robin) so that a shared, drifting "
                        "machine load hits them alike; no CPU memory numbers (use the isolated mode for those)")
    p.add_argument("--flops", action="store_true", help="count the floor's FLOPs (batch 1) and report TFLOP/s")
    p.add_argument("--loss-check", action="store_true",
                   help="per method and batch: loss of one batch in fp32 vs bf16 (same weights, same start)")
    p.add_argument("--worker", default=None, help=argparse_suppress())
    return p


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


# --------------------------------------------------------------------------- variants

def _setup_common(cfg, device):
    from ucat.models import load_clip

    torch.manual_seed(cfg["seed"])
    bundle = load_clip(cfg["arch"], pretrained=None, device=device)
    images, labels = common.random_batch(cfg["batch"], bundle.image_size, cfg["classes"], device, cfg["seed"])
    return bundle, images, labels


def _drop_text_tower(bundle):
    """Free the text tower where it is not used (our step and the floor never run it)."""
    for name in ("transformer", "token_embedding"):
        if hasattr(bundle.model, name):
            delattr(bundle.model, name)


def _maybe_compile(encoder, cfg, device):
    if cfg.get("compile") and device.type == "cuda":
        encoder.visual = torch.compile(encoder.visual)
    return encoder


def make_ours(cfg, device):
    """ucat's step, exactly as the trainer runs it."""
    from ucat.attacks import create_attack
    from ucat.units import to_fraction
    from ucat.device import autocast
    from ucat.methods import create_method
    from ucat.models import ZeroShotClassifier
    from ucat.train import TrainConfig
    from ucat.train.trainer import make_optimizer

    bundle, images, labels = _setup_common(cfg, device)
    reference = copy.deepcopy(bundle.encoder).eval().requires_grad_(False)
    encoder = _maybe_compile(bundle.encoder, cfg, device)
    encoder.requires_grad_(True)
    head = common.random_text_head(cfg["classes"], common.embed_dim(bundle), cfg["seed"], device)
    classifier = ZeroShotClassifier(encoder, head, bundle.logit_scale)
    _drop_text_tower(bundle)
    attack = None
    if cfg["method"] not in NO_ATTACK:
        attack = create_attack("pgd", eps=to_fraction(cfg["eps"]), step_size=to_fraction(cfg["step_size"]),
                               steps=cfg["attack_steps"])
    method = create_method(cfg["method"], classifier, reference, attack)
    method.to(device)
    params = [p for p in classifier.parameters() if p.requires_grad]
    opt = make_optimizer(TrainConfig(optimizer="sgd", lr=1e-5, momentum=0.9, weight_decay=0.0), params)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg["precision"] == "fp16")
    precision = cfg["precision"]

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            out = method(images, labels)
        scaler.scale(out["loss"]).backward()
        scaler.step(opt)
        scaler.update()
        return out

    step.method, step.batch = method, (images, labels)
    return step, None


def make_ours_autocast_ref(cfg, device):
    """``ours`` as it was before the bf16 reference copy: the frozen reference's no-grad forward under
    autocast itself (for the before/after comparison in docs/performance.md)."""
    step, flops_fn = make_ours(cfg, device)
    step.method._reference_lowp = lambda encoder, images: encoder(images)
    return step, flops_fn


def loss_check(cfg, device, other="bf16"):
    """The method's loss (and parts) on one batch in fp32 and in ``other`` precision, same weights and
    same attack random start: how far autocast moves the loss (the Dirichlet terms stay fp32+)."""
    from ucat.device import autocast

    step, _ = make_ours(dict(cfg, precision="fp32"), device)
    method, (images, labels) = step.method, step.batch
    out = {}
    for prec in ("fp32", other):
        torch.manual_seed(cfg["seed"])
        with autocast(device, prec):
            res = method(images, labels)
        out[prec] = {k: float(v.detach()) for k, v in res.items() if torch.is_tensor(v) and v.ndim == 0}
    rel = {k: abs(out[other][k] - out["fp32"][k]) / max(abs(out["fp32"][k]), 1e-12) for k in out["fp32"]}
    return {"variant": "loss_check", "compare": f"fp32 vs {other}", "loss_fp32": out["fp32"],
            f"loss_{other}": out[other], "rel_diff": rel, "loss_rel_diff": rel.get("loss")}


def make_baseline(cfg, device):
    """The research-style step (benchmarks/baseline.py)."""
    from baseline import ResearchStep
    from ucat.units import to_fraction

    bundle, images, labels = _setup_common(cfg, device)
    steps = 0 if cfg["method"] in NO_ATTACK else cfg["attack_steps"]
    research = ResearchStep(bundle, cfg["method"], cfg["classes"], to_fraction(cfg["eps"]),
                            to_fraction(cfg["step_size"]), steps, cfg["precision"], device)
    return (lambda: research(images, labels)), None


def make_floor(cfg, device):
    """The unavoidable image-tower passes of one step, nothing else (no loss, no optimizer).

    Each pass runs the fastest way ucat knows, so that the floor is a floor: all passes inside one
    autocast context, as the trainer opens one per step (autocast caches its cast of a trainable
    weight for the whole context; one context per pass re-cast the weights 3 times per step), and
    the frozen no-grad passes through ``ucat.methods.frozen.LowPrecisionCopy`` as ``ours`` runs them
    (under CPU autocast a bf16 copy without autocast; autocast itself sends a frozen ViT's no-grad
    attention through a path that copies each in-projection weight L times, see that module)."""
    from ucat.device import autocast
    from ucat.methods.frozen import LowPrecisionCopy

    bundle, images, labels = _setup_common(cfg, device)
    if cfg["method"] not in FLOOR_PASSES:
        raise ValueError(f"no floor definition for method {cfg['method']!r}; add it to FLOOR_PASSES")
    n_train, n_frozen = FLOOR_PASSES[cfg["method"]]
    k = 0 if cfg["method"] in NO_ATTACK else cfg["attack_steps"]
    frozen = copy.deepcopy(bundle.encoder).eval().requires_grad_(False)
    frozen_forward = LowPrecisionCopy()
    encoder = _maybe_compile(bundle.encoder, cfg, device)
    encoder.requires_grad_(True)
    _drop_text_tower(bundle)
    precision = cfg["precision"]

    def passes(x):
        with autocast(device, precision):                       # one context, as the trainer's step
            for _ in range(k):                                   # attack: forward + input gradient
                xa = x.detach().requires_grad_(True)
                out = encoder(xa).float().square().sum()
                torch.autograd.grad(out, xa)
            loss = sum(encoder(x).float().square().mean() for _ in range(n_train))   # trainable forward(s)
            with torch.no_grad():                                # frozen reference, no grad
                for _ in range(n_frozen):
                    frozen_forward(frozen, x)
        loss.backward()                                          # outside autocast, as the trainer
        encoder.zero_grad(set_to_none=True)

    flops_fn = None
    if cfg.get("flops"):
        def flops_fn():
            # FLOPs per image = F * (2 per attack pass + 3 per trainable pass + 1 per frozen pass),
            # F = one forward (counted); a backward costs 2F with weight gradients, F without.
            # with grad enabled on the trainable tower: under no_grad nn.MultiheadAttention takes a
            # fused fast path whose projections the counter does not see
            with autocast(device, precision):
                fwd = common.flop_count(lambda: encoder(images[:1]))
            return fwd * (2 * k + 3 * n_train + n_frozen)
    return (lambda: passes(images)), flops_fn


VARIANTS = {"ours": make_ours, "baseline": make_baseline, "floor": make_floor,
            "ours-autocast-ref": make_ours_autocast_ref}


def measure(cfg, device):
    """Build one variant, time it, measure its peak memory: one result dict."""
    warmup, reps = cfg["warmup"], cfg["reps"]
    rec = {"status": "ok"}
    try:
        t0 = time.perf_counter()
        step, flops_fn = VARIANTS[cfg["variant"]](cfg, device)
        rec["setup_s"] = round(time.perf_counter() - t0, 3)
        if flops_fn is not None:
            rec["flops_per_image"] = flops_fn()
        mem = common.PeakMemory(device)
        mem.start()
        times = common.time_fn(step, device, warmup=warmup, reps=reps)
        rec.update(mem.stop())
        rec.update(common.summarize(times))
        rec["images_per_s"] = cfg["batch"] / rec["median_s"]
    except Exception as e:  # one failing variant must not hide the others
        rec["status"] = "oom" if common.is_oom(e) else "error"
        rec["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        if rec["status"] == "error":
            rec["traceback"] = traceback.format_exc(limit=4)[-1500:]
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rec


def interleaved(args, base, device):
    """Build every variant in this process, then time them round-robin: ``--warmup`` untimed rounds,
    ``--reps`` timed rounds, the order rotated each round. Returns {variant: result}."""
    steps, out = {}, {}
    for variant in args.variants:
        cfg = dict(base, variant=variant, seed=args.seed, eps=args.eps, step_size=args.step_size,
                   flops=bool(args.flops and variant == "floor"))
        try:
            step, flops_fn = VARIANTS[variant](cfg, device)
            steps[variant] = step
            out[variant] = {"status": "ok", "times_s": []}
            if flops_fn is not None:
                out[variant]["flops_per_image"] = flops_fn()
        except Exception as e:
            out[variant] = {"status": "oom" if common.is_oom(e) else "error", "error": f"{type(e).__name__}: {e}"}
    names = list(steps)
    for r in range(args.warmup + args.reps):
        order = names[r % len(names):] + names[:r % len(names)] if names else []
        for v in order:
            try:
                t = common.time_fn(steps[v], device, warmup=0, reps=1)[0]
            except Exception as e:
                out[v] = {"status": "oom" if common.is_oom(e) else "error", "error": f"{type(e).__name__}: {e}"}
                names.remove(v)
                continue
            if r >= args.warmup:
                out[v]["times_s"].append(t)
    for v in names:
        times = out[v].pop("times_s")
        out[v].update(common.summarize(times), images_per_s=base["batch"] / common.summarize(times)["median_s"],
                      warmup=args.warmup, reps=args.reps, interleaved=True)
    return out


def worker_main(payload: str) -> int:
    cfg = json.loads(payload)
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    from ucat.device import resolve_device

    device = resolve_device(cfg["device"])
    common.limit_address_space(cfg.get("mem_limit_gb"))
    rec = measure(cfg, device)
    print(json.dumps(rec), flush=True)
    return 0


def summary_line(base, results):
    ours, bl, fl = (results.get(v, {}) for v in ("ours", "baseline", "floor"))
    ok = lambda r: r.get("status") == "ok"  # noqa: E731
    s = dict(base, bench="train_step", variant="summary")
    if ok(ours) and ok(bl):
        s["speedup_vs_baseline"] = round(bl["median_s"] / ours["median_s"], 3)
        if bl.get("peak_mem_bytes") and ours.get("peak_mem_bytes"):
            s["mem_ratio_ours_over_baseline"] = round(ours["peak_mem_bytes"] / bl["peak_mem_bytes"], 4)
    if ok(ours) and ok(fl):
        s["overhead_over_floor"] = round(ours["median_s"] / fl["median_s"] - 1.0, 4)
        paired = list(zip(ours.get("times_s") or [], fl.get("times_s") or []))
        if base.get("interleaved") and len(paired) > 1:   # same round, same load: the median of per-round ratios
            s["overhead_over_floor_paired"] = round(statistics.median(o / f for o, f in paired) - 1.0, 4)
    if ok(fl) and fl.get("flops_per_image"):
        flops_step = fl["flops_per_image"] * base["batch"]
        s["floor_tflop_per_step"] = round(flops_step / 1e12, 4)
        if ok(ours):
            s["ours_tflops"] = round(flops_step / ours["median_s"] / 1e12, 2)
            peak = base.get("dense_bf16_peak_tflops")
            if peak:
                s["ours_fraction_of_bf16_peak"] = round(flops_step / ours["median_s"] / 1e12 / peak, 4)
    return s


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    if args.smoke:
        args.arch, args.batch, args.classes, args.warmup, args.reps = "ucat-tiny", [4], [10], 0, 1
        args.methods = args.methods if args.methods != ["ucat", "tecoa"] else ["ucat"]
        args.flops = args.loss_check = True
        if args.isolate == "auto":        # seconds, not a fresh interpreter per variant
            args.isolate, args.interleave = "no", True
    device = common.init_torch(args)
    isolate = common.should_isolate(args.isolate, device) and not args.interleave   # interleaved: one process
    machine = common.machine_info(device)
    failures = 0
    for precision in args.precision:
        from ucat.device import check_precision

        check_precision(precision, device)
        for batch, classes in [(b, c) for b in args.batch for c in args.classes]:
            for method in args.methods:
                base = {"bench": "train_step", "method": method, "arch": args.arch, "batch": batch,
                        "classes": classes, "attack_steps": args.attack_steps, "eps_255": args.eps,
                        "step_size_255": args.step_size, "precision": precision, "device": str(device),
                        "compile": bool(args.compile), "isolated": isolate,
                        "dense_bf16_peak_tflops": common.dense_bf16_peak_tflops(device)}
                if args.interleave:
                    results = interleaved(args, base, device)
                    for variant, rec in results.items():
                        failures += rec.get("status") not in ("ok", "oom")
                        common.emit(dict(base, variant=variant, **rec, machine=machine), args.jsonl)
                    common.emit(dict(summary_line(dict(base, interleaved=True), results), machine=machine), args.jsonl)
                    continue
                results = {}
                for variant in args.variants:
                    is_bl = variant == "baseline"
                    warmup = args.baseline_warmup if (is_bl and args.baseline_warmup is not None) else args.warmup
                    reps = args.baseline_reps if (is_bl and args.baseline_reps is not None) else args.reps
                    cfg = dict(base, variant=variant, warmup=warmup, reps=reps, seed=args.seed,
                               device=str(device), threads=args.threads, mem_limit_gb=args.mem_limit_gb,
                               eps=args.eps, step_size=args.step_size,
                               flops=bool(args.flops and variant == "floor"))
                    if isolate:
                        rec = common.run_worker(Path(__file__), cfg, timeout=args.worker_timeout)
                    else:
                        rec = measure(cfg, device)
                        if device.type != "cuda":   # the RSS high-water mark needs a fresh process
                            for k in ("peak_mem_bytes", "peak_rss_bytes", "rss_after_setup_bytes"):
                                rec.pop(k, None)
                            rec["peak_mem_method"] = "not measured (CPU in-process; use --isolate yes)"
                    results[variant] = rec
                    if rec.get("status") not in ("ok", "oom"):
                        failures += 1
                    common.emit(dict(base, variant=variant, warmup=warmup, reps=reps, **rec,
                                     machine=machine), args.jsonl)
                common.emit(dict(summary_line(base, results), machine=machine), args.jsonl)
    if args.loss_check:
        for batch, classes in [(b, c) for b in args.batch for c in args.classes]:
            for method in args.methods:
                base = {"bench": "train_step", "method": method, "arch": args.arch, "batch": batch,
                        "classes": classes, "attack_steps": args.attack_steps, "device": str(device)}
                cfg = dict(base, seed=args.seed, eps=args.eps, step_size=args.step_size)
                try:
                    rec = dict(status="ok", **loss_check(cfg, device))
                except Exception as e:
                    rec = {"variant": "loss_check", "status": "error", "error": f"{type(e).__name__}: {e}"}
                    failures += 1
                common.emit(dict(base, **rec, machine=machine), args.jsonl)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
