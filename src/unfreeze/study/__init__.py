"""A study: a grid of run configs × seeds (× folds), run resumably into one folder, then aggregated.

Parts: `grid` (expansion, arm names, run ids), `pool` (data loaded once, CV folds), `execute` (one run into its
folder; the local executor), `ray_executor` (the Ray executor), `baselines`, `ensemble`, `estimate`, `results`
(results.csv), `bookkeeping` (study.json, failures.json, the baseline).
What to run next is a planner's choice (`planner`: the grid, `racing`, a search's `trials`), and `planner.drive`
is the one loop that hands a planner's batches to an executor. The flow that calls them in order is
`runner.run_study`; a study with `search:` is dispatched to the Optuna flow `search.run_search` instead.
"""
from unfreeze.study.execute import LocalExecutor, RunOutcome, cache_top_ks, execute_run
from unfreeze.study.grid import PlannedRun, arm_name, arm_overrides, config_hash, display_value, expand, flatten
from unfreeze.study.pool import DataPool, concat_splits
from unfreeze.study.results import collect_results, result_row, unfrozen_layers
from unfreeze.study.runner import ProgressReporter, make_executor, run_study

__all__ = ["DataPool", "LocalExecutor", "PlannedRun", "ProgressReporter", "RunOutcome", "arm_name", "arm_overrides",
           "cache_top_ks", "collect_results", "concat_splits", "config_hash", "display_value", "execute_run",
           "expand", "flatten", "make_executor", "result_row", "run_study", "unfrozen_layers"]
