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


def family_tables(studies: int, n_boot: int, part: str = "all") -> None:
    """The tables of docs/statistics.md for issue #23 (decision path × generative families × cells); `part`
    "table" or "rules" prints one of the two (two processes on a busy machine)."""
    from calibration_families import CELLS, FAMILIES, HOLDOUT, HOLDOUT_CELLS

    from unfreeze.metrics.calibrate import calibrate, run_study, summarize

    families = {**FAMILIES, "holdout": HOLDOUT}
    if part in ("all", "table"):
        calibration_table(studies, n_boot, families, CELLS, HOLDOUT_CELLS, calibrate)
    if part == "table":
        return
    rules_table(studies, n_boot, FAMILIES, CELLS, calibrate, run_study, summarize)


def calibration_table(studies, n_boot, families, cells, holdout_cells, calibrate) -> None:
    CELLS, HOLDOUT_CELLS = cells, holdout_cells
    print(f"## Decision path, {studies} studies per cell, n_boot {n_boot}: false-mark rate / false baseline rate "
          f"(power where arms are ≥ 0.02 below); MC SE at 0.05: {mc_se(0.05, studies):.4f}\n")
    print("| cell | what | " + " | ".join(families) + " |")
    print("|---|---|" + "---|" * len(families))
    for i, (name, cell) in enumerate(CELLS.items()):
        cells = []
        for j, (fname, family) in enumerate(families.items()):
            if fname == "holdout" and name not in HOLDOUT_CELLS:
                cells.append("–")
                continue
            r = calibrate(family.simulator(cell), studies, seed=1000 * i + j, n_boot=n_boot)
            text = f"{r['false_mark_rate']:.3f}"
            text += f" / {r['false_baseline_rate']:.3f}" if r["false_baseline_rate"] is not None else ""
            text += f" (power {r['power']:.2f})" if r["power"] is not None else ""
            cells.append(text)
        print(f"| {name} | {cell.note} | " + " | ".join(cells) + " |", flush=True)


def rules_table(studies, n_boot, FAMILIES, CELLS, calibrate, run_study, summarize) -> None:
    rules = {"chosen: all pairs, df from the seed variance's upper bound": {},
             "before (round 2): all pairs, df seeds − 1": {"df_rule": "min"},
             "all pairs, Satterthwaite df": {"df_rule": "satterthwaite"},
             "round 1: Holm vs the pick, Welch df": {"family": "ref", "df_rule": "welch"}}
    print(f"\n## Rules compared (logistic family), {studies} studies per cell: false-mark rate; power "
          "per gap below the top arm\n")
    print("| rule | family | selection | unequal_3to1 | seeds_3v5 | large_test | power: gap 0.02 / 0.03 / 0.05 "
          "(5 seeds) | power_2arms: gap 0.03 |")
    print("|---|---|---|---|---|---|---|---|")
    for rule, options in rules.items():
        for fname in ("logistic",):
            family, row = FAMILIES[fname], []
            for name in ("selection", "unequal_3to1", "seeds_3v5", "large_test"):
                result = calibrate(family.simulator(CELLS[name]), studies, seed=7, n_boot=n_boot, options=options)
                row.append(f"{result['false_mark_rate']:.3f}")
            for name in ("power", "power_2arms"):
                rng = np.random.default_rng(11)
                outcomes = [run_study(family.study(rng, CELLS[name]), n_boot=n_boot, seed=i, options=options)
                            for i in range(studies)]
                gaps = {a[0]: a[1] for a in CELLS[name].arms}
                power = []
                for gap in sorted({g for g in gaps.values() if g > 0}):
                    hits = [o["decision"]["arms"][a]["worse"] for o in outcomes for a in gaps
                            if gaps[a] == gap and a != o["decision"]["best"] and gaps[o["decision"]["best"]] == 0]
                    power.append(f"{np.mean(hits):.2f}" if hits else "–")
                row.append(" / ".join(power) + f" (false {summarize(outcomes)['false_mark_rate']:.3f})")
            print(f"| {rule} | {fname} | " + " | ".join(row) + " |", flush=True)


def paired_gain(studies: int, n_boot: int) -> None:
    """Power of the paired vs the unpaired comparison when arms share seed effects (and calibration without)."""
    import dataclasses

    from calibration_families import CELLS, FAMILIES

    from unfreeze.metrics.calibrate import int_metric

    metric = int_metric("accuracy", 2)
    print(f"\n## Shared seed effects, 2 arms × 3 seeds, {studies} studies: † rate paired / unpaired\n")
    print("| family | shared seed sd | own seed sd | gap | paired | unpaired |")
    print("|---|---|---|---|---|---|")
    for fname in ("logistic", "heavy_tailed"):
        for shared, own, gap in ((0.02, 0.005, 0.03), (0.02, 0.005, 0.0), (0.0, 0.01, 0.0), (0.0, 0.01, 0.03)):
            cell = dataclasses.replace(CELLS["shared_seeds"], arms=(("a", 0.0, own, 3), ("b", gap, own, 3)),
                                       shared_sd=shared, n_val=50)
            rng, hits = np.random.default_rng(3), {True: [], False: []}
            for i in range(studies):
                test = FAMILIES[fname].study(rng, cell)["test"]
                for paired in (True, False):
                    r = seed_aware_compare(test["y"], dict(enumerate(test["arms"]["a"])),
                                           dict(enumerate(test["arms"]["b"])), metric, n_boot=n_boot, seed=i,
                                           paired=paired)
                    hits[paired].append(r["p_value"] < 0.05 and (r["delta"] > 0 or gap == 0))
            print(f"| {fname} | {shared} | {own} | {gap} | {np.mean(hits[True]):.3f} | {np.mean(hits[False]):.3f} |",
                  flush=True)


def levels_table(reps: int, n_boot: int = 200) -> None:
    """Issue #23 item 2 at every level a correction applies: one pair of equal arms, 3 seeds, seed sd 0.007 vs
    0.021 (3:1), paired and unpaired, P(p ≤ u) per df rule and family (1000 test examples)."""
    import dataclasses

    from calibration_families import CELLS, FAMILIES

    from unfreeze.metrics.calibrate import int_metric
    from unfreeze.metrics.compare import contrast, score_split

    levels = (0.05, 0.025, 0.0167, 0.01, 0.0083, 0.005, 0.0033)
    cell = dataclasses.replace(CELLS["unequal_3to1"], arms=(("a", 0.0, 0.007, 3), ("b", 0.0, 0.021, 3)), n_val=10)
    metric = int_metric("accuracy", 2)
    print(f"\n## One pair of equal arms, 3 seeds, seed sd 0.007 vs 0.021, {reps} studies per row: P(p ≤ u); MC SE "
          f"at u = 0.05 / 0.01 / 0.0033: {mc_se(0.05, reps):.4f} / {mc_se(0.01, reps):.4f} / "
          f"{mc_se(0.0033, reps):.4f}\n")
    print("| family | design | df rule | " + " | ".join(f"u = {u:g}" for u in levels) + " |")
    print("|---|---|---|" + "---|" * len(levels))
    for fname, family in FAMILIES.items():
        rng = np.random.default_rng(21)
        ps: dict[tuple, list[float]] = {}
        for i in range(reps):
            test = family.study(rng, cell)["test"]
            scored, _ = score_split(test["y"], {a: dict(enumerate(test["arms"][a])) for a in "ab"}, metric, n_boot,
                                    i)
            for paired in (True, False):
                for rule in ("upper", "min", "satterthwaite"):
                    c = contrast(scored["a"], scored["b"], paired=paired, df_rule=rule)
                    ps.setdefault((paired, rule), []).append(float(2 * sps.t.sf(abs(c["delta"]) / c["se"], c["df"])))
        for (paired, rule), values in ps.items():
            v = np.asarray(values)
            print(f"| {fname} | {'paired' if paired else 'unpaired'} | {rule} | "
                  + " | ".join(f"{(v <= u).mean():.4f}" for u in levels) + " |", flush=True)


def gaussian_levels(draws: int) -> None:
    """The df rules where no noise floor gives slack: Δ = seed part + test-set part (Gaussian), the seed variance
    estimated with ν df, the test-set variance known. Worst P(p ≤ u) / u over the seed term's share ρ."""
    from unfreeze.metrics.planning import seed_var_confidence

    rng = np.random.default_rng(0)
    levels = (0.05, 0.0167, 0.0083, 0.005, 0.0033, 0.0014, 0.0005)
    shares = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 0.995)
    print(f"\n## Gaussian model, {draws} draws per share ρ ∈ {shares}: worst P(p ≤ u) / u over ρ\n")
    print("| seed df ν | df rule | " + " | ".join(f"u = {u:g}" for u in levels) + " |")
    print("|---|---|" + "---|" * len(levels))
    for nu in (2, 3, 4, 9):
        for rule in ("upper", "min", "satterthwaite"):
            worst = np.zeros(len(levels))
            for rho in shares:
                z, v_hat = rng.standard_normal(draws), rho * rng.chisquare(nu, draws) / nu
                t, rates = np.abs(z) / np.sqrt(v_hat + 1 - rho), []
                for u in levels:  # the upper rule's df depend on the level tested
                    if rule == "upper":
                        bound = v_hat * nu / sps.chi2.ppf(1 - seed_var_confidence(u), nu)
                        df = np.maximum(nu, (bound + 1 - rho) ** 2 / (bound ** 2 / nu))
                    elif rule == "min":
                        df = np.full(draws, float(nu))
                    else:
                        df = (v_hat + 1 - rho) ** 2 / (v_hat ** 2 / nu)
                    rates.append((2 * sps.t.sf(t, np.minimum(df, 1e6)) <= u).mean() / u)
                worst = np.maximum(worst, rates)
            print(f"| {nu} | {rule} | " + " | ".join(f"{w:.2f}" for w in worst) + " |", flush=True)


def pooled_levels(draws: int) -> None:
    """Why the seed variance is not pooled across arms: arms × seeds Gaussian scores (paired design, independent
    seed effects per arm with sd `sds`), the pair (0, 1) tested with its own variance of differences (ν = n − 1),
    with the arms × seeds residual variance pooled over all arms (ν = (k − 1)(n − 1)), or with the larger of the
    two; df from the 95 % upper bound as in the report, no test-set term. P(p ≤ u) / u."""
    from unfreeze.metrics.planning import SEED_VAR_CONFIDENCE

    rng = np.random.default_rng(0)
    levels = (0.05, 0.0167, 0.0083, 0.0033)
    print(f"\n## Pooling the seed variance across arms, {draws} draws per row: P(p ≤ u) / u for the pair (0, 1)\n")
    print("| seed sd per arm | seeds | own pair | pooled | larger of the two |")
    print("|---|---|---|---|---|")
    for sds in ((1, 1, 1, 1), (3, 3, 1, 1), (3, 1, 1, 1), (10, 10, 1, 1, 1, 1)):
        for n in (3, 5):
            x = rng.standard_normal((draws, len(sds), n)) * np.asarray(sds, float)[None, :, None]
            d = x[:, 0] - x[:, 1]
            own, nu_own = d.var(-1, ddof=1) / n, n - 1
            resid = x - x.mean(1, keepdims=True) - x.mean(2, keepdims=True) + x.mean((1, 2), keepdims=True)
            nu_pool = (len(sds) - 1) * (n - 1)
            pooled = 2 * (resid ** 2).sum((1, 2)) / nu_pool / n
            cells = []
            for v, nu in ((own, np.full(draws, nu_own)), (pooled, np.full(draws, nu_pool)),
                          (np.maximum(own, pooled), np.where(pooled >= own, nu_pool, nu_own))):
                p = 2 * sps.t.sf(np.abs(d.mean(-1)) / np.sqrt(v), nu)
                cells.append(" / ".join(f"{(p <= u).mean() / u:.2f}" for u in levels))
            print(f"| {sds} | {n} | " + " | ".join(cells) + " |", flush=True)
    print(f"\n(u = {' / '.join(map(str, levels))}; upper-bound df equal the seeds' df without a test-set term, "
          f"confidence {SEED_VAR_CONFIDENCE})")


def unseen_table(studies: int, n_boot: int) -> None:
    """benchmarks/calibration_unseen.py (written after the rule was frozen): its scenarios through calibrate."""
    from calibration_unseen import SCENARIOS, make

    from unfreeze.metrics.calibrate import calibrate

    print(f"\n## Unseen family (benchmarks/calibration_unseen.py), {studies} studies per scenario, n_boot {n_boot}\n")
    print("| scenario | false_mark_rate | false_baseline_rate | power (arms ≥ 0.02 below) | mc_se |")
    print("|---|---|---|---|---|")
    for i, kind in enumerate(SCENARIOS):
        r = calibrate(make(kind), studies, seed=500 + i, n_boot=n_boot)

        def fmt(value):
            return "–" if value is None else f"{value:.3f}"

        print(f"| {kind} | {fmt(r['false_mark_rate'])} | {fmt(r['false_baseline_rate'])} | {fmt(r['power'])} | "
              f"{r['mc_se']:.4f} |", flush=True)


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
