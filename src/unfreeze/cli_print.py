"""What the CLI prints around the library's results: a run's metrics table, `inspect`'s report, a study's arms
table, each warning once. Plain text through rich (markup off: every name in it is a user string)."""
from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.table import Table

from unfreeze.tasks import get_task

console = Console(markup=False)


def print_run_summary(results: dict, out: Path) -> None:
    table = Table(title=f"run {out}")
    table.add_column("metric")
    table.add_column("val (best epoch)", justify="right")
    table.add_column("test", justify="right")
    from unfreeze.metrics.classification import scalar_metrics

    val, test = scalar_metrics(results["val"]), scalar_metrics(results["test"])
    for name in val:
        table.add_row(name, f"{val[name]:.4f}", f"{test.get(name, float('nan')):.4f}")
    console.print(table)
    share = 100 * results["trainable_params"] / results["total_params"]
    console.print(f"trainable parameters {results['trainable_params']:,} of {results['total_params']:,} "
                  f"({share:.3g}%) · best epoch {results['best_epoch']} by val {results['selection_metric']} · "
                  f"{results['train_seconds']:.1f}s · activation cache "
                  f"{'from layer ' + str(results['cache']['from_layer']) if results['cache']['used'] else 'not used'}")


def print_inspect_report(report: dict, percentile: float) -> None:
    table = Table(title=f"inspect {report['source']} ({report['task']} task)", show_header=False)
    task = get_task(report["task"])
    for key in ("rows", "dropped_bad_rows", "duplicate_texts", "near_duplicate_texts", "majority_share"):
        if key not in report:
            continue
        name = task.rows_word if key == "rows" else key
        table.add_row(name, f"{report[key]:.3f}" if isinstance(report[key], float) else str(report[key]))
    table.add_row(task.labels_word, top_counts(report["labels"]))
    if report.get("entities"):
        table.add_row("entities", f"{report['tag_scheme']}: " + top_counts(report["entities"]))
    elif "words" in report:
        table.add_row("tag scheme", "plain (no B-/I- prefixes, no O): tags read as word classes, no entity spans")
        table.add_row("words per sentence", ", ".join(f"{k} {v}" for k, v in report["words"].items()))
    else:
        table.add_row("characters", ", ".join(f"{k} {v}" for k, v in report["chars"].items()))
    if "tokens" in report:
        table.add_row("tokens", ", ".join(f"{k} {v}" for k, v in report["tokens"].items() if k != "truncated_share"))
        table.add_row("suggested max_length", f"{report['suggested_max_length']} (p{percentile:g}, "
                                              f"truncates {100 * report['tokens']['truncated_share']:.1f}%)")
        table.add_row("padding wasted at 512", f"{100 * report['padding_waste_at_512']:.0f}%")
    console.print(table)
    if "max_length_table" in report:
        lengths = Table(title="max_length: truncated share and relative cost (tokens processed per epoch, batches "
                              "of 32 in random order padded to their longest example; 1.00 = max_length 512)")
        for col in ("max_length", "truncated", "relative cost"):
            lengths.add_column(col, justify="right")
        for row in report["max_length_table"]:
            lengths.add_row(str(row["max_length"]), f"{100 * row['truncated_share']:.1f}%",
                            f"{row['relative_cost']:.2f}")
        console.print(lengths)
    if report.get("imbalance_hint"):
        console.print(f"hint: {report['imbalance_hint']}", highlight=False, markup=False)
    if report.get("unseen_labels"):
        from unfreeze.data.inspect_tokens import unseen_labels_warning

        console.print(f"warning: {unseen_labels_warning(report['unseen_labels'])}", highlight=False, markup=False)


def top_counts(counts: dict, limit: int = 30) -> str:
    """`name: n` for the `limit` most frequent (in the given order), then "… and N more" (110 POS tags in one
    table cell are unreadable)."""
    from rich.markup import escape

    items = list(counts.items())
    text = escape(", ".join(f"{k}: {v}" for k, v in items[:limit]))
    return text + (f", … and {len(items) - limit} more" if len(items) > limit else "")


def print_arm_table(study_dir: Path) -> None:
    md = study_dir / "report.md"
    if md.exists():
        text = md.read_text(encoding="utf-8")
        start = text.find("|")
        end = text.find("\n\n", start)
        console.print(text[start:end if end > 0 else None], highlight=False, markup=False, soft_wrap=True)


class OnceFilter(logging.Filter):
    """Each warning printed once per process: a study loads its data for the baseline, the planner and every run,
    and a data warning (e.g. tags of val/test unseen in train) used to print once per load, plus once more
    through `warnings.warn`. A warning captured from `warnings` is keyed by its message alone, so the same text
    sent both ways prints once."""

    def __init__(self):
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if record.name == "py.warnings":  # "path:line: UserWarning: message\n  source line\n"
            text = text.split("Warning: ", 1)[-1].split("\n", 1)[0]
        if text in self.seen:
            return False
        self.seen.add(text)
        return True
