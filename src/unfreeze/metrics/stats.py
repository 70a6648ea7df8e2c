"""Statistics that keep noise from being read as a finding.

- `summarize`: mean ± std and a t-based 95 % CI over seeds (or folds) — with 2–5 seeds a normal CI is too narrow.
- `paired_bootstrap`: arms are compared on the *same* test set (splits are fixed across seeds), so the honest
  test resamples test examples and pairs seed i of arm A with seed i of arm B.
- `mcnemar`: exact test for a single pair of prediction vectors, when the metric is accuracy.
- `holm`: several arms compared with the best one → correct for multiple comparisons.
The best arm is always chosen on *validation*; its comparison with others is on test.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from scipy import stats as sps


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


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (same order as given)."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p)
    adjusted = np.empty_like(p)
    running = 0.0
    m = len(p)
    for rank, idx in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[idx]))
        adjusted[idx] = running
    return adjusted.tolist()


def best_arm(val_means: dict[str, float], lower_is_better: bool = False) -> str:
    """The arm with the best mean *validation* metric (never chosen on test)."""
    pick = min if lower_is_better else max
    return pick(val_means, key=lambda arm: val_means[arm])


def measures_accuracy(metric) -> bool:
    return getattr(metric, "name", getattr(metric, "__name__", "")) in ("accuracy", "accuracy_score")


def compare_with_best(best: str, predictions: dict[str, dict | list[np.ndarray]], y_true: np.ndarray,
                      metric: Callable, n_boot: int = 1000, alpha: float = 0.05) -> dict[str, dict]:
    """Each other arm vs the best: paired bootstrap over test examples (exact McNemar when both arms have one run
    and the metric is accuracy — McNemar tests right/wrong counts, which is not what an F1 difference is).

    `predictions[arm]` maps a run key (e.g. `(seed, fold)`) to its test predictions; runs are paired by key, so a
    seed that failed in one arm never pairs seed 0 of one arm with seed 1 of another (a plain list pairs by
    position). `worse` / `better` say on which side a significant gap lies: an arm picked as best on validation
    can still be significantly beaten on test, and that must not be reported as "worse".
    """
    keyed = {arm: dict(enumerate(p)) if isinstance(p, (list, tuple)) else dict(p) for arm, p in predictions.items()}
    rows = {}
    for arm, runs in keyed.items():
        common = sorted(set(runs) & set(keyed[best]), key=repr)
        if arm == best or not common:
            continue
        preds, best_preds = [runs[k] for k in common], [keyed[best][k] for k in common]
        if len(common) == 1 and measures_accuracy(metric):
            p = mcnemar(y_true, best_preds[0], preds[0])
            result = {"delta": metric(y_true, best_preds[0]) - metric(y_true, preds[0]), "p_value": p,
                      "test": "McNemar (exact)", "pairs": 1}
        else:
            result = paired_bootstrap(y_true, best_preds, preds, metric, n_boot=n_boot)
            result["test"] = f"paired bootstrap over test examples ({result['pairs']} seed pairs)"
        rows[arm] = result
    adjusted = holm([r["p_value"] for r in rows.values()])
    for (arm, row), p_holm in zip(rows.items(), adjusted):
        row["p_holm"] = p_holm
        row["significant"] = bool(p_holm < alpha)
        row["worse"] = row["significant"] and row["delta"] > 0
        row["better"] = row["significant"] and row["delta"] < 0
    return rows
