"""Aggregation: one row per finished run (columns in docs/CONTRACTS.md), written to results.csv.
"""
from __future__ import annotations




import logging




from pathlib import Path



import pandas as pd

from unfreeze.strategies import get_strategy
from unfreeze.config.schema import FreezeConfig, RunConfig
from unfreeze.model.bilstm import model_family


from unfreeze.io import read_json, write_dataframe_csv
from unfreeze.io.paths import read_study_json

from unfreeze.metrics.classification import scalar_metrics
from unfreeze.study.grid import PlannedRun, display_value, overrides_hash

log = logging.getLogger(__name__)



def collect_results(study_dir: str | Path, jobs: list[PlannedRun] | None = None) -> pd.DataFrame:
    """One row per finished run (columns in docs/CONTRACTS.md); also written to results.csv."""
    study_dir = Path(study_dir)
    meta = read_study_json(study_dir) if (study_dir / "study.json").exists() else {}
    # `unfreeze report` has no jobs: the run ids of the study file's last version say which folders count
    wanted = {j.run_id for j in jobs} if jobs is not None else (set(meta["run_ids"]) if "run_ids" in meta else None)
    rows = []
    for metrics_path in sorted((study_dir / "runs").glob("*/metrics.json")):
        run_dir = metrics_path.parent
        if wanted is not None and run_dir.name not in wanted:
            continue  # left over from an earlier version of the study file
        info_path = run_dir / "run.json"
        if not info_path.exists():
            continue
        info = read_json(info_path)
        rows.append(result_row(run_dir, info, read_json(metrics_path), meta.get("grid_keys", [])))
        rows[-1]["_config"] = overrides_hash(info.get("overrides", {}))
    if meta.get("search"):  # a search: pruned trials are rows too, labelled, with no test metrics
        for row in rows:
            row["status"] = "complete"
        for pruned_path in sorted((study_dir / "runs").glob("*/pruned.json")):
            if (pruned_path.parent / "metrics.json").exists() or (wanted is not None
                                                                  and pruned_path.parent.name not in wanted):
                continue
            pruned = read_json(pruned_path)
            rows.append(pruned_row(pruned_path.parent, pruned, meta.get("grid_keys", [])))
            rows[-1]["_config"] = overrides_hash(pruned["info"].get("overrides", {}))
    frame = pd.DataFrame(one_config_per_arm(rows))
    if not frame.empty:
        write_dataframe_csv(study_dir / "results.csv", frame)
    return frame



def one_config_per_arm(rows: list[dict]) -> list[dict]:
    """Rows keyed by config, not by display name: where one arm name covers runs of different overrides (a study
    folder written before arm names were made unique, e.g. two `model=best` of different model folders), each
    config's rows get the name plus its overrides' hash, so the report never pools two configs as seeds."""
    configs: dict[str, set[str]] = {}
    for row in rows:
        configs.setdefault(row["arm"], set()).add(row["_config"])
    for row in rows:
        key = row.pop("_config")
        if len(configs[row["arm"]]) > 1:
            row["arm"] = f"{row['arm']} #{key}"
    return rows


def result_row(run_dir: Path, info: dict, metrics: dict, grid_keys: list[str]) -> dict:
    import yaml

    config = RunConfig.model_validate({k: v for k, v in yaml.safe_load((run_dir / "config.yaml").read_text())
                                       .items() if k != "versions"})
    num_layers = metrics.get("num_layers")
    freeze = config.freeze
    row = {"run_id": info["run_id"], "arm": info["arm"], "seed": info["seed"], "fold": info["fold"],
           "path": str(run_dir), "strategy": freeze.label,
           "depth_only": get_strategy(freeze.strategy).depth_only, "model_family": model_family(config.model.name)}
    row["num_layers"] = num_layers
    reached = [h["unfrozen_layers"] for h in metrics.get("history", []) if "unfrozen_layers" in h]
    row["unfrozen_layers"] = max(reached) if reached else unfrozen_layers(freeze, num_layers)
    for key in grid_keys:
        row[key] = display_value(key, info["overrides"].get(key)) if key in info["overrides"] else None
    for split in ("val", "test"):
        for name, value in scalar_metrics(metrics.get(split, {})).items():
            row[f"{split}_{name}"] = value
    row["n_train"] = (metrics.get("data") or {}).get("sizes", {}).get("train")  # examples the run trained on
    for key in ("trainable_params", "total_params", "setup_seconds", "train_seconds", "final_eval_seconds", "epoch_eval_seconds",
                "run_seconds", "peak_rss_mb", "peak_gpu_mb", "best_epoch", "selection_metric", "test_fingerprint"):
        row[key] = metrics.get(key)
    return row



def pruned_row(run_dir: Path, pruned: dict, grid_keys: list[str]) -> dict:
    """A search trial stopped by the pruner: where it stopped and its last validation score; never compared."""
    info, last = pruned["info"], (pruned["history"] or [{}])[-1]
    row = {"run_id": info["run_id"], "arm": info["arm"], "seed": info["seed"], "fold": info["fold"],
           "path": str(run_dir), "status": f"pruned at epoch {pruned['epoch']:g}"}
    for key in grid_keys:
        row[key] = display_value(key, info["overrides"].get(key)) if key in info["overrides"] else None
    row.update({k: v for k, v in last.items() if k.startswith("val_")})
    row["selection_metric"] = pruned.get("metric")
    row["run_seconds"] = pruned.get("run_seconds")  # until the pruner stopped it (older folders: absent)
    return row



def unfrozen_layers(freeze: FreezeConfig, num_layers: int | None) -> int | None:
    return get_strategy(freeze.strategy).trained_layers(freeze, num_layers)
