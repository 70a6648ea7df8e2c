"""A search study: Optuna asks for configs from `search.space` (grid / random / TPE), each trial is one run of the
study's first seed (study/trials.py), then the best `top` trials are re-run with `search.seeds` (one planner,
`SearchPlanner`, on the study's executor), and results.csv and the report (with Optuna's views) are written.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from unfreeze.config.study import StudyConfig
from unfreeze.io import read_json, write_json
from unfreeze.study.bookkeeping import record_failures, run_baseline, write_study_meta
from unfreeze.study.execute import RunOutcome
from unfreeze.study.grid import PlannedRun
from unfreeze.study.planner import GridPlanner, SilentReport, drive, make_executor
from unfreeze.study.pool import DataPool
from unfreeze.study.preflight import check
from unfreeze.study.search_identity import check_resume, storage_errors
from unfreeze.study.search_space import (decode, grid_size, import_optuna, open_study_readonly,
                                         planned, space_top_ks, storage_url)


def trial_jobs(study: StudyConfig, study_dir: Path) -> list[PlannedRun]:
    """The runs behind the counted trials (one per distinct config), then the best `top` re-run with `seeds`."""
    optuna, opt = open_study_readonly(study, study_dir)
    states = optuna.trial.TrialState
    jobs: dict[str, PlannedRun] = {}
    for t in opt.get_trials(deepcopy=False, states=[states.COMPLETE, states.PRUNED]):
        job = planned(study, decode(study, t.params), study.seeds[0])
        jobs.setdefault(job.run_id, job)
    return list(jobs.values())


def best_reruns(study: StudyConfig, study_dir: Path) -> list[PlannedRun]:
    extra = [s for s in study.search.seeds if s != study.seeds[0]]
    if not extra:
        return []
    from unfreeze.report.search_views import rank_trials

    optuna, opt = open_study_readonly(study, study_dir)
    done = rank_trials(opt.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE]),
                       opt.direction == optuna.study.StudyDirection.MINIMIZE)
    jobs, seen = [], set()
    for t in done:
        overrides = decode(study, t.params)
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key in seen:
            continue
        seen.add(key)
        jobs += [planned(study, overrides, seed) for seed in extra]
        if len(seen) == study.search.top:
            break
    return jobs


def run_search(study: StudyConfig, study_dir: Path, progress: bool = True, echo=print, study_text=None,
               command=None, executor=None, track: list[str] | None = None) -> pd.DataFrame:
    """Run the search (resuming; the trials' runs on the study's executor: Ray with `executor: ray` or a Ray
    `executor`, else locally), the extra seeds
    of the best trials, then results.csv (with `status`) and the report with Optuna's views. Refused before
    anything is written: a stored search of another definition, or another folder's (study/search_identity.py).
    `track`: backends besides the file's `tracking:` (a parent run for the search, one child per finished run)."""
    check(study)
    check_resume(study, study_dir)
    with storage_errors(study, study_dir):
        return _run_search(study, study_dir, progress, echo, study_text, command, executor, track)


def _run_search(study: StudyConfig, study_dir: Path, progress: bool, echo, study_text, command, executor,
                track) -> pd.DataFrame:
    from unfreeze.study.results import collect_results
    from unfreeze.study.tracking import StudyTracking

    pool = DataPool(None)
    first = planned(study, {}, study.seeds[0])
    from unfreeze.study.data_check import check_search_data_unchanged

    check_search_data_unchanged(study_dir, first, pool, echo, study.baseline)  # refused before anything is written
    write_study_meta(study_dir, study, [first], study_text, command)
    tracking = StudyTracking(study, study_dir, [first], track, study_text)
    if study.baseline:
        run_baseline(study_dir, [first], pool, echo)
    try:
        failed = _trials_and_reruns(study, study_dir, pool, echo, progress, executor)
    except BaseException:
        tracking.close(pd.DataFrame(), status="KILLED")
        raise
    trial_failures = failed_trials(study, study_dir)
    record_failures(study_dir, trial_failures + failed)
    jobs = trial_jobs(study, study_dir) + best_reruns(study, study_dir)
    write_study_meta(study_dir, study, jobs or [first], study_text, command)
    meta = read_json(study_dir / "study.json")
    meta.update(grid_keys=list(study.search.space), search={
        **study.search.model_dump(mode="json", exclude={"storage"}), "storage": storage_url(study, study_dir),
        "study_name": study.name})
    write_json(study_dir / "study.json", meta)
    results = collect_results(study_dir, jobs)
    from unfreeze.report.build import build_report

    _, html = build_report(study_dir, results)
    tracking.add_jobs(jobs)
    tracking.log_finished()
    tracking.close(results, status="FAILED" if trial_failures or failed else "FINISHED")
    echo(f"report: {html}")
    results.attrs["failed_runs"] = len(trial_failures) + len(failed)  # the CLI exits 3, as for a grid study
    return results


class SearchPlanner:
    """A search as one planner (study/planner.py): the trials (`trials.TrialPlanner`), then the best `top` trials
    re-run with `search.seeds`. The re-runs that failed are kept for failures.json (failed trials are read from the
    storage: `failed_trials`)."""

    def __init__(self, study: StudyConfig, study_dir: Path, echo):
        from unfreeze.study.trials import TrialPlanner

        self.study, self.study_dir, self.echo = study, study_dir, echo
        self.trials, self.reruns = TrialPlanner(study, study_dir, echo), None
        self.failed: list[RunOutcome] = []

    def describe(self) -> str:
        search = self.study.search
        if not search.seeds:
            return f"{self.trials.describe()}; no re-runs (search.seeds is empty)"
        return f"{self.trials.describe()}, then the best {search.top} re-run with seeds {search.seeds}"

    def next_runs(self, finished: list[RunOutcome], room: int) -> list[PlannedRun]:
        if self.reruns is None:
            batch = self.trials.next_runs(finished, room)
            if batch:
                return batch
            self.reruns = GridPlanner(best_reruns(self.study, self.study_dir), "re-runs")
            if self.reruns.jobs:
                self.echo(f"re-running the best {self.study.search.top} trial(s) with seeds {self.study.search.seeds}")
            return self.reruns.next_runs([], room)
        for outcome in finished:
            if not outcome.ok:
                self.failed.append(outcome)
                self.echo(f"FAILED {outcome.arm} ({outcome.run_id}): {outcome.error}")
        return self.reruns.next_runs(finished, room)


def _trials_and_reruns(study: StudyConfig, study_dir: Path, pool: DataPool, echo, progress: bool,
                       executor) -> list[RunOutcome]:
    """The trials then the best trials' extra seeds, on the study's executor (local, or Ray with `executor: ray`
    or a Ray `executor`); the re-runs that failed."""
    planner = SearchPlanner(study, study_dir, echo)
    drive(planner, executor or make_executor(study), study_dir, pool, space_top_ks(study), SilentReport(progress))
    return planner.failed


def failed_trials(study: StudyConfig, study_dir: Path) -> list[RunOutcome]:
    """The trials that failed for a reason of their own, as failed runs (failures.json, the report's Failures)."""
    optuna, opt = open_study_readonly(study, study_dir)
    return [RunOutcome(t.user_attrs.get("run_id", f"trial-{t.number}"),
                       t.user_attrs.get("arm") or json.dumps(t.params, sort_keys=True), ok=False,
                       error=t.user_attrs["error"])
            for t in opt.get_trials(deepcopy=False, states=[optuna.trial.TrialState.FAIL]) if "error" in t.user_attrs]


def plan_search(study: StudyConfig, out: Path, console) -> None:
    """`unfreeze study FILE --dry-run` for a search: the space, the budget, and what is done already."""
    check(study)
    check_resume(study, Path(out))
    s = study.search
    total = min(s.trials, grid_size(s)) if s.sampler == "grid" else s.trials
    console.print(f"search {study.name}: {s.sampler} sampler, {total} trials of seed {study.seeds[0]}, pruner "
                  f"{s.pruner}, storage {storage_url(study, Path(out))}", highlight=False, soft_wrap=True)
    for key, spec in s.space.items():
        shown = spec if isinstance(spec, list) else (f"[{spec['low']}, {spec['high']}]"
                                                     + (" (log)" if spec.get("log") else ""))
        console.print(f"  {key}: {shown}", highlight=False, soft_wrap=True)
    if s.sampler == "grid" and s.order == "costly_first":
        from unfreeze.study.search_order import costly_first

        console.print("order (costliest first; estimated minutes of each run, before pruning):", highlight=False)
        for values, seconds in costly_first(study, with_seconds=True)[:total]:
            shown = "?" if seconds == float("-inf") else f"{seconds / 60:.1f}"
            console.print(f"  {shown:>6}  {values}", highlight=False, soft_wrap=True)
    if s.seeds:
        console.print(f"then the best {s.top} trial(s) re-run with seeds {s.seeds}", highlight=False)
    db = Path(out) / "optuna.db"
    if s.storage is None and db.exists():
        optuna = import_optuna()
        try:
            with storage_errors(study, Path(out)):
                opt = optuna.load_study(study_name=study.name, storage=storage_url(study, Path(out)))
            console.print(f"{len(opt.trials)} trials in {db} already", highlight=False)
        except KeyError:
            pass
