"""`unfreeze bench`: the seed notebooks' method, HF Trainer and unfreeze side by side → BENCHMARKS.md and
benchmarks/latest.json.

Why it is built this way:
- every method × strategy runs in a fresh process (multiprocessing forkserver, torch pre-imported so a job does
  not pay ~5 s of imports), so peak RSS is that method's own and no in-memory cache or warm allocator leaks
  from one method into the next;
- all methods read the same materialised examples (train/val/test parquet files) and share learning rate,
  schedule, clipping, epochs and batch sizes (`bench_methods`), so the numbers differ only by how work is done;
- the limit is measured on this machine on the real model and real tokens, so "efficiency" says how much of
  what the hardware allows unfreeze achieves, independent of how slow the machine is.
Sizes live in `SIZES`; tests inject a tiny model and synthetic data and never assert wall-clock speed.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

STRATEGIES = ("head", "top_2", "top_4", "all")
EPOCHS, BATCH_SIZE, EVAL_BATCH_SIZE = 3, 16, 64

#: Examples per split, max_length, seeds of the unfreeze rows, token budgets of the limit micro-benchmarks.
#: Quick mode is sized for ~5-8 minutes on 2 quiet CPU cores (MiniLM trains at only ~1k tokens/s there).
SIZES = {
    "quick": {
        "bbc_news": {"train": 12, "val": 8, "test": 8, "max_length": 256},
        "rotten_tomatoes": {"train": 48, "val": 24, "test": 8, "max_length": 128},
        "seeds": [0], "limit_tokens": {"forward": 6000, "train": 2500},
    },
    "full": {
        "bbc_news": {"train": 1000, "val": 200, "test": 16, "max_length": 512},
        "rotten_tomatoes": {"train": 4000, "val": 800, "test": 16, "max_length": 128},
        "seeds": [0, 1], "limit_tokens": {"forward": 60000, "train": 20000},
    },
}
BBC, RT = "bbc_news", "rotten_tomatoes"
TITLES = {BBC: "BBC News", RT: "Rotten Tomatoes"}
METHOD_NAMES = {"seed": "seed method", "trainer": "HF Trainer", "unfreeze": "unfreeze",
                "unfreeze0": "unfreeze, attention_dropout 0"}


@dataclass
class DatasetPlan:
    key: str
    source: object  # built-in data-set name, a DataFrame (text, label) or an already loaded TaskData
    train: int
    val: int
    test: int
    max_length: int


@dataclass
class BenchPlan:
    quick: bool
    datasets: list[DatasetPlan]
    model: str = "minilm"
    device: str = "cpu"
    strategies: tuple = STRATEGIES
    epochs: int = EPOCHS
    batch_size: int = BATCH_SIZE
    eval_batch_size: int = EVAL_BATCH_SIZE
    seeds: list = field(default_factory=lambda: [0])
    limit_tokens: dict = field(default_factory=lambda: dict(SIZES["quick"]["limit_tokens"]))
    threads: int | None = None
    isolate: bool = True


def make_plan(quick: bool, model: str = "minilm", datasets: dict | None = None, sizes: dict | None = None,
              device: str = "auto", **overrides) -> BenchPlan:
    """`sizes` overrides `SIZES[mode]` key by key; `datasets` maps a data-set key to its source (default: the
    built-in data set of that name)."""
    base = SIZES["quick" if quick else "full"]
    sizes = {k: {**base[k], **v} if isinstance(base.get(k), dict) and isinstance(v, dict) else v
             for k, v in {**base, **(sizes or {})}.items()}
    sources = datasets or {BBC: BBC, RT: RT}
    plans = [DatasetPlan(key, src, **{"test": 16, **sizes[key]}) for key, src in sources.items()]
    return BenchPlan(quick, plans, model, resolve_device(device), seeds=list(sizes["seeds"]),
                     limit_tokens=dict(sizes["limit_tokens"]), epochs=int(sizes.get("epochs", EPOCHS)), **overrides)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from unfreeze.errors import UnfreezeError

        raise UnfreezeError("--device cuda: torch sees no CUDA device here")
    return device


# ---------------------------------------------------------------------------------------------------------
# Running


def run_bench(quick: bool, out: Path, console=None, *, model: str = "minilm", datasets: dict | None = None,
              sizes: dict | None = None, device: str = "auto", isolate: bool = True, threads: int | None = None,
              json_path: Path | None = None, command: str | None = None, strategies: tuple = STRATEGIES) -> dict:
    """Run every job, write `out` (markdown) and `json_path` (default `<out dir>/benchmarks/latest.json`)
    atomically; return the summary that went into the JSON."""
    from unfreeze.io import write_json, write_text

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    plan = make_plan(quick, model, datasets, sizes, device, isolate=isolate, threads=threads,
                     strategies=tuple(strategies))
    say = console.print if console is not None else (lambda *a, **k: None)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="unfreeze-bench-"))
    try:
        results = {d.key: run_dataset(plan, d, work, say, started) for d in plan.datasets}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(plan, results, machine_info(plan, results), time.perf_counter() - started)
    out = Path(out)
    from bench_report import render_markdown

    write_text(out, render_markdown(plan, summary, command or command_line()) + kept_notes(out))
    json_path = Path(json_path) if json_path is not None else out.parent / "benchmarks" / "latest.json"
    write_json(json_path, summary)
    say(f"wrote {out} and {json_path} in {(time.perf_counter() - started) / 60:.1f} min")
    return summary


#: Everything below this line in BENCHMARKS.md is written by hand (profiles, other measurements) and survives a
#: re-run of the benchmark, which regenerates only what is above it.
NOTES_MARKER = "<!-- hand-written notes below: kept when `make bench` regenerates the tables above -->"


def kept_notes(out: Path) -> str:
    """The hand-written tail of an existing BENCHMARKS.md (from `NOTES_MARKER` on), else just the marker."""
    text = out.read_text(encoding="utf-8") if out.is_file() else ""
    at = text.find(NOTES_MARKER)
    return "\n" + (text[at:] if at >= 0 else NOTES_MARKER + "\n")


def run_dataset(plan: BenchPlan, d: DatasetPlan, work: Path, say, started: float) -> dict:
    files, sizes = materialise(d, work / d.key)
    results = {}
    jobs = dataset_jobs(plan, d, files, work / d.key)
    for i, (key, job) in enumerate(jobs, 1):
        t = time.perf_counter()
        results[key] = run_job(job, plan.isolate)
        status = results[key].get("error") or f"{time.perf_counter() - t:.1f}s"
        say(f"[{d.key} {i}/{len(jobs)}] {key}: {status} · elapsed {(time.perf_counter() - started) / 60:.1f} min",
            highlight=False, markup=False)
    return {"sizes": sizes, "results": results}


def dataset_jobs(plan: BenchPlan, d: DatasetPlan, files: dict, folder: Path) -> list[tuple[str, dict]]:
    """(key, job) in run order. Keys: limit, seed/<s>, trainer/<s>, unfreeze[0]/<s>/<seed>, study[0]."""
    jobs = [("limit", make_job(plan, d, files, folder, "limit"))]
    for s in plan.strategies:
        jobs += [(f"seed/{s}", make_job(plan, d, files, folder, "seed", strategy=s)),
                 (f"trainer/{s}", make_job(plan, d, files, folder, "trainer", strategy=s))]
        for seed in plan.seeds:
            jobs += [(f"unfreeze/{s}/{seed}", make_job(plan, d, files, folder, "unfreeze", strategy=s, seed=seed)),
                     (f"unfreeze0/{s}/{seed}", make_job(plan, d, files, folder, "unfreeze", strategy=s, seed=seed,
                                                        attention_dropout=0.0))]
    jobs += [("study", make_job(plan, d, files, folder, "study")),
             ("study0", make_job(plan, d, files, folder, "study", attention_dropout=0.0))]
    return jobs


def make_job(plan: BenchPlan, d: DatasetPlan, files: dict, folder: Path, kind: str, strategy: str | None = None,
             seed: int = 0, attention_dropout: float | None = None) -> dict:
    """Plain JSON: what a fresh process needs to run one method (see `bench_methods.run_job`)."""
    name = "-".join(str(x) for x in (kind, strategy, seed, attention_dropout) if x is not None)
    return {"kind": kind, "strategy": strategy, "seed": seed, "attention_dropout": attention_dropout,
            "model": plan.model, "device": plan.device, "threads": plan.threads, "epochs": plan.epochs,
            "batch_size": plan.batch_size, "eval_batch_size": plan.eval_batch_size,
            "strategies": list(plan.strategies), "limit_tokens": plan.limit_tokens,
            "dataset": {"key": d.key, "files": files, "max_length": d.max_length}, "work": str(folder / name)}


def run_job(job: dict, isolate: bool = True) -> dict:
    """Run a job in a fresh process (forkserver child) or, for tests, in this one (then RSS is shared)."""
    import bench_methods

    if not isolate:
        result = bench_methods.run_job(job)
        shutil.rmtree(job["work"], ignore_errors=True)
        return {**result, "isolated": False}
    from unfreeze.io import read_json

    result_path = Path(job["work"] + ".result.json")
    process = _context().Process(target=bench_methods.child_main, args=(job, str(result_path)))
    process.start()
    process.join()
    shutil.rmtree(job["work"], ignore_errors=True)
    if result_path.is_file():
        return {**read_json(result_path), "isolated": True}
    return {"error": f"the job's process exited with code {process.exitcode} and wrote no result (killed for "
                     "memory, or it failed to start: see stderr)"}


_PRELOAD = ["torch", "numpy", "pandas", "sklearn.metrics", "transformers", "transformers.trainer", "accelerate",
            "datasets", "bench_methods", "unfreeze.training.run", "unfreeze.study.runner"]


def _context():
    """forkserver: each job forks from a server that imported torch/transformers but never ran a model."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return mp.get_context("spawn")


# ---------------------------------------------------------------------------------------------------------
# Data: the same examples for every method


def materialise(d: DatasetPlan, folder: Path) -> tuple[dict, dict]:
    """Stratified subsets (seeded) of train/val/test written as parquet: ({split: path}, {split: size})."""
    import pandas as pd

    from unfreeze.data.sequence import stratified_take

    data = source_data(d.source, folder)
    folder.mkdir(parents=True, exist_ok=True)
    files, sizes = {}, {}
    for split, wanted in (("train", d.train), ("val", d.val), ("test", d.test)):
        part = getattr(data, split)
        part = part.subset(stratified_take(part.labels, min(wanted, len(part)), 0))
        frame = pd.DataFrame({"text": part.texts, "label": [data.label_names[i] for i in part.labels]})
        files[split] = str(folder / f"{split}.parquet")
        frame.to_parquet(files[split], index=False)
        sizes[split] = len(frame)
    return files, {**sizes, "max_length": d.max_length, "classes": len(data.label_names)}


def source_data(source, folder: Path):
    from unfreeze.config.schema import DataConfig
    from unfreeze.data.sequence import load_sequence_data

    if isinstance(source, str):
        return load_sequence_data(DataConfig(dataset=source))
    if hasattr(source, "train"):
        return source
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "source.parquet"
    source.to_parquet(path, index=False)
    return load_sequence_data(DataConfig(path=str(path)))


# ---------------------------------------------------------------------------------------------------------
# Summary: ratios against the seed method, limit and efficiency, targets


def summarise(plan: BenchPlan, results: dict, machine: dict, seconds: float) -> dict:
    """What `benchmarks/latest.json` holds; `strategies` and `study_speedup` are BBC News (the issue's targets)."""
    datasets = {key: dataset_summary(plan, r) for key, r in results.items()}
    main = datasets.get(BBC) or next(iter(datasets.values()))
    return {
        "strategies": {s: headline(rows) for s, rows in main["strategies"].items()},
        "study_speedup": main["study"]["study"].get("speedup"),
        "study_speedup_attention_dropout_0": main["study"]["study0"].get("speedup"),
        "quick": plan.quick, "date": today(), "machine": machine, "bench_minutes": round(seconds / 60, 2),
        "settings": {"model": plan.model, "epochs": plan.epochs, "batch_size": plan.batch_size,
                     "eval_batch_size": plan.eval_batch_size, "seeds": plan.seeds, "isolated": plan.isolate},
        "targets": evaluate_targets(datasets),
        "datasets": datasets,
    }


def dataset_summary(plan: BenchPlan, r: dict) -> dict:
    res, limit = r["results"], r["results"]["limit"]
    rows = {s: strategy_rows(plan, res, limit.get("strategies", {}).get(s, {}), s) for s in plan.strategies}
    sums = {m: _sum(rows[s][m].get("total") for s in plan.strategies) for m in ("seed", "trainer")}
    study = {}
    for key in ("study", "study0"):
        secs = None if "error" in res[key] else res[key]["total_seconds"]
        study[key] = {"seconds": secs, "speedup": ratio(sums["seed"], secs), "vs_trainer": ratio(sums["trainer"], secs),
                      "val_f1": res[key].get("val_f1"), "peak_rss_mb": res[key].get("peak_rss_mb"),
                      "error": res[key].get("error")}
    tokens = {k: limit.get(f"{k}_tokens") for k in ("train", "val")}
    padded = r["sizes"]["train"] * r["sizes"]["max_length"]
    sizes = {**r["sizes"], "train_tokens": tokens["train"], "val_tokens": tokens["val"],
             "seed_padding_share": None if not tokens["train"] else 1 - tokens["train"] / padded}
    return {"sizes": sizes, "strategies": rows, "study": {**study, "seed_sum_seconds": sums["seed"],
            "trainer_sum_seconds": sums["trainer"]}, "limit": limit, "errors": errors_of(res)}


def strategy_rows(plan: BenchPlan, res: dict, limit: dict, s: str) -> dict:
    rows = {"seed": stats([res[f"seed/{s}"]]), "trainer": stats([res[f"trainer/{s}"]]),
            "unfreeze": stats([res[f"unfreeze/{s}/{k}"] for k in plan.seeds]),
            "unfreeze0": stats([res[f"unfreeze0/{s}/{k}"] for k in plan.seeds])}
    seed, trainer = rows["seed"], rows["trainer"]
    for name, row in rows.items():
        row["later_epoch_speedup"] = ratio(seed.get("later"), row.get("later"))
        row["total_speedup"] = ratio(seed.get("total"), row.get("total"))
        row["vs_trainer_total_speedup"] = ratio(trainer.get("total"), row.get("total"))
        row["metric_delta"] = _diff(row.get("val_f1"), seed.get("val_f1"))
    for name, key in (("unfreeze", "limit_seconds"), ("unfreeze0", "limit_seconds_attention_dropout_0")):
        rows[name]["limit_seconds"] = limit.get(key)
        rows[name]["efficiency"] = ratio(limit.get(key), rows[name].get("total"))
    rows["unfreeze0"]["metric_delta_vs_default"] = _diff(rows["unfreeze0"].get("val_f1"), rows["unfreeze"].get("val_f1"))
    return rows


def stats(results: list[dict]) -> dict:
    """Mean over the runs (seeds) of one method: epoch 1, later epochs, total, F1; max peak RSS."""
    ok = [r for r in results if "error" not in r]
    if not ok:
        return {"error": results[0].get("error", "missing")}
    out = {"epoch1": mean(r["epoch_seconds"][0] for r in ok),
           "later": mean(mean(r["epoch_seconds"][1:]) for r in ok),
           "total": mean(r["total_seconds"] for r in ok), "val_f1": mean(r["val_f1"] for r in ok),
           "val_f1_by_seed": [r["val_f1"] for r in ok], "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
           "runs": len(ok), "precision": ok[0].get("precision")}
    if any("peak_gpu_mb" in r for r in ok):
        out["peak_gpu_mb"] = max(r.get("peak_gpu_mb", 0) for r in ok)
    return out


def headline(rows: dict) -> dict:
    keys = ("later_epoch_speedup", "total_speedup", "vs_trainer_total_speedup", "metric_delta", "efficiency")
    return {**{k: rows["unfreeze"].get(k) for k in keys},
            "attention_dropout_0": {k: rows["unfreeze0"].get(k) for k in (*keys, "metric_delta_vs_default")}}


def errors_of(res: dict) -> dict:
    return {key: r["error"] for key, r in res.items() if "error" in r}


def ratio(a, b):
    return None if a is None or not b else a / b


def _diff(a, b):
    return None if a is None or b is None else a - b


def _sum(values):
    values = list(values)
    return None if any(v is None for v in values) else sum(values)


#: (what, data set, path into that data set's summary, minimum) — the issue's targets.
TARGETS = [
    ("head, per later epoch", BBC, ("strategies", "head", "unfreeze", "later_epoch_speedup"), 50),
    ("head, total", BBC, ("strategies", "head", "unfreeze", "total_speedup"), 8),
    *[(f"top-{k}, per later epoch{tag}", BBC, ("strategies", f"top_{k}", m, "later_epoch_speedup"), need)
      for k in (2, 4) for m, tag, need in (("unfreeze", "", 1.6), ("unfreeze0", ", attention_dropout 0", 2.5))],
    ("all, per later epoch", BBC, ("strategies", "all", "unfreeze", "later_epoch_speedup"), 1.15),
    ("all, per later epoch, attention_dropout 0", BBC, ("strategies", "all", "unfreeze0", "later_epoch_speedup"), 1.8),
    ("4-strategy study, end to end", BBC, ("study", "study", "speedup"), 2),
    ("4-strategy study, end to end, attention_dropout 0", BBC, ("study", "study0", "speedup"), 3),
    *[(f"efficiency {s}", BBC, ("strategies", s, "unfreeze", "efficiency"), 0.8) for s in STRATEGIES],
    ("Rotten Tomatoes all, per later epoch", RT, ("strategies", "all", "unfreeze", "later_epoch_speedup"), 2),
]


def evaluate_targets(datasets: dict) -> list[dict]:
    out = []
    for what, key, path, need in TARGETS:
        value = datasets.get(key)
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        out.append({"target": what, "dataset": key, "required": need, "measured": value,
                    "met": None if value is None else value >= need, "status": target_status(value, need)})
    return out


def target_status(value, need: float) -> str:
    if value is None:
        return "not measured"
    if value >= need:
        return f"met (+{100 * (value / need - 1):.0f}% margin)"
    return f"NOT met: {100 * value / need:.0f}% of target, needs {need / value:.2f}× more"


# ---------------------------------------------------------------------------------------------------------
# Machine and command


def machine_info(plan: BenchPlan, results: dict) -> dict:
    import torch

    threads = next((r.get("threads") for d in results.values() for r in d["results"].values() if r.get("threads")),
                   torch.get_num_threads())
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": threads, "ram_gb": ram_gb(),
            "device": plan.device, "python": platform.python_version(), "torch": torch.__version__}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:  # pragma: no cover
        pass
    if plan.device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover
        return None


def command_line() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "unfreeze"
    if name in ("bench.py", "__main__.py", "-m", "-c"):
        name = "python benchmarks/bench.py"
    return " ".join([name, *(shlex.quote(a) for a in sys.argv[1:])])


def today() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


# ---------------------------------------------------------------------------------------------------------
# python benchmarks/bench.py


def main(argv: list[str] | None = None) -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (~5-8 min on 2 CPU cores)")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu or cuda")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in every job")
    parser.add_argument("--set", dest="sizes", action="append", default=[], metavar="KEY=VALUE",
                        help="override SIZES, e.g. --set bbc_news.train=200 --set seeds=[0,1] (repeatable)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # run one job file in this process
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        from bench_methods import child_main

        child_main(json.loads(args.one.read_text(encoding="utf-8")), str(args.result))
        return
    from rich.console import Console

    run_bench(args.quick, args.out, Console(), model=args.model, device=args.device, threads=args.threads,
              sizes=parse_sizes(args.sizes))


def parse_sizes(items: list[str]) -> dict:
    """`bbc_news.train=200`, `seeds=[0,1]`, `epochs=2` → a nested dict for `make_plan` (values read as YAML)."""
    import yaml

    from unfreeze.config.load import set_dotted

    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE, e.g. bbc_news.train=200")
        set_dotted(out, key.strip(), yaml.safe_load(raw))
    return out


if __name__ == "__main__":
    main()
