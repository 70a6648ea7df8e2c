"""The one-line study planner (pure: data facts + throughput + budget → study dict), without a model."""
import re
from dataclasses import replace

import numpy as np
import pytest

from unfreeze.config.study import StudyConfig
from unfreeze.study.estimate import once_seconds, run_parts
from unfreeze.study.plan import CostModel, DataFacts, Settings, baseline_seconds, train_floor
from unfreeze.study.plan_text import plan_study

FAST = {"forward_tokens_per_s": 5000.0, "train_tokens_per_s": 1000.0}
MINILM_CPU = {"forward_tokens_per_s": 11000.0, "train_tokens_per_s": 2500.0, "step_seconds": 0.08}
BASE = {"data": {"train": "train.csv", "test": "test.csv"}, "model": {"name": "minilm"}}


def facts(n_train=2000, n_eval=400, length=40, long_share=0.0, classes=2, n_val=None, **kw):
    lengths = np.full(min(n_train, 1000), length)
    lengths[: int(long_share * len(lengths))] = 300
    return DataFacts(n_train=n_train, n_eval=n_eval, lengths=lengths, classes=classes, n_val=n_val, **kw)


def long_documents(classes=20):
    """#27's topics set: 10,146 training and 1,127 + 7,514 eval posts, 11 % over 512 tokens."""
    lengths = np.clip(np.random.default_rng(0).lognormal(5.4, 0.7, 1000).astype(int), 20, 3000)
    return DataFacts(n_train=10146, n_eval=1127 + 7514, n_val=1127, lengths=lengths, classes=classes)


def test_generous_budget_keeps_every_strategy_full_data_and_at_least_three_seeds():
    plan = plan_study(facts(), FAST, budget_seconds=10 * 3600, base=BASE, layers=6, hidden=384)
    study = StudyConfig.model_validate(plan.study)
    assert study.grid["freeze"] == ["head", {"top_k": 2}, "all"] and study.baseline
    assert 3 <= len(study.seeds) <= 5 and study.base["train"]["epochs"] == 3
    assert study.base["data"]["max_length"] == 64 and "train_size" not in study.base["data"]
    assert plan.fits and not plan.traded and not plan.weak and not plan.refused


def test_one_source_for_every_figure_the_arm_table_the_parts_and_the_footer_agree():
    """#25: a table total of 33.1 min under a footer of 98.7 min (the cache fill was not in the table)."""
    plan = plan_study(facts(), FAST, budget_seconds=20 * 60, base=BASE, layers=6, hidden=384)
    parts = plan.parts
    assert set(parts) == {"cache_fill", "train", "validation", "final", "fixed", "baseline", "study"}
    runs = sum(runs * seconds for _, runs, seconds in plan.arms)
    assert runs + parts["cache_fill"] + parts["baseline"] + parts["study"] == pytest.approx(plan.total_seconds)
    assert sum(parts.values()) == pytest.approx(plan.total_seconds) and plan.total_seconds <= 0.9 * 20 * 60
    n = plan.study["base"]["data"].get("train_size", 2000)
    epochs = plan.study["base"]["train"]["epochs"]
    # once per study: the warm-up and the activation cache, filled for the deepest frozen arm (head: all 6)
    once = once_seconds(6, 384, 40.0 * n, 40.0 * 400, FAST, fill_share=1.0, warm_up=True)
    head = run_parts(0, 6, 384, epochs, 40.0 * n, 40.0 * 400, True, FAST, n_val_tokens=40.0 * 200, fill_share=0.0,
                     n_steps=-(-n // 16), step_share=0.0)
    assert parts["cache_fill"] == pytest.approx(once)
    assert {a: s for a, _, s in plan.arms}["head"] == pytest.approx(sum(head.values()))
    assert parts["baseline"] == pytest.approx(baseline_seconds(facts(), n))


def test_evaluation_through_the_cache_costs_only_the_trainable_layers():
    """A head run's final pass is the head's alone; the frozen forward over val + test is the study's cache fill."""
    head = run_parts(0, 6, 384, 2, 1e5, 1e6, True, FAST, fill_share=0.0)
    top2 = run_parts(2, 6, 384, 2, 1e5, 1e6, True, FAST, fill_share=0.0)
    full = run_parts(6, 6, 384, 2, 1e5, 1e6, False, FAST)
    assert head["final"] == pytest.approx(1e6 / 5000 * 0.02) and head["cache_fill"] == 0
    assert top2["final"] == pytest.approx(5e5 * 2 / 6 / 5000 + 1e6 / 5000 * 0.02)  # test only
    assert full["final"] == pytest.approx(5e5 / 5000 + 1e6 / 5000 * 0.02)


def test_tight_budget_on_long_documents_cuts_max_length_and_seeds_before_data_and_keeps_top_2():
    """#27: a 20-class long-text set at 8 min was planned as head on 100 examples, 1 epoch. Now: max_length 128
    first, an arm that trains encoder layers kept, never below the floor of the training set."""
    plan = plan_study(long_documents(), MINILM_CPU, 8 * 60, BASE, layers=6, hidden=384)
    data, study = plan.study["base"]["data"], plan.study
    assert data["max_length"] == 128 and {"top_k": 2} in study["grid"]["freeze"]
    assert data.get("train_size", 10146) >= train_floor(10146, 20) == 500
    assert study["base"]["train"]["epochs"] >= 2 and not plan.refused
    # under 1,000 examples only to buy the third seed (a test verdict) with at most a quarter of the data
    assert not plan.weak or (len(study["seeds"]) == 3 and data["train_size"] >= 750)
    text = "; ".join(plan.traded)
    assert "max_length 512 → 128 (cuts" in text and "saves" in text and "all dropped" in text


def test_what_the_plan_says_matches_the_study_it_writes():
    """#25: "plan … 2 seeds" next to "traded away: seeds 2 → 1" — every line derives from the one final plan."""
    for budget in (3, 8, 25, 120):
        plan = plan_study(long_documents(), MINILM_CPU, budget * 60, BASE, layers=6, hidden=384)
        seeds, epochs = len(plan.study["seeds"]), plan.study["base"]["train"]["epochs"]
        assert f"{seeds} seed" in plan.tried and f"{epochs} epoch" in plan.tried
        for line in plan.traded:
            if line.startswith("seeds"):
                assert line.startswith(f"seeds 3 → {seeds}")
            if line.startswith("epochs"):
                assert line.startswith(f"epochs 3 → {epochs}")
        assert all(runs == seeds for _, runs, _ in plan.arms)


def test_smallest_plan_far_over_budget_is_refused_with_the_choices():
    plan = plan_study(long_documents(), MINILM_CPU, 60, BASE, layers=6, hidden=384)
    assert plan.refused and not plan.fits and plan.total_seconds > 1.2 * 60
    assert plan.levers[0].startswith("--budget ") and plan.test_seconds > 0 and plan.eval_seconds > plan.test_seconds
    assert plan.study["base"]["data"]["train_size"] == 500  # the floor, never 100
    assert any(line.startswith("max_length 64") for line in plan.levers)


def test_a_plan_too_small_to_answer_says_so_and_what_budget_would():
    plan = plan_study(long_documents(), {"forward_tokens_per_s": 4000.0, "train_tokens_per_s": 300.0}, 4 * 60,
                      BASE, layers=6, hidden=384)
    assert plan.weak and "top-2" in plan.proper
    assert plan.proper_seconds > plan.total_seconds
    assert any(line.startswith("--budget ") and plan.proper in line for line in plan.levers)


def test_max_length_is_the_smallest_that_truncates_little_and_cuts_are_reported():
    plan = plan_study(facts(long_share=0.2), FAST, 10 * 3600, BASE, layers=6, hidden=384)
    assert plan.study["base"]["data"]["max_length"] == 512  # 20 % are 300 tokens long
    squeezed = plan_study(facts(n_train=20000, long_share=0.1), FAST, 3 * 60, BASE, layers=6, hidden=384)
    assert squeezed.study["base"]["data"]["max_length"] in (256, 128)
    assert any("cuts 10 % of texts" in t for t in squeezed.traded)


def test_token_task_baseline_is_the_most_frequent_tag_and_sentences_are_windowed_not_cut():
    plan = plan_study(facts(task="token", long_share=0.1), FAST, 10 * 60, BASE, layers=6, hidden=384)
    assert plan.baseline == "most-frequent tag" and not any("max_length" in t for t in plan.traded)


def test_an_imbalanced_class_gets_a_balanced_arm_when_the_budget_allows_else_a_suggestion():
    rare = facts(minority=("neutral", 0.09), classes=3)
    plan = plan_study(rare, FAST, 10 * 3600, BASE, layers=6, hidden=384)
    study = StudyConfig.model_validate(plan.study)
    assert study.arms["top-2 balanced"] == {"freeze": {"top_k": 2}, "train": {"class_weights": "balanced"}}
    assert any("neutral" in n and "adds" in n for n in plan.notes)
    tight = plan_study(rare, {"forward_tokens_per_s": 200.0, "train_tokens_per_s": 40.0}, 15 * 60, BASE, 6, 384)
    assert "arms" not in tight.study and any("class_weights: balanced" in n for n in tight.notes)


def test_settings_the_user_pins_with_set_are_kept_and_estimated():
    plan = plan_study(long_documents(), MINILM_CPU, 8 * 60, BASE, layers=6, hidden=384,
                      pinned={"max_length": 256, "epochs": 1})
    assert plan.study["base"]["data"]["max_length"] == 256 and plan.study["base"]["train"]["epochs"] == 1
    assert "1 epoch," in plan.tried


def test_small_validation_split_is_noted():
    plan = plan_study(facts(n_val=60, n_eval=300, classes=3), FAST, 10 * 60, BASE, layers=6, hidden=384)
    assert any("validation has 60 examples, under the minimum of 200" in n for n in plan.notes)


def test_two_layer_model_has_no_separate_top_2_arm():
    plan = plan_study(facts(), FAST, 10 * 3600, BASE, layers=2, hidden=32)
    assert plan.study["grid"]["freeze"] == ["head", "all"]


def test_the_last_arm_that_trains_layers_stays_while_the_plan_fits_the_budget_itself():
    """At 8 min on the topics set (busier CPU), top-2 at its smallest is just over 90 % of the budget but under the
    budget: it is kept (head only cannot answer the question), and the plan says it cannot train properly."""
    slow = {"forward_tokens_per_s": 5500.0, "train_tokens_per_s": 1000.0, "step_seconds": 0.08}
    plan = plan_study(long_documents(), slow, 8 * 60, BASE, layers=6, hidden=384)
    assert {"top_k": 2} in plan.study["grid"]["freeze"] and plan.total_seconds <= 8 * 60
    assert plan.weak and "A budget" not in plan.tried


def test_token_task_floors_count_sentences_not_tags():
    tags = facts(n_train=3384, n_eval=1400, n_val=400, classes=110, task="token")
    plan = plan_study(tags, {"forward_tokens_per_s": 200.0, "train_tokens_per_s": 40.0}, 10 * 60, BASE, 6, 384)
    assert plan.study["base"]["data"].get("train_size", 3384) >= 500
    assert not any("validation has" in n for n in plan.notes)  # 400 sentences ≥ 200


def test_pinned_seeds_are_the_seeds_the_plan_prices_even_with_time_to_spare():
    """`--set seeds=[0,1,2]` runs 3 seeds: the plan used to add seeds up to 5 with time to spare and priced 5 runs
    per arm (the study file then ran 3: an estimate of a study that never runs)."""
    free = plan_study(facts(), FAST, 10 * 3600, BASE, layers=6, hidden=384)
    assert len(free.study["seeds"]) == 5  # with time to spare the planner adds seeds…
    plan = plan_study(facts(), FAST, 10 * 3600, BASE, layers=6, hidden=384, pinned={"seeds": 3})
    assert len(plan.study["seeds"]) == 3 and all(runs == 3 for _, runs, _ in plan.arms)  # …but not pinned ones
    assert "3 seeds" in plan.tried and plan.total_seconds < free.total_seconds
    four = plan_study(facts(), FAST, 10 * 3600, BASE, layers=6, hidden=384, pinned={"seeds": 4})
    assert all(runs == 4 for _, runs, _ in four.arms)


def test_long_documents_with_a_large_test_split_at_4_minutes_refuse_on_a_busy_machine_and_run_on_a_quiet_one():
    """#27's done-when set: 3,000 training and 4,000 test documents of 300-700 words (BBC News, built by
    `bench_estimate.py --long-docs`), `--budget 4m`. At the throughput measured on the shared 2-core machine under
    load, evaluation alone exceeds the budget: refused, naming that cost and the choices. At a quiet machine's rate
    the smallest plan fits within +20 % and keeps its baseline row."""
    lengths = np.random.default_rng(0).integers(390, 900, 1000)  # 300-700 words: ~390-900 MiniLM tokens
    docs = DataFacts(n_train=2700, n_eval=300 + 3988, n_val=300, lengths=lengths, classes=5)
    loaded = {"forward_tokens_per_s": 487.1, "train_tokens_per_s": 103.2, "step_seconds": 1.32}  # measured, load 2.6
    plan = plan_study(docs, loaded, 4 * 60, BASE, layers=6, hidden=384)
    assert plan.refused and plan.eval_seconds > 4 * 60 and plan.test_seconds > 4 * 60
    assert plan.levers[0].startswith("--budget ") and any(line.startswith("max_length 64") for line in plan.levers)
    assert plan.study["base"]["data"]["max_length"] == 128 and plan.study["base"]["data"]["train_size"] == 500
    quiet = plan_study(docs, {"forward_tokens_per_s": 5500.0, "train_tokens_per_s": 1000.0, "step_seconds": 0.08},
                       4 * 60, BASE, layers=6, hidden=384)
    assert not quiet.refused and quiet.total_seconds <= 1.2 * 4 * 60 and quiet.study["baseline"]


def test_time_left_after_the_trades_buys_training_data_before_epochs():
    """#27, measured: BBC News at --budget 25m (throughput measured under load) was planned as top-2 on 500 of 1,700
    examples and 3 epochs, estimated at 16.8 of 25 min: taking data back only by doubling (500 → 1,000 did not fit)
    gave the rest to epochs and left a third of the budget unused. Data is taken back first, as much as fits."""
    lengths = np.random.default_rng(0).integers(150, 900, 1000)
    bbc = DataFacts(n_train=1700, n_eval=422, n_val=212, lengths=lengths, classes=5)
    loaded = {"forward_tokens_per_s": 487.1, "train_tokens_per_s": 103.2, "step_seconds": 1.32}
    plan = plan_study(bbc, loaded, 25 * 60, BASE, layers=6, hidden=384)
    assert {"top_k": 2} in plan.study["grid"]["freeze"] and plan.study["base"]["train"]["epochs"] >= 2
    n = plan.study["base"]["data"]["train_size"]
    assert n > 900 and plan.total_seconds <= 0.9 * 25 * 60
    study = plan.study
    more = Settings(arms=study["grid"]["freeze"], epochs=study["base"]["train"]["epochs"], seeds=len(study["seeds"]),
                    train_size=n + 60, max_length=study["base"]["data"]["max_length"])
    assert CostModel(bbc, loaded, 6, 384, 16).total(more) > 0.9 * 25 * 60  # 60 more examples (> 1 %) do not fit


def test_a_third_seed_comes_before_training_data_beyond_a_thousand_examples():
    """#27, measured: tweets at --budget 8m were planned on 2,544 examples with 2 seeds, so the report had no test
    verdict where a hand-written 3-seed study on 1,000 examples had one. Data beyond 1,000 examples now goes before
    the third seed; the levers are listed once each."""
    tweets = facts(n_train=2692, n_eval=1200, length=30, classes=3)
    plan = plan_study(tweets, MINILM_CPU, 6 * 60, BASE, layers=6, hidden=384)
    n = plan.study["base"]["data"].get("train_size", 2692)
    assert len(plan.study["seeds"]) >= 3 and 1000 <= n < 2692 and {"top_k": 2} in plan.study["grid"]["freeze"]
    assert not any(line.startswith("seeds") for line in plan.traded)
    assert len(plan.levers) == len(set(plan.levers))
    three = Settings(arms=plan.study["grid"]["freeze"], epochs=plan.study["base"]["train"]["epochs"], seeds=3,
                     train_size=n, max_length=plan.study["base"]["data"]["max_length"])
    two = replace(three, seeds=2, train_size=2692)
    assert CostModel(tweets, MINILM_CPU, 6, 384, 16).total(two) <= 0.9 * 6 * 60  # the old plan would have fit


def test_a_plan_under_3_seeds_says_the_report_gives_no_test_verdict_and_what_budget_gives_3():
    """The budget named is the smallest whole-minute budget whose plan, planned again, runs 3 seeds (pricing the same
    plan with 3 seeds named budgets that re-planned to 1 seed: the planner spends time on data and epochs first)."""
    cases = [(long_documents(), MINILM_CPU, 6 * 60), (long_documents(), MINILM_CPU, 5 * 60),
             (facts(n_train=3000, length=300, classes=5), MINILM_CPU, 60)]
    for data, speed, budget in cases:
        plan = plan_study(data, speed, budget, BASE, layers=6, hidden=384)
        assert len(plan.study["seeds"]) < 3 and not plan.refused
        note = next(line for line in plan.notes if "no test verdict" in line)
        lever = next(line for line in plan.levers if "so the report can give a test verdict" in line)
        minutes = int(lever.split(":")[0].split()[1].rstrip("m"))
        assert f"--budget {minutes}m" in note and minutes * 60 > budget
        assert len(plan_study(data, speed, minutes * 60, BASE, layers=6, hidden=384).study["seeds"]) >= 3
        assert len(plan_study(data, speed, (minutes - 1) * 60, BASE, layers=6, hidden=384).study["seeds"]) < 3
    pinned = plan_study(long_documents(), MINILM_CPU, 6 * 60, BASE, layers=6, hidden=384, pinned={"seeds": 2})
    assert not any("no test verdict" in line for line in pinned.notes)


def test_time_to_spare_buys_seeds_up_to_5_even_for_head_only():
    """The hostile tester: take_back tried 3 seeds, then 'at least 2' — which undid the third — so a head-only
    plan with unlimited time stopped at 2 seeds and told the user to raise a budget it was already within."""
    slow_training = {"forward_tokens_per_s": 5000.0, "train_tokens_per_s": 30.0}
    for budget in (60, 120, 240):
        plan = plan_study(facts(), slow_training, budget, BASE, layers=6, hidden=384)
        assert plan.study["grid"]["freeze"] == ["head"] and len(plan.study["seeds"]) >= 3
        assert not any("no test verdict" in line for line in plan.notes)


def test_a_plan_at_512_tokens_is_priced_with_the_figure_timed_at_512():
    """#27 item 8, measured: long documents timed at 256 tokens and run at 512 took 35 % longer than estimated
    (a 512-token run costs 1.4-2× more per token). With a second figure timed at 512 (`"longer"`), a plan at 512
    is priced with it; plans at 256 or 128 keep the 256-token figure."""
    lengths = np.random.default_rng(0).integers(390, 900, 1000)
    docs = DataFacts(n_train=800, n_eval=300 + 3975, n_val=300, lengths=lengths, classes=5)
    at_256 = {**MINILM_CPU, "max_length": 256}
    at_512 = {"forward_tokens_per_s": 8000.0, "train_tokens_per_s": 1250.0, "step_seconds": 0.08, "max_length": 512}
    both = {**at_256, "longer": at_512}
    s = Settings(arms=["head", {"top_k": 2}], epochs=2, seeds=1, train_size=800, max_length=512)
    assert CostModel(docs, both, 6, 384, 16).total(s) == CostModel(docs, at_512, 6, 384, 16).total(s)
    assert CostModel(docs, both, 6, 384, 16).total(s) > 1.2 * CostModel(docs, at_256, 6, 384, 16).total(s)
    for shorter in (256, 128):
        s = replace(s, max_length=shorter)
        assert CostModel(docs, both, 6, 384, 16).total(s) == CostModel(docs, at_256, 6, 384, 16).total(s)


@pytest.mark.parametrize("minutes", [3, 4, 5, 6, 8, 10, 15])
@pytest.mark.parametrize("case", ["long documents", "short texts"])
def test_a_plan_under_3_seeds_could_not_buy_the_third_seed_with_a_quarter_of_its_data(minutes, case):
    """Measured (#27): long documents at --budget 4m were planned as head on 1,053 examples with 2 seeds, where 3
    seeds cost 0.1 min more (5 % of the data): the report then gave no test verdict. A plan under 3 seeds now
    means no 3-seed plan of the same arms, epochs and max_length fits on 75 % of its data (or the floor; 1,000
    examples for a plan that is not weak)."""
    from unfreeze.study.plan import SEED_FOR_DATA, train_floor

    if case == "long documents":
        data = DataFacts(n_train=2700, n_eval=300 + 3988, n_val=300, classes=5,
                         lengths=np.random.default_rng(0).integers(390, 900, 1000))
    else:
        data = facts(n_train=9000, n_eval=2000, length=30, classes=3)
    rates = {"forward_tokens_per_s": 6310.9, "train_tokens_per_s": 1168.3, "step_seconds": 0.059}  # measured
    plan = plan_study(data, rates, minutes * 60, BASE, layers=6, hidden=384)
    if plan.refused or len(plan.study["seeds"]) >= 3:
        return
    study = plan.study
    n = study["base"]["data"].get("train_size", data.n_train)
    floor = train_floor(data.n_train, data.per_class)
    if n >= 1000 and study["base"]["train"]["epochs"] >= 2 and study["grid"]["freeze"] != ["head"]:
        floor = max(floor, 1000)  # a plan that can answer the question does not turn weak for the seed
    lowest = max(floor, int(np.ceil((1 - SEED_FOR_DATA) * n)))
    three = Settings(arms=study["grid"]["freeze"], epochs=study["base"]["train"]["epochs"], seeds=3,
                     train_size=lowest, max_length=study["base"]["data"]["max_length"])
    assert lowest > n or CostModel(data, rates, 6, 384, 16).total(three) > 0.9 * minutes * 60


def test_the_third_seed_is_bought_with_a_few_percent_of_the_data():
    lengths = np.random.default_rng(0).integers(390, 900, 1000)
    docs = DataFacts(n_train=2700, n_eval=300 + 3988, n_val=300, lengths=lengths, classes=5)
    rates = {"forward_tokens_per_s": 6310.9, "train_tokens_per_s": 1168.3, "step_seconds": 0.059}
    seeds = {m: len(plan_study(docs, rates, m * 60, BASE, layers=6, hidden=384).study["seeds"]) for m in (4, 5, 6)}
    assert 3 in seeds.values()


@pytest.mark.parametrize("minutes", [3, 4, 5, 8])
def test_no_trade_that_saves_nothing_is_kept(minutes):
    """Measured (#27): a head-only plan for long documents at --budget 4m said "traded away: epochs 3 → 2: saves
    0.0 min" (its head trains on cached activations): harm to the decision for no time."""
    lengths = np.random.default_rng(0).integers(390, 900, 1000)
    docs = DataFacts(n_train=2700, n_eval=300 + 3988, n_val=300, lengths=lengths, classes=5)
    rates = {"forward_tokens_per_s": 6310.9, "train_tokens_per_s": 1168.3, "step_seconds": 0.059}
    plan = plan_study(docs, rates, minutes * 60, BASE, layers=6, hidden=384)
    if plan.total_seconds > 0.9 * minutes * 60:  # the smallest plan, over its margin: every lever is pulled
        return
    assert not [line for line in plan.traded if "saves 0.0 min" in line]


def _seeds(plan) -> int:
    return len(plan.study["seeds"])


def test_the_budget_named_for_three_seeds_is_the_smallest_although_a_larger_one_can_trade_seeds_for_top_2():
    """Hostile fuzz: '--budget 43m runs 3' where 11m already did; the search assumed a larger budget never loses
    the third seed, but from some budget on the planner buys top-2 with the seeds."""
    tp = {"forward_tokens_per_s": 961.3, "train_tokens_per_s": 107.4, "step_seconds": 0.255, "max_length": 256,
          "longer": {"forward_tokens_per_s": 646.1, "train_tokens_per_s": 72.2, "step_seconds": 0.255,
                     "max_length": 512}}
    lengths = np.clip(np.random.default_rng(0).lognormal(np.log(43), 0.8, 1000).astype(int), 3, 600)
    data = DataFacts(n_train=984, n_eval=6410, lengths=lengths, classes=22)
    base = {**BASE, "train": {"batch_size": 8}}
    plan = plan_study(data, tp, 480, base, layers=6, hidden=128)
    named = int(re.search(r"--budget (\d+)m runs 3", " ".join(plan.notes)).group(1))
    seeds = [_seeds(plan_study(data, tp, m * 60, base, 6, 128, find_three=False)) for m in range(8, named + 1)]
    assert seeds[-1] >= 3 and max(seeds[:-1], default=0) < 3


def test_the_balanced_arm_is_bought_before_a_fourth_seed():
    """Hostile fuzz: 'the budget has no room for a balanced arm' above a plan of 5 seeds (take_back spends spare
    time on seeds first); 3 seeds with the arm cost 6.8 of 10.8 usable minutes."""
    data = DataFacts(n_train=1500, n_eval=400, lengths=np.full(1000, 30), classes=3, minority=("neutral", 0.09))
    for minutes in (9, 12, 16):
        plan = plan_study(data, MINILM_CPU, minutes * 60, BASE, layers=6, hidden=384)
        assert "top-2 balanced" in plan.study.get("arms", {}) and _seeds(plan) >= 3, minutes
        assert not any("no room" in n for n in plan.notes)
    pinned = plan_study(data, MINILM_CPU, 12 * 60, BASE, 6, 384, pinned={"seeds": 5})
    assert _seeds(pinned) == 5


def test_a_near_free_first_max_length_step_does_not_hide_the_next():
    """Hostile fuzz: texts just over 256 tokens, no 512 figure: 512 → 256 saved 0.4 % and was skipped as negligible,
    256 → 128 (35 %) was never offered, and the plan gave up its seeds instead (1 seed at 512)."""
    lengths = np.full(1000, 200)
    lengths[:70] = 270
    plan = plan_study(DataFacts(n_train=3000, n_eval=1000, lengths=lengths, classes=3), MINILM_CPU, 4 * 60, BASE,
                      layers=6, hidden=384)
    assert plan.study["base"]["data"]["max_length"] == 128 and _seeds(plan) >= 3 and plan.fits


def test_no_arm_trains_more_layers_than_the_model_has():
    plan = plan_study(facts(), FAST, 10 * 3600, BASE, layers=1, hidden=384)
    assert plan.study["grid"]["freeze"] == ["head", "all"]
