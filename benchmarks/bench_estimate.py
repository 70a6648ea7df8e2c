"""`make bench-estimate`: does `unfreeze study --dry-run`'s per-arm estimate hold? Estimate, run, compare.

For each study file: the dry run's per-arm estimate (`study.estimate.arm_estimates`, this machine's measured
throughput — delete `~/.cache/unfreeze/throughput.json` or set `UNFREEZE_REMEASURE=1` if it was measured under
load), then the study itself, then per arm the summed `run_seconds` of its runs (a run's wall time: loading, the
activation cache, training, the final pass) against the estimate. The study's wall time is shown next to the
summed run times (the difference: the baseline row, the report, loading data once).

A study folder that already holds finished runs of the same study is resumed, not redone, and its run times are
read back, so a study run earlier (`unfreeze study X.yaml --out DIR`) can be compared without running it again —
the estimate is always of every run. Run on a quiet machine: other jobs on the CPU make the actual times, not the
estimate, wrong.

    python benchmarks/bench_estimate.py examples/demo.yaml examples/bbc_size_freezing.yaml --work /tmp/est
    python benchmarks/bench_estimate.py examples/wnut16_freezing.yaml --set train.epochs=1
    python benchmarks/bench_estimate.py --long-docs /tmp/est/long-docs --work /tmp/est

`--long-docs DIR` builds a long-document set with a large test split from the built-in BBC News articles
(`build_long_docs`: 800 training articles; every other article three times in test — as written, and with its
sentences rotated by one and by two — about 4,000 test documents of 300–700 words, median ~335 words) and adds its
study (`DIR/long_docs.yaml`: head and top-2 at max_length 512, 2 epochs, 1 seed) to the list: the evaluation cost
of a long, large test split, the case the short example sets hide. `--long-docs-size 500x6x4000x7
--long-docs-words 300-700` (without `--work`: build only) makes #27's done-when set instead: the articles of
300-700 words, 500 of them × 6 rotations = 3,000 training documents, the others × 7 rotations, 4,000 drawn for test.

Output: `benchmarks/estimate.json` and a table in BENCHMARKS.md between `MARK_START` and `MARK_END`.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK_START = "<!-- bench-estimate:start (written by benchmarks/bench_estimate.py) -->"
MARK_END = "<!-- bench-estimate:end -->"
TOLERANCE = 0.30
#: (row, estimate parts summed, the runs' own measure in `report.plan_section.actual_parts`)
PART_ROWS = (("cache fill + per-run setup", ("cache_fill", "fixed"), "setup"),
             ("training + validation every epoch", ("train", "validation"), "train"),
             ("final pass", ("final",), "final"))


def rotations(text: str, k: int) -> list[str]:
    """`k` versions of an article: as written, then with its sentences rotated by one, two, … (every word kept: the
    same topic, another text; the first 512 tokens a model reads differ)."""
    sentences = [s for s in text.split(". ") if s]
    return [". ".join(sentences[i:] + sentences[:i]) for i in range(min(k, max(len(sentences), 1)))]


def build_long_docs(folder: Path, n_train: int = 800, variants: int = 3, seed: int = 0, train_variants: int = 1,
                    n_test: int | None = None, words: tuple[int, int] | None = None) -> Path:
    """train.csv, test.csv and long_docs.yaml in `folder` (see the module doc); returns the study file.

    `n_train` training *articles*, each `train_variants` times (rotations); every other article `variants` times in
    test, `n_test` of those drawn (seeded) when given; `words`: keep only articles of that many words (min, max)."""
    import numpy as np
    import pandas as pd
    import yaml

    from unfreeze.assets import load_builtin_frame

    frame = load_builtin_frame("bbc_news").drop_duplicates("text").sample(frac=1.0, random_state=seed)
    if words:
        count = frame["text"].str.split().str.len()
        frame = frame[(count >= words[0]) & (count <= words[1])]
    train, rest = frame.iloc[:n_train], frame.iloc[n_train:]

    def expand(part, k):
        rows = [{"text": t, "label": label} for text, label in zip(part["text"], part["label"])
                for t in rotations(text, k)]
        return pd.DataFrame(rows).drop_duplicates("text")

    train, test = expand(train, train_variants), expand(rest, variants)
    if n_test is not None and n_test < len(test):
        test = test.sample(n=n_test, random_state=seed).sort_index()
    folder.mkdir(parents=True, exist_ok=True)
    train.to_csv(folder / "train.csv", index=False)
    test.to_csv(folder / "test.csv", index=False)
    counts = np.array([len(t.split()) for t in test["text"]])
    study = {"name": "long_docs", "base": {
        "data": {"train": str((folder / "train.csv").resolve()), "test": str((folder / "test.csv").resolve()),
                 "max_length": 512},
        "model": {"name": "minilm"}, "optim": {"lr": 1.0e-4, "head_lr": 1.0e-2}, "train": {"epochs": 2}},
        "grid": {"freeze": ["head", {"top_k": 2}]}, "seeds": [0], "baseline": True}
    path = folder / "long_docs.yaml"
    path.write_text(f"# built by benchmarks/bench_estimate.py --long-docs: {len(train)} training, {len(test)} test "
                    f"documents (median {int(np.median(counts))} words)\n" + yaml.safe_dump(study, sort_keys=False),
                    encoding="utf-8")
    return path


def run_time(row) -> float:
    """A finished run's wall seconds (older run folders: training + the final pass)."""
    value = row.get("run_seconds")
    if value is None or value != value:
        return float(row["train_seconds"]) + float(row.get("final_eval_seconds") or 0.0)
    return float(value)


def compare(study_file: Path, work: Path, overrides: list[str] | None = None, say=print) -> dict:
    """{"arms": {arm: {"runs", "estimate_s", "actual_s", "error"}}, "estimate_s", "actual_s", "wall_s"}."""
    from unfreeze.config.load import load_study_config
    from unfreeze.report.plan_section import actual_parts
    from unfreeze.study.estimate import study_estimates
    from unfreeze.study.grid import expand
    from unfreeze.study.runner import run_study

    study = load_study_config(study_file, overrides or [])
    jobs = expand(study)
    estimates, parts = study_estimates(jobs)
    say(f"{study_file.name}: {len(jobs)} runs, estimated {sum(s for _, s in estimates.values()) / 60:.1f} min")
    out = work / study_file.stem
    resumed = (out / "runs").is_dir() and any((out / "runs").iterdir())
    started = time.perf_counter()
    results = run_study(study, out, progress=False, echo=lambda *_: None)
    wall = time.perf_counter() - started
    arms = {}
    for arm, (n, estimate) in estimates.items():
        rows = results[results["arm"] == arm] if len(results) else results
        actual = sum(run_time(r) for _, r in rows.iterrows())
        # an arm with failed runs is not comparable: its error is left out
        arms[arm] = {"runs": n, "runs_finished": len(rows), "estimate_s": round(estimate, 2),
                     "actual_s": round(actual, 2),
                     "error": round(estimate / actual - 1, 3) if actual and len(rows) == n else None}
    measured = actual_parts(out, results)
    by_part = {name: (sum(parts[k] for k in keys), measured[measure]) for name, keys, measure in PART_ROWS}
    entry_parts = {name: {"estimate_s": float(f"{e:.4g}"), "actual_s": None if a is None else float(f"{a:.4g}"),
                          "error": round(e / a - 1, 3) if a else None} for name, (e, a) in by_part.items()}
    complete = [a for a in arms.values() if a["error"] is not None]
    entry = {"study": str(study_file.relative_to(ROOT) if study_file.is_relative_to(ROOT) else study_file),
             "overrides": overrides or [], "arms": arms, "failed_runs": int(results.attrs.get("failed_runs", 0)),
             "estimate_s": round(sum(a["estimate_s"] for a in complete), 1),
             "actual_s": round(sum(a["actual_s"] for a in complete), 1),
             "wall_s": round(wall, 1), "resumed": resumed, "parts": entry_parts}
    entry["error"] = round(entry["estimate_s"] / entry["actual_s"] - 1, 3) if entry["actual_s"] else None
    error = f"{entry['error']:+.0%}" if entry["error"] is not None else "n/a"
    say(f"{study_file.name}: estimate {entry['estimate_s'] / 60:.1f} min, runs {entry['actual_s'] / 60:.1f} min "
        f"(error {error}), this call's wall time {wall / 60:.1f} min" + (" (resumed)" if resumed else ""))
    return entry


def render(summary: dict) -> str:
    lines = [MARK_START, "", "## Dry-run estimates vs actual run times (`make bench-estimate`)", "",
             f"{summary['date']}, {summary['machine']}. Command: `{summary['command']}`. Estimate: the dry run's per-arm "
             "figure; actual: the summed wall time of the arm's runs (`run_seconds`); error = estimate / actual − 1 "
             f"(target ±{TOLERANCE:.0%}).", "",
             "| study | arm | runs | estimate min | actual min | error |", "|---|---|---|---|---|---|"]
    for name, entry in summary["studies"].items():
        for arm, a in entry["arms"].items():
            error = f"{a['error']:+.0%}" if a["error"] is not None else "–"
            lines.append(f"| {name} | {arm} | {a['runs']} | {a['estimate_s'] / 60:.2f} | {a['actual_s'] / 60:.2f} "
                         f"| {error} |")
        for part, a in entry.get("parts", {}).items():  # the runs' time per part, summed over arms
            if a["actual_s"] is not None:
                error = f"{a['error']:+.0%}" if a["error"] is not None else "–"
                lines.append(f"| {name} | part: {part} | – | {a['estimate_s'] / 60:.2f} | {a['actual_s'] / 60:.2f} "
                             f"| {error} |")
        wall = "resumed: runs measured earlier" if entry.get("resumed") else f"study wall {entry['wall_s'] / 60:.1f} min"
        error = f"{entry['error']:+.0%}" if entry["error"] is not None else "–"
        lines.append(f"| {name} | **all runs** ({wall}) | {sum(a['runs'] for a in entry['arms'].values())} | "
                     f"{entry['estimate_s'] / 60:.2f} | {entry['actual_s'] / 60:.2f} | {error} |")
    worst = [abs(a["error"]) for e in summary["studies"].values() for a in e["arms"].values() if a["error"] is not None]
    if worst:
        inside = sum(w <= TOLERANCE for w in worst)
        lines += ["", f"{inside} of {len(worst)} arms within ±{TOLERANCE:.0%}; largest error {max(worst):.0%}."]
    return "\n".join(lines + ["", MARK_END, ""])


def main(argv: list[str] | None = None) -> dict:
    import sys

    import torch

    from gpu_check import write_section
    from unfreeze.io import read_json, write_json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", type=Path)
    parser.add_argument("--long-docs", type=Path, help="build the BBC long-document set here and add its study")
    parser.add_argument("--long-docs-size", metavar="TRAINxVARIANTSxTESTxVARIANTS", default="800x1x0x3",
                        help="training articles × rotations each, test documents (0: all) × rotations (3000 "
                        "training and 4000 test documents of 300-700 words: 500x6x4000x7 with --long-docs-words)")
    parser.add_argument("--long-docs-words", default=None, metavar="MIN-MAX",
                        help="keep only articles of MIN-MAX words, e.g. 300-700")
    parser.add_argument("--work", type=Path, help="study folders (kept; resumed if they exist); without it, "
                        "--long-docs only builds the set")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="KEY=VALUE for every study")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "estimate.json")
    parser.add_argument("--md", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    summary = read_json(args.json) if args.json.exists() else {"studies": {}}
    if args.long_docs:
        n_train, train_variants, n_test, variants = (int(x) for x in args.long_docs_size.split("x"))
        words = tuple(int(x) for x in args.long_docs_words.split("-")) if args.long_docs_words else None
        args.studies.append(build_long_docs(args.long_docs, n_train, variants, train_variants=train_variants,
                                            n_test=n_test or None, words=words))
    if args.work is None:
        if not args.long_docs:
            parser.error("--work is required to run studies")
        print(f"built {args.studies[-1]}")
        return summary
    for study_file in args.studies:
        name = study_file.stem + "".join(f" --set {o}" for o in args.overrides)
        summary["studies"][name] = compare(study_file.resolve(), args.work, args.overrides)
        summary.update(date=datetime.date.today().isoformat(),
                       machine=f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads",
                       command="python benchmarks/bench_estimate.py " + " ".join(sys.argv[1:] if argv is None else argv))
        write_json(args.json, summary)  # after every study: a long benchmark stopped early keeps what it measured
    write_section(args.md, render(summary), MARK_START, MARK_END)
    return summary


if __name__ == "__main__":
    main()
