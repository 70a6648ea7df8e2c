"""An example generator for `unfreeze calibrate` (format: docs/statistics.md, "Check it under your assumptions").

    unfreeze calibrate examples/calibrate_generator.py --studies 1000 --seed 0 --json rates.json

`simulate(rng)` returns ONE simulated study: three fine-tuned arms with 3 seeds each and a TF-IDF-like baseline,
all as good as each other on the population (so every mark and every baseline claim is false), scored on a
validation and a test set. Edit it to your assumptions: arm gaps (`TRUTH`), seed spread, shared seed effects,
class balance, test-set size, folds (an arm may be a (seeds, folds, n) array). Only numpy is needed.

The model: example x is easy or hard for every model (difficulty b_x), each arm misses partly different examples
(offset c_arm,x), and a run is right with probability p_x + s p_x (1 − p_x), p_x = sigmoid(θ_arm + b_x + c_arm,x)
and s the run's seed effect (|s| ≤ 1, symmetric) — so the arm's population accuracy is the mean of p_x exactly,
whatever its seed spread. The same run predicts validation and test (a lucky seed is lucky on both).
"""
import numpy as np

LABELS = ["negative", "neutral", "positive"]
CLASS_SHARE = [0.45, 0.45, 0.10]
SEEDS = 3
N_VAL, N_TEST = 500, 1000
SEED_SD = {"head": 0.05, "top-2": 0.1, "all": 0.2}  # sd of s: "all" spreads most over seeds
THETA = 2.0  # the same for every arm and the baseline: equal population accuracy
_POPULATION = np.random.default_rng(0).normal(0, 2.5, 200_000) + np.random.default_rng(1).normal(0, 1, 200_000)
TRUTH = float((1 / (1 + np.exp(-(THETA + _POPULATION)))).mean())  # population accuracy of every arm


def _predict(rng, y, difficulty, s):
    """Predictions of runs with seed effects `s` (runs,) on examples with labels `y` and `difficulty`."""
    p = 1 / (1 + np.exp(-(THETA + difficulty + rng.normal(0, 1, len(y)))))
    right = rng.random((len(s), len(y))) < p + s[:, None] * p * (1 - p)
    wrong = (y + rng.integers(1, len(LABELS), right.shape)) % len(LABELS)
    return np.where(right, y, wrong)


def simulate(rng: np.random.Generator) -> dict:
    split = {}
    for name, n in (("val", N_VAL), ("test", N_TEST)):
        split[name] = (rng.choice(len(LABELS), n, p=CLASS_SHARE), rng.normal(0, 2.5, n))
    study = {"labels": LABELS, "metric": "accuracy", "truth": {arm: TRUTH for arm in SEED_SD},
             "truth_baseline": TRUTH}
    seeds = {arm: np.clip(sd * rng.standard_normal(SEEDS), -1, 1) for arm, sd in SEED_SD.items()}
    for name, (y, difficulty) in split.items():
        study[name] = {"y": y, "arms": {arm: _predict(rng, y, difficulty, s) for arm, s in seeds.items()},
                       "baseline": _predict(rng, y, difficulty, np.zeros(1))[0]}
    return study
