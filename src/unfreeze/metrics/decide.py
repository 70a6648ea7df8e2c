"""The report's decision path as ONE function, `decide`: pick the best arm on validation, compare every arm with it
on test (the † / ‡ marks), the best arm against the baseline (the verdict), and the seeds a named minimal effect
needs. `report.significance` and `metrics.calibrate` (`unfreeze calibrate`) both call it, so what the calibration
measures is what the report prints.

Why a family over *all pairs*: the reference arm is the maximum of noisy validation means, and an arm whose seeds
were lucky is lucky on test too (the same trained models score both splits). Corrections over the k − 1
comparisons with that reference (Holm) then mark equal arms 6–7 % of the time. Intervals that hold simultaneously
for every pair of decidable arms (Bonferroni over k(k − 1)/2 pairs) hold for whichever pair the validation pick
selects, so the family-wise false-mark rate stays ≤ alpha whatever the pick. A mark is exactly "the simultaneous
interval excludes 0", so the table's interval and its mark never disagree. The baseline verdict is the same idea
over the arms: every decidable arm against its baseline at alpha / arms, so the pick of the best arm is covered.
Measured calibration and power, and the alternatives, in docs/statistics.md.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

from unfreeze.errors import UnfreezeError
from unfreeze.metrics.compare import (DF_RULE, CountMetricLike, SeedScores, contrast, finish, finish_fixed,
                                      holm, score_split, seed_groups, t_decision)
from unfreeze.metrics.planning import plan_seeds

MIN_EFFECT = 0.01  # report.min_effect default: a gap of one point of the selection metric


@dataclass
class Split:
    """One split's labels and predictions: `arms[arm]` maps run key (`(seed, fold)` or a seed) → predictions;
    `baseline` is one deterministic prediction vector, or {arm: vector} when arms were trained on different data."""
    y: np.ndarray
    arms: Mapping[Hashable, Mapping[Hashable, np.ndarray]]
    baseline: np.ndarray | Mapping[Hashable, np.ndarray] | None = None
    extra: dict = field(default_factory=dict)


def seed_means(scores: Mapping[Hashable, float]) -> list[float]:
    """Per-seed scores from per-run scores keyed `(seed, fold)`: the folds of a seed averaged (a cluster)."""
    keys, values = list(scores), np.asarray([float(v) for v in scores.values()])
    return [float(values[rows].mean()) for rows in seed_groups(keys).values()]


def decide(test: Split, metric: CountMetricLike, val_scores: Mapping[Hashable, Mapping[Hashable, float]],
           val_baseline: float | Mapping[Hashable, float] | None = None, val: Split | None = None,
           alpha: float = 0.05, min_seeds: int = 3, min_effect: float = MIN_EFFECT, n_boot: int = 10_000,
           seed: int = 0, lower_is_better: bool = False, family: str = "pairs", df_rule: str = DF_RULE) -> dict:
    """The whole decision for one study (one shared test set).

    `val_scores[arm]` maps run key → validation score (the pick uses the mean over seeds of fold means);
    `val_baseline` the baseline's validation score (or {arm: score}); `val` optionally the validation predictions,
    for an interval of the validation verdict that also counts the validation set's noise. Returns
    {"best", "runner_up", "val_means", "alpha", "pairs", "level", "arms": {arm: row}, "baseline": {...} | None,
    "plan": {...} | None}. `family="ref"` (Holm over the comparisons with the picked arm) and `df_rule="welch"`
    exist only so the calibration benchmark can show what they cost.
    """
    if not 0 < alpha < 1:
        raise UnfreezeError(f"decide: alpha={alpha} must lie in (0, 1)")
    val_means = {arm: float(np.mean(seed_means(runs))) for arm, runs in val_scores.items() if runs}
    if not val_means:
        return {"best": None, "runner_up": None, "val_means": {}, "arms": {}, "baseline": None, "plan": None}
    order = sorted(val_means, key=lambda a: (val_means[a] if lower_is_better else -val_means[a], repr(a)))
    best, runner_up = order[0], (order[1] if len(order) > 1 else None)
    out = {"best": best, "runner_up": runner_up, "val_means": val_means, "alpha": alpha, "pairs": 0, "level": None,
           "arms": {}, "baseline": None, "plan": None, "min_effect": min_effect}
    if lower_is_better or best not in test.arms:
        return out
    fixed, base_of = _baselines(test.baseline, test.arms)
    scored, fixed_scores = score_split(test.y, test.arms, metric, n_boot, seed, fixed)
    decidable = [arm for arm, s in scored.items() if s.n >= min_seeds]
    rows, pairs = compare_family(scored, best, alpha, min_seeds, n_boot, family, df_rule)
    out.update(pairs=pairs, level=1 - alpha / max(pairs, 1), arms=rows)
    if fixed:
        out["baseline"] = _baseline_verdict(best, scored, fixed_scores, base_of, decidable, val_means, val_scores,
                                            val_baseline, val, metric, alpha, min_seeds, n_boot, seed, df_rule)
    out["plan"] = _plan(best, runner_up, scored, rows, len(scored), alpha, min_effect, min_seeds)
    return out


def compare_family(scored: Mapping[Hashable, SeedScores], best: Hashable, alpha: float, min_seeds: int,
                   n_boot: int, family: str = "pairs", df_rule: str = DF_RULE) -> tuple[dict, int]:
    """({arm: row vs best}, pairs in the family): every arm with ≥ `min_seeds` seeds against `best`, marks where
    the interval simultaneous over all pairs of decidable arms excludes 0 (`p_holm` = the Bonferroni-adjusted p:
    the key keeps its old name)."""
    k = sum(s.n >= min_seeds for s in scored.values())
    pairs = k * (k - 1) // 2 if family == "pairs" else max(k - 1, 1)
    alpha_pair = alpha / max(pairs, 1)
    rows = {arm: finish(scored[best], scored[arm], n_boot, min_seeds, alpha_pair, None, df_rule)
            for arm in scored if arm != best}
    for row in rows.values():
        row["p_holm"] = min(1.0, pairs * row["p_value"]) if row["decidable"] else None
        row["level"] = 1 - alpha_pair
        row["test"] = row["method"]
    if family == "ref":
        _holm_marks(rows, alpha)
    for row in rows.values():
        row.setdefault("significant", bool(row["decidable"] and row["p_holm"] < alpha))
        row["worse"] = row["significant"] and row["delta"] > 0
        row["better"] = row["significant"] and row["delta"] < 0
    return rows, pairs


def _baselines(baseline, arms) -> tuple[dict, dict]:
    """({name: vector} to score, {arm: name}) from one vector or a per-arm mapping."""
    if baseline is None:
        return {}, {}
    if isinstance(baseline, Mapping):
        fixed = {f"baseline of {arm}": np.asarray(v) for arm, v in baseline.items() if v is not None}
        return fixed, {arm: f"baseline of {arm}" for arm in baseline if baseline[arm] is not None}
    return {"baseline": np.asarray(baseline)}, {arm: "baseline" for arm in arms}


def _holm_marks(rows: dict, alpha: float) -> None:
    """The former rule (Holm over the comparisons with the picked arm), for the calibration benchmark only."""
    decided = [arm for arm, row in rows.items() if row["decidable"]]
    for arm, adjusted in zip(decided, holm([rows[arm]["p_value"] for arm in decided])):
        rows[arm]["p_holm"] = adjusted
        rows[arm]["significant"] = adjusted < alpha


def _baseline_verdict(best, scored, fixed_scores, base_of, decidable, val_means, val_scores, val_baseline, val,
                      metric, alpha, min_seeds, n_boot, seed, df_rule=DF_RULE) -> dict | None:
    """The best arm against its baseline, on test and on validation, at alpha / (arms with a baseline)."""
    if best not in base_of:
        return None
    family = [arm for arm in decidable if arm in base_of] or [best]
    level = alpha / len(family)
    test = finish_fixed(scored[best], *fixed_scores[base_of[best]], n_boot, level, min_seeds, df_rule)
    if test["decidable"]:
        test["p_adj"] = min(1.0, len(family) * test["p_value"])
        significant = test["p_adj"] < alpha
        test["claim"] = ("better" if test["delta"] > 0 else "worse") if significant else None
    else:
        test["p_adj"], test["claim"] = None, None
    test["level"] = 1 - level
    base_val = val_baseline.get(best) if isinstance(val_baseline, Mapping) else val_baseline
    return {"arm": best, "seeds": scored[best].n, "arms_in_family": len(family), "test": test,
            "val": _val_verdict(best, val_means[best], val_scores[best], base_val, val, metric, level, n_boot, seed,
                                base_of[best], df_rule)}


def _val_verdict(best, mean, runs, base_val, val, metric, level, n_boot, seed, base_name,
                 df_rule=DF_RULE) -> dict | None:
    """Validation Δ (best − baseline) with an interval: the validation set's noise counted when `val` carries
    predictions, else the seed spread only (said so). The arm was picked on these data, which flatters it."""
    if base_val is None or not math.isfinite(float(base_val)):
        return None
    out = {"delta": mean - float(base_val), "ci_low": None, "ci_high": None, "level": 1 - level, "how": None}
    seeds = seed_means(runs)
    fixed, base_of = _baselines(val.baseline, val.arms) if val is not None else ({}, {})
    if best in base_of and best in val.arms:  # the baseline's validation predictions for this arm's data
        arms, fixed_scores = score_split(val.y, {best: val.arms[best]}, metric, n_boot, seed + 1,
                                         {base_name: fixed[base_of[best]]})
        if arms[best].n >= 2:
            result = finish_fixed(arms[best], *fixed_scores[base_name], n_boot, level, df_rule=df_rule)
            out.update(ci_low=result["ci_low"], ci_high=result["ci_high"], how="seeds and validation examples")
    elif len(seeds) >= 2:
        sd = float(np.std(seeds, ddof=1))
        out.update(t_decision(out["delta"], sd / math.sqrt(len(seeds)), len(seeds) - 1, level),
                   how="seed spread only (the validation set's own noise is not in it)")
        out.pop("p_value", None)
    return out


def _plan(best, runner_up, scored, rows, arms, alpha, min_effect, min_seeds) -> dict | None:
    """Best vs runner-up: is their Δ told apart from 0, and how many seeds per arm `min_effect` needs at the level
    the correction will apply when every arm has that many seeds (alpha / pairs of all arms)."""
    if runner_up is None or runner_up not in scored or min(scored[best].n, scored[runner_up].n) < 2:
        return None
    c = contrast(scored[best], scored[runner_up])
    n_min = min(c["seeds_best"], c["seeds_other"])
    variance = c["var_seed_best"] if c["paired"] else c["var_seed_best"] + c["var_seed_other"]
    level = alpha / max(arms * (arms - 1) // 2, 1)
    plan = plan_seeds(variance, n_min - 1, c["var_test"], min_effect, level, min_seeds=min_seeds)
    row = rows.get(runner_up, {})
    if row.get("decidable"):
        apart = "apart" if row["significant"] else "not apart"
        equivalent = apart == "not apart" and -min_effect < row["ci_low"] and row["ci_high"] < min_effect
    else:
        apart, equivalent = "untested", False
    return {"runner_up": runner_up, "delta": c["delta"], "ci_low": row.get("ci_low"), "ci_high": row.get("ci_high"),
            "status": apart, "equivalent": bool(equivalent), "seeds": plan["seeds"], "plan": plan["text"],
            "level": level}
