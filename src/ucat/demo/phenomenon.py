"""The phenomenon the paper starts from, measured per row: does the attack lower the model's uncertainty?

Per row (suite averages): predictive entropy of the softmax / log C and the paper's epistemic
uncertainty, the mutual information of UCAT's Dirichlet (alpha = exp((z/s + 1)/tau'),
:mod:`ucat.uncertainty`) / log C, clean vs under PGD and vs under the uncertainty-targeted attack
(:mod:`ucat.attacks.uncertainty`), with the number of seeds in which it fell. The words are read
off the numbers ("falls" when the mean under attack is below the clean mean), whichever way they go.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .aggregate import find
from .config import ATTACK_LABELS

SCORES = (("entropy", "entropy"), ("mutual_information", "epistemic (MI)"))
ATTACKS = ("pgd", "uncertainty")


def num(v: Optional[float]) -> str:
    """3 decimals, or 2 significant digits in scientific notation for small values (MI spans decades)."""
    if v is None:
        return "nan"
    return f"{v:.3f}" if v == 0 or abs(v) >= 0.01 else f"{v:.2e}"


def direction(clean: Dict[str, Any], adv: Dict[str, Any]) -> Dict[str, Any]:
    """Means clean and under attack, the word, and in how many seeds the value fell."""
    c, a = clean["mean"], adv["mean"]
    pairs = [(x, y) for x, y in zip(clean["values"], adv["values"]) if x is not None and y is not None]
    word = "n/a" if c is None or a is None else "falls" if a < c else "rises" if a > c else "unchanged"
    return {"clean": c, "adv": a, "word": word, "fell_in": sum(1 for x, y in pairs if y < x), "seeds": len(pairs)}


def _row(rows: List[Dict[str, Any]], label: str) -> Optional[Dict[str, Any]]:
    out: Dict[str, Any] = {"model": label}
    for attack in ATTACKS:
        r = find(rows, label, attack)
        if r is None:
            return None
        col = r["columns"]
        out[attack] = {key: direction(col[f"clean_{key}"], col[f"adv_{key}"]) for key, _ in SCORES}
        out[attack].update({"robust_acc": col["robust_acc"]["mean"], "adv_ece": col["adv_ece"]["mean"],
                            "clean_acc": col["clean_acc"]["mean"], "clean_ece": col["clean_ece"]["mean"]})
    return out


def _line(p: Dict[str, Any]) -> str:
    parts = []
    for attack in ATTACKS:
        bits = [f"{name} {num(d['clean'])} -> {num(d['adv'])} ({d['word']}; fell in {d['fell_in']}/{d['seeds']} "
                f"seeds)" for key, name in SCORES for d in [p[attack][key]]]
        acc = p[attack]
        head = f"under {ATTACK_LABELS[attack]}"
        if attack == "uncertainty":
            head += f" (accuracy {100 * acc['robust_acc']:.1f}%, ECE {100 * acc['adv_ece']:.1f}%)"
        parts.append(f"{head}: " + ", ".join(bits))
    return f"{p['model']}: " + "; ".join(parts) + "."


def phenomenon(rows: List[Dict[str, Any]], order: List[str], score: str) -> Dict[str, Any]:
    """Per row: the directions (see the module docstring), one line each, and a count over the rows."""
    per = [p for p in (_row(rows, lb) for lb in order) if p is not None]
    lines = [_line(p) for p in per]
    for attack in ATTACKS:
        for key, name in SCORES:
            k = sum(1 for p in per if p[attack][key]["word"] == "falls")
            lines.append(f"measured: under {ATTACK_LABELS[attack]} the mean {name} falls for {k} of {len(per)} rows "
                         f"and rises for {sum(1 for p in per if p[attack][key]['word'] == 'rises')}.")
    return {"rows": per, "lines": lines, "uncertainty_attack_score": score}
