"""Seed-aware comparisons on a shared test set: the building blocks of the report's marks and verdicts.

Why: an arm's test score moves for two reasons, the finite test set and training randomness (seed, data order,
head init). A bootstrap over test examples with the seeds held fixed only sees the first. Every comparison here
treats the *seed* as the unit that was drawn (the folds of one seed are a cluster: their runs are averaged into
one score of that seed, so every seed count and every variance counts seeds, never folds) and adds the finite
test set:

    Var(Δ) = V_seed + V_test

- independent seeds (the arms ran different seed numbers): V_seed = s²_a / n_a + s²_b / n_b, s² an arm's
  per-seed score variance;
- shared seed numbers (every arm ran the same seeds): the comparison is paired, V_seed = s²_d / n with s²_d the
  variance of the per-seed differences. This estimates the shared seed effect (a seed that is lucky in every arm)
  instead of assuming it away; when there is none the paired test is still exact (it only spends no degrees of
  freedom that the rule below would grant anyway), and when there is one it removes it from the variance;
- each s² is floored at the variance its seeds' disagreements on single examples imply (Σ_x per-example seed
  variance / n², from all n examples), so three seeds that agree by chance cannot make it collapse;
- V_test = the test-set variance of the seed-averaged Δ from a count bootstrap over test examples (one
  multinomial weight vector per resample shared by every run) minus the seed × example noise already in s².

Degrees of freedom (`seed_test_df`): the seed term is an estimate with few df (seeds − 1 when paired, else
min(n_a, n_b) − 1), the test-set term is nearly known (thousands of examples). Plain Welch–Satterthwaite df over
both are an estimate from the same few seeds: when the seed variance comes out small by chance the test-set term
looks dominant and lends the statistic df it does not have (1.6–7 × the nominal rate at α = 0.05 … 0.0033, the
levels a multiplicity correction applies). The report's rule ("upper") computes Satterthwaite's formula from a
one-sided 95 % upper confidence bound of each seed term instead (χ² with its own df), so a seed variance that
is small by chance cannot lend df, and never goes below the seed df: where the seed term dominates it is the
seeds' t (exact), where the test-set term dominates it approaches the normal. The confidence, 0.95 and
1 − 10 · level below level 0.005 (`planning.seed_var_confidence`), keeps P(p ≤ u) ≤ u at every u from 0.05 down
to 0.0005 and every share of the seed term with 3, 4, 5 or 10 seeds (docs/statistics.md); so the df depend on the
level tested (`contrast(..., level=)`, the per-pair level of the correction). `df_rule="min"` (the seeds' df for
everything, the rule before), `"satterthwaite"` (seed-racing) and `"welch"` (the first rule) remain for
comparison.

Every function is pure (no I/O, deterministic for a given `seed`) and imports numpy / scipy only.
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import stats as sps

from unfreeze.errors import UnfreezeError
from unfreeze.metrics.planning import DF_RULE, DF_RULES, seed_test_df  # noqa: F401 — re-exported
from unfreeze.metrics.planning import bounded_interval  # noqa: F401 — re-exported (report, tests)

__all__ = [
    "CountMetricLike",
    "SeedScores",
    "bootstrap_scores",
    "bounded_interval",
    "compare_with_fixed",
    "contrast",
    "contrast_fixed",
    "format_p",
    "holm",
    "score_split",
    "seed_aware_compare",
    "seed_groups",
    "seed_test_df",
    "t_decision",
]


class CountMetricLike(Protocol):
    """What `count_metrics.CountMetric` provides: per-example additive counts and the metric of summed counts."""

    def counts(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray: ...  # (n_examples, d)

    def from_totals(self, totals: np.ndarray) -> np.ndarray: ...  # (..., d) -> (...)


@dataclass(frozen=True)
class SeedScores:
    """One arm on one split: per-seed scores (folds of a seed averaged) and the same under every resample."""
    seeds: tuple  # seed ids, sorted
    scores: np.ndarray  # (S,)
    boot: np.ndarray  # (n_boot, S), one shared example resample per row
    n_examples: int
    runs: int  # runs behind the seeds (seeds × folds)

    @property
    def n(self) -> int:
        return len(self.seeds)


def seed_of(key: Hashable) -> Hashable:
    """A run key `(seed, fold)` → its seed; any other key is its own seed."""
    return key[0] if isinstance(key, tuple) and key else key


# ---------------------------------------------------------------------------------------------------------
# Scoring a split once for every comparison


def score_split(y_true: np.ndarray, arms: Mapping[Hashable, Mapping[Hashable, np.ndarray]],
                metric: CountMetricLike, n_boot: int, seed: int = 0,
                fixed: Mapping[Hashable, np.ndarray] | None = None
                ) -> tuple[dict[Hashable, SeedScores], dict[Hashable, tuple[float, np.ndarray]]]:
    """({arm: SeedScores}, {name: (score, (n_boot,) resampled scores)}) for every arm's runs (`arms[arm]` maps
    run key → predictions) and every deterministic model in `fixed` (e.g. the baseline), all under the same
    example resamples, so any two of them can be contrasted."""
    if n_boot < 2:
        raise UnfreezeError(f"score_split: n_boot={n_boot} is too small; pass n_boot >= 2 (e.g. 10000)")
    y = np.asarray(y_true)
    blocks, owners = [], []
    for arm in arms:
        keys = sorted(arms[arm], key=repr)
        blocks.append(_run_counts(y, {k: arms[arm][k] for k in keys}, metric, f"arm {arm!r}"))
        owners.append((arm, keys))
    for name, pred in (fixed or {}).items():
        blocks.append(_run_counts(y, {0: pred}, metric, f"{name}"))
    if not blocks:
        return {}, {}
    counts = np.concatenate(blocks)
    scores = np.asarray(metric.from_totals(counts.sum(1)), dtype=float)
    boot = bootstrap_scores(counts, metric, n_boot, seed)
    out, start = {}, 0
    for arm, keys in owners:
        out[arm] = _by_seed(keys, scores[start:start + len(keys)], boot[:, start:start + len(keys)], len(y))
        start += len(keys)
    fixed_out = {}
    for name in fixed or {}:
        fixed_out[name] = (float(scores[start]), boot[:, start])
        start += 1
    return out, fixed_out


def seed_groups(keys: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """{seed: positions of its runs in `keys`}, seeds sorted (run keys `(seed, fold)`: the folds of a seed are one
    cluster). The one grouping behind `SeedScores` and `decide.seed_means`."""
    groups: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(seed_of(key), []).append(i)
    return {s: groups[s] for s in sorted(groups, key=repr)}


def _by_seed(keys: list, scores: np.ndarray, boot: np.ndarray, n: int) -> SeedScores:
    groups = seed_groups(keys)
    seeds = list(groups)
    return SeedScores(tuple(seeds), np.array([scores[groups[s]].mean() for s in seeds]),
                      np.stack([boot[:, groups[s]].mean(1) for s in seeds], 1) if seeds else boot[:, :0], n,
                      len(keys))


# ---------------------------------------------------------------------------------------------------------
# Contrasts and the t decision


def contrast(a: SeedScores, b: SeedScores, paired: bool | None = None, df_rule: str = DF_RULE,
             level: float = 0.05) -> dict:
    """Δ = mean over a's seeds − mean over b's seeds, its standard error and df (see the module docstring).

    `paired` None: paired exactly when both arms ran the same seed numbers. Needs ≥ 2 seeds per arm. Returns
    {"delta", "se", "df", "paired", "var_seed_best", "var_seed_other", "var_test", "seeds_best", "seeds_other"}
    (for a paired contrast both var_seed_* hold the variance of the per-seed differences).
    """
    if min(a.n, b.n) < 2:
        raise UnfreezeError(f"contrast: {a.n} vs {b.n} seeds; a seed variance needs at least 2 seeds per arm")
    paired = a.seeds == b.seeds if paired is None else paired
    n_boot = a.boot.shape[0]
    if paired:
        d, d_boot = a.scores - b.scores, a.boot - b.boot
        noise = float((d_boot - d).var(axis=1, ddof=1).mean())
        var_d = _floored(d, noise, a.n_examples)
        parts = [(var_d / a.n, a.n - 1)]
        v_test = max(float(d_boot.mean(1).var(ddof=1)) - noise / a.n, 0.0)
        var_a = var_b = var_d
    else:
        noise_a = float((a.boot - a.scores).var(axis=1, ddof=1).mean())
        noise_b = float((b.boot - b.scores).var(axis=1, ddof=1).mean())
        var_a, var_b = _floored(a.scores, noise_a, a.n_examples), _floored(b.scores, noise_b, b.n_examples)
        parts = [(var_a / a.n, a.n - 1), (var_b / b.n, b.n - 1)]
        v_boot = float((a.boot.mean(1) - b.boot.mean(1)).var(ddof=1))
        v_test = max(v_boot - noise_a / a.n - noise_b / b.n, 0.0)
    v_seed = sum(v for v, _ in parts)
    return {"delta": float(a.scores.mean() - b.scores.mean()), "se": math.sqrt(v_seed + v_test),
            "df": seed_test_df(parts, v_test, n_boot, df_rule, level), "paired": bool(paired),
            "var_seed_best": var_a, "var_seed_other": var_b, "var_test": v_test, "seeds_best": a.n,
            "seeds_other": b.n}


def contrast_fixed(a: SeedScores, score: float, boot: np.ndarray, df_rule: str = DF_RULE,
                   level: float = 0.05) -> dict:
    """Δ = mean over a's seeds − a deterministic model's score (its seed variance is 0; one seed of `a` gives
    no seed variance and is refused: one seed cannot tell a gap from a lucky seed)."""
    if a.n < 2:
        raise UnfreezeError(f"contrast_fixed: {a.n} seed; a seed variance needs at least 2 seeds")
    noise = float((a.boot - a.scores).var(axis=1, ddof=1).mean())
    var_a = _floored(a.scores, noise, a.n_examples)
    v_seed = var_a / a.n
    v_test = max(float((a.boot.mean(1) - boot).var(ddof=1)) - noise / a.n, 0.0)
    return {"delta": float(a.scores.mean() - score), "se": math.sqrt(v_seed + v_test),
            "df": seed_test_df([(v_seed, a.n - 1)], v_test, a.boot.shape[0], df_rule, level), "paired": False,
            "var_seed_best": var_a, "var_seed_other": 0.0, "var_test": v_test, "seeds_best": a.n, "seeds_other": 1}


def t_decision(delta: float, se: float, df: float, alpha: float) -> dict:
    """Two-sided p and the (1 − alpha) interval of a t statistic; se 0 (every run identical): p 1 when Δ is 0."""
    if se > 0:
        p = float(min(1.0, 2 * sps.t.sf(abs(delta) / se, df)))
        half = float(sps.t.ppf(1 - alpha / 2, df)) * se
    else:
        p, half = (1.0 if delta == 0 else 0.0), 0.0
    return {"p_value": p, "ci_low": delta - half, "ci_high": delta + half}


def _bounded(decision: dict) -> dict:
    """A Δ of two count metrics (proportions in [0, 1]) lies in [−1, 1]: the interval is cut there."""
    return {**decision, "ci_low": max(decision["ci_low"], -1.0), "ci_high": min(decision["ci_high"], 1.0)}


def _floored(scores: np.ndarray, noise: float, n_examples: int) -> float:
    """Sample variance of per-seed scores, floored at what the seeds' per-example disagreements imply."""
    s2 = float(scores.var(ddof=1))
    return max(s2, noise + s2 / n_examples)


# ---------------------------------------------------------------------------------------------------------
# Two-arm entry points (racing, benchmarks, tests); the report's family of comparisons is `metrics.decide`


def seed_aware_compare(y_true: np.ndarray, preds_best: Mapping[Hashable, np.ndarray],
                       preds_other: Mapping[Hashable, np.ndarray], metric: CountMetricLike, n_boot: int = 10_000,
                       seed: int = 0, min_seeds: int = 3, alpha: float = 0.05, paired: bool | None = None,
                       df_rule: str = DF_RULE) -> dict:
    """Is the other arm worse / better than the best arm, counting seed variance *and* the finite test set?

    `preds_*` map a run key (`(seed, fold)`, or a seed) to test predictions. Returns {"delta" (best − other),
    "p_value" (two-sided, unadjusted), "ci_low", "ci_high" (a 1 − alpha interval), "method", "seeds_best",
    "seeds_other" (seeds, folds averaged), "n_boot", "p_floor", "decidable", "df", "se", "paired",
    "var_seed_best", "var_seed_other", "var_test"}. Not decidable (p / CI None) below `min_seeds` seeds.
    """
    if min_seeds < 2:
        raise UnfreezeError(f"seed_aware_compare: min_seeds={min_seeds} cannot estimate a seed variance; use >= 2")
    arms, _ = score_split(y_true, {"best": preds_best, "other": preds_other}, metric, n_boot, seed)
    return finish(arms["best"], arms["other"], n_boot, min_seeds, alpha, paired, df_rule)


def finish(a: SeedScores, b: SeedScores, n_boot: int, min_seeds: int, alpha: float, paired: bool | None = None,
           df_rule: str = DF_RULE) -> dict:
    """The result dict of `seed_aware_compare` for two scored arms (shared with `metrics.decide`)."""
    out = {"delta": float(a.scores.mean() - b.scores.mean()), "p_value": None, "ci_low": None, "ci_high": None,
           "seeds_best": a.n, "seeds_other": b.n, "n_boot": int(n_boot), "p_floor": 1.0 / n_boot,
           "decidable": False, "df": None, "se": None, "paired": None, "var_seed_best": None,
           "var_seed_other": None, "var_test": None}
    if min(a.n, b.n) < min_seeds:
        seeds = f"{a.n} seeds" if a.n == b.n else f"{a.n} vs {b.n} seeds"
        out["method"] = f"{seeds}: no seed-aware test (needs ≥ {min_seeds} per arm)"
        return out
    out.update(contrast(a, b, paired, df_rule, alpha))
    out.update(_bounded(t_decision(out["delta"], out["se"], out["df"], alpha)), decidable=True)
    folds = " (folds of a seed averaged)" if max(a.runs - a.n, b.runs - b.n) > 0 else ""
    design = f"paired over {a.n} shared seeds" if out["paired"] else f"{a.n} vs {b.n} independent seeds"
    out["method"] = (f"t, {design}{folds} (df {out['df']:.1f}): variance = seed variance + test-set variance "
                     f"of the seed-averaged Δ ({n_boot} example bootstraps)")
    return out


def compare_with_fixed(y_true: np.ndarray, preds_arm: Mapping[Hashable, np.ndarray], pred_fixed: np.ndarray,
                       metric: CountMetricLike, n_boot: int = 10_000, seed: int = 0, alpha: float = 0.05) -> dict:
    """A fine-tuned arm (several seeds) against a deterministic model (the TF-IDF baseline): Δ = arm − fixed.

    One seed of the arm: no test at all (`decidable` False, p None) — the test-set bootstrap alone would call a
    lucky seed a significant gain (the issue measured 54 % "significantly better" for equal models). Returns
    {"delta", "p_value", "ci_low", "ci_high", "se", "df", "seeds", "n_boot", "decidable", "method"}.
    """
    if not preds_arm:
        raise UnfreezeError("compare_with_fixed: the arm has no runs; pass at least one prediction vector")
    arms, fixed = score_split(y_true, {"arm": preds_arm}, metric, n_boot, seed, {"fixed": pred_fixed})
    return finish_fixed(arms["arm"], *fixed["fixed"], n_boot, alpha)


def finish_fixed(a: SeedScores, score: float, boot: np.ndarray, n_boot: int, alpha: float,
                 min_seeds: int = 2, df_rule: str = DF_RULE) -> dict:
    out = {"delta": float(a.scores.mean() - score), "p_value": None, "ci_low": None, "ci_high": None, "se": None,
           "df": None, "seeds": a.n, "n_boot": int(n_boot), "decidable": False}
    if a.n < min_seeds:
        out["method"] = (f"{a.n} seed{'s' if a.n != 1 else ''}: one seed cannot tell a real gap from a lucky seed"
                         if a.n == 1 else f"{a.n} seeds: no test (needs ≥ {min_seeds})")
        return out
    fixed = contrast_fixed(a, score, boot, df_rule, alpha)
    out.update({k: v for k, v in fixed.items() if k in ("se", "df")}, decidable=True)
    out.update(_bounded(t_decision(out["delta"], out["se"], out["df"], alpha)))
    out["method"] = (f"t, {a.n} seeds vs a deterministic baseline (its seed variance 0; df {out['df']:.1f}): "
                     f"variance = seed variance / seeds + test-set variance of Δ ({n_boot} example bootstraps)")
    return out


def _run_counts(y: np.ndarray, preds: Mapping[Hashable, np.ndarray], metric: CountMetricLike,
                arm: str) -> np.ndarray:
    """(runs, n_examples, d) counts in the mapping's order (callers sort the keys)."""
    if len(y) == 0:
        raise UnfreezeError("seed_aware_compare: y_true is empty; pass the test labels of the shared test set")
    rows = []
    for key, pred in preds.items():
        pred = np.asarray(pred)
        if len(pred) != len(y):
            raise UnfreezeError(f"seed_aware_compare: {arm} run {key!r} has {len(pred)} predictions for "
                                f"{len(y)} test labels; every run must predict the same shared test set")
        rows.append(np.asarray(metric.counts(y, pred), dtype=float))
    if not rows:
        return np.zeros((0, len(y), 1))
    return np.stack(rows)


def bootstrap_scores(counts: np.ndarray, metric: CountMetricLike, n_boot: int, seed: int) -> np.ndarray:
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



_bootstrap_scores = bootstrap_scores  # the name benchmarks and older tests import


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given)."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.empty_like(p)
    running = 0.0
    for rank, idx in enumerate(np.argsort(p)):
        running = max(running, min(1.0, (len(p) - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


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
