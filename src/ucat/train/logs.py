"""Training logs: per-term running sums reduced over ranks, ``train_log.csv`` / ``val_log.csv``,
TensorBoard (optional), and rank-0 messages on stderr."""
from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..device import DistInfo

LOG_FILE = "train_log.csv"
VAL_FILE = "val_log.csv"


def say(info: DistInfo, *msg: Any) -> None:
    """Rank-0 message on stderr, written around an active progress bar."""
    if info.is_main:
        tqdm.write(" ".join(str(m) for m in msg), file=sys.stderr)


class CsvLog:
    """Rank-0 CSV log; on resume the rows after the resumed step are dropped (they were written
    by the killed run after its last checkpoint and are recomputed)."""

    def __init__(self, path: Path, enabled: bool, keep_until_step: Optional[int]):
        self.path, self.enabled, self.fields = path, enabled, None
        if not enabled:
            return
        rows = read_csv(path) if (keep_until_step is not None and path.is_file()) else []
        rows = [r for r in rows if int(float(r.get("step", 0))) <= (keep_until_step or 0)]
        path.parent.mkdir(parents=True, exist_ok=True)
        if rows:
            self.fields = list(rows[0].keys())
            with open(path, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=self.fields)
                w.writeheader()
                w.writerows(rows)
        elif path.exists():
            path.unlink()

    def write(self, row: Dict[str, Any]) -> None:
        if not self.enabled:
            return
        if self.fields is None:
            self.fields = list(row.keys())
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=self.fields).writeheader()
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore").writerow(row)


def read_csv(path: Path) -> List[Dict[str, Any]]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as fh:
        return [dict(r) for r in csv.DictReader(fh)]


def tensorboard(out_dir: Path, enabled: bool):
    """A SummaryWriter under ``out_dir/tensorboard`` on rank 0, when tensorboard is installed."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter   # optional dependency (tensorboard)
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def scalar_parts(out: Dict[str, Any]) -> Dict[str, float]:
    """The scalar entries of a method's output dict as floats (the logged loss terms)."""
    parts = {}
    for k, v in out.items():
        if isinstance(v, torch.Tensor) and v.ndim == 0:
            parts[k] = float(v.detach().float())
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            parts[k] = float(v)
    return parts


def reduce_sum(values: List[float], info: DistInfo, device: torch.device) -> List[float]:
    """Element-wise sum of ``values`` over all ranks (the values themselves on one process)."""
    if not info.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


class StepStats:
    """Running sums between two log rows: each loss term, training accuracy, samples, skips."""

    def __init__(self):
        self.sums: Dict[str, float] = {}

    def add(self, key: str, value: float) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + float(value)

    def add_step(self, out: Dict[str, Any], labels: torch.Tensor, n_skipped: int) -> None:
        for k, v in scalar_parts(out).items():
            self.add(k, v)
        logits = out.get("logits_adv", out.get("logits"))
        if logits is not None:
            self.add("_correct", float((logits.argmax(-1) == labels).sum()))
        self.add("_n", labels.shape[0])
        self.add("_steps", 1)
        self.add("_skipped", n_skipped)

    def row(self, step: int, epoch: int, lr: float, adversarial: bool, info: DistInfo,
            device: torch.device) -> Dict[str, Any]:
        """The log row (terms averaged per step, summed over ranks); resets the sums. Collective."""
        keys = sorted(self.sums)
        sums = dict(zip(keys, reduce_sum([self.sums[k] for k in keys], info, device)))
        row: Dict[str, Any] = {"step": step, "epoch": epoch, "lr": lr}
        for k in keys:
            if not k.startswith("_"):
                row[k] = sums[k] / sums["_steps"]
        row["acc_train_adv" if adversarial else "acc_train"] = sums.get("_correct", 0.0) / max(sums["_n"], 1)
        row["samples"] = int(sums["_n"])
        row["skipped"] = int(sums.get("_skipped", 0.0))
        self.sums = {}
        return row
