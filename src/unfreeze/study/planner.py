"""One interface for every way a study chooses its runs, and the one loop that drives any of them on any executor.

A **planner** says what to run next from what has finished: the grid (every run, once: `GridPlanner`), seed racing
(seed by seed, stopping arms between seeds: `racing.RacingPlanner`), an Optuna search (ask trials, tell their
results: `trials.TrialPlanner`). The budget planner (`plan.py`, `oneline.py`) works ahead of time instead: it
writes a study file whose grid `GridPlanner` then runs.

An **executor** runs a batch of planned runs and returns their outcomes, one backend each: `execute.LocalExecutor`
(one after another in this process) and `ray_executor.RayExecutor` (as many at once as the cluster fits). Both
run each run with `execute.execute_run`, so a run is the same wherever it runs.

`drive` is the loop between them: ask the planner for a batch (at most `executor.slots()` runs where the planner
can choose how many, e.g. trials), run it, hand the outcomes back, until the planner has nothing left.
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Protocol

from unfreeze.study.execute import RunOutcome
from unfreeze.study.grid import PlannedRun
from unfreeze.study.pool import DataPool

log = logging.getLogger(__name__)


class Planner(Protocol):
    def next_runs(self, finished: list[RunOutcome], room: int) -> list[PlannedRun]:
        """The runs to start now, given the outcomes of the last batch ([] at first) and how many runs the executor
        can run at once (a hint: a planner with a fixed list may return more). [] means the plan is done."""

    def describe(self) -> str:
        """One line for the console: what this planner will run."""


class Executor(Protocol):
    name: str

    def run(self, jobs: list[PlannedRun], study_dir: Path, pool: DataPool, top_ks: dict[str, set[int]],
            report) -> list[RunOutcome]:
        """Run `jobs` (each with `execute.execute_run`), calling `report(outcome)` as each finishes; their outcomes.
        May also define `slots()` (runs it runs at once; 1 if absent) and `session()` (a context that keeps its
        backend up across batches, e.g. one Ray connection for a whole search)."""


class GridPlanner:
    """A fixed list of runs (a grid study's unfinished runs, a search's re-runs), all in one batch."""

    def __init__(self, jobs: list[PlannedRun], what: str = "runs"):
        self.jobs, self.what = list(jobs), what

    def next_runs(self, finished: list[RunOutcome], room: int) -> list[PlannedRun]:
        jobs, self.jobs = self.jobs, []
        return jobs

    def describe(self) -> str:
        return f"{len(self.jobs)} {self.what}"


class SilentReport:
    """A progress reporter that prints nothing (the search's planner prints its own trial lines)."""

    def __init__(self, show_run_progress: bool = True):
        self.show_run_progress, self.running = show_run_progress, None

    def __call__(self, outcome: RunOutcome) -> None:
        pass


def session(executor):
    """The executor's session (one Ray connection across batches), or none (local, a test's stand-in)."""
    return executor.session() if hasattr(executor, "session") else contextlib.nullcontext()


def drive(planner: Planner, executor: Executor, study_dir: Path, pool: DataPool, top_ks: dict[str, set[int]],
          report) -> list[RunOutcome]:
    """Run what `planner` plans on `executor` until it plans nothing more; every outcome, in the order run."""
    outcomes: list[RunOutcome] = []

    def slots() -> int:  # asked before every batch: a Ray cluster may grow or shrink meanwhile
        return executor.slots() if hasattr(executor, "slots") else 1

    log.info("planner: %s, on the %s executor", planner.describe(), getattr(executor, "name", "given"))
    with session(executor):
        batch = planner.next_runs([], slots())
        while batch:
            finished = executor.run(batch, study_dir, pool, top_ks, report)
            outcomes += finished
            batch = planner.next_runs(finished, slots())
    return outcomes


def make_executor(study, name: str | None = None, address: str | None = None) -> Executor:
    """The executor `name` (the study's `executor:` if None): local, or Ray at `address` (the study's `ray:`)."""
    from unfreeze.study.execute import LocalExecutor

    name = name or study.executor
    if name == "local":
        return LocalExecutor()
    from unfreeze.study.ray_executor import RayExecutor

    return RayExecutor(study.ray if address is None else study.ray.model_copy(update={"address": address}))
