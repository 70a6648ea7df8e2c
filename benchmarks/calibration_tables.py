"""The tables of docs/statistics.md for issue #23 (run through benchmarks/calibration.py: `--families N [--part
table|rules]`, `--levels N`, `--gaussian N`, `--pooled N`, `--unseen N`): the report's decision path under the
generative families of calibration_families.py, the df rules compared, every level a correction applies, the
Gaussian model without a noise floor, pooled seed variances, and the unseen family."""
from __future__ import annotations

import numpy as np
from calibration import mc_se
from scipy import stats as sps

from unfreeze.metrics.compare import seed_aware_compare


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
