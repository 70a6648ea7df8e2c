"""Runs per minute of one small real study under the local executor and under Ray, on this machine.

    python benchmarks/ray_vs_local.py [--cpus 2] [--runs-per-arm 3] [--train-size 200] [--out benchmarks/ray.json]

The study: MiniLM-L6 on Rotten Tomatoes, `train_size` examples, 1 epoch, strategies `all` and `top_2` (top_2
reads the frozen-prefix cache), one run per seed. Local runs one after another with `--cpus` torch threads;
Ray runs `--cpus` tasks of 1 CPU (1 thread) side by side. Both start from an empty study folder and the time
includes everything (Ray start, worker imports, cache build). The metrics are reported side by side: with
different torch thread counts they may differ in the last digits (float summation order); `tests/test_ray.py`
checks exact equality at equal thread counts.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


def study_spec(train_size: int, seeds: list[int], threads: int | None) -> dict:
    return {
        "name": "ray-bench", "baseline": False, "seeds": seeds,
        "grid": {"freeze": ["all", {"top_k": 2}]},
        "base": {
            "data": {"dataset": "rotten_tomatoes", "train_size": train_size, "max_length": 64},
            "model": {"name": "minilm", "pooling": "mean"},
            "optim": {"lr": 1e-4, "head_lr": 1e-2},
            "train": {"epochs": 1, "batch_size": 16, "eval_batch_size": 64, "save_model": False,
                      "threads": threads},
        },
    }


def timed_study(spec: dict, out: Path, executor) -> tuple[float, "object"]:
    from unfreeze.config.study import StudyConfig
    from unfreeze.study.runner import run_study

    started = time.perf_counter()
    results = run_study(StudyConfig.model_validate(spec), out, executor=executor, progress=False,
                        echo=lambda *_: None)
    return time.perf_counter() - started, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--runs-per-arm", type=int, default=3)
    parser.add_argument("--train-size", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/ray.json"))
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from unfreeze.config.study import RayConfig
    from unfreeze.io import write_json
    from unfreeze.study.ray_executor import RayExecutor
    from unfreeze.study.execute import LocalExecutor

    seeds = list(range(args.runs_per_arm))
    work = Path(tempfile.mkdtemp(prefix="unfreeze-raybench-"))
    local_s, local = timed_study(study_spec(args.train_size, seeds, args.cpus), work / "local", LocalExecutor())
    ray_s, on_ray = timed_study(study_spec(args.train_size, seeds, None), work / "ray",
                                RayExecutor(RayConfig(num_cpus=1, init_num_cpus=args.cpus)))
    cols = ["val_f1_macro", "test_f1_macro"]
    # run ids differ (train.threads is part of a run's config), so runs are matched by arm and seed
    a, b = (frame.set_index(["arm", "seed"]).sort_index()[cols] for frame in (local, on_ray))
    runs = len(local)
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible",
        "cpus": args.cpus, "runs": runs, "train_size": args.train_size,
        "local_seconds": round(local_s, 1), "ray_seconds": round(ray_s, 1),
        "local_runs_per_min": round(runs / local_s * 60, 2), "ray_runs_per_min": round(runs / ray_s * 60, 2),
        "max_abs_metric_difference": float((a - b).abs().max().max()),
        "note": "local: runs in sequence, torch threads = cpus; ray: cpus tasks of 1 thread in parallel",
    }
    write_json(args.out, summary)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
