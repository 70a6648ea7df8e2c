"""The Ray executor on a real local Ray instance: same results as the local executor, a worker killed mid-run is
retried without losing or redoing finished runs, deterministic failures are recorded and the study goes on."""
import json
import os
import signal
import sys
import threading
import time

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from tiny import run_config
import unfreeze.study as study
from unfreeze.cli import app
from unfreeze.config.study import RayConfig, StudyConfig
from unfreeze.errors import UnfreezeError
from unfreeze.study.ray_executor import CacheGate, RayExecutor

if os.environ.get("UNFREEZE_REQUIRE_RAY"):  # set by .ci/run: there a missing Ray must fail, not skip
    import ray
else:
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (.ci/run installs it)")

METRICS = ["val_f1_macro", "val_accuracy", "test_f1_macro", "test_accuracy", "best_epoch"]


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}})
    yield
    ray.shutdown()


def study_dict(model, data, **extra):
    base = run_config(model, data, train={"epochs": 2, "threads": 1, "save_model": False})
    return {"name": "t", "base": base, "baseline": False, **extra}


def by_run(results: pd.DataFrame) -> pd.DataFrame:
    return results.set_index("run_id").sort_index()[METRICS]


def quiet(*_):
    pass


def test_ray_study_matches_local_executor(ray_cluster, tiny_bert, sentiment_csv, tmp_path):
    spec = study_dict(tiny_bert, sentiment_csv, grid={"freeze": ["head", {"top_k": 1}, "all"]}, seeds=[0, 1])
    study.run_study(StudyConfig.model_validate(spec), tmp_path / "local", progress=False, echo=quiet)
    local = pd.read_csv(tmp_path / "local" / "results.csv")

    (tmp_path / "study.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["study", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "ray"),
                                      "--executor", "ray", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "running" in result.output  # the progress line says how many runs are in flight
    on_ray = pd.read_csv(tmp_path / "ray" / "results.csv")
    assert len(on_ray) == 6
    pd.testing.assert_frame_equal(by_run(local), by_run(on_ray), check_exact=True)
    for run_id, strategy in zip(on_ray["run_id"], on_ray["strategy"]):  # frozen prefixes read the study cache
        metrics = json.loads((tmp_path / "ray" / "runs" / run_id / "metrics.json").read_text())
        assert metrics["cache"]["used"] == (strategy != "all")
        assert metrics["cache"]["computed_examples"] == 0  # the cache task built it once; no run recomputed it
    assert any((tmp_path / "ray" / "cache").rglob("layer*.npy"))

    again = CliRunner().invoke(app, ["study", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "ray"),
                                     "--executor", "ray", "--quiet"])
    assert again.exit_code == 0 and "6 already finished, 0 to run" in again.output


def test_deterministic_failure_is_recorded_and_the_study_continues(ray_cluster, tiny_bert, sentiment_csv,
                                                                   tmp_path):
    spec = study_dict(tiny_bert, sentiment_csv, grid={"freeze": ["head", {"top_k": 7}]}, ray={"max_retries": 3})
    lines = []
    results = study.run_study(StudyConfig.model_validate(spec), tmp_path / "s", progress=False,
                              echo=lines.append, executor=RayExecutor(RayConfig(max_retries=3)))
    assert list(results["strategy"]) == ["head"]
    failures = json.loads((tmp_path / "s" / "failures.json").read_text())
    assert len(failures) == 1 and "only 2 layers" in failures[0]["error"]
    assert any(line.startswith("FAILED top-7") for line in lines)


def worker_processes():
    """Ray worker processes currently executing our task (Ray sets the process title to the task's name)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if cmdline.startswith("ray::run_on_worker"):
            found.append(proc)
    return found


def test_worker_killed_mid_run_is_retried_and_nothing_finished_is_lost(ray_cluster, tiny_bert, sentiment_csv,
                                                                        tmp_path):
    spec = study_dict(tiny_bert, sentiment_csv, grid={"freeze": ["all", {"top_k": 1}]}, seeds=[0, 1, 2])
    spec["base"]["train"]["epochs"] = 6  # long enough to be caught in the middle
    cfg = StudyConfig.model_validate(spec)
    out = tmp_path / "s"
    killed, finished_at_kill = [], {}

    def kill_one_running_worker():
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            workers = worker_processes()  # executing a run now (a run's folder appears only once it is complete)
            if workers and any((out / "runs").glob("*/metrics.json")):
                finished_at_kill.update({p.parent.name: p.stat().st_mtime_ns
                                         for p in out.glob("runs/*/metrics.json")})
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_running_worker, daemon=True)
    killer.start()
    results = study.run_study(cfg, out, progress=False, echo=quiet, executor=RayExecutor(RayConfig(max_retries=2)))
    killer.join(timeout=1)
    assert killed, "no worker was caught mid-run"
    assert not (out / "failures.json").exists() or json.loads((out / "failures.json").read_text()) == []
    assert len(results) == 6 and results["run_id"].is_unique
    for run_id, mtime in finished_at_kill.items():  # runs finished before the kill were not redone
        assert (out / "runs" / run_id / "metrics.json").stat().st_mtime_ns == mtime
    local = study.run_study(cfg, tmp_path / "local", progress=False, echo=quiet)
    pd.testing.assert_frame_equal(by_run(local), by_run(results), check_exact=True)


def test_cache_gate_lets_one_run_build_each_cache(tiny_bert, sentiment_csv):
    spec = study_dict(tiny_bert, sentiment_csv, grid={"freeze": ["head", {"top_k": 1}, "all"],
                                                      "data.train_size": [100, 150]})
    jobs = study.expand(StudyConfig.model_validate(spec))
    gate = CacheGate()
    head_100, top1_100, all_100, head_150 = jobs[0], jobs[2], jobs[4], jobs[1]
    assert [j.config.freeze.strategy for j in (head_100, top1_100, all_100)] == ["head", "top_k", "all"]
    assert gate.action(head_100) == "build"  # a cache task for train_size=100 starts
    assert gate.action(head_100) == "wait" and gate.action(top1_100) == "wait"  # the group waits for it
    assert gate.action(all_100) == "run"  # uses no cache
    assert gate.action(head_150) == "build"  # other data: its own cache task, in parallel
    gate.cache_done(head_100)
    assert gate.action(head_100) == "run" and gate.action(top1_100) == "run"
    assert gate.action(head_150) == "wait"


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UnfreezeError, match=r"unfreeze\[ray\]"):
        RayExecutor(RayConfig()).connect()


def test_search_trials_run_as_ray_tasks(ray_cluster, tiny_bert, sentiment_csv, tmp_path):
    """`executor: ray` for a search: the driver asks, each trial's run is a Ray task of the one Ray executor
    (reporting to the study's SQLite storage), every trial counts once, each distinct configuration is trained
    once, and the report is written."""
    optuna = pytest.importorskip("optuna")
    spec = study_dict(tiny_bert, sentiment_csv, executor="ray", ray={"num_cpus": 1}, seeds=[0],
                      search={"sampler": "grid", "trials": 3, "seed": 0, "order": "costly_first",
                              "space": {"optim.lr": [1e-3, 1e-2], "freeze": ["head", {"top_k": 1}]}})
    out = tmp_path / "search"
    results = study.run_study(StudyConfig.model_validate(spec), out, progress=False, echo=quiet)
    stored = optuna.load_study(study_name="t", storage=f"sqlite:///{(out / 'optuna.db').resolve()}")
    done = [t for t in stored.trials if t.state.name == "COMPLETE"]
    assert len(done) == len(stored.trials) == 3  # claimed one at a time: none twice, none past `trials`
    assert all(not t.user_attrs["worker"].endswith(f":{os.getpid()}") for t in done)  # trained in Ray workers
    assert all(t.intermediate_values for t in done)  # each worker fed the trial's evaluations to the storage
    assert sorted(results["arm"]) == ["lr=0.001 · head", "lr=0.001 · top-1", "lr=0.01 · top-1"]  # costliest 3
    assert (out / "report.html").exists()
