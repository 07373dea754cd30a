#!/usr/bin/env bash
# One prepared GPU check (issue 7): on a single H100/H200, in at most 8 minutes, with no network.
#
#   bash benchmarks/gpu_check.sh            # from the repository root
#
# Runs, at the paper's setting (random-init ViT-B-32 at 224 px, 200 classes, 2-step PGD at
# eps 1/255, bf16 autocast, batch 256), the training-step benchmark for ucat and tecoa (ours vs
# the research-style baseline vs the floor, with the floor's FLOPs for the fraction of the card's
# dense bf16 peak), then PGD-100/CW-100 evaluation at 397 classes, batch 512, then the
# class-count scaling, the loader's images/s with one worker per core (can the CPUs feed the
# step?), the optimizer step, and an optional torch.compile run while time is left. Every JSON line is
# printed and, when $OUT is set, also written to $OUT/gpu_check.jsonl. Each benchmark has its
# own timeout; the script's total stays under BUDGET_S seconds.
#
# Overrides for a local dry run of the plumbing (not for the reported numbers):
#   PYTHON=.venv/bin/python DEVICE=cpu ARCH=ucat-tiny TRAIN_BATCH=4 EVAL_BATCH=4 EVAL_STEPS=2 \
#   REPS=1 SKIP_COMPILE=1 LOADER_IMAGES=64 bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
START=$SECONDS
BUDGET_S=${BUDGET_S:-470}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
ARCH=${ARCH:-ViT-B-32}
TRAIN_BATCH=${TRAIN_BATCH:-256}
EVAL_BATCH=${EVAL_BATCH:-512}
EVAL_STEPS=${EVAL_STEPS:-100}
REPS=${REPS:-5}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg TOKENIZERS_PARALLELISM=false

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:src
else
  export PYTHONPATH=src
fi

JSONL_ARGS=(--seed 0)
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  : > "$OUT/gpu_check.jsonl"
  JSONL_ARGS=(--jsonl "$OUT/gpu_check.jsonl")
fi

echo "=== gpu_check: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
nvidia-smi || echo "nvidia-smi failed"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv || true
$PY - <<'EOF'
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
# run NAME TIMEOUT OPTIONAL CMD...: CMD under its own timeout, never past the total budget;
# an optional step that fails is reported but does not fail the check.
run() {
  local name=$1 limit=$2 optional=$3; shift 3
  local left=$(( BUDGET_S - (SECONDS - START) ))
  if [ "$left" -lt 30 ]; then echo "=== $name: skipped (only ${left}s of the budget left)"; return; fi
  [ "$limit" -gt "$left" ] && limit=$left
  echo "=== $name (timeout ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  echo "=== $name: rc=$rc in $(( SECONDS - t0 ))s"
  if [ $rc -ne 0 ]; then
    if [ "$optional" = optional ]; then echo "=== $name: optional step failed (rc=$rc), not counted"; else FAIL=1; fi
  fi
}

B="$PY benchmarks"
J=("${JSONL_ARGS[@]}")
run train_step 210 required $B/bench_train_step.py --device "$DEVICE" --arch "$ARCH" --methods ucat,tecoa \
    --variants ours,baseline,floor --precision bf16 --batch "$TRAIN_BATCH" --classes 200 --attack-steps 2 \
    --warmup 2 --reps "$REPS" --isolate no --flops "${J[@]}"
run eval_pgd 180 required $B/bench_eval.py --device "$DEVICE" --arch "$ARCH" --attacks pgd,cw \
    --variants ours-frozen,ours,baseline --precision bf16 --batch "$EVAL_BATCH" --classes 397 --steps "$EVAL_STEPS" \
    --warmup 1 --reps 3 "${J[@]}"
run scaling 60 required $B/bench_scaling.py --device "$DEVICE" --arch "$ARCH" --precision bf16 \
    --batch "$TRAIN_BATCH" --classes 10,200,1000 --sweeps classes --warmup 2 --reps "$REPS" "${J[@]}"
# Can this machine's CPUs feed the training step? (JPEG decode + resize at 224, pinned batches;
# the train step above consumes about 2,400 images/s on an H200.)
LOADER_WORKERS=${LOADER_WORKERS:-$(( $(nproc) > 1 ? $(nproc) - 1 : 1 ))}
run loader 60 optional $B/bench_loader.py --device "$DEVICE" --workers "0,$LOADER_WORKERS" --batch 256 \
    --images "${LOADER_IMAGES:-2048}" --warmup 1 --reps 2 --target-img-s 2400 "${J[@]}"
run optimizer 30 optional $B/bench_optimizer.py --device "$DEVICE" --arch "$ARCH" --warmup 2 --reps 5 "${J[@]}"
if [ -z "${SKIP_COMPILE:-}" ]; then
  run train_step_compile 120 optional $B/bench_train_step.py --device "$DEVICE" --arch "$ARCH" --methods ucat \
      --variants ours,floor --precision bf16 --batch "$TRAIN_BATCH" --classes 200 --attack-steps 2 \
      --warmup 3 --reps "$REPS" --isolate no --compile --flops "${J[@]}"
fi

echo "=== gpu_check done in $(( SECONDS - START ))s (fail=$FAIL)"
[ -n "${OUT:-}" ] && echo "JSON lines: $OUT/gpu_check.jsonl ($(wc -l < "$OUT/gpu_check.jsonl") lines)"
exit $FAIL
