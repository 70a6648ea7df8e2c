"""Simulated studies for calibrating `unfreeze.metrics.compare.seed_aware_compare` (imported by
tests/test_calibration.py; run for the tables in docs/statistics.md).

Generative model (why it is realistic): a test set of n examples with a per-example difficulty b_x ~ N(0, 5²)
shared by every model (so different seeds get mostly the same examples wrong, as fine-tuned seeds do), plus an
arm-specific per-example offset c_arm,x ~ N(0, 1.5²) (two configurations differ in *which* examples they get
wrong, which is the test-set part of the variance of Δ). A run of an arm is a model with skill θ_i = θ_arm + τ z_i;
it is right on example x with probability sigmoid(θ_i + b_x + c_arm,x), independently across runs. θ_0 gives
expected accuracy 0.8 on the example population; τ is set so that the per-seed expected accuracy has the stated
seed sd. Two seeds of one arm then disagree on ~10 % of examples, two arms on ~13 %. "Equal expected score" means
equal population accuracy: the arms differ only through c_arm (same distribution), so any Δ on a finite test set
is noise.

    PYTHONPATH=src:benchmarks python benchmarks/calibration.py --families 400   # docs/statistics.md, issue #23
    PYTHONPATH=src python benchmarks/calibration.py        # the two-arm tables of the first method (~4 min)
    PYTHONPATH=src:/path/to/deepsig python benchmarks/calibration.py --aso   # also Almost Stochastic Order (+5 min)

`--families N`: the report's whole decision path (`unfreeze calibrate`'s code) under the generative families of
benchmarks/calibration_families.py, N studies per cell, and the rules it was chosen over.
"""
from __future__ import annotations

import argparse
import functools
import math
import os
import time
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small products; shared machine
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq
from scipy.special import expit

from unfreeze.metrics.compare import _bootstrap_scores, seed_aware_compare

SIGMA_DIFFICULTY = 5.0
SIGMA_ARM = 1.5
P0 = 0.8
SEED_SDS = (0.0, 0.005, 0.01, 0.02)
TEST_SIZES = (300, 1000, 3000)
SEED_COUNTS = (3, 5)


# ---------------------------------------------------------------------------------------------------------
# A fast count metric (same protocol as unfreeze.count_metrics.CountMetric) over integer labels 0..k-1


@dataclass
class IntConfusionMetric:
    """Accuracy or macro-F1 from per-example confusion rows, for integer labels (vectorised `counts`)."""
    name: str
    k: int

    def counts(self, y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
        rows = np.zeros((len(y_true), self.k * self.k))
        rows[np.arange(len(y_true)), y_true * self.k + y_pred] = 1.0
        return rows

    def from_totals(self, totals: np.ndarray) -> np.ndarray:
        cm = np.asarray(totals, dtype=float).reshape(*np.shape(totals)[:-1], self.k, self.k)
        tp = np.diagonal(cm, axis1=-2, axis2=-1)
        if self.name == "accuracy":
            return _div(tp.sum(-1), cm.sum((-2, -1)))
        return _div(2 * tp, cm.sum(-2) + cm.sum(-1)).mean(-1)  # f1_macro, zero_division=0

    def __call__(self, y_true, y_pred) -> float:
        return float(self.from_totals(self.counts(y_true, y_pred).sum(0)))


def _div(num, den):
    num, den = np.broadcast_arrays(np.asarray(num, dtype=float), np.asarray(den, dtype=float))
    out = np.zeros(num.shape)
    np.divide(num, den, out=out, where=den != 0)
    return out


# ---------------------------------------------------------------------------------------------------------
# The generative model


@functools.cache
def _population() -> tuple[np.ndarray, float, float]:
    rng = np.random.default_rng(12345)
    logits = rng.normal(0, SIGMA_DIFFICULTY, 200_000) + rng.normal(0, SIGMA_ARM, 200_000)
    theta0 = brentq(lambda t: expit(t + logits).mean() - P0, -10, 20)
    p = expit(theta0 + logits)
    return logits, float(theta0), float((p * (1 - p)).mean())  # slope d accuracy / d θ at θ0


@functools.cache
def theta_shift(delta_acc: float) -> float:
    """θ offset that lowers the population accuracy of an arm by `delta_acc`."""
    logits, theta0, _ = _population()
    if delta_acc == 0:
        return 0.0
    return float(theta0 - brentq(lambda t: expit(t + logits).mean() - (P0 - delta_acc), -10, 20))


def simulate_study(rng: np.random.Generator, n: int, seeds_best: int, seeds_other: int, seed_sd: float,
                   delta_acc: float = 0.0, k: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y (n,), preds_best (seeds_best, n), preds_other (seeds_other, n)); the other arm's expected accuracy is
    `delta_acc` below the best arm's. Wrong predictions pick a uniformly random wrong class."""
    _, theta0, slope = _population()
    tau = seed_sd / slope
    difficulty = rng.normal(0, SIGMA_DIFFICULTY, n)
    y = rng.integers(0, k, n)

    def arm(runs: int, theta: float) -> np.ndarray:
        logit = theta + tau * rng.standard_normal((runs, 1)) + difficulty + rng.normal(0, SIGMA_ARM, n)
        right = rng.random((runs, n)) < expit(logit)
        wrong = (y + rng.integers(1, k, (runs, n))) % k if k > 2 else 1 - y
        return np.where(right, y, wrong)

    return y, arm(seeds_best, theta0), arm(seeds_other, theta0 - theta_shift(delta_acc))


# ---------------------------------------------------------------------------------------------------------
# Methods compared (the seed-aware one is the public function; the others are what it replaces / alternatives)


def example_only_bootstrap(y, preds_a, preds_b, metric, n_boot=1000, seed=0, same_draws: bool = True) -> dict:
    """The current unfreeze test (`stats.paired_bootstrap`, count path), vectorised: seeds paired by position,
    test examples resampled, seeds held fixed. Two-sided p = 2 × share of resamples on the other side of zero.
    `same_draws`: the very index draws stats.py makes (for the equality test); False: the same resampling
    distribution drawn the fast way (`compare._bootstrap_scores`), for the simulation tables."""
    k = min(len(preds_a), len(preds_b))
    counts = np.stack([metric.counts(y, p) for p in list(preds_a[:k]) + list(preds_b[:k])])
    if same_draws:
        rng = np.random.default_rng(seed)
        resamples = [rng.integers(0, len(y), len(y)) for _ in range(n_boot)]
        weights = np.stack([np.bincount(i, minlength=len(y)) for i in resamples]).astype(float)
        scores = np.stack([metric.from_totals(weights @ r) for r in counts], axis=1)
    else:
        scores = _bootstrap_scores(counts, metric, n_boot, seed)
    observed = metric.from_totals(counts.sum(1))
    delta = float(observed[:k].mean() - observed[k:].mean())
    boots = scores[:, :k].mean(1) - scores[:, k:].mean(1)
    p = min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean()))
    if delta == 0 and np.all(boots == 0):
        p = 1.0
    return {"delta": delta, "p_value": float(p)}


def alternatives(y, preds_a, preds_b, metric, n_boot, seed) -> dict[str, float]:
    """p-values of alternatives from one set of shared-weight example resamples:
    - two_level: plain hierarchical bootstrap (seeds resampled with replacement within each arm + examples);
    - welch_seeds: scipy Welch t on per-seed scores (ignores the finite test set);
    - no_floor: the seed-aware t with the plain sample variance of the per-seed scores (no disagreement floor);
    - uncorrected: no_floor, and the seed × example noise left in the bootstrap variance (counted twice)."""
    n_a, n_b = len(preds_a), len(preds_b)
    counts = np.stack([metric.counts(y, p) for p in list(preds_a) + list(preds_b)])
    scores = metric.from_totals(counts.sum(1))
    boot = _bootstrap_scores(counts, metric, n_boot, seed)
    rng = np.random.default_rng(seed + 1)
    pick_a = rng.integers(0, n_a, (n_boot, n_a))
    pick_b = n_a + rng.integers(0, n_b, (n_boot, n_b))
    rows = np.arange(n_boot)[:, None]
    two = boot[rows, pick_a].mean(1) - boot[rows, pick_b].mean(1)
    p_two = min(1.0, 2 * min((two <= 0).mean(), (two >= 0).mean()))
    sa, sb = scores[:n_a], scores[n_a:]
    delta = sa.mean() - sb.mean()
    with warnings.catch_warnings():  # near-identical per-seed scores: scipy warns, the p-value is still usable
        warnings.simplefilter("ignore", RuntimeWarning)
        p_welch = float(sps.ttest_ind(sa, sb, equal_var=False).pvalue) if (sa.var() + sb.var()) > 0 else 1.0
    va, vb = sa.var(ddof=1) / n_a, sb.var(ddof=1) / n_b
    v_boot = (boot[:, :n_a].mean(1) - boot[:, n_a:].mean(1)).var(ddof=1)
    noise = [(boot[:, idx] - scores[idx]).var(axis=1, ddof=1).mean() / len(idx)
             for idx in (np.arange(n_a), np.arange(n_a, n_a + n_b))]

    def t_p(vt: float) -> float:
        var = va + vb + vt
        df = var ** 2 / sum(v * v / d for v, d in ((va, n_a - 1), (vb, n_b - 1), (vt, n_boot - 1)) if v > 0)
        return float(2 * sps.t.sf(abs(delta) / math.sqrt(var), df)) if var > 0 else 1.0

    return {"two_level": float(p_two), "welch_seeds": 1.0 if math.isnan(p_welch) else p_welch,
            "no_floor": t_p(max(v_boot - noise[0] - noise[1], 0.0)), "uncorrected": t_p(v_boot)}


def rejection_rate(n_studies: int, n: int, seeds: int, seed_sd: float, delta_acc: float = 0.0, n_boot: int = 100,
                   rng_seed: int = 0, metric=None, k: int = 2, extra: bool = False, old: bool = False) -> dict:
    """Share of simulated studies with p < 0.05 (any mark), with p < 0.01 (`seed_aware_01`), and with a †
    (p < 0.05 and the other arm lower: `dagger`); `old` / `extra` add the other methods' p < 0.05 rates."""
    metric = metric or IntConfusionMetric("accuracy", k)
    rng = np.random.default_rng(rng_seed)
    hits: dict[str, list[bool]] = {"seed_aware": [], "seed_aware_01": [], "dagger": []}
    for i in range(n_studies):
        y, a, b = simulate_study(rng, n, seeds, seeds, seed_sd, delta_acc, k)
        res = seed_aware_compare(y, dict(enumerate(a)), dict(enumerate(b)), metric, n_boot=n_boot, seed=i)
        hits["seed_aware"].append(res["p_value"] < 0.05)
        hits["seed_aware_01"].append(res["p_value"] < 0.01)
        hits["dagger"].append(res["p_value"] < 0.05 and res["delta"] > 0)
        if old:
            hits.setdefault("old_example_only", []).append(
                example_only_bootstrap(y, a, b, metric, n_boot=n_boot, seed=i, same_draws=False)["p_value"] < 0.05)
        if extra:
            for name, p in alternatives(y, a, b, metric, n_boot, i).items():
                hits.setdefault(name, []).append(p < 0.05)
    return {name: float(np.mean(v)) for name, v in hits.items()}


def mc_se(rate: float, n_studies: int) -> float:
    return math.sqrt(rate * (1 - rate) / n_studies)


# ---------------------------------------------------------------------------------------------------------
# Tables


def aso_rate(n_studies: int, n: int, seeds: int, seed_sd: float, delta_acc: float = 0.0, tau: float = 0.2) -> float:
    """Share of studies where ASO (deepsig) says the best arm dominates the other (ε_min < τ) or vice versa."""
    from deepsig import aso

    metric = IntConfusionMetric("accuracy", 2)
    rng = np.random.default_rng(7)
    hits = []
    for i in range(n_studies):
        y, a, b = simulate_study(rng, n, seeds, seeds, seed_sd, delta_acc)
        sa, sb = [metric(y, p) for p in a], [metric(y, p) for p in b]
        e_ab = aso(sa, sb, num_bootstrap_iterations=200, show_progress=False, seed=i)
        e_ba = aso(sb, sa, num_bootstrap_iterations=200, show_progress=False, seed=i)
        hits.append(min(e_ab, e_ba) < tau)
    return float(np.mean(hits))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", type=int, default=0, help="studies per cell of the decision-path tables")
    parser.add_argument("--levels", type=int, default=0, help="studies per row of the every-level table")
    parser.add_argument("--unseen", type=int, default=0, help="studies per scenario of the unseen family")
    parser.add_argument("--gaussian", type=int, default=0, help="draws per share of the Gaussian df table")
    parser.add_argument("--pooled", type=int, default=0, help="draws per row of the pooled-variance table")
    parser.add_argument("--part", choices=["all", "table", "rules"], default="all",
                        help="with --families: the calibration table, or the rules compared + pairing")
    parser.add_argument("--studies", type=int, default=2000, help="studies per cell of the false-positive table")
    parser.add_argument("--other-studies", type=int, default=1000, help="studies per cell of the other tables")
    parser.add_argument("--n-boot", type=int, default=100, help="example resamples per comparison")
    parser.add_argument("--aso", action="store_true")
    args = parser.parse_args(argv)
    started = time.time()
    from calibration_tables import (family_tables, gaussian_levels, levels_table, paired_gain, pooled_levels,
                                    unseen_table)

    if args.gaussian:
        gaussian_levels(args.gaussian)
    if args.pooled:
        pooled_levels(args.pooled)
    if args.levels:
        levels_table(args.levels)
    if args.unseen:
        unseen_table(args.unseen, 200)
    if args.families:
        family_tables(args.families, 200, args.part)
        if args.part != "table":
            paired_gain(args.families, 200)
    if args.families or args.levels or args.unseen or args.gaussian or args.pooled:
        print(f"\n({time.time() - started:.0f} s)")
        return
    s, s2, nb = args.studies, args.other_studies, args.n_boot
    print(f"# Two arms of equal expected accuracy {P0}, n_boot {nb} per comparison. Rates of p < 0.05 (two-sided, "
          f"any mark) unless stated. MC SE at 0.05: {mc_se(0.05, s):.4f} ({s} studies), "
          f"{mc_se(0.05, s2):.4f} ({s2} studies); at 0.01: {mc_se(0.01, s):.4f} ({s} studies)\n")
    print(f"## False-positive rate, {s} studies per cell: seed-aware p<0.05 / p<0.01 [old example-only bootstrap "
          "p<0.05]\n")
    print("| seeds | seed sd | n=" + " | n=".join(map(str, TEST_SIZES)) + " |")
    print("|---|---|" + "---|" * len(TEST_SIZES))
    cell = 0
    for seeds in SEED_COUNTS:
        for sd in SEED_SDS:
            row = []
            for n in TEST_SIZES:
                cell += 1
                r = rejection_rate(s, n, seeds, sd, n_boot=nb, rng_seed=cell, old=True)
                row.append(f"{r['seed_aware']:.3f} / {r['seed_aware_01']:.3f} [{r['old_example_only']:.3f}]")
            print(f"| {seeds} | {sd} | " + " | ".join(row) + " |", flush=True)
    print(f"\n## Alternatives at n=1000, {s2} studies per cell (false-positive rate, p < 0.05)\n")
    names = ["seed_aware", "no_floor", "uncorrected", "two_level", "welch_seeds", "old_example_only"]
    print("| seeds | seed sd | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for seeds in SEED_COUNTS:
        for sd in (0.0, 0.01, 0.02):
            cell += 1
            r = rejection_rate(s2, 1000, seeds, sd, n_boot=nb, rng_seed=cell, extra=True, old=True)
            print(f"| {seeds} | {sd} | " + " | ".join(f"{r[m]:.3f}" for m in names) + " |", flush=True)
    print(f"\n## Power, {s2} studies per cell: † rate (other arm significantly worse, p < 0.05) when it is truly "
          "worse by Δ accuracy; alternatives: any mark, p < 0.05\n")
    print("| seeds | seed sd | n | Δ | seed-aware † | no_floor | uncorrected |")
    print("|---|---|---|---|---|---|---|")
    for seeds, sd, n, delta in [(3, 0.01, 1000, 0.03), (5, 0.01, 1000, 0.03), (5, 0.01, 1000, 0.02),
                                (3, 0.005, 1000, 0.02), (5, 0.005, 3000, 0.01), (10, 0.01, 1000, 0.02)]:
        cell += 1
        r = rejection_rate(s2, n, seeds, sd, delta, n_boot=nb, rng_seed=cell, extra=True)
        print(f"| {seeds} | {sd} | {n} | {delta} | {r['dagger']:.3f} | {r['no_floor']:.3f} | "
              f"{r['uncorrected']:.3f} |", flush=True)
    print(f"\n## Checks, {s2} studies per cell: macro-F1 (3 classes) and n_boot 1000, n=1000, false-positive rate "
          "p<0.05 / p<0.01\n")
    print("| metric | n_boot | seeds | seed sd | seed-aware |")
    print("|---|---|---|---|---|")
    for name, boots, seeds, sd in [("f1_macro", nb, 3, 0.0), ("f1_macro", nb, 3, 0.01), ("f1_macro", nb, 5, 0.01),
                                   ("accuracy", 1000, 3, 0.01)]:
        cell += 1
        k = 3 if name == "f1_macro" else 2
        r = rejection_rate(s2, 1000, seeds, sd, n_boot=boots, rng_seed=cell, k=k, metric=IntConfusionMetric(name, k))
        print(f"| {name} | {boots} | {seeds} | {sd} | {r['seed_aware']:.3f} / {r['seed_aware_01']:.3f} |", flush=True)
    if args.aso:
        print("\n## ASO (deepsig, ε_min < 0.2 either direction), 100 studies per line, n=1000 (~100 s a line)\n")
        for seeds, sd, delta in [(3, 0.01, 0.0), (5, 0.01, 0.0), (5, 0.01, 0.03)]:
            print(f"- {seeds} seeds, seed sd {sd}, Δ {delta}: {aso_rate(100, 1000, seeds, sd, delta):.3f}", flush=True)
    print(f"\n({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
