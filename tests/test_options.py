"""Every option does something: each test fails if its option were ignored — the pruner Optuna gets (and that it
prunes), which parameters train under `freeze.train_pooler`, which subwords carry a label under
`data.label_all_subwords`, the analyzer the TF-IDF baseline uses under `data.tfidf_analyzer`, the precision
training runs at under `train.mixed_precision`, and how often the live report is rebuilt."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny import NEUTRAL, POSITIVE, run_config
from unfreeze.config.load import parse_run_config

# ---------------------------------------------------------------------------------------------------------
# search.pruner: successive_halving, hyperband (and none / median)

PRUNERS = {"none": "NopPruner", "median": "MedianPruner", "successive_halving": "SuccessiveHalvingPruner",
           "hyperband": "HyperbandPruner"}


def search_study(model_dir, data, pruner: str):
    from unfreeze.config.study import StudyConfig

    base = run_config(model_dir, data, train={"epochs": 4, "threads": 1, "save_model": False})
    return StudyConfig.model_validate({"name": "s", "base": base, "baseline": False, "search": {
        "sampler": "random", "trials": 4, "seed": 0, "pruner": pruner,
        "space": {"optim.lr": {"low": 1e-4, "high": 1e-2, "log": True}}}})


@pytest.mark.parametrize("pruner", list(PRUNERS))
def test_search_pruner_is_the_optuna_pruner_the_study_gets_and_it_prunes(pruner, tiny_bert, sentiment_csv, tmp_path):
    """The study a search opens (`trials.open_study`) carries the configured Optuna pruner; fed the per-evaluation
    values a search reports, successive halving and hyperband stop a trial far below two finished ones, no
    pruner never does."""
    optuna = pytest.importorskip("optuna")
    from unfreeze.study.trials import open_study

    _, opt = open_study(search_study(tiny_bert, sentiment_csv, pruner), tmp_path, "f1_macro")
    assert type(opt.pruner).__name__ == PRUNERS[pruner]
    stopped = []
    for curve in ([0.80, 0.85, 0.90, 0.92], [0.81, 0.86, 0.90, 0.93], [0.10, 0.10, 0.10, 0.10]):
        trial, at = opt.ask(), None
        for step, value in enumerate(curve):
            trial.report(value, step)
            if trial.should_prune():
                at = step
                break
        opt.tell(trial, curve[-1] if at is None else None,
                 state=optuna.trial.TrialState.COMPLETE if at is None else optuna.trial.TrialState.PRUNED)
        stopped.append(at)
    assert stopped[:2] == [None, None]
    if pruner in ("successive_halving", "hyperband"):
        assert stopped[2] is not None  # the bad trial is stopped early
    elif pruner == "none":
        assert stopped[2] is None


# ---------------------------------------------------------------------------------------------------------
# freeze.train_pooler

POOLER_STRATEGIES = ["head", {"top_k": 1}, {"layer": 1}, "gradual", {"lora": {"r": 2}}]


@pytest.mark.parametrize("freeze", POOLER_STRATEGIES, ids=lambda f: f if isinstance(f, str) else next(iter(f)))
def test_train_pooler_decides_whether_the_pooler_trains(freeze, tiny_bert, sentiment_csv):
    """Under `pooling: pooler` the pooler is the head's first layer: it trains unless `train_pooler: false`."""
    from tiny import run_parts

    trains = {}
    for value in (True, False):
        spec = {**({"strategy": freeze} if isinstance(freeze, str) else freeze), "train_pooler": value}
        cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze=spec,
                                          model={"name": tiny_bert, "pooling": "pooler"}))
        pooler = run_parts(cfg).model.layout.pooler
        flags = {p.requires_grad for p in pooler.parameters()}
        assert len(flags) == 1, "the pooler trains as a whole or not at all"
        trains[value] = flags.pop()
    assert trains == {True: True, False: False}


# ---------------------------------------------------------------------------------------------------------
# data.label_all_subwords

def test_label_all_subwords_labels_every_subword_of_a_word(tiny_bert, tmp_path):
    """`xqzv` is four WordPiece subwords of the tiny vocabulary (x ##q ##z ##v): by default only the first carries
    the word's tag, with `label_all_subwords` all four do."""
    from tiny import run_parts

    lines = []
    for i in range(40):
        words = ["the", NEUTRAL[i % len(NEUTRAL)], "xqzv", "was", POSITIVE[i % len(POSITIVE)]]  # all distinct
        tags = ["O", "O", "B-LOC", "O", "O"]
        lines += [f"{w}\t{t}" for w, t in zip(words, tags)] + ["paris\tB-LOC", ""]
    path = tmp_path / "ner.conll"
    path.write_text("\n".join(lines) + "\n")
    labelled = {}
    for value in (False, True):
        cfg = parse_run_config(run_config(tiny_bert, path, task="token", data__label_all_subwords=value,
                                          data__near_duplicates="keep"))
        run = run_parts(cfg)
        loc = run.label_names.index("B-LOC")
        rows = [np.asarray(r) for r in run.encoded["train"].labels]
        labelled[value] = (sum(int((r != -100).sum()) for r in rows), sum(int((r == loc).sum()) for r in rows))
        sentences = len(rows)
    # per sentence: 6 words labelled once by default; with label_all_subwords 3 more subwords of xqzv, all B-LOC
    assert labelled[False][0] == 6 * sentences and labelled[True][0] == 9 * sentences
    assert labelled[True][1] - labelled[False][1] == 3 * sentences


# ---------------------------------------------------------------------------------------------------------
# data.tfidf_analyzer

@pytest.mark.parametrize("analyzer, expected", [("auto", "word"), ("word", "word"), ("char", "char_wb")])
def test_tfidf_analyzer_reaches_the_studys_baseline(analyzer, expected, tiny_bert, sentiment_csv, tmp_path):
    """The study baseline (`baselines.run_study_baseline`) fits the analyzer `data.tfidf_analyzer` asks for
    (English text: `auto` means words)."""
    from unfreeze.study.baselines import run_study_baseline
    from unfreeze.training.prepare import load_data

    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, data__tfidf_analyzer=analyzer))
    out = tmp_path / "baseline"
    run_study_baseline(tmp_path, cfg, load_data(cfg), "key", out=out)
    result = json.loads((out / "metrics.json").read_text())
    assert result["tfidf"]["analyzer"] == expected
    assert ("character" in result["method"]) == (expected == "char_wb")


# ---------------------------------------------------------------------------------------------------------
# train.mixed_precision

PRECISION_RUN = """
import json, sys
sys.path.insert(0, {tests!r})
from tiny import run_config
from unfreeze.config.load import parse_run_config
from unfreeze.training.run import make_accelerator, train
cfg = parse_run_config(run_config({model!r}, {data!r}, train={{"epochs": 1, "threads": 1, "save_model": False,
                                                               "mixed_precision": {precision!r}}}))
result = train(cfg, {out!r}, progress=False)
print(json.dumps({{"accelerator": make_accelerator(cfg).mixed_precision,
                  "losses": [h["train_loss"] for h in result["history"] if "train_loss" in h]}}))
"""


def precision_run(precision: str, model: str, data: Path, out: Path) -> dict:
    """One run in its own process: Accelerate's state is process-wide, so each precision needs a fresh one."""
    code = PRECISION_RUN.format(tests=str(Path(__file__).parent), model=model, data=str(data), out=str(out),
                                precision=precision)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_mixed_precision_bf16_changes_the_training_numerics(tiny_bert, sentiment_csv, tmp_path):
    """On CPU, `auto` is full precision (same losses as `no`); `bf16` runs the forward under bfloat16 autocast,
    so the training losses differ from full precision's."""
    full = precision_run("no", tiny_bert, sentiment_csv, tmp_path / "no")
    auto = precision_run("auto", tiny_bert, sentiment_csv, tmp_path / "auto")
    bf16 = precision_run("bf16", tiny_bert, sentiment_csv, tmp_path / "bf16")
    assert (full["accelerator"], auto["accelerator"], bf16["accelerator"]) == ("no", "no", "bf16")
    assert auto["losses"] == full["losses"]
    assert bf16["losses"] != full["losses"] and np.allclose(bf16["losses"], full["losses"], rtol=0.05)


# ---------------------------------------------------------------------------------------------------------
# live-report throttling (study/live.py)

class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_live_report_is_throttled_to_a_share_of_the_study_time(tmp_path):
    """A rebuild is skipped while the time since the last one is under `ratio` × its cost; `ratio: 0` rebuilds
    after every finished run."""
    from types import SimpleNamespace

    from unfreeze.study.live import LiveReport

    finished = SimpleNamespace(skipped=False, ok=True)
    for ratio, expected in ((4.0, [0.0, 6.5]), (0.0, [0.0, 2.0, 4.0, 6.5])):
        clock, builds = FakeClock(), []
        live = LiveReport(tmp_path, [], ratio=ratio, clock=clock)

        def build(live=live, clock=clock, builds=builds):
            builds.append(clock.now)
            clock.now += 1.0  # a rebuild costs one second

        live.build = build
        for at in (0.0, 2.0, 4.0, 6.5):  # runs finishing; after the first build (0 → 1 s) the next is due at 5 s
            clock.now = max(clock.now, at)
            live(finished)
        assert builds == expected
        assert live.skipped == 4 - len(expected)
