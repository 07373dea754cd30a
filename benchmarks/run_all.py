#!/usr/bin/env python
"""Run every ucat benchmark; ``--smoke`` runs each once on ucat-tiny in seconds (CI).

Each benchmark runs as its own subprocess (so one crash cannot hide the others) and prints its
JSON lines; this script exits non-zero when any benchmark fails. Extra arguments after ``--``
are passed to every benchmark, e.g. ``run_all.py -- --device cpu``.

    python benchmarks/run_all.py --smoke                 # CI: a few seconds per benchmark
    python benchmarks/run_all.py --jsonl runs/bench.jsonl  # the default (full) settings
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
BENCHMARKS = ["bench_train_step.py", "bench_eval.py", "bench_text_head.py", "bench_scaling.py", "bench_loader.py",
              "bench_optimizer.py"]


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="each benchmark once, tiny model, seconds")
    p.add_argument("--only", default=None, help="comma-separated subset of: " + ", ".join(BENCHMARKS))
    p.add_argument("--jsonl", default=None, help="append every JSON line to this file")
    p.add_argument("--timeout", type=float, default=None, help="seconds per benchmark")
    args = p.parse_args(argv)
    names = BENCHMARKS
    if args.only:
        wanted = [n if n.endswith(".py") else f"{n}.py" for n in args.only.split(",") if n]
        unknown = [n for n in wanted if n not in BENCHMARKS]
        if unknown:
            p.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        names = wanted
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("MPLBACKEND", "Agg")
    src = str(BENCH_DIR.parent / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    failed = []
    for name in names:
        cmd = [sys.executable, str(BENCH_DIR / name)] + (["--smoke"] if args.smoke else []) + extra
        if args.jsonl:
            cmd += ["--jsonl", args.jsonl]
        print(f"# {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            rc = subprocess.run(cmd, env=env, timeout=args.timeout).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        print(f"# {name}: rc={rc} in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        if rc != 0:
            failed.append(f"{name} (rc={rc})")
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
