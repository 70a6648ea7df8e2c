"""Docs that cannot drift: every module under src/unfreeze/ is on docs/CONTRACTS.md's map, and every CLI command
is shown in README.md and listed on the map's `cli.py` entry. A failure names exactly what to add where."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "unfreeze"
CONTRACTS = ROOT / "docs" / "CONTRACTS.md"
README = ROOT / "README.md"
MAP_HEADING = "## Map of the package"


def map_entries(text: str) -> dict[str, str]:
    """The map's entries: key (`model/`, `cli.py`) → its text, continuation lines included. An entry starts at
    a line indented by exactly two spaces; deeper-indented lines continue it."""
    block = text.split(MAP_HEADING, 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    key = None
    for line in block.splitlines():
        if re.match(r"^  \S", line):
            key = line.split()[0]
            entries[key] = line
        elif key and re.match(r"^   +\S", line):
            entries[key] += "\n" + line
    return entries


def mentions(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w/.]){re.escape(name)}(?![\w])", text) is not None


def missing_modules(entries: dict[str, str], src: Path) -> list[str]:
    """One instruction per module of `src` the map does not name."""
    problems = []
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        if len(rel.parts) == 1:
            if not any(mentions(text, rel.name) for key, text in entries.items() if not key.endswith("/")):
                problems.append(f"{rel}: add a line `  {rel.name:<16} (what it holds)` to the map in "
                                f"{CONTRACTS.relative_to(ROOT)} ('{MAP_HEADING}')")
            continue
        package = "/".join(rel.parts[:-1]) + "/"
        if package not in entries:
            problems.append(f"{rel}: its package is not on the map: add a line `  {package:<16} "
                            f"{rel.name} (what it holds), …` to {CONTRACTS.relative_to(ROOT)} ('{MAP_HEADING}')")
        elif rel.name != "__init__.py" and not mentions(entries[package], rel.name):
            problems.append(f"{rel}: add `{rel.name} (what it holds)` to the `{package}` entry of the map in "
                            f"{CONTRACTS.relative_to(ROOT)} ('{MAP_HEADING}'; a continuation line indented "
                            "like the others)")
    return problems


def cli_commands() -> list[str]:
    from unfreeze.cli import app

    names = [c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands]
    return names + [g.name for g in app.registered_groups if g.name]


def test_every_module_is_on_the_contracts_map():
    problems = missing_modules(map_entries(CONTRACTS.read_text(encoding="utf-8")), SRC)
    assert not problems, "modules missing from the package map:\n" + "\n".join(problems)


def test_every_cli_command_is_in_the_readme_and_on_the_map():
    readme = README.read_text(encoding="utf-8")
    cli_entry = map_entries(CONTRACTS.read_text(encoding="utf-8")).get("cli.py", "")
    problems = [f"README.md never shows `unfreeze {name}`: add a usage line `unfreeze {name} …   # what it does` "
                "(e.g. to the Quickstart block)" for name in cli_commands()
                if not re.search(rf"unfreeze {re.escape(name)}\b", readme)]
    problems += [f"{CONTRACTS.relative_to(ROOT)}: add `{name}` to the sub-commands listed on the map's `cli.py` "
                 "entry" for name in cli_commands() if not mentions(cli_entry, name)]
    assert len(cli_commands()) >= 8  # train, study, report, predict, export, inspect, validate, probe
    assert not problems, "\n".join(problems)


def test_the_check_names_a_missing_module_and_where_to_add_it(tmp_path):
    """The drift check itself: a module absent from its package entry, a package absent from the map, and a
    top-level module absent from the map are each reported with the line to add."""
    for rel in ("cli.py", "model/heads.py", "model/card.py", "newpkg/__init__.py", "newpkg/part.py", "extra.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    text = f"{MAP_HEADING}\n```\nsrc/unfreeze/\n  cli.py   commands\n  model/   heads.py (the head),\n" \
           "           card_other.py\n```\n"
    problems = missing_modules(map_entries(text), tmp_path)
    assert len(problems) == 4, problems
    assert any(p.startswith("model/card.py: add `card.py") and "`model/` entry" in p for p in problems)
    assert any(p.startswith("newpkg/part.py: its package is not on the map") for p in problems)
    assert any(p.startswith("extra.py: add a line `  extra.py") for p in problems)
