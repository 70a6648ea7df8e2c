"""The one-line study's planner: data facts + measured throughput + a time budget → a study (plain data).

`unfreeze study --data train.csv --budget 20m` should answer the question (freeze, unfreeze the top layers, or
unfreeze all?) as well as the budget allows, and say what it gave up. It starts from the study we would run with
unlimited time — head / top-2 / all, the full training set, 3 epochs, 3 seeds, the smallest max_length of
64 / 128 / 256 / 512 that truncates at most 5 % of texts — and, while the estimate exceeds `MARGIN` of the budget,
pulls the levers a practitioner would pull, in order of what they cost the *decision* (`LEVERS`):

1. max_length → 256, then → 128 (never shorter: the share of texts cut is stated at each step);
2. epochs 3 → 2;  3. the training set, halved down to `COMFORTABLE` examples;
4. the costliest arm that trains encoder layers while another remains (`all` before top-2): three seeds of head /
   top-2 still give a test verdict on fine-tuning vs the baseline, one seed of three arms gives none;
5. seeds 3 → 2 (fewer than 3: no significance test, so no test verdict), then 2 → 1;
6. the training set down to its floor, `train_floor` (max(500, 20 × classes), capped at the data): never below, so
   the plan can still beat its baseline;
7. epochs 2 → 1;  8. last, the last arm that trains encoder layers (head only cannot answer the question).

Then it takes back, most harmful first, whatever still fits. The user's test set is always evaluated in full; the
plan states what it alone costs. Every figure comes from `costs` (one source): the per-arm table, the parts (cache
fill, training, validation, final pass, baseline, loading + report) and the footer add up to the same total. A plan
whose smallest form exceeds the budget by more than 20 % (`OVER`) is marked `refused`: the CLI exits 2 before any
training with the breakdown and the choices. Pure: no model, no files.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from unfreeze.config.schema import FreezeConfig, TrainConfig
from unfreeze.strategies import get_strategy
from unfreeze.tasks import get_task
from unfreeze.study.estimate import EMBEDDING_SHARE, once_seconds, prefilled_share, run_parts

MAX_LENGTHS = (64, 128, 256, 512)
TRUNCATE_OK = 0.05
SHORTEST = 128  # the planner never cuts max_length below this on its own
MARGIN = 0.9  # a plan fills at most this share of the budget
OVER = 1.2  # refuse when the smallest plan exceeds the budget by more than 20 %
COMFORTABLE = 1000  # training examples kept before anything that harms the decision more
#: a lever that saves less than this share of the plan's time is pulled only when no other saves more, and taken
#: back first where it fits (measured: "epochs 3 → 2: saves 0.0 min" on a head-only plan, whose head trains on
#: cached activations)
NEGLIGIBLE = 0.005
#: the share of its training set a plan gives up, at most, for the third seed (without it: no test verdict)
SEED_FOR_DATA = 0.25
STUDY_SECONDS = 10.0  # loading the data once, the baseline's bookkeeping, the report
TFIDF_TOKENS_PER_S = 60000.0  # TF-IDF + logistic regression over 5 C values, 2-core CPU (see `baseline_seconds`)
STRATEGIES: tuple = ("head", {"top_k": 2}, "all")


def train_floor(n_train: int, classes: int) -> int:
    """The smallest training set a plan uses: max(500, 20 × classes), capped at the data."""
    return min(n_train, max(500, 20 * classes))


def val_floor(classes: int) -> int:
    """The smallest validation split a plan accepts: max(200, 20 × classes) (capped at the data by the caller)."""
    return max(200, 20 * classes)


@dataclass
class DataFacts:
    """What the planner knows about the data: split sizes and the token lengths (special tokens included,
    untruncated) of a sample of training texts and of val + test texts."""

    n_train: int
    n_eval: int
    lengths: np.ndarray
    max_positions: int = 512
    n_val: int | None = None  # None: half of n_eval
    eval_lengths: np.ndarray | None = None  # None: like the training texts
    classes: int = 2
    task: str = "sequence"
    minority: tuple[str, float] | None = None  # the smallest class and its share, when under the imbalance hint
    warnings: tuple[str, ...] = ()  # about the data, for the plan's notes (e.g. validation sharing passages)

    @property
    def per_class(self) -> int:
        """The classes the floors count (a token task's sentences each hold many tags: its floors are the plain
        minimums)."""
        return 0 if get_task(self.task).per_token else self.classes

    @property
    def val(self) -> int:
        return self.n_eval // 2 if self.n_val is None else self.n_val


@dataclass
class Settings:
    arms: list  # freeze values, in STRATEGIES order
    epochs: int
    seeds: int
    train_size: int
    max_length: int
    balanced: bool = False  # an extra arm: the cheapest kept encoder arm with train.class_weights: balanced


@dataclass
class Plan:
    study: dict
    arms: list[tuple[str, int, float]]  # (arm, runs, seconds per run)
    parts: dict[str, float]
    traded: list[str] = field(default_factory=list)
    levers: list[str] = field(default_factory=list)  # further levers and what the plan would cost with each
    notes: list[str] = field(default_factory=list)
    budget_seconds: float = 0.0
    fits: bool = True
    refused: bool = False
    tried: str = ""  # what the plan trains, in words ("head / top-2, 1,000 examples, 2 epochs, 2 seeds")
    weak: list[str] = field(default_factory=list)  # why it cannot answer the question (empty: it can)
    proper_seconds: float = 0.0  # estimate of a study that could (3 seeds, ≥ 1,000 examples, 3 epochs)
    proper: str = ""  # that study, in words
    test_seconds: float = 0.0  # what the test set alone costs
    eval_seconds: float = 0.0  # what evaluating val + test costs in all
    baseline: str = "TF-IDF"

    @property
    def total_seconds(self) -> float:
        return sum(self.parts.values())

    def to_json(self) -> dict:
        return {"budget_seconds": self.budget_seconds, "parts": self.parts, "total_seconds": self.total_seconds,
                "arms": [list(a) for a in self.arms], "traded": self.traded, "levers": self.levers,
                "notes": self.notes, "fits": self.fits, "refused": self.refused, "tried": self.tried,
                "weak": self.weak, "proper_seconds": self.proper_seconds,
                "proper_budget": minutes_budget(self.proper_seconds), "proper": self.proper, "test_seconds": self.test_seconds,
                "eval_seconds": self.eval_seconds,
                "baseline": self.baseline}


def truncated_share(lengths: np.ndarray, max_length: int) -> float:
    return float((np.asarray(lengths) > max_length).mean()) if len(lengths) else 0.0


def baseline_seconds(facts: DataFacts, train_size: int) -> float:
    """The baseline row: TF-IDF + logistic regression over every text (seconds per token, measured); a token task's
    most-frequent tag costs nothing worth planning."""
    if not get_task(facts.task).baseline_reads_texts:
        return 1.0
    mean = float(np.mean(facts.lengths)) if len(facts.lengths) else 0.0
    eval_mean = float(np.mean(facts.eval_lengths)) if facts.eval_lengths is not None and len(facts.eval_lengths) \
        else mean
    return 1.0 + (mean * train_size + eval_mean * facts.n_eval) / TFIDF_TOKENS_PER_S * (1 + facts.classes / 20)


class CostModel:
    """Seconds of a study at given `Settings`, in parts — the one source of every figure a plan prints."""

    def __init__(self, facts: DataFacts, throughput: dict | None, layers: int, hidden: int, batch_size: int):
        self.facts, self.throughput, self.layers, self.hidden = facts, throughput, layers, hidden
        self.batch_size = batch_size

    def tokens(self, s: Settings) -> tuple[float, float, float]:
        """(train, val + test, val) tokens at the settings' max_length (a token task windows, never cuts)."""
        f = self.facts
        cap = None if get_task(f.task).windows_long_inputs else s.max_length
        mean = float(np.mean(np.minimum(f.lengths, cap) if cap else f.lengths)) if len(f.lengths) else 0.0
        evals = f.eval_lengths if f.eval_lengths is not None and len(f.eval_lengths) else f.lengths
        eval_mean = float(np.mean(np.minimum(evals, cap) if cap else evals)) if len(evals) else 0.0
        return mean * s.train_size, eval_mean * f.n_eval, eval_mean * f.val

    def figures(self, s: Settings) -> dict | None:
        """The throughput measured at the settings' max_length: the one timed at 512 (`"longer"`) for a plan
        longer than the main figure was timed at, else the main figure (or None: the documented constants)."""
        t = self.throughput
        if t and t.get("longer") and s.max_length > t.get("max_length", s.max_length):
            return t["longer"]
        return t

    def run(self, freeze, s: Settings) -> dict[str, float]:
        cfg = FreezeConfig.model_validate(freeze)
        strategy = get_strategy(cfg.strategy)
        trained = strategy.trained_layers(cfg, self.layers) or 0
        embeddings = (self.throughput or {}).get("embedding_share", EMBEDDING_SHARE)
        train, evals, val = self.tokens(s)
        return run_parts(trained, self.layers, self.hidden, s.epochs, train, evals,
                         strategy.cached_top(cfg) is not None, self.figures(s), n_val_tokens=val, fill_share=0.0,
                         n_steps=-(-s.train_size // self.batch_size),
                         step_share=strategy.stepped_share(cfg, self.layers, embeddings))

    def arm_runs(self, s: Settings) -> list[tuple[str, object, dict[str, float]]]:
        """(label, freeze, one run's seconds per part) of every arm, the balanced extra arm last."""
        out = [(label(f), f, self.run(f, s)) for f in s.arms]
        if s.balanced and encoder_arms(s.arms, self.layers):
            deepest = cheapest_encoder(s.arms, self.layers)
            out.append((f"{label(deepest)} balanced", deepest, self.run(deepest, s)))
        return out

    def arms(self, s: Settings) -> list[tuple[str, object, float]]:
        """(label, freeze, seconds per run) of every arm, the balanced extra arm last."""
        return [(name, f, sum(run.values())) for name, f, run in self.arm_runs(s)]

    def parts(self, s: Settings) -> dict[str, float]:
        runs = [run for _, _, run in self.arm_runs(s)]  # each arm costed once
        parts = {key: s.seeds * sum(r[key] for r in runs) for key in runs[0]} if runs else {}
        train, evals, _ = self.tokens(s)
        shares = [prefilled_share(FreezeConfig.model_validate(f), self.layers) for f in s.arms]
        parts["cache_fill"] = parts.get("cache_fill", 0.0) + once_seconds(
            self.layers, self.hidden, train, evals, self.figures(s),
            max((x for x in shares if x is not None), default=0.0), warm_up=True)
        parts["baseline"] = baseline_seconds(self.facts, s.train_size)
        parts["study"] = STUDY_SECONDS
        return parts

    def total(self, s: Settings) -> float:
        return sum(self.parts(s).values())

    def test_seconds(self, s: Settings) -> float:
        """What the test set alone adds: its share of the cache fill and of every run's final pass."""
        return self.total(s) - self._without(s, self.facts.val, self.facts.val)

    def eval_seconds(self, s: Settings) -> float:
        """What evaluation (val + test) costs in all: its share of the cache fill, per-epoch validation, final pass."""
        return self.total(s) - self._without(s, 0, 0)

    def _without(self, s: Settings, n_eval: int, n_val: int) -> float:
        facts = replace(self.facts, n_eval=n_eval, n_val=n_val)
        return CostModel(facts, self.throughput, self.layers, self.hidden, self.batch_size).total(s)


def label(freeze) -> str:
    return FreezeConfig.model_validate(freeze).label


def trained(freeze, layers: int) -> int:
    cfg = FreezeConfig.model_validate(freeze)
    return get_strategy(cfg.strategy).trained_layers(cfg, layers) or 0


def encoder_arms(arms: list, layers: int) -> list:
    return [f for f in arms if trained(f, layers) > 0]


def cheapest_encoder(arms: list, layers: int):
    return min(encoder_arms(arms, layers), key=lambda f: trained(f, layers))


def distinct_depths(strategies, layers: int) -> list:
    """top-2 on a 2-layer model is `all`: keep one strategy per number of trained layers (the later, `all`), none
    that trains more layers than the model has."""
    seen, out = set(), []
    for freeze in reversed(strategies):
        depth = trained(freeze, layers)
        if depth not in seen and depth <= layers:  # top-2 on a 1-layer model would fail at its start
            seen.add(depth)
            out.append(freeze)
    return out[::-1]


def first_max_length(facts: DataFacts) -> int:
    fitting = [m for m in MAX_LENGTHS if m <= facts.max_positions] or [facts.max_positions]
    if get_task(facts.task).windows_long_inputs:  # long sentences are windowed, not cut: the shortest that fits most in one window
        return next((m for m in fitting if m >= 128 and truncated_share(facts.lengths, m) <= TRUNCATE_OK),
                    fitting[-1])
    return next((m for m in fitting if truncated_share(facts.lengths, m) <= TRUNCATE_OK), fitting[-1])


def ideal_settings(facts: DataFacts, layers: int, pinned: dict | None = None) -> Settings:
    """The study with unlimited time; `pinned` settings (the user's `--set`) replace the planner's choice."""
    ideal = Settings(arms=distinct_depths(STRATEGIES, layers), epochs=3, seeds=3, train_size=facts.n_train,
                     max_length=first_max_length(facts))
    return replace(ideal, **(pinned or {}))


def smaller(s: Settings, facts: DataFacts, layers: int, pinned: dict | None = None) -> list[tuple[str, Settings]]:
    """The levers in order of least harm to the decision: (name, settings after pulling it), the ones that apply
    (none that changes a `pinned` setting)."""
    return [(name, after) for name, after in _levers(s, facts, layers)
            if not any(getattr(after, key) != getattr(s, key) for key in (pinned or {}))]


def _levers(s: Settings, facts: DataFacts, layers: int) -> list[tuple[str, Settings]]:
    floor = train_floor(facts.n_train, facts.per_class)
    comfortable = min(facts.n_train, max(COMFORTABLE, floor))
    out = []
    if not get_task(facts.task).windows_long_inputs:
        # each shorter step is offered: where 512 → 256 saves next to nothing (texts just over 256), 128 still can
        out += [(f"max_length {target}", replace(s, max_length=target)) for target in (256, SHORTEST)
                if s.max_length > target]
    if s.epochs > 2:
        out.append(("epochs 2", replace(s, epochs=2)))
    if s.train_size > comfortable:
        out.append((f"training set {max(comfortable, s.train_size // 2)}",
                    replace(s, train_size=max(comfortable, s.train_size // 2))))
    encoders = encoder_arms(s.arms, layers)
    if len(encoders) > 1:  # before the third seed: without it no arm gets a test verdict
        costliest = max(encoders, key=lambda f: trained(f, layers))
        out.append((f"{label(costliest)} dropped", replace(s, arms=[f for f in s.arms if f != costliest])))
    if s.seeds > 2:
        out.append(("seeds 2", replace(s, seeds=2)))
    if s.seeds > 1:
        out.append(("seeds 1", replace(s, seeds=1)))
    if s.train_size > floor:
        out.append((f"training set {max(floor, s.train_size // 2)}",
                    replace(s, train_size=max(floor, s.train_size // 2))))
    if s.epochs > 1:
        out.append(("epochs 1", replace(s, epochs=1)))
    if encoders and len(s.arms) > 1:
        out.append((f"{label(encoders[0])} dropped", replace(s, arms=[f for f in s.arms if f not in encoders])))
    return out


def shrink(s: Settings, model: CostModel, usable: float, pinned: dict | None = None,
           budget: float | None = None) -> Settings:
    """Pull the first lever that applies, again and again, until the study fits or none is left. The last arm that
    trains encoder layers goes only when the plan with it exceeds the `budget` itself (not just `usable`)."""
    while model.total(s) > usable:
        options = [o for o in smaller(s, model.facts, model.layers, pinned) if model.total(o[1]) < model.total(s)]
        # a lever that saves next to nothing (epochs of a head on cached activations) does harm for no time — but
        # small levers still come before the last arm that trains encoder layers
        worth = [o for o in options if model.total(o[1]) < (1 - NEGLIGIBLE) * model.total(s)]
        options = worth if worth and encoder_arms(worth[0][1].arms, model.layers) else options
        last = not encoder_arms(options[0][1].arms, model.layers) if options else False
        if last and budget is not None and model.total(s) <= budget:
            break
        if not options:
            break
        s = options[0][1]
    return s


def take_back(s: Settings, ideal: Settings, model: CostModel, usable: float,
              pinned: dict | None = None) -> Settings:
    """Undo trades where the study still fits, in the levers' reverse order (an arm that trains encoder layers,
    epochs that cost next to nothing, a second epoch, data up to `COMFORTABLE` examples, the third seed — without it
    the report has no test verdict — else a second, the arms dropped, more data, epochs, max_length); then the third
    seed bought with data (`bought_with_data`) where it did not fit, and seeds up to 5 with time to spare. A
    `pinned` setting (the user's `--set`) is never changed: the plan prices what will run."""
    pinned = pinned or {}
    comfortable = min(ideal.train_size, max(COMFORTABLE, train_floor(model.facts.n_train, model.facts.per_class)))
    if not encoder_arms(s.arms, model.layers) and "arms" not in pinned:  # the last lever first: an encoder arm
        encoders = sorted(encoder_arms(ideal.arms, model.layers), key=lambda f: trained(f, model.layers))
        candidate = replace(s, arms=[f for f in ideal.arms if f in s.arms or f in encoders[:1]])
        s = candidate if encoders and model.total(candidate) <= usable else s
    more = replace(s, epochs=ideal.epochs)  # a head on cached activations: epochs next to free, before the data
    if "epochs" not in pinned and model.total(more) <= min(usable, (1 + NEGLIGIBLE) * model.total(s)):
        s = more
    trials = [("epochs", max(s.epochs, min(2, ideal.epochs))), ("train_size", max(s.train_size, comfortable)),
              ("seeds", ideal.seeds), ("seeds", max(s.seeds, min(2, ideal.seeds))), ("arms", ideal.arms),
              ("train_size", ideal.train_size), ("epochs", ideal.epochs), ("max_length", ideal.max_length)]
    for key, value in trials:
        if getattr(s, key) == value or key in pinned or (key == "seeds" and value < s.seeds):
            continue
        if key == "train_size":  # as much of the data as fits (before epochs: the levers' order)
            s = replace(s, train_size=most_data(s, value, model, usable))
            continue
        if key == "arms":
            for freeze in sorted((f for f in value if f not in s.arms), key=lambda f: trained(f, model.layers)):
                candidate = replace(s, arms=[f for f in value if f in s.arms or f == freeze])
                if model.total(candidate) <= usable:
                    s = candidate
            continue
        candidate = replace(s, **{key: value})
        if model.total(candidate) <= usable:
            s = candidate
    if s.seeds < 3 <= ideal.seeds and not {"seeds", "train_size"} & set(pinned):
        s = bought_with_data(s, model, usable, comfortable)
    while "seeds" not in pinned and 3 <= s.seeds < 5 and model.total(replace(s, seeds=s.seeds + 1)) <= usable:
        s = replace(s, seeds=s.seeds + 1)
    return s


def bought_with_data(s: Settings, model: CostModel, usable: float, comfortable: int) -> Settings:
    """`s` with the third seed and the most data that fits, when that is at least 1 − `SEED_FOR_DATA` of the
    plan's own after every take-back, never below the floor, and never below `comfortable` for a plan that could
    otherwise answer the question (an encoder arm, ≥ 2 epochs, ≥ `comfortable` examples: it would turn weak);
    else `s`. Measured: long documents at --budget 4m were planned head only at 1,053 examples and 2 seeds where 3
    seeds cost 0.1 min more: the report then gave no test verdict to save 5 % of the data."""
    floor = train_floor(model.facts.n_train, model.facts.per_class)
    if s.train_size >= comfortable and s.epochs >= 2 and encoder_arms(s.arms, model.layers):
        floor = max(floor, comfortable)
    lowest = max(floor, math.ceil((1 - SEED_FOR_DATA) * s.train_size))
    fewer = replace(s, seeds=3, train_size=lowest)
    if lowest > s.train_size or model.total(fewer) > usable:
        return s
    return replace(fewer, train_size=most_data(fewer, s.train_size, model, usable))


def most_data(s: Settings, most: int, model: CostModel, usable: float) -> int:
    """The largest training set up to `most` examples that fits `usable` (the cost grows with the data: bisection
    to 1 % of `most`); at least the settings' own. Doubling alone left a 25 m BBC News plan at 500 of 1,700
    examples with a third of its budget unused."""
    lo, hi = s.train_size, most
    if model.total(replace(s, train_size=hi)) <= usable:
        return hi
    while hi - lo > max(1, most // 100):
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if model.total(replace(s, train_size=mid)) <= usable else (lo, mid)
    return lo


def proper_settings(s: Settings, facts: DataFacts, layers: int) -> Settings:
    """A study that can answer the question: every arm, ≥ 1,000 examples (or all), 3 epochs, 3 seeds."""
    return Settings(arms=distinct_depths(STRATEGIES, layers), epochs=3, seeds=3,
                    train_size=min(facts.n_train, max(COMFORTABLE, train_floor(facts.n_train, facts.per_class))),
                    max_length=s.max_length)


def minutes_budget(seconds: float) -> str:
    """A budget to suggest on the command line: whole minutes, rounded up with the planner's margin."""
    return f"{max(1, math.ceil(seconds / MARGIN / 60))}m"
