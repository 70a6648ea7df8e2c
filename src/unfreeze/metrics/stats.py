"""Statistics that keep noise from being read as a finding.

- `summarize`: mean ± std and a t-based 95 % CI over seeds (or folds) — with 2–5 seeds a normal CI is too narrow.
- `compare_with_best`: each arm against the best one with the report's family (`decide.compare_family`: seed
  variance + the finite test set, paired when the arms share seed numbers, intervals simultaneous over every
  pair of arms); the old example-only test survives as a labelled secondary column.
- `paired_bootstrap`: resamples test examples only, pairing seed i of arm A with seed i of arm B — calibrated only
  when seeds do not differ in skill (docs/statistics.md), so it never decides a mark.
- `mcnemar`: exact test for a single pair of prediction vectors, when the metric is accuracy.
- `holm`: Holm–Bonferroni adjusted p-values (`compare.holm`; racing and the former rule use it).
The best arm is always chosen on *validation*; its comparison with others is on test.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import stats as sps

from unfreeze.metrics.compare import bootstrap_scores, holm, score_split
from unfreeze.metrics.counts import CountMetric
from unfreeze.metrics.decide import compare_family

__all__ = ["accuracy_counts", "best_arm", "compare_with_best", "holm", "mcnemar", "paired_bootstrap", "summarize",
           "test_set_only"]


def summarize(values: Sequence[float]) -> dict:
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return {"mean": float("nan"), "std": float("nan"), "n": 0, "ci_low": float("nan"), "ci_high": float("nan")}
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    if n > 1:
        half = float(sps.t.ppf(0.975, n - 1) * std / np.sqrt(n))
    else:
        half = float("nan")
    return {"mean": mean, "std": std, "n": n, "ci_low": mean - half, "ci_high": mean + half}


def paired_bootstrap(y_true: np.ndarray, preds_a: list[np.ndarray], preds_b: list[np.ndarray],
                     metric: Callable[[np.ndarray, np.ndarray], float], n_boot: int = 1000, seed: int = 0) -> dict:
    """Δ = mean over paired seeds of metric(A) − metric(B), with a bootstrap over test examples.

    The same resampled example indices are used for every seed of both arms, so the test asks "is A better than
    B on this population of examples", not "did seed noise differ". Two-sided p-value from the bootstrap
    distribution of Δ (share of resamples on the other side of zero, doubled).
    """
    k = min(len(preds_a), len(preds_b))
    if k == 0:
        raise ValueError("paired_bootstrap needs at least one prediction vector per arm")
    y = np.asarray(y_true)
    a = [np.asarray(p) for p in preds_a[:k]]
    b = [np.asarray(p) for p in preds_b[:k]]
    rng = np.random.default_rng(seed)
    resamples = [rng.integers(0, len(y), len(y)) for _ in range(n_boot)]
    if hasattr(metric, "from_totals"):  # a CountMetric: every resample is a weighted sum of per-example counts
        observed, boots = _count_deltas(metric, y, a, b, resamples)
    else:
        def delta(index) -> float:
            return float(np.mean([metric(y[index], pa[index]) - metric(y[index], pb[index])
                                  for pa, pb in zip(a, b)]))

        observed = delta(np.arange(len(y)))
        boots = np.array([delta(index) for index in resamples])
    p_value = min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean()))
    if observed == 0 and np.all(boots == 0):
        p_value = 1.0
    low, high = np.percentile(boots, [2.5, 97.5])
    return {"delta": observed, "p_value": float(p_value), "ci_low": float(low), "ci_high": float(high), "pairs": k}


def _count_deltas(metric, y, a, b, resamples, chunk: int = 200) -> tuple[float, np.ndarray]:
    """Observed Δ and Δ per resample; the resamples are the same index draws as the generic path uses."""
    rows_a = [metric.counts(y, p) for p in a]
    rows_b = [metric.counts(y, p) for p in b]

    def deltas(weights: np.ndarray) -> np.ndarray:
        return np.mean([metric.from_totals(weights @ ra) - metric.from_totals(weights @ rb)
                        for ra, rb in zip(rows_a, rows_b)], axis=0)

    observed = float(deltas(np.ones((1, len(y))))[0])
    boots = []
    for start in range(0, len(resamples), chunk):
        weights = np.stack([np.bincount(index, minlength=len(y)) for index in resamples[start:start + chunk]])
        boots.append(deltas(weights.astype(float)))
    return observed, np.concatenate(boots) if boots else np.zeros(0)


def mcnemar(y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Exact McNemar p-value (binomial on the discordant pairs)."""
    y, a, b = map(np.asarray, (y_true, pred_a, pred_b))
    only_a = int(((a == y) & (b != y)).sum())
    only_b = int(((a != y) & (b == y)).sum())
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(sps.binomtest(min(only_a, only_b), n, 0.5).pvalue)


def best_arm(val_means: dict[str, float], lower_is_better: bool = False) -> str:
    """The arm with the best mean *validation* metric (never chosen on test)."""
    pick = min if lower_is_better else max
    return pick(val_means, key=lambda arm: val_means[arm])


def measures_accuracy(metric) -> bool:
    return getattr(metric, "name", getattr(metric, "__name__", "")) in ("accuracy", "accuracy_score")


def accuracy_counts() -> CountMetric:
    """Accuracy as a count metric over any label type: per example (right, 1), so a plain accuracy function given
    to `compare_with_best` gets the seed-aware test too."""
    return CountMetric("accuracy", lambda y, p: np.stack([np.asarray(y) == np.asarray(p), np.ones(len(y))], 1),
                       lambda t: np.divide(t[..., 0], t[..., 1], out=np.zeros(np.shape(t)[:-1]),
                                           where=t[..., 1] != 0))


def test_set_only(y_true, best_runs: dict, other_runs: dict, metric, n_boot: int, seed: int = 0) -> dict | None:
    """The old test, kept as a secondary column: runs paired by key, seeds held fixed, only test examples resampled.

    It ignores seed variance, so it is *not* calibrated when seeds differ in skill (docs/statistics.md) and never
    decides a mark. Exact McNemar for one pair of runs scored by accuracy; else a count bootstrap with `n_boot`
    resamples (one multinomial weight vector shared by every run, as in `compare._bootstrap_scores`).
    """
    common = sorted(set(best_runs) & set(other_runs), key=repr)
    if not common:
        return None
    y = np.asarray(y_true)
    if len(common) == 1 and measures_accuracy(metric):
        return {"p_value": mcnemar(y, best_runs[common[0]], other_runs[common[0]]), "n_boot": None, "pairs": 1,
                "test": "McNemar (exact), test-set only"}
    counts = np.stack([np.asarray(metric.counts(y, np.asarray(runs[k])), dtype=float)
                       for runs in (best_runs, other_runs) for k in common])
    k = len(common)
    totals = metric.from_totals(counts.sum(1))
    observed = float(np.mean(totals[:k]) - np.mean(totals[k:]))
    boots = bootstrap_scores(counts, metric, n_boot, seed)
    deltas = boots[:, :k].mean(1) - boots[:, k:].mean(1)
    p_value = 1.0 if observed == 0 and np.all(deltas == 0) else \
        min(1.0, 2 * min(float((deltas <= 0).mean()), float((deltas >= 0).mean())))
    return {"p_value": p_value, "n_boot": n_boot, "pairs": k,
            "test": f"paired bootstrap over test examples only ({k} seed pairs, {n_boot} resamples)"}


def compare_with_best(best: str, predictions: dict[str, dict | list[np.ndarray]], y_true: np.ndarray,
                      metric: Callable, n_boot: int = 10_000, alpha: float = 0.05, min_seeds: int = 3,
                      secondary: bool = True) -> dict[str, dict]:
    """Each other arm vs `best` with the report's comparison family (`decide.compare_family`): the seed is the
    unit (folds of a seed averaged), paired when both arms ran the same seed numbers, variance = seed variance +
    the finite test set, marks where the interval simultaneous over every pair of decidable arms excludes 0.

    `predictions[arm]` maps a run key (`(seed, fold)` or a seed) to its test predictions (a list is keyed by
    position = seed). Arms with fewer than `min_seeds` seeds keep Δ and say "n seeds: no seed-aware test".
    `worse` / `better` say on which side a significant gap lies. With `secondary`, each row also carries
    `test_set_only`: the old example-only test (runs paired by key), for reading, never for the marks.
    `metric` must be a count metric (`metrics.counts`) or an accuracy function; anything else gets Δ only.
    """
    keyed = {arm: dict(enumerate(p)) if isinstance(p, (list, tuple)) else dict(p) for arm, p in predictions.items()}
    counted = metric if hasattr(metric, "from_totals") else accuracy_counts() if measures_accuracy(metric) else None
    if not keyed.get(best):
        return {}
    keyed = {arm: runs for arm, runs in keyed.items() if runs}
    if counted is None:
        rows = {}
        for arm, runs in keyed.items():
            if arm != best:
                delta = float(np.mean([metric(y_true, p) for p in keyed[best].values()])
                              - np.mean([metric(y_true, p) for p in runs.values()]))
                rows[arm] = {"delta": delta, "p_value": None, "p_holm": None, "decidable": False,
                             "significant": False, "worse": False, "better": False, "seeds_best": len(keyed[best]),
                             "seeds_other": len(runs), "method": f"no seed-aware test: "
                             f"{getattr(metric, '__name__', metric)} is not a sum of per-example counts"}
                rows[arm]["test"] = rows[arm]["method"]
    else:
        scored, _ = score_split(y_true, keyed, counted, n_boot)
        rows, _ = compare_family(scored, best, alpha, min_seeds, n_boot)
    for arm, row in rows.items():
        row["test_set_only"] = test_set_only(y_true, keyed[best], keyed[arm], counted, n_boot) \
            if secondary and counted is not None else None
    return rows
