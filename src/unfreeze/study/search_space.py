"""A search's space and Optuna plumbing shared by the search driver (study/search.py) and the trial loop
(study/trials.py): Optuna's import, storage, samplers, pruners, the encoding of choices, and the planned run of a
set of values."""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

from unfreeze.config.study import StudyConfig
from unfreeze.errors import ConfigError, UnfreezeError
from unfreeze.study.execute import cache_top_ks
from unfreeze.study.grid import PlannedRun, arm_name, config_hash, run_config_of


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("search: needs Optuna; install it with `pip install 'unfreeze[search]'`") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # the trial loop beats the heartbeat itself (study/trials.py: ask/tell, not Study.optimize)
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning,
                            message=".*(fail_stale_trials|heartbeat).*")
    return optuna


def storage_url(study: StudyConfig, study_dir: Path) -> str:
    return study.search.storage or f"sqlite:///{(study_dir / 'optuna.db').resolve()}"


def encode(value: Any) -> Any:
    """Optuna's categorical choices are scalars: a `freeze: {top_k: 2}` choice travels as its JSON text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value, sort_keys=True)


def suggest(trial, space: dict[str, Any]) -> dict[str, Any]:
    overrides = {}
    for key, spec in space.items():
        if isinstance(spec, list):
            choices = {encode(v): v for v in spec}
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


def list_combinations(study: StudyConfig) -> list[dict[str, Any]]:
    """Every combination of the space's lists (values as written; ranges left out), in the grid's order: for
    `sampler: grid`, whose space is lists only, the grid's points."""
    from itertools import product

    lists = {k: v for k, v in study.search.space.items() if isinstance(v, list)}
    return [dict(zip(lists, combo)) for combo in product(*lists.values())]


def space_jobs(study: StudyConfig) -> list[PlannedRun]:
    """The planned run of each combination of the space's lists (ranges at the base's value); a combination that
    is not a valid run is left out here (`preflight.check` refuses it up front in spaces of up to
    `preflight.CHECKED_COMBINATIONS`; in larger ones, asked, it fails as its own trial)."""
    jobs = []
    for values in list_combinations(study):
        try:
            jobs.append(planned(study, values, study.seeds[0]))
        except UnfreezeError:
            continue
    return jobs


def space_top_ks(study: StudyConfig) -> dict[str, set[int]]:
    """Every activation-cache boundary the space's choices can need, so the first cached trial fills them all in
    one forward pass, as a grid study does, instead of each strategy re-running the frozen layers for its own."""
    return cache_top_ks(space_jobs(study))


def is_final(optuna, trial) -> bool:
    """Counts towards `search.trials` and is not asked again: complete, pruned, or failed for a reason of its own
    (`error`); a trial failed because its process died is re-asked instead."""
    states = optuna.trial.TrialState
    return trial.state in (states.COMPLETE, states.PRUNED) or (trial.state == states.FAIL
                                                               and "error" in trial.user_attrs)


def asked_values(trial) -> dict:
    """The values a trial runs: its queued (fixed) values, known before it suggests them, else its parameters."""
    return trial.system_attrs.get("fixed_params") or trial.params


def make_sampler(optuna, search, resumed_at: int, worker: int = 0):
    """Seeded by `search.seed` plus the trials already stored (a resumed process re-seeded with the bare seed would
    replay the first process's suggestions, and only re-tell their finished runs) plus a stride per parallel
    `worker` (workers opening together would otherwise suggest the same values in lockstep). A grid keeps the bare
    seed: processes sharing one database must agree on which point a grid id is."""
    seed = search.seed + resumed_at + 7919 * worker
    if search.sampler == "grid":
        seed = search.seed
        space = {k: [encode(v) for v in values] for k, values in search.space.items()}

        class Grid(optuna.samplers.GridSampler):
            def after_trial(self, *args, **kwargs) -> None:
                """Optuna's stops `optimize()` once the grid is exhausted (there is no `optimize` here) and reads a
                `grid_id` that a re-asked (enqueued) trial does not have: KeyError. The loop counts trials itself."""

        return Grid(space, seed=seed)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(optuna, search):
    if search.pruner == "median":  # prunes a trial whose best value so far is below the earlier trials' median
        return optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials)
    return {"none": optuna.pruners.NopPruner, "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
            "hyperband": optuna.pruners.HyperbandPruner}[search.pruner]()


def grid_size(search) -> int:
    return math.prod(len(v) for v in search.space.values())

def decode(study: StudyConfig, params: dict) -> dict:
    out = {}
    for key, spec in study.search.space.items():
        if key in params:
            out[key] = {encode(v): v for v in spec}[params[key]] if isinstance(spec, list) else params[key]
    return out


def open_study_readonly(study: StudyConfig, study_dir: Path):
    optuna = import_optuna()
    return optuna, optuna.load_study(study_name=study.name, storage=storage_url(study, study_dir))


def is_shared(study: StudyConfig) -> bool:
    """A database URL: several processes (machines) may run this search at once."""
    return study.search.storage is not None and not study.search.storage.startswith("sqlite")
