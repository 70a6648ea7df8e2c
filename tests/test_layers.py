"""The sub-packages form layers (a DAG) and parts never import flows (issue 24, item 4).

Every import of every module under src/unfreeze/ is read with `ast` (function-level imports included, and
`importlib.import_module("unfreeze…")` with a literal name), then:
- no two sub-packages import each other, and every import goes to the module's own sub-package or a lower one in
  the layer order, which is read from docs/CONTRACTS.md (the line after "Layers, lowest first");
- a part (any module that is not a flow) never imports a flow module: a package's `__init__` may re-export its own
  package's flow, and the executor body that runs one run (`study.execute`) may use the run flow's entry `train`,
  nothing else from it.
A failure names the modules on both sides of each offending import.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
CONTRACTS = ROOT / "docs" / "CONTRACTS.md"

#: flow modules (each the home of one workflow's entry) → what the flow is
FLOWS = {
    "unfreeze": "the Python API (train, run_study, load)",
    "unfreeze.cli": "the command line",
    "unfreeze.training.run": "the run flow (train)",
    "unfreeze.study.runner": "the study flow (run_study)",
    "unfreeze.study.search": "the search study flow (run_search)",
    "unfreeze.report.build": "the report flow (build_report)",
    "unfreeze.probe.sequence": "the probe flow (run_probe)",
    "unfreeze.probe.tokens": "the token probe flow (run_token_probe)",
}
#: parts allowed to call a flow's entry, and which names they may take from it (running a run is their job)
RUNS_A_FLOW = {
    "unfreeze.study.execute": ("unfreeze.training.run", {"train"}),
}
#: names a part may read from the package root: constants, not flows
ROOT_CONSTANTS = {"__version__"}


def layer_order(text: str) -> list[str]:
    """The layer order stated in docs/CONTRACTS.md: the first line after "Layers, lowest first" that lists names
    joined by →."""
    after = text.split("Layers, lowest first", 1)[1]
    line = next(ln for ln in after.splitlines() if "→" in ln)
    return [name.strip(" `") for name in line.split("→")]


def module_files(src: Path) -> dict[str, Path]:
    """Dotted module name → file, for every module of the `unfreeze` package under `src`."""
    mods = {}
    for path in sorted((src / "unfreeze").rglob("*.py")):
        rel = path.relative_to(src).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        mods[".".join(parts)] = path
    return mods


def imports(src: Path) -> list[tuple[str, str, str | None]]:
    """Every (importing module, imported module, name taken from it or None for the module itself)."""
    mods = module_files(src)
    found = []
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            for target, name in _targets(node, package, mods, tree):
                if target.split(".")[0] == "unfreeze" and target != mod:
                    found.append((mod, target, name))
    return found


def _targets(node, package: str, mods: dict, tree) -> list[tuple[str, str | None]]:
    if isinstance(node, ast.Import):
        return [(_existing(a.name, mods), None) for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join(parts + ([base] if base else []))
        out = []
        for alias in node.names:
            if f"{base}.{alias.name}" in mods:  # a module imported as a name: the attributes used on it count
                used = _attributes_of(alias.asname or alias.name, tree)
                out += [(f"{base}.{alias.name}", n) for n in used] or [(f"{base}.{alias.name}", None)]
            else:
                out.append((_existing(base, mods), alias.name))
        return out
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return [(_existing(node.args[0].value, mods), None)]
    return []


def _existing(name: str, mods: dict) -> str:
    while name not in mods and "." in name:
        name = name.rpartition(".")[0]
    return name


def _attributes_of(alias: str, tree) -> set[str]:
    return {n.attr for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == alias}


def layer_of(mod: str) -> str | None:
    """`unfreeze.model.heads` → model, `unfreeze.errors` → errors; the package root → None (not a layer)."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else None


def mutual_packages(found) -> list[str]:
    """One line per pair of sub-packages that import each other, naming an import each way."""
    edges: dict[tuple[str, str], tuple[str, str]] = {}
    for mod, target, _ in found:
        a, b = layer_of(mod), layer_of(target)
        if a and b and a != b:
            edges.setdefault((a, b), (mod, target))
    return [f"{a} <-> {b}: {' → '.join(edges[a, b])} and {' → '.join(edges[b, a])} (move the shared name down a "
            "layer)" for a, b in sorted(edges) if a < b and (b, a) in edges]


def upward_imports(found, order: list[str]) -> list[str]:
    problems = []
    for mod, target, _ in found:
        a, b = layer_of(mod), layer_of(target)
        if a is None or b is None or a == b:
            continue
        for name in (a, b):
            if name not in order:
                problems.append(f"{name}: not in the layer order of {CONTRACTS.name}; place it there")
        if a in order and b in order and order.index(b) > order.index(a):
            problems.append(f"{mod} imports {target}, but {b} sits above {a} in the layer order")
    return sorted(set(problems))


def parts_importing_flows(found, packages: set[str] = frozenset()) -> list[str]:
    """One line per import of a flow by a part; `packages`: the modules that are a package's `__init__` (its
    public face, which may re-export its own package's flow, as `unfreeze.study` does `run_study`)."""
    problems = []
    for mod, target, name in found:
        if mod in FLOWS or target not in FLOWS:
            continue
        if mod in packages and target.startswith(mod + "."):
            continue
        if target == "unfreeze" and name in ROOT_CONSTANTS:
            continue
        allowed = RUNS_A_FLOW.get(mod)
        if allowed and allowed[0] == target and name in allowed[1]:
            continue
        problems.append(f"{mod} (a part) imports {name or 'the module'} from {target}, {FLOWS[target]}: move what "
                        "both need into a part module, or pass the flow in as a callable")
    return sorted(set(problems))


def test_no_two_sub_packages_import_each_other():
    assert mutual_packages(imports(SRC)) == []


def test_every_import_goes_down_the_layer_order_in_the_contracts():
    order = layer_order(CONTRACTS.read_text(encoding="utf-8"))
    packages = {layer_of(m) for m in module_files(SRC)} - {None}
    assert sorted(packages - set(order)) == [], f"add them to the layer order in {CONTRACTS.name}"
    assert upward_imports(imports(SRC), order) == []


def test_parts_never_import_flows():
    mods = module_files(SRC)
    assert set(FLOWS) <= set(mods), "a flow module moved: update FLOWS"
    packages = {m for m, path in mods.items() if path.name == "__init__.py"}
    assert parts_importing_flows(imports(SRC), packages) == []


def _write_package(src: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = src / "unfreeze" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return src


def test_the_checks_name_what_breaks_them(tmp_path):
    """The checks see function-level and relative imports: a toy package with one break of each kind."""
    src = _write_package(tmp_path, {
        "__init__.py": "",
        "config/__init__.py": "",
        "config/schema.py": "def check():\n    from ..model.bilstm import NAME\n",
        "model/__init__.py": "",
        "model/bilstm.py": "from unfreeze.config import schema\nNAME = schema.check\n",
        "study/__init__.py": "",
        "study/live.py": "def build():\n    from unfreeze.report.build import build_report\n",
        "study/execute.py": "from unfreeze.training import run as training\ntraining.train()\n",
        "training/__init__.py": "",
        "training/run.py": "def train():\n    pass\n",
        "report/__init__.py": "",
        "report/build.py": "import importlib\nimportlib.import_module('unfreeze.study.live')\n",
    })
    found = imports(src)
    assert mutual_packages(found) == [
        "config <-> model: unfreeze.config.schema → unfreeze.model.bilstm and unfreeze.model.bilstm → "
        "unfreeze.config.schema (move the shared name down a layer)",
        "report <-> study: unfreeze.report.build → unfreeze.study.live and unfreeze.study.live → "
        "unfreeze.report.build (move the shared name down a layer)"]
    assert upward_imports(found, ["config", "model", "training", "report", "study"]) == [
        "unfreeze.config.schema imports unfreeze.model.bilstm, but model sits above config in the layer order",
        "unfreeze.report.build imports unfreeze.study.live, but study sits above report in the layer order"]
    assert parts_importing_flows(found) == [
        "unfreeze.study.live (a part) imports build_report from unfreeze.report.build, the report flow "
        "(build_report): move what both need into a part module, or pass the flow in as a callable"]


def test_the_layer_order_is_stated_once_in_the_contracts():
    order = layer_order(CONTRACTS.read_text(encoding="utf-8"))
    assert order[0] == "errors" and order[-1] == "cli" and len(order) == len(set(order))
    assert re.search(r"tests/test_layers\.py", CONTRACTS.read_text(encoding="utf-8"))
