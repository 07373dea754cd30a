"""The layout rules of docs/architecture.md, checked over every module of src/ucat.

- no module over 400 lines, no function over 80 lines;
- no import cycle between ucat modules, and no import from a higher layer (the layer order below);
- an import inside a function carries a comment on its line saying why it is not at module top
  (a measured start-up cost or an optional dependency).
"""
import ast
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "ucat"

# Lowest first. A module may import ucat modules of its own layer or of lower layers only.
LAYERS: List[Tuple[str, ...]] = [
    ("ucat", "ucat.registry", "ucat.errors", "ucat.units", "ucat.io", "ucat.config", "ucat.html", "ucat.__init__"),
    ("ucat.device", "ucat.uncertainty", "ucat.metrics", "ucat.calibration", "ucat.detection", "ucat.multilabel"),
    ("ucat.models",),
    ("ucat.world", "ucat.world.scenes", "ucat.world.tasks", "ucat.world.multilabel"),
    ("ucat.data",),
    ("ucat.attacks",),
    ("ucat.methods", "ucat.protocols"),
    ("ucat.world.pretrain", "ucat.world.geometry"),
    ("ucat.train",),
    ("ucat.eval",),
    ("ucat.demo",),
    ("ucat.commands",),
    ("ucat.cli", "ucat.__main__"),
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES: Dict[str, Path] = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, best_len = None, -1
    for i, names in enumerate(LAYERS):
        for n in names:
            if (module == n or module.startswith(n + ".")) and len(n) > best_len:
                best, best_len = i, len(n)
    assert best is not None, f"{module} is in no layer of tests/test_architecture.py: add it"
    return best


def _resolve(module: str, node: ast.AST) -> List[str]:
    """The ucat modules an import statement in ``module`` reaches (submodules where named)."""
    is_pkg = MODULES[module].name == "__init__.py"
    out: List[str] = []
    if isinstance(node, ast.Import):
        out = [a.name for a in node.names if a.name == "ucat" or a.name.startswith("ucat.")]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_pkg else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not (target == "ucat" or target.startswith("ucat.")):
            return []
        for a in node.names:
            sub = f"{target}.{a.name}"
            out.append(sub if sub in MODULES else target)
    return [m for m in out if m in MODULES]


def _imports() -> Dict[str, List[Tuple[str, int, bool]]]:
    """module -> [(imported module, line, inside a function)]"""
    graph: Dict[str, List[Tuple[str, int, bool]]] = {}
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        edges = []
        for fn_scope, node in _walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges += [(m, node.lineno, fn_scope) for m in _resolve(mod, node)]
        graph[mod] = edges
    return graph


def _walk(tree: ast.AST):
    stack = [(False, tree)]
    while stack:
        in_fn, node = stack.pop()
        yield in_fn, node
        inner = in_fn or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        stack.extend((inner, child) for child in ast.iter_child_nodes(node))


def test_module_and_function_sizes():
    long_modules = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 400}
    assert not long_modules, f"modules over 400 lines: {long_modules}"
    long_functions = []
    for mod, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long_functions.append(f"{mod}.{node.name} ({n} lines)")
    assert not long_functions, f"functions over 80 lines: {long_functions}"


def test_no_upward_import():
    bad = []
    for mod, edges in _imports().items():
        for target, line, _ in edges:
            if layer_of(target) > layer_of(mod):
                bad.append(f"{mod}:{line} imports {target} (layer {layer_of(target)} > {layer_of(mod)})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph = {m: sorted({t for t, _, _ in edges if t != m}) for m, edges in _imports().items()}
    state: Dict[str, int] = {}
    cycles: List[List[str]] = []

    def visit(m: str, path: List[str]) -> None:
        state[m] = 1
        for t in graph.get(m, []):
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t] if t in path else [m, t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_function_level_imports_say_why():
    bad = []
    for mod, edges in _imports().items():
        lines = MODULES[mod].read_text().splitlines()
        tree = ast.parse(MODULES[mod].read_text())
        for in_fn, node in _walk(tree):
            if in_fn and isinstance(node, (ast.Import, ast.ImportFrom)) and "#" not in lines[node.lineno - 1]:
                bad.append(f"{mod}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not bad, "imports inside functions without a reason comment:\n" + "\n".join(sorted(bad))


@pytest.mark.parametrize("rule", ["upward", "cycle"])
def test_the_checker_itself_catches_violations(rule, monkeypatch):
    """The checks above must be able to fail: feed them a made-up violation."""
    fake = {"ucat.metrics": [("ucat.eval", 1, False)]} if rule == "upward" else \
        {"ucat.metrics": [("ucat.uncertainty", 1, False)], "ucat.uncertainty": [("ucat.metrics", 1, False)]}
    monkeypatch.setattr(__import__(__name__), "_imports", lambda: fake, raising=False)
    import sys

    monkeypatch.setattr(sys.modules[__name__], "_imports", lambda: fake)
    test = test_no_upward_import if rule == "upward" else test_no_import_cycle
    with pytest.raises(AssertionError):
        test()
