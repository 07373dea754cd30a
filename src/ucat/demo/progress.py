"""Progress of the demo: one line per stage with the time left, estimated from measured stage times.

Every stage has a prior estimate (a cost model in seconds, from its images x forward/backward
passes). The time left is, for each stage still to run, the measured time of the same stage at an
earlier seed when there is one, otherwise its prior estimate times the ratio measured / estimated
of the finished stages of its kind (fine-tuning or evaluation); before anything of a kind has run,
the prior itself.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

#: prior seconds per (image x forward+backward pass), fine-tuning and evaluation (1 CPU thread)
PRIOR_TRAIN_S = 1.4e-3
PRIOR_EVAL_S = 0.5e-3
PRIOR_SETUP_S = {"train": 1.0, "eval": 2.0, "report": 5.0}


@dataclass
class Stage:
    kind: str                 # "train" | "eval" | "report"
    name: str                 # the method (train) or the row label (eval); "" for the report
    seed: Optional[int]
    title: str                # what the progress line says
    estimate: float           # prior seconds

    @property
    def key(self) -> Tuple[str, str]:
        return self.kind, self.name


def fmt_duration(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """Runs stages in order, printing ``[i/N] title ... ETA`` before each (``say``: the printer)."""

    def __init__(self, stages: List[Stage], say: Callable[[str], None], clock: Callable[[], float] = time.time):
        self.stages, self.say, self.clock = stages, say, clock
        self.measured: Dict[int, float] = {}           # stage index -> seconds
        self.t0 = clock()

    def eta(self, start: int) -> float:
        """Seconds left for stages ``start``.. (see the module docstring)."""
        by_key: Dict[Tuple[str, str], float] = {}
        ratio: Dict[str, List[float]] = {}
        for i, sec in self.measured.items():
            st = self.stages[i]
            by_key[st.key] = sec
            r = ratio.setdefault(st.kind, [0.0, 0.0])
            r[0], r[1] = r[0] + sec, r[1] + st.estimate
        left = 0.0
        for st in self.stages[start:]:
            if st.key in by_key:
                left += by_key[st.key]
            else:
                sec, est = ratio.get(st.kind, (0.0, 0.0))
                left += st.estimate * (sec / est if est > 0 else 1.0)
        return left

    def run(self, index: int, fn: Callable[[], object]) -> object:
        st = self.stages[index]
        self.say(f"[{index + 1}/{len(self.stages)}] {st.title} ... ETA {fmt_duration(self.eta(index))}")
        t = self.clock()
        out = fn()
        self.measured[index] = self.clock() - t
        return out

    def elapsed(self) -> float:
        return self.clock() - self.t0

    def times(self) -> List[Dict[str, object]]:
        """Every finished stage's measured and prior seconds (for demo.json)."""
        return [{"stage": self.stages[i].title, "kind": self.stages[i].kind, "seconds": round(s, 2),
                 "prior_estimate": round(self.stages[i].estimate, 2)} for i, s in sorted(self.measured.items())]


def train_estimate(steps: int, batch: int, attack_steps: int) -> float:
    """Prior seconds of one fine-tuning: steps x batch x (attack steps + 2 passes: loss and reference)."""
    return PRIOR_SETUP_S["train"] + PRIOR_TRAIN_S * steps * batch * (attack_steps + 2) / 4


def eval_estimate(n_images: int, steps: int, attacks: int) -> float:
    """Prior seconds of one row's evaluation: images x (clean pass + each attack's steps; AutoAttack's two APGD runs)."""
    return PRIOR_SETUP_S["eval"] + PRIOR_EVAL_S * n_images * (1 + (attacks + 1) * (steps + 1))
