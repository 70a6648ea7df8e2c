"""`report.md` and one self-contained `report.html` for a study: the arms table with mean ± std, CIs and
significance against the best arm (picked on validation), the baseline row, plots, and how to reproduce.

Both files are rendered from one list of blocks, so they always say the same thing. The HTML embeds every plot as
a base64 PNG and uses inline CSS only: it opens from disk with no network.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from unfreeze.report import baseline as baselines_of
from unfreeze.report import plots
from unfreeze.io import read_json, write_text
from unfreeze.io.paths import read_study_json
from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.metrics.compare import bounded_interval, format_p
from unfreeze.metrics.stats import summarize
from unfreeze.report.plan_section import with_plan
from unfreeze.report.render import render_html, render_markdown
from unfreeze.report.setup import leaky_validation, per_class_flags, per_class_over_seeds, setup_blocks
from unfreeze.report.racing_note import stop_note
from unfreeze.report.significance import N_BOOT, plan_text, report_min_effect, significance, test_groups
from unfreeze.tasks import get_task

SIG_MARK = "†"  # significantly worse on test than the arm picked on validation
BETTER_MARK = "‡"  # significantly better on test than the arm picked on validation


def headline_metrics(task: str, metric: str, results: pd.DataFrame) -> list[str]:
    return get_task(task).headline_metrics(metric, results)


def _p(value: float | None, n_boot: int | None = N_BOOT) -> str:
    """A p-value never printed finer than its resamples resolve (`compare.format_p`); analytic p: n_boot None."""
    return format_p(value, n_boot or N_BOOT)


def fmt(stats: dict, digits: int = 4) -> str:
    if stats["n"] == 0:
        return "–"
    if stats["n"] == 1:  # one run: no spread to show (a "± 0" would claim there is none)
        return f"{stats['mean']:.{digits}f}"
    return f"{stats['mean']:.{digits}f} ± {stats['std']:.{digits}f}"


# ---------------------------------------------------------------------------------------------------------
# Blocks


def arms_table(results: pd.DataFrame, names: list[str], best: str | None, comparisons: dict,
               stopped: dict | None = None) -> tuple[list, list]:
    metric = names[0]
    header = ["arm", "n", f"Δ test {metric} vs best [simultaneous CI]", "mark (p adj.)", f"val {metric}",
              "val 95% CI", f"test {metric}", "test 95% CI"] + [
        f"test {m}" for m in names[1:]] + ["test-set only p", "trainable params", "train s", "peak RSS MB"]
    rows = []
    bounded = metric not in LOWER_IS_BETTER  # scores in [0, 1]; a loss is not
    order = results.groupby("arm")[f"val_{metric}"].mean().sort_values(ascending=metric in LOWER_IS_BETTER).index
    for arm in order:
        part = results[results["arm"] == arm]
        val, test = summarize(part[f"val_{metric}"]), summarize(part[f"test_{metric}"])
        comp = comparisons.get(arm)
        mark = significance_mark(comp)
        seeds = part["seed"].nunique() if "seed" in part else test["n"]
        n = str(test["n"]) + (f" ({seeds} seed{'s' if seeds != 1 else ''} × folds: the seeds count)"
                              if seeds < test["n"] else "")
        n += f" ({stop_note(stopped[arm])})" if arm in (stopped or {}) else ""
        rows.append([arm + mark, n, versus(arm, best, comp), mark_cell(comp), fmt(val),
                     interval(per_seed(part, f"val_{metric}"), bounded), fmt(test),
                     interval(per_seed(part, f"test_{metric}"), bounded)]
                    + [fmt(summarize(part[f"test_{m}"])) for m in names[1:]]
                    + [secondary(comp), f"{int(part['trainable_params'].median()):,}",
                       f"{part['train_seconds'].mean():.1f}", _peak_memory(part)])
    return header, rows


def versus(arm: str, best: str | None, comp: dict | None) -> str:
    """Δ (arm − best) and its interval simultaneous over every pair of arms; fewer than 3 seeds: Δ and why there
    is no test (and no mark)."""
    if arm == best:
        return "best (by val)"
    if not comp:
        return "–"
    if not comp["decidable"]:
        return f"{-comp['delta']:+.4f} ({comp['method']})"
    return f"{-comp['delta']:+.4f} [{-comp['ci_high']:+.4f}, {-comp['ci_low']:+.4f}]"


def mark_cell(comp: dict | None) -> str:
    """The mark and the Bonferroni-adjusted p behind it (the interval excludes 0 exactly when p adj. < 0.05)."""
    if not comp or not comp["decidable"]:
        return "–"
    return f"{significance_mark(comp).strip() or 'none'} ({_p(comp['p_holm'], comp['n_boot'])})"


def per_seed(part: pd.DataFrame, column: str) -> pd.Series:
    """One value per seed (the folds of a seed averaged: a cluster, not independent draws)."""
    return part.groupby("seed")[column].mean() if "seed" in part else part[column]


def secondary(comp: dict | None) -> str:
    """The old example-only test, for reading only (it ignores seed variance and never sets a mark)."""
    other = comp.get("test_set_only") if comp else None
    return _p(other["p_value"], other["n_boot"]) if other else "–"


def interval(values: pd.Series, bounded: bool) -> str:
    """95 % interval for the mean over seeds; inside [0, 1] for bounded scores (`compare.bounded_interval`)."""
    if not bounded:
        return ci(summarize(values))
    try:
        low, high, note = bounded_interval(list(values))
    except Exception:  # a score outside [0, 1]: not a bounded metric after all
        return ci(summarize(values))
    if np.isnan(low):
        return "–"
    note = "; ".join("logit scale" if "logit" in part else part for part in note.split("; ") if part)
    return f"[{low:.4f}, {high:.4f}]" + (f" ({note})" if note else "")


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


def histories(results: pd.DataFrame) -> dict[str, list[pd.DataFrame]]:
    out: dict[str, list[pd.DataFrame]] = {}
    for arm, part in results.groupby("arm"):
        out[arm] = [pd.read_csv(Path(p) / "history.csv") for p in part["path"] if (Path(p) / "history.csv").exists()]
    return out


def plot_blocks(study_dir: Path, results: pd.DataFrame, meta: dict, metric: str, best: str | None,
                baseline_sizes: dict[float, float] | None = None) -> list:
    grid = meta.get("grid_keys", [])
    other = next((k for k in grid if k not in ("freeze",) and results[k].nunique() > 1), None) if grid else None
    candidates = [
        ("learning_curves", "Learning curves", plots.learning_curves(histories(results), metric)),
        ("layers", "Metric vs number of unfrozen layers",
         plots.metric_vs_layers(results, metric, other) if "freeze" in grid else None),
        ("train_size", "Metric vs training-set size", plots.metric_vs_size(results, metric, baseline_sizes)),
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
        per_class = per_class_over_seeds(results, best, "per_class", labels)
        n = max((v["n"] for v in per_class.values()), default=0)
        candidates.append(("per_class", f"Per-class F1 of the best arm ({best}, test, mean ± std over {n} runs)",
                           plots.per_class_f1(per_class, f"{best}: per-class test F1 (mean ± std, {n} runs)")))
        if test.get("per_entity_type"):
            per_type = per_class_over_seeds(results, best, "per_entity_type")
            candidates.append(("per_entity", f"Entity-level F1 per type of the best arm ({best}, test, seqeval, "
                                             f"mean ± std over {n} runs)",
                               plots.per_class_f1(per_type, f"{best}: entity F1 per type (test, mean ± std)")))
    blocks = [("img", name, title, png) for name, title, png in candidates if png is not None]
    names = list(results["arm"].astype(str))  # everything a plot may draw: arms, grid values, class names
    names += [str(v) for key in grid if key in results for v in results[key].dropna().unique()]
    if best is not None:
        names += [*labels, *(test.get("per_entity_type") or [])]
    if blocks and plots.CJK_FAMILY is None and any(plots.has_cjk(n) for n in names):
        blocks.insert(0, ("p", "No font with CJK glyphs is installed, so Chinese / Japanese / Korean names in the "
                               "plots below are drawn as boxes; the tables above show them as text. Fix: `pip install "
                               "--no-deps mplfonts==0.0.11` (or `make assets`), or install a CJK system font."))
    return blocks


def method_note(meta: dict, metric: str, n_seeds: int) -> str:
    """The paragraph under the arms table: what the numbers, intervals and marks mean."""
    return (
        f"Mean ± std over seeds{' and folds' if meta.get('cv') else ''} (n per arm), 95 % intervals for the mean "
        f"over seeds{' (the folds of a seed averaged first: folds are not seeds)' if meta.get('cv') else ''} "
        f"(t-intervals cut at 0 and 1; with 2 seeds uninformative). The best arm is chosen by mean "
        f"validation {metric}; every other arm is compared with it on the same test set. {METHOD} The Δ column "
        f"leads: the arm's test {metric} minus the best arm's, with an interval that holds simultaneously for "
        f"every pair of arms (Bonferroni over the pairs), so it also holds for the pair that the validation pick "
        f"selected. {SIG_MARK} = significantly worse than the best arm on test at 5 % family-wise (the interval "
        f"lies below 0); {BETTER_MARK} = significantly better on test than the arm picked on validation (validation "
        f"and test disagree: read the ranking with care). Arms with fewer than 3 seeds get Δ but no test and no mark. "
        f"'test-set only p': the older bootstrap over test examples with seeds held fixed ({N_BOOT:,} resamples), "
        f"shown for reference — it ignores seed variance and is not calibrated when seeds differ in skill, so it "
        f"never sets a mark. Δ is the arm's test {metric} minus the best arm's. Up to {n_seeds} runs per arm. "
        f"Peak memory: the largest peak of the arm's runs (GPU memory allocated on a GPU, else the process's peak "
        f"resident memory during the run).")


def build_blocks(study_dir: Path, results: pd.DataFrame) -> list:
    meta = read_study_json(study_dir)
    metric = meta["selection_metric"]
    if "selection_metric" in results and results["selection_metric"].notna().any():
        metric = results["selection_metric"].mode().iloc[0]  # as the runs resolved it (`auto` depends on the data)
    blocks: list = [("h1", f"Study: {meta['name']}")]
    pruned = results.iloc[0:0]
    if "status" in results:  # a search: pruned trials are listed apart and never compared
        pruned = results[results["status"] != "complete"]
        results = results[results["status"] == "complete"]
    if meta.get("search"):
        from unfreeze.report.search_views import optuna_blocks, pruned_blocks

        search_blocks = pruned_blocks(pruned, metric) + optuna_blocks(meta)
    else:
        search_blocks = []
    if results.empty:
        blocks += search_blocks
        return blocks + [("p", "No run has finished yet.")]
    names = headline_metrics(meta["task"], metric, results)
    groups = test_groups(results, meta["task"])
    blocks += setup_blocks(results)
    blocks.append(("h2", "Results"))
    if len(groups) > 1:
        blocks.append(("p", f"The runs were scored on {len(groups)} different test sets (e.g. a grid over "
                            f"data.split_seed): one table per test set; arms are compared and ranked only within "
                            f"a table, never across tables."))
    first_best, all_baselines = None, baselines_of.load_baselines(study_dir)
    racing = read_json(study_dir / "racing.json") if (study_dir / "racing.json").exists() else None
    shown: list[dict] = []
    for i, group in enumerate(groups):
        bases = baselines_of.for_group(all_baselines, group, len(groups) == 1)
        best, comparisons, decision = significance(
            group, meta, metric, baseline_of={a: baselines_of.of_arm(bases, group, a) for a in group["arm"].unique()},
            min_effect=report_min_effect(study_dir))
        first_best = best if i == 0 else first_best
        header, rows = arms_table(group, names, best, comparisons, (racing or {}).get("stopped"))
        lines, deltas, wins = baselines_of.verdict(group, best, bases, metric, decision, leaky_validation(group))
        if wins:
            rows = [[c.replace("best (by val)", "best fine-tuned (by val)") for c in row] for row in rows]
        rows += baselines_of.rows(bases, names, len(header), deltas)
        shown += bases
        if len(groups) > 1:
            blocks.append(("p", f"Test set {i + 1} of {len(groups)} ({group_label(group, meta)}):"))
        blocks += [("p", line) for line in lines[:1]]
        blocks.append(("table", header, rows))
        blocks += [("p", line) for line in lines[1:]]
        plan = plan_text(decision, metric)
        if plan:
            blocks.append(("p", plan))
    blocks.append(("p", method_note(meta, metric, int(results.groupby("arm").size().max()))))
    if racing:
        blocks.append(("p", racing_line(racing)))
    blocks += [("p", note) for note in get_task(meta.get("task")).report_notes]
    if not shown:
        blocks.append(("p", "No baseline row (baseline: false, or not computed yet)."))
    else:
        blocks.append(("p", "Baseline rows: one per distinct training set, trained on exactly the runs' splits; the "
                            "baseline competes in 'best by validation', and the best fine-tuned arm is compared with "
                            "the baseline of its own training set on test (the baseline is deterministic: its seed "
                            "variance is 0; the arm's seed variance and the test set count, as above). The baseline "
                            "row's Δ is its test score minus the best fine-tuned arm's."))
    blocks += ensemble_blocks(study_dir, metric) + search_blocks
    blocks += per_class_flags(results, first_best)
    failures = study_dir / "failures.json"
    if failures.exists() and read_json(failures):
        blocks += [("h2", "Failures"), ("table", ["run", "arm", "error"],
                                        [[f["run_id"], f["arm"], f["error"]] for f in read_json(failures)])]
    blocks += [("h2", "Plots")] + plot_blocks(study_dir, results, meta, metric, first_best,
                                              baselines_of.size_points(shown, metric))
    blocks += reproduce_blocks(study_dir, meta)
    return blocks


METHOD = ("Test: a t-test over seeds (paired by seed when the arms ran the same seed numbers, else over independent "
          "seeds; df: the smaller arm's seeds − 1, raised toward the test-set term's only as far as a 95 % upper "
          "bound of the seed variance allows) whose variance adds the seed variance and the test-set variance "
          f"of the seed-averaged difference (a bootstrap over test examples, {N_BOOT:,} resamples), calibrated "
          "under several generative models in docs/statistics.md (`unfreeze calibrate` checks your own).")


def racing_line(racing: dict) -> str:
    """What seed racing did, and why it cannot have chosen on test."""
    stopped = racing.get("stopped", {})
    if not racing["looks"]:
        return (f"Seed racing was on, but with no more seeds than the {racing['min_seeds']} an arm needs before it "
                f"can be stopped, every arm ran every seed.")
    return (f"Seed racing: every arm ran {racing['min_seeds']} seeds; after each further seed, each running arm was "
            f"compared with the leader (best mean validation score) on the VALIDATION predictions with the same "
            f"seed-aware test, Holm-corrected across arms, and stopped when p < {racing['alpha']:g} / "
            f"{racing['looks']} looks = {racing['alpha_per_look']:.3g} — never on test, so the test columns are not "
            f"selected on. {len(stopped)} arm{'s' if len(stopped) != 1 else ''} stopped early ("
            f"{racing['runs_not_run']} runs not run); a stopped arm shows the seeds it ran, and its n column says "
            f"why it stopped.")


def group_label(group: pd.DataFrame, meta: dict) -> str:
    """What the runs of one test set have in common among the grid keys (e.g. data.split_seed=1)."""
    shared = [f"{k}={group[k].iloc[0]}" for k in meta.get("grid_keys", []) if k in group and group[k].nunique() == 1]
    return ", ".join(shared) or f"{len(group)} runs"


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
            ("p", "Out-of-fold: every training example predicted by the model that did not train on it. It is "
                  "OPTIMISTIC: each fold's held-out part also chose that fold's best epoch (early stopping / best "
                  "checkpoint), so it is not an untouched estimate — read the ensemble's test score for that. "
                  "Ensemble: test probabilities averaged over the fold models "
                  "(`ensembles/<arm>-s<seed>/predictions_test.csv`).")]


def reproduce_blocks(study_dir: Path, meta: dict) -> list:
    blocks = [("h2", "Reproduce"), ("p", "Command:"), ("pre", meta.get("command") or "unfreeze study STUDY.yaml")]
    if (study_dir / "study.yaml").exists():
        blocks += [("p", "Study file:"), ("pre", (study_dir / "study.yaml").read_text(encoding="utf-8"))]
    blocks += [("p", "Versions:"), ("pre", json.dumps(meta.get("versions", {}), indent=2))]
    return blocks


def build_report(study_dir: str | Path, results: pd.DataFrame | None = None) -> tuple[Path, Path]:
    study_dir = Path(study_dir)
    if results is None:
        csv = study_dir / "results.csv"
        results = pd.read_csv(csv) if csv.exists() else pd.DataFrame()
    blocks = build_blocks(study_dir, results)
    blocks = with_plan(study_dir, blocks, results)  # a one-line study's Plan section (report.plan_section)
    for block in blocks:
        if block[0] == "img":
            from unfreeze.io import atomic_path

            with atomic_path(study_dir / "plots" / f"{block[1]}.png") as tmp:
                tmp.write_bytes(block[3])
    md, page = study_dir / "report.md", study_dir / "report.html"
    write_text(md, render_markdown(blocks))
    write_text(page, render_html(blocks))
    return md, page
