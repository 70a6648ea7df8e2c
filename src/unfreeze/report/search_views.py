"""A search study's part of the report: the pruned trials (listed, never compared) and Optuna's own views —
optimisation history, parameter importances, parameter-vs-metric slices — as static matplotlib images.

Optuna is imported only here and only for a search; every view that cannot be drawn (too few trials, fANOVA
without scikit-learn, a storage that cannot be opened) becomes a one-line note instead of a failed report."""
from __future__ import annotations

import io
import logging
import warnings

import pandas as pd

log = logging.getLogger(__name__)


def _png(ax_or_fig) -> bytes:
    import matplotlib.pyplot as plt

    fig = ax_or_fig.figure if hasattr(ax_or_fig, "figure") and not hasattr(ax_or_fig, "savefig") else ax_or_fig
    if hasattr(ax_or_fig, "flat"):  # an array of axes (slice plot over several parameters)
        fig = ax_or_fig.flat[0].figure
    buffer = io.BytesIO()
    fig.set_size_inches(max(fig.get_size_inches()[0], 8), max(fig.get_size_inches()[1], 4.5))
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def rank_trials(trials: list, lower_is_better: bool) -> list:
    """Complete trials best first by their value; ties go to the arm name first in sorted order (the rule of the
    arms table's "best", `stats.best_arm` over arms grouped in sorted order), then to the earlier trial. The
    report's pick and the trials `search.seeds` re-runs follow it, so they name the arm the table calls best."""
    sign = 1 if lower_is_better else -1
    return sorted(trials, key=lambda t: (sign * t.value, str(t.user_attrs.get("arm", "")), t.number))


def pruned_blocks(pruned: pd.DataFrame, metric: str) -> list:
    if pruned.empty:
        return []
    column = f"val_{metric}"
    rows = [[r["arm"], r["run_id"], r["status"], f"{r[column]:.4f}" if column in r and pd.notna(r[column]) else "–"]
            for _, r in pruned.iterrows()]
    return [("h2", "Pruned trials"), ("table", ["trial", "run", "status", f"last val {metric}"], rows),
            ("p", "Stopped by the search's pruner after an evaluation: kept here, but left out of the arms table "
                  "and of every significance test (their scores are from an unfinished run).")]


def optuna_blocks(meta: dict) -> list:
    search = meta.get("search")
    if not search:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import optuna
        from optuna.visualization import matplotlib as views

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=search["study_name"], storage=search["storage"])
    except Exception as exc:  # noqa: BLE001 — a report must still be written
        return [("h2", "Search"), ("p", f"Optuna views not drawn: {type(exc).__name__}: {exc}")]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    blocks: list = [("h2", "Search"), ("p", (
        f"{search['sampler']} sampler"
        f"{' (costliest first)' if search.get('order') == 'costly_first' else ''}, pruner {search['pruner']}, "
        f"{len(study.trials)} trials in the storage "
        f"({len(done)} complete). Each trial ran seed {meta['seeds'][0]}; the views below are Optuna's, over the "
        f"complete trials' validation {meta['selection_metric']}."))]
    if not done:
        return blocks + [("p", "No complete trial yet: no views.")]
    best = rank_trials(done, study.direction == optuna.study.StudyDirection.MINIMIZE)[0]
    shown = best.user_attrs.get("arm") or ", ".join(f"{k}={v}" for k, v in best.params.items())
    confirm = (f"its re-runs with seeds {search['seeds']} are in the Results table" if search.get("seeds") else
               "`search.seeds` re-runs the best trials with more seeds to give them a spread and a test")
    blocks.append(("p", f"Pick: trial {best.number} ({shown}), validation {meta['selection_metric']} "
                        f"{best.value:.4f}, the best complete trial. One seed per trial: this is a pick, not a "
                        f"finding: trials within seed noise of it are not told apart by one run each ({confirm})."))
    candidates = [("optuna_history", "Optimisation history", lambda: views.plot_optimization_history(study)),
                  ("optuna_slice", "Parameter vs validation metric (slices)", lambda: views.plot_slice(study))]
    if len(done) >= 3 and len(done[0].params) >= 1:
        candidates.insert(1, ("optuna_importances", "Parameter importances (fANOVA)",
                              lambda: views.plot_param_importances(study)))
    else:
        blocks.append(("p", "Parameter importances need at least 3 complete trials."))
    for name, title, draw in candidates:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Optuna marks its matplotlib views experimental
                blocks.append(("img", name, title, _png(draw())))
        except Exception as exc:  # noqa: BLE001 — e.g. fANOVA without scikit-learn, one distinct value only
            log.info("Optuna view %s not drawn: %s", name, exc)
            blocks.append(("p", f"{title}: not drawn ({type(exc).__name__}: {exc})."))
    return blocks
