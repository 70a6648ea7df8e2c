"""Seed-aware comparison of two fine-tuning arms on a shared test set.

Why: a study reports each arm against the arm picked as best on validation, and marks "† significantly worse on
test" / "‡ better". An arm's test score moves for two reasons: the finite test set, and training randomness (seed,
data order, head init). A bootstrap over test examples with the seeds held fixed only sees the first, so two arms
with equal expected score but seed spread 0.01 get a † far more often than the nominal 5 % (see docs/statistics.md).
The question the report asks is "would this arm, trained again, score lower on this kind of data", so the
comparison here treats every run as an independent draw of a model (runs are *not* paired by seed), all scored
on one shared test set, and uses both sources of variance.

Method (`seed_aware_compare`): Welch-type t statistic for Δ = mean over seeds of the best arm − mean over seeds of
the other arm, with

    Var(Δ) = s²_best / n_best + s²_other / n_other + V_test

- s² is the seed variance of an arm: the sample variance of its per-seed scores on the shared test set (this
  already contains the seed × example noise: different seeds get different examples wrong), floored at the
  variance that its seeds' disagreements on single examples imply (Σ_x per-example seed variance / n², estimated
  from all n examples, so it cannot collapse by chance the way the spread of 3 scores can);
- V_test is the test-set variance of the seed-*averaged* Δ: a count-based bootstrap over test examples (one
  multinomial weight vector per resample, shared by every run: `weights @ counts`), minus the part of that
  bootstrap variance that is seed × example noise already counted in s² (estimated from the same resamples as
  the spread of the per-seed score changes, divided by the number of seeds). Without that correction the seed ×
  example noise is counted twice and the test loses power; with it, the terms are the standard decomposition
  Var = E_test[Var_seeds] + Var_test[E_seeds] of a crossed seed × example design.
- degrees of freedom by Welch–Satterthwaite over the three terms (n_best − 1, n_other − 1, n_boot − 1: the
  bootstrap estimate of V_test carries Monte-Carlo noise, so its df is the number of resamples, not infinity).

Why the floor: with 3 seeds s² has 2 degrees of freedom and is often far too small by chance; the precise test-set
term then raises the Satterthwaite df exactly when the variance is underestimated, and the t test rejects 1.1–1.4 ×
too often at α = 0.01 (what Holm uses for the smallest of several p-values). The floor removes that; its price is a
conservative test (false-positive rate ≈ 0.02–0.03 at α = 0.05) when the seeds differ only through which examples
they get wrong. A plain seed bootstrap with 3 seeds is anti-conservative (≈ 2 × the nominal rate at seed sd 0.02)
and is not used. Calibration and power are measured in docs/statistics.md (tests/test_calibration.py re-checks them).

Every function is pure (no I/O, deterministic for a given `seed`) and imports numpy / scipy only
(plus `unfreeze.errors`).
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Protocol

import numpy as np
from scipy import stats as sps

from unfreeze.errors import UnfreezeError

__all__ = [
    "CountMetricLike",
    "bounded_interval",
    "compare_with_fixed",
    "format_p",
    "seed_aware_compare",
    "seeds_needed",
]


class CountMetricLike(Protocol):
    """What `count_metrics.CountMetric` provides: per-example additive counts and the metric of summed counts."""

    def counts(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray: ...  # (n_examples, d)

    def from_totals(self, totals: np.ndarray) -> np.ndarray: ...  # (..., d) -> (...)


# ---------------------------------------------------------------------------------------------------------
# The decision


def seed_aware_compare(y_true: np.ndarray, preds_best: Mapping[Hashable, np.ndarray],
                       preds_other: Mapping[Hashable, np.ndarray], metric: CountMetricLike, n_boot: int = 10_000,
                       seed: int = 0, min_seeds: int = 3) -> dict:
    """Is the other arm worse / better than the best arm, counting seed variance *and* the finite test set?

    `preds_best` / `preds_other` map a run key (e.g. `(seed, fold)`) to that run's test predictions; keys are not
    paired across arms (seeds are independent trainings), each arm is a sample of models. Returns
    `{"delta", "p_value", "ci_low", "ci_high", "method", "seeds_best", "seeds_other", "n_boot", "p_floor",
    "decidable", "df", "se", "var_seed_best", "var_seed_other", "var_test"}`:

    - `delta` = mean over seeds of the best arm − mean over seeds of the other (> 0: other is worse);
    - `p_value` two-sided, valid (super-uniform under "equal expected score"), hence a valid input to Holm;
      `None` when not decidable. It is an analytic t p-value, not a resample count, so it can lie below
      `p_floor` = 1 / n_boot; `format_p` prints such values as "p < p_floor".
    - `ci_low`, `ci_high`: 95 % t interval for the expected Δ (same variance and df as the p-value);
    - `decidable` is False (and p / CI are None) when either arm has fewer than `min_seeds` runs: with 2 seeds
      the seed variance has one degree of freedom and no test is worth printing.
    - `var_seed_best` / `var_seed_other`: the per-seed score variance used (sample variance, floored as the module
      docstring explains); `var_test`: the test-set variance of Δ, what `seeds_needed(..., test_var=...)` expects.

    Deterministic for a given `seed`. Cost: n_boot × n_examples weights, one matrix product per chunk.
    """
    if n_boot < 2:
        raise UnfreezeError(f"seed_aware_compare: n_boot={n_boot} is too small; pass n_boot >= 2 (e.g. 10000)")
    if min_seeds < 2:
        raise UnfreezeError(f"seed_aware_compare: min_seeds={min_seeds} cannot estimate a seed variance; use >= 2")
    y = np.asarray(y_true)
    counts_best = _run_counts(y, preds_best, metric, "best arm")
    counts_other = _run_counts(y, preds_other, metric, "other arm")
    n_a, n_b = len(counts_best), len(counts_other)
    scores_a = np.asarray(metric.from_totals(counts_best.sum(1)), dtype=float)
    scores_b = np.asarray(metric.from_totals(counts_other.sum(1)), dtype=float)
    delta = float(scores_a.mean() - scores_b.mean())
    out = {"delta": delta, "p_value": None, "ci_low": None, "ci_high": None, "seeds_best": n_a,
           "seeds_other": n_b, "n_boot": int(n_boot), "p_floor": 1.0 / n_boot, "decidable": False, "df": None,
           "se": None, "var_seed_best": None, "var_seed_other": None, "var_test": None}
    if min(n_a, n_b) < min_seeds:
        seeds = f"{n_a} seeds" if n_a == n_b else f"{n_a} vs {n_b} seeds"
        out["method"] = f"{seeds}: no seed-aware test (needs ≥ {min_seeds} per arm)"
        return out

    boot = _bootstrap_scores(np.concatenate([counts_best, counts_other]), metric, n_boot, seed)
    boot_a, boot_b = boot[:, :n_a], boot[:, n_a:]
    n = counts_best.shape[1]
    # Seed × example noise inside the bootstrap: how differently the seeds of one arm move under the same resample.
    noise_a = float((boot_a - scores_a).var(axis=1, ddof=1).mean())
    noise_b = float((boot_b - scores_b).var(axis=1, ddof=1).mean())
    v_boot = float((boot_a.mean(1) - boot_b.mean(1)).var(ddof=1))
    v_test = max(v_boot - noise_a / n_a - noise_b / n_b, 0.0)
    # Seed variance of an arm, floored at what its seeds' disagreements on single examples imply (noise + s²/n
    # = Σ_x per-example seed variance / n², estimated from n examples): 3 scores alone can show almost no spread
    # by chance, and the test-set term would then lend the t statistic degrees of freedom it does not have.
    var_a = max(float(scores_a.var(ddof=1)), noise_a + float(scores_a.var(ddof=1)) / n)
    var_b = max(float(scores_b.var(ddof=1)), noise_b + float(scores_b.var(ddof=1)) / n)
    v_seed_a, v_seed_b = var_a / n_a, var_b / n_b
    variance = v_seed_a + v_seed_b + v_test
    df = _satterthwaite([(v_seed_a, n_a - 1), (v_seed_b, n_b - 1), (v_test, n_boot - 1)])
    if variance > 0:
        se = math.sqrt(variance)
        p_value = float(2 * sps.t.sf(abs(delta) / se, df))
        half = float(sps.t.ppf(0.975, df) * se)
    else:  # every run of each arm identical and no example where the arms differ in a way resampling can see
        se, half = 0.0, 0.0
        p_value = 1.0 if delta == 0 else 0.0
    out.update({"p_value": min(1.0, p_value), "ci_low": delta - half, "ci_high": delta + half, "decidable": True,
                "df": df, "se": se, "var_seed_best": var_a, "var_seed_other": var_b,
                "var_test": v_test})
    out["method"] = (f"Welch t over {n_a} vs {n_b} independent seeds (df {df:.1f}, Welch–Satterthwaite): variance "
                     f"= seed variance of each arm / seeds + test-set variance of the seed-averaged Δ "
                     f"({n_boot} example bootstraps)")
    return out


def compare_with_fixed(y_true: np.ndarray, preds_arm: Mapping[Hashable, np.ndarray], pred_fixed: np.ndarray,
                       metric: CountMetricLike, n_boot: int = 10_000, seed: int = 0) -> dict:
    """A fine-tuned arm (several seeds) against a deterministic model (one prediction vector: the TF-IDF baseline).

    The same decomposition as `seed_aware_compare` with the fixed model's seed variance 0: Var(Δ) = s²_arm / n_arm
    + V_test, V_test the test-set variance of the seed-averaged Δ (count bootstrap over test examples, the arm's
    seed × example noise removed), df by Welch–Satterthwaite. With one seed of the arm there is no seed variance to
    estimate: the test is the bootstrap over test examples alone (labelled so). `delta` = mean over the arm's seeds
    − the fixed model's score (> 0: the arm is better). Returns {"delta", "p_value", "ci_low", "ci_high", "se",
    "df", "seeds", "n_boot", "method"}.
    """
    y = np.asarray(y_true)
    counts_arm = _run_counts(y, preds_arm, metric, "arm")
    counts_fixed = _run_counts(y, {0: pred_fixed}, metric, "fixed model")
    n_a = len(counts_arm)
    if n_a == 0:
        raise UnfreezeError("compare_with_fixed: the arm has no runs; pass at least one prediction vector")
    scores_a = np.asarray(metric.from_totals(counts_arm.sum(1)), dtype=float)
    score_f = float(np.asarray(metric.from_totals(counts_fixed.sum(1)), dtype=float)[0])
    delta = float(scores_a.mean() - score_f)
    boot = _bootstrap_scores(np.concatenate([counts_arm, counts_fixed]), metric, n_boot, seed)
    boot_a, boot_f = boot[:, :n_a], boot[:, n_a]
    v_boot = float((boot_a.mean(1) - boot_f).var(ddof=1))
    if n_a >= 2:
        n = counts_arm.shape[1]
        noise = float((boot_a - scores_a).var(axis=1, ddof=1).mean())
        v_test = max(v_boot - noise / n_a, 0.0)
        var_a = max(float(scores_a.var(ddof=1)), noise + float(scores_a.var(ddof=1)) / n)
        variance = var_a / n_a + v_test
        df = _satterthwaite([(var_a / n_a, n_a - 1), (v_test, n_boot - 1)])
        method = (f"Welch t, {n_a} seeds vs a deterministic baseline (its seed variance 0; df {df:.1f}): variance = "
                  f"seed variance / seeds + test-set variance of Δ ({n_boot} example bootstraps)")
    else:
        variance, df = v_boot, float(n_boot - 1)
        method = f"1 seed: bootstrap over test examples only ({n_boot} resamples; no seed variance to count)"
    if variance > 0:
        se = math.sqrt(variance)
        p_value = float(min(1.0, 2 * sps.t.sf(abs(delta) / se, df)))
        half = float(sps.t.ppf(0.975, df) * se)
    else:
        se, half, p_value = 0.0, 0.0, 1.0 if delta == 0 else 0.0
    return {"delta": delta, "p_value": p_value, "ci_low": delta - half, "ci_high": delta + half, "se": se,
            "df": df, "seeds": n_a, "n_boot": int(n_boot), "method": method}


def _run_counts(y: np.ndarray, preds: Mapping[Hashable, np.ndarray], metric: CountMetricLike,
                arm: str) -> np.ndarray:
    """(runs, n_examples, d) counts in a fixed key order, so results do not depend on dict insertion order."""
    if len(y) == 0:
        raise UnfreezeError("seed_aware_compare: y_true is empty; pass the test labels of the shared test set")
    rows = []
    for key in sorted(preds, key=repr):
        pred = np.asarray(preds[key])
        if len(pred) != len(y):
            raise UnfreezeError(f"seed_aware_compare: {arm} run {key!r} has {len(pred)} predictions for "
                                f"{len(y)} test labels; every run must predict the same shared test set")
        rows.append(np.asarray(metric.counts(y, pred), dtype=float))
    if not rows:
        return np.zeros((0, len(y), 1))
    return np.stack(rows)


def _bootstrap_scores(counts: np.ndarray, metric: CountMetricLike, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, runs) metric of every run under every resample of the test examples.

    One multinomial weight vector per resample is shared by all runs (examples are drawn once for the whole
    comparison), so the resamples keep the correlation between runs that score the same examples. Examples whose
    counts agree in every run are interchangeable, so when there are few distinct rows (runs mostly agree, as
    fine-tuned seeds do) the weights are drawn per distinct row — multinomial with probabilities row frequency / n,
    the same distribution as drawing examples — and the cost no longer grows with the test-set size.
    """
    runs, n, d = counts.shape
    flat = counts.transpose(1, 0, 2).reshape(n, runs * d)
    rng = np.random.default_rng(seed)
    rows, sizes = _distinct_rows(flat)
    grouped = rows is not None and 4 * len(rows) <= n  # a multinomial draw costs ~2.5 index draws per category
    if grouped:
        flat, probabilities = rows, sizes / n
    width = len(flat)
    chunk = max(1, min(n_boot, 4_000_000 // max(width, runs * d)))
    out = np.empty((n_boot, runs))
    for start in range(0, n_boot, chunk):
        r = min(chunk, n_boot - start)
        if grouped:
            weights = rng.multinomial(n, probabilities, size=r).astype(float)
        else:
            index = rng.integers(0, n, (r, n)) + (np.arange(r) * n)[:, None]
            weights = np.bincount(index.ravel(), minlength=r * n).reshape(r, n).astype(float)
        out[start:start + r] = metric.from_totals((weights @ flat).reshape(r, runs, d))
    return out


def _distinct_rows(flat: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(distinct rows, how many examples have each) — found through a random projection (a 1-D sort instead of a
    slow row-wise one) and verified exactly; (None, None) in the measure-zero case that two rows collide."""
    keys = flat @ np.random.default_rng(0).standard_normal(flat.shape[1])
    _, first, inverse, sizes = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    rows = flat[first]
    if not np.array_equal(rows[inverse.ravel()], flat):
        return None, None
    return rows, sizes


def _satterthwaite(parts: Sequence[tuple[float, float]]) -> float:
    """Welch–Satterthwaite df of a sum of independent variance estimates (value, df); inf when all are zero."""
    total = sum(v for v, _ in parts)
    denominator = sum(v * v / df for v, df in parts if v > 0 and df > 0)
    return float(total * total / denominator) if denominator > 0 else math.inf


# ---------------------------------------------------------------------------------------------------------
# Printing and planning


def format_p(p: float | None, n_boot: int) -> str:
    """A p-value as a report prints it, never claiming more resolution than 1 / n_boot.

    "p < 0.0001" (for n_boot = 10000) when p is below 1 / n_boot — including p = 0 from a bootstrap in which no
    resample crossed zero, which means "smaller than the resampling can resolve", not "zero"; else "p = 0.023"
    (three decimals, two significant digits below 0.001). None → "p n/a" (not decidable).
    """
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p n/a"
    if n_boot < 1:
        raise UnfreezeError(f"format_p: n_boot={n_boot} must be >= 1 (the number of resamples behind p)")
    floor = 1.0 / n_boot
    if p < floor:
        return f"p < {floor:.6g}"
    return f"p = {p:.3f}" if p >= 0.001 else f"p = {p:.2g}"


def seeds_needed(best_scores: Sequence[float], other_scores: Sequence[float], test_var: float = 0.0,
                 alpha: float = 0.05, power: float = 0.8, max_seeds: int = 50) -> dict:
    """Roughly how many seeds per arm would make the observed Δ detectable at `power` by `seed_aware_compare`.

    Takes the observed Δ and per-seed variances at face value (a planning figure, not a guarantee: with 3 seeds
    the variances themselves are rough) and `test_var`, the test-set variance of Δ (`var_test` from
    `seed_aware_compare`), which more seeds do not shrink — so a Δ below the test-set noise is never resolvable.
    Power from the noncentral t with Welch–Satterthwaite df, k = 3 … max_seeds seeds per arm (3 is the fewest the
    test accepts). Returns {"seeds": int | None, "text": str}.
    """
    a = np.asarray([v for v in best_scores if v is not None and np.isfinite(v)], dtype=float)
    b = np.asarray([v for v in other_scores if v is not None and np.isfinite(v)], dtype=float)
    if len(a) < 2 or len(b) < 2:
        return {"seeds": None, "text": "needs ≥ 2 seeds per arm to estimate the seed variance"}
    delta = abs(float(a.mean() - b.mean()))
    if delta == 0:
        return {"seeds": None, "text": "Δ 0: no number of seeds detects a zero difference"}
    var_a, var_b = float(a.var(ddof=1)), float(b.var(ddof=1))
    for k in range(3, max_seeds + 1):
        v_a, v_b = var_a / k, var_b / k
        variance = v_a + v_b + max(float(test_var), 0.0)
        if variance == 0:
            achieved = 1.0
        else:
            df = _satterthwaite([(v_a, k - 1), (v_b, k - 1), (float(test_var), math.inf)])
            ncp = delta / math.sqrt(variance)
            crit = sps.t.ppf(1 - alpha / 2, df) if math.isfinite(df) else sps.norm.ppf(1 - alpha / 2)
            achieved = float(sps.nct.sf(crit, df, ncp) + sps.nct.cdf(-crit, df, ncp)) if math.isfinite(df) else \
                float(sps.norm.sf(crit - ncp) + sps.norm.cdf(-crit - ncp))
        if achieved >= power:
            return {"seeds": k, "text": f"≈ {k} seeds per arm would detect Δ {delta:.2g} at {power * 100:.0f} % power"}
    return {"seeds": None, "text": f"Δ {delta:.2g} is below what ≤ {max_seeds} seeds can resolve"}


def bounded_interval(values: Sequence[float], low: float = 0.0, high: float = 1.0) -> tuple[float, float, str]:
    """95 % interval for the mean of per-seed scores of a metric bounded in [low, high], staying inside it.

    The plain t-interval (what `stats.summarize` prints) when it fits; otherwise — few seeds near a bound, e.g.
    accuracies 0.99, 1.0, 0.97 — a t-interval on the logit scale mapped back (widened to contain the sample mean),
    with a note saying so. A note is also given when the interval says little: 2 seeds (t has 1 df, so the interval
    is ±12.7 standard errors) or zero spread. 0 or 1 finite values → (nan, nan, note). Values outside
    [low, high] raise UnfreezeError.
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
    crit = float(sps.t.ppf(0.975, n - 1))
    if sd == 0:
        notes.append(f"all {n} seeds scored the same: zero spread, the interval is no guarantee")
        return mean, mean, "; ".join(notes)
    half = crit * sd / math.sqrt(n)
    if low <= mean - half and mean + half <= high:
        return mean - half, mean + half, "; ".join(notes)
    span = high - low
    eps = 1e-4
    u = np.clip((x - low) / span, eps, 1 - eps)
    z = np.log(u / (1 - u))
    z_half = crit * float(z.std(ddof=1)) / math.sqrt(n)
    lo_u, hi_u = (1 / (1 + math.exp(-(float(z.mean()) + s * z_half))) for s in (-1, 1))
    lo, hi = min(low + span * lo_u, mean), max(low + span * hi_u, mean)
    notes.append(f"t-interval on the logit scale (the plain t-interval left [{low:g}, {high:g}])")
    return lo, hi, "; ".join(notes)
