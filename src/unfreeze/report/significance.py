"""What the report's significance marks rest on: which runs share a test set, their test predictions, and the
report's one decision path (`metrics.decide.decide`: pick on validation, marks on test, the baseline verdict, the
seed plan) — the very function `unfreeze calibrate` runs on simulated studies.

Why the grouping: a comparison (and a ranking) only means something between runs scored on the *same* test
examples. A grid over `data.split_seed` (or anything that changes the test split) gives arms with different test
sets, so the report builds one table per test set and never marks across them. Runs record `test_fingerprint`
(sha1 of the test example ids and labels, `training.run_dir.split_fingerprint`); runs from before that field fall
back to a fingerprint of the label vector in their `predictions_test` file.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from unfreeze.io import read_json
from unfreeze.tasks import get_task
from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.metrics.decide import MIN_EFFECT, Split, decide

N_BOOT = 10_000  # resamples behind every bootstrap the report prints (p-values never claim more than 1 / N_BOOT)


def read_test_predictions(run_dir: Path, task: str, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of a run's test (or `split`) predictions, as object arrays (token tasks: one tag list
    per sentence)."""
    return get_task(task).read_predictions(run_dir, split)


def count_metric_of(run_dir: Path, task: str, metric: str, split: str = "test"):
    """The count metric (`metrics.counts`) that recomputes `metric` from a run's `split` predictions."""
    scored = read_json(run_dir / "metrics.json")[split]
    return get_task(task).count_metric(metric, scored, lambda: _run_config(run_dir))


def test_groups(results: pd.DataFrame, task: str) -> list[pd.DataFrame]:
    """`results` split into groups of runs that share a test set, largest first (one group in most studies)."""
    if results.empty:
        return [results]
    keys = []
    for row in results.itertuples():
        fingerprint = getattr(row, "test_fingerprint", None)
        if isinstance(fingerprint, str) and fingerprint:
            keys.append(fingerprint)
            continue
        try:  # an older run: the label vector is what the test set was
            labels, _ = read_test_predictions(Path(row.path), task)
            keys.append("labels:" + hashlib.sha1(json.dumps([_plain(v) for v in labels]).encode()).hexdigest())
        except FileNotFoundError:
            keys.append("unknown")
    keyed = results.assign(_test_set=keys)
    groups = [part.drop(columns="_test_set") for _, part in keyed.groupby("_test_set", sort=False)]
    return sorted(groups, key=len, reverse=True)


def _plain(value):
    return list(value) if isinstance(value, (list, tuple, np.ndarray)) else str(value)


def significance(results: pd.DataFrame, meta: dict, metric: str, n_boot: int = N_BOOT,
                 baseline_of: dict[str, dict] | None = None, min_effect: float = MIN_EFFECT
                 ) -> tuple[str | None, dict, dict | None]:
    """(best arm by mean val metric, {arm: comparison with it}, the whole `decide` result) within one test-set
    group; `baseline_of[arm]` is the baseline trained on that arm's data (its test predictions join the verdict
    when they score the same test set). Comparisons are empty where the metric is not a count metric."""
    if f"val_{metric}" not in results or results.empty:
        return None, {}, None
    val_scores = {arm: {(int(s), int(f)): float(v) for s, f, v in zip(part["seed"], part["fold"],
                                                                       part[f"val_{metric}"]) if pd.notna(v)}
                  for arm, part in results.groupby("arm")}
    task = meta.get("task", "sequence")
    preds, y_true, fn = {}, None, None
    if metric not in LOWER_IS_BETTER:
        for arm, part in results.sort_values(["seed", "fold"]).groupby("arm", sort=False):
            preds[arm] = {}
            for run_dir, seed, fold in zip(part["path"], part["seed"], part["fold"]):
                y, p = read_test_predictions(Path(run_dir), task)
                fn = fn or count_metric_of(Path(run_dir), task, metric)
                y_true = y if y_true is None else y_true
                preds[arm][(int(seed), int(fold))] = p
    if fn is None:  # a loss, or not a count metric: the pick only
        decision = decide(Split(np.zeros(0), {}), None, val_scores, lower_is_better=metric in LOWER_IS_BETTER)
        return decision["best"], {}, decision
    baseline, val_baseline = {}, {}
    for arm, base in (baseline_of or {}).items():
        if base is None or arm not in preds:
            continue
        try:
            y_base, p_base = read_test_predictions(Path(base["dir"]), task)
        except FileNotFoundError:
            continue
        if len(y_base) == len(y_true) and all(_plain(a) == _plain(b) for a, b in zip(y_true, y_base)):
            baseline[arm] = p_base  # else scored on another test set: no test against it
        if isinstance(base["val"].get(metric), (int, float)):
            val_baseline[arm] = float(base["val"][metric])
    decision = decide(Split(y_true, preds, baseline or None), fn, val_scores, val_baseline or None,
                      min_effect=min_effect, n_boot=n_boot)
    return decision["best"], decision["arms"], decision


def report_min_effect(study_dir: Path) -> float:
    """`report.min_effect` from the study file kept in the study folder (the documented default without one)."""
    import yaml

    from unfreeze.config.schema import ReportConfig

    path = Path(study_dir) / "study.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
        return ReportConfig.model_validate((data or {}).get("report") or {}).min_effect
    except Exception:  # noqa: BLE001 — an older or hand-edited file: the study already validated what it ran
        return MIN_EFFECT


def plan_text(decision: dict | None, metric: str) -> str | None:
    """"Seeds to settle": is best vs runner-up told apart, and the seeds per arm `report.min_effect` needs (planned
    from an upper bound of the seed variance at the level the correction applies, never from the observed Δ)."""
    plan = (decision or {}).get("plan")
    if not plan:
        return None
    best, second = decision["best"], plan["runner_up"]
    if plan["status"] == "untested":
        state = "not tested (fewer than 3 seeds)"
    elif plan["equivalent"]:
        state = (f"indistinguishable from 0, and the interval lies within ±{decision['min_effect']:g}: no gap of "
                 f"report.min_effect between them")
    elif plan["status"] == "not apart":
        state = "indistinguishable from 0 at this number of seeds"
    else:
        state = "told apart"
    interval = f" [{-plan['ci_high']:+.4f}, {-plan['ci_low']:+.4f}]" if plan["ci_low"] is not None else ""
    return (f"Seeds to settle {best} vs the runner-up {second}: Δ test {metric} {-plan['delta']:+.4f}{interval} — "
            f"{state}. Planned for report.min_effect = {decision['min_effect']:g}: {plan['plan']}.")


def _run_config(run_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())
