"""The trials of a search as a planner (study/planner.py): ask Optuna for values, plan each as one run of the
study's first seed (`trial_run.TrialRun`: its pruner may stop it after any evaluation), tell each result. Only this
driver asks and tells; the runs go to the study's executor like any others (one after another locally, as many at
once as the cluster fits on Ray), so a search runs on the same executors as a grid.

Resumable: a trial's run folder is named by the config hash as in a grid study, so a config whose `metrics.json`
exists is never retrained (its value is told again), and the storage keeps every trial's state. Trials left
RUNNING by a killed process are failed and their values asked again first: at once with the default SQLite file
and one process, and otherwise (a database URL other drivers share) once their heartbeat has gone stale.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import socket
import time
from pathlib import Path

from unfreeze.config.schema import RunConfig
from unfreeze.config.study import StudyConfig
from unfreeze.errors import UnfreezeError
from unfreeze.io import read_json
from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.study.execute import RunOutcome
from unfreeze.study.pool import DataPool
from unfreeze.study.search_identity import record
from unfreeze.study.search_order import costly_first, enqueue_next, grid_points
from unfreeze.study.search_space import (grid_size, import_optuna, is_final, is_shared, make_pruner,
                                         make_sampler, planned, storage_url, suggest)
from unfreeze.study.trial_run import TrialRef, TrialRun

log = logging.getLogger(__name__)

HEARTBEAT_S = 60  # shared storage: a trial whose process stopped beating for 2 intervals is stale
POLL_S = 5.0  # shared storage: how often a driver with nothing to ask looks again while others run trials


def open_study(study: StudyConfig, study_dir: Path, metric: str, parallel: bool = False, worker: int = 0):
    """The Optuna study in its storage, created if new. Alone on it (a SQLite file and `parallel` False: the
    study folder's lock keeps other drivers out), whatever is still RUNNING was killed: failed and re-asked first.
    With others (a database URL other drivers share, `parallel`): trials beat a heartbeat while they run, and
    those whose heartbeat went stale are failed and re-asked (`retry_stale`, `reap_stale`). `worker` offsets a
    random / TPE sampler's seed so that drivers opening together do not suggest the same values."""
    optuna = import_optuna()
    shared = parallel or is_shared(study)
    storage = optuna.storages.RDBStorage(
        storage_url(study, study_dir), heartbeat_interval=HEARTBEAT_S if shared else None,
        heartbeat_stale_trial_callback=retry_stale if shared else None)
    opt = optuna.create_study(study_name=study.name, storage=storage, load_if_exists=True,
                              pruner=make_pruner(optuna, study.search),
                              direction="minimize" if metric in LOWER_IS_BETTER else "maximize")
    record(opt, study, study_dir)
    opt.sampler = make_sampler(optuna, study.search, len(opt.trials), worker)
    if shared:
        reap_stale(optuna, opt)
        return optuna, opt
    for trial in opt.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
        storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        params = trial.system_attrs.get("fixed_params") or trial.params
        if params:  # {}: killed between ask and its first suggestion, nothing to re-ask
            opt.enqueue_trial(params)  # re-asked first; a finished run folder is reused
    return optuna, opt


def retry_stale(study, trial) -> None:
    """Optuna calls this for a trial it failed because its heartbeat went stale (its process died): the same
    values are queued again, with the numbers of the trials that died on them (`retry_history`; see
    `TrialPlanner.plan` for when that is too many)."""
    import optuna

    system_attrs = {**trial.system_attrs, "retry_history": [*trial.system_attrs.get("retry_history", []),
                                                            trial.number]}
    user_attrs = {k: v for k, v in trial.user_attrs.items() if k != "error"}
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING, params=trial.params,
                                              distributions=trial.distributions, user_attrs=user_attrs,
                                              system_attrs=system_attrs))


def reap_stale(optuna, opt) -> None:
    """Fail the trials whose heartbeat went stale (their process died); the storage's callback re-queues each."""
    optuna.storages.fail_stale_trials(opt)


def tally(optuna, opt) -> tuple[int, int]:
    """(trials that count towards `search.trials`, trials running now). Counted: complete, pruned, or failed for
    a reason of their own; a killed process's trial is not counted: it is re-asked."""
    states = optuna.trial.TrialState
    trials = opt.get_trials(deepcopy=False)
    return (sum(1 for t in trials if is_final(optuna, t)), sum(1 for t in trials if t.state == states.RUNNING))


def counted(optuna, opt) -> int:
    return tally(optuna, opt)[0]


class TrialPlanner:
    """Ask, plan and tell trials until `search.trials` count (a planner: study/planner.py). Each batch holds up to
    `room` trials of distinct configs (a config asked twice, as TPE may, waits for the next batch and is then told
    its run's result instead of being trained again). `parallel`: other drivers may use the storage at the same
    time (a database URL): trials beat a heartbeat while they run, and with nothing left to ask while others'
    trials run, this driver waits for them (a dead one's trial is re-asked once its heartbeat is stale)."""

    def __init__(self, study: StudyConfig, study_dir: Path, echo, parallel: bool = False, worker: int = 0):
        self.study, self.study_dir, self.echo = study, study_dir, echo
        self.metric = RunConfig.model_validate({**study.base, "seed": study.seeds[0]}).selection_metric
        self.optuna, self.opt = open_study(study, study_dir, self.metric, parallel, worker)
        self.shared = parallel or is_shared(study)
        search = study.search
        self.total = min(search.trials, grid_size(search)) if search.sampler == "grid" else search.trials
        done = counted(self.optuna, self.opt)
        echo(f"search {study.name}: {done} of {self.total} trials done "
             f"({search.sampler}, pruner {search.pruner}, storage {storage_url(study, study_dir)})")
        self.ordered = None  # a database URL: Optuna's GridSampler hands out the points (other drivers ask too)
        if search.sampler == "grid" and not is_shared(study) and done < self.total:
            self.ordered = costly_first(study) if search.order == "costly_first" else grid_points(study)
        self.running: dict[str, TrialRun] = {}  # run id -> its trial, in the batch being run
        self.deferred: list[TrialRun] = []  # asked while another trial of the same config was in the batch
        self.beats: dict[int, contextlib.ExitStack] = {}  # trial number -> its heartbeat, from ask to tell

    def describe(self) -> str:
        return f"{self.total} trials ({self.study.search.sampler} sampler, pruner {self.study.search.pruner})"

    def next_runs(self, finished: list[RunOutcome], room: int) -> list[TrialRun]:
        for outcome in finished:
            self.told(outcome)
        while True:
            batch, busy, pending, self.deferred = [], set(), self.deferred, []
            for job in pending:  # one trial per config in a batch: two runs must never share a run folder
                (self.deferred if job.run_id in busy else batch).append(job)
                busy.add(job.run_id)
            while len(batch) < room:
                job = self.ask()
                if job is None:
                    break
                if job.run_id in busy:
                    self.deferred.append(job)
                    continue
                busy.add(job.run_id)
                batch.append(job)
            self.running.update({job.run_id: job for job in batch})
            if batch or not self.shared or not tally(self.optuna, self.opt)[1]:
                return batch
            time.sleep(POLL_S)  # others are still running trials; one may die and be re-asked

    def ask(self) -> TrialRun | None:
        """The next trial to run, planned (values that are not a valid run together fail as their own trial,
        counted); None once `search.trials` are counted or running."""
        optuna, opt = self.optuna, self.opt
        while True:
            if self.shared:
                reap_stale(optuna, opt)
            done, running = tally(optuna, opt)
            if done >= self.total or done + running >= self.total:
                return None
            if self.ordered is not None and not enqueue_next(optuna, opt, self.ordered):
                return None
            trial = opt.ask()
            if self.shared:  # beat at once: a driver killed before its thread starts is seen
                opt._storage.record_heartbeat(trial._trial_id)
            job = self.plan(trial)
            if job is not None:
                return job

    def plan(self, trial) -> TrialRun | None:
        """One asked trial's run and bookkeeping; None when it failed at once (counted)."""
        study = self.study
        try:
            job = planned(study, suggest(trial, study.search.space), study.seeds[0])
        except UnfreezeError as exc:  # values that are not a valid run together: the trial fails, counted
            fail(self.optuna, self.opt, trial, f"{type(exc).__name__}: {exc}")
            self.echo(f"[trial {trial.number}] {trial.params} FAILED: {exc}")
            return None
        trial.set_user_attr("run_id", job.run_id)
        trial.set_user_attr("arm", job.arm)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        deaths = len(self.opt._storage.get_trial_system_attrs(trial._trial_id).get("retry_history", []))
        if deaths > study.ray.max_retries:  # ran 1 + max_retries times, and its process died every time
            error = (f"UnfreezeError: its worker died {deaths} times (the first run and ray.max_retries "
                     f"{study.ray.max_retries} retries), e.g. killed for memory")
            fail(self.optuna, self.opt, trial, error)
            self.echo(f"[trial {trial.number}] {job.arm} FAILED: {error}")
            return None
        self.beats[trial.number] = beat = contextlib.ExitStack()
        beat.enter_context(heartbeat(self.opt, trial))
        ref = TrialRef(storage_url(study, self.study_dir), study.name, trial._trial_id, trial.number, self.metric,
                       self.opt.pruner, local=trial)
        return TrialRun(**{f.name: getattr(job, f.name) for f in dataclasses.fields(job)}, trial=ref)

    def told(self, outcome: RunOutcome) -> None:
        """Tell Optuna how a trial's run ended: its value, pruned, or failed (with its error)."""
        job = self.running.pop(outcome.run_id)
        self.beats.pop(job.trial.number).close()
        optuna, opt, trial = self.optuna, self.opt, job.trial.local
        where = f"[trial {trial.number}] {job.arm} ({job.run_id})"
        if outcome.pruned:
            opt.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
            if outcome.skipped:
                self.echo(f"{where} was pruned before")
            else:
                epoch = read_json(self.study_dir / "runs" / job.run_id / "pruned.json")["epoch"]
                self.echo(f"{where} pruned at epoch {epoch:g}")
        elif not outcome.ok:
            fail(optuna, opt, trial, outcome.error)
            self.echo(f"{where} FAILED: {outcome.error}")
        else:
            value = outcome.metrics["val"][self.metric]
            tell(optuna, opt, trial, value)
            how = "already finished: " if outcome.skipped else ""
            took = "" if outcome.skipped else f" in {outcome.seconds:.0f}s"
            shown = f"{value:.4f}" if isinstance(value, (int, float)) else value
            self.echo(f"{where} {how}val {self.metric} {shown}{took}")


def fail(optuna, opt, trial, error: str) -> None:
    """The trial failed for a reason of its own: recorded with it, counted, not asked again."""
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        trial.set_user_attr("error", str(error).strip()[:300])
    opt.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def heartbeat(opt, trial):
    """Optuna's own heartbeat thread for a trial run outside `study.optimize` (ask/tell does not start one), so a
    process that dies mid-trial leaves a trial that `fail_stale_trials` can see as dead."""
    from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled

    return get_heartbeat_thread(trial._trial_id, opt._storage) if is_heartbeat_enabled(opt._storage) \
        else contextlib.nullcontext()


def tell(optuna, opt, trial, value) -> None:
    """A finished trial's value; one that is not a finite number fails the trial with its reason (counted, so
    not asked again)."""
    if value is None or not math.isfinite(value):
        fail(optuna, opt, trial, f"ValueError: validation metric is {value}: nothing to compare")
    else:
        opt.tell(trial, value, skip_if_finished=True)


def run_trials(study: StudyConfig, study_dir: Path, pool: DataPool, echo, progress: bool, parallel: bool = False,
               executor=None) -> list[RunOutcome]:
    """The trials alone (no re-runs), on `executor` (local if None): `TrialPlanner` driven by `planner.drive`."""
    from unfreeze.study.execute import LocalExecutor
    from unfreeze.study.planner import SilentReport, drive
    from unfreeze.study.search_space import space_top_ks

    return drive(TrialPlanner(study, study_dir, echo, parallel), executor or LocalExecutor(), study_dir, pool,
                 space_top_ks(study), SilentReport(progress))
