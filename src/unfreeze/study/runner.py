"""A study: a grid of run configs × seeds (× folds), run resumably into one results store, then aggregated.

Layout of the study folder is documented in `docs/CONTRACTS.md`. A run's folder is named by a stable hash of
its fully resolved config (+ fold), so editing the study file adds or removes runs without touching unrelated
ones, and re-running skips every run whose `metrics.json` exists (written last, atomically). A run that was
interrupted has no run folder (only a staging folder under `runs/.unfinished/`, or a swap `recover_all` finishes), or one without `metrics.json`
(older versions): it is redone from scratch.
"""

from __future__ import annotations




import logging


import time


from pathlib import Path



import pandas as pd

from unfreeze.config.study import StudyConfig


from unfreeze.io.lock import StudyLock
from unfreeze.io.swap import recover_all
from unfreeze.study.execute import RunOutcome, cache_top_ks
from unfreeze.study.grid import expand
from unfreeze.study.planner import GridPlanner, drive, make_executor
from unfreeze.study.pool import DataPool
from unfreeze.study.results import collect_results
from unfreeze.study.bookkeeping import record_failures, run_baseline, write_study_meta


log = logging.getLogger(__name__)



class ProgressReporter:
    """One line per finished run: done / total, the run's headline metric, and an ETA from the runs so far.

    The ETA comes from measured run times per arm kind: each run still to do is charged the mean time of the
    finished runs of its arm, else of its freeze strategy (head, top-2, all … cost very different amounts), else
    of all finished runs; the sum is scaled by wall time / summed run time (parallel executors, overheads)."""

    def __init__(self, total: int, already_done: int, metric: str, echo=print, show_run_progress: bool = True,
                 kinds: dict[str, tuple[str, str]] | None = None):
        self.total, self.done, self.metric, self.echo = total, already_done, metric, echo
        self.pending = dict(kinds or {})  # run_id -> (arm, strategy) of the runs still to do
        self.seconds: dict[str, list[float]] = {}
        self.show_run_progress = show_run_progress
        self.failed = 0
        self.running: int | None = None  # set by executors that run several at once
        self.started = time.perf_counter()
        self.ran = 0
        self.listeners: list = []  # called with every outcome first (e.g. the tracker, in the driver process)

    def __call__(self, outcome: RunOutcome) -> None:
        for listener in self.listeners:
            listener(outcome)
        if outcome.skipped:
            return
        self.done += 1
        self.ran += 1
        if not outcome.ok:
            self.failed += 1
        elapsed = time.perf_counter() - self.started
        eta = self.eta(outcome, elapsed)
        if outcome.ok:
            value = outcome.metrics.get("val", {}).get(self.metric)
            what = f"val {self.metric} {value:.4f}" if isinstance(value, float) else "done"
        else:
            what = f"FAILED: {outcome.error}"
        running = f" · running {self.running}" if self.running is not None else ""
        self.echo(f"[{self.done}/{self.total}] {outcome.arm} ({outcome.run_id}) {what} in {outcome.seconds:.0f}s"
                  f"{running} · failed {self.failed} · ETA {eta / 60:.1f} min")



    def eta(self, outcome: RunOutcome, elapsed: float) -> float:
        kind = self.pending.pop(outcome.run_id, None)
        if kind is None:  # no kinds known (an executor's own reporter): the plain average
            return elapsed / self.ran * (self.total - self.done)
        if outcome.ok and outcome.seconds > 0:
            for key in (f"arm:{kind[0]}", f"strategy:{kind[1]}", "all"):
                self.seconds.setdefault(key, []).append(outcome.seconds)
        measured = sum(self.seconds.get("all", []))
        if not self.pending or not measured:
            return elapsed / self.ran * len(self.pending)

        def mean(key: str) -> float | None:
            values = self.seconds.get(key)
            return sum(values) / len(values) if values else None

        todo = sum(mean(f"arm:{a}") or mean(f"strategy:{s}") or mean("all") for a, s in self.pending.values())
        return todo * elapsed / measured



def make_planner(study: StudyConfig, jobs: list, todo: list, study_dir: Path, reporter, echo):
    """The planner of a grid study: seed racing (`racing:`) or every unfinished run (a search has its own flow)."""
    if study.racing:
        from unfreeze.study.racing import RacingPlanner

        return RacingPlanner(study, jobs, study_dir, reporter, echo)
    return GridPlanner(todo)


def run_study(study: StudyConfig, out_dir: str | Path, executor=None, progress: bool = True, echo=print,
              study_text: str | None = None, command: str | None = None, track: list[str] | None = None
              ) -> pd.DataFrame:
    """Run every unfinished run of the study, the baseline and CV ensembles; write results.csv and the report.

    `track`: tracking backends to use besides the study file's `tracking.backends` (the CLI's `--track`).
    Holds `StudyLock(out_dir)` throughout: a second process on the same folder gets `LockedError` at once (one line
    naming the holder's pid and host) instead of both writing the same runs. `out_dir` must be new, empty or a study
    folder (`io.paths.check_out_folder`: never the current folder, a user's folder, a run). The returned frame's
    ``attrs["failed_runs"]`` counts the runs that failed in this call (the CLI exits 3 when it is not 0)."""
    from unfreeze.io.paths import check_out_folder
    from unfreeze.study.preflight import check

    study_dir = check_out_folder(out_dir, "--out", "study")  # the CLI's check, for Python callers too

    check(study)  # every problem `unfreeze validate` lists, refused before the folder is touched
    with StudyLock(study_dir, command=command):
        recover_all(study_dir / "runs")  # finish run-folder swaps a killed process left half done
        if study.search is not None:  # an Optuna search instead of a grid
            from unfreeze.study.search import run_search

            return run_search(study, study_dir, progress, echo, study_text, command, executor, track)
        return _run_study_locked(study, study_dir, executor, progress, echo, study_text, command, track)


def _run_study_locked(study: StudyConfig, study_dir: Path, executor, progress, echo, study_text,
                      command, track) -> pd.DataFrame:
    jobs = expand(study)
    pool = DataPool(study.cv)
    from unfreeze.study.data_check import check_data_unchanged

    check_data_unchanged(study_dir, jobs, pool, echo, study.baseline)  # refused before anything is written
    write_study_meta(study_dir, study, jobs, study_text, command)
    if study.baseline:
        run_baseline(study_dir, jobs, pool, echo)
    from unfreeze.training.run_dir import is_finished

    todo = [j for j in jobs if not is_finished(study_dir / "runs" / j.run_id)]
    echo(f"study {study.name}: {len(jobs)} runs, {len(jobs) - len(todo)} already finished, {len(todo)} to run")
    metric = jobs[0].config.selection_metric
    reporter = ProgressReporter(len(jobs), len(jobs) - len(todo), metric, echo, show_run_progress=progress,
                                kinds={j.run_id: (j.arm, j.config.freeze.label) for j in todo})
    from unfreeze.study.tracking import StudyTracking

    tracking = StudyTracking(study, study_dir, jobs, track, study_text)
    reporter.listeners.append(tracking.on_outcome)
    from unfreeze.report.build import build_report
    from unfreeze.study.live import LiveReport

    live = LiveReport(study_dir, jobs, build_report=build_report)
    reporter.listeners.append(live)
    executor = executor or make_executor(study)
    try:
        if not study.racing:
            (study_dir / "racing.json").unlink(missing_ok=True)  # an earlier racing run's stops no longer hold
        outcomes = drive(make_planner(study, jobs, todo, study_dir, reporter, echo), executor, study_dir, pool,
                         cache_top_ks(jobs), reporter)
    except BaseException:
        tracking.close(pd.DataFrame(), status="KILLED")
        raise
    failed = [o for o in outcomes if not o.ok]
    record_failures(study_dir, failed)
    for outcome in failed:
        echo(f"FAILED {outcome.arm} ({outcome.run_id}): {outcome.error}")
    if failed:
        echo(f"{len(failed)} of {len(todo)} runs failed (listed in {study_dir / 'failures.json'}); "
             "fix the cause and run the study again to redo only those")
    if study.cv:
        from unfreeze.study.ensemble import write_cv_ensembles

        write_cv_ensembles(study_dir, jobs, pool)
    results = collect_results(study_dir, jobs)
    _, html = live.build_final(results, echo)  # `build_report`, announced with its time when slow
    tracking.log_finished()
    tracking.close(results, status="FAILED" if failed else "FINISHED")
    if live.built:
        echo(f"live report: rebuilt after {live.built} runs ({live.seconds:.1f}s in all), skipped after "
             f"{live.skipped} (throttled)")
    echo(f"report: {html}")
    results.attrs["failed_runs"] = len(failed)
    return results


def finished_runs(study_dir: str | Path) -> int:
    """How many runs of the study folder have finished (their `metrics.json` exists)."""
    return sum(1 for _ in (Path(study_dir) / "runs").glob("*/metrics.json"))
