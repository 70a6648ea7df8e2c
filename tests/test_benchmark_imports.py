"""The benchmark scripts import library internals (`benchmarks/*.py`); a refactor that renames or removes one
breaks a script nobody runs in the quick suite (issue #24 left `bench_cache_verify.py` importing `prepare_run` and
`training.run.build_caches`, both gone). Every `from unfreeze… import name` there must resolve."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"


def unfreeze_imports(path: Path) -> list[tuple[int, str, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [(node.lineno, node.module, alias.name) for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "unfreeze"
            for alias in node.names]


@pytest.mark.parametrize("path", sorted(BENCHMARKS.glob("*.py")), ids=lambda p: p.name)
def test_every_unfreeze_name_a_benchmark_imports_exists(path):
    missing = []
    for line, module, name in unfreeze_imports(path):
        found = importlib.import_module(module)
        if not hasattr(found, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ModuleNotFoundError:
                missing.append(f"{path.name}:{line}: from {module} import {name}")
    assert not missing, missing
