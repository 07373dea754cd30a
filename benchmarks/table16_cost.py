#!/usr/bin/env python
"""What a full Table 16 evaluation costs: ucat-paper's 16 datasets x PGD-100 / CW-100 / AutoAttack, from measured rates.

The cost model (one evaluated model, ``ucat eval --protocol ucat-paper``, batch 512 as the official
code, VivienLu/UCAT main.py:249):

* ``G``: one forward + input-gradient pass of the image tower per image (an attack iteration);
  ``F``: one no-grad forward. ``F = G / 2`` (a backward without weight gradients costs one
  forward; the H200's training floor, 8 forwards per image, gives the same within a few percent,
  printed as a check).
* clean logits: ``F`` per image, once per dataset (the evaluator reuses them for every attack).
* PGD-100 and CW-100: ``100 G + F`` per image (100 iterations, 1 run; then the adversarial logits).
* AutoAttack as the paper ran it (``aa-paper``: APGD-CE + APGD-DLR, ``n_iter`` 100, 1 restart,
  ``src/ucat/protocols.py``; APGD-CE alone on the 2-class PCAM): pyautoattack's checks on the
  batch (``check_randomized`` 5 forwards, ``check_range_output`` 1, ``check_dynamic`` 1) and its
  clean accuracy (1), then per component, on the points still robust, 1 forward (APGD's own
  check), 1 + ``n_iter`` gradient passes (autopgd_base.py ``attack_single_run``: one before the
  loop, one per iteration) and 1 forward (AutoAttack's robustness update); then ucat's adversarial
  logits (1). APGD-CE runs on the clean-correct points, APGD-DLR on those APGD-CE left; the
  fractions are the UCAT row of Table 16 (clean accuracy; after APGD-CE its PGD-100 accuracy, an
  over-count since APGD-CE is at least as strong), and ``--aa worst`` attacks every point twice.

``G`` comes from a measured PGD-k rate (``bench_eval.py`` records, ``bench: "eval_attack"``):
``s_per_image / (k + 1/2)`` (the timed call is k iterations plus the adversarial logits), or, with
records at two step counts on one machine, the difference between them. On N GPUs (``torchrun``)
each pass deals its batches round-robin to the ranks (``ucat.eval.sharding.rank_batches``) and
waits for the slowest, so a dataset of fewer batches than ranks leaves ranks idle.

    python benchmarks/table16_cost.py                       # docs/gpu/*.jsonl + docs/cpu/*.jsonl
    python benchmarks/table16_cost.py --gpus 1,2,4,8 --jsonl-out /tmp/t16.jsonl
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

# (ucat name, images evaluated, classes): the splits the official code evaluates, whole (VivienLu/UCAT
# utils.py:164-232; ucat-paper n_samples=None), sizes as torchvision's datasets give them: val for
# TinyImageNet (200 x 50) and ImageNet; all of EuroSAT (RGB), Caltech-101 (101 categories, no
# BACKGROUND_Google), Caltech-256 (257 incl. clutter) and SUN397; test for the rest (DTD partition 1).
DATASETS: Tuple[Tuple[str, int, int], ...] = (
    ("tinyimagenet", 10_000, 200), ("cifar10", 10_000, 10), ("cifar100", 10_000, 100), ("stl10", 8_000, 10),
    ("sun397", 108_754, 397), ("food101", 25_250, 101), ("oxfordpet", 3_669, 37), ("flowers102", 6_149, 102),
    ("dtd", 1_880, 47), ("eurosat", 27_000, 10), ("fgvc-aircraft", 3_333, 100), ("imagenet", 50_000, 1000),
    ("caltech101", 8_677, 101), ("caltech256", 30_607, 257), ("stanfordcars", 8_041, 196), ("pcam", 32_768, 2),
)
# UCAT's Table 16 row (arXiv 2512.12997, /work/shared/paper.md 4.2), in the order above: clean and
# PGD-100 top-1 (%), the fractions AutoAttack's cascade attacks.
UCAT_CLEAN = (74.46, 81.81, 54.45, 91.88, 41.06, 53.58, 74.16, 47.57, 31.92, 19.29, 10.95, 43.20, 82.39, 71.53,
              37.32, 51.20)
UCAT_PGD = (47.56, 43.81, 25.16, 73.83, 20.44, 22.86, 45.11, 26.79, 19.47, 2.99, 3.45, 22.22, 65.32, 50.47,
            15.30, 30.37)
STEPS, AA_ITER, AA_CHECK_FORWARDS, BATCH = 100, 100, 7, 512


def passes_per_image(dataset_index: int, classes: int, aa: str = "ucat") -> Dict[str, Tuple[float, float]]:
    """{pass: (G, F)} per image of one dataset (see the module docstring)."""
    if aa == "worst":
        fractions = [1.0, 1.0]
    else:
        fractions = [UCAT_CLEAN[dataset_index] / 100, UCAT_PGD[dataset_index] / 100]
    if classes < 3:                      # APGD-DLR needs 3 classes (PCAM: APGD-CE alone)
        fractions = fractions[:1]
    aa_g = sum(f * (1 + AA_ITER) for f in fractions)
    aa_f = AA_CHECK_FORWARDS + 1 + sum(2 * f for f in fractions) + 1
    return {"clean": (0.0, 1.0), "pgd": (float(STEPS), 1.0), "cw": (float(STEPS), 1.0), "aa": (aa_g, aa_f)}


def rank_loads(n_images: int, ranks: int, batch: int = BATCH) -> List[int]:
    """Images each rank gets when the dataset's batches are dealt round-robin."""
    sizes = [min(batch, n_images - i) for i in range(0, n_images, batch)]
    return [sum(sizes[r::ranks]) for r in range(ranks)]


# --------------------------------------------------------------------------- measured rates

def load_records(patterns: Sequence[str]) -> List[dict]:
    out = []
    for pattern in patterns:
        for path in sorted(glob.glob(str(ROOT / pattern) if not Path(pattern).is_absolute() else pattern)):
            for line in Path(path).read_text().splitlines():
                if line.startswith("{"):
                    rec = json.loads(line)
                    rec["_file"] = str(Path(path).relative_to(ROOT)) if path.startswith(str(ROOT)) else path
                    out.append(rec)
    return out


def _pgd_records(records, device_type: str, precision: str, arch: str, variants: Sequence[str], run=None):
    return [r for r in records if r.get("bench") == "eval_attack" and r.get("attack") == "pgd"
            and r.get("status") == "ok" and str(r.get("device", "")).startswith(device_type)
            and r.get("precision") == precision and r.get("arch") == arch and r.get("variant") in variants
            and (run is None or r.get("run") == run)]


def gradient_pass_rate(records, device_type: str, precision: str, arch: str = "ViT-B-32",
                       variants: Sequence[str] = ("ours",), run: Optional[str] = None) -> Optional[dict]:
    """Seconds of one G per image from the measured PGD-k records (largest batch; see the docstring)."""
    recs = _pgd_records(records, device_type, precision, arch, variants, run)
    if not recs:
        return None
    batch = max(r["batch"] for r in recs)
    recs = [r for r in recs if r["batch"] == batch]
    by_steps = {}
    for r in recs:                                   # the latest record per step count
        by_steps[r["steps"]] = r
    lo, hi = min(by_steps), max(by_steps)
    if hi > lo:
        g = (by_steps[hi]["s_per_image"] - by_steps[lo]["s_per_image"]) / (hi - lo)
        how = f"({by_steps[hi]['s_per_image']:.4g} - {by_steps[lo]['s_per_image']:.4g}) s / ({hi} - {lo}) steps"
        used = [by_steps[lo], by_steps[hi]]
    else:
        g = by_steps[hi]["s_per_image"] / (hi + 0.5)
        how = f"{by_steps[hi]['s_per_image']:.4g} s per image / ({hi} + 1/2)"
        used = [by_steps[hi]]
    return {"g_s": g, "how": how, "batch": batch, "classes": used[-1].get("classes"),
            "sources": [f"{u['_file']} {u.get('run', '')} {u['date']} {u['variant']}".replace("  ", " ") for u in used],
            "machine": used[-1].get("machine", {}).get("gpu") or used[-1].get("machine", {}).get("cpu")}


def floor_forward_check(records, precision: str = "bf16") -> Optional[float]:
    """F per image from the CUDA training floor (8 forwards per image for UCAT), as a check of F = G/2."""
    recs = [r for r in records if r.get("bench") == "train_step" and r.get("variant") == "floor"
            and r.get("method") == "ucat" and str(r.get("device", "")).startswith("cuda")
            and r.get("precision") == precision and r.get("status") == "ok" and r.get("attack_steps") == 2]
    if not recs:
        return None
    r = recs[-1]
    return r["median_s"] / r["batch"] / 8


# --------------------------------------------------------------------------- the table

def dataset_seconds(g_s: float, ranks: int = 1, aa: str = "ucat", batch: int = BATCH) -> List[dict]:
    """Per dataset: passes per image and the seconds of each pass on ``ranks`` processes."""
    rows = []
    for i, (name, n, classes) in enumerate(DATASETS):
        per = passes_per_image(i, classes, aa)
        slowest = max(rank_loads(n, ranks, batch))
        secs = {k: slowest * (gp + fp / 2) * g_s for k, (gp, fp) in per.items()}
        rows.append({"dataset": name, "images": n, "classes": classes, "batches": math.ceil(n / batch),
                     "g_per_image": {k: round(gp + fp / 2, 2) for k, (gp, fp) in per.items()},
                     "seconds": secs, "total_s": sum(secs.values())})
    return rows


def markdown(rows: List[dict], g_gpu: dict, g_cpu: Optional[dict]) -> str:
    head = ("| dataset | images | classes | G per image: PGD / CW / AA (ucat) | H200 h: PGD / CW / AA / all"
            + (" | this CPU, days (all) |" if g_cpu else " |"))
    lines = [head, "|" + "---|" * (6 if g_cpu else 5)]
    for r in rows:
        g, s = r["g_per_image"], r["seconds"]
        cpu = f" {r['total_s'] / g_gpu['g_s'] * g_cpu['g_s'] / 86400:.1f} |" if g_cpu else ""
        lines.append(f"| {r['dataset']} | {r['images']:,} | {r['classes']} | {g['pgd']:.1f} / "
                     f"{g['cw']:.1f} / {g['aa']:.1f} | {s['pgd'] / 3600:.2f} / {s['cw'] / 3600:.2f} / "
                     f"{s['aa'] / 3600:.2f} / {r['total_s'] / 3600:.2f} |{cpu}")
    tot = {k: sum(r["seconds"][k] for r in rows) for k in ("clean", "pgd", "cw", "aa")}
    all_s = sum(tot.values())
    cpu = f" **{all_s / g_gpu['g_s'] * g_cpu['g_s'] / 86400:.0f}** |" if g_cpu else ""
    lines.append(f"| **all 16** | **{sum(r['images'] for r in rows):,}** | | | {tot['pgd'] / 3600:.2f} / "
                 f"{tot['cw'] / 3600:.2f} / {tot['aa'] / 3600:.2f} / **{all_s / 3600:.2f}** |{cpu}")
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    p.add_argument("--jsonl", nargs="+", default=["docs/gpu/*.jsonl", "docs/cpu/*.jsonl"],
                   help="benchmark JSONL files (globs relative to the repository root)")
    p.add_argument("--gpus", type=common.int_list, default=[1, 2, 4, 8])
    p.add_argument("--gpu-precision", default="bf16")
    p.add_argument("--cpu-precision", default="fp32", help="the CPU rate to compare with (fp32 or bf16)")
    p.add_argument("--cpu-variant", default="ours-frozen", help="ours-frozen is what `ucat eval` runs in fp32")
    p.add_argument("--cpu-run", default="E1", help="the `run` label of the CPU records (docs/cpu/*.jsonl)")
    p.add_argument("--aa", default="ucat", choices=["ucat", "worst"],
                   help="AutoAttack's cascade fractions: UCAT's Table 16 row, or every point attacked twice")
    p.add_argument("--jsonl-out", default=None, help="also append the summary JSON line here")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    records = load_records(args.jsonl)
    g_gpu = gradient_pass_rate(records, "cuda", args.gpu_precision)
    if g_gpu is None:
        print(f"no measured CUDA PGD rate ({args.gpu_precision}) in {args.jsonl}", file=sys.stderr)
        return 1
    cpu_variants = (args.cpu_variant,) if args.cpu_variant else ("ours",)
    g_cpu = gradient_pass_rate(records, "cpu", args.cpu_precision, variants=cpu_variants, run=args.cpu_run)
    rows = dataset_seconds(g_gpu["g_s"], 1, args.aa)
    print(f"G on the GPU: {g_gpu['g_s'] * 1e6:.1f} us per image = {g_gpu['how']} ({g_gpu['machine']}, batch "
          f"{g_gpu['batch']}, {g_gpu['classes']} classes; {'; '.join(g_gpu['sources'])})")
    f_check = floor_forward_check(records, args.gpu_precision)
    if f_check:
        print(f"check: F from the training floor {f_check * 1e6:.1f} us vs G/2 = {g_gpu['g_s'] * 5e5:.1f} us")
    if g_cpu:
        print(f"G on the CPU: {g_cpu['g_s'] * 1e3:.1f} ms per image = {g_cpu['how']} ({g_cpu['machine']}, "
              f"{args.cpu_precision}, batch {g_cpu['batch']}; {'; '.join(g_cpu['sources'])})")
    print()
    print(markdown(rows, g_gpu, g_cpu))
    print()
    total_1 = sum(r["total_s"] for r in rows)
    print("| GPUs (torchrun) | wall hours | speed-up | GPU-hours |")
    print("|---|---|---|---|")
    scaling = {}
    for n in args.gpus:
        t = sum(r["total_s"] for r in dataset_seconds(g_gpu["g_s"], n, args.aa))
        scaling[n] = t
        print(f"| {n} | {t / 3600:.2f} | {total_1 / t:.2f}x | {n * t / 3600:.2f} |")
    summary = {"bench": "table16_cost", "aa": args.aa, "g_gpu_s": g_gpu["g_s"], "gpu_sources": g_gpu["sources"],
               "gpu_hours_1": total_1 / 3600, "wall_hours": {str(n): t / 3600 for n, t in scaling.items()},
               "images": sum(r["images"] for r in rows)}
    if g_cpu:
        summary.update(g_cpu_s=g_cpu["g_s"], cpu_sources=g_cpu["sources"],
                       cpu_days=total_1 / g_gpu["g_s"] * g_cpu["g_s"] / 86400)
    print()
    common.emit(summary, args.jsonl_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
