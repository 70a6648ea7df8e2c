"""What a study writes besides its runs, shared by the grid flow (`runner`) and the search flow (`search`):
study.json (+ the study file), failures.json, and the TF-IDF baseline.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from unfreeze.config.study import StudyConfig
from unfreeze.io import read_json, write_json, write_text
from unfreeze.study.execute import RunOutcome
from unfreeze.study.grid import PlannedRun
from unfreeze.study.pool import DataPool


def write_study_meta(study_dir: Path, study: StudyConfig, jobs: list[PlannedRun], study_text, command) -> None:
    from unfreeze.training.run_dir import versions

    first = jobs[0].config
    write_json(study_dir / "study.json", {
        "name": study.name, "task": first.task, "grid_keys": list(study.grid), "arms": sorted({j.arm for j in jobs}),
        "seeds": study.seeds, "selection_metric": first.selection_metric,
        "cv": study.cv.model_dump() if study.cv else None, "command": command, "versions": versions(),
        "runs": len(jobs), "run_ids": [j.run_id for j in jobs],
    })
    if study_text is not None:
        write_text(study_dir / "study.yaml", study_text)



def record_failures(study_dir: Path, failed: list[RunOutcome]) -> None:
    path = study_dir / "failures.json"
    previous = read_json(path) if path.exists() else []
    merged = {f["run_id"]: f for f in previous}
    for outcome in failed:
        merged[outcome.run_id] = {"run_id": outcome.run_id, "arm": outcome.arm, "error": outcome.error}
    finished = {p.parent.name for p in (study_dir / "runs").glob("*/metrics.json")}
    current = [f for rid, f in merged.items() if rid not in finished]
    if current or path.exists():
        write_json(path, current)



def run_baseline(study_dir: Path, jobs: list[PlannedRun], pool: DataPool, echo) -> None:
    """The TF-IDF (token tasks: most-frequent-tag) baseline once per distinct data config of the study, in
    `baseline/<data_key>/` (a grid over `data.train_size` gets one baseline per size, so each size's arms are
    judged against the floor trained on the same examples). The largest config's is also written to `baseline/`
    itself (the layout older reports read). Keyed by the data config: a study file whose data changed gets a new
    baseline, never a stale row."""
    from unfreeze.study.baselines import run_study_baseline

    by_key: dict[str, list[PlannedRun]] = {}
    for job in jobs:
        by_key.setdefault(hashlib.sha1(pool.key(job.config).encode()).hexdigest()[:12], []).append(job)
    largest = max(by_key, key=lambda k: by_key[k][0].config.data.train_size or float("inf"))
    for data_key, members in by_key.items():
        config, run_ids = members[0].config, sorted({j.run_id for j in members})
        outs = [study_dir / "baseline" / data_key] + ([study_dir / "baseline"] if data_key == largest else [])
        for out in outs:
            target = out / "metrics.json"
            if target.exists() and read_json(target).get("data_key") == data_key \
                    and sorted(read_json(target).get("run_ids", [])) == run_ids:
                continue
            run_study_baseline(study_dir, config, pool.get(config), data_key, out=out, run_ids=run_ids)
            echo(f"baseline written to {out}")
