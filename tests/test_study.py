"""Studies: stable grid hashing, resume after a crash without redoing finished runs, fresh weights per run,
k-fold with ensembles, failures recorded while the study goes on."""
import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from tiny import run_config
from unfreeze.training import prepare
import unfreeze.study as study
from unfreeze.model.backbone import weights_fingerprint
from unfreeze.cli import app
from unfreeze.config.study import StudyConfig


def make_study(model, data, **extra):
    base = run_config(model, data, train={"epochs": 1, "threads": 1, "save_model": False})
    return StudyConfig.model_validate({"name": "t", "base": base, "baseline": False, **extra})


def test_grid_expansion_and_stable_order_independent_hashes(tiny_bert, sentiment_csv):
    a = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head", {"top_k": 1}], "optim.lr": [1e-3, 1e-2]},
                   seeds=[0, 1])
    b = make_study(tiny_bert, sentiment_csv, grid={"optim.lr": [1e-2, 1e-3], "freeze": [{"top_k": 1}, "head"]},
                   seeds=[1, 0])
    runs_a, runs_b = study.expand(a), study.expand(b)
    assert len(runs_a) == 8
    assert {r.run_id for r in runs_a} == {r.run_id for r in runs_b}
    assert {r.arm for r in runs_a} == {"head · lr=0.001", "head · lr=0.01", "top-1 · lr=0.001", "top-1 · lr=0.01"}
    bigger = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head", {"top_k": 1}, "all"],
                                                        "optim.lr": [1e-3, 1e-2]}, seeds=[0, 1])
    assert {r.run_id for r in runs_a} < {r.run_id for r in study.expand(bigger)}


def test_named_arms_and_duplicate_detection(tiny_bert, sentiment_csv):
    s = make_study(tiny_bert, sentiment_csv, arms={"fast": {"optim": {"lr": 1e-2}}, "slow": {"optim.lr": 1e-4}})
    assert sorted(r.arm for r in study.expand(s)) == ["fast", "slow"]
    dup = make_study(tiny_bert, sentiment_csv, arms={"a": {"optim.lr": 1e-2}, "b": {"optim": {"lr": 1e-2}}})
    with pytest.raises(Exception, match="duplicates"):
        study.expand(dup)


def test_invalid_grid_value_names_the_arm(tiny_bert, sentiment_csv):
    s = make_study(tiny_bert, sentiment_csv, grid={"optim.name": ["adamw", "adamx"]})
    with pytest.raises(Exception, match="adamx"):
        study.expand(s)


def test_resume_skips_finished_and_redoes_partial_runs(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    s = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head", {"top_k": 1}]}, seeds=[0, 1])
    out = tmp_path / "study"
    first = study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert len(first) == 4
    finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("runs/*/metrics.json")}
    victim = sorted(finished)[0]
    (out / "runs" / victim / "metrics.json").unlink()  # simulate a crash before the run finished
    (out / "runs" / victim / "stale.tmp").write_text("half-written")
    calls = []
    import unfreeze.training.run as training

    original = training.train
    monkeypatch.setattr(training, "train", lambda config, out_dir, **kw: calls.append(out_dir) or original(
        config, out_dir, **kw))
    second = study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert [p.name for p in calls] == [victim]
    assert not (out / "runs" / victim / "stale.tmp").exists()
    for run_id, mtime in finished.items():
        if run_id != victim:
            assert (out / "runs" / run_id / "metrics.json").stat().st_mtime_ns == mtime
    assert len(second) == 4


def test_every_run_starts_from_fresh_pretrained_weights(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    """A notebook bug: run N continuing from run N-1's weights. Fingerprint the backbone as each run starts."""
    seen = []
    original = prepare.prepare_parts

    def spy(config, data=None):
        run_data, run_model = original(config, data)
        seen.append(weights_fingerprint(run_model.model.backbone))
        return run_data, run_model

    monkeypatch.setattr(prepare, "prepare_parts", spy)
    import unfreeze.training.run as training

    monkeypatch.setattr(training, "prepare_parts", spy)
    s = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["all", "bitfit"]}, seeds=[0, 1])
    study.run_study(s, tmp_path / "study", progress=False, echo=lambda *_: None)
    assert len(seen) == 4 and len(set(seen)) == 1


def test_kfold_writes_out_of_fold_metrics_and_averaged_test_predictions(tiny_bert, sentiment_csv, tmp_path):
    s = make_study(tiny_bert, sentiment_csv, cv={"folds": 3}, grid={"freeze": ["all"]})
    s.base["train"]["save_model"] = True
    out = tmp_path / "study"
    results = study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert sorted(results["fold"]) == [0, 1, 2]
    ensemble = out / "ensembles" / "all-s0"
    metrics = json.loads((ensemble / "metrics.json").read_text())
    assert metrics["folds"] == 3 and metrics["oof_note"].startswith("optimistic")
    assert "OPTIMISTIC: each fold's held-out part also chose that fold's best epoch" in (out / "report.md").read_text()
    oof = pd.read_csv(ensemble / "oof_predictions.csv")
    assert len(oof) == 192 + 24 and oof["id"].is_unique  # every train+val example predicted exactly once
    result = CliRunner().invoke(app, ["predict", str(out), str(ensemble / "predictions_test.csv"), "--arm", "all",
                                      "-o", str(tmp_path / "sub.csv"), "--submission"])
    assert result.exit_code == 0, result.output
    sub = pd.read_csv(tmp_path / "sub.csv")
    assert sub["label"].tolist() == pd.read_csv(ensemble / "predictions_test.csv")["pred"].tolist()


def test_failing_arm_is_recorded_and_the_study_continues(tiny_bert, sentiment_csv, tmp_path):
    s = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head", {"top_k": 7}]})
    out = tmp_path / "study"
    results = study.run_study(s, out, progress=False, echo=lambda *_: None)
    assert list(results["strategy"]) == ["head"]
    failures = json.loads((out / "failures.json").read_text())
    assert len(failures) == 1 and "only 2 layers" in failures[0]["error"]


def test_results_columns_contract(tiny_bert, sentiment_csv, tmp_path):
    s = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head", "all"], "data.train_size": [100, 150]})
    results = study.run_study(s, tmp_path / "study", progress=False, echo=lambda *_: None)
    for column in ("run_id", "arm", "seed", "fold", "path", "strategy", "unfrozen_layers", "num_layers", "freeze",
                   "data.train_size", "val_f1_macro", "test_f1_macro", "trainable_params", "train_seconds"):
        assert column in results.columns
    assert set(results["unfrozen_layers"]) == {0, 2}
    assert (tmp_path / "study" / "results.csv").exists()


def test_dry_run_lists_runs_and_runs_nothing(tiny_bert, sentiment_csv, tmp_path):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head", "all"]},
                                              seeds=[0, 1]).model_dump(mode="json")))
    result = CliRunner().invoke(app, ["study", str(path), "--out", str(tmp_path / "s"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "4 runs" in result.output and "rough cost" in result.output
    assert not (tmp_path / "s" / "runs").exists()


def test_report_rebuild_ignores_runs_removed_from_the_study_and_baseline_follows_the_data(
        tiny_bert, sentiment_csv, tmp_path):
    out = tmp_path / "study"
    both = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head", {"top_k": 1}]}, baseline=True)
    study.run_study(both, out, progress=False, echo=lambda *_: None)
    first_baseline = json.loads((out / "baseline" / "metrics.json").read_text())
    fewer = make_study(tiny_bert, sentiment_csv, grid={"freeze": ["head"]}, baseline=True)
    fewer.base["data"]["train_size"] = 100  # the data changed: the old baseline row would be stale
    study.run_study(fewer, out, progress=False, echo=lambda *_: None)
    assert len(list(out.glob("runs/*/metrics.json"))) == 3  # nothing deleted from disk
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert set(pd.read_csv(out / "results.csv")["arm"]) == {"head"}
    baseline = json.loads((out / "baseline" / "metrics.json").read_text())
    assert baseline["train_size"] == 100 and first_baseline["train_size"] > 100
    assert baseline["data_key"] != first_baseline["data_key"]
