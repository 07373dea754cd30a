#!/usr/bin/env python
"""Cost of building a zero-shot text head: seconds per class x template, and of a cache hit.

``ucat.models.build_text_head`` encodes every prompt of every class once (no gradients) and
averages per class; ``cached_text_head`` stores the (C, D) result keyed by the text-tower
weights and the prompts, so a second run only hashes the weights and reads the file. The
research code paid the encoding (with gradients) on every forward pass instead
(bench_train_step.py measures that).

Example::

    python benchmarks/bench_text_head.py --arch ViT-B-32 --classes 10,50 --templates 1,4
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

import common  # noqa: E402

TEMPLATES = ["a photo of a {}.", "a bad photo of a {}.", "a close-up photo of a {}.", "a drawing of a {}.",
             "a photo of the large {}.", "a photo of the small {}.", "itap of a {}.", "a sculpture of a {}."]


def build_parser():
    p = common.base_parser(__doc__.splitlines()[1])
    p.add_argument("--classes", type=common.int_list, default=[10, 50])
    p.add_argument("--templates", type=common.int_list, default=[1, 4])
    p.add_argument("--precision", type=common.str_list, default=["fp32"])
    p.add_argument("--batch-size", type=int, default=256, help="prompts per text-tower batch")
    p.add_argument("--research-per-call", action="store_true",
                   help="also time the text tower forward+backward on C prompts (the research code's per-call cost)")
    return p


def research_per_call(bundle, prompts, precision, device, args):
    """What the research code pays on *every* logits call: the text tower on all C prompts, with
    gradients (forward+backward through the text tower) and, for the frozen model, without."""
    from ucat.device import autocast

    model = bundle.model
    tokens = bundle.tokenizer([p for ps in prompts for p in ps]).to(device)      # (C, L)
    model.requires_grad_(True)

    def fwd_bwd():
        with autocast(device, precision):
            txt = model.encode_text(tokens)                                       # (C, D)
        txt.float().square().sum().backward()
        model.zero_grad(set_to_none=True)

    def fwd():
        with torch.no_grad(), autocast(device, precision):
            model.encode_text(tokens)

    t_fb = common.summarize(common.time_fn(fwd_bwd, device, warmup=args.warmup, reps=args.reps))
    t_f = common.summarize(common.time_fn(fwd, device, warmup=args.warmup, reps=args.reps))
    n = tokens.shape[0]
    return {"variant": "research_per_call", "fwd_bwd_median_s": t_fb["median_s"], "fwd_bwd_times_s": t_fb["times_s"],
            "fwd_median_s": t_f["median_s"], "fwd_times_s": t_f["times_s"],
            "fwd_bwd_s_per_prompt": t_fb["median_s"] / n, "fwd_s_per_prompt": t_f["median_s"] / n,
            "warmup": args.warmup, "reps": args.reps}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.arch, args.classes, args.templates, args.warmup, args.reps = "ucat-tiny", [5], [1, 2], 0, 1
        args.research_per_call = True
    device = common.init_torch(args)
    machine = common.machine_info(device)
    from ucat.device import autocast, check_precision
    from ucat.models import build_text_head, cached_text_head, load_clip, make_prompts

    bundle = load_clip(args.arch, pretrained=None, device=device)
    failures = 0
    for precision in args.precision:
        check_precision(precision, device)
        for n_cls in args.classes:
            for n_tpl in args.templates:
                if n_tpl > len(TEMPLATES):
                    raise ValueError(f"--templates {n_tpl}: at most {len(TEMPLATES)} templates are built in")
                prompts = make_prompts([f"object number {i}" for i in range(n_cls)], TEMPLATES[:n_tpl])
                n_prompts = n_cls * n_tpl
                base = {"bench": "text_head", "arch": args.arch, "classes": n_cls, "templates": n_tpl,
                        "prompts": n_prompts, "precision": precision, "device": str(device)}

                def build():
                    with autocast(device, precision):
                        return build_text_head(bundle.model, bundle.tokenizer, prompts, device, args.batch_size)

                times = common.time_fn(build, device, warmup=args.warmup, reps=args.reps)
                rec = dict(base, variant="build", **common.summarize(times))
                rec["s_per_prompt"] = rec["median_s"] / n_prompts
                rec["s_per_class"] = rec["median_s"] / n_cls
                common.emit(dict(rec, warmup=args.warmup, reps=args.reps, machine=machine), args.jsonl)

                if args.research_per_call and n_tpl == 1:
                    rec = research_per_call(bundle, prompts, precision, device, args)
                    common.emit(dict(base, **rec, machine=machine), args.jsonl)

                with tempfile.TemporaryDirectory() as cache:
                    t0 = time.perf_counter()
                    first = cached_text_head(bundle.model, bundle.tokenizer, prompts, cache, device, args.batch_size)
                    miss = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    again = cached_text_head(bundle.model, bundle.tokenizer, prompts, cache, device, args.batch_size)
                    hit = time.perf_counter() - t0
                    same = bool(torch.allclose(first.cpu(), again.cpu()))
                failures += not same
                common.emit(dict(base, variant="cache", miss_s=miss, hit_s=hit, hit_equals_miss=same,
                                 machine=machine), args.jsonl)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
