"""Breadth-first study order, the report rebuilt while a study runs, and seed racing (stop arms that are worse
than the leader on validation): a tiny study where one arm cannot learn, and a simulation of how often racing
stops an arm that is as good as the leader."""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import pytest
from calibration import IntConfusionMetric, _population
from tiny import run_config

from unfreeze import study
from unfreeze.config.study import StudyConfig
from unfreeze.io import read_json
from unfreeze.study.racing import racing_step

pytestmark = pytest.mark.slow  # over ~20 s on 2 cores; `make test` runs it


def make_study(model, data, train=None, **extra):
    base = run_config(model, data, train={"epochs": 1, "threads": 1, "save_model": False, **(train or {})})
    return StudyConfig.model_validate({"name": "t", "base": base, "baseline": False, **extra})


def test_expand_is_breadth_first(tiny_bert, sentiment_csv):
    s = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head", {"top_k": 1}, "all"]}, seeds=[7, 3, 5])
    runs = study.expand(s)
    assert [r.seed for r in runs] == [7, 7, 7, 3, 3, 3, 5, 5, 5]
    assert [r.arm for r in runs[:3]] == ["head", "top-1", "all"] == [r.arm for r in runs[3:6]]
    cv = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head", "all"]}, seeds=[0, 1], cv={"folds": 2})
    assert [(r.seed, r.arm, r.fold) for r in study.expand(cv)][:4] == [(0, "head", 0), (0, "head", 1),
                                                                       (0, "all", 0), (0, "all", 1)]


def test_report_is_readable_while_the_study_runs(tiny_bert, sentiment_csv, tmp_path):
    """After the first finished run (before the second starts) report.md exists and shows that run's arm."""
    s = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head", "all"]}, seeds=[0, 1])
    out, seen = tmp_path / "study", []

    def echo(line):
        if line.startswith("[1/4]"):
            seen.append((out / "report.md").read_text())

    study.run_study(s, out, progress=False, echo=echo)
    assert len(seen) == 1 and "| head" in seen[0] and "| all" not in seen[0]
    assert "| all" in (out / "report.md").read_text()


def test_racing_config():
    assert StudyConfig.model_validate({"base": {}, "racing": True}).racing.min_seeds == 3
    assert not StudyConfig.model_validate({"base": {}}).racing
    with pytest.raises(Exception, match="cv"):
        StudyConfig.model_validate({"base": {}, "racing": True, "cv": {"folds": 2}})
    from unfreeze.report.build import racing_line

    assert "every arm ran every seed" in racing_line({"looks": 0, "min_seeds": 3})


def test_racing_stops_an_arm_that_cannot_learn(tiny_bert, sentiment_csv, tmp_path):
    seeds = [0, 1, 2, 3, 4]
    s = make_study(tiny_bert, sentiment_csv, train={"epochs": 3}, seeds=seeds, racing={"alpha": 0.2},
                   arms={"good": {"optim": {"lr": 3e-3}}, "good2": {"optim": {"lr": 2e-3}},
                         "frozen lr": {"optim": {"lr": 1e-9}}})
    out, lines = tmp_path / "study", []
    results = study.run_study(s, out, progress=False, echo=lines.append)
    n = results.groupby("arm").size().to_dict()
    racing = read_json(out / "racing.json")
    print(lines, n, racing)
    assert n["frozen lr"] == 3 and n["good"] == n["good2"] == 5
    assert list(racing["stopped"]) == ["frozen lr"] and racing["runs_not_run"] == 2
    assert any(line.startswith("racing: frozen lr stopped after 3 seeds") for line in lines)
    report = (out / "report.md").read_text()
    assert "3 (stopped after 3 seeds: worse than good" in report and "VALIDATION" in report


def simulate_race(rng, arms: int, seeds: int, n: int, seed_sd: float, deltas=None, min_seeds=3, alpha=0.05,
                  n_boot=100) -> set[int]:
    """The arms racing stops in one simulated study (benchmarks/calibration.py's generative model, several arms on
    one shared validation set); arm i's expected accuracy is deltas[i] below arm 0's."""
    from calibration import SIGMA_ARM, SIGMA_DIFFICULTY, theta_shift
    from scipy.special import expit

    _, theta0, slope = _population()
    tau = seed_sd / slope
    difficulty = rng.normal(0, SIGMA_DIFFICULTY, n)
    y = rng.integers(0, 2, n)
    preds = {}
    for arm in range(arms):
        theta = theta0 - theta_shift((deltas or [0.0] * arms)[arm])
        logit = theta + tau * rng.standard_normal((seeds, 1)) + difficulty + rng.normal(0, SIGMA_ARM, n)
        preds[arm] = np.where(rng.random((seeds, n)) < expit(logit), y, 1 - y)
    looks = seeds - min_seeds
    alive, stopped = set(range(arms)), set()
    for k in range(min_seeds, seeds):
        _, rows = racing_step(y, {a: dict(enumerate(preds[a][:k])) for a in alive}, IntConfusionMetric("accuracy", 2),
                              alpha / looks, min_seeds, n_boot)
        newly = {arm for arm, row in rows.items() if row["stop"]}
        alive -= newly
        stopped |= newly
    return stopped


def test_racing_rarely_stops_an_arm_as_good_as_the_leader():
    """4 equal arms, 5 seeds (2 looks), 300 validation examples, seed sd 0.02 (the hardest case of the calibration
    grid): racing stops an arm that is as good as the leader in at most 5 % of cases, up to 2 Monte-Carlo standard
    errors (measured ≈ 2.6 %); any of the 3 non-leaders in ≈ 6 % of studies (the leader is the max of 4 noisy
    means), bounded here at 10 %."""
    rng = np.random.default_rng(11)
    studies = 300
    stopped = [simulate_race(rng, 4, 5, 300, 0.02) for _ in range(studies)]
    per_arm = sum(len(s) for s in stopped) / (3 * studies)
    assert per_arm <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / (3 * studies)), per_arm
    assert np.mean([bool(s) for s in stopped]) <= 0.10


def test_racing_stops_a_clearly_worse_arm():
    """Power: an arm 8 accuracy points worse than three equal ones is stopped in most simulated studies."""
    rng = np.random.default_rng(12)
    hits = [3 in simulate_race(rng, 4, 5, 300, 0.01, deltas=[0, 0, 0, 0.08]) for _ in range(40)]
    assert np.mean(hits) >= 0.7, np.mean(hits)
