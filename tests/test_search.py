"""Optuna searches: a killed search resumes without retraining finished trials, pruned trials are labelled and
kept out of the comparisons, the report carries Optuna's views, and the space is checked before any trial."""
import json

import pandas as pd
import pytest

from tiny import run_config
import unfreeze.study as study
from unfreeze.config.study import StudyConfig
from unfreeze.errors import ConfigError
from unfreeze.training.run import train as REAL_TRAIN

optuna = pytest.importorskip("optuna")


def make_search(model, data, **search):
    base = run_config(model, data, train={"epochs": 1, "threads": 1, "save_model": False})
    spec = {"sampler": "random", "trials": 4, "seed": 0,
            "space": {"optim.lr": {"low": 1e-4, "high": 1e-2, "log": True}, "freeze": ["head", {"top_k": 1}]},
            **search}
    return StudyConfig.model_validate({"name": "s", "base": base, "baseline": False, "search": spec})


class Killed(BaseException):
    """Stands in for SIGKILL: nothing in the search may catch it."""


def record_training(monkeypatch, key, die_on: int | None = None) -> list:
    """Patch `training.train` to record `key(config, out_dir)` for every run it starts and to raise `Killed` at the
    `die_on`-th (a SIGKILL mid-run); returns the record."""
    import unfreeze.training.run as training

    calls = []

    def train(config, out_dir, **kw):
        calls.append(key(config, out_dir))
        if len(calls) == die_on:
            raise Killed()
        return REAL_TRAIN(config, out_dir, **kw)

    monkeypatch.setattr(training, "train", train)
    return calls


def test_killed_search_resumes_without_retraining(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    s, out = make_search(tiny_bert, sentiment_csv), tmp_path / "study"
    calls = record_training(monkeypatch, lambda config, out_dir: out_dir.name, die_on=3)
    with pytest.raises(Killed):
        study.run_study(s, out, progress=False, echo=lambda *_: None)
    first_two, killed = calls[:2], calls[2]
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{(out / 'optuna.db').resolve()}")
    assert [t.state.name for t in stored.trials] == ["COMPLETE", "COMPLETE", "RUNNING"]

    calls = record_training(monkeypatch, lambda config, out_dir: out_dir.name)
    results = study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert len(calls) == 2 and calls[0] == killed  # the killed trial is re-asked first, the finished never redone
    assert not set(calls) & set(first_two)
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{(out / 'optuna.db').resolve()}")
    states = [t.state.name for t in stored.trials]
    assert states.count("COMPLETE") == 4 and states.count("FAIL") == 1 and "RUNNING" not in states
    assert len(results) == len({*first_two, *calls}) and set(results["status"]) == {"complete"}
    assert "optim.lr" in results and "freeze" in results
    html = (out / "report.html").read_text()
    assert 'id="optuna_history"' in html and 'id="optuna_slice"' in html and 'id="optuna_importances"' in html

    calls.clear()  # a finished search run again trains nothing
    study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert calls == []


def test_pruned_trials_are_labelled_and_never_compared(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    s = make_search(tiny_bert, sentiment_csv, pruner="median", trials=3)
    s.base["train"].update(epochs=2, eval_every_steps=3)
    monkeypatch.setattr("optuna.trial.Trial.should_prune", lambda self: self.number == 1)
    out = tmp_path / "study"
    results = study.run_study(s, out, progress=False, echo=lambda *_: None)
    pruned = results[results["status"] != "complete"]
    assert len(pruned) == 1 and pruned["status"].iloc[0].startswith("pruned at epoch ")
    assert pruned["test_f1_macro"].isna().all() if "test_f1_macro" in pruned else True
    assert len(pd.read_csv(out / "results.csv")) == 3
    report = (out / "report.md").read_text()
    arms_table = report.split("## Results", 1)[1].split("\n\n")[1]
    assert pruned["arm"].iloc[0] not in arms_table
    assert "## Pruned trials" in report and "pruned at epoch" in report
    assert "Pick: trial " in report and "a pick, not a finding" in report  # one seed: no "best" claimed
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{(out / 'optuna.db').resolve()}")
    assert [t.state.name for t in stored.trials] == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert len(stored.trials[0].intermediate_values) >= 2  # the pruner was fed every evaluation
    assert len(stored.trials[1].intermediate_values) == 1  # and trial 1 stopped at its first


def test_space_is_checked_before_any_trial(tiny_bert, sentiment_csv, tmp_path):
    bad = make_search(tiny_bert, sentiment_csv, space={"optim.name": ["adamw", "adamx"]})
    with pytest.raises(ConfigError, match="adamx"):
        study.run_study(bad, tmp_path / "x", progress=False, echo=lambda *_: None)
    clash = make_search(tiny_bert, sentiment_csv, sampler="grid",
                        space={"data.split.val": [0.1, 0.6], "data.split.test": [0.1, 0.5]})
    with pytest.raises(ConfigError, match=r"the combination \{'data.split.val': 0.6, 'data.split.test': 0.5\}"):
        study.run_study(clash, tmp_path / "clash", progress=False, echo=lambda *_: None)
    assert not (tmp_path / "clash" / "runs").exists()
    with pytest.raises(Exception, match="grid takes lists only"):
        make_search(tiny_bert, sentiment_csv, sampler="grid")
    with pytest.raises(Exception, match="cannot be combined with grid"):
        StudyConfig.model_validate({"base": run_config(tiny_bert, sentiment_csv), "grid": {"seed": [1]},
                                    "search": {"space": {"optim.lr": [1e-3]}}})


def test_best_trial_rerun_with_more_seeds_and_dry_run(tiny_bert, sentiment_csv, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from unfreeze.cli import app

    s = make_search(tiny_bert, sentiment_csv, trials=2, seeds=[1], top=1)
    out = tmp_path / "study"
    results = study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert len(results) == 3 and sorted(results["seed"]) == [0, 0, 1]
    trials = results.loc[results["seed"] == 0]
    best_arms = set(trials.loc[trials["val_f1_macro"] == trials["val_f1_macro"].max(), "arm"])  # ties: either
    assert results.loc[results["seed"] == 1, "arm"].iloc[0] in best_arms

    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(s.model_dump(mode="json", exclude_defaults=True)))
    shown = CliRunner().invoke(app, ["study", str(path), "--dry-run", "--out", str(out)])
    assert shown.exit_code == 0, shown.output
    assert "random sampler, 2 trials of seed 0" in shown.output and "2 trials in" in shown.output


def test_costly_first_grid_runs_each_point_once_in_cost_order(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    """`order: costly_first`: the grid's points run costliest first (the dry run's estimate; ties in the grid's
    order), and a search killed mid-way resumes with the killed point first and runs every other point once."""
    import unfreeze.study.estimate as estimate

    cost = {"head": 1.0, "top-1": 2.0, "all": 3.0}
    monkeypatch.setattr(estimate, "estimate_job", lambda job: cost[job.arm.split(" · ")[0]])  # ties across lr
    s = make_search(tiny_bert, sentiment_csv, sampler="grid", order="costly_first", trials=99,
                    space={"freeze": ["head", {"top_k": 1}, "all"], "optim.lr": [1e-3, 1e-2]})
    out = tmp_path / "study"

    def values(config, out_dir):
        return config.freeze.strategy, config.optim.lr

    calls = record_training(monkeypatch, values, die_on=3)
    with pytest.raises(Killed):
        study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert calls == [("all", 1e-3), ("all", 1e-2), ("top_k", 1e-3)]
    calls = record_training(monkeypatch, values)
    results = study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert calls == [("top_k", 1e-3), ("top_k", 1e-2), ("head", 1e-3), ("head", 1e-2)]
    assert len(results) == 6 and results["arm"].nunique() == 6  # every point once, none repeated
    from typer.testing import CliRunner
    import yaml

    from unfreeze.cli import app

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s.model_dump(mode="json", exclude_defaults=True)))
    shown = CliRunner().invoke(app, ["study", str(path), "--dry-run", "--out", str(tmp_path / "dry")])
    assert shown.exit_code == 0, shown.output
    order = shown.output.split("order (costliest first", 1)[1]
    assert order.index("'all'") < order.index("'top_k'") < order.index("'head'")
    with pytest.raises(Exception, match="costly_first orders a grid"):
        make_search(tiny_bert, sentiment_csv, order="costly_first")
    with pytest.raises(Exception, match="a database URL \\(postgresql\\)"):
        make_search(tiny_bert, sentiment_csv, sampler="grid", order="costly_first", space={"freeze": ["head"]},
                    storage="postgresql://db/search")


@pytest.mark.parametrize("order", ["sampler", "costly_first"])
def test_grid_search_resumes_after_a_kill_before_its_first_suggestion(tiny_bert, sentiment_csv, tmp_path, order):
    """A process killed between Optuna's ask and the trial's first suggestion leaves a RUNNING trial without
    parameters; the next run fails it and carries on (no re-ask of nothing), and a one-point grid is told without
    Optuna's grid bookkeeping (KeyError 'grid_id' on a re-asked trial)."""
    from unfreeze.study.trials import open_study

    s = make_search(tiny_bert, sentiment_csv, sampler="grid", order=order, trials=9,
                    space={"freeze": ["head", {"top_k": 1}]})
    out = tmp_path / "study"
    out.mkdir()
    _, opt = open_study(s, out, "f1_macro")
    opt.ask()  # killed here
    results = study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert sorted(results["arm"]) == ["head", "top-1"]
    one = make_search(tiny_bert, sentiment_csv, sampler="grid", order=order, space={"freeze": ["head"]})
    assert len(study.run_study(one, tmp_path / "one", progress=False, echo=lambda *_: None)) == 1


def test_a_dead_workers_trial_is_failed_once_its_heartbeat_is_stale(tiny_bert, sentiment_csv, tmp_path,
                                                                   monkeypatch):
    """Parallel mode (a database URL several drivers share): a trial beats Optuna's heartbeat while it runs
    (ask/tell starts none by itself); once a dead process's heartbeat is stale the next driver fails it and re-asks
    its values, so its grid point still runs."""
    import time

    import unfreeze.study.trials as trials

    monkeypatch.setattr(trials, "HEARTBEAT_S", 1)
    s = make_search(tiny_bert, sentiment_csv, sampler="grid", trials=2, space={"freeze": ["head", {"top_k": 1}]})
    out = tmp_path / "study"
    out.mkdir()
    _, opt = trials.open_study(s, out, "f1_macro", parallel=True)
    dead = opt.ask()
    dead.suggest_categorical("freeze", ["head", '{"top_k": 1}'])
    with trials.heartbeat(opt, dead):
        time.sleep(0.2)  # beats, then its process "dies" without telling
    time.sleep(3.5)  # stale: more than 2 intervals (the storage's timestamps have 1 s resolution)
    trials.run_trials(s, out, trials.DataPool(None), lambda *_: None, progress=False, parallel=True)
    stored = opt.get_trials(deepcopy=False)
    assert stored[0].state.name == "FAIL" and [t.state.name for t in stored[1:]] == ["COMPLETE", "COMPLETE"]
    assert stored[1].params == dead.params  # the dead trial's values were asked again, first
    assert sorted(t.user_attrs["arm"] for t in stored[1:]) == ["head", "top-1"]  # and the grid ran in full


def test_a_failed_trial_is_in_failures_json_the_report_and_the_exit_status(tiny_bert, sentiment_csv, tmp_path,
                                                                           monkeypatch):
    """A trial that fails for a reason of its own is counted (not asked again), listed in failures.json and the
    report's Failures, and makes `failed_runs` non-zero (the CLI exits 3, as for a grid study)."""
    import unfreeze.training.run as training
    from unfreeze.errors import TrainingDivergedError

    original = training.train

    def diverges_for_head(config, out_dir, **kw):
        if config.freeze.strategy == "head":
            raise TrainingDivergedError("loss became nan at step 3 (epoch 1)")
        return original(config, out_dir, **kw)

    monkeypatch.setattr(training, "train", diverges_for_head)
    s = make_search(tiny_bert, sentiment_csv, sampler="grid", trials=2, space={"freeze": ["head", {"top_k": 1}]})
    out = tmp_path / "study"
    results = study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert results.attrs["failed_runs"] == 1 and list(results["arm"]) == ["top-1"]
    failures = json.loads((out / "failures.json").read_text())
    assert [f["arm"] for f in failures] == ["head"] and "loss became nan" in failures[0]["error"]
    assert "## Failures" in (out / "report.md").read_text()
