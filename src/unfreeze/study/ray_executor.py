"""Run the runs of a study as Ray tasks (`executor: ray`, `pip install 'unfreeze[ray]'`): the one Ray path, for
every planner (study/planner.py): a grid's runs, racing's seeds, a search's trials and re-runs. The driver plans
(a search's trials are asked and told there); Ray runs the batch.

How it fits together, and why:
- **One task per run** (a search trial's run too: it reports its evaluations to the pruner through the study's
  storage, which workers open by its URL, so the default SQLite file must be on the shared path), declaring `num_cpus` / `num_gpus` / `memory` from the study's `ray:` section, so Ray packs
  as many runs in parallel as the cluster holds. The driver keeps at most that many tasks in flight (recomputed
  from the cluster's resources as it grows or shrinks), so "running" in the progress line is true and Ctrl-C
  does not leave a long queue behind.
- **Workers write straight into the study folder** (run folders, `metrics.json` last and atomically, exactly as
  the local executor does): the study folder, the data files and the model folder must be on a path every node
  sees — trivially true on one machine, an NFS/shared volume on a cluster. The driver checks that each finished
  run's `metrics.json` is visible to it and records a clear failure otherwise, so a non-shared path is caught at
  the first run rather than discovered in an empty report.
- **The frozen-prefix cache is built once**: for runs that would read the same cache (same backbone, data, fold
  and cache dtype) a *cache task* fills every boundary the study needs in one forward pass into `<study>/cache`;
  the runs of that group start when it is done and all read the cache in parallel (each run's
  `metrics.json` says how many examples it computed itself: 0). Runs with different data, or without a cache,
  go in parallel from the start.
- **Faults**: a worker process that dies mid-run (OOM killer, node lost) is retried by Ray up to
  `ray.max_retries` times; the retry finds no `metrics.json`, wipes the half-written folder and redoes the run.
  A run that fails deterministically (an `UnfreezeError` or any exception) is not retried: it comes back as a
  failed outcome with its error, lands in `failures.json`, and the study goes on. Finished runs are never redone
  (resume is the same code path as locally).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import socket
import time
from pathlib import Path

from unfreeze.strategies import get_strategy
from unfreeze.errors import UnfreezeError
from unfreeze.study.pool import DataPool
from unfreeze.study.grid import PlannedRun
from unfreeze.study.execute import RunOutcome, execute_run

log = logging.getLogger(__name__)

_POOLS: dict[str, DataPool] = {}  # per worker process: Ray reuses workers, so data is loaded once per worker


def worker_pool(job: PlannedRun, cv, num_cpus: float) -> DataPool:
    """Set this worker's torch threads to the task's CPUs (unless the config says otherwise) and return its data
    pool for `cv`."""
    import torch

    if not job.config.train.threads:
        torch.set_num_threads(max(1, int(num_cpus)))
    key = json.dumps(cv.model_dump() if cv is not None else None)
    return _POOLS.setdefault(key, DataPool(cv))


def run_on_worker(job: PlannedRun, study_dir: str, cv, top_ks: dict, num_cpus: float) -> tuple[RunOutcome, str]:
    """The body of one Ray task: the same `execute_run` the local executor calls, on this worker's data pool."""
    outcome = execute_run(job, Path(study_dir), worker_pool(job, cv, num_cpus), top_ks, progress=False)
    return outcome, socket.gethostname()


def fill_cache_on_worker(job: PlannedRun, study_dir: str, cv, top_ks: dict, num_cpus: float) -> int:
    """The body of a cache task: load the job's data (fold) and model, compute the frozen prefix of every example
    for every boundary the study needs, exactly as the first run of the group would. Returns examples computed."""
    from unfreeze.training.accelerator import make_accelerator
    from unfreeze.training.cache_part import fill_cache
    from unfreeze.training.callbacks import RunCallbacks
    from unfreeze.training.prepare import prepare_parts

    pool = worker_pool(job, cv, num_cpus)
    run_data, run_model = prepare_parts(job.config, pool.get(job.config, job.fold))
    plan = RunCallbacks(cache_root=Path(study_dir) / "cache", cache_top_ks=top_ks.get(job.config.model.name))
    return fill_cache(job.config, run_data, run_model, make_accelerator(job.config), plan, False).computed


def cache_group(job: PlannedRun) -> str | None:
    """Runs with the same group read the same frozen-prefix cache; None = this run does not use the cache."""
    config = job.config
    if config.train.cache == "off" or get_strategy(config.freeze.strategy).cached_top(config.freeze) is None:
        return None
    return json.dumps([config.model.name, DataPool(None).key(config), job.fold, config.train.cache_dtype])


class CacheGate:
    """Per cache group: the first job asks for a cache task ("build"); the group's runs wait until it is done."""

    def __init__(self):
        self.building: set[str] = set()
        self.built: set[str] = set()

    def action(self, job: PlannedRun) -> str:
        """"run" (no cache, or it is built), "build" (start the group's cache task now) or "wait"."""
        group = cache_group(job)
        if group is None or group in self.built:
            return "run"
        if group in self.building:
            return "wait"
        self.building.add(group)
        return "build"

    def cache_done(self, job: PlannedRun) -> None:
        """The group's cache task ended. Even if it failed, the runs go: each computes what it misses itself."""
        group = cache_group(job)
        self.building.discard(group)
        self.built.add(group)


class RayExecutor:
    """Runs a study's runs as Ray tasks; see the module docstring for data, store, cache and faults."""

    name = "ray"

    def __init__(self, cfg):
        self.cfg = cfg

    # -- cluster -------------------------------------------------------------------------------------------
    def connect(self) -> bool:
        """Join the cluster at `address` (or the one this process already joined), else start a local one.
        Returns whether we started Ray here, so we shut down only what we started."""
        ray = import_ray()
        if ray.is_initialized():
            return False
        env = {"env_vars": {"TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}}
        try:
            if self.cfg.address:
                ray.init(address=self.cfg.address, runtime_env=env, log_to_driver=True)
            else:
                ray.init(num_cpus=self.cfg.init_num_cpus, include_dashboard=False, runtime_env=env)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = self.cfg.address or "a new local instance"
            raise UnfreezeError(f"Ray: could not connect to {where}: {exc} (start a cluster with "
                                f"`ray start --head`, then pass --address auto)") from None
        return True

    @contextlib.contextmanager
    def session(self):
        """One connection for every batch a planner hands `run` (a search's trials and re-runs, racing's seeds);
        Ray is shut down after it only if it was started here."""
        started_here = self.connect()
        try:
            yield self
        finally:
            if started_here:
                import_ray().shutdown()

    def slots(self) -> int:
        """How many runs a batch can run at once (what a search asks trials for)."""
        return self.capacity()

    def capacity(self) -> int:
        """How many of our tasks fit on the cluster right now (at least 1)."""
        import ray

        total = ray.cluster_resources()
        fits = [total.get("CPU", 0) / self.cfg.num_cpus]
        if self.cfg.num_gpus:
            fits.append(total.get("GPU", 0) / self.cfg.num_gpus)
        if self.cfg.memory_mb:
            fits.append(total.get("memory", 0) / (self.cfg.memory_mb * 2**20))
        return max(1, math.floor(min(fits)))

    def remote_function(self, body=None, max_retries: int | None = None):
        import ray

        options = {"num_cpus": self.cfg.num_cpus, "num_gpus": self.cfg.num_gpus,
                   "max_retries": self.cfg.max_retries if max_retries is None else max_retries,
                   "retry_exceptions": False}
        if self.cfg.memory_mb:
            options["memory"] = self.cfg.memory_mb * 2**20
        return ray.remote(body or run_on_worker).options(**options)

    def cache_finished(self, ref, job: PlannedRun, seconds: float) -> None:
        import ray

        try:
            computed = ray.get(ref)
            log.info("activation cache for %s filled in %.0fs (%d examples)", job.arm, seconds, computed)
        except ray.exceptions.RayError as exc:  # the runs then fill what they need themselves
            log.warning("cache task for %s failed (%s); its runs compute their own frozen prefix",
                        job.arm, str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__)

    # -- running -------------------------------------------------------------------------------------------
    def run(self, jobs: list[PlannedRun], study_dir: Path, pool: DataPool, top_ks, report) -> list[RunOutcome]:
        if not jobs:
            return []
        with self.session():
            return self.schedule(jobs, Path(study_dir).resolve(), pool.cv, top_ks, report)

    def schedule(self, jobs, study_dir: Path, cv, top_ks, report) -> list[RunOutcome]:
        import ray

        task, fill = self.remote_function(), self.remote_function(fill_cache_on_worker)
        gate, waiting, outcomes = CacheGate(), list(jobs), []
        in_flight: dict = {}  # ObjectRef -> (job, submitted at, "run" | "cache")
        try:
            while waiting or in_flight:
                room = self.capacity() - len(in_flight)
                for job in list(waiting):
                    if room <= 0:
                        break
                    action = gate.action(job)
                    if action == "wait":
                        continue
                    if action == "build":  # the job itself waits for its group's cache task
                        ref = fill.remote(job, str(study_dir), cv, top_ks, self.cfg.num_cpus)
                        in_flight[ref] = (job, time.perf_counter(), "cache")
                    else:
                        waiting.remove(job)
                        ref = task.remote(job, str(study_dir), cv, top_ks, self.cfg.num_cpus)
                        in_flight[ref] = (job, time.perf_counter(), "run")
                    room -= 1
                done, _ = ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    job, submitted, kind = in_flight.pop(ref)
                    if kind == "cache":
                        self.cache_finished(ref, job, time.perf_counter() - submitted)
                        gate.cache_done(job)
                        continue
                    outcome = self.collect(ref, job, study_dir, time.perf_counter() - submitted)
                    report.running = len(in_flight)
                    report(outcome)
                    outcomes.append(outcome)
        except KeyboardInterrupt:
            for ref in in_flight:
                ray.cancel(ref, force=True)
            raise
        return outcomes

    def collect(self, ref, job: PlannedRun, study_dir: Path, seconds: float) -> RunOutcome:
        """The task's outcome; a raised error or a worker that died `max_retries + 1` times becomes a failure."""
        import ray
        from ray.exceptions import RayTaskError

        try:
            outcome, host = ray.get(ref)
        except RayTaskError as exc:
            cause = getattr(exc, "cause", None) or exc
            return RunOutcome(job.run_id, job.arm, ok=False, seconds=seconds,
                              error=f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1]}")
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return RunOutcome(job.run_id, job.arm, ok=False, seconds=seconds,
                              error=f"worker lost after {self.cfg.max_retries} retries: {first}")
        metrics_file = study_dir / "runs" / job.run_id / ("pruned.json" if outcome.pruned else "metrics.json")
        if outcome.ok and not metrics_file.exists():
            return RunOutcome(job.run_id, job.arm, ok=False, seconds=seconds,
                              error=f"run finished on {host} but {metrics_file} is not visible here: the study "
                                    "folder must be on a filesystem every Ray node shares")
        return outcome


def import_ray():
    try:
        import ray
    except ImportError:
        raise UnfreezeError("executor ray needs Ray: pip install 'unfreeze[ray]' "
                            "(or run with --executor local)") from None
    return ray
