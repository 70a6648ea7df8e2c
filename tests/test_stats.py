"""Statistics on constructed predictions with known answers."""
import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import accuracy_score

from unfreeze.metrics.stats import best_arm, compare_with_best, holm, mcnemar, paired_bootstrap, summarize


def test_summarize_matches_scipy_t_interval():
    values = [0.81, 0.79, 0.84, 0.80]
    s = summarize(values)
    low, high = sps.t.interval(0.95, 3, loc=np.mean(values), scale=sps.sem(values))
    assert s["mean"] == pytest.approx(np.mean(values)) and s["std"] == pytest.approx(np.std(values, ddof=1))
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((low, high))
    one = summarize([0.5])
    assert one["std"] == 0 and np.isnan(one["ci_low"])


def constructed(seed, n=400, acc_a=0.9, acc_b=0.7, seeds=3):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    flip = lambda acc: np.where(rng.random(n) < acc, y, 1 - y)  # noqa: E731
    return y, [flip(acc_a) for _ in range(seeds)], [flip(acc_b) for _ in range(seeds)]


def test_paired_bootstrap_detects_a_real_gap():
    y, a, b = constructed(0)
    result = paired_bootstrap(y, a, b, accuracy_score, n_boot=500)
    assert result["delta"] == pytest.approx(0.2, abs=0.04) and result["p_value"] < 0.01
    assert result["ci_low"] > 0


def test_paired_bootstrap_no_gap_is_not_significant():
    y, a, _ = constructed(1)
    result = paired_bootstrap(y, a, [p.copy() for p in a], accuracy_score, n_boot=300)
    assert result["delta"] == 0 and result["p_value"] == 1.0


def test_mcnemar_known_value():
    y = np.zeros(20, dtype=int)
    a = y.copy()
    b = y.copy()
    b[:8] = 1  # 8 discordant pairs, all in favour of a
    assert mcnemar(y, a, b) == pytest.approx(2 * 0.5 ** 8)
    assert mcnemar(y, a, a) == 1.0


def test_holm():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_best_arm_is_chosen_on_validation_not_test():
    val = {"a": 0.80, "b": 0.78}
    test = {"a": 0.70, "b": 0.90}  # b is better on test, but we never look there to choose
    assert best_arm(val) == "a" and best_arm(test) == "b"
    assert best_arm({"a": 0.3, "b": 0.2}, lower_is_better=True) == "b"


def test_compare_with_best_marks_only_real_gaps():
    y, good, bad = constructed(2)
    same = [p.copy() for p in good]
    rows = compare_with_best("good", {"good": good, "bad": bad, "same": same}, y, accuracy_score, n_boot=2000)
    assert rows["bad"]["significant"] and not rows["same"]["significant"]
    assert rows["bad"]["decidable"] and "paired over 3 shared seeds" in rows["bad"]["test"]
    assert rows["bad"]["delta"] == pytest.approx(np.mean([accuracy_score(y, p) for p in good])
                                                 - np.mean([accuracy_score(y, p) for p in bad]))


def test_fewer_than_three_seeds_get_no_mark_only_the_labelled_test_set_column():
    """Changed with the seed-aware test: one run per arm used to get McNemar and a mark; now it gets no mark
    and the exact McNemar survives only as the secondary 'test-set only' p-value."""
    y, good, bad = constructed(2)
    single = compare_with_best("good", {"good": good[:1], "bad": bad[:1]}, y, accuracy_score)
    row = single["bad"]
    assert not row["decidable"] and not row["significant"] and not row["worse"] and row["p_holm"] is None
    assert row["test"].startswith("1 seeds: no seed-aware test")
    assert row["test_set_only"]["test"].startswith("McNemar") and row["test_set_only"]["p_value"] < 0.01
    two = compare_with_best("good", {"good": good[:2], "bad": bad[:2], "ok": good}, y, accuracy_score, n_boot=500)
    assert not two["bad"]["significant"] and two["bad"]["test"].startswith("2 seeds: no seed-aware test")


def test_single_runs_with_an_f1_metric_use_the_bootstrap_not_mcnemar():
    from unfreeze.metrics.counts import classification_metric

    y, good, bad = constructed(3)
    labels = [str(v) for v in (0, 1)]
    as_text = lambda arrays: [a.astype(str) for a in arrays]  # noqa: E731
    f1 = classification_metric("f1_macro", labels)
    single = compare_with_best("good", {"good": as_text(good[:1]), "bad": as_text(bad[:1])}, y.astype(str), f1,
                               n_boot=300)
    secondary = single["bad"]["test_set_only"]
    assert secondary["test"].startswith("paired bootstrap over test examples only") and secondary["p_value"] < 0.01
    assert not single["bad"]["significant"]
    three = compare_with_best("good", {"good": as_text(good), "bad": as_text(bad)}, y.astype(str), f1, n_boot=500)
    assert three["bad"]["worse"]


def test_test_set_only_column_matches_the_old_paired_bootstrap():
    """The secondary column is the old test: same Δ as `paired_bootstrap`, p-values agree within MC noise."""
    y, good, bad = constructed(6, acc_a=0.8, acc_b=0.77)
    old = paired_bootstrap(y, good, bad, accuracy_score, n_boot=4000)
    row = compare_with_best("good", {"good": good, "bad": bad}, y, accuracy_score, n_boot=4000)["bad"]
    assert row["delta"] == pytest.approx(old["delta"])
    assert row["test_set_only"]["p_value"] == pytest.approx(old["p_value"], abs=0.03)


def test_an_arm_significantly_better_on_test_is_not_marked_worse():
    """The best arm is picked on validation; another arm may beat it on test. That gap is 'better', not 'worse'."""
    y, strong, weak = constructed(4)
    rows = compare_with_best("picked_on_val", {"picked_on_val": weak, "beats_it": strong}, y, accuracy_score,
                             n_boot=300)
    row = rows["beats_it"]
    assert row["significant"] and row["delta"] < 0
    assert row["better"] and not row["worse"]
    rows = compare_with_best("picked_on_val", {"picked_on_val": strong, "loses": weak}, y, accuracy_score,
                             n_boot=300)
    assert rows["loses"]["worse"] and not rows["loses"]["better"]


def test_runs_are_not_paired_every_run_of_each_arm_counts():
    """Changed with the seed-aware test: runs are independent draws, so a seed missing in one arm does not drop
    the other arm's run of that seed (the old test paired by seed and used 2 of 3 runs here)."""
    y, good, _ = constructed(5)
    best = {0: good[0], 1: good[1], 2: good[2]}
    arm = {0: good[0].copy(), 2: good[2].copy(), 3: good[1].copy()}
    row = compare_with_best("best", {"best": best, "b": arm}, y, accuracy_score, n_boot=500)["b"]
    assert row["seeds_best"] == 3 and row["seeds_other"] == 3 and row["delta"] == pytest.approx(0)
    assert not row["significant"] and row["test_set_only"]["pairs"] == 2
