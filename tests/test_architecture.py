"""The package's layout is its data flow (docs/architecture.md): stage folders in order, a small root, one speed
seam. These tests read the imports of every module (without importing them), so a change that reaches back up
the flow, or around the speed seam, fails here with the offending import named."""

from __future__ import annotations

import ast
from pathlib import Path

import tunecard

PACKAGE = Path(tunecard.__file__).parent
# The order of the flow. A module may import from its own stage, from an earlier one, or from the root's shared
# modules (rank 0); never from a later stage. `metrics` is a library of scorers used from training on.
RANK = {
    "errors": 0, "environment": 0,
    "data": 1, "metrics": 1,
    "config": 2,
    "encoding": 3,
    "speed": 4,
    "training": 5,
    "doctor": 6,
    "reporting": 7,
    "inference": 8,
    "export": 9,
    "serve": 10,
    "pipeline": 11,
    "search": 12, "recipes": 12,
    "cli": 13, "__main__": 13,
}
ROOT_LIMIT = 8


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path) -> list[str]:
    """Every tunecard module or name `module` imports, resolved to absolute dotted names."""
    is_package = path.name == "__init__.py"
    targets = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets += [f"{source}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
    return [t for t in targets if t == "tunecard" or t.startswith("tunecard.")]


def _stage(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_the_root_holds_only_shared_modules():
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= ROOT_LIMIT, root
    stages = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file())
    assert set(stages) <= set(RANK), f"a new stage folder needs its place in RANK and docs/architecture.md: {stages}"


def test_no_module_imports_from_a_later_stage():
    wrong = []
    for module, path in _modules().items():
        here = _stage(module)
        if here == "__init__":  # the package's lazy public names
            continue
        for target in _imports(module, path):
            there = _stage(target)
            if there in ("__init__", here) or there not in RANK:
                continue
            if RANK[there] > RANK[here]:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_nothing_outside_the_speed_layer_imports_a_lever():
    """Training and inference know only the plan (`tunecard.speed`'s public names), never a lever module."""
    import tunecard.speed

    public = {f"tunecard.speed.{name}" for name in tunecard.speed.__all__}
    wrong = []
    for module, path in _modules().items():
        if _stage(module) == "speed":
            continue
        for target in _imports(module, path):
            if target.startswith("tunecard.speed.") and target not in public:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_the_stage_graph_has_no_cycle():
    edges: dict[str, set[str]] = {}
    for module, path in _modules().items():
        for target in _imports(module, path):
            a, b = _stage(module), _stage(target)
            if "__init__" not in (a, b) and a != b:
                edges.setdefault(a, set()).add(b)
    visiting, done = set(), set()

    def visit(stage, trail):
        if stage in done:
            return
        assert stage not in visiting, " -> ".join([*trail, stage])
        visiting.add(stage)
        for nxt in edges.get(stage, ()):
            visit(nxt, [*trail, stage])
        visiting.discard(stage)
        done.add(stage)

    for stage in list(edges):
        visit(stage, [])


def test_a_later_import_is_caught(tmp_path):
    """The check itself: a module of an early stage importing a later one is reported."""
    path = tmp_path / "reader.py"
    path.write_text("from tunecard.reporting.card import write_card\nfrom ..speed.packing import PACKED\n")
    targets = _imports("tunecard.data.reader", path)
    assert targets == ["tunecard.reporting.card.write_card", "tunecard.speed.packing.PACKED"]
    assert RANK[_stage(targets[0])] > RANK["data"]
