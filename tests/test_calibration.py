"""Calibration of the report's decision path (`metrics.decide.decide`, run through `metrics.calibrate.calibrate`,
the code behind `unfreeze calibrate`) under three generative families (benchmarks/calibration_families.py:
logistic, probit with a mixture of easy / ambiguous / noisy examples, heavy-tailed seed effects), with cells for
selection on validation, unequal seed spread 3:1 with 3 seeds, 3 vs 5 seeds, shared seed effects, the baseline
with 1 and 3 seeds, macro F1 with a 5 % rare class and CV folds; and the behaviour of the building blocks.

Kept cheap for the suite (≈ 75 s of CPU on the loaded 2-core machine): smaller test sets and 100 example
resamples per study (the report: 10,000; only the test-set term's Monte-Carlo noise moves, and it is in the
df). Each cell is checked at ≤ 5 % + 2 Monte-Carlo standard errors, and all cells together at ≤ 5 % + 2 pooled
standard errors. The big tables (more studies, full-size test sets) are in docs/statistics.md with the command
that made them.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from calibration import IntConfusionMetric, example_only_bootstrap, mc_se, simulate_study
from calibration_families import CELLS, FAMILIES
from scipy import stats as sps
from sklearn.metrics import accuracy_score, f1_score

from unfreeze.errors import UnfreezeError
from unfreeze.metrics import counts as count_metrics
from unfreeze.metrics import stats
from unfreeze.metrics.calibrate import calibrate, int_metric
from unfreeze.metrics.compare import (_bootstrap_scores, bounded_interval, compare_with_fixed, format_p,
                                      seed_aware_compare)
from unfreeze.metrics.decide import Split, decide
from unfreeze.metrics.planning import plan_seeds, seed_test_df, seed_var_confidence

pytestmark = pytest.mark.slow  # ≈ 75 s of CPU; `make test` runs it

STUDIES = 100
N_BOOT_SIM = 100
ACC = IntConfusionMetric("accuracy", 2)
NULL_CELLS = ["selection", "unequal_3to1", "seeds_3v5", "shared_seeds", "baseline_1seed", "baseline_3seeds",
              "f1_rare", "cv_folds"]


def small(cell):
    """The docs' cell at a size the suite can afford (test sets of 400 / validation 250 examples)."""
    return dataclasses.replace(cell, n_test=min(cell.n_test, 400), n_val=min(cell.n_val, 250))


@pytest.fixture(scope="module")
def null_rates() -> dict:
    """{(family, cell): calibrate() result} for every family × null cell (truths equal: every mark is false)."""
    out = {}
    for i, (f, family) in enumerate(FAMILIES.items()):
        for j, c in enumerate(NULL_CELLS):
            out[(f, c)] = calibrate(family.simulator(small(CELLS[c])), STUDIES, seed=100 * i + j, n_boot=N_BOOT_SIM)
    return out


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("cell", NULL_CELLS)
def test_false_marks_and_baseline_claims_stay_at_five_percent(null_rates, family, cell):
    result = null_rates[(family, cell)]
    bound = 0.05 + 2 * result["mc_se"]
    assert result["false_mark_rate"] <= bound, (family, cell, result)
    if result["false_baseline_rate"] is not None:
        assert result["false_baseline_rate"] <= bound, (family, cell, result)
    if cell == "baseline_1seed":  # one seed: no claim at all
        assert result["false_baseline_rate"] == 0.0 and result["false_mark_rate"] == 0.0


def test_pooled_false_mark_rate_over_every_family_and_cell(null_rates):
    """All 24 cells together (2,400 studies): a much sharper check than any one cell."""
    rates = [r["false_mark_rate"] for r in null_rates.values()]
    pooled = float(np.mean(rates))
    assert pooled <= 0.05 + 2 * mc_se(0.05, STUDIES * len(rates)), pooled


@pytest.mark.parametrize("family", ["logistic", "probit_mixture"])
def test_power_is_stated_and_not_nil(family):
    """2 arms, a gap of 0.03, 5 seeds, seed sd 0.01, 400 test examples: the rule still finds real gaps (power
    with 1000 test examples and 4 arms, per gap, is in docs/statistics.md)."""
    cell = dataclasses.replace(small(CELLS["power_2arms"]), n_val=100)
    result = calibrate(FAMILIES[family].simulator(cell), 60, seed=3, n_boot=N_BOOT_SIM)
    assert result["power"] >= 0.2, result
    assert result["false_mark_rate"] <= 0.05 + 2 * result["mc_se"], result


def test_the_unseen_family_runs_through_the_cli_and_stays_calibrated(tmp_path):
    """benchmarks/calibration_unseen.py (written after the rule was frozen: cluster-specific arms, heavy-tailed
    logit seed effects 4:1 between arms, shared example flips, label noise, a baseline) as a user would run it."""
    from pathlib import Path

    gen = Path(__file__).resolve().parents[1] / "benchmarks" / "calibration_unseen.py"
    out = tmp_path / "rates.json"
    result = _calibrate_cli(gen, "--studies", "25", "--seed", "2", "--json", out)
    assert result.exit_code == 0, result.output
    rates = json.loads(out.read_text())
    assert rates["false_mark_rate"] <= 0.05 + 2 * rates["mc_se"] and rates["false_baseline_rate"] <= 0.05 + 2 * \
        rates["mc_se"], rates


def test_pairing_shared_seeds_gains_power_and_stays_calibrated_without_a_shared_effect():
    """Arms that ran the same seed numbers share a seed effect: the paired comparison removes it (more power);
    with no shared effect the paired test still holds its level."""
    family = FAMILIES["logistic"]
    gap = dataclasses.replace(CELLS["shared_seeds"], arms=(("a0", 0.0, 0.005, 5), ("a1", 0.04, 0.005, 5)),
                              n_val=50, n_test=800)
    none = dataclasses.replace(gap, arms=(("a0", 0.0, 0.01, 5), ("a1", 0.0, 0.01, 5)), shared_sd=0.0)
    rng = np.random.default_rng(5)
    hits = {True: 0, False: 0}
    null_hits = 0
    studies = 100
    metric = int_metric("accuracy", 2)
    for i in range(studies):
        test = family.study(rng, gap)["test"]
        for paired in (True, False):
            res = seed_aware_compare(test["y"], dict(enumerate(test["arms"]["a0"])),
                                     dict(enumerate(test["arms"]["a1"])), metric, n_boot=N_BOOT_SIM, seed=i,
                                     paired=paired)
            hits[paired] += res["p_value"] < 0.05 and res["delta"] > 0
        test = family.study(rng, none)["test"]
        res = seed_aware_compare(test["y"], dict(enumerate(test["arms"]["a0"])), dict(enumerate(test["arms"]["a1"])),
                                 metric, n_boot=N_BOOT_SIM, seed=i)
        null_hits += res["p_value"] < 0.05
    assert hits[True] > hits[False] + 10, hits  # the measured gain is in docs/statistics.md
    assert null_hits / studies <= 0.05 + 2 * mc_se(0.05, studies)


@pytest.mark.parametrize("paired", [True, False])
def test_p_values_are_valid_at_every_level_the_correction_uses_with_unequal_seed_spread(paired):
    """3 seeds per arm, seed sd 0.007 vs 0.021: P(p ≤ u) ≤ u (+ MC error) at every per-pair level a correction
    applies, u = 0.05 (2 arms) … 0.0033 (6 arms: 15 pairs)."""
    cell = dataclasses.replace(CELLS["unequal_3to1"], arms=(("a", 0.0, 0.007, 3), ("b", 0.0, 0.021, 3)), n_val=20,
                               n_test=300)
    family = FAMILIES["logistic"]
    rng = np.random.default_rng(17 + paired)
    ps = []
    for i in range(700):
        test = family.study(rng, cell)["test"]
        ps.append(seed_aware_compare(test["y"], dict(enumerate(test["arms"]["a"])),
                                     dict(enumerate(test["arms"]["b"])), ACC, n_boot=N_BOOT_SIM, seed=i,
                                     paired=paired)["p_value"])
    ps = np.asarray(ps)
    for u in (0.05, 0.025, 0.0167, 0.01, 0.05 / 6, 0.005, 0.05 / 15):
        assert (ps <= u).mean() <= u + 2.5 * mc_se(u, len(ps)), (u, (ps <= u).mean())


def _upper_df(v_seed_hat, v_test, nu, level):
    """seed_test_df("upper") for one seed term, vectorised (checked against the function below)."""
    upper = v_seed_hat * nu / sps.chi2.ppf(1 - seed_var_confidence(level), nu)
    return np.maximum(nu, (upper + v_test) ** 2 / (upper ** 2 / nu))


@pytest.mark.parametrize("nu", [2, 4])
def test_upper_bound_df_hold_every_level_for_every_share_of_the_seed_term(nu):
    """Δ = seed part + test-set part (Gaussian), the seed variance estimated with ν df, the test-set variance
    known: P(p ≤ u) ≤ u (+ MC error) at every level a correction applies, whatever the seed term's share ρ —
    chance-small seed variances lend no df. Plain Satterthwaite df fail the same check (1.6–7 × at ρ = 0.9)."""
    rng = np.random.default_rng(nu)
    draws = 100_000
    for v_hat, v_test, u in ((0.3, 0.1, 0.05), (2e-5, 7e-4, 0.0083), (2e-5, 7e-4, 0.001)):  # the function's rule
        assert _upper_df(v_hat, v_test, nu, u) == pytest.approx(seed_test_df([(v_hat, nu)], v_test, 10 ** 9,
                                                                             level=u))
    worst_satterthwaite = 0.0
    for rho in (0.05, 0.2, 0.5, 0.8, 0.9, 0.97):
        z = rng.standard_normal(draws)
        v_hat = rho * rng.chisquare(nu, draws) / nu
        t = np.abs(z) / np.sqrt(v_hat + 1 - rho)
        plain = 2 * sps.t.sf(t, np.minimum((v_hat + 1 - rho) ** 2 / (v_hat ** 2 / nu), 1e6))
        for u in (0.05, 0.0167, 0.0083, 0.0033, 0.0014):
            p = 2 * sps.t.sf(t, np.minimum(_upper_df(v_hat, 1 - rho, nu, u), 1e6))
            assert (p <= u).mean() <= u + 3 * mc_se(u, draws), (rho, u, (p <= u).mean())
            worst_satterthwaite = max(worst_satterthwaite, (plain <= u).mean() / u)
    assert worst_satterthwaite > 1.5  # the check can fail: it catches the rule it replaced


def test_upper_bound_df_never_mark_less_than_the_seeds_df():
    """The df are never below seeds − 1, so every mark of the former rule is kept (the power gain is in
    docs/statistics.md); on equal arms both stay calibrated (the cells above)."""
    cell = dataclasses.replace(small(CELLS["power"]), n_val=100, n_test=300)
    rng = np.random.default_rng(9)
    gained = 0
    for i in range(25):
        study = FAMILIES["logistic"].study(rng, cell)
        test = Split(study["test"]["y"], {a: dict(enumerate(p)) for a, p in study["test"]["arms"].items()})
        val = {a: {0: float(v)} for a, v in zip(test.arms, (0.9, 0.8, 0.7, 0.6))}
        new, old = (decide(test, ACC, val, n_boot=N_BOOT_SIM, seed=i, df_rule=r)["arms"] for r in ("upper", "min"))
        for arm in new:
            assert new[arm]["df"] >= old[arm]["df"] and new[arm]["p_value"] <= old[arm]["p_value"] + 1e-12
            assert new[arm]["significant"] or not old[arm]["significant"]
            gained += new[arm]["significant"] and not old[arm]["significant"]
    assert gained > 0


# ---------------------------------------------------------------------------------------------------------
# The decision path's pieces


def test_report_and_calibrate_run_the_same_decision_function():
    from unfreeze.metrics import calibrate as calibrate_module
    from unfreeze.report import significance

    assert significance.decide is calibrate_module.decide is decide


def test_one_seed_gives_no_baseline_p_value_and_no_claim():
    y, a, _ = simulate_study(np.random.default_rng(1), 500, 1, 1, 0.01)
    fixed = np.where(np.random.default_rng(2).random(500) < 0.6, y, 1 - y)  # far worse than the arm
    one = compare_with_fixed(y, {0: a[0]}, fixed, ACC, n_boot=200)
    assert not one["decidable"] and one["p_value"] is None and "one seed cannot tell" in one["method"]
    decision = decide(Split(y, {"x": {0: a[0]}, "z": {0: a[0]}}, fixed), ACC, {"x": {0: 0.8}, "z": {0: 0.7}}, 0.6,
                      n_boot=200)
    assert decision["best"] == "x" and decision["baseline"]["test"]["claim"] is None
    assert not decision["arms"]["z"]["decidable"]


def test_validation_verdict_without_the_best_arms_validation_baseline_falls_back_to_the_seed_spread():
    """A per-arm validation baseline that lacks the best arm (e.g. its baseline scored another split) raised
    KeyError; the verdict now says it rests on the seed spread only."""
    rng = np.random.default_rng(3)
    y, a, b = simulate_study(rng, 400, 3, 3, 0.01)
    base = np.where(rng.random(400) < 0.7, y, 1 - y)
    test = Split(y, {"x": dict(enumerate(a)), "z": dict(enumerate(b))}, {"x": base, "z": base})
    val = Split(y, {"x": dict(enumerate(a)), "z": dict(enumerate(b))}, {"z": base})  # no baseline of "x"
    decision = decide(test, ACC, {"x": {0: 0.9, 1: 0.88, 2: 0.89}, "z": {0: 0.7, 1: 0.7, 2: 0.7}},
                      {"x": 0.6, "z": 0.6}, val=val, n_boot=200)
    verdict = decision["baseline"]["val"]
    assert decision["best"] == "x" and verdict["how"].startswith("seed spread only")
    assert verdict["ci_low"] < verdict["delta"] < verdict["ci_high"]


def test_folds_are_not_seeds():
    """2 seeds × 5 folds is 2 seeds: no test (the 3-seed minimum counts seeds), and the seed variance is that of
    the seeds' fold means."""
    rng = np.random.default_rng(4)
    y, a, b = simulate_study(rng, 400, 10, 10, 0.01)
    cv_a = {(s, f): a[s * 5 + f] for s in range(2) for f in range(5)}
    cv_b = {(s, f): b[s * 5 + f] for s in range(2) for f in range(5)}
    res = seed_aware_compare(y, cv_a, cv_b, ACC, n_boot=100)
    assert not res["decidable"] and res["seeds_best"] == 2 and res["method"].startswith("2 seeds")
    three = seed_aware_compare(y, {(s, f): a[s * 3 + f] for s in range(3) for f in range(3)},
                               {(s, f): b[s * 3 + f] for s in range(3) for f in range(3)}, ACC, n_boot=100)
    assert three["decidable"] and three["seeds_best"] == 3 and "folds of a seed averaged" in three["method"]
    assert three["df"] >= 2 and three["df"] == pytest.approx(  # the seed term's df: seeds − 1, never runs − 1
        seed_test_df([(three["var_seed_best"] / 3, 2)], three["var_test"], 100))


def test_marks_agree_with_the_simultaneous_interval():
    y, a, b = simulate_study(np.random.default_rng(8), 600, 4, 4, 0.005, delta_acc=0.05)
    _, c, _ = simulate_study(np.random.default_rng(9), 600, 4, 4, 0.005)
    decision = decide(Split(y, {"a": dict(enumerate(a)), "b": dict(enumerate(b)), "c": dict(enumerate(c))}), ACC,
                      {"a": {0: 0.9}, "b": {0: 0.5}, "c": {0: 0.4}}, n_boot=500)
    assert decision["pairs"] == 3 and decision["level"] == pytest.approx(1 - 0.05 / 3)
    for row in decision["arms"].values():
        excludes = row["ci_low"] > 0 or row["ci_high"] < 0
        assert row["significant"] == excludes == (row["p_holm"] < 0.05)


def test_seed_plan_uses_the_named_effect_never_the_observed_gap():
    base = plan_seeds(5e-5, 2, 1e-6, 0.02, 0.05 / 6)
    assert base["seeds"] is not None and "0.02" in base["text"] and "upper bound" in base["text"]
    assert plan_seeds(5e-5, 2, 1e-6, 0.01, 0.05 / 6)["seeds"] > base["seeds"]  # smaller effect: more seeds
    assert plan_seeds(5e-5, 10, 1e-6, 0.02, 0.05 / 6)["seeds"] < base["seeds"]  # tighter bound: fewer
    assert plan_seeds(5e-5, 2, 1e-6, 0.02, 0.05)["seeds"] < base["seeds"]  # looser level: fewer
    floor = plan_seeds(5e-5, 2, 4e-4, 0.02, 0.05 / 6)  # test-set sd 0.02 = the effect
    assert floor["seeds"] is None and "test set" in floor["text"]
    # In decide: two studies with the same spreads and different observed gaps plan the same seeds
    y, a, b = simulate_study(np.random.default_rng(3), 500, 3, 3, 0.01)
    plans = []
    for shift in (0, 1):
        other = {k: (p if shift == 0 else np.where(np.arange(500) < 10, y, p)) for k, p in enumerate(b)}
        d = decide(Split(y, {"a": dict(enumerate(a)), "b": other}), ACC, {"a": {0: 0.9}, "b": {0: 0.8}},
                   n_boot=300, min_effect=0.03)
        plans.append(d["plan"])
    assert plans[0]["plan"].startswith("≈") or "below" in plans[0]["plan"]
    assert all("0.03" in p["plan"] for p in plans)


def test_bounded_interval_is_sensible_at_zero_and_one():
    """The issue's cases: [0, 0, 0.02] gave [0.0000003, 0.547] and [1, 1, 0.9] gave [0.04, 1.0]."""
    lo, hi, note = bounded_interval([0.0, 0.0, 0.02])
    assert lo == 0.0 and 0.02 < hi < 0.05 and "cut at" in note
    lo, hi, note = bounded_interval([1.0, 1.0, 0.9])
    assert 0.8 < lo < 0.9 and hi == 1.0
    values = [0.81, 0.79, 0.84, 0.80]
    lo, hi, note = bounded_interval(values)  # away from the bounds: the plain t interval, no note
    assert (lo, hi) == pytest.approx(sps.t.interval(0.95, 3, loc=np.mean(values), scale=sps.sem(values)))
    assert note == ""
    assert bounded_interval([0.95, 1.0])[2].startswith("2 seeds: interval uninformative")
    assert all(math.isnan(v) for v in bounded_interval([0.8])[:2])
    with pytest.raises(UnfreezeError, match="outside"):
        bounded_interval([0.5, 1.2])


def test_report_min_effect_is_a_validated_study_key_the_report_reads(tmp_path):
    from pydantic import ValidationError

    from unfreeze.config.study import StudyConfig
    from unfreeze.report.significance import report_min_effect

    assert StudyConfig.model_validate({"base": {}}).report.min_effect == 0.01
    assert StudyConfig.model_validate({"base": {}, "report": {"min_effect": 0.02}}).report.min_effect == 0.02
    with pytest.raises(ValidationError, match="min_effect"):
        StudyConfig.model_validate({"base": {}, "report": {"min_effect": 0}})
    assert report_min_effect(tmp_path) == 0.01  # no study.yaml: the default
    (tmp_path / "study.yaml").write_text("base: {}\nreport:\n  min_effect: 0.03\n")
    assert report_min_effect(tmp_path) == 0.03


# ---------------------------------------------------------------------------------------------------------
# `unfreeze calibrate`


GENERATOR = '''
import numpy as np
def simulate(rng):
    y = rng.integers(0, 2, 200)
    arm = lambda: np.where(rng.random((3, 200)) < 0.8, y, 1 - y)
    return {"labels": ["a", "b"], "metric": "accuracy",
            "val": {"y": y, "arms": {"x": arm(), "z": arm()}, "baseline": y.copy()},
            "test": {"y": y, "arms": {"x": arm(), "z": arm()}, "baseline": 1 - y},
            "truth": {"x": 0.8, "z": 0.8}, "truth_baseline": 0.0}
'''


def test_cli_writes_exactly_the_documented_keys(tmp_path):
    from typer.testing import CliRunner

    from unfreeze.cli import app

    gen = tmp_path / "gen.py"
    gen.write_text(GENERATOR)
    out = tmp_path / "rates.json"
    result = CliRunner().invoke(app, ["calibrate", str(gen), "--studies", "4", "--seed", "1", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rates = json.loads(out.read_text())
    assert list(rates) == ["studies", "false_mark_rate", "false_baseline_rate", "power", "mc_se"]
    assert rates["studies"] == 4 and rates["power"] is None and rates["false_baseline_rate"] == 0.0
    assert "false_mark_rate" in result.output


@pytest.mark.parametrize("text,message", [
    ("x = 1\n", "defines no function simulate"),
    ("def simulate(rng):\n    return {'labels': ['a'], 'metric': 'accuracy'}\n", "must return a dict with"),
    ("import nonexistent_module_xyz\n", "importing it failed"),
    (GENERATOR.replace('"metric": "accuracy"', '"metric": "auc"'), "'metric' = 'auc' is not supported"),
    (GENERATOR.replace("np.where(rng.random((3, 200))", "0.5 * np.where(rng.random((3, 200))"), "must be an int"),
])
def test_cli_bad_generators_are_one_line_and_exit_2(tmp_path, text, message):
    from typer.testing import CliRunner

    from unfreeze.cli import app

    gen = tmp_path / "gen.py"
    gen.write_text(text)
    result = CliRunner().invoke(app, ["calibrate", str(gen), "--studies", "2"])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def _calibrate_cli(*args):
    from typer.testing import CliRunner

    from unfreeze.cli import app

    return CliRunner().invoke(app, ["calibrate", *map(str, args)])


def _write_run_folder(folder):
    folder.mkdir(parents=True)
    for name, text in (("config.yaml", "seed: 0\n"), ("run.json", "{}"), ("metrics.json", '{"test": 1}')):
        (folder / name).write_text(text)


@pytest.mark.parametrize("target,named", [
    ("gen.py", "is the input file"),
    ("run/metrics.json", "is a run folder"),
    ("study/rates.json", "is inside the study"),
    ("folder", "is a folder"),
])
def test_cli_json_never_replaces_the_generator_a_run_or_a_study_file(tmp_path, target, named):
    """`--json` is checked before the generator runs: one line, rc 2, and the file is left as it was."""
    gen = tmp_path / "gen.py"
    gen.write_text(GENERATOR)
    _write_run_folder(tmp_path / "run")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "study.json").write_text("{}")
    (tmp_path / "study" / "rates.json").write_text("mine")
    (tmp_path / "folder").mkdir()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    result = _calibrate_cli(gen, "--studies", "2", "--json", tmp_path / target)
    assert result.exit_code == 2, result.output
    assert named in result.output and "--json" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("edit,named", [
    (('"x": arm()', '"x": arm()[:0]'), "['val']['arms']['x'] must be an int array (seeds, 200)"),
    (('"truth": {"x": 0.8', '"truth": {"x": "high"'), "study['truth']['x'] = 'high' must be a finite number"),
    (('"truth": {"x": 0.8', '"truth": {"x": float("nan")'), "study['truth']['x'] = nan must be a finite number"),
    (('"truth_baseline": 0.0', '"truth_baseline": float("inf")'), "study['truth_baseline'] = inf must be a finite"),
    (('"z": arm()}, "baseline": 1 - y', '"z": arm() * 7}, "baseline": 1 - y'), "got 7 at index [0, 0, "),
    (('"z": arm()}, "baseline": 1 - y', '"z": arm() - 1}, "baseline": 1 - y'), "got -1 at index [0, 0, "),
    (('"z": arm()}, "baseline": 1 - y', '"z": np.where(arm() == 0, np.nan, 1.0)}, "baseline": 1 - y'),
     "got nan at index [0, 0, "),
    (('"z": arm()}, "baseline": 1 - y', '"z": arm()}, "baseline": y + 5'), "['test']['baseline'] must be an int"),
    (("import numpy as np", "import numpy as np, sys\nsys.exit(0)"), "importing it called sys.exit(0)"),
    (('    y = rng.integers', '    import sys; sys.exit(3)\n    y = rng.integers'), "simulate(rng) called sys.exit(3)"),
])
def test_cli_bad_study_values_are_one_line_naming_the_generator_and_the_key(tmp_path, edit, named):
    gen = tmp_path / "gen.py"
    assert edit[0] in GENERATOR
    gen.write_text(GENERATOR.replace(edit[0], edit[1], 1))
    result = _calibrate_cli(gen, "--studies", "2")
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    assert named in line and str(gen.name) in line and "Traceback" not in result.output, result.output


# ---------------------------------------------------------------------------------------------------------
# Building blocks


def test_old_example_only_bootstrap_is_not_calibrated_under_seed_variance():
    """The test the seed-aware one replaced: seeds held fixed, only test examples resampled → FPR ≈ 0.15."""
    rng = np.random.default_rng(11)
    hits = [example_only_bootstrap(*simulate_study(rng, 1000, 3, 3, 0.01), ACC, n_boot=200, seed=i)["p_value"] < 0.05
            for i in range(150)]
    assert float(np.mean(hits)) >= 0.08


def test_reference_old_bootstrap_matches_unfreeze_stats():
    y, a, b = simulate_study(np.random.default_rng(3), 400, 3, 3, 0.01)
    ours = example_only_bootstrap(y, a, b, ACC, n_boot=300, seed=4)
    theirs = stats.paired_bootstrap(y, list(a), list(b), ACC, n_boot=300, seed=4)
    assert ours["delta"] == pytest.approx(theirs["delta"]) and ours["p_value"] == pytest.approx(theirs["p_value"])


def test_count_metrics_match_sklearn_on_the_full_set():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 3, 500), rng.integers(0, 3, 500)
    for name, ref in (("accuracy", accuracy_score(y, p)), ("f1_macro", f1_score(y, p, average="macro"))):
        assert IntConfusionMetric(name, 3)(y, p) == pytest.approx(ref)
        assert int_metric(name, 3)(y, p) == pytest.approx(ref)
        assert count_metrics.classification_metric(name, ["0", "1", "2"])(y.astype(str), p.astype(str)) == \
            pytest.approx(ref)


def test_unfreeze_count_metric_gives_the_same_decision_as_the_simulation_metric():
    y, a, b = simulate_study(np.random.default_rng(8), 600, 3, 4, 0.01, delta_acc=0.02)
    ours = seed_aware_compare(y, dict(enumerate(a)), dict(enumerate(b)), ACC, n_boot=500, seed=1)
    metric = count_metrics.classification_metric("accuracy", ["0", "1"])
    theirs = seed_aware_compare(y.astype(str), {k: v.astype(str) for k, v in enumerate(a)},
                                {k: v.astype(str) for k, v in enumerate(b)}, metric, n_boot=500, seed=1)
    assert ours["delta"] == pytest.approx(np.mean([accuracy_score(y, p) for p in a]) -
                                          np.mean([accuracy_score(y, p) for p in b]))
    for key in ("delta", "p_value", "ci_low", "ci_high", "df"):
        assert ours[key] == pytest.approx(theirs[key]), key


def test_fewer_than_min_seeds_is_not_decidable():
    y, a, b = simulate_study(np.random.default_rng(2), 300, 2, 3, 0.01)
    res = seed_aware_compare(y, dict(enumerate(a)), dict(enumerate(b)), ACC, n_boot=100)
    assert res["decidable"] is False and res["p_value"] is None and res["ci_low"] is None
    assert res["method"] == "2 vs 3 seeds: no seed-aware test (needs ≥ 3 per arm)"


def test_result_fields_and_ci_agree_with_p():
    y, a, b = simulate_study(np.random.default_rng(4), 1000, 3, 3, 0.01, delta_acc=0.02)
    res = seed_aware_compare(y, {f"s{i}": p for i, p in enumerate(a)}, dict(enumerate(b)), ACC, n_boot=2000)
    assert res["decidable"] and not res["paired"] and "3 vs 3 independent seeds" in res["method"]
    assert (res["p_value"] < 0.05) == (res["ci_low"] > 0 or res["ci_high"] < 0)
    var = res["var_seed_best"] / 3 + res["var_seed_other"] / 3 + res["var_test"]
    assert res["se"] == pytest.approx(math.sqrt(var))
    assert res["p_value"] == pytest.approx(2 * sps.t.sf(abs(res["delta"]) / res["se"], res["df"]))
    parts = [(res["var_seed_best"] / 3, 2), (res["var_seed_other"] / 3, 2)]
    assert res["df"] == pytest.approx(seed_test_df(parts, res["var_test"], 2000)) and res["df"] >= 2
    assert seed_aware_compare(y, {f"s{i}": p for i, p in enumerate(a)}, dict(enumerate(b)), ACC, n_boot=2000,
                              df_rule="min")["df"] == 2  # the former rule: the smaller arm's seeds − 1
    shared = seed_aware_compare(y, dict(enumerate(a)), dict(enumerate(b)), ACC, n_boot=2000)
    assert shared["paired"] and "paired over 3 shared seeds" in shared["method"]


def test_key_order_does_not_matter_and_identical_arms_are_never_marked():
    y, a, b = simulate_study(np.random.default_rng(6), 500, 3, 3, 0.01)
    one = seed_aware_compare(y, {"s0": a[0], "s1": a[1], "s2": a[2]}, {7: b[0], 8: b[1], 9: b[2]}, ACC, n_boot=300)
    two = seed_aware_compare(y, {"s2": a[2], "s0": a[0], "s1": a[1]}, {9: b[2], 8: b[1], 7: b[0]}, ACC, n_boot=300)
    assert one == two
    same = seed_aware_compare(y, dict(enumerate(a)), dict(enumerate(a.copy())), ACC, n_boot=300)
    assert same["delta"] == 0 and same["p_value"] == 1.0


def test_a_run_of_the_wrong_length_is_named():
    y, a, b = simulate_study(np.random.default_rng(1), 300, 3, 3, 0.01)
    with pytest.raises(UnfreezeError, match=r"run 'bad' has 299 predictions for 300"):
        seed_aware_compare(y, dict(enumerate(a)), {"bad": b[0][:-1], 1: b[1], 2: b[2]}, ACC, n_boot=50)


def test_bootstrap_grouping_by_distinct_rows_keeps_the_variance():
    y, a, b = simulate_study(np.random.default_rng(12), 2000, 3, 3, 0.01)
    counts = np.stack([ACC.counts(y, p) for p in list(a) + list(b)])
    grouped = _bootstrap_scores(counts, ACC, 4000, seed=0)
    noise = np.random.default_rng(0).normal(0, 1e-9, counts.shape)  # every row distinct → per-example draws
    plain = _bootstrap_scores(counts + np.abs(noise), ACC, 4000, seed=0)
    assert np.allclose(grouped.std(0), plain.std(0), rtol=0.1) and np.allclose(grouped.mean(0), plain.mean(0),
                                                                               atol=3e-3)


def test_format_p_never_claims_more_than_the_resolution():
    assert format_p(0.0, 10_000) == "p < 0.0001"
    assert format_p(0.023, 10_000) == "p = 0.023"
    assert format_p(0.0004, 10_000) == "p = 0.0004"
    assert format_p(0.0004, 1000) == "p < 0.001"
    assert format_p(1.0, 1000) == "p = 1.000"
    assert format_p(None, 1000) == "p n/a"
