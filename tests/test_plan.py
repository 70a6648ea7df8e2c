"""The one-line study planner (pure: data facts + throughput + budget → study dict), without a model."""
import numpy as np
import pytest

from unfreeze.config.study import StudyConfig
from unfreeze.study.estimate import once_seconds, pass_seconds
from unfreeze.study.plan import DataFacts, plan_study

FAST = {"forward_tokens_per_s": 5000.0, "train_tokens_per_s": 1000.0}
BASE = {"data": {"train": "train.csv", "test": "test.csv"}, "model": {"name": "minilm"}}


def facts(n_train=2000, n_eval=400, length=40, long_share=0.0):
    lengths = np.full(n_train, length)
    lengths[: int(long_share * n_train)] = 300
    return DataFacts(n_train=n_train, n_eval=n_eval, lengths=lengths)


def test_generous_budget_keeps_every_strategy_full_data_and_at_least_three_seeds():
    plan = plan_study(facts(), FAST, budget_seconds=10 * 3600, base=BASE, layers=6, hidden=384)
    study = StudyConfig.model_validate(plan.study)
    assert study.grid["freeze"] == ["head", {"top_k": 2}, "all"] and study.baseline
    assert 3 <= len(study.seeds) <= 5 and study.base["train"]["epochs"] == 3
    assert study.base["data"]["max_length"] == 64 and "train_size" not in study.base["data"]
    assert plan.fits and not [t for t in plan.traded if "dropped" in t]


def test_estimate_matches_the_cost_model_and_fits_the_budget():
    budget = 20 * 60
    plan = plan_study(facts(), FAST, budget_seconds=budget, base=BASE, layers=6, hidden=384)
    assert plan.fits and plan.total_seconds <= 0.85 * budget
    data = plan.study["base"]["data"]
    n = data.get("train_size", 2000)
    mean = 40.0
    # once per study: the warm-up pass and the activation cache, filled for the deepest frozen arm (head: all 6)
    once = once_seconds(6, 384, mean * n, mean * 400, FAST, fill_share=1.0, warm_up=True)
    assert plan.total_seconds == pytest.approx(sum(runs * s for _, runs, s in plan.arms) + once)
    expected = pass_seconds(0, 6, 384, plan.study["base"]["train"]["epochs"], mean * n, mean * 400, True, FAST,
                            fill_share=0.0, n_steps=-(-n // 16))
    assert {a: s for a, _, s in plan.arms}["head"] == pytest.approx(expected)


def test_tight_budget_trades_things_away_and_says_so():
    plan = plan_study(facts(n_train=20000), FAST, budget_seconds=5 * 60, base=BASE, layers=6, hidden=384)
    text = "; ".join(plan.traded)
    assert "all dropped:" in text and "min per run" in text
    assert "training set" in text and "epochs 3 → 2" in text
    assert plan.study["baseline"] is True and "head" in plan.study["grid"]["freeze"]
    StudyConfig.model_validate(plan.study)


def test_max_length_is_the_smallest_that_truncates_little_and_cuts_are_reported():
    plan = plan_study(facts(long_share=0.2), FAST, 10 * 3600, BASE, layers=6, hidden=384)
    assert plan.study["base"]["data"]["max_length"] == 512  # 20 % are 300 tokens long
    squeezed = plan_study(facts(n_train=20000, long_share=0.1), FAST, 3 * 60, BASE, layers=6, hidden=384)
    assert squeezed.study["base"]["data"]["max_length"] in (256, 128, 64)
    assert any("cuts 10 % of texts" in t for t in squeezed.traded)


def test_impossible_budget_still_plans_the_smallest_study_and_says_it_does_not_fit():
    plan = plan_study(facts(n_train=100000), {"forward_tokens_per_s": 10.0, "train_tokens_per_s": 1.0}, 60, BASE,
                      layers=6, hidden=384)
    assert not plan.fits and plan.study["grid"]["freeze"] == ["head"] and plan.study["seeds"] == [0]
    assert any("still over budget" in t for t in plan.traded)


def test_two_layer_model_has_no_separate_top_2_arm():
    plan = plan_study(facts(), FAST, 10 * 3600, BASE, layers=2, hidden=32)
    assert plan.study["grid"]["freeze"] == ["head", "all"]
