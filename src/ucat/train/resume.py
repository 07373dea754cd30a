"""Resume: the same run continued, or a clear refusal.

A checkpoint records the config it was trained with. Resuming with settings that would alter the
run (lr, eps, attack, steps, schedule, batch size, method options, data, seed, epochs, ...) is
refused with every changed key listed (old -> new); only the settings in :data:`RESUME_MAY_CHANGE`
(where the run is written, how it is shown, how data are loaded) may differ. The data themselves
are compared by size and class list. So ``config.yaml`` always records the settings actually used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

from ..device import set_rng_state
from ..errors import ConfigError
from ..io import to_jsonable
from ..methods import method_options
from ..models.checkpoint import load_vision_weights
from .checkpoints import WEIGHTS
from .config import TrainConfig
from .data import same_data_spec
from .logs import say

#: settings that do not change what a run computes (numerically, up to the device's kernels).
RESUME_MAY_CHANGE = frozenset({"resume", "out", "progress", "num_workers", "log_every", "device", "data_root",
                               "data_cache", "checkpoint_every", "keep_checkpoints"})


def _resolved_options(method: Any, options: Any) -> Dict[str, Any]:
    try:
        defaults = method_options(str(method))
    except KeyError:
        defaults = {}
    return {**defaults, **dict(options or {})}


def changed_settings(saved: Dict[str, Any], cfg: TrainConfig) -> List[str]:
    """``"key old -> new"`` for every run-altering setting that differs from the saved config."""
    now = to_jsonable(cfg)
    changes = []
    for key in [k for k in now if k in saved and k not in RESUME_MAY_CHANGE]:
        old, new = saved[key], now[key]
        if key == "method_options":
            old, new = _resolved_options(saved.get("method"), old), _resolved_options(cfg.method, new)
        if key == "data" and same_data_spec(old, new):
            continue
        if old != new:
            changes.append(f"{key} {old!r} -> {new!r}")
    return changes


def check_settings(state: Dict[str, Any], cfg: TrainConfig, ckpt: Path) -> None:
    """Refuse to resume ``ckpt`` with changed run-altering settings (ConfigError on ``resume``)."""
    changes = changed_settings(state.get("config") or {}, cfg)
    if changes:
        raise ConfigError("resume", f"{ckpt}: that run used other settings ({'; '.join(changes)}); resume with "
                                    f"that run's settings (its config.yaml) or train into a new out folder")


def check_data(state: Dict[str, Any], fingerprint: Dict[str, Any], ckpt: Path, data: str) -> None:
    was = state.get("data")
    if was and was != fingerprint:
        raise ConfigError("data", f"{data}: not the data {ckpt} was trained on (then {was}, now {fingerprint}); "
                                  f"resume on the same data or train into a new out folder")


def restore(run, state: Dict[str, Any], ckpt: Path) -> None:
    """Load the checkpoint's weights, optimizer, scheduler, scaler, position and RNG into ``run``."""
    info = run.info
    check_data(state, run.meta["data_fingerprint"], ckpt, run.cfg.data)
    load_vision_weights(run.bundle, ckpt / WEIGHTS)
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    run.step, run.start_epoch, run.start_batch = state["step"], state["epoch"], state["batch_in_epoch"]
    run.best, run.last_checkpoint = state.get("best"), ckpt
    order = state.get("data_order", {})
    if order.get("world_size") != info.world_size or order.get("local_batch") != run.local_bs:
        say(info, f"ucat train: warning: resuming with {info.world_size} process(es) x batch {run.local_bs} "
                  f"instead of {order.get('world_size')} x {order.get('local_batch')}: the data order "
                  f"differs from the interrupted run (the resume is not bit-exact)")
    rngs = state["rng"]
    set_rng_state(rngs[info.rank] if info.rank < len(rngs) else rngs[0])
    say(info, f"ucat train: resumed from {ckpt} at step {run.step} (epoch {run.start_epoch}, "
              f"batch {run.start_batch})")
