"""Tracking: a fake study (2 arms × 2 seeds) sent to MLflow / TensorBoard / W&B and read back with each tool's
own reader (MlflowClient, TensorBoard's EventAccumulator, W&B's record protobuf), resumed without duplicates,
and tracking that is missing or down never stopping the run."""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import struct
import sys
import time
import zlib
from pathlib import Path

import pytest

import unfreeze.tracking as tracking
from unfreeze.errors import ConfigError
from unfreeze.tracking import flatten_metrics, flatten_params, make_tracker

HAS = {name: importlib.util.find_spec(name) is not None for name in ("mlflow", "tensorboard", "wandb")}
needs = {name: pytest.mark.skipif(not ok, reason=f"{name} not installed") for name, ok in HAS.items()}

ARMS = {"head": {"strategy": "head"}, "top-2": {"strategy": "top_k", "k": 2}}
SEEDS = (1, 2)
STEPS = (5, 10, 15)
LONG = "x" * 7000  # longer than MLflow's 6000-character param limit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """Each test starts with no tracking settings from the machine and restores os.environ afterwards
    (the MLflow backend sets bounded HTTP defaults where the user set none)."""
    saved = dict(os.environ)
    for key in ("MLFLOW_TRACKING_URI", "WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL",
                *tracking.MLFLOW_HTTP_DEFAULTS):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    for key in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(key, str(tmp_path / "wandb-home" / key.lower()))
    yield
    os.environ.clear()
    os.environ.update(saved)


def planned_runs():
    """(name, run_id, config, tags, history rows, final metrics) for each run; the numbers differ per run."""
    runs = []
    for a, (arm, freeze) in enumerate(ARMS.items()):
        for seed in SEEDS:
            base = 0.5 + 0.1 * a + 0.01 * seed
            history = [{"epoch": i + 1.0, "step": s, "train_loss": 1.0 / (i + 1) + seed / 100,
                        "val_accuracy": base + 0.02 * i, "lr": 2e-5 * (1 - i / 3), "seconds": 1.5 * (i + 1)}
                       for i, s in enumerate(STEPS)]
            final = {"val": {"accuracy": base + 0.04, "macro_f1": base}, "test": {"accuracy": base - 0.01},
                     "history": history, "best_epoch": 3.0, "train_seconds": 4.5, "selection_metric": "accuracy",
                     "cache": {"used": True, "from_layer": None}, "trainable_params": 1000 * (a + 1)}
            config = {"task": "sequence", "seed": seed, "freeze": freeze, "model": {"name": "tiny-bert"},
                      "optim": {"lr": 2e-5, "betas": [0.9, 0.999]}, "notes": LONG}
            tags = {"arm": arm, "seed": seed, "fold": -1, "strategy": freeze["strategy"]}
            runs.append((f"{arm} · seed {seed}", f"{arm.replace('-', '')}s{seed}", config, tags, history, final))
    return runs


def run_fake_study(tracker, study_dir: Path, interrupt: str | None = None, artifacts=()):
    """Drive the tracker as run_study would; `interrupt` = run_id that crashes before end_run (no FINISHED)."""
    study = tracker.start_study("demo", {"grid": {"freeze": list(ARMS)}, "seeds": list(SEEDS)},
                                {"task": "sequence"}, study_dir=study_dir)
    handles = []
    for name, run_id, config, tags, history, final in planned_runs():
        run = tracker.start_run(name, flatten_params(config), tags, parent=study, run_id=run_id)
        handles.append(run)
        for row in history:
            tracker.log_metrics(run, row, step=row["step"])
            if run_id == interrupt:
                break  # dies after one evaluation: never ended
        if run_id != interrupt:
            tracker.end_run(run, final, status="FINISHED")
    tracker.end_study(study, {"runs": 4.0, "best/val_accuracy": 0.66}, list(artifacts), status="FINISHED")
    return study, handles


# ---------------------------------------------------------------------------------------------------------
# Pure helpers


@needs["mlflow"]
def test_flatten_params_dotted_keys_and_mlflow_limits():
    """Params are dotted strings cut to the limits MLflow itself enforces (read from the installed MLflow)."""
    from mlflow.utils.validation import MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH

    flat = flatten_params({"optim": {"lr": 2e-5, "betas": [0.9, 0.999]}, "freeze": {"strategy": "top_k", "k": 2},
                           "notes": LONG, "empty": {}, "none": None, "k" * 300: 1})
    assert flat["optim.lr"] == "2e-05" and flat["freeze.k"] == "2" and flat["freeze.strategy"] == "top_k"
    assert json.loads(flat["optim.betas"]) == [0.9, 0.999] and flat["empty"] == "{}" and flat["none"] == "None"
    assert len(flat["notes"]) == MAX_PARAM_VAL_LENGTH
    assert all(isinstance(v, str) for v in flat.values())
    assert max(len(k) for k in flat) == MAX_ENTITY_KEY_LENGTH


def test_flatten_metrics_keeps_numbers_joins_nested_with_slash():
    """train()'s return value can be passed whole: nested numbers kept, lists / strings / bools / None left out."""
    final = planned_runs()[0][5]
    flat = flatten_metrics({**final, "nan": float("nan")})
    assert flat["val/accuracy"] == final["val"]["accuracy"] and flat["test/accuracy"] == final["test"]["accuracy"]
    assert "history" not in flat and "selection_metric" not in flat
    assert "cache/used" not in flat and "cache/from_layer" not in flat
    assert math.isnan(flat["nan"]) and flat["trainable_params"] == 1000.0


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="'mlfow' is unknown"):
        make_tracker(["mlfow"], None, "x")


# ---------------------------------------------------------------------------------------------------------
# MLflow


def mlflow_children(client, experiment: str):
    from mlflow.entities import ViewType

    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], "", run_view_type=ViewType.ACTIVE_ONLY, max_results=1000)
    parents = [r for r in runs if r.data.tags.get("unfreeze.kind") == "study"]
    children = [r for r in runs if r.data.tags.get("unfreeze.kind") == "run"]
    return parents, children


@needs["mlflow"]
def test_mlflow_study_is_parent_with_four_children_params_history_and_final_metrics(tmp_path):
    from mlflow import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    results = tmp_path / "results.csv"
    results.write_text("run_id,acc\na,1\n")
    tracker = make_tracker(["mlflow"], tmp_path / "track", "exp")
    assert tracker.active == ["mlflow"]
    run_fake_study(tracker, tmp_path / "study", artifacts=[results])
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'track' / 'mlflow.db'}")
    parents, children = mlflow_children(client, "exp")
    assert len(parents) == 1 and len(children) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["unfreeze.study_dir"] == str(tmp_path / "study")
    assert parent.data.params["seeds"] == "[1, 2]" and parent.data.metrics["best/val_accuracy"] == 0.66
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["results.csv"]
    expected = {run_id: (name, config, tags, history, final) for name, run_id, config, tags, history, final
                in planned_runs()}
    for child in children:
        name, config, tags, history, final = expected[child.data.tags["unfreeze.run_id"]]
        assert child.data.tags[MLFLOW_PARENT_RUN_ID] == parent.info.run_id
        assert child.info.run_name == name and child.info.status == "FINISHED"
        assert child.data.tags["arm"] == tags["arm"] and child.data.tags["seed"] == str(tags["seed"])
        assert child.data.params == flatten_params(config)  # 6000-char cut and all: MLflow stored it unchanged
        points = client.get_metric_history(child.info.run_id, "val_accuracy")
        assert [(m.step, m.value) for m in points] == [(r["step"], r["val_accuracy"]) for r in history]
        assert "step" not in child.data.metrics
        final_flat = flatten_metrics(final)
        assert {k: child.data.metrics[k] for k in final_flat} == final_flat
        assert client.get_metric_history(child.info.run_id, "test/accuracy")[0].step == STEPS[-1]


@needs["mlflow"]
def test_mlflow_resumed_study_reuses_parent_and_adds_no_duplicate_children(tmp_path):
    """Second pass: finished runs are skipped, the interrupted one is replaced, still one parent + 4 children."""
    from mlflow import MlflowClient

    first = make_tracker(["mlflow"], tmp_path / "track", "exp")
    run_fake_study(first, tmp_path / "study", interrupt="top2s1")
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'track' / 'mlflow.db'}")
    _, children = mlflow_children(client, "exp")
    assert sorted(c.info.status for c in children) == ["FINISHED"] * 3 + ["RUNNING"]

    second = make_tracker(["mlflow"], tmp_path / "track", "exp")
    _, handles = run_fake_study(second, tmp_path / "study")
    assert [h.skipped for h in handles] == [True, True, False, True]
    parents, children = mlflow_children(client, "exp")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(children) == 4 and {c.info.status for c in children} == {"FINISHED"}
    assert sorted(c.data.tags["unfreeze.run_id"] for c in children) == sorted(r[1] for r in planned_runs())
    redone = next(c for c in children if c.data.tags["unfreeze.run_id"] == "top2s1")
    assert [m.step for m in client.get_metric_history(redone.info.run_id, "val_accuracy")] == list(STEPS)

    third = make_tracker(["mlflow"], tmp_path / "track", "exp")  # a finished study run again: nothing added
    _, handles = run_fake_study(third, tmp_path / "study")
    assert all(h.skipped for h in handles) and len(mlflow_children(client, "exp")[1]) == 4


@needs["mlflow"]
def test_mlflow_server_down_gives_one_warning_and_the_study_goes_on(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port on loopback: refused
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        tracker = make_tracker(["mlflow", "tensorboard"] if HAS["tensorboard"] else ["mlflow"], tmp_path, "exp")
        run_fake_study(tracker, tmp_path / "study")
    elapsed = time.perf_counter() - started
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "mlflow" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "http://127.0.0.1:9" in warnings[0] and "unset MLFLOW_TRACKING_URI" in warnings[0]
    assert "mlflow" not in tracker.active and elapsed < 20
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "2"  # bounded defaults for a remote server


@needs["mlflow"]
def test_a_backend_failing_mid_study_is_switched_off_once_and_others_go_on(tmp_path, caplog):
    tracker = make_tracker(["mlflow", "tensorboard"] if HAS["tensorboard"] else ["mlflow"], tmp_path, "exp")
    backend = tracker.backends[0]
    calls = {"n": 0}

    def broken(*args, **kwargs):
        calls["n"] += 1
        raise RuntimeError("database is locked")

    backend.client.log_batch = broken
    with caplog.at_level(logging.WARNING):
        run_fake_study(tracker, tmp_path / "study")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "mlflow is off" in warnings[0] and "database is locked" in warnings[0]
    assert calls["n"] == 1 and tracker.active == [b for b in ("tensorboard",) if HAS["tensorboard"]]


# ---------------------------------------------------------------------------------------------------------
# TensorBoard


def tb_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@needs["tensorboard"]
def test_tensorboard_scalars_steps_final_metrics_and_hparams(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tracker = make_tracker(["tensorboard"], tmp_path, "exp")
    run_fake_study(tracker, tmp_path / "study")
    folders = sorted(p for p in (tmp_path / "tensorboard" / "demo").iterdir() if p.name != "_study")
    assert len(folders) == 4
    for name, run_id, config, tags, history, final in planned_runs():
        folder = next(f for f in folders if f.name.endswith(run_id))
        scalars = tb_scalars(folder)
        for key in ("val_accuracy", "train_loss", "lr"):
            assert [s for s, _ in scalars[key]] == list(STEPS)
            assert [v for _, v in scalars[key]] == pytest.approx([r[key] for r in history], rel=1e-6)  # float32
        assert "step" not in scalars
        for key, value in flatten_metrics(final).items():
            assert scalars[key] == [(STEPS[-1], pytest.approx(value, rel=1e-6))]
        acc = EventAccumulator(str(folder))
        acc.Reload()
        assert "_hparams_/session_start_info" in acc.PluginTagToContent("hparams")
    assert tb_scalars(tmp_path / "tensorboard" / "demo" / "_study")["best/val_accuracy"][0][0] == 0


@needs["tensorboard"]
def test_tensorboard_resume_skips_finished_and_redraws_interrupted_once(tmp_path):
    run_fake_study(make_tracker(["tensorboard"], tmp_path, "exp"), tmp_path / "study", interrupt="heads2")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "tensorboard").rglob("events.out.tfevents.*")}
    _, handles = run_fake_study(make_tracker(["tensorboard"], tmp_path, "exp"), tmp_path / "study")
    assert [h.skipped for h in handles] == [True, False, True, True]
    folder = next(p for p in (tmp_path / "tensorboard" / "demo").iterdir() if p.name.endswith("heads2"))
    assert [s for s, _ in tb_scalars(folder)["val_accuracy"]] == list(STEPS)  # not 5, 5, 10, 15
    finished = [p for p in before if "heads2" not in str(p) and "_study" not in str(p)]
    assert len(finished) == 3 and all(p.stat().st_mtime_ns == before[p] for p in finished)


# ---------------------------------------------------------------------------------------------------------
# Weights & Biases (offline)


def wandb_records(path: Path):
    """The records of a `.wandb` file: W&B's LevelDB-log framing (7-byte `:W&B` header, 32 KiB blocks, CRC32
    of type+data) around `wandb_internal_pb2.Record` protobufs — the format `wandb sync` replays."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, buffer = 7, b""
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:
            pos += left
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 or pos + 7 + length > len(data):
            break  # zero padding, or a record still being written
        chunk = data[pos + 7:pos + 7 + length]
        assert zlib.crc32(bytes([kind]) + chunk) == crc, f"corrupt record at byte {pos} of {path}"
        pos += 7 + length
        buffer += chunk
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buffer)
            buffer = b""
            yield record


def wait_for_exit_record(path: Path, timeout: float = 15.0) -> None:
    """`run.finish()` in offline mode can return before wandb-core has flushed the run's file (seen for about
    1 run in 10 here); the file is complete once it holds the run's `exit` record."""
    deadline = time.monotonic() + timeout
    while "exit" not in {r.WhichOneof("record_type") for r in wandb_records(path)}:
        assert time.monotonic() < deadline, f"{path} has no exit record after {timeout} s"
        time.sleep(0.1)


def read_wandb_run(path: Path) -> dict:
    wait_for_exit_record(path)
    run, history, summary = None, [], {}
    for record in wandb_records(path):
        which = record.WhichOneof("record_type")
        if which == "run":
            run = record.run
        elif which == "history":
            history.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item})
        elif which == "summary":
            for item in record.summary.update:
                summary[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return {"run": run, "history": history, "summary": summary}


@needs["wandb"]
def test_wandb_offline_runs_group_history_and_summary(tmp_path):
    tracker = make_tracker(["wandb"], tmp_path, "exp")
    run_fake_study(tracker, tmp_path / "study")
    files = sorted((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 5  # 4 runs + the study summary run
    runs = [read_wandb_run(f) for f in files]
    by_name = {r["run"].display_name: r for r in runs}
    study = by_name.pop("demo (study)")
    assert study["run"].job_type == "study" and study["summary"]["best/val_accuracy"] == 0.66
    for name, run_id, config, tags, history, final in planned_runs():
        got = by_name[name]
        assert got["run"].run_group == "demo" and got["run"].job_type == tags["arm"]
        assert f"seed={tags['seed']}" in got["run"].tags
        config_items = {u.key: json.loads(u.value_json) for u in got["run"].config.update}
        assert config_items["optim.lr"] == "2e-05" and config_items["arm"] == tags["arm"]
        assert [h["_step"] for h in got["history"]] == list(STEPS)
        assert [h["val_accuracy"] for h in got["history"]] == [r["val_accuracy"] for r in history]
        final_flat = flatten_metrics(final)
        assert {k: got["summary"][k] for k in final_flat} == final_flat
    # resume: nothing new is written for finished runs
    _, handles = run_fake_study(make_tracker(["wandb"], tmp_path, "exp"), tmp_path / "study")
    assert all(h.skipped for h in handles)
    assert len(list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))) == 6  # + the study summary again


def test_missing_backend_gives_one_warning_and_calls_are_no_ops(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: find_spec → None, import → error
    with caplog.at_level(logging.WARNING):
        tracker = make_tracker(["wandb"], tmp_path, "exp")
        run_fake_study(tracker, tmp_path / "study")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "wandb is off" in warnings[0] and "pip install" in warnings[0]
    assert tracker.active == [] and not (tmp_path / "wandb").exists()


# ---------------------------------------------------------------------------------------------------------
# Wired into unfreeze: `unfreeze train --track`, a study's parent + children, resume, `tracking:` in the file


def _mlflow_runs(uri: str):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(tracking_uri=uri)
    experiments = client.search_experiments()
    return client, client.search_runs([e.experiment_id for e in experiments], run_view_type=ViewType.ACTIVE_ONLY)


@needs["mlflow"]
@needs["tensorboard"]
def test_train_track_mlflow_logs_the_metrics_json_numbers_and_history(tiny_bert, sentiment_csv, tmp_path,
                                                                     monkeypatch):
    import yaml
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from typer.testing import CliRunner

    from tiny import run_config
    from unfreeze.cli import app

    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({**run_config(tiny_bert, sentiment_csv, train={"epochs": 2, "threads": 1}),
                                      "tracking": ["tensorboard"]}))
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path / "runs" / "r1"
    result = CliRunner().invoke(app, ["train", str(config), "--out", str(out), "--quiet", "--track", "mlflow"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "metrics.json").read_text())
    client, runs = _mlflow_runs(uri)
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert run.data.metrics["test/f1_macro"] == pytest.approx(saved["test"]["f1_macro"], abs=1e-12)
    assert run.data.metrics["trainable_params"] == saved["trainable_params"]
    assert run.data.params["optim.lr"] == str(yaml.safe_load((out / "config.yaml").read_text())["optim"]["lr"])
    # issue 25: one name per metric — the history's `val_f1_macro` is logged as `val/f1_macro`, the final value's
    # name, whose last point is the saved model's value; no `val_...` twin
    val_key = "val/f1_macro"
    assert not any(k.startswith("val_") for k in run.data.metrics)
    points = client.get_metric_history(run.info.run_id, val_key)
    history = [(row["step"], row["val_f1_macro"]) for row in saved["history"]]
    assert [(m.step, m.value) for m in points][:2] == history and len(history) == 2
    assert run.data.metrics[val_key] == pytest.approx(saved["val"]["f1_macro"], abs=1e-12)
    steps = [row["step"] for row in saved["history"]]
    events = list((tmp_path / "runs" / "tensorboard").rglob("events.out.tfevents.*"))
    assert events, "tensorboard: no event file beside the run folder"
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars(val_key)][:2] == steps


def test_unknown_track_name_fails_before_training(tmp_path):
    from typer.testing import CliRunner

    from unfreeze.cli import app

    result = CliRunner().invoke(app, ["train", str(tmp_path / "missing.yaml"), "--track", "mlfow"])
    assert result.exit_code == 2 and "mlfow" in result.output


@needs["mlflow"]
def test_study_logs_one_parent_and_four_children_and_a_rerun_adds_none(tiny_bert, sentiment_csv, tmp_path,
                                                                      monkeypatch):
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    from tiny import run_config
    from unfreeze.config.study import StudyConfig
    from unfreeze.study.runner import run_study

    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
    study = StudyConfig.model_validate({"name": "t", "base": base, "seeds": [0, 1],
                                        "grid": {"freeze": ["head", {"top_k": 1}]}, "tracking": ["mlflow"]})
    study_dir = tmp_path / "study"
    run_study(study, study_dir, progress=False, echo=lambda *a: None)
    uri = f"sqlite:///{(study_dir / 'mlflow.db').resolve()}"
    client, runs = _mlflow_runs(uri)
    parents = [r for r in runs if MLFLOW_PARENT_RUN_ID not in r.data.tags]
    children = [r for r in runs if MLFLOW_PARENT_RUN_ID in r.data.tags]
    assert len(parents) == 1 and len(children) == 4
    assert {(r.data.tags["arm"], r.data.tags["seed"]) for r in children} == {
        (a, s) for a in ("head", "top-1") for s in ("0", "1")}
    results = __import__("pandas").read_csv(study_dir / "results.csv")
    by_id = {r.data.tags["run_id"]: r for r in children}
    for _, row in results.iterrows():
        assert by_id[row["run_id"]].data.metrics["test/f1_macro"] == pytest.approx(row["test_f1_macro"])
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id)}
    assert {"results.csv", "report.html"} <= artifacts
    assert parents[0].data.params["seeds"] == "[0, 1]"
    # issue 25: the baseline row (which may win the verdict) is logged on the parent, as its metrics.json says
    baseline = json.loads(next((study_dir / "baseline").glob("*/metrics.json")).read_text())
    assert parents[0].data.metrics["baseline/test/f1_macro"] == pytest.approx(baseline["test"]["f1_macro"])
    assert parents[0].data.metrics["baseline/val/f1_macro"] == pytest.approx(baseline["val"]["f1_macro"])
    run_study(study, study_dir, progress=False, echo=lambda *a: None)
    _, again = _mlflow_runs(uri)
    assert len([r for r in again if MLFLOW_PARENT_RUN_ID in r.data.tags]) == 4
    assert len([r for r in again if MLFLOW_PARENT_RUN_ID not in r.data.tags]) == 1


# ---------------------------------------------------------------------------------------------------------
# `unfreeze validate` and the dict-based config API


def test_validate_lists_every_error_with_its_key_and_hint(tmp_path, sentiment_csv):
    import yaml
    from typer.testing import CliRunner

    from unfreeze.cli import app

    good = {"data": {"path": str(sentiment_csv)}, "tracking": ["mlflow"]}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(good))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0 and "valid run file" in " ".join(result.output.split())
    bad = {"data": {"path": str(sentiment_csv)}, "optim": {"weight_decy": 0.1}, "train": {"epochs": 0},
           "tracking": ["mlfow"]}
    path.write_text(yaml.safe_dump(bad))
    result = CliRunner().invoke(app, ["validate", str(path)])
    out = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "optim.weight_decy" in out and "did you mean `optim.weight_decay`" in out
    assert "train.epochs" in out and "tracking.backends.0" in out and "3 problem(s)" in out
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"base": good, "grid": {"optim.name": ["adamw", "adamx"]}, "sedes": [1]}))
    result = CliRunner().invoke(app, ["validate", str(study)])
    assert result.exit_code == 2 and "did you mean `seeds`" in " ".join(result.output.split())
    study.write_text(yaml.safe_dump({"base": good, "grid": {"optim.name": ["adamw", "adamx"]}}))
    result = CliRunner().invoke(app, ["validate", str(study)])
    assert result.exit_code == 2 and "adamx" in result.output


def test_parse_configs_from_dicts_match_the_yaml_loaders(tmp_path, sentiment_csv):
    import unfreeze
    from unfreeze.errors import ConfigError

    run = unfreeze.parse_run_config({"data": {"path": str(sentiment_csv)}, "tracking": "tensorboard"})
    assert run.tracking.backends == ["tensorboard"]
    study = unfreeze.parse_study_config({"base": {"data": {"path": "x.csv"}},
                                         "tracking": {"backends": ["mlflow"], "experiment": "e"}})
    assert study.tracking.experiment == "e" and study.tracking.backends == ["mlflow"]
    with pytest.raises(ConfigError, match="did you mean `seeds`"):
        unfreeze.parse_study_config({"base": {}, "sedes": [1]}, "s.yaml")


@needs["mlflow"]
@pytest.mark.faults
def test_read_only_or_file_store_is_one_warning_naming_the_real_cause(tmp_path, monkeypatch, caplog):
    """Issue 26: a read-only store printed 9 warning blocks (MLflow retried for ~100 s) and blamed the install
    ("reinstall unfreeze[track]"); a `file:` store (MLflow 3 refuses it) got the same wrong hint."""
    import subprocess

    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:  # root ignores permission bits: a read-only mount
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                              capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.decode().strip()}")
    else:
        folder.chmod(0o555)
    try:
        cases = {f"sqlite:///{folder / 'mlflow.db'}": "not writable",
                 (tmp_path / "mlruns").as_uri(): "file store"}
        for uri, cause in cases.items():
            monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                tracker = make_tracker(["mlflow"], tmp_path, "exp")
            warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
            assert len(warnings) == 1, warnings
            assert cause in warnings[0] and uri in warnings[0] and "reinstall" not in warnings[0]
            assert tracker.active == []
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)
