"""The benchmark scripts name tunecard's modules and functions by path; a refactor that moves one must move the
scripts with it. Every `from tunecard... import name` in benchmarks/*.py (at the top or inside a function) must
resolve, without running the scripts (they train for minutes)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))


def _tunecard_imports(path: Path) -> list[tuple[str, str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tunecard":
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names if alias.name.split(".")[0] == "tunecard"]
    return found


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.name)
def test_every_tunecard_name_a_benchmark_imports_exists(script):
    missing = []
    for module_name, name, line in _tunecard_imports(script):
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            missing.append(f"{script.name}:{line}: {module_name} ({error})")
            continue
        if name and not hasattr(module, name):
            try:
                importlib.import_module(f"{module_name}.{name}")
            except ImportError:
                missing.append(f"{script.name}:{line}: {module_name}.{name}")
    assert not missing, "\n".join(missing)
