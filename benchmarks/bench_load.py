"""Driver overhead of a large study (issue #17, load): does bookkeeping per run grow as the study grows?

    PYTHONPATH=src:tests python benchmarks/bench_load.py [--runs 300] [--examples 48] [--window 50] \
        [--out benchmarks/load.json]

One `run_study` with the local executor over `--runs` tiny runs (tests/tiny.py's random 2-layer BERT, a few dozen
trivially separable examples, 1 epoch, `save_model: false`, grid seeds × learning rates). Each finished run's
progress line is time-stamped; per window of `--window` runs, the driver's overhead per run is
(wall time of the window − the windows' summed `train_seconds` from metrics.json) / runs in the window. That
overhead includes the progress line, the tracking listener and the throttled live report rebuild (study/live.py).
After the study, `collect_results` and `build_report` are timed on the first 50, 100, … runs so their growth is
visible apart from the throttle. A least-squares slope of overhead per run against runs done says whether the
total grows quadratically (slope ≫ 0) or linearly (slope ≈ 0).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

LINE = re.compile(r"^\[(\d+)/\d+\] \S+ \((\w+)\)")


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys against xs."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def study_spec(model: str, data: Path, runs: int) -> dict:
    lrs = [1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2]
    seeds = list(range(-(-runs // len(lrs))))
    return {"name": "load", "baseline": False, "seeds": seeds, "grid": {"optim.lr": lrs},
            "base": {"data": {"path": str(data)}, "model": {"name": model}, "freeze": "all",
                     "optim": {"lr": 3e-3},
                     "train": {"epochs": 1, "batch_size": 16, "eval_batch_size": 32, "threads": 1,
                               "save_model": False}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--out", default="benchmarks/load.json")
    args = parser.parse_args()

    import torch
    from tiny import make_tiny_model, synthetic_frame

    from unfreeze.config.study import StudyConfig
    from unfreeze.report.build import build_report
    from unfreeze.study.grid import expand
    from unfreeze.study.results import collect_results
    from unfreeze.study.runner import run_study

    root = Path(tempfile.mkdtemp(prefix="bench-load-"))
    model = make_tiny_model("bert", root / "model")
    data = root / "data.csv"
    synthetic_frame(args.examples, seed=0).to_csv(data, index=False)
    cfg = StudyConfig.model_validate(study_spec(model, data, args.runs))
    study_dir = root / "study"
    stamps: list[tuple[float, str]] = []
    lines: list[str] = []

    def echo(line: str) -> None:
        match = LINE.match(line)
        if match:
            stamps.append((time.perf_counter(), match.group(2)))
        else:
            lines.append(line)

    started = time.perf_counter()
    results = run_study(cfg, study_dir, progress=False, echo=echo)
    total = time.perf_counter() - started
    train = {rid: json.loads((study_dir / "runs" / rid / "metrics.json").read_text())["train_seconds"]
             for _, rid in stamps}

    windows, previous = [], started
    for lo in range(0, len(stamps), args.window):
        chunk = stamps[lo:lo + args.window]
        wall = chunk[-1][0] - previous
        trained = sum(train[rid] for _, rid in chunk)
        windows.append({"runs": f"{lo + 1}-{lo + len(chunk)}", "done": lo + len(chunk), "wall_s": round(wall, 2),
                        "train_s": round(trained, 2), "overhead_ms_per_run": round(1000 * (wall - trained) / len(chunk), 1)})
        previous = chunk[-1][0]
    tail = total - (stamps[-1][0] - started)  # after the last run: failures, collect_results, final report

    jobs = expand(cfg)
    growth = []
    for n in range(args.window, len(jobs) + 1, args.window):
        t0 = time.perf_counter()
        frame = collect_results(study_dir, jobs[:n])
        t1 = time.perf_counter()
        build_report(study_dir, frame)
        growth.append({"runs": n, "collect_s": round(t1 - t0, 3), "report_s": round(time.perf_counter() - t1, 3)})
    xs = [w["done"] for w in windows]
    summary = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "PYTHONPATH=src:tests python " + " ".join(["benchmarks/bench_load.py", *sys.argv[1:]]),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "runs": len(results), "examples": args.examples, "wall_s": round(total, 1),
        "summed_train_s": round(sum(train.values()), 1), "after_last_run_s": round(tail, 2),
        "windows": windows, "collect_report_growth": growth,
        "overhead_slope_ms_per_run_per_100_runs": round(100 * slope(xs, [w["overhead_ms_per_run"] for w in windows]), 2),
        "collect_slope_ms_per_100_runs": round(100e3 * slope([g["runs"] for g in growth],
                                                             [g["collect_s"] for g in growth]), 1),
        "report_slope_ms_per_100_runs": round(100e3 * slope([g["runs"] for g in growth],
                                                            [g["report_s"] for g in growth]), 1),
        "driver_lines": [line for line in lines if line.startswith("live report") or "already" in line],
    }
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
