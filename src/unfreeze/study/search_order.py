"""The order of a grid search (`sampler: grid`): its points queued one at a time, shuffled by the search's seed
(`order: sampler`) or the costliest first (`order: costly_first`).

Why: a pruner judges a trial against the trials before it (the median pruner: against the *completed* ones, at the
same step) and never prunes the first ones. Queued costliest first, the configurations that train the most
parameters are the references and the cheaper ones stop once they fall behind them; in freezing studies with
enough data those are often the strongest, but not always (a low learning rate makes a costly but weak reference,
which prunes less). Ties (e.g. the same strategy at several learning rates) keep the grid's order.

Only the driver asks for trials (on Ray too: the workers run the asked trials' runs), so the points are queued in
one process; drivers on several machines sharing a database URL cannot agree on an order, so config validation
keeps `costly_first` off a database URL (there Optuna's GridSampler hands out the points). A killed trial is re-asked first
(study/trials.py re-queues it), so a resumed search keeps the order and runs every point once.
"""
from __future__ import annotations

import json
import logging

from unfreeze.study.search_space import asked_values, encode, is_final, list_combinations, planned

log = logging.getLogger(__name__)


def _params_key(params: dict) -> str:
    return json.dumps(params, sort_keys=True)


def grid_points(study) -> list[dict]:
    """`sampler: grid` in the default order: every point of the space once, shuffled by `search.seed` (the same
    order in a resumed process; points with a trial are skipped by `enqueue_next`). Queued here rather than left to
    Optuna's GridSampler, which counts a killed trial's point as visited and would then re-ask a finished one."""
    import random

    points = [{k: encode(v) for k, v in values.items()} for values in list_combinations(study)]
    random.Random(study.search.seed).shuffle(points)
    return points


def costly_first(study, with_seconds: bool = False) -> list:
    """The grid's points in Optuna's encoding, costliest first by the dry run's estimate of their run
    (`estimate.estimate_job`); a point that cannot be estimated goes last, to fail as its own trial with its own
    error."""
    from unfreeze.study.estimate import estimate_job

    points = list_combinations(study)
    cost = []
    for point in points:
        try:
            cost.append(estimate_job(planned(study, point, study.seeds[0])))
        except Exception as exc:  # noqa: BLE001 — the trial itself will report it
            log.warning("search order: no estimate for %s (%s); it runs last", point, exc)
            cost.append(float("-inf"))
    order = sorted(range(len(points)), key=lambda i: -cost[i])
    if with_seconds:  # the dry run: (values, estimated seconds of the run)
        return [(points[i], cost[i]) for i in order]
    return [{k: encode(v) for k, v in points[i].items()} for i in order]


def enqueue_next(optuna, opt, ordered: list[dict]) -> bool:
    """Queue the first point of `ordered` that has no trial yet (final as `is_final` says, or running), unless a
    trial is queued already (a killed one, re-asked). False: nothing queued and nothing left to queue. Called by
    the one driver that asks (study/trials.py), so two trials never queue the same point."""
    states = optuna.trial.TrialState
    taken = set()
    for t in opt.get_trials(deepcopy=False):
        if t.state == states.WAITING:
            return True
        if t.state == states.RUNNING or is_final(optuna, t):
            taken.add(_params_key(asked_values(t)))
    todo = [p for p in ordered if _params_key(p) not in taken]
    if todo:
        opt.enqueue_trial(todo[0])
    return bool(todo)
