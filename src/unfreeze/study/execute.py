"""Running one planned run into its study folder (skipped when finished, redone from scratch when not), the
local executor, and the cache boundaries a study needs.
"""
from __future__ import annotations




import logging

import shutil

import time

from dataclasses import dataclass, field

from pathlib import Path





from unfreeze.strategies import get_strategy
from unfreeze.errors import Pruned, UnfreezeError

from unfreeze.io import read_json, recover_dir
from unfreeze.study.grid import PlannedRun
from unfreeze.study.pool import DataPool
from unfreeze.study.trial_run import TrialRun


log = logging.getLogger(__name__)



@dataclass
class RunOutcome:
    run_id: str
    arm: str
    ok: bool
    skipped: bool = False
    seconds: float = 0.0
    error: str | None = None
    metrics: dict = field(default_factory=dict)
    pruned: bool = False  # a search trial its pruner stopped (ok: not a failure; no metrics)



def cache_top_ks(runs: list[PlannedRun]) -> dict[str, set[int]]:
    """Per backbone name, every `top_k` a study needs (0 = head), so one forward pass fills all boundaries."""
    ks: dict[str, set[int]] = {}
    for run in runs:
        freeze = run.config.freeze
        top = get_strategy(freeze.strategy).cached_top(freeze)
        if top is not None:
            ks.setdefault(run.config.model.name, set()).add(top)
    return ks



def execute_run(job: PlannedRun, study_dir: Path, pool: DataPool, top_ks: dict[str, set[int]],
                progress: bool = True) -> RunOutcome:
    """Run one planned run into its folder unless it finished before. Deterministic errors are returned, not
    raised, so one bad arm does not stop the study."""
    from unfreeze.training.run_dir import is_finished
    from unfreeze.training.callbacks import RunCallbacks
    from unfreeze.training.run import train

    run_dir = study_dir / "runs" / job.run_id
    recover_dir(run_dir)  # a swap a killed process left half done: finish it before asking "finished?"
    if is_finished(run_dir):
        return RunOutcome(job.run_id, job.arm, ok=True, skipped=True, metrics=read_json(run_dir / "metrics.json"))
    trial = isinstance(job, TrialRun)
    if trial and (run_dir / "pruned.json").exists():  # pruned once: asked again, it is not retrained
        return RunOutcome(job.run_id, job.arm, ok=True, skipped=True, pruned=True)
    if run_dir.exists():
        shutil.rmtree(run_dir)  # unfinished: redo from scratch
    started = time.perf_counter()
    hooks = job.started() if trial else {}  # a search trial: its pruner, fed after every evaluation
    try:
        callbacks = RunCallbacks(cache_root=study_dir / "cache", cache_top_ks=top_ks.get(job.config.model.name),
                                 run_info=job.info, **hooks)
        metrics = train(job.config, run_dir, overwrite=True, progress=progress, data=pool.get(job.config, job.fold),
                        callbacks=callbacks)
    except Pruned as stop:
        job.pruned(run_dir, stop, started)
        return RunOutcome(job.run_id, job.arm, ok=True, pruned=True, seconds=time.perf_counter() - started)
    except UnfreezeError as exc:
        return RunOutcome(job.run_id, job.arm, ok=False, seconds=time.perf_counter() - started, error=str(exc))
    except Exception as exc:  # noqa: BLE001 — any failure of one run is recorded (as under Ray); Ctrl-C still stops
        log.exception("run %s (%s) failed", job.run_id, job.arm)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return RunOutcome(job.run_id, job.arm, ok=False, seconds=time.perf_counter() - started,
                          error=f"{type(exc).__name__}: {first}")
    return RunOutcome(job.run_id, job.arm, ok=True, seconds=time.perf_counter() - started, metrics=metrics)



class LocalExecutor:
    """Runs one after another in this process (torch uses all cores for each run)."""

    name = "local"

    def run(self, jobs: list[PlannedRun], study_dir: Path, pool: DataPool, top_ks, report) -> list[RunOutcome]:
        outcomes = []
        for job in jobs:
            outcome = execute_run(job, study_dir, pool, top_ks, progress=report.show_run_progress)
            report(outcome)
            outcomes.append(outcome)
        return outcomes
