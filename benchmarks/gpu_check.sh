#!/usr/bin/env bash
# One prepared GPU check (issue 7): on a single H100/H200, in at most 8 minutes, with no network.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# Runs, at the paper's setting (random-init ViT-B-32 at 224 px, 200 classes, 2-step PGD at
# eps 1/255, bf16 autocast, batch 256), the training-step benchmark for ucat and tecoa (ours vs
# the research-style baseline vs the floor, with the floor's FLOPs for the fraction of the card's
# dense bf16 peak), then PGD-100/CW-100 evaluation at 397 classes, batch 512, then the
# class-count scaling and an optional torch.compile run while time is left. Every JSON line is
# printed and, when $OUT is set, also written to $OUT/gpu_check.jsonl. Each benchmark has its
# own timeout; the script's total stays under BUDGET_S seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
BUDGET_S=${BUDGET_S:-470}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg TOKENIZERS_PARALLELISM=false

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src
else
  export PYTHONPATH=src
fi

JSONL_ARGS=()
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  : > "$OUT/gpu_check.jsonl"
  JSONL_ARGS=(--jsonl "$OUT/gpu_check.jsonl")
fi

echo "=== gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
nvidia-smi || echo "nvidia-smi failed"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv || true
python3 - <<'EOF'
import importlib, sys
import torch
print(f"python {sys.version.split()[0]}  torch {torch.__version__}  CUDA {torch.version.cuda}  "
      f"cudnn {torch.backends.cudnn.version()}  available {torch.cuda.is_available()}")
if torch.cuda.is_available():
    print("card:", torch.cuda.get_device_name(0), " capability", torch.cuda.get_device_capability(0))
missing = []
for mod in ("open_clip", "ftfy", "wcwidth", "regex", "safetensors", "timm", "yaml"):
    try:
        importlib.import_module(mod)
    except Exception as e:
        missing.append(f"{mod} ({type(e).__name__}: {e})")
if missing:
    print("MISSING python modules: " + "; ".join(missing) +
          ". Put their wheels (for this python) in .whl/ and rerun.", file=sys.stderr)
    sys.exit(3)
import ucat
print("ucat", ucat.__version__ if hasattr(ucat, "__version__") else "", "from", ucat.__file__)
EOF
if [ $? -ne 0 ]; then echo "gpu_check: preflight failed"; exit 3; fi

FAIL=0
# run NAME TIMEOUT CMD...: runs CMD with its own timeout, never past the total budget.
run() {
  local name=$1 limit=$2; shift 2
  local left=$(( BUDGET_S - (SECONDS - START) ))
  if [ "$left" -lt 30 ]; then echo "=== $name: skipped (only ${left}s of the budget left)"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name (timeout ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  echo "=== $name: rc=$rc in $(( SECONDS - t0 ))s"
  [ $rc -ne 0 ] && FAIL=1
}

B="python3 benchmarks"
run train_step 210 $B/bench_train_step.py --device cuda --arch ViT-B-32 --methods ucat,tecoa \
    --variants ours,baseline,floor --precision bf16 --batch 256 --classes 200 --attack-steps 2 \
    --warmup 2 --reps 5 --isolate no --flops "${JSONL_ARGS[@]}"
run eval_pgd 120 $B/bench_eval.py --device cuda --arch ViT-B-32 --attacks pgd,cw --variants ours,baseline \
    --precision bf16 --batch 512 --classes 397 --steps 100 --warmup 1 --reps 3 "${JSONL_ARGS[@]}"
run scaling 60 $B/bench_scaling.py --device cuda --arch ViT-B-32 --precision bf16 --batch 256 \
    --classes 10,200,1000 --sweeps classes --warmup 2 --reps 5 "${JSONL_ARGS[@]}"
run train_step_compile 90 $B/bench_train_step.py --device cuda --arch ViT-B-32 --methods ucat \
    --variants ours,floor --precision bf16 --batch 256 --classes 200 --attack-steps 2 \
    --warmup 3 --reps 5 --isolate no --compile --flops "${JSONL_ARGS[@]}"

echo "=== gpu_check done in $(( SECONDS - START ))s (fail=$FAIL)"
[ -n "${OUT:-}" ] && echo "JSON lines: $OUT/gpu_check.jsonl ($(wc -l < "$OUT/gpu_check.jsonl") lines)"
exit $FAIL
