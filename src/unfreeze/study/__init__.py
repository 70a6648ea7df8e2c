"""A study: a grid of run configs × seeds (× folds), run resumably into one folder, then aggregated.

Parts: `grid` (expansion, arm names, run ids), `pool` (data loaded once, CV folds), `execute` (one run into its
folder; the local executor), `ray_executor` (the Ray executor), `baselines`, `ensemble`, `estimate`, `results`
(results.csv), `bookkeeping` (study.json, failures.json, the baseline).
What to run next is a planner's choice (`planner`: the grid, `racing`, a search's `trials`), and `planner.drive`
is the one loop that hands a planner's batches to an executor. The flow that calls them in order is
`runner.run_study`; a study with `search:` is dispatched to the Optuna flow `search.run_search` instead.
"""
import importlib

#: the public names and the module that defines each; imported on first use (PEP 562), so planning a one-line
#: study (`study.oneline`, `study.plan`) does not pay for scikit-learn and the executors before its dry run answers
_EXPORTS = {
    "execute": ("LocalExecutor", "RunOutcome", "cache_top_ks", "execute_run"),
    "grid": ("PlannedRun", "arm_name", "arm_overrides", "config_hash", "display_value", "expand", "flatten"),
    "pool": ("DataPool", "concat_splits"),
    "results": ("collect_results", "result_row", "unfrozen_layers"),
    "runner": ("ProgressReporter", "make_executor", "run_study"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name not in _HOME:
        raise AttributeError(f"module 'unfreeze.study' has no attribute {name!r}")
    return getattr(importlib.import_module(f"unfreeze.study.{_HOME[name]}"), name)
