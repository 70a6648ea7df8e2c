"""The one-line study's planner: data facts + measured throughput + a time budget → a study (plain data).

`unfreeze study --data train.csv --budget 20m` should answer the seed question (freeze, unfreeze the top layers,
or unfreeze all?) as well as the budget allows, and say what it gave up. The planner starts from the study we
would run with unlimited time — head / top-2 / all, the full training set, 3 epochs, 3 seeds, the smallest
max_length of 64 / 128 / 256 / 512 that truncates at most 5 % of texts — then, while the estimate exceeds the
budget (less a 15 % margin for the baseline, the report and loading), gives things up in this order, each step noted:

1. epochs 3 → 2;
2. the most expensive strategy (all layers), when one run of it would take more than a third of the budget;
3. a shorter max_length, while it truncates at most 15 % of texts;
4. the training set, halved down to 500 examples (the learning-curve question survives smaller data);
5. seeds 3 → 2 → 1 (fewer than 3 seeds: no significance test; the plan says so);
6. the next most expensive strategy, then epochs → 1, then the training set down to 100.

With time to spare it adds seeds (up to 5). The TF-IDF baseline row is always in (it costs seconds). Run times come
from `estimate.pass_seconds` with this machine's measured throughput. Pure: no model, no files.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unfreeze.config.schema import FreezeConfig, TrainConfig
from unfreeze.strategies import get_strategy
from unfreeze.study.estimate import EMBEDDING_SHARE, once_seconds, pass_seconds, prefilled_share

MAX_LENGTHS = (64, 128, 256, 512)
TRUNCATE_OK = 0.05
TRUNCATE_MAX = 0.15
MARGIN = 0.85
STRATEGIES: tuple = ("head", {"top_k": 2}, "all")


@dataclass
class DataFacts:
    """What the planner needs to know about the data: split sizes and the token length of every training text
    (special tokens included, untruncated)."""

    n_train: int
    n_eval: int
    lengths: np.ndarray
    max_positions: int = 512


@dataclass
class Plan:
    study: dict
    arms: list[tuple[str, int, float]]  # (arm, runs, seconds per run)
    traded: list[str] = field(default_factory=list)
    total_seconds: float = 0.0
    fits: bool = True


def truncated_share(lengths: np.ndarray, max_length: int) -> float:
    return float((np.asarray(lengths) > max_length).mean())


def _tokens(facts: DataFacts, max_length: int, train_size: int) -> tuple[float, float]:
    mean = float(np.minimum(facts.lengths, max_length).mean())
    return mean * train_size, mean * facts.n_eval


def _per_run(freeze, layers: int, hidden: int, epochs: int, train_tokens: float, eval_tokens: float,
             throughput: dict | None, n_steps: float = 0.0) -> float:
    cfg = FreezeConfig.model_validate(freeze)
    strategy = get_strategy(cfg.strategy)
    trained = strategy.trained_layers(cfg, layers) or 0
    embeddings = (throughput or {}).get("embedding_share", EMBEDDING_SHARE)
    return pass_seconds(trained, layers, hidden, epochs, train_tokens, eval_tokens,
                        strategy.cached_top(cfg) is not None, throughput, fill_share=0.0, n_steps=n_steps,
                        step_share=strategy.stepped_share(cfg, layers, embeddings))


def _once(strategies, layers: int, hidden: int, train_tokens: float, eval_tokens: float,
          throughput: dict | None) -> float:
    """The study's one-off cost: warm-up + one activation cache fill as deep as the deepest frozen strategy."""
    shares = [prefilled_share(FreezeConfig.model_validate(s), layers) for s in strategies]
    return once_seconds(layers, hidden, train_tokens, eval_tokens, throughput,
                        max((s for s in shares if s is not None), default=0.0), warm_up=True)


def _label(freeze) -> str:
    return FreezeConfig.model_validate(freeze).label


def plan_study(facts: DataFacts, throughput: dict | None, budget_seconds: float, base: dict,
               layers: int, hidden: int, name: str = "one-line") -> Plan:
    """The study dict (`base` holds data + model; the planner sets data.max_length/train_size and train.epochs)."""
    usable = budget_seconds * MARGIN
    fitting = [m for m in MAX_LENGTHS if m <= facts.max_positions] or [facts.max_positions]
    max_length = next((m for m in fitting if truncated_share(facts.lengths, m) <= TRUNCATE_OK), fitting[-1])
    state = {"strategies": _distinct_depths(STRATEGIES, layers), "epochs": 3, "seeds": 3,
             "train_size": facts.n_train, "max_length": max_length}
    traded: list[str] = []
    if truncated_share(facts.lengths, max_length) > TRUNCATE_OK:
        traded.append(f"max_length {max_length} (the model's limit) cuts "
                      f"{100 * truncated_share(facts.lengths, max_length):.0f} % of texts")

    batch_size = int(base.get("train", {}).get("batch_size", TrainConfig().batch_size))

    def per_run(freeze) -> float:
        train_tokens, eval_tokens = _tokens(facts, state["max_length"], state["train_size"])
        return _per_run(freeze, layers, hidden, state["epochs"], train_tokens, eval_tokens, throughput,
                        n_steps=-(-state["train_size"] // batch_size))

    def total() -> float:
        train_tokens, eval_tokens = _tokens(facts, state["max_length"], state["train_size"])
        once = _once(state["strategies"], layers, hidden, train_tokens, eval_tokens, throughput)
        return state["seeds"] * sum(per_run(s) for s in state["strategies"]) + once

    def drop_costliest(reason_if: float | None = None) -> bool:
        if len(state["strategies"]) <= 1:
            return False
        costliest = max(state["strategies"], key=per_run)
        minutes = per_run(costliest) / 60
        if reason_if is not None and per_run(costliest) <= reason_if:
            return False
        state["strategies"].remove(costliest)
        traded.append(f"{_label(costliest)} dropped: {minutes:.1f} min per run")
        return True

    steps = [
        lambda: _set(state, "epochs", 2, traded, "epochs 3 → 2") if state["epochs"] > 2 else False,
        lambda: drop_costliest(reason_if=usable / 3),
        lambda: _shorter_max_length(state, facts, traded),
        lambda: _halve_train(state, 500, traded, facts.n_train),
        lambda: _set(state, "seeds", state["seeds"] - 1, traded,
                     f"seeds {state['seeds']} → {state['seeds'] - 1}" + (
                         " (fewer than 3: no significance test)" if state["seeds"] == 3 else ""))
        if state["seeds"] > 1 else False,
        lambda: drop_costliest(),
        lambda: _set(state, "epochs", 1, traded, "epochs 2 → 1") if state["epochs"] > 1 else False,
        lambda: _halve_train(state, 100, traded, facts.n_train),
    ]
    once = {1}  # the "one run of it is over a third of the budget" drop applies to the costliest strategy only
    i = 0
    while total() > usable and i < len(steps):
        if not steps[i]() or i in once:
            i += 1
    dropped = [s for s in _distinct_depths(STRATEGIES, layers) if s not in state["strategies"]]
    for freeze in sorted(dropped, key=per_run):  # slack after the other trades: take a dropped arm back
        state["strategies"].append(freeze)
        if total() <= usable:
            traded[:] = [t for t in traded if not t.startswith(f"{_label(freeze)} dropped")]
        else:
            state["strategies"].remove(freeze)
    order = _distinct_depths(STRATEGIES, layers)
    state["strategies"].sort(key=order.index)
    for freeze in (s for s in order if s not in state["strategies"]):  # the cost at the settings finally planned
        note = f"{_label(freeze)} dropped"
        traded[:] = [f"{note}: {per_run(freeze) / 60:.1f} min per run" if t.startswith(note) else t for t in traded]
    while state["seeds"] < 5:  # time to spare: more seeds
        state["seeds"] += 1
        if total() > usable:
            state["seeds"] -= 1
            break
    data = dict(base.get("data", {}))
    data["max_length"] = state["max_length"]
    if state["train_size"] < facts.n_train:
        data["train_size"] = state["train_size"]
    train = {"epochs": state["epochs"], "save_model": False, **base.get("train", {})}
    train["epochs"] = state["epochs"]
    study = {"name": name, "base": {**base, "data": data, "train": train},
             "grid": {"freeze": list(state["strategies"])}, "seeds": list(range(state["seeds"])), "baseline": True}
    arms = [(_label(s), state["seeds"], per_run(s)) for s in state["strategies"]]
    estimate = total()
    if estimate > usable:
        traded.append(f"still over budget: about {estimate / 60:.1f} min of runs for a {budget_seconds / 60:.1f}"
                      f" min budget (the smallest study this planner makes)")
    return Plan(study, arms, traded, estimate, estimate <= usable)


def _distinct_depths(strategies, layers: int) -> list:
    """top-2 on a 2-layer model is `all`: keep one strategy per number of trained layers (the later, `all`)."""
    seen, out = set(), []
    for freeze in reversed(strategies):
        cfg = FreezeConfig.model_validate(freeze)
        trained = get_strategy(cfg.strategy).trained_layers(cfg, layers)
        if trained not in seen:
            seen.add(trained)
            out.append(freeze)
    return out[::-1]


def _set(state: dict, key: str, value, traded: list, note: str) -> bool:
    state[key] = value
    traded.append(note)
    return True


def _shorter_max_length(state: dict, facts: DataFacts, traded: list) -> bool:
    shorter = [m for m in MAX_LENGTHS if m < state["max_length"]]
    if not shorter or truncated_share(facts.lengths, shorter[-1]) > TRUNCATE_MAX:
        return False
    state["max_length"] = shorter[-1]
    traded.append(f"max_length {shorter[-1]} cuts {100 * truncated_share(facts.lengths, shorter[-1]):.0f} % of texts")
    return True


def _halve_train(state: dict, floor: int, traded: list, n_train: int) -> bool:
    if state["train_size"] <= floor:
        return False
    state["train_size"] = max(floor, state["train_size"] // 2)
    traded[:] = [t for t in traded if not t.startswith("training set")]  # one note, the final size
    traded.append(f"training set {state['train_size']:,} of {n_train:,} examples")
    return True
