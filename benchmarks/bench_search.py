"""`make bench-search`: what seed racing saves on real studies, and whether it picks the same arm.

Each study runs twice into fresh folders, timed end to end: in full (every arm × every seed) and with seed racing
(`racing:` in the study; arms stopped on *validation* once decisively worse than the leader). `same_decision`:
both pick the same best arm by mean validation score. Output, benchmarks/search.json:

    {"studies": {"<name>": {"full_seconds": s, "fast_seconds": s, "method": "racing", "same_decision": bool,
                            "runs_full": n, "runs_fast": n, "best_full": arm, "best_fast": arm, "racing": {...},
                            "stopped": {arm: note}}}}

Studies (`STUDIES`): the demo (examples/demo.yaml, 4 strategies × 3 seeds — with 3 seeds racing can only stop an
arm after 2 seeds, so it runs with `racing: {min_seeds: 2}`: see `unfreeze.study.racing` for what that costs in
power) and a strategy × learning rate study on BBC News (4 × 3 arms × 5 seeds, `min_seeds: 3`). Long on CPU
(the demo alone is ~10 minutes per pass on 2 cores); nothing here runs in the test suite except a tiny study.

    python benchmarks/bench_search.py                       # both studies → benchmarks/search.json
    python benchmarks/bench_search.py --only demo           # one of them
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def demo_study() -> dict:
    from unfreeze.config.load import read_yaml

    data = read_yaml(ROOT / "examples" / "demo.yaml")
    return {**data, "baseline": False, "racing": {"min_seeds": 2}}


def bbc_strategy_lr_study() -> dict:
    return {"name": "bbc-strategy-lr", "baseline": False, "racing": {"min_seeds": 3},
            "base": {"data": {"dataset": "bbc_news", "max_length": 256, "train_size": 300},
                     "model": {"name": "minilm", "pooling": "mean"},
                     "optim": {"name": "adamw", "head_lr": 1.0e-2},
                     "train": {"epochs": 3, "batch_size": 16, "metric": "f1_macro", "save_model": False}},
            "grid": {"freeze": ["head", {"top_k": 2}, {"top_k": 4}, "all"], "optim.lr": [1.0e-5, 1.0e-4, 1.0e-3]},
            "seeds": [0, 1, 2, 3, 4]}


STUDIES = {"demo": demo_study, "bbc_strategy_lr": bbc_strategy_lr_study}


def timed_study(config, out: Path) -> tuple[float, object]:
    from unfreeze.study.runner import run_study
    from unfreeze.training import cache

    cache.reset_memory()  # no activations carried over from the other pass
    started = time.perf_counter()
    results = run_study(config, out, progress=False, echo=lambda *_: None)
    return time.perf_counter() - started, results


def best_by_val(results, metric: str) -> str:
    from unfreeze.metrics.stats import best_arm

    return best_arm(results.groupby("arm")[f"val_{metric}"].mean().to_dict())


def compare_study(name: str, data: dict, work: Path, say=print) -> dict:
    """Run `data` (a study dict with a `racing:` entry) in full and with racing; the search.json entry."""
    from unfreeze.config.load import parse_study_config
    from unfreeze.io import read_json

    fast_config = parse_study_config(data, name)
    full_config = fast_config.model_copy(update={"racing": None})
    metric = fast_config.base.get("train", {}).get("metric", "f1_macro")
    say(f"{name}: full study …")
    full_seconds, full = timed_study(full_config, work / name / "full")
    say(f"{name}: full {full_seconds:.0f}s, {len(full)} runs; racing …")
    fast_seconds, fast = timed_study(fast_config, work / name / "racing")
    racing = read_json(work / name / "racing" / "racing.json")
    from unfreeze.study.racing import stop_note

    entry = {"full_seconds": round(full_seconds, 2), "fast_seconds": round(fast_seconds, 2), "method": "racing",
             "same_decision": best_by_val(full, metric) == best_by_val(fast, metric), "runs_full": len(full),
             "runs_fast": len(fast), "best_full": best_by_val(full, metric), "best_fast": best_by_val(fast, metric),
             "racing": {k: v for k, v in racing.items() if k != "stopped"},
             "stopped": {arm: stop_note(e) for arm, e in racing["stopped"].items()}}
    say(f"{name}: racing {fast_seconds:.0f}s, {len(fast)} runs, same decision: {entry['same_decision']}")
    return entry


def bench_search(studies: dict[str, dict], out: Path, work: Path | None = None, say=print) -> dict:
    """Every study in full and with racing → `out` (JSON, merged with the studies already there)."""
    from unfreeze.io import read_json, write_json

    own = work is None
    work = Path(tempfile.mkdtemp(prefix="unfreeze-bench-search-")) if own else Path(work)
    try:
        summary = read_json(out) if Path(out).exists() else {"studies": {}}
        for name, data in studies.items():
            summary["studies"][name] = compare_study(name, data, work, say)
            write_json(out, summary)  # after every study: a long benchmark stopped early keeps what it measured
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "search.json")
    parser.add_argument("--only", choices=sorted(STUDIES), action="append", help="run only these studies")
    parser.add_argument("--work", type=Path, default=None, help="keep the study folders here (default: temp)")
    args = parser.parse_args(argv)
    bench_search({name: STUDIES[name]() for name in (args.only or STUDIES)}, args.out, args.work)


if __name__ == "__main__":
    main()
