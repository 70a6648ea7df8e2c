"""BENCHMARKS.md from a bench summary: methods, sizes, per-data-set tables with ratios and the limit, targets.

Kept apart from `bench.py` (which plans and runs the jobs and builds the summary) so the page's wording can change
without touching how anything is measured.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from bench import METHOD_NAMES, TITLES

if TYPE_CHECKING:
    from bench import BenchPlan
# ---------------------------------------------------------------------------------------------------------
# BENCHMARKS.md


def render_markdown(plan: BenchPlan, summary: dict, command: str) -> str:
    m = summary["machine"]
    device = m["device"] + (f" ({m['gpu']})" if m.get("gpu") else "")
    lines = [
        "# Benchmarks: seed method vs HF Trainer vs unfreeze", "",
        f"- date: {summary['date']}", f"- command: `{command}`",
        f"- mode: {'quick (small sizes: indicative only, fixed costs weigh more)' if plan.quick else 'full'}; "
        f"benchmark wall time {summary['bench_minutes']:.1f} min",
        f"- machine: {m['cpu']}, {m['cores']} cores, torch threads {m['torch_threads']}, RAM {m['ram_gb']} GiB; "
        f"device {device}", f"- software: python {m['python']}, torch {m['torch']}, transformers {m.get('transformers')}",
        f"- model `{plan.model}`; {plan.epochs} epochs; batch {plan.batch_size}; eval batch {plan.eval_batch_size}; "
        f"unfreeze rows averaged over seeds {plan.seeds}; every job in a fresh process: "
        f"{'yes' if plan.isolate else 'NO (peak RSS is shared)'}", "",
        METHODS_TEXT, "", "## Data sizes", "",
        "| data set | train | val | test | max_length | real tokens train / val | seed method's padding share |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key, d in summary["datasets"].items():
        z = d["sizes"]
        lines.append(f"| {TITLES.get(key, key)} | {z['train']} | {z['val']} | {z['test']} | {z['max_length']} | "
                     f"{z['train_tokens']} / {z['val_tokens']} | {_pct(z['seed_padding_share'])} |")
    for key, d in summary["datasets"].items():
        lines += dataset_section(key, d)
    lines += targets_section(summary["targets"])
    return "\n".join(lines) + "\n"


METHODS_TEXT = """## Methods

- **seed method**: plain PyTorch loop — AutoModel + dropout + linear on mean-pooled states, every text padded to
  max_length (with attention masks), frozen parameters `requires_grad=False` but the whole model in train mode
  (dropout on in frozen layers), frozen layers recomputed every epoch, AdamW, validation each epoch (padded).
- **HF Trainer**: the same model with `requires_grad=False` on frozen parameters, DataCollatorWithPadding, length
  grouping, eval each epoch, no saving, no reporting (bf16 on a GPU).
- **unfreeze**: `unfreeze.training.train` (activation cache `auto`, length grouping, no model saved); the study row is
  one `run_study` over the 4 strategies sharing one cache, end to end.
- All share: learning rate per strategy (head 1e-3, top-k 1e-4, all 5e-5), linear schedule with 6% warm-up, weight
  decay 0.01, gradient clipping 1.0. Times start after the data is in memory and include loading the model and
  tokenising: *epoch 1* = set-up + epoch 1 + its validation (unfreeze: also building the cache), *later epoch* =
  mean of epochs 2…, *total* = start → end of the last validation. Ratios are seed ÷ method (higher is faster).
- **limit**: measured here on the real model over real (unpadded) tokens: one eval forward of the frozen part over
  train+val + epochs × (forward+backward of the trainable layers over train + their forward over val);
  efficiency = limit ÷ unfreeze total. Val F1 = macro F1, best epoch."""


def dataset_section(key: str, d: dict) -> list[str]:
    z = d["sizes"]
    lines = ["", f"## {TITLES.get(key, key)} (train {z['train']}, val {z['val']}, max_length {z['max_length']})", "",
             "| strategy | method | epoch 1 s | later epoch s | total s | peak RSS MB | val F1 | seed÷ later | "
             "seed÷ total | trainer÷ total | limit s | efficiency |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s, rows in d["strategies"].items():
        for name, row in rows.items():
            if "error" in row:
                lines.append(f"| {s} | {METHOD_NAMES[name]} | failed: {row['error'][:80]} |||||||||| |")
                continue
            lines.append(
                f"| {s} | {METHOD_NAMES[name]} | {_s(row['epoch1'])} | {_s(row['later'])} | {_s(row['total'])} | "
                f"{_n(row['peak_rss_mb'])} | {_f1(row)} | {_x(row['later_epoch_speedup'])} | {_x(row['total_speedup'])} | "
                f"{_x(row['vs_trainer_total_speedup'])} | {_s(row.get('limit_seconds'))} | {_n(row.get('efficiency'), 2)} |")
    st = d["study"]
    lines += ["", f"Whole 4-strategy study: seed method's 4 runs {_s(st['seed_sum_seconds'])} s, HF Trainer's "
              f"{_s(st['trainer_sum_seconds'])} s.", "",
              "| unfreeze study | seconds end to end | peak RSS MB | seed sum ÷ study | trainer sum ÷ study |",
              "|---|---:|---:|---:|---:|"]
    for name, label in (("study", "default"), ("study0", "attention_dropout 0")):
        row = st[name]
        lines.append(f"| {label} | {_s(row['seconds']) if not row['error'] else 'failed: ' + row['error'][:80]} | "
                     f"{_n(row['peak_rss_mb'])} | {_x(row['speedup'])} | {_x(row['vs_trainer'])} |")
    lines += attention_dropout_lines(d) + limit_lines(d)
    if d["errors"]:
        lines += ["", "Failed jobs: " + "; ".join(f"`{k}`: {v[:120]}" for k, v in d["errors"].items())]
    return lines


def attention_dropout_lines(d: dict) -> list[str]:
    lines = ["", "Quality effect of `model.attention_dropout: 0` (val macro F1, mean over seeds):", ""]
    for s, rows in d["strategies"].items():
        a, b = rows["unfreeze"], rows["unfreeze0"]
        if "error" in a or "error" in b:
            continue
        lines.append(f"- {s}: {_seeds(a)} → {_seeds(b)} (Δ {b['metric_delta_vs_default']:+.3f})")
    return lines


def limit_lines(d: dict) -> list[str]:
    lim = d["limit"]
    if "error" in lim:
        return ["", f"Limit micro-benchmark failed: {lim['error'][:200]}"]
    lines = ["", f"Throughput measured for the limit (real tokens/s): full eval forward "
             f"{_n(lim['full_forward_tokens_per_s'])}.", "",
             "| strategy | frozen eval forward | trainable fwd+bwd | trainable fwd+bwd, attention_dropout 0 |",
             "|---|---:|---:|---:|"]
    for s, row in lim["strategies"].items():
        lines.append(f"| {s} | {_n(row['frozen_forward_tokens_per_s'])} | {_n(row['train_tokens_per_s'])} | "
                     f"{_n(row['train_tokens_per_s_attention_dropout_0'])} |")
    return lines


def targets_section(targets: list[dict]) -> list[str]:
    lines = ["", "## Targets (from the issue; speedups are vs the seed method)", "",
             "| target | data set | required | measured | status |", "|---|---|---:|---:|---|"]
    for t in targets:
        lines.append(f"| {t['target']} | {TITLES.get(t['dataset'], t['dataset'])} | ≥ {t['required']:g} | "
                     f"{_n(t['measured'], 2)} | {t['status']} |")
    return lines


def _s(x) -> str:
    return "—" if x is None else f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _x(x) -> str:
    return "—" if x is None else f"{x:.1f}×" if x >= 10 else f"{x:.2f}×"


def _n(x, digits: int = 0) -> str:
    return "—" if x is None else f"{x:,.{digits}f}"


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _f1(row: dict) -> str:
    return "—" if row.get("val_f1") is None else _seeds(row)


def _seeds(row: dict) -> str:
    values = row["val_f1_by_seed"]
    return f"{row['val_f1']:.3f}" + (f" ({', '.join(f'{v:.3f}' for v in values)})" if len(values) > 1 else "")
