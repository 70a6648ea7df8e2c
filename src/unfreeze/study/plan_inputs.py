"""What a one-line plan was made from, so the same command run again resumes its study instead of re-planning it.

A plan depends on the command's inputs (the data files' contents, the budget, the model, `--set`, the column
options) and on this machine's measured throughput, which differs a little every time it is measured. So a rerun
after an interruption (Ctrl-C, `kill -9`) must not plan again: the new plan would differ from the study.yaml that
ran, and pooling its runs with the old ones would mix two plans. `plan.json` records the inputs (`inputs`); a rerun
with the same inputs runs the existing study.yaml as it is (its finished runs are kept), and a rerun with other
inputs into a folder where a study ran is one line naming what changed and the fix (a new `--out`; the project
never overwrites a study). A folder holding only a plan (a `--dry-run`) is planned again and rewritten.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from unfreeze.errors import UnfreezeError

#: the data config's file keys, as the command line names them in a message
FILE_FLAGS = {"path": "--data", "train": "--data", "test": "--test", "val": "--set data.val"}


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names + bytes, in sorted order)."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def plan_inputs(base: dict, budget: str, budget_seconds: float, model: str, overrides: list[str] | None,
                text_column: str | None, label_column: str | None) -> dict:
    """The inputs of one `study --data … --budget …` call, JSON-ready (they are compared after a round trip through
    plan.json): each data file (`base` after `--set`: --data, --test, a `data.val` given by `--set`) by path and
    content digest, a built-in data set by name, the budget, model, `--set` items and column options."""
    data = base.get("data", {})
    files = {key: {"file": str(data[key]), "sha256": file_digest(Path(data[key]))}
             for key in FILE_FLAGS if isinstance(data.get(key), str) and Path(data[key]).exists()}
    return {"files": files, "dataset": data.get("dataset"), "budget": str(budget),
            "budget_seconds": float(budget_seconds), "model": str(model), "set": [str(s) for s in overrides or []],
            "text_column": text_column, "label_column": label_column}


def changed_inputs(old: dict, new: dict) -> list[str]:
    """What differs between two `plan_inputs`, in the command line's words."""
    changes = []
    for key in sorted(set(old.get("files", {})) | set(new.get("files", {}))):
        flag = FILE_FLAGS.get(key, f"data.{key}")
        was, now = old.get("files", {}).get(key), new.get("files", {}).get(key)
        if was is None or now is None or was["file"] != now["file"]:
            changes.append(f"{flag} {(was or {}).get('file', 'none')} → {(now or {}).get('file', 'none')}")
        elif was["sha256"] != now["sha256"]:
            changes.append(f"{flag} {now['file']}: its contents changed")
    if old.get("dataset") != new.get("dataset"):
        changes.append(f"--data {old.get('dataset')} → {new.get('dataset')}")
    if old.get("budget_seconds") != new.get("budget_seconds"):
        changes.append(f"--budget {old.get('budget')} → {new.get('budget')}")
    for key, flag in (("model", "--model"), ("set", "--set"), ("text_column", "--text-column"),
                      ("label_column", "--label-column")):
        if old.get(key) != new.get(key):
            changes.append(f"{flag} {old.get(key)} → {new.get(key)}")
    return changes or ["plan.json's inputs differ"]


def planned_study(out: Path, inputs: dict) -> Path | None:
    """`out/study.yaml` when `out` holds a one-line plan made from these same `inputs` (run it as it is: a rerun
    resumes, it does not re-plan); None when there is nothing to resume (no plan, or only a plan that never ran:
    plan again); `UnfreezeError` when a study planned from other inputs ran in `out`."""
    from unfreeze.io import read_json
    from unfreeze.io.paths import PLAN_MARKER, STUDY_MARKER

    config, plan = out / "study.yaml", out / "plan.json"
    if not ((out / PLAN_MARKER).is_file() and config.is_file() and plan.is_file()):
        return None
    try:
        recorded = read_json(plan).get("inputs")
    except (OSError, ValueError, AttributeError):
        recorded = None
    if recorded == inputs:
        return config
    if not (out / STUDY_MARKER).is_file() or recorded is None:  # never ran / older plan.json: write_plan decides
        return None
    changes = "; ".join(changed_inputs(recorded, inputs))
    raise UnfreezeError(f"--out {out}: holds a one-line study planned from other inputs ({changes}); its runs "
                        "belong to that plan: choose a new --out for these inputs, or rerun the earlier command to "
                        "resume it")
