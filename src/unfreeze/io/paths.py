"""Where unfreeze may write, and file names made from user strings.

Two promises, each kept in one place:

* `check_out_folder` — an output folder (`train --out`, `study --out`, `export -o`) is never the current folder, one
  of its parents, the home folder or the file system root, never a file, and never a folder holding anything unfreeze
  did not write there (a run folder for `train`, a study folder for `study`, an earlier export for `export`).
  `--overwrite` replaces only such a folder of our own; it never turns a user's folder into a run. Checked before any
  work, as one line (`UnfreezeError`, rc 2).
* `path_component` — a user string (an arm, a study or a label name) becomes one file name that cannot escape its
  folder (no `/`, `..`, NUL, control characters; ASCII only, so unicode normalisation cannot merge two names) and
  never collides with the component of another string, on case-insensitive file systems too.

Also `check_out_file` (`predict -o`: never a run's file, the input, or a folder) and `overrides_hash` (the suffix that
tells two configs apart under one arm name).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

from unfreeze.errors import UnfreezeError

_PLAIN = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
_HASHED_TAIL = re.compile(r"-[0-9a-f]{10}$")
# Names some systems refuse or treat specially whatever their case or extension (Windows devices).
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
COMPONENT_LIMIT = 80

# What identifies a folder unfreeze wrote (see training/run_dir.py, study/bookkeeping.py, model/export.py).
RUN_MARKERS = ("metrics.json", "pruned.json", "run.json")
# Exactly what `training/run_dir.write_run` puts in a run folder (it is staged whole and swapped in, so no hidden
# temp file of ours is ever left inside it); anything else is a user's.
RUN_ENTRIES = {"config.yaml", "run.json", "history.csv", "metrics.json", "pruned.json", "best",
               *(f"predictions_{split}.{ext}" for split in ("val", "test") for ext in ("csv", "jsonl"))}
STUDY_MARKER = "study.json"
PLAN_MARKER = ".unfreeze-plan"  # written by `study --data` (oneline.write_plan) beside its study.yaml / plan.json
# What a study folder holds before its study.json is written: the lock, a search's default Optuna storage (a search
# killed before its study.json leaves it; `study.search_space.storage_url`); study.yaml / plan.json only with
# PLAN_MARKER.
SEARCH_STORAGE = {"optuna.db", "optuna.db-journal", "optuna.db-wal", "optuna.db-shm"}
STUDY_BEFORE_MARKER = {".lock", PLAN_MARKER, *SEARCH_STORAGE}
PLAN_FILES = {"study.yaml", "plan.json"}
EXPORT_MARKER = "unfreeze_export.json"
PROBE_ENTRIES = {"probe.json", "probe.png"}
MODEL_MARKER = "unfreeze.json"  # a saved model (model/checkpoint.py MODEL_META)


def path_component(name: str, limit: int = COMPONENT_LIMIT) -> str:
    """One safe, collision-free file name for the user string `name`.

    A name that is already a plain lower-case slug (letters a-z, digits, single `-`/`_` between them) is used as is,
    so `all`, `top-2` and `head` keep their readable folders. Any other name becomes its slug plus `-` and 10 hex
    digits of the sha1 of the exact name (`Fast` → `fast-<hash>`), so two different names (case, unicode
    normalisation, `a/b` vs `a_b`) never share a component. Plain names never end like a hashed one (`-` + 10 hex
    digits), so the two kinds cannot meet either; the result is at most `limit` characters (≥ 24)."""
    text = str(name)
    if (_PLAIN.fullmatch(text) and len(text) <= limit and not _HASHED_TAIL.search(text)
            and text not in _RESERVED):  # a plain name has no ".": "con", never "con.txt"
        return text
    digest = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[: max(limit - 11, 1)].strip("-") or "x"
    return f"{slug}-{digest}"


def _is_within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def _forms(path: Path) -> set[Path]:
    """The path as given (made absolute, `..` folded) and with symlinks resolved."""
    return {Path(os.path.abspath(path)), Path(os.path.realpath(path))}


def expand(out: str | Path) -> Path:
    """`out` with a leading `~` expanded (a quoted `--out '~/x'` reaches us unexpanded), made absolute."""
    return Path(os.path.abspath(os.path.expanduser(str(out))))


def enclosing_study(path: Path) -> Path | None:
    """The nearest strict parent of `path` holding a study.json (as given and with symlinks resolved), or None.
    Only the study writes inside its folder; other commands (`train`, `export`, `probe`, `predict -o`) never do."""
    for form in _forms(path):
        for folder in form.parents:
            if (folder / STUDY_MARKER).is_file():
                return folder
    return None


def refuse_inside_study(out: str | Path, flag: str) -> None:
    """One line when `out` lies inside a study folder (`enclosing_study`)."""
    study = enclosing_study(expand(out))
    if study is not None:
        raise UnfreezeError(f"{flag} {expand(out)}: is inside the study {study}, whose runs, baseline and files only "
                            f"`unfreeze study` writes; choose a {flag} outside it")


def check_out_location(out: str | Path, flag: str = "--out", writes_into: bool = False) -> Path:
    """Refuse an output location unfreeze must never replace or fill (see the module docstring); returns it
    absolute. `writes_into`: the command writes inside the folder itself (a study), so the folder must be writable;
    otherwise the folder is staged beside it and renamed into place, so its parent must be."""
    given = str(out)
    path = expand(out)
    cwd, home = _forms(Path.cwd()), _forms(Path.home())
    for form in _forms(path):
        if form == Path(form.anchor):
            raise UnfreezeError(f"{flag} {given!r} is the file system root; give a folder of its own, e.g. "
                                f"{flag} {_example(flag)}")
        if form in home:
            raise UnfreezeError(f"{flag} {given!r} is your home folder; give a folder of its own, e.g. "
                                f"{flag} {_example(flag)}")
        if any(_is_within(c, form) for c in cwd):
            raise UnfreezeError(f"{flag} {given!r} is the current folder or one of its parents, which unfreeze "
                                f"never fills or replaces; give a folder of its own, e.g. {flag} {_example(flag)}")
    if path.exists() and not path.is_dir():
        raise UnfreezeError(f"{flag} {path}: exists and is a file, not a folder; choose another {flag}")
    existing = next(p for p in [path, *path.parents] if os.path.lexists(p))
    writable_needed = existing if (writes_into or existing != path) else existing.parent
    if not writable_needed.is_dir():
        raise UnfreezeError(f"{flag} {path}: {writable_needed} is a file, not a folder; choose another {flag}")
    if not os.access(writable_needed, os.W_OK | os.X_OK):
        raise UnfreezeError(f"{flag} {path}: {writable_needed} is not a writable folder; choose a {flag} you can "
                            "write to (checked before any work, so nothing is lost)")
    return path


def _example(flag: str) -> str:
    return {"--out": "runs/my-run", "-o": "exported/my-model"}.get(flag, "my-folder")


def foreign_entry(folder: Path, kind: str) -> str | None:
    """The first entry of the existing non-empty `folder` that shows it is not a `kind` folder unfreeze wrote
    ("run", "study", "export", "probe" or "model"), or None when it is one of ours."""
    names = sorted(os.listdir(folder))
    if kind == "run":
        if folder.parent.name == "runs" and (folder.parent.parent / STUDY_MARKER).is_file():
            return None  # a study's runs/<config hash>: the study named it, whatever a crash left in it
        if "config.yaml" not in names or not any(n in names for n in RUN_MARKERS):
            return next((n for n in names if n != "config.yaml"), names[0])
        return next((n for n in names if n not in RUN_ENTRIES), None)
    if kind == "study":
        if STUDY_MARKER in names:
            return None
        ours = STUDY_BEFORE_MARKER | (PLAN_FILES if PLAN_MARKER in names else set())
        return next((n for n in names if n not in ours), None)
    if kind == "export":
        return None if EXPORT_MARKER in names else names[0]
    if kind == "probe":
        return next((n for n in names if n not in PROBE_ENTRIES), None)
    if kind == "model":
        return None if MODEL_MARKER in names else names[0]
    raise ValueError(kind)


_EXISTS = {"run": "run folder", "study": "study folder", "export": "an earlier export", "probe": "probe folder",
           "model": "saved model"}
_WHAT = {"run": "a run folder", "study": "a study folder", "export": "a folder `unfreeze export` wrote",
         "model": "a saved model (unfreeze.json)",
         "probe": "a folder `unfreeze probe` wrote"}


def check_out_folder(out: str | Path, flag: str, kind: str, overwrite: bool | None = None,
                     before_contents: Callable[[Path], object] | None = None) -> Path:
    """The one check of an output folder, before any work: `check_out_location`, then (after `before_contents`,
    e.g. finishing an interrupted swap) its contents: a non-empty folder must be one of ours of this `kind`, and,
    where `overwrite` is not None, `overwrite` must be given to replace it. Returns the absolute path."""
    path = check_out_location(out, flag, writes_into=kind in ("study", "probe"))
    if kind in ("study", "probe"):  # written into in place: never inside (or onto) a run or a saved model
        inside = enclosing_written_folder(path)
        if inside is not None:
            raise UnfreezeError(f"{flag} {path}: {inside[0]} is {inside[1]}; unfreeze only fills or replaces a folder "
                                f"it wrote itself, of this kind: choose a new {flag} outside it")
    if before_contents is not None:
        before_contents(path)
    if not path.is_dir() or not any(path.iterdir()):
        return path
    foreign = foreign_entry(path, kind)
    if foreign is not None:
        raise UnfreezeError(f"{flag} {path}: holds {foreign!r}, so it is not {_WHAT[kind]}; unfreeze only fills or "
                            f"replaces a folder it wrote itself (--overwrite too): choose a new {flag}")
    if overwrite is False:
        raise UnfreezeError(f"{path}: {_EXISTS[kind]} exists and is not empty; pass --overwrite or choose "
                            f"another {flag}")
    return path


def written_folder(folder: Path) -> str | None:
    """What unfreeze folder `folder` is ("a saved model", "a run folder"), or None: a saved model has unfreeze.json;
    a run run.json or pruned.json, or config.yaml beside metrics.json or best/."""
    if (folder / "unfreeze.json").is_file():
        return "a saved model"
    if (folder / "run.json").is_file() or (folder / "pruned.json").is_file() or (
            (folder / "config.yaml").is_file() and ((folder / "metrics.json").is_file() or (folder / "best").is_dir())):
        return "a run folder"
    return None


def enclosing_written_folder(path: Path) -> tuple[Path, str] | None:
    """The nearest of `path` and its parents that is a run or saved-model folder (`written_folder`), with what it
    is; None when there is none. Nothing is ever written into such a folder but by the run itself."""
    for folder in [path, *path.parents]:
        if folder.is_dir():
            what = written_folder(folder)
            if what is not None:
                return folder, what
    return None


def check_out_file(out: str | Path, flag: str = "-o", keep: tuple[str | Path, ...] = ()) -> Path:
    """An output file (`predict -o`): not a folder, not one of the `keep` files (the input), not inside a run or
    saved-model folder, in a writable place. One line, before any work; returns the absolute path."""
    path = expand(out)
    if path.is_dir():
        raise UnfreezeError(f"{flag} {path}: is a folder; give a file name, e.g. {flag} predictions.csv")
    for other in keep:
        if os.path.exists(other) and os.path.exists(path) and os.path.samefile(other, path):
            raise UnfreezeError(f"{flag} {path}: is the input file, which the output would replace; choose another "
                                f"{flag}")
    inside = enclosing_written_folder(path.parent)
    if inside is not None:
        raise UnfreezeError(f"{flag} {path}: {inside[0]} is {inside[1]}, whose files only its run writes; choose a "
                            f"{flag} outside it")
    refuse_inside_study(path, flag)
    existing = next(p for p in path.parents if os.path.lexists(p))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UnfreezeError(f"{flag} {path}: {existing} is not a writable folder; choose a {flag} you can write to")
    return path


def read_study_json(study_dir: str | Path) -> dict:
    """A study folder's study.json; one line (not a traceback) when it is damaged, e.g. overwritten by hand."""
    path = Path(study_dir) / STUDY_MARKER
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        meta = exc
    if not isinstance(meta, dict):
        raise UnfreezeError(f"{path}: damaged (not the study.json `unfreeze study` writes); rerun `unfreeze study "
                            f"STUDY.yaml --out {Path(study_dir)}` to rewrite it (finished runs are kept)")
    return meta


def overrides_hash(overrides: dict) -> str:
    """8 hex digits identifying a study arm's overrides (its config apart from the seed and fold): the suffix that
    tells apart two configs under one display name (`model=best #1a2b3c4d`), wherever arm names are shown or given."""
    return hashlib.sha1(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]
