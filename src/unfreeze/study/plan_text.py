"""The one-line plan (`plan_study`: settings shrunk to the budget, then described) and what it says: the study
dict, what was traded away and what each trade saved, the further levers with their cost, what the test set alone costs, what the plan trains in words, and why it cannot answer the question
when it cannot. Every sentence is derived from the final settings against the ideal ones with `plan.CostModel`, so
no two lines can disagree ("2 seeds" next to "seeds 2 → 1" cannot happen: there is one settings object)."""
from __future__ import annotations

import math

from dataclasses import replace

from unfreeze.config.schema import TrainConfig
from unfreeze.tasks import get_task
from unfreeze.study.plan import (COMFORTABLE, MARGIN, OVER, SHORTEST, CostModel, DataFacts, Plan, Settings,
                                 cheapest_encoder, encoder_arms, ideal_settings, label, minutes_budget,
                                 proper_settings, shrink, smaller, take_back, train_floor, truncated_share,
                                 val_floor)


def _min(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def cut(model: CostModel, max_length: int) -> str:
    return f"cuts {100 * truncated_share(model.facts.lengths, max_length):.0f} % of texts"


def traded(s: Settings, ideal: Settings, model: CostModel) -> list[str]:
    """One line per setting that differs from the ideal study, with what that trade saves at the final plan."""
    total, lines = model.total(s), []

    def saves(**back) -> str:
        return f"saves {_min(model.total(replace(s, **back)) - total)}"

    if s.max_length != ideal.max_length:
        lines.append(f"max_length {ideal.max_length} → {s.max_length} ({cut(model, s.max_length)}; "
                     f"{cut(model, ideal.max_length)} at {ideal.max_length}): {saves(max_length=ideal.max_length)}")
    if s.epochs != ideal.epochs:
        lines.append(f"epochs {ideal.epochs} → {s.epochs}: {saves(epochs=ideal.epochs)}")
    if s.seeds < ideal.seeds:
        lines.append(f"seeds {ideal.seeds} → {s.seeds}" + (" (fewer than 3: no significance test)" if s.seeds < 3
                                                          else "") + f": {saves(seeds=ideal.seeds)}")
    if s.train_size != ideal.train_size:
        floor = train_floor(model.facts.n_train, model.facts.per_class)
        lines.append(f"training set {s.train_size:,} of {ideal.train_size:,} examples (floor {floor:,}): "
                     f"{saves(train_size=ideal.train_size)}")
    for freeze in ideal.arms:
        if freeze not in s.arms:
            per_run = sum(model.run(freeze, s).values())
            lines.append(f"{label(freeze)} dropped: {_min(per_run)} per run, {_min(per_run * s.seeds)} for "
                         f"{s.seeds} seed{'s' if s.seeds != 1 else ''}")
    return lines


def levers(s: Settings, model: CostModel, pinned: dict | None) -> list[str]:
    """The next levers (in order) and what the plan would cost with each."""
    out = []
    for name, after in smaller(s, model.facts, model.layers, pinned):
        what = f" ({cut(model, after.max_length)})" if after.max_length != s.max_length else ""
        line = f"{name}{what}: {_min(model.total(after))}"
        if line not in out:  # halving toward 1,000 and toward the floor can name the same training set
            out.append(line)
    if not get_task(model.facts.task).windows_long_inputs and s.max_length > 64 and s.max_length <= SHORTEST:
        after = replace(s, max_length=64)
        out.append(f"max_length 64 ({cut(model, 64)}; --set data.max_length=64): {_min(model.total(after))}")
    return out


def tried(s: Settings, model: CostModel) -> str:
    arms = [label(f) for f in s.arms] + ([f"{label(cheapest_encoder(s.arms, model.layers))} balanced"]
                                         if s.balanced and encoder_arms(s.arms, model.layers) else [])
    only = " only" if len(arms) == 1 else ""
    return (f"{' / '.join(arms)}{only}, {s.train_size:,} training examples, {s.epochs} epoch{'s' * (s.epochs != 1)}, "
            f"{s.seeds} seed{'s' * (s.seeds != 1)}, max_length {s.max_length}")


def weak(s: Settings, model: CostModel) -> list[str]:
    """Why the plan cannot tell whether fine-tuning pays (empty: it can)."""
    facts, out = model.facts, []
    if not encoder_arms(s.arms, model.layers):
        out.append("no arm trains encoder layers (head only)")
    if s.epochs < 2:
        out.append("1 epoch")
    if s.train_size < min(facts.n_train, COMFORTABLE):
        out.append(f"{s.train_size:,} of {facts.n_train:,} training examples")
    return out


def notes(s: Settings, model: CostModel, budget: float) -> list[str]:
    facts, out = model.facts, []
    total = model.total(s)
    if total > budget:
        out.append(f"over budget: the smallest study this planner makes is estimated at {_min(total)} for a "
                   f"{_min(budget)} budget ({100 * (total / budget - 1):.0f} % over; it runs up to {OVER - 1:.0%} "
                   "over, and refuses beyond)")
    if truncated_share(facts.lengths, s.max_length) > 0.05 and s.max_length >= facts.max_positions:
        out.append(f"max_length {s.max_length} (the model's limit) {cut(model, s.max_length)}")
    floor = min(val_floor(facts.per_class), facts.n_train + facts.val)
    if facts.val < floor:
        out.append(f"validation has {facts.val:,} examples, under the minimum of {floor:,} (max(200, 20 × "
                   f"classes), capped at the data): it may not separate the top rows")
    out.extend(facts.warnings)
    if facts.minority is not None:
        name, share = facts.minority
        if s.balanced:
            out.append(f"class {name!r} is {100 * share:.1f} % of the data: the plan adds the arm "
                       f"`{label(cheapest_encoder(s.arms, model.layers))} balanced` (train.class_weights: balanced)")
        else:
            out.append(f"class {name!r} is {100 * share:.1f} % of the data: the budget has no room for a "
                       "`train.class_weights: balanced` arm; add one with a larger --budget, or "
                       "--set train.class_weights=balanced")
    return out


def study_dict(s: Settings, model: CostModel, base: dict, name: str) -> dict:
    data = dict(base.get("data", {}))
    data["max_length"] = s.max_length
    if s.train_size < model.facts.n_train:
        data["train_size"] = s.train_size
    train = {**base.get("train", {}), "epochs": s.epochs}
    study = {"name": name, "base": {**base, "data": data, "train": train}}
    if s.balanced and encoder_arms(s.arms, model.layers):  # named arms: the extra one differs in two keys
        weighted = cheapest_encoder(s.arms, model.layers)
        arms = {label(f): {"freeze": f} for f in s.arms}
        arms[f"{label(weighted)} balanced"] = {"freeze": weighted, "train": {"class_weights": "balanced"}}
        study["arms"] = arms
    else:
        study["grid"] = {"freeze": list(s.arms)}
    return {**study, "seeds": list(range(s.seeds)), "baseline": True}


def describe(s: Settings, ideal: Settings, model: CostModel, budget: float, base: dict, name: str,
             pinned: dict | None = None) -> Plan:
    arms = [(arm, s.seeds, seconds) for arm, _, seconds in model.arms(s)]
    total = model.total(s)
    plan = Plan(study_dict(s, model, base, name), arms, model.parts(s), traded(s, ideal, model),
                levers(s, model, pinned), notes(s, model, budget), budget, fits=total <= budget,
                refused=total > OVER * budget, tried=tried(s, model), weak=weak(s, model),
                test_seconds=model.test_seconds(s), eval_seconds=model.eval_seconds(s),
                baseline=get_task(model.facts.task).baseline_name)
    proper = proper_settings(s, model.facts, model.layers)
    plan.proper_seconds, plan.proper = model.total(proper), tried(proper, model)
    if plan.refused:
        plan.levers.insert(0, f"--budget {minutes_budget(total)}: this smallest plan ({_min(total)})")
    if plan.weak or plan.refused:
        plan.levers.append(f"--budget {minutes_budget(plan.proper_seconds)}: {tried(proper, model)} "
                           f"({_min(plan.proper_seconds)})")
    return plan


def with_balanced(s: Settings, model: CostModel, usable: float, pinned: dict | None = None) -> Settings:
    """`s` with the `balanced` extra arm where inspect's imbalance rule fired and the budget allows it, bought before
    seeds 4 and 5 (take_back spends spare time on seeds; the arm answers a question, a 4th seed only narrows one)."""
    if model.facts.minority is None or not encoder_arms(s.arms, model.layers):
        return s
    lowest = s.seeds if "seeds" in (pinned or {}) else min(s.seeds, 3)
    fitting = (replace(s, balanced=True, seeds=n) for n in range(s.seeds, lowest - 1, -1))
    return next((c for c in fitting if model.total(c) <= usable), s)


def plan_study(facts: DataFacts, throughput: dict | None, budget_seconds: float, base: dict,
               layers: int, hidden: int, name: str = "one-line", pinned: dict | None = None,
               find_three: bool = True) -> Plan:
    """The study dict (`base` holds data + model; the planner sets data.max_length / train_size, train.epochs) and
    everything the plan says about it. `pinned`: Settings fields the user fixed (`--set data.max_length=128`)."""
    batch_size = int(base.get("train", {}).get("batch_size", TrainConfig().batch_size))
    model = CostModel(facts, throughput, layers, hidden, batch_size)
    usable = budget_seconds * MARGIN
    ideal = ideal_settings(facts, layers, pinned)
    s = shrink(ideal, model, usable, pinned, budget_seconds)
    s = take_back(s, ideal, model, max(usable, model.total(s)), pinned)
    s = with_balanced(s, model, usable, pinned)
    plan = describe(s, ideal, model, budget_seconds, base, name, pinned)
    if s.seeds < 3 and "seeds" not in (pinned or {}) and not plan.refused and find_three:
        _say_three_seed_budget(plan, s, facts, throughput, budget_seconds, base, layers, hidden, name, pinned)
    return plan


#: whole minutes above the budget tried one by one for the third seed (a plan costs ~35 ms to make)
SCAN = 30


def _say_three_seed_budget(plan: Plan, s: Settings, facts: DataFacts, throughput: dict | None, budget: float,
                           base: dict, layers: int, hidden: int, name: str, pinned: dict | None) -> None:
    """Note that the report gives no test verdict, and name a whole-minute budget whose plan (planned again, as the
    user would get it: the planner spends more time on other levers first) runs 3 seeds: the smallest within `SCAN`
    minutes of this one, else the smallest one bisection finds past them."""
    def seeds_at(minutes: int) -> tuple[int, Plan]:
        again = plan_study(facts, throughput, minutes * 60.0, base, layers, hidden, name, pinned, find_three=False)
        return len(again.study["seeds"]), again

    lo, hi = max(1, math.floor(budget / 60)), max(2, math.ceil(budget / 60))
    # not monotone: a larger budget can buy an encoder arm with the seeds (head only at 3 seeds at 11m, head / top-2
    # at 1 seed from 15m; hostile fuzz), so the next SCAN minutes are tried one by one before doubling
    first = next((m for m in range(hi, hi + SCAN) if seeds_at(m)[0] >= 3), None)
    lo, hi = (first - 1, first) if first else (hi + SCAN - 1, hi + SCAN)
    while seeds_at(hi)[0] < 3:
        lo, hi = hi, hi * 2
        if hi > 60 * 24 * 30:
            return
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if seeds_at(mid)[0] >= 3 else (mid, hi)
    minutes, three = hi, seeds_at(hi)[1]
    plan.notes.append(f"{s.seeds} seed{'s' * (s.seeds != 1)}: the report ranks the arms but gives no test verdict "
                      f"(it needs 3 seeds per arm; --budget {minutes}m runs 3)")
    plan.levers.append(f"--budget {minutes}m: {three.tried}, so the report can give a test verdict "
                       f"({_min(three.total_seconds)})")
