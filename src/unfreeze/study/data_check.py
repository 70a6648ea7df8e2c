"""A resumed study refuses to pool runs trained on data that changed since.

Run folders are named by a hash of the resolved config, which holds the data files' paths, not their contents:
edit `tr.csv` and resume, and the finished runs (old labels) would be counted beside new seeds (new labels) as if
they were seeds of one arm. Every run records `data_fingerprint` (train + val as it read them,
`training.run_dir.data_fingerprint`) in its `metrics.json`, the baseline likewise; before any training the study
compares them with the data it has just loaded and refuses on a mismatch, naming the file and the fix. Runs and
baselines from before the field are accepted with one warning.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from unfreeze.errors import DataError
from unfreeze.io import read_json
from unfreeze.study.grid import PlannedRun
from unfreeze.study.pool import DataPool


def check_data_unchanged(study_dir: Path, jobs: list[PlannedRun], pool: DataPool, echo, baseline: bool) -> None:
    """Raise `DataError` (one line: the file, the runs, the fix) when a finished run or baseline of `study_dir`
    recorded a train/val fingerprint other than the data's now. Hashes each data config (and CV fold) once,
    through `pool`, whose runs then reuse it."""
    changed: dict[str, list[str]] = {}  # the file(s) named in the error -> finished runs trained on other data
    unknown = 0
    for job in jobs:
        recorded = _recorded(study_dir / "runs" / job.run_id / "metrics.json")
        if recorded is None:
            continue
        if not recorded:
            unknown += 1
            continue
        current = pool.fingerprint(job.config, job.fold)
        for split in _changed_splits(recorded, current):
            changed.setdefault(_source(job.config, split, job.fold), []).append(f"runs/{job.run_id}")
    if baseline:
        unknown += _check_baselines(study_dir, jobs, pool, changed)
    if changed:
        source, where = next(iter(changed.items()))
        where = sorted(set(where), key=lambda w: (not w.startswith("runs/"), w))
        shown = ", ".join(where[:3]) + (f" and {len(where) - 3} more" if len(where) > 3 else "")
        raise DataError(f"{source} changed since the finished runs in {study_dir} were trained ({shown}: their "
                        f"train/val data fingerprint differs from the data now); resuming would pool runs on old and "
                        f"new data as seeds — choose a new --out for the changed data (or restore the file)")
    if unknown:
        echo(f"warning: {unknown} finished run(s)/baseline(s) in {study_dir} predate data fingerprints; "
             "they are kept without checking that the data is unchanged")


def check_search_data_unchanged(study_dir: Path, first: PlannedRun, pool: DataPool, echo, baseline: bool) -> None:
    """The same check for a search: its finished trials and re-runs are the run folders whose `config.yaml` reads
    the study's data config (a search space over `data.*` trains others, which are not loaded to check them)."""
    import json
    from types import SimpleNamespace

    from unfreeze.config.load import read_yaml

    key, jobs = pool.key(first.config), [first]
    for path in sorted((study_dir / "runs").glob("*/config.yaml")):
        try:
            saved = read_yaml(path)
            same = json.dumps({"task": saved["task"], "data": saved["data"]}, sort_keys=True) == key
        except Exception:  # noqa: BLE001 — an unreadable folder is the runner's to redo, not this check's
            continue
        if same and path.parent.name != first.run_id:
            jobs.append(SimpleNamespace(run_id=path.parent.name, config=first.config, fold=-1))
    check_data_unchanged(study_dir, jobs, pool, echo, baseline)


def _recorded(path: Path) -> dict | None:
    """None: not finished (or unreadable: the runner redoes or reports it); {}: finished before fingerprints."""
    if not path.is_file():
        return None
    try:
        recorded = read_json(path).get("data_fingerprint")
    except (OSError, ValueError, AttributeError):
        return None
    return recorded if isinstance(recorded, dict) else {}


def _changed_splits(recorded: dict, current: dict[str, str]) -> list[str]:
    return [split for split in ("train", "val") if recorded.get(split) != current[split]]


def _check_baselines(study_dir: Path, jobs: list[PlannedRun], pool: DataPool, changed: dict) -> int:
    """The baselines (`baseline/<data_key>/`, and `baseline/` itself) follow the runs' rule; returns how many
    predate fingerprints."""
    unknown = 0
    configs = {hashlib.sha1(pool.key(j.config).encode()).hexdigest()[:12]: j.config for j in jobs}
    for path in [study_dir / "baseline" / "metrics.json", *sorted((study_dir / "baseline").glob("*/metrics.json"))]:
        recorded = _recorded(path)
        if recorded is None:
            continue
        try:
            config = configs.get(read_json(path).get("data_key"))
        except (OSError, ValueError, AttributeError):
            continue
        if config is None:
            continue  # another data config's baseline: the study rebuilds or ignores it
        if not recorded:
            unknown += 1
            continue
        for split in _changed_splits(recorded, pool.fingerprint(config)):
            changed.setdefault(_source(config, split, -1), []).append(str(path.parent.relative_to(study_dir)))
    return unknown


def _source(config, split: str, fold: int) -> str:
    """The data file (or data set) a split was read from, as the error names it; CV folds mix train and val."""
    data = config.data
    if fold >= 0:
        sources = dict.fromkeys(_source(config, s, -1) for s in ("train", "val"))
        return " or ".join(sources)
    if getattr(data, split):
        return f"data.{split} {getattr(data, split)}"
    if data.train:
        return f"data.train {data.train}"
    if data.path:
        return f"data.path {data.path}"
    if data.dataset:
        return f"data set {data.dataset}"
    return f"data.hub {data.hub.path}" if data.hub is not None else "the study's data"
