"""`report.md` and one self-contained `report.html` for a study: the arms table with mean ± std, CIs and
significance against the best arm (picked on validation), the baseline row, plots, and how to reproduce.

Both files are rendered from one list of blocks, so they always say the same thing. The HTML embeds every plot as
a base64 PNG and uses inline CSS only: it opens from disk with no network.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

from unfreeze.report import plots
from unfreeze.io import read_json, write_text
from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.metrics.counts import classification_metric, token_metric
from unfreeze.metrics.stats import best_arm, compare_with_best, summarize

SIG_MARK = "†"  # significantly worse on test than the arm picked on validation
BETTER_MARK = "‡"  # significantly better on test than the arm picked on validation


def headline_metrics(task: str, metric: str, results: pd.DataFrame) -> list[str]:
    extra = ["f1_macro_ignoring", "entity_f1_micro", "accuracy"] if task == "token" else \
        ["accuracy", "f1" if "test_f1" in results else "f1_micro"]
    names = [metric] + [m for m in extra if m != metric and f"test_{m}" in results]
    return names


def _p(value: float) -> str:
    return "p<0.001" if value < 0.001 else f"p={value:.3f}"


def fmt(stats: dict, digits: int = 4) -> str:
    if stats["n"] == 0:
        return "–"
    if stats["n"] == 1:  # one run: no spread to show (a "± 0" would claim there is none)
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


# ---------------------------------------------------------------------------------------------------------
# Significance inputs


def significance(study_dir: Path, results: pd.DataFrame, meta: dict, metric: str) -> tuple[str | None, dict]:
    """(best arm by mean val metric, {arm: comparison}) — empty where the metric cannot be recomputed."""
    if f"val_{metric}" not in results or results.empty:
        return None, {}
    val_means = results.groupby("arm")[f"val_{metric}"].mean().to_dict()
    best = best_arm(val_means, lower_is_better=metric in LOWER_IS_BETTER)
    preds, y_true, fn = {}, None, None
    ordered = results.sort_values(["seed", "fold"])
    for arm, part in ordered.groupby("arm", sort=False):
        preds[arm] = {}
        for run_dir, seed, fold in zip(part["path"], part["seed"], part["fold"]):
            run_dir = Path(run_dir)
            if meta.get("task") == "token":
                rows = [json.loads(line) for line in (run_dir / "predictions_test.jsonl").read_text().splitlines()]
                y = np.empty(len(rows), dtype=object)
                p = np.empty(len(rows), dtype=object)
                y[:], p[:] = [r["tags"] for r in rows], [r["pred"] for r in rows]
                if fn is None:
                    cfg = _run_config(run_dir)
                    test = read_json(run_dir / "metrics.json")["test"]
                    fn = token_metric(metric, test["labels"], cfg["data"]["ignore_labels"],
                                      test.get("settings", {}).get("scheme", "iob2"))
            else:
                frame = pd.read_csv(run_dir / "predictions_test.csv", dtype={"label": str, "pred": str})
                y, p = frame["label"].to_numpy(), frame["pred"].to_numpy()
                if fn is None:
                    test = read_json(run_dir / "metrics.json")["test"]
                    fn = classification_metric(metric, test["labels"], test.get("positive_label"))
            y_true = y if y_true is None else y_true
            preds[arm][(int(seed), int(fold))] = p
    if fn is None or metric in LOWER_IS_BETTER:
        return best, {}
    return best, compare_with_best(best, preds, y_true, fn, n_boot=1000)


def _run_config(run_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())


# ---------------------------------------------------------------------------------------------------------
# Blocks


def arms_table(results: pd.DataFrame, names: list[str], best: str | None, comparisons: dict) -> tuple[list, list]:
    metric = names[0]
    header = ["arm", "n", f"val {metric}", "val 95% CI", f"test {metric}", "test 95% CI"] + [
        f"test {m}" for m in names[1:]] + ["Δ vs best (p Holm)", "trainable params", "train s", "peak RSS MB"]
    rows = []
    order = results.groupby("arm")[f"val_{metric}"].mean().sort_values(ascending=metric in LOWER_IS_BETTER).index
    for arm in order:
        part = results[results["arm"] == arm]
        val, test = summarize(part[f"val_{metric}"]), summarize(part[f"test_{metric}"])
        comp = comparisons.get(arm)
        mark = significance_mark(comp)
        versus = "best (by val)" if arm == best else (
            f"{-comp['delta']:+.4f} ({_p(comp['p_holm'])}){mark}" if comp else "–")
        rows.append([arm + mark, str(test["n"]), fmt(val), ci(val), fmt(test), ci(test)]
                    + [fmt(summarize(part[f"test_{m}"])) for m in names[1:]]
                    + [versus, f"{int(part['trainable_params'].median()):,}", f"{part['train_seconds'].mean():.1f}",
                       _peak_memory(part)])
    return header, rows


def significance_mark(comp: dict | None) -> str:
    """† / ‡ from the direction `stats.compare_with_best` gave the significant gap."""
    if comp and comp["worse"]:
        return f" {SIG_MARK}"
    if comp and comp["better"]:
        return f" {BETTER_MARK}"
    return ""


def ci(stats: dict) -> str:
    return f"[{stats['ci_low']:.4f}, {stats['ci_high']:.4f}]" if stats["n"] > 1 else "–"


def _peak_memory(part: pd.DataFrame) -> str:
    """Peak memory of the arm's runs: GPU memory allocated where a GPU ran, else the process's peak RSS."""
    for column in ("peak_gpu_mb", "peak_rss_mb"):
        if column in part and part[column].notna().any():
            value = f"{part[column].max():,.0f}"
            return value + " (GPU)" if column == "peak_gpu_mb" else value
    return "–"


def baseline_row(study_dir: Path, names: list[str], width: int) -> list | None:
    path = study_dir / "baseline" / "metrics.json"
    if not path.exists():
        return None
    base = read_json(path)
    cells = [f"baseline: {base['method']}", "1", f"{base['val'].get(names[0], float('nan')):.4f}", "–",
             f"{base['test'].get(names[0], float('nan')):.4f}", "–"]
    cells += [f"{base['test'].get(m, float('nan')):.4f}" for m in names[1:]]
    cells += ["–", "0 (no encoder)", f"{base.get('train_seconds', float('nan')):.1f}", "–"]
    return cells[:width]


def histories(results: pd.DataFrame) -> dict[str, list[pd.DataFrame]]:
    out: dict[str, list[pd.DataFrame]] = {}
    for arm, part in results.groupby("arm"):
        out[arm] = [pd.read_csv(Path(p) / "history.csv") for p in part["path"] if (Path(p) / "history.csv").exists()]
    return out


def plot_blocks(study_dir: Path, results: pd.DataFrame, meta: dict, metric: str, best: str | None) -> list:
    grid = meta.get("grid_keys", [])
    other = next((k for k in grid if k not in ("freeze",) and results[k].nunique() > 1), None) if grid else None
    candidates = [
        ("learning_curves", "Learning curves", plots.learning_curves(histories(results), metric)),
        ("layers", "Metric vs number of unfrozen layers",
         plots.metric_vs_layers(results, metric, other) if "freeze" in grid else None),
        ("train_size", "Metric vs training-set size", plots.metric_vs_size(results, metric)),
        ("optimizer_lr", "Optimizer × learning rate", plots.optimizer_lr_heatmap(results, metric)),
    ]
    if best is not None:
        first = results[results["arm"] == best].sort_values(["seed", "fold"]).iloc[0]
        test = read_json(Path(first["path"]) / "metrics.json")["test"]
        labels = test.get("labels_ignoring") or test["labels"]
        matrix = test.get("confusion_matrix_ignoring") or test["confusion_matrix"]
        candidates.append(("confusion", f"Confusion matrix of the best arm ({best}, seed {first['seed']}, test)",
                           plots.confusion_matrix_plot(matrix, labels, f"{best}: test confusion matrix")))
        if "confusion_matrix_ignoring" in test:  # token task: also the matrix with the ignored labels (e.g. O)
            candidates.append(("confusion_all", f"Confusion matrix with the ignored labels ({best}, seed "
                                                f"{first['seed']}, test)",
                               plots.confusion_matrix_plot(test["confusion_matrix"], test["labels"],
                                                           f"{best}: test confusion matrix, every label")))
        per_class = {k: v for k, v in test.get("per_class", {}).items() if k in labels}
        candidates.append(("per_class", f"Per-class F1 of the best arm ({best}, test)",
                           plots.per_class_f1(per_class, f"{best}: per-class test F1")))
        if test.get("per_entity_type"):
            candidates.append(("per_entity", f"Entity-level F1 per type of the best arm ({best}, test, seqeval)",
                               plots.per_class_f1(test["per_entity_type"], f"{best}: entity F1 per type (test)")))
    return [("img", name, title, png) for name, title, png in candidates if png is not None]


def build_blocks(study_dir: Path, results: pd.DataFrame) -> list:
    meta = read_json(study_dir / "study.json")
    metric = meta["selection_metric"]
    if "selection_metric" in results and results["selection_metric"].notna().any():
        metric = results["selection_metric"].mode().iloc[0]  # as the runs resolved it (`auto` depends on the data)
    blocks: list = [("h1", f"Study: {meta['name']}")]
    if results.empty:
        return blocks + [("p", "No run has finished yet.")]
    names = headline_metrics(meta["task"], metric, results)
    best, comparisons = significance(study_dir, results, meta, metric)
    header, rows = arms_table(results, names, best, comparisons)
    base = baseline_row(study_dir, names, len(header))
    if base:
        rows.append(base)
    n_seeds = results.groupby("arm").size().max()
    blocks += [("h2", "Results"), ("table", header, rows), ("p", (
        f"Mean ± std over seeds{' and folds' if meta.get('cv') else ''} (n per arm), 95 % t-intervals. "
        f"The best arm is chosen by mean validation {metric}; every other arm is compared with it on the "
        f"same test set, runs paired by seed "
        f"({next(iter(comparisons.values()))['test'] if comparisons else 'no test possible'}), "
        f"Holm-corrected across arms. {SIG_MARK} = significantly worse than the best arm on test at 5 %; "
        f"{BETTER_MARK} = significantly better on test than the arm picked on validation (validation and test "
        f"disagree: read the ranking with care). Δ is the arm's test {metric} minus the best arm's. Up to "
        f"{n_seeds} runs per arm. Peak memory: the largest peak of the arm's runs (GPU memory allocated on a GPU, "
        f"else the process's peak resident memory during the run)."))]
    if base is None:
        blocks.append(("p", "No baseline row (baseline: false, or not computed yet)."))
    blocks += ensemble_blocks(study_dir, metric)
    failures = study_dir / "failures.json"
    if failures.exists() and read_json(failures):
        blocks += [("h2", "Failures"), ("table", ["run", "arm", "error"],
                                        [[f["run_id"], f["arm"], f["error"]] for f in read_json(failures)])]
    blocks += [("h2", "Plots")] + plot_blocks(study_dir, results, meta, metric, best)
    blocks += reproduce_blocks(study_dir, meta)
    return blocks


def ensemble_blocks(study_dir: Path, metric: str = "f1_macro") -> list:
    paths = sorted((study_dir / "ensembles").glob("*/metrics.json"))
    if not paths:
        return []
    ensembles = [read_json(path) for path in paths]
    names = [m for m in dict.fromkeys([metric, "f1_macro", "accuracy"])
             if all(isinstance(e["test"].get(m), float) for e in ensembles)]
    rows = [[e["arm"], str(e["seed"]), str(e["folds"])] + [f"{e['oof'].get(m, float('nan')):.4f}" for m in names]
            + [f"{e['test'][m]:.4f}" for m in names] for e in ensembles]
    return [("h2", "Cross-validation ensembles"),
            ("table", ["arm", "seed", "folds"] + [f"out-of-fold {m}" for m in names]
             + [f"ensemble test {m}" for m in names], rows),
            ("p", "Out-of-fold: every training example predicted by the model that did not train on it. Ensemble: "
                  "test probabilities averaged over the fold models (`ensembles/<arm>-s<seed>/predictions_test.csv`).")]


def reproduce_blocks(study_dir: Path, meta: dict) -> list:
    blocks = [("h2", "Reproduce"), ("p", "Command:"), ("pre", meta.get("command") or "unfreeze study STUDY.yaml")]
    if (study_dir / "study.yaml").exists():
        blocks += [("p", "Study file:"), ("pre", (study_dir / "study.yaml").read_text(encoding="utf-8"))]
    blocks += [("p", "Versions:"), ("pre", json.dumps(meta.get("versions", {}), indent=2))]
    return blocks


# ---------------------------------------------------------------------------------------------------------
# Rendering


def _md_text(text: str) -> str:
    """Arm, label and column names come from user files: escape HTML (markdown renderers pass raw HTML through),
    as `render_html` does, so a label like `<script>` is shown, never run."""
    return html.escape(str(text), quote=False)


def render_markdown(blocks: list, plot_dir: str = "plots") -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            out.append(("# " if kind == "h1" else "## ") + _md_text(block[1]))
        elif kind == "p":
            out.append(_md_text(block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("\n".join(["| " + " | ".join(_md_text(h) for h in header) + " |", "|" + "---|" * len(header)]
                                 + ["| " + " | ".join(_md_text(c).replace("|", "\\|") for c in row) + " |"
                                    for row in rows]))
        elif kind == "pre":
            out.append("```\n" + block[1].rstrip() + "\n```")
        elif kind == "img":
            out.append(f"### {_md_text(block[2])}\n\n![{_md_text(block[2])}]({plot_dir}/{block[1]}.png)")
    return "\n\n".join(out) + "\n"


CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
       "table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;"
       "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
       "pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}img{max-width:100%;border:1px solid #eee}"
       "figure{margin:1.5em 0}figcaption{font-weight:600;margin-bottom:.4em}")


def render_html(blocks: list) -> str:
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{html.escape(block[1])}</p>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "pre":
            body.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "img":
            data = base64.b64encode(block[3]).decode()
            body.append(f'<figure id="{block[1]}"><figcaption>{html.escape(block[2])}</figcaption>'
                        f'<img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}"></figure>')
    title = html.escape(blocks[0][1]) if blocks else "unfreeze report"
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def build_report(study_dir: str | Path, results: pd.DataFrame | None = None) -> tuple[Path, Path]:
    study_dir = Path(study_dir)
    if results is None:
        csv = study_dir / "results.csv"
        results = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
    blocks = build_blocks(study_dir, results)
    for block in blocks:
        if block[0] == "img":
            from unfreeze.io import atomic_path

            with atomic_path(study_dir / "plots" / f"{block[1]}.png") as tmp:
                tmp.write_bytes(block[3])
    md, page = study_dir / "report.md", study_dir / "report.html"
    write_text(md, render_markdown(blocks))
    write_text(page, render_html(blocks))
    return md, page
