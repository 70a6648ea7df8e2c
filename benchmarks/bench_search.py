"""`make bench-search`: how much compute a fast first decision saves on real studies, and whether it decides the same.

Each study runs twice into fresh folders, timed end to end: in full (every arm × every seed, the grid as written)
and fast. The fast pass (`--method pruned`, the default) is the same grid as a one-seed Optuna grid search
(`pruned_variant`: `order: costly_first`, a median pruner fed the validation metric after every epoch, judging
from the first finished trial on); `--method racing` is seed racing (`racing: {min_seeds: 2}`) instead, which on
3-seed studies cannot save more than a third of a stopped arm's runs. `same_decision`: the fast pass's pick (best
mean validation score among its complete runs) is the full grid's pick, or is not significantly worse than it on
test in the full grid's seed-aware comparison (all its seeds, p ≥ 0.05). Output, benchmarks/search.json:

    {"studies": {"<name>": {"full_seconds": s, "fast_seconds": s, "method": "pruned", "same_decision": bool,
                            "full_compute_seconds": s, "fast_compute_seconds": s, "fast_share": r,
                            "fast_compute_share": r, "runs_full": n, "runs_fast": n, "best_full": arm,
                            "best_fast": arm, "pick_vs_best_test": {"delta", "p_value"}, "val_means_full": {...},
                            "search": {...}, "trials": {arm: "complete" | "pruned at epoch k"}}}}

`*_seconds`: wall time of the whole pass (load, cache, runs, report); `*_compute_seconds`: the runs' summed
`run_seconds` (a pruned trial until it stopped). Studies (`STUDIES`): the demo (examples/demo.yaml, 4 strategies ×
3 seeds) and a strategy × learning rate study on BBC News (4 × 3 arms × 3 seeds). Long on CPU (34 minutes for
both on 2 cores); the test suite runs it only on a tiny study.

    python benchmarks/bench_search.py                       # both studies → benchmarks/search.json
    python benchmarks/bench_search.py --only demo           # one of them
"""
from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def demo_study() -> dict:
    from unfreeze.config.load import read_yaml

    return {**read_yaml(ROOT / "examples" / "demo.yaml"), "baseline": False}


def bbc_strategy_lr_study() -> dict:
    """4 strategies × 3 learning rates × 3 seeds on BBC News; `optim.lr` moves the head too (no `head_lr`), so
    every arm is its own configuration. Sized for 2 CPU cores: 300 training articles cut at 128 tokens."""
    return {"name": "bbc-strategy-lr", "baseline": False,
            "base": {"data": {"dataset": "bbc_news", "max_length": 128, "train_size": 300},
                     "model": {"name": "minilm", "pooling": "mean"}, "optim": {"name": "adamw"},
                     "train": {"epochs": 3, "batch_size": 16, "metric": "f1_macro", "save_model": False}},
            "grid": {"freeze": ["head", {"top_k": 2}, {"top_k": 4}, "all"], "optim.lr": [1.0e-5, 1.0e-4, 1.0e-3]},
            "seeds": [0, 1, 2]}


STUDIES = {"demo": demo_study, "bbc_strategy_lr": bbc_strategy_lr_study}
PRUNED = {"sampler": "grid", "order": "costly_first", "pruner": "median", "startup_trials": 1, "seed": 0}


def pruned_variant(data: dict) -> dict:
    """The grid study as a one-seed grid search (`PRUNED`): every point once on the first seed, costliest first,
    a median pruner fed the validation metric after every epoch, judging from the first finished trial on."""
    grid = data["grid"]
    search = {**PRUNED, "space": grid, "trials": math.prod(len(v) for v in grid.values())}
    fast = {k: v for k, v in data.items() if k not in ("grid", "racing")}
    return {**fast, "seeds": data["seeds"][:1], "search": search}


def timed_study(config, out: Path) -> tuple[float, object]:
    from unfreeze.study.runner import run_study
    from unfreeze.training import cache

    cache.reset_memory()  # no activations carried over from the other pass
    started = time.perf_counter()
    results = run_study(config, out, progress=False, echo=lambda *_: None)
    return time.perf_counter() - started, results


def best_by_val(results, metric: str) -> str:
    from unfreeze.metrics.stats import best_arm

    done = results[results["status"] == "complete"] if "status" in results else results
    return best_arm(done.groupby("arm")[f"val_{metric}"].mean().to_dict())


def pick_vs_best(full, pick: str, best: str, task: str, metric: str, split: str) -> dict:
    """The full grid's seed-aware comparison (all its seeds, `split` predictions) of its best arm with `pick`:
    delta = best − pick (> 0: the pick is worse), its 95 % interval, and the two-sided p (None: undecidable, e.g.
    fewer than 3 finished runs in an arm)."""
    import numpy as np

    from unfreeze.metrics.compare import seed_aware_compare
    from unfreeze.report.significance import count_metric_of, read_test_predictions

    if pick == best:
        return {"delta": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": None, "seeds": None}
    preds, y, scorer = {}, None, None
    for arm in (best, pick):
        preds[arm] = {}
        for row in full[full["arm"] == arm].itertuples():
            labels, preds[arm][(row.seed, row.fold)] = read_test_predictions(Path(row.path), task, split=split)
            if y is not None and not np.array_equal(np.asarray(y, object), np.asarray(labels, object)):
                raise ValueError(f"{best} and {pick} were not scored on the same {split} examples")
            y, scorer = labels, scorer or count_metric_of(Path(row.path), task, metric, split=split)
    row = seed_aware_compare(y, preds[best], preds[pick], scorer)
    return {"delta": round(row["delta"], 4), "ci_low": row["ci_low"], "ci_high": row["ci_high"],
            "p_value": row["p_value"], "seeds": [row["seeds_best"], row["seeds_other"]]}


def decision(full, pick: str, best: str, task: str, metric: str) -> tuple[bool, dict]:
    """(same decision, the test comparison): the pick is the full grid's best, or the full grid's seed-aware test
    cannot call it worse (p ≥ 0.05, or it scores higher). Undecidable counts as not the same."""
    on_test = pick_vs_best(full, pick, best, task, metric, "test")
    if pick == best:
        return True, on_test
    if on_test["p_value"] is None:
        return False, {**on_test, "note": "undecidable: an arm has fewer than 3 finished runs"}
    return bool(on_test["delta"] <= 0 or on_test["p_value"] >= 0.05), on_test


def compute_seconds(results) -> float:
    """Summed `run_seconds` of the study's runs (pruned trials: until the pruner stopped them)."""
    return round(float(results["run_seconds"].fillna(0).sum()), 2)


def trial_order(study_dir: Path, name: str) -> dict[str, str]:
    """{arm: status} of a search's trials in the order they ran (Optuna's trial numbers)."""
    import optuna
    import pandas as pd

    results = pd.read_csv(study_dir / "results.csv")
    status = {row.run_id: (row.arm, row.status) for row in results.itertuples()}
    opt = optuna.load_study(study_name=name, storage=f"sqlite:///{(study_dir / 'optuna.db').resolve()}")
    out = {}
    for t in sorted(opt.trials, key=lambda t: t.number):
        arm, state = status.get(t.user_attrs.get("run_id"), (None, t.state.name.lower()))
        if arm is not None:
            out[arm] = state
    return out


def summarise(name: str, data: dict, work: Path, method: str, full_seconds: float, fast_seconds: float) -> dict:
    """The search.json entry from the two passes' folders (`work/<name>/full`, `work/<name>/<method>`)."""
    import pandas as pd

    from unfreeze.config.load import parse_study_config
    from unfreeze.io import read_json
    from unfreeze.study.racing import stop_note

    full_config = parse_study_config({k: v for k, v in data.items() if k != "racing"}, name)
    full = pd.read_csv(work / name / "full" / "results.csv")
    fast = pd.read_csv(work / name / method / "results.csv")
    metric = full_config.base.get("train", {}).get("metric", "f1_macro")
    task = full_config.base.get("task", "text")
    best, pick = best_by_val(full, metric), best_by_val(fast, metric)
    same, on_test = decision(full, pick, best, task, metric)
    first = full[full["seed"] == full_config.seeds[0]]  # control: the full grid's own first seed, no pruning
    control_pick = best_by_val(first, metric)
    control_same, control_test = decision(full, control_pick, best, task, metric)
    entry = {"full_seconds": round(full_seconds, 2), "fast_seconds": round(fast_seconds, 2), "method": method,
             "same_decision": same, "same_arm": pick == best, "full_compute_seconds": compute_seconds(full),
             "fast_compute_seconds": compute_seconds(fast), "runs_full": len(full), "runs_fast": len(fast),
             "best_full": best, "best_fast": pick, "pick_vs_best_test": on_test,
             "one_seed_control": {"pick": control_pick, "compute_seconds": compute_seconds(first),
                                  "same_decision": control_same, "pick_vs_best_test": control_test},
             "val_means_full": {arm: round(v, 4) for arm, v in full.groupby("arm")[f"val_{metric}"].mean().items()}}
    entry["fast_share"] = round(entry["fast_seconds"] / entry["full_seconds"], 3)
    entry["fast_compute_share"] = round(entry["fast_compute_seconds"] / max(entry["full_compute_seconds"], 1e-9), 3)
    if method == "pruned":
        fast_config = parse_study_config(pruned_variant(data), name)
        entry["search"] = fast_config.search.model_dump(mode="json", exclude={"space", "storage"})
        entry["trials"] = trial_order(work / name / method, fast_config.name)
    else:
        racing = read_json(work / name / method / "racing.json")
        entry["racing"] = {k: v for k, v in racing.items() if k != "stopped"}
        entry["stopped"] = {arm: stop_note(e) for arm, e in racing["stopped"].items()}
    return entry


def compare_study(name: str, data: dict, work: Path, say=print, method: str = "pruned") -> dict:
    """Run `data` (a grid study) in full, then fast (`pruned`: `pruned_variant`; `racing`: the study's own
    `racing:` entry), each into a fresh folder; the search.json entry (`summarise`)."""
    from unfreeze.config.load import parse_study_config

    full_config = parse_study_config({k: v for k, v in data.items() if k != "racing"}, name)
    fast_config = parse_study_config(pruned_variant(data) if method == "pruned" else data, name)
    say(f"{name}: full study …")
    full_seconds, full = timed_study(full_config, work / name / "full")
    say(f"{name}: full {full_seconds:.0f}s, {len(full)} runs; {method} …")
    fast_seconds, _ = timed_study(fast_config, work / name / method)
    entry = summarise(name, data, work, method, full_seconds, fast_seconds)
    say(f"{name}: {method} {fast_seconds:.0f}s ({entry['fast_share']:.0%} of the full wall time), "
        f"{entry['runs_fast']} runs, picks {entry['best_fast']} (full: {entry['best_full']}), same decision: "
        f"{entry['same_decision']}")
    return entry


def bench_search(studies: dict[str, dict], out: Path, work: Path | None = None, say=print,
                 method: str = "pruned") -> dict:
    """Every study in full and fast (`method`) → `out` (JSON, merged with the studies already there)."""
    from unfreeze.io import read_json, write_json

    own = work is None
    work = Path(tempfile.mkdtemp(prefix="unfreeze-bench-search-")) if own else Path(work)
    try:
        summary = read_json(out) if Path(out).exists() else {"studies": {}}
        for name, data in studies.items():
            summary["studies"][name] = compare_study(name, data, work, say, method)
            write_json(out, summary)  # after every study: a long benchmark stopped early keeps what it measured
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return summary


MARK_START, MARK_END = "<!-- bench-search:start -->", "<!-- bench-search:end -->"


def decided(same: bool, same_arm: bool) -> str:
    """The issue's "same decision" as the table says it: the same arm, or another one the full grid cannot call
    worse (which, with 3 seeds, is a weak test: the interval beside it says how weak)."""
    return "yes: same arm" if same_arm else "yes: another arm, not shown worse" if same else "no"


def versus(pick: str, best: str, vs: dict) -> str:
    if pick == best:
        return "same arm"
    if vs.get("p_value") is None:
        return vs.get("note", "–")
    return (f"{pick} lower by {vs['delta']:.4f} (95% CI {vs['ci_low']:.4f} to {vs['ci_high']:.4f}), "
            f"p = {vs['p_value']:.2g}")


def render(summary: dict) -> str:
    """The BENCHMARKS.md section: one row per study, what each pass cost and picked."""
    lines = [MARK_START, "", f"- date: {summary.get('date', '?')}; machine: {summary.get('machine', '?')}",
             f"- command: `{summary.get('command', 'python benchmarks/bench_search.py')}` (raw figures: "
             "benchmarks/search.json)", "",
             "| study | method | full: runs, wall s, run s | fast: runs, wall s, run s | fast / full (wall, run s) "
             "| pick full → fast | fast pick vs full pick on test (full grid, all seeds) | same decision "
             "| control: the full grid's seed 0 alone (run s, pick, same decision) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, e in summary["studies"].items():
        test = versus(e["best_fast"], e["best_full"], e.get("pick_vs_best_test") or {})
        c = e.get("one_seed_control")
        control = (f"{c['compute_seconds']:.0f} ({c['compute_seconds'] / e['full_compute_seconds']:.0%}), "
                   f"{c['pick']}, {decided(c['same_decision'], c['pick'] == e['best_full'])}" if c else "–")
        lines.append(f"| {name} | {e['method']} | {e['runs_full']}, {e['full_seconds']:.0f}, "
                     f"{e.get('full_compute_seconds', float('nan')):.0f} | {e['runs_fast']}, {e['fast_seconds']:.0f}, "
                     f"{e.get('fast_compute_seconds', float('nan')):.0f} | {e['fast_seconds'] / e['full_seconds']:.0%}, "
                     f"{e.get('fast_compute_share', float('nan')):.0%} | {e['best_full']} → {e['best_fast']} | {test} "
                     f"| {decided(e['same_decision'], e['best_fast'] == e['best_full'])} | {control} |")
    for name, e in summary["studies"].items():
        if e.get("trials"):
            shown = "; ".join(f"{arm}: {status}" for arm, status in e["trials"].items())
            lines += ["", f"{name}, fast trials in the order run: {shown}."]
        c = e.get("one_seed_control")
        if c and c["pick"] != e["best_full"]:
            lines += ["", f"{name}, control pick {c['pick']} vs {e['best_full']} on test: "
                          f"{versus(c['pick'], e['best_full'], c['pick_vs_best_test'])}."]
    return "\n".join(lines + ["", MARK_END, ""])


def main(argv: list[str] | None = None) -> None:
    import datetime
    import platform
    import sys

    import torch

    from gpu_check import write_section
    from unfreeze.io import read_json, write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "search.json")
    parser.add_argument("--md", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--only", choices=sorted(STUDIES), action="append", help="run only these studies")
    parser.add_argument("--work", type=Path, default=None, help="keep the study folders here (default: temp)")
    parser.add_argument("--method", choices=["pruned", "racing"], default="pruned",
                        help="the fast pass: a pruned one-seed grid search, or seed racing (`racing: {min_seeds: 2}`)")
    parser.add_argument("--render-only", action="store_true", help="rewrite the BENCHMARKS.md section from --out")
    parser.add_argument("--summarise-only", action="store_true",
                        help="recompute the --out entries from the study folders kept in --work (wall times kept)")
    args = parser.parse_args(argv)
    if args.summarise_only:
        summary = read_json(args.out)
        for name, entry in summary["studies"].items():
            data = STUDIES[name]()
            summary["studies"][name] = summarise(name, data, args.work, entry["method"], entry["full_seconds"],
                                                 entry["fast_seconds"])
        write_json(args.out, summary)
    elif not args.render_only:
        studies = {name: STUDIES[name]() for name in (args.only or STUDIES)}
        if args.method == "racing":
            studies = {name: {**data, "racing": {"min_seeds": 2}} for name, data in studies.items()}
        bench_search(studies, args.out, args.work, method=args.method)
        summary = read_json(args.out)
        summary.update(date=datetime.date.today().isoformat(),
                       machine=f"{platform.machine()}, {torch.get_num_threads()} torch threads, "
                               f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}",
                       command="python benchmarks/bench_search.py " + " ".join(sys.argv[1:] if argv is None else argv))
        write_json(args.out, summary)
    write_section(args.md, render(read_json(args.out)), MARK_START, MARK_END)


if __name__ == "__main__":
    main()
