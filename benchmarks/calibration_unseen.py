"""A generator family written after the df rule of issue #23's second round was frozen, and run only after that:
the check "under generators we have not seen". It is an `unfreeze calibrate` generator file (`simulate(rng)`, the
documented study format), so it runs through the CLI exactly as a user's would:

    unfreeze calibrate benchmarks/calibration_unseen.py --studies 400 --seed 0 --json rates.json

Mechanism (deliberately unlike benchmarks/calibration_families.py):
- examples fall in 4 equally common clusters; arm j is better on cluster j mod 4 and worse on the others (the same
  bonuses permuted, so arms differ in *which* examples they get right), over a skewed latent difficulty
  (2.5 − Gamma(2, 1.2): a long tail of hard examples);
- a run's skill moves on the logit scale by τ_arm · e with e heavy-tailed (t with 2.5 df, clipped at ±6) — an
  occasional far-off seed — and τ differs 4:1 between arms; the logit scale makes the effect skewed in accuracy,
  so each arm's θ is solved numerically (on a deterministic grid of latents and seed effects) to give its truth;
- runs of one seed number share a data order that flips the correctness of the same random 4 % of examples in
  every arm (a shared seed effect at the example level);
- 12 % of the observed labels (validation and test) are noise: a uniformly random other class; 3 classes with
  shares 0.6 / 0.3 / 0.1; the metric is accuracy (linear in the chance of a right prediction, so the truths are
  exact);
- a deterministic baseline with its own θ (no seed), with a truth of its own.
`make(kind)` builds the scenarios of docs/statistics.md; `simulate` is the default one (`null_hetero`).
"""
from __future__ import annotations

import functools

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq
from scipy.special import expit

P0, NOISE, FLIP, BONUS, K = 0.78, 0.12, 0.04, 1.2, 3
SHARES = np.array([0.6, 0.3, 0.1])

SCENARIOS = {  # arms: (gap below P0, tau, seeds); baseline gap or None; test / validation size
    "null_hetero": dict(arms=[(0, .15, 3), (0, .15, 3), (0, .6, 3), (0, .6, 3), (0, .6, 3)], base=0.0, n=(1500, 400)),
    "null_3v5": dict(arms=[(0, .6, 3), (0, .15, 5), (0, .15, 5), (0, .6, 3)], base=None, n=(1000, 400)),
    "baseline_1seed": dict(arms=[(0, .3, 1), (0, .3, 1), (0, .3, 1)], base=0.0, n=(1000, 400)),
    "power": dict(arms=[(0, .3, 5), (.02, .3, 5), (.04, .3, 5), (.06, .3, 5)], base=None, n=(1000, 400)),
}


def _latent(u):
    return 2.5 - sps.gamma.ppf(u, 2, scale=1.2)


@functools.cache
def _grid():
    """(latent nodes, seed-effect nodes): midpoint quantiles, so expectations are deterministic."""
    return _latent((np.arange(1500) + 0.5) / 1500), np.clip(sps.t.ppf((np.arange(300) + 0.5) / 300, 2.5), -6, 6)


def _bonus(arm: int) -> np.ndarray:
    out = np.full(4, -BONUS / 3)
    out[arm % 4] = BONUS
    return out


def _accuracy(q):
    """P(prediction == observed label) from the chance q of predicting the clean label (flips, then label noise)."""
    q = q * (1 - 2 * FLIP) + FLIP
    return q * (1 - NOISE) + (1 - q) * NOISE / (K - 1)


@functools.cache
def theta(target: float, tau: float) -> float:
    """θ whose expected accuracy over clusters, latents and seed effects is `target` (the same for every arm: the
    cluster bonuses are a permutation)."""
    lat, e = _grid()
    z = lat[None, :, None] + _bonus(0)[:, None, None] + tau * e[None, None, :]
    return float(brentq(lambda t: _accuracy(expit(t + z)).mean() - target, -15, 15))


@functools.cache
def theta_base(target: float) -> float:
    lat, _ = _grid()
    z = lat[None, :] + np.zeros(4)[:, None]
    return float(brentq(lambda t: (expit(t + z) * (1 - NOISE) + (1 - expit(t + z)) * NOISE / (K - 1)).mean()
                        - target, -15, 15))


def make(kind: str = "null_hetero"):
    spec = SCENARIOS[kind]

    def simulate(rng: np.random.Generator) -> dict:
        arms, base = spec["arms"], spec["base"]
        max_seeds = max(s for _, _, s in arms)
        seed_e = [np.clip(rng.standard_t(2.5, (s, 1)), -6, 6) for _, _, s in arms]
        study = {"labels": ["c0", "c1", "c2"], "metric": "accuracy",
                 "truth": {f"a{j}": P0 - g for j, (g, _, _) in enumerate(arms)}}
        for split, n in (("test", spec["n"][0]), ("val", spec["n"][1])):
            clean = rng.choice(K, n, p=SHARES)
            y = np.where(rng.random(n) < NOISE, (clean + rng.integers(1, K, n)) % K, clean)
            cluster, lat = rng.integers(0, 4, n), _latent(rng.random(n))
            flips = rng.random((max_seeds, n)) < FLIP
            part = {"y": y, "arms": {}}
            for j, (g, tau, s) in enumerate(arms):
                q = expit(theta(P0 - g, tau) + _bonus(j)[cluster] + lat + tau * seed_e[j])
                right = (rng.random((s, n)) < q) ^ flips[:s]
                part["arms"][f"a{j}"] = np.where(right, clean, (clean + rng.integers(1, K, (s, n))) % K)
            if base is not None:
                right = rng.random(n) < expit(theta_base(P0 - base) + lat)
                part["baseline"] = np.where(right, clean, (clean + rng.integers(1, K, n)) % K)
            study[split] = part
        if base is not None:
            study["truth_baseline"] = P0 - base
        return study

    return simulate


simulate = make()
