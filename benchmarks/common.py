"""Shared helpers for the ucat benchmarks: timing, peak memory, machine facts, JSON lines.

Every benchmark prints one JSON object per line (one per measurement) to stdout, and appends the
same line to ``--jsonl FILE`` (and to ``$UCAT_BENCH_JSONL`` when set). A measurement is the
median of ``--reps`` timed repetitions after ``--warmup`` untimed ones.

Peak memory
-----------
* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (tensors only; the
  caching allocator's reserve is reported beside it as ``peak_reserved_bytes``).
* CPU: the growth of the process's peak resident set size. The configuration runs in a fresh
  Python subprocess (``--isolate``), which records its current RSS (``/proc/self/statm``) once the
  model, data and optimizer are built, then runs warm-up and timed steps, then reads
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the kernel's high-water mark). The reported
  ``peak_mem_bytes`` is ``ru_maxrss - rss_after_setup``: what the steps themselves add over the
  weights and inputs. ``peak_rss_bytes`` (the absolute high-water mark) is reported too. A fresh
  process per configuration is needed because the high-water mark never goes down.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent

try:  # the venv has ucat installed; a bare checkout (the GPU machine) uses PYTHONPATH=src
    import ucat  # noqa: F401
except ImportError:  # pragma: no cover - depends on how the script is started
    sys.path.insert(0, str(REPO_ROOT / "src"))

import torch

SCHEMA = "ucat-bench/1"


# --------------------------------------------------------------------------- arguments

def _int_list(text: str, minimum: int, example: str) -> List[int]:
    try:
        out = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers such as {example}") from None
    if not out or min(out) < minimum:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers >= {minimum} such as {example}")
    return out


def int_list(text: str) -> List[int]:
    """``"8,32"`` -> [8, 32] (positive integers)."""
    return _int_list(text, 1, "8,32")


def int_list_or_zero(text: str) -> List[int]:
    """``"0,1,2"`` -> [0, 1, 2] (non-negative integers, e.g. loader worker counts)."""
    return _int_list(text, 0, "0,2")


def str_list(text: str) -> List[str]:
    out = [v.strip() for v in str(text).split(",") if v.strip()]
    if not out:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return out


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--arch", default="ViT-B-32", help="open_clip architecture (random init) or ucat-tiny")
    p.add_argument("--warmup", type=int, default=1, help="untimed repetitions first")
    p.add_argument("--reps", type=int, default=3, help="timed repetitions (the median is reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--jsonl", default=None, help="also append every JSON line to this file")
    p.add_argument("--smoke", action="store_true", help="seconds-long run on ucat-tiny (CI)")
    return p


def init_torch(args) -> torch.device:
    from ucat.device import resolve_device, seed_everything

    if getattr(args, "threads", None):
        torch.set_num_threads(int(args.threads))
    seed_everything(args.seed)
    return resolve_device(args.device)


# --------------------------------------------------------------------------- machine and output

def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> Dict[str, Any]:
    """Where and with what a number was measured."""
    info: Dict[str, Any] = {
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": str(device),
    }
    try:
        import open_clip

        info["open_clip"] = open_clip.__version__
    except Exception:  # pragma: no cover
        pass
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        cap = torch.cuda.get_device_capability(device)
        info["capability"] = f"{cap[0]}.{cap[1]}"
    return info


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit(record: Dict[str, Any], jsonl: Optional[str] = None) -> Dict[str, Any]:
    """Print ``record`` as one JSON line (and append it to ``jsonl`` / ``$UCAT_BENCH_JSONL``)."""
    record = {"schema": SCHEMA, "date": utc_now(), **record}
    line = json.dumps(record, sort_keys=False, default=str)
    print(line, flush=True)
    for path in {p for p in (jsonl, os.environ.get("UCAT_BENCH_JSONL")) if p}:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as fh:
            fh.write(line + "\n")
    return record


# --------------------------------------------------------------------------- timing

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn: Callable[[], Any], device: torch.device, warmup: int = 1, reps: int = 3) -> List[float]:
    """Wall seconds of ``reps`` calls of ``fn`` after ``warmup`` untimed calls (device synchronized)."""
    for _ in range(max(0, warmup)):
        fn()
    sync(device)
    times = []
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def summarize(times: List[float]) -> Dict[str, Any]:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "times_s": [round(t, 6) for t in times]}


# --------------------------------------------------------------------------- memory

def current_rss_bytes() -> int:
    """Resident set size now (Linux ``/proc/self/statm``; 0 where unavailable)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def peak_rss_bytes() -> int:
    """The process's resident high-water mark (``ru_maxrss`` is in KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


class PeakMemory:
    """Peak memory of the code run between :meth:`start` and :meth:`stop` (see module docstring)."""

    def __init__(self, device: torch.device):
        self.device = device
        self.start_rss = 0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_alloc = torch.cuda.memory_allocated(self.device)
        else:
            self.start_rss = current_rss_bytes()

    def stop(self) -> Dict[str, Any]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            return {"peak_mem_bytes": int(peak), "peak_mem_growth_bytes": int(peak - self.start_alloc),
                    "peak_reserved_bytes": int(torch.cuda.max_memory_reserved(self.device)),
                    "peak_mem_method": "cuda.max_memory_allocated"}
        peak = peak_rss_bytes()
        return {"peak_mem_bytes": int(max(0, peak - self.start_rss)), "peak_rss_bytes": peak,
                "rss_after_setup_bytes": self.start_rss,
                "peak_mem_method": "ru_maxrss - rss_after_setup (fresh subprocess)"}


def limit_address_space(extra_gb: Optional[float]) -> None:
    """Cap this process's address space at its current size + ``extra_gb`` GiB (CPU only).

    A configuration that would need more fails with an allocation error inside this process
    (reported as "does not fit") instead of waking the kernel's OOM killer on a shared machine.
    """
    if not extra_gb:
        return
    try:
        vm = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return
    cap = vm + int(extra_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate memory" in text \
        or "cannot allocate memory" in text


def gib(n: Optional[float]) -> Optional[float]:
    return None if n is None else round(n / 2**30, 3)


# --------------------------------------------------------------------------- isolated runs

def run_worker(script: Path, worker_cfg: Dict[str, Any], timeout: Optional[float] = None,
               env: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
    """Run ``script --worker JSON`` in a fresh interpreter; return the last JSON line it printed.

    A worker that crashes, times out or prints no JSON yields ``{"status": "error", ...}``.
    """
    cmd = [sys.executable, str(script), "--worker", json.dumps(worker_cfg)]
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("UCAT_BENCH_JSONL", None)  # the parent writes the lines
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "error": f"worker exceeded {timeout} s"}
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            try:
                out = json.loads(line)
            except json.JSONDecodeError:
                continue
            if proc.returncode != 0 and out.get("status") == "ok":
                out["status"] = "error"
            return out
    tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-6:]
    return {"status": "error", "error": f"worker exited {proc.returncode}: " + " | ".join(tail)}


def should_isolate(flag: str, device: torch.device) -> bool:
    """``auto``: isolate on CPU (peak RSS needs a fresh process), share one process on CUDA."""
    if flag == "auto":
        return device.type != "cuda"
    return flag in ("yes", "true", "1")


# --------------------------------------------------------------------------- models and data

def random_text_head(num_classes: int, dim: int, seed: int = 0, device: torch.device | str = "cpu") -> torch.Tensor:
    """(C, D) random unit-norm class embeddings.

    Step cost does not depend on the head's values, so step benchmarks use this instead of
    encoding C prompts (whose one-off cost ``bench_text_head.py`` measures).
    """
    g = torch.Generator().manual_seed(seed)
    head = torch.randn(num_classes, dim, generator=g)                       # (C, D)
    return torch.nn.functional.normalize(head, dim=-1).to(device)


def embed_dim(bundle) -> int:
    visual = bundle.model.visual
    dim = getattr(visual, "output_dim", None)
    if dim is None:
        with torch.no_grad():
            dim = bundle.encoder(torch.rand(1, 3, bundle.image_size, bundle.image_size,
                                            device=next(visual.parameters()).device)).shape[-1]
    return int(dim)


def random_batch(batch: int, image_size: int, num_classes: int, device: torch.device, seed: int = 0):
    """Images (B, 3, S, S) uniform in [0,1] and labels (B,) in [0, C)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, image_size, image_size, generator=g)    # (B, 3, S, S)
    labels = torch.randint(0, num_classes, (batch,), generator=g)        # (B,)
    return images.to(device), labels.to(device)


def flop_count(fn: Callable[[], Any]) -> Optional[int]:
    """Floating-point operations of one call of ``fn`` (torch.utils.flop_counter; matmul/conv/attention)."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # pragma: no cover
        return None
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return int(counter.get_total_flops())


# Dense bf16 tensor-core peaks (TFLOP/s, without sparsity) by device-name fragment.
DENSE_BF16_TFLOPS = (
    ("H200", 989.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("H100", 989.0),
    ("GH200", 989.0), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.0), ("A10G", 70.0),
)


def dense_bf16_peak_tflops(device: torch.device) -> Optional[float]:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for frag, peak in DENSE_BF16_TFLOPS:
        if frag.lower() in name.lower():
            return peak
    return None


def merge(*dicts: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for d in dicts:
        out.update(d)
    return out


def chunks(items: Iterable[Any], n: int):
    buf = []
    for it in items:
        buf.append(it)
        if len(buf) == n:
            yield buf
            buf = []
    if buf:
        yield buf
