"""The trial loop of a search: ask Optuna for values, run them as one run of the study's first seed (a pruner may
stop it after any evaluation), tell the result. Locally one process asks at a time; with `executor: ray` several
Ray tasks run this same loop against the study's storage (`run_trials_on_ray`).

Resumable: a trial's run folder is named by the config hash as in a grid study, so a config whose `metrics.json`
exists is never retrained (its value is told again), and the storage keeps every trial's state. Trials left
RUNNING by a killed process are failed and their values asked again first: at once with the default SQLite file
and one process, and otherwise (a shared database, Ray workers) once their heartbeat has gone stale.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time
from pathlib import Path

from unfreeze.config.schema import RunConfig
from unfreeze.config.study import StudyConfig
from unfreeze.errors import LockedError, Pruned, UnfreezeError
from unfreeze.io import read_json, write_json
from unfreeze.io.lock import StudyLock
from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.study.pool import DataPool
from unfreeze.study.search_identity import record
from unfreeze.study.search_order import costly_first, enqueue_next, grid_points
from unfreeze.study.search_space import (grid_size, import_optuna, is_final, is_shared, make_pruner,
                                         make_sampler, planned, space_top_ks, storage_url, suggest)

log = logging.getLogger(__name__)

HEARTBEAT_S = 60  # shared storage: a trial whose process stopped beating for 2 intervals is stale
POLL_S = 5.0  # parallel: how often a worker with nothing to ask looks again while others run trials


def open_study(study: StudyConfig, study_dir: Path, metric: str, parallel: bool = False, worker: int = 0):
    """The Optuna study in its storage, created if new. Alone on it (a SQLite file and `parallel` False: the
    study folder's lock keeps other drivers out), whatever is still RUNNING was killed: failed and re-asked first.
    With others (a database URL, or Ray trial workers): trials beat a heartbeat while they run, and those whose
    heartbeat went stale are failed and re-asked (`retry_stale`, `reap_stale`). `worker`
    offsets a random / TPE sampler's seed so that workers opening together do not suggest the same values."""
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
    `run_trials` for when that is too many)."""
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


def run_trials(study: StudyConfig, study_dir: Path, pool: DataPool, echo, progress: bool,
               parallel: bool = False, worker: int = 0) -> None:
    """Ask, run and tell trials until `search.trials` count. `parallel`: other processes (Ray trial workers) run
    this search at the same time on the same study folder; they claim the next grid point one at a time (a lock
    in the study folder), never start more trials than are left, and wait for running ones (a dead worker's trial
    is re-asked once its heartbeat is stale) before they stop."""
    metric = RunConfig.model_validate({**study.base, "seed": study.seeds[0]}).selection_metric
    optuna, opt = open_study(study, study_dir, metric, parallel, worker)
    shared = parallel or is_shared(study)
    total = min(study.search.trials, grid_size(study.search)) if study.search.sampler == "grid" \
        else study.search.trials
    echo(f"search {study.name}: {counted(optuna, opt)} of {total} trials done "
         f"({study.search.sampler}, pruner {study.search.pruner}, storage {storage_url(study, study_dir)})")
    top_ks = space_top_ks(study)
    ordered = None  # a database URL: Optuna's GridSampler hands out the points (processes on other machines ask)
    if study.search.sampler == "grid" and not is_shared(study) and counted(optuna, opt) < total:
        ordered = costly_first(study) if study.search.order == "costly_first" else grid_points(study)
    while True:
        with hold(study_dir / "locks" / "ask") if parallel else contextlib.nullcontext():
            if shared:  # under the lock: two workers never re-queue the same dead trial
                reap_stale(optuna, opt)
            done, running = tally(optuna, opt)
            if done >= total:
                break
            left = done + running < total and (ordered is None or enqueue_next(optuna, opt, ordered))
            trial = opt.ask() if left else None
            if trial is not None and shared:  # beat at once: a worker killed before its thread starts is seen
                opt._storage.record_heartbeat(trial._trial_id)
        if trial is None:
            if shared and running:
                time.sleep(POLL_S)  # others are still running trials; one may die and be re-asked
                continue
            break
        with heartbeat(opt, trial):
            ask_and_run(optuna, opt, trial, study, study_dir, pool, top_ks, metric, echo, progress, parallel)


def ask_and_run(optuna, opt, trial, study: StudyConfig, study_dir: Path, pool: DataPool, top_ks, metric: str, echo,
                progress: bool, parallel: bool) -> None:
    """One asked trial: its values, its bookkeeping, then its run (or its failure, counted)."""
    try:
        job = planned(study, suggest(trial, study.search.space), study.seeds[0])
    except UnfreezeError as exc:  # values that are not a valid run together: the trial fails, counted
        fail(optuna, opt, trial, exc)
        echo(f"[trial {trial.number}] {trial.params} FAILED: {exc}")
        return
    trial.set_user_attr("run_id", job.run_id)
    trial.set_user_attr("arm", job.arm)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    deaths = len(opt._storage.get_trial_system_attrs(trial._trial_id).get("retry_history", []))
    if deaths > study.ray.max_retries:  # ran 1 + max_retries times, and its process died every time
        error = UnfreezeError(f"its worker died {deaths} times (the first run and ray.max_retries "
                              f"{study.ray.max_retries} retries), e.g. killed for memory")
        fail(optuna, opt, trial, error)
        echo(f"[trial {trial.number}] {job.arm} FAILED: {error}")
        return
    with run_lock(study_dir, job.run_id, parallel):
        run_trial(optuna, opt, trial, job, study_dir, pool, top_ks, metric, echo, progress)


def heartbeat(opt, trial):
    """Optuna's own heartbeat thread for a trial run outside `study.optimize` (ask/tell does not start one), so a
    process that dies mid-trial leaves a trial that `fail_stale_trials` can see as dead."""
    from optuna.storages._heartbeat import get_heartbeat_thread, is_heartbeat_enabled

    return get_heartbeat_thread(trial._trial_id, opt._storage) if is_heartbeat_enabled(opt._storage) \
        else contextlib.nullcontext()


@contextlib.contextmanager
def hold(folder: Path):
    """Wait for, then hold, the lock of `folder` (an flock: released by the kernel if the holder dies)."""
    lock = StudyLock(folder)
    while True:
        try:
            lock.acquire()
            break
        except LockedError:
            time.sleep(0.2)
    try:
        yield
    finally:
        lock.release()


def run_lock(study_dir: Path, run_id: str, parallel: bool):
    """Two workers asked the same configuration (TPE repeats categorical choices; a grid point re-asked): the
    second waits for the first to finish its run folder, then tells that run's outcome instead of training it."""
    return hold(study_dir / "locks" / run_id) if parallel else contextlib.nullcontext()


def fail(optuna, opt, trial, exc: BaseException) -> None:
    """The trial failed for a reason of its own: recorded with it, counted, not asked again."""
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        trial.set_user_attr("error", f"{type(exc).__name__}: {str(exc).strip()[:300]}")
    opt.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)


def run_trial(optuna, opt, trial, job, study_dir: Path, pool: DataPool, top_ks, metric: str, echo,
              progress: bool) -> None:
    from unfreeze.training import run as training
    from unfreeze.training.callbacks import RunCallbacks
    from unfreeze.training.run_dir import is_finished

    run_dir = study_dir / "runs" / job.run_id
    started = time.perf_counter()
    if is_finished(run_dir):
        value = read_json(run_dir / "metrics.json")["val"][metric]
        tell(optuna, opt, trial, value)
        echo(f"[trial {trial.number}] {job.arm} ({job.run_id}) already finished: val {metric} {value:.4f}")
        return
    if (run_dir / "pruned.json").exists():  # pruned once: asked again, it is not retrained
        opt.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
        echo(f"[trial {trial.number}] {job.arm} ({job.run_id}) was pruned before")
        return

    def on_eval(row: dict) -> bool:
        value = row.get(f"val_{metric}")
        if value is None:
            return False
        try:
            trial.report(value, row["step"])
            return trial.should_prune()
        except optuna.exceptions.UpdateFinishedTrialError:  # failed as stale by another worker: finish the run
            return False
        except optuna.exceptions.StorageInternalError:  # the storage broke (deleted?): finish and keep the run;
            return False  # telling its result then stops the search in one line (search_identity.storage_errors)

    try:
        callbacks = RunCallbacks(cache_root=study_dir / "cache", cache_top_ks=top_ks.get(job.config.model.name),
                                 run_info={**job.info, "trial": trial.number}, on_eval=on_eval)
        metrics = training.train(job.config, run_dir, overwrite=True, progress=progress,
                                 data=pool.get(job.config, job.fold), callbacks=callbacks)
    except Pruned as stop:
        write_json(run_dir / "pruned.json", {"info": {**job.info, "trial": trial.number}, "epoch": stop.epoch,
                                             "step": stop.step, "metric": metric, "history": stop.history,
                                             "run_seconds": round(time.perf_counter() - started, 3)})
        opt.tell(trial, state=optuna.trial.TrialState.PRUNED, skip_if_finished=True)
        echo(f"[trial {trial.number}] {job.arm} ({job.run_id}) pruned at epoch {stop.epoch:g}")
        return
    except Exception as exc:  # noqa: BLE001 — one bad trial is recorded (as in a grid); Ctrl-C still stops
        if not isinstance(exc, UnfreezeError):
            log.exception("trial %d (%s) failed", trial.number, job.arm)
        fail(optuna, opt, trial, exc)
        echo(f"[trial {trial.number}] {job.arm} ({job.run_id}) FAILED: {exc}")
        return
    tell(optuna, opt, trial, metrics["val"][metric])
    echo(f"[trial {trial.number}] {job.arm} ({job.run_id}) val {metric} {metrics['val'][metric]:.4f} in "
         f"{time.perf_counter() - started:.0f}s")


def tell(optuna, opt, trial, value) -> None:
    """A finished trial's value; one that is not a finite number fails the trial with its reason (counted, so
    not asked again)."""
    if value is None or not math.isfinite(value):
        fail(optuna, opt, trial, ValueError(f"validation metric is {value}: nothing to compare"))
    else:
        opt.tell(trial, value, skip_if_finished=True)


def run_trials_on_ray(study: StudyConfig, study_dir: Path, echo, executor=None) -> None:
    """`executor: ray`: as many trial workers as the cluster fits (`ray:` resources per worker, at most the trials
    to run), each a Ray task running `run_trials` in parallel mode on the study folder (a path every node sees, as
    for a grid study on Ray). The default SQLite storage is for one machine; several nodes need `search.storage`
    set to a database URL. The activation cache is filled once per data by a cache task before the workers start.
    A worker that dies is restarted by Ray; its trial is failed and re-asked once its heartbeat is stale, and
    failed for good (counted) once the same values have killed 1 + `ray.max_retries` workers. The first error a worker raises
    stops the search (the other workers are cancelled)."""
    from unfreeze.study.ray_executor import RayExecutor, cache_group, fill_cache_on_worker, import_ray
    from unfreeze.study.execute import cache_top_ks
    from unfreeze.study.search_space import space_jobs

    ray = import_ray()
    metric = RunConfig.model_validate({**study.base, "seed": study.seeds[0]}).selection_metric
    optuna, opt = open_study(study, study_dir, metric)  # created, a killed driver's trials failed, before any worker
    total = min(study.search.trials, grid_size(study.search)) if study.search.sampler == "grid" \
        else study.search.trials
    executor = executor or RayExecutor(study.ray)
    study_dir = Path(study_dir).resolve()
    started_here = executor.connect()
    refs: list = []
    try:
        jobs = space_jobs(study)
        top_ks = cache_top_ks(jobs)
        groups = {cache_group(job): job for job in jobs if cache_group(job) is not None}
        fill = executor.remote_function(fill_cache_on_worker)
        ray.get([fill.remote(job, str(study_dir), None, top_ks, executor.cfg.num_cpus) for job in groups.values()])
        workers = max(1, min(executor.capacity(), total - counted(optuna, opt)))
        echo(f"search {study.name}: {workers} Ray trial workers, storage {storage_url(study, study_dir)}")
        # Ray's retries of a worker task are not the limit (a worker may die on several trials): each trial's
        # own `retry_history` is, so the task may be retried once per trial allowed to die max_retries + 1 times
        task = executor.remote_function(trial_worker, max_retries=(executor.cfg.max_retries + 1) * total)
        refs = [task.remote(study.model_dump(mode="json"), str(study_dir), executor.cfg.num_cpus, i)
                for i in range(workers)]
        ray.get(refs)
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started_here:
            ray.shutdown()


def trial_worker(study_data: dict, study_dir: str, num_cpus: float, worker: int) -> None:
    """The body of one Ray trial worker: the local trial loop, in parallel mode, with the task's CPUs as torch
    threads (unless `train.threads` says otherwise)."""
    import torch

    if not (Path(study_dir) / "study.json").exists():
        raise UnfreezeError(f"Ray worker on {socket.gethostname()}: the study folder {study_dir} is not visible "
                            "here; put it on a path every node sees (a shared volume)")
    study = StudyConfig.model_validate(study_data)
    if not study.base.get("train", {}).get("threads"):
        torch.set_num_threads(max(1, int(num_cpus)))
    def echo(line: str) -> None:  # a worker's stdout reaches the driver's console through Ray
        print(f"[worker {worker}] {line}", flush=True)

    run_trials(study, Path(study_dir), DataPool(None), echo, progress=False, parallel=True, worker=worker)
