"""A search study: Optuna asks for configs from `search.space` (grid / random / TPE), each trial is one run of the
study's first seed, and a pruner may stop a trial after any evaluation.

Resumable twice over: a trial's run folder is named by the config hash as in a grid study, so a config whose
`metrics.json` exists is never retrained (its metrics are told to Optuna again), and Optuna's storage (default
`<study>/optuna.db`) keeps every trial's state. Trials left RUNNING by a killed process are marked FAIL and
their parameters re-asked first. With the default SQLite file that happens at once (one process per file); with a
shared database URL (several machines on one search) only once their heartbeat has gone stale.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd

from unfreeze.config.schema import RunConfig
from unfreeze.config.study import StudyConfig
from unfreeze.errors import ConfigError, Pruned, UnfreezeError
from unfreeze.io import read_json, write_json
from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.study.bookkeeping import record_failures, run_baseline, write_study_meta
from unfreeze.study.execute import execute_run
from unfreeze.study.grid import PlannedRun, arm_name, config_hash, run_config_of
from unfreeze.study.pool import DataPool

log = logging.getLogger(__name__)

HEARTBEAT_S = 60  # shared databases: a trial whose process stopped beating for 2 intervals is stale


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("search: needs Optuna; install it with `pip install 'unfreeze[search]'`") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage_url(study: StudyConfig, study_dir: Path) -> str:
    return study.search.storage or f"sqlite:///{(study_dir / 'optuna.db').resolve()}"


def _encode(value: Any) -> Any:
    """Optuna's categorical choices are scalars: a `freeze: {top_k: 2}` choice travels as its JSON text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value, sort_keys=True)


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    overrides = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            choices = {_encode(v): v for v in spec}
            overrides[key] = choices[trial.suggest_categorical(key, list(choices))]
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            overrides[key] = trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            overrides[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]),
                                                 log=bool(spec.get("log")))
    return overrides


def planned(study: StudyConfig, overrides: dict[str, Any], seed: int) -> PlannedRun:
    """The run of one trial: base + the trial's values, identified by the same hash as a grid run."""
    config = run_config_of(study, overrides, seed, f"search values {overrides}")
    return PlannedRun(config_hash(config, -1), arm_name(overrides), seed, -1, overrides, config)


def check_space(study: StudyConfig) -> None:
    """Every choice and both ends of every range make a valid run config: fail before the first trial."""
    for key, spec in study.search.space.items():
        for value in spec if isinstance(spec, list) else [spec["low"], spec["high"]]:
            planned(study, {key: value}, study.seeds[0])


def make_sampler(optuna, search, resumed_at: int):
    """Seeded by `search.seed` plus the trials already stored: a resumed process re-seeded with the bare seed
    would replay the first process's suggestions (and only re-tell their finished runs)."""
    seed = search.seed + resumed_at
    if search.sampler == "grid":
        space = {k: [_encode(v) for v in values] for k, values in search.space.items()}
        return optuna.samplers.GridSampler(space, seed=seed)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(optuna, name: str):
    return {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
            "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
            "hyperband": optuna.pruners.HyperbandPruner}[name]()


def open_study(study: StudyConfig, study_dir: Path, metric: str):
    optuna = import_optuna()
    url = storage_url(study, study_dir)
    shared = study.search.storage is not None and not url.startswith("sqlite")
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S if shared else None)
    opt = optuna.create_study(study_name=study.name, storage=storage, load_if_exists=True,
                              pruner=make_pruner(optuna, study.search.pruner),
                              direction="minimize" if metric in LOWER_IS_BETTER else "maximize")
    opt.sampler = make_sampler(optuna, study.search, len(opt.trials))
    stale = optuna.storages.fail_stale_trials(opt) if shared else []
    if not shared:  # one process per SQLite file: whatever is still RUNNING was killed
        for trial in opt.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
            stale.append(trial.number)
    for number in stale:
        opt.enqueue_trial(opt.trials[number].params)  # re-asked first; a finished run folder is reused
    return optuna, opt


def counted(optuna, opt) -> int:
    """Trials that count towards `search.trials`: complete, pruned, or failed for a reason of their own (a
    killed process's trial is not counted: it is re-asked)."""
    states = optuna.trial.TrialState
    return sum(1 for t in opt.get_trials(deepcopy=False)
               if t.state in (states.COMPLETE, states.PRUNED) or (t.state == states.FAIL and "error" in t.user_attrs))


def grid_size(search) -> int:
    return math.prod(len(v) for v in search.space.values())


def run_trials(study: StudyConfig, study_dir: Path, pool: DataPool, echo, progress: bool) -> None:
    from unfreeze.training import run as training
    from unfreeze.training.run_dir import is_finished

    metric = RunConfig.model_validate({**study.base, "seed": study.seeds[0]}).selection_metric
    optuna, opt = open_study(study, study_dir, metric)
    total = min(study.search.trials, grid_size(study.search)) if study.search.sampler == "grid" \
        else study.search.trials
    echo(f"search {study.name}: {counted(optuna, opt)} of {total} trials done "
         f"({study.search.sampler}, pruner {study.search.pruner}, storage {storage_url(study, study_dir)})")
    while counted(optuna, opt) < total:
        trial = opt.ask()
        job = planned(study, suggest(trial, study.search.space), study.seeds[0])
        trial.set_user_attr("run_id", job.run_id)
        run_dir = study_dir / "runs" / job.run_id
        started = time.perf_counter()
        if is_finished(run_dir):
            value = read_json(run_dir / "metrics.json")["val"][metric]
            opt.tell(trial, value)
            echo(f"[trial {trial.number}] {job.arm} ({job.run_id}) already finished: val {metric} {value:.4f}")
            continue

        def on_eval(row: dict) -> bool:
            value = row.get(f"val_{metric}")
            if value is None:
                return False
            trial.report(value, row["step"])
            return trial.should_prune()

        try:
            metrics = training.train(job.config, run_dir, overwrite=True, progress=progress,
                                     data=pool.get(job.config, job.fold), cache_root=study_dir / "cache",
                                     run_info={**job.info, "trial": trial.number}, on_eval=on_eval)
        except Pruned as stop:
            write_json(run_dir / "pruned.json", {"info": {**job.info, "trial": trial.number}, "epoch": stop.epoch,
                                                 "step": stop.step, "metric": metric, "history": stop.history})
            opt.tell(trial, state=optuna.trial.TrialState.PRUNED)
            echo(f"[trial {trial.number}] {job.arm} ({job.run_id}) pruned at epoch {stop.epoch:g}")
            continue
        except Exception as exc:  # noqa: BLE001 — one bad trial is recorded (as in a grid); Ctrl-C still stops
            if not isinstance(exc, UnfreezeError):
                log.exception("trial %d (%s) failed", trial.number, job.arm)
            trial.set_user_attr("error", f"{type(exc).__name__}: {str(exc).strip()[:300]}")
            opt.tell(trial, state=optuna.trial.TrialState.FAIL)
            echo(f"[trial {trial.number}] {job.arm} ({job.run_id}) FAILED: {exc}")
            continue
        opt.tell(trial, metrics["val"][metric])
        echo(f"[trial {trial.number}] {job.arm} ({job.run_id}) val {metric} {metrics['val'][metric]:.4f} in "
             f"{time.perf_counter() - started:.0f}s")


def trial_jobs(study: StudyConfig, study_dir: Path) -> list[PlannedRun]:
    """The runs behind the counted trials (one per distinct config), then the best `top` re-run with `seeds`."""
    optuna, opt = open_study_readonly(study, study_dir)
    states = optuna.trial.TrialState
    jobs: dict[str, PlannedRun] = {}
    for t in opt.get_trials(deepcopy=False, states=[states.COMPLETE, states.PRUNED]):
        job = planned(study, decode(study, t.params), study.seeds[0])
        jobs.setdefault(job.run_id, job)
    return list(jobs.values())


def decode(study: StudyConfig, params: dict) -> dict:
    out = {}
    for key, spec in study.search.space.items():
        if key in params:
            out[key] = {_encode(v): v for v in spec}[params[key]] if isinstance(spec, list) else params[key]
    return out


def open_study_readonly(study: StudyConfig, study_dir: Path):
    optuna = import_optuna()
    return optuna, optuna.load_study(study_name=study.name, storage=storage_url(study, study_dir))


def best_reruns(study: StudyConfig, study_dir: Path) -> list[PlannedRun]:
    extra = [s for s in study.search.seeds if s != study.seeds[0]]
    if not extra:
        return []
    optuna, opt = open_study_readonly(study, study_dir)
    done = [t for t in opt.get_trials(deepcopy=False, states=[optuna.trial.TrialState.COMPLETE])]
    done.sort(key=lambda t: t.value, reverse=opt.direction == optuna.study.StudyDirection.MAXIMIZE)
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
               command=None) -> pd.DataFrame:
    """Run the search (resuming), the extra seeds of the best trials, then results.csv (with `status`) and the
    report with Optuna's views."""
    from unfreeze.study.results import collect_results

    check_space(study)
    pool = DataPool(None)
    first = planned(study, {}, study.seeds[0])
    write_study_meta(study_dir, study, [first], study_text, command)
    if study.baseline:
        run_baseline(study_dir, [first], pool, echo)
    run_trials(study, study_dir, pool, echo, progress)
    reruns = best_reruns(study, study_dir)
    if reruns:
        echo(f"re-running the best {study.search.top} trial(s) with seeds {study.search.seeds}")
    failed = []
    for job in reruns:
        outcome = execute_run(job, study_dir, pool, {}, progress=progress)
        if not outcome.ok:
            failed.append(outcome)
            echo(f"FAILED {outcome.arm} ({outcome.run_id}): {outcome.error}")
    record_failures(study_dir, failed)
    jobs = trial_jobs(study, study_dir) + reruns
    write_study_meta(study_dir, study, jobs or [first], study_text, command)
    meta = read_json(study_dir / "study.json")
    meta.update(grid_keys=list(study.search.space), search={
        **study.search.model_dump(mode="json", exclude={"storage"}), "storage": storage_url(study, study_dir),
        "study_name": study.name})
    write_json(study_dir / "study.json", meta)
    results = collect_results(study_dir, jobs)
    from unfreeze.report.build import build_report

    _, html = build_report(study_dir, results)
    echo(f"report: {html}")
    return results


def plan_search(study: StudyConfig, out: Path, console) -> None:
    """`unfreeze study FILE --dry-run` for a search: the space, the budget, and what is done already."""
    check_space(study)
    s = study.search
    total = min(s.trials, grid_size(s)) if s.sampler == "grid" else s.trials
    console.print(f"search {study.name}: {s.sampler} sampler, {total} trials of seed {study.seeds[0]}, pruner "
                  f"{s.pruner}, storage {storage_url(study, Path(out))}", highlight=False, soft_wrap=True)
    for key, spec in s.space.items():
        shown = spec if isinstance(spec, list) else (f"[{spec['low']}, {spec['high']}]"
                                                     + (" (log)" if spec.get("log") else ""))
        console.print(f"  {key}: {shown}", highlight=False, soft_wrap=True)
    if s.seeds:
        console.print(f"then the best {s.top} trial(s) re-run with seeds {s.seeds}", highlight=False)
    db = Path(out) / "optuna.db"
    if s.storage is None and db.exists():
        optuna = import_optuna()
        try:
            opt = optuna.load_study(study_name=study.name, storage=storage_url(study, Path(out)))
            console.print(f"{len(opt.trials)} trials in {db} already", highlight=False)
        except KeyError:
            pass
