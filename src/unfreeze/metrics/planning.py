"""Intervals for per-seed scores of a bounded metric, and how many seeds a named minimal effect needs.

Why planning is separate from the observed Δ: a seed count computed from the Δ a study happened to see is
post-hoc power — it is small exactly when Δ was overestimated by chance and says nothing when the arms are equal.
`plan_seeds` answers a question fixed in advance ("how many seeds per arm would find a gap of `min_effect` with
80 % power at the level the report's correction applies?") from an upper confidence bound of the seed variance
(with 3 seeds a variance estimate has 2 degrees of freedom and is often far too small), so the figure errs on the
side of more seeds. `seed_test_df` is the df rule of every comparison (`metrics.compare`), here so that planning
uses the df the comparison will use. Pure numpy / scipy.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from unfreeze.errors import UnfreezeError

VARIANCE_CONFIDENCE = 0.8  # one-sided upper bound of the seed variance used for planning
SEED_VAR_CONFIDENCE = 0.95  # the upper bound of the seed variance behind the comparisons' df (seed_test_df) ...
BOUND_MISS_PER_LEVEL = 10  # ... raised where the level tested is below 0.005: the bound may miss ≤ 10 × the level
DF_RULE = "upper"  # the report's df rule
DF_RULES = ("upper", "min", "satterthwaite", "welch")


def bounded_interval(values: Sequence[float], low: float = 0.0, high: float = 1.0) -> tuple[float, float, str]:
    """95 % t-interval for the mean of per-seed scores of a metric bounded in [low, high], cut at the bounds.

    The true mean lies inside [low, high], so cutting the t-interval there keeps its coverage and never produces
    the absurd widths a logit transform of scores at exactly 0 or 1 does (scores 0, 0, 0.02 → [0, 0.035], not
    [0.0000003, 0.547]). A note says when the interval was cut, when it says little (2 seeds: t has 1 df) or when
    all seeds scored the same. 0 or 1 finite values → (nan, nan, note); values outside [low, high] raise.
    """
    if not high > low:
        raise UnfreezeError(f"bounded_interval: low={low} must be below high={high}")
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n < 2:
        return math.nan, math.nan, f"{n} seed{'s' if n != 1 else ''}: no interval"
    if x.min() < low or x.max() > high:
        raise UnfreezeError(f"bounded_interval: score {x.min() if x.min() < low else x.max():g} lies outside "
                            f"[{low:g}, {high:g}]; pass the metric's real bounds")
    notes = ["2 seeds: interval uninformative"] if n == 2 else []
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    if sd == 0:
        notes.append(f"all {n} seeds scored the same: zero spread, the interval is no guarantee")
        return mean, mean, "; ".join(notes)
    half = float(sps.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if lo < low or hi > high:
        notes.append(f"cut at the bound {low:g} / {high:g}")
    return max(lo, low), min(hi, high), "; ".join(notes)


def variance_upper(variance: float, df: float, confidence: float = VARIANCE_CONFIDENCE) -> float:
    """One-sided `confidence` upper bound of a variance estimated with `df` degrees of freedom (chi-square)."""
    if not df or df <= 0 or not math.isfinite(variance):
        return math.nan
    return float(variance * df / sps.chi2.ppf(1 - confidence, df))


def plan_seeds(seed_variance: float, df: float, test_var: float, min_effect: float, alpha: float,
               power: float = 0.8, min_seeds: int = 3, max_seeds: int = 50) -> dict:
    """Seeds per arm for which the report's comparison of two arms finds a gap of `min_effect` with `power`.

    `seed_variance` is the per-seed variance of the compared quantity (a paired difference, or the sum of both
    arms' per-seed variances for independent seeds) estimated with `df` degrees of freedom; planning uses its
    upper `VARIANCE_CONFIDENCE` bound. `test_var` (the test-set variance of Δ) does not shrink with seeds, so an
    effect below it is never resolvable. `alpha` is the per-comparison level the correction applies. Power from
    the noncentral t with the df the comparison will use (`seed_test_df`: seeds − 1, plus the
    test-set term weighed against the seed term's upper bound). Returns
    {"seeds": int | None, "sd_upper": float, "text": str}.
    """
    if not min_effect > 0:
        raise UnfreezeError(f"plan_seeds: min_effect={min_effect} must be > 0 (report.min_effect)")
    upper = variance_upper(seed_variance, df)
    if not math.isfinite(upper):
        return {"seeds": None, "sd_upper": math.nan,
                "text": "needs ≥ 2 seeds per arm to bound the seed variance"}
    k = np.arange(max(min_seeds, 2), max_seeds + 1)
    if upper + max(test_var, 0.0) == 0:  # every seed and every example agreed: any gap would show at once
        return {"seeds": int(k[0]), "sd_upper": 0.0,
                "text": f"{k[0]} seeds per arm (the seeds showed no spread at all, so this is no guarantee)"}
    v_seed = upper / k
    variance = v_seed + max(test_var, 0.0)
    bound = v_seed * (k - 1) / sps.chi2.ppf(1 - seed_var_confidence(alpha), k - 1)  # the comparison's df rule
    with np.errstate(divide="ignore", invalid="ignore"):
        dfs = np.where(v_seed > 0, np.maximum(k - 1, (bound + max(test_var, 0.0)) ** 2 / (bound ** 2 / (k - 1))),
                       np.inf)
    crit = sps.t.ppf(1 - alpha / 2, np.minimum(dfs, 1e6))
    ncp = min_effect / np.sqrt(np.maximum(variance, 1e-300))
    achieved = sps.nct.sf(crit, np.minimum(dfs, 1e6), ncp) + sps.nct.cdf(-crit, np.minimum(dfs, 1e6), ncp)
    sd = math.sqrt(upper)
    enough = np.flatnonzero(achieved >= power)
    if len(enough):
        seeds = int(k[enough[0]])
        return {"seeds": seeds, "sd_upper": sd,
                "text": f"≈ {seeds} seeds per arm find a gap of {min_effect:g} with {power * 100:.0f} % power "
                        f"at the corrected level {alpha:.3g} (seed sd of the difference ≤ {sd:.3g}, "
                        f"{VARIANCE_CONFIDENCE * 100:.0f} % upper bound)"}
    why = "the test set's own noise" if test_var > 0 and min_effect < 3 * math.sqrt(test_var) else \
        f"≤ {max_seeds} seeds"
    return {"seeds": None, "sd_upper": sd,
            "text": f"a gap of {min_effect:g} is below what {why} can resolve at the corrected level "
                    f"{alpha:.3g} (seed sd of the difference ≤ {sd:.3g}, {VARIANCE_CONFIDENCE * 100:.0f} % upper "
                    f"bound)"}


def seed_var_confidence(level: float) -> float:
    """Confidence of the seed variance's upper bound for a test at `level` (two-sided, per comparison): 0.95, and
    1 − 10 · level below 0.005 (at 0.0014 and below, 3–5 seeds need it: docs/statistics.md)."""
    return max(SEED_VAR_CONFIDENCE, 1 - BOUND_MISS_PER_LEVEL * level)


def seed_test_df(parts: Sequence[tuple[float, float]], v_test: float, n_boot: int, rule: str = DF_RULE,
                 level: float = 0.05) -> float:
    """df of Δ / √(V_seed + V_test), V_seed the sum of the seed terms `parts` [(variance, df), ...], for a test at
    `level` (the per-comparison level the correction applies).

    "upper" (the report's): Satterthwaite over the seed and test-set terms, but with each seed term replaced by
    its one-sided upper confidence bound (χ², its own df; confidence `seed_var_confidence(level)`) and the seed
    df min(df), so a seed variance that came out small by chance cannot lend the statistic the test-set term's
    df; never below min(df). "min": min(df) for the whole variance; "satterthwaite": plain Satterthwaite with
    seed df min(df) (racing); "welch": Satterthwaite over every term (the former rule). Only "upper" and "min"
    are valid at the levels a correction applies (docs/statistics.md).
    """
    if rule not in DF_RULES:
        raise UnfreezeError(f"df_rule={rule!r}; use one of {', '.join(DF_RULES)}")
    parts = [(float(v), float(df)) for v, df in parts]
    df_seed = min(df for _, df in parts)
    v_seed = sum(v for v, _ in parts)
    if rule == "welch":
        return _satterthwaite([*parts, (v_test, n_boot - 1)])
    if rule == "satterthwaite":
        return _satterthwaite([(v_seed, df_seed), (v_test, n_boot - 1)])
    if rule == "min" and v_seed > 0:
        return df_seed
    if rule == "upper":
        miss = 1 - seed_var_confidence(level)
        upper = sum(v * df / sps.chi2.ppf(miss, df) for v, df in parts)
        return max(df_seed, _satterthwaite([(upper, df_seed), (v_test, n_boot - 1)]))
    return _satterthwaite([(v_seed, df_seed), (v_test, n_boot - 1)])


def _satterthwaite(parts: Sequence[tuple[float, float]]) -> float:
    """Welch–Satterthwaite df of a sum of independent variance estimates (value, df); inf when all are zero."""
    total = sum(v for v, _ in parts)
    denominator = sum(v * v / df for v, df in parts if v > 0 and df > 0)
    return float(total * total / denominator) if denominator > 0 else math.inf
