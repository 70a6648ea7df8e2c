"""`make gpu-check`: what only a GPU can show, in one script sized for ≤ 8 minutes on one GPU.

Steps (the plan; `--dry-run` prints it and runs it on CPU with a tiny random model in seconds, to catch syntax,
path and plumbing errors on a machine without CUDA):
1. quickstart (examples/quickstart.yaml) with `freeze: all` and `freeze: {top_k: 2}` on CUDA with bf16 autocast
   (`train.mixed_precision: bf16`), activation cache off: test/val metric, train seconds, peak GPU memory;
2. the same `top_k` run with the activation cache on (filled by a forward pass on the GPU): metrics must equal the cache-off run's
   within the bf16 tolerance (`TOLERANCE`; the cached activations are rounded to bf16/fp16, the others are not);
3. the quick benchmark's rows (`benchmarks/bench.py --quick --device cuda`) into a side file, summarised here;
4. peak GPU memory of every step (`torch.cuda.max_memory_allocated`, as the runs record it).
The figures go into BENCHMARKS.md between `MARK_START` and `MARK_END` (replaced on every run, appended below the
hand-written notes marker the first time), and into benchmarks/gpu_check.json.

    python benchmarks/gpu_check.py            # on a GPU machine (make gpu-check)
    python benchmarks/gpu_check.py --dry-run  # anywhere, seconds
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUICKSTART = ROOT / "examples" / "quickstart.yaml"
BENCH = ROOT / "benchmarks" / "bench.py"
MARK_START = "<!-- gpu-check:start (written by benchmarks/gpu_check.py) -->"
MARK_END = "<!-- gpu-check:end -->"
TOLERANCE = 0.02  # |Δ metric| allowed between cache on and off under bf16 (a few examples on a 1k test set)
BENCH_TIMEOUT_S = 300  # the quick bench on one GPU: well under this; the whole check stays under 8 minutes

PLAN = [
    ("all", {"freeze": "all", "train.cache": "off"}),
    ("top_k", {"freeze": {"top_k": 2}, "train.cache": "off"}),
    ("top_k cached", {"freeze": {"top_k": 2}, "train.cache": "on"}),
]


def run_config(dry_run: bool, work: Path, overrides: dict):
    """The quickstart config on CUDA + bf16 (or, dry run, a tiny model on CPU without autocast)."""
    from unfreeze.config.load import parse_run_config, read_yaml, set_dotted

    data = read_yaml(QUICKSTART)
    if dry_run:
        sys.path.insert(0, str(ROOT / "tests"))
        from tiny import make_tiny_model, synthetic_frame

        model = work / "tiny-model"
        if not model.exists():
            make_tiny_model("bert", model)
            synthetic_frame(120, seed=0).to_csv(work / "data.csv", index=False)
        data["data"] = {"path": str(work / "data.csv"), "max_length": 32}
        data["model"] = {"name": str(model)}
        data["train"].update({"epochs": 1, "batch_size": 16, "threads": 1, "save_model": False})
        if overrides.get("freeze") != "all":  # the tiny model has 2 layers: top 1 leaves a frozen prefix to cache
            overrides = {**overrides, "freeze": {"top_k": 1}}
    for key, value in {"train.device": "cpu" if dry_run else "cuda",
                       "train.mixed_precision": "no" if dry_run else "bf16", **overrides}.items():
        set_dotted(data, key, value)
    return parse_run_config(data, f"{QUICKSTART.name} (gpu check)")


def run_steps(dry_run: bool, work: Path, say=print) -> dict:
    from unfreeze.training.run import train

    rows = {}
    for name, overrides in PLAN:
        config = run_config(dry_run, work, overrides)
        started = time.perf_counter()
        metrics = train(config, work / name.replace(" ", "_"), overwrite=True, progress=False)
        metric = metrics.get("selection_metric") or config.selection_metric
        rows[name] = {"val": metrics["val"].get(metric), "test": metrics["test"].get(metric), "metric": metric,
                      "train_seconds": metrics.get("train_seconds"), "wall_seconds": time.perf_counter() - started,
                      "peak_gpu_mb": metrics.get("peak_gpu_mb"), "peak_rss_mb": metrics.get("peak_rss_mb")}
        say(f"{name}: {metric} val {rows[name]['val']:.4f} test {rows[name]['test']:.4f} "
            f"in {rows[name]['wall_seconds']:.0f}s, peak GPU MB {rows[name]['peak_gpu_mb']}")
    on, off = rows["top_k cached"], rows["top_k"]
    gap = max(abs(on["val"] - off["val"]), abs(on["test"] - off["test"]))
    return {"runs": rows, "cache_gap": gap, "cache_equal": gap <= TOLERANCE}


def run_quick_bench(dry_run: bool, work: Path, say=print) -> dict:
    """The quick bench's rows on CUDA, in a child process (its own peak memory; a hang cannot eat the budget)."""
    out = work / "bench" / "BENCHMARKS.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    if dry_run:  # same harness, tiny model and sizes, in process (as tests/test_bench.py runs it)
        import bench
        from tiny import synthetic_frame

        sizes = {"bbc_news": {"train": 24, "val": 8, "test": 8, "max_length": 24}, "epochs": 1, "seeds": [0],
                 "limit_tokens": {"forward": 100, "train": 100}}
        summary = bench.run_bench(True, out, None, model=str(work / "tiny-model"), sizes=sizes, isolate=False,
                                  datasets={"bbc_news": synthetic_frame(40, seed=1, classes=3)}, threads=1,
                                  device="cpu", strategies=("head", "all"), command="gpu_check --dry-run")
    else:
        command = [sys.executable, str(BENCH), "--quick", "--device", "cuda", "--out", str(out)]
        say("running: " + " ".join(command))
        subprocess.run(command, check=True, timeout=BENCH_TIMEOUT_S, cwd=ROOT)
        summary = json.loads((out.parent / "benchmarks" / "latest.json").read_text())
    return {"summary": summary, "markdown": out.read_text()}


def render(result: dict, dry_run: bool) -> str:
    lines = [MARK_START, "", "### GPU check (`make gpu-check`)", ""]
    if dry_run:
        lines += ["**Dry run only** (tiny random model on CPU, no bf16): these figures check the plumbing, not a "
                  "GPU. No GPU was lent to the task that wrote this script, so the GPU figures are still to be "
                  "measured: run `make gpu-check` on a CUDA machine (≤ 8 minutes on one GPU).", ""]
    lines += [f"Machine: {result['device']}. Quickstart ({QUICKSTART.relative_to(ROOT)}), bf16 autocast:", "",
              "| run | val | test | train s | peak GPU MB |", "|---|---|---|---|---|"]
    for name, row in result["steps"]["runs"].items():
        lines.append(f"| {name} | {row['val']:.4f} | {row['test']:.4f} | {row['train_seconds'] or 0:.1f} | "
                     f"{row['peak_gpu_mb'] if row['peak_gpu_mb'] is not None else '–'} |")
    gap = result["steps"]["cache_gap"]
    lines += ["", f"Activation cache on vs off (top_k): largest |Δ {row['metric']}| {gap:.4f} — "
                  f"{'equal' if result['steps']['cache_equal'] else 'NOT equal'} within the bf16 tolerance "
                  f"{TOLERANCE}.", "", "Quick bench rows (`benchmarks/bench.py --quick --device "
                  f"{'cpu' if dry_run else 'cuda'}`):", ""]
    table = [line for line in result["bench"]["markdown"].splitlines() if line.startswith("|")]
    lines += table[:24] + ["", f"Check took {result['seconds']:.0f}s.", "", MARK_END]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str, start: str = MARK_START, end: str = MARK_END) -> None:
    """Replace the section of `path` between `start` and `end` (`section` begins with `start` and ends with `end`),
    or append it (below bench.py's notes marker, which it keeps)."""
    from unfreeze.io import write_text

    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section.rstrip("\n") + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    write_text(path, text)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny model on CPU: checks the plan in seconds")
    parser.add_argument("--out", type=Path, default=None,
                        help="default: BENCHMARKS.md (a dry run: a temp file, so CPU figures never land there)")
    parser.add_argument("--json", type=Path, default=None, help="default: <out dir>/benchmarks/gpu_check.json")
    args = parser.parse_args(argv)
    import torch

    for path in (QUICKSTART, BENCH):
        if not path.exists():
            raise SystemExit(f"gpu_check: {path} is missing; run from a checkout of the repository")
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_check: CUDA is not available here; run with --dry-run to check the plan on CPU")
    print("plan:", ", ".join(name for name, _ in PLAN), "+ quick bench rows", "(dry run on CPU)" * args.dry_run)
    started = time.perf_counter()
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="gpu-check-dry-")) / "BENCHMARKS.md" if args.dry_run else \
            ROOT / "BENCHMARKS.md"
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT / "tests"))
    with tempfile.TemporaryDirectory(prefix="unfreeze-gpu-check-") as tmp:
        work = Path(tmp)
        if not args.dry_run:
            torch.cuda.reset_peak_memory_stats()
        result = {"dry_run": args.dry_run, "steps": run_steps(args.dry_run, work), "tolerance": TOLERANCE,
                  "device": "CPU (dry run)" if args.dry_run else torch.cuda.get_device_name(0)}
        result["bench"] = run_quick_bench(args.dry_run, work)
        if not args.dry_run:
            result["peak_gpu_mb_process"] = torch.cuda.max_memory_allocated() / 2**20
    result["seconds"] = time.perf_counter() - started
    write_section(args.out, render(result, args.dry_run))
    from unfreeze.io import write_json

    json_path = args.json or args.out.parent / "benchmarks" / "gpu_check.json"
    write_json(json_path, {k: v for k, v in result.items() if k != "bench"} | {"bench": result["bench"]["summary"]})
    print(f"wrote {args.out} (section {MARK_START[:20]}…) and {json_path} in {result['seconds']:.0f}s")
    if not result["steps"]["cache_equal"]:
        raise SystemExit(f"gpu_check: cache on vs off differ by {result['steps']['cache_gap']:.4f} > {TOLERANCE}")
    return result


if __name__ == "__main__":
    main()
