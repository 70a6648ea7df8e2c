"""A Ray worker node lost mid-study (issue #17): on a multi-node cluster simulated on this machine (a head with no
CPUs, so every run goes to one of two 1-CPU worker nodes), one worker node is removed while it executes a run.
The study must finish, every planned run must have its metrics.json, runs finished before the loss must not be
redone, and the lost node's run must have been retried on the surviving node (no failure recorded)."""
import json
import os
import threading
import time

import pytest
from tiny import run_config

from unfreeze import study
from unfreeze.config.study import RayConfig, StudyConfig
from unfreeze.study.ray_executor import RayExecutor

if os.environ.get("UNFREEZE_REQUIRE_RAY"):
    import ray
else:
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (.ci/run installs it)")

pytestmark = [pytest.mark.ray, pytest.mark.faults]


@pytest.fixture
def two_node_cluster():
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    try:
        cluster = Cluster(initialize_head=True, connect=True,
                          head_node_args={"num_cpus": 0, "include_dashboard": False})
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
        cluster.wait_for_nodes()
    except Exception as exc:  # noqa: BLE001 - a sandbox that cannot start raylets: say why
        ray.shutdown()
        pytest.skip(f"cannot start a simulated multi-node Ray cluster here: {type(exc).__name__}: {exc}")
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def running_on(node) -> bool:
    """Whether a worker process of `node` (a child of its raylet) is executing one of our runs right now."""
    import psutil

    raylet = node.all_processes["raylet"][0].process.pid
    try:
        children = psutil.Process(raylet).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for proc in children:
        try:
            if " ".join(proc.cmdline()).startswith("ray::run_on_worker"):
                return True
        except psutil.Error:
            continue
    return False


def test_worker_node_lost_mid_study_its_runs_are_retried_elsewhere(two_node_cluster, tiny_bert, sentiment_csv,
                                                                   tmp_path):
    cluster, workers = two_node_cluster
    # runs long enough (several seconds each on a quiet machine) that the remover finds one executing
    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 6, "batch_size": 8, "threads": 1,
                                                       "save_model": False})
    base["freeze"] = "all"  # no cache task: every task is a run
    cfg = StudyConfig.model_validate({"name": "t", "base": base, "baseline": False, "seeds": [0, 1, 2],
                                      "grid": {"optim.lr": [3e-3, 1e-2]}})
    out = tmp_path / "s"
    removed, finished_at_removal = [], {}

    def remove_a_busy_node():
        deadline = time.time() + 120
        while time.time() < deadline and not removed:
            finished = list(out.glob("runs/*/metrics.json"))
            if finished:
                for node in workers:
                    if running_on(node):
                        finished_at_removal.update({p.parent.name: p.stat().st_mtime_ns
                                                    for p in out.glob("runs/*/metrics.json")})
                        cluster.remove_node(node)
                        removed.append(node)
                        break
            time.sleep(0.01)

    remover = threading.Thread(target=remove_a_busy_node, daemon=True)
    remover.start()
    started = time.time()
    results = study.run_study(cfg, out, progress=False, echo=lambda *_: None,
                              executor=RayExecutor(RayConfig(address=cluster.address, num_cpus=1, max_retries=3)))
    remover.join(timeout=1)
    assert removed, "no worker node was caught executing a run"
    assert 0 < len(finished_at_removal) < 6  # the loss happened mid-study
    assert len([n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]) == 1
    failures = out / "failures.json"
    assert not failures.exists() or json.loads(failures.read_text()) == []  # the lost run was retried, ok
    planned = [job.run_id for job in study.expand(cfg)]
    assert sorted(results["run_id"]) == sorted(planned)
    for run_id in planned:
        assert (out / "runs" / run_id / "metrics.json").exists()
    for run_id, mtime in finished_at_removal.items():  # finished before the loss: not redone
        assert (out / "runs" / run_id / "metrics.json").stat().st_mtime_ns == mtime
    assert time.time() - started < 240
