"""Non-finite detection: every step's loss, gradients and updated weights are checked before the
step counts, and every exported model before it is written. Nothing non-finite reaches the disk."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..device import DistInfo
from ..errors import NonFiniteError
from .checkpoints import last_intact_checkpoint
from .logs import reduce_sum


class TrainingDiverged(NonFiniteError):
    """A step produced a non-finite loss, gradient or weight; the run stopped before writing it.

    Attributes: ``step`` (the failing optimizer step, 1-based), ``cause`` (``loss``, ``gradient of
    <param>`` or ``weights (<param>)``), ``checkpoint`` (the newest checkpoint that verifies and is
    finite, or None)."""

    def __init__(self, message: str, step: int, cause: str, checkpoint: Optional[Path]):
        super().__init__(message)
        self.step, self.cause, self.checkpoint = step, cause, checkpoint


def named_trainable(visual: nn.Module, params: Sequence[nn.Parameter]) -> List[Tuple[str, nn.Parameter]]:
    """(name under ``visual``, parameter) for each trained parameter, in ``params`` order."""
    names = {id(p): n for n, p in visual.named_parameters()}
    return [(names.get(id(p), f"param[{i}]"), p) for i, p in enumerate(params)]


def loss_is_finite(loss: torch.Tensor, info: DistInfo, device: torch.device) -> bool:
    """Whether the loss is finite on every rank (collective)."""
    ok = float(torch.isfinite(loss.detach()).all())
    return reduce_sum([ok], info, device)[0] >= info.world_size


def _first_bad(tensors: List[Tuple[str, Optional[torch.Tensor]]]) -> Optional[str]:
    present = [(n, t) for n, t in tensors if t is not None]
    if not present:
        return None
    flags = torch.stack([torch.isfinite(t).all() for _, t in present])       # (P,) bool, one sync below
    if bool(flags.all()):
        return None
    return present[int((~flags).nonzero()[0])][0]


def first_nonfinite_grad(named: List[Tuple[str, nn.Parameter]]) -> Optional[str]:
    """The name of the first parameter whose gradient holds NaN/inf (None if all are finite)."""
    return _first_bad([(n, p.grad) for n, p in named])


def first_nonfinite_weight(named: List[Tuple[str, nn.Parameter]]) -> Optional[str]:
    return _first_bad([(n, p.detach()) for n, p in named])


def diverged(step: int, epoch: int, cause: str, parts: Dict[str, float], run_dir: Path) -> TrainingDiverged:
    """The error for a non-finite step, naming the newest checkpoint that is actually finite."""
    ckpt = last_intact_checkpoint(run_dir)
    shown = {k: round(v, 6) for k, v in parts.items()}
    return TrainingDiverged(
        f"non-finite {cause} at step {step} (epoch {epoch}); loss terms {shown}. The run stopped before "
        f"writing anything of this step; the last intact checkpoint is {ckpt or '(none yet)'}",
        step=step, cause=cause, checkpoint=ckpt)


def check_exportable(model: nn.Module, what: Path) -> None:
    """Refuse to write ``what`` from a model with any non-finite weight."""
    bad = _first_bad([(n, v) for n, v in model.state_dict().items() if v.is_floating_point()])
    if bad is not None:
        raise NonFiniteError(f"{what} not written: weight {bad} is non-finite")
