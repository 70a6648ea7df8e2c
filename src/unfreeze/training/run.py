"""One fine-tuning run, built from its parts: data and model (`training/prepare.py`), the activation cache
(`training/cache_part.py`), optimizer and schedules (`training/schedules.py`), the loop (`training/loop.py`), then
the best weights restored, test evaluated once, and the run folder written (`training/run_dir.py`).

The test split is evaluated exactly once, with the weights chosen on validation. Metrics are computed on the
whole split from gathered predictions (`accelerator.gather_for_metrics`, de-duplicated by example index). With
the activation cache, validation and the test pass read val/test's float32 cache (equal to the full forward), so
they cost only the layers that train; the reported val numbers are those of the best evaluation itself (same
weights, same forward), not a second pass.

What a study needs from a run (cache plan, `run.json`, a pruner) comes in as one `RunCallbacks` object.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch

from unfreeze.config.schema import RunConfig
from unfreeze.errors import DataError, UnfreezeError
from unfreeze.strategies import get_strategy
from unfreeze.training.accelerator import make_accelerator
from unfreeze.training.cache_part import CachePart, fill_cache
from unfreeze.training.callbacks import NO_CALLBACKS, RunCallbacks
from unfreeze.training.evaluate import Evaluator
from unfreeze.training.loop import BestKeeper, Trainer, make_loaders
from unfreeze.training.loss import class_weight_tensor
from unfreeze.training.memory import peak_gpu_mb, peak_rss_mb, reset_peak_memory
from unfreeze.training.optim import build_optimizer, parameter_groups
from unfreeze.training.prepare import RunData, RunModel, load_data, prepare_parts, seed_everything
from unfreeze.training.run_dir import (check_run_dir, data_fingerprint, is_new, machine_info, split_fingerprint,
                                        train_label_counts, write_run)
from unfreeze.training.schedules import FixedPlan, LRSchedule, Scheduled, Unfreezing

log = logging.getLogger(__name__)


def train(config: RunConfig, out_dir: str | Path, overwrite: bool = False, progress: bool = True,
          data=None, callbacks: RunCallbacks = NO_CALLBACKS) -> dict:
    """Run one configuration and write the run folder (layout in `training/run_dir.py`). Returns `metrics.json`'s dict.

    `data` lets a study pass splits it already loaded (or a CV fold); `callbacks`: what a study hands the run (its
    cache plan, `run.json`, a pruner; see `training/callbacks.py`)."""
    threads = torch.get_num_threads()
    try:
        return _train(config, Path(out_dir), overwrite, progress, data, callbacks)
    finally:
        torch.set_num_threads(threads)  # one run's `train.threads` must not carry over to the study's next run


def _train(config: RunConfig, out_dir: Path, overwrite: bool, progress: bool, data, callbacks: RunCallbacks) -> dict:
    out = check_run_dir(out_dir, overwrite)
    new = is_new(out)
    started = time.perf_counter()
    reset_peak_memory()
    accelerator = make_accelerator(config)
    seed_everything(config.seed)
    run_data, run_model = prepare_parts(config, checked_data(config, data))
    weight = class_weight_tensor(config.train, run_data.label_names, run_data.encoded["train"].labels, run_data.task)
    evaluate = Evaluator(run_data, config.data, weight)
    metric = config.selection_metric_for(run_data.notes.get("scheme"))
    evaluate.check_metric(metric)
    cache = fill_cache(config, run_data, run_model, accelerator, callbacks, progress)
    trainer, groups = build_trainer(config, run_data, run_model, cache, accelerator, evaluate, metric, callbacks,
                                    progress, started)
    log.info("trainable parameters: %d of %d (%.3g%%)", run_model.trainable_params, run_model.total_params,
             100 * run_model.trainable_params / run_model.total_params)
    setup_seconds = time.perf_counter() - started  # loading, encoding, the cache fill: before the first step
    trainer.run()
    train_seconds = time.perf_counter() - started
    trainer.keeper.restore()
    # The final pass reads val/test's float32 cache when there is one (the states the full forward computes, so
    # `unfreeze predict best/` reproduces predictions_test.csv), running only the layers that train. Val: the
    # best evaluation's own logits — the restored weights through the same forward would give them again.
    eval_started = time.perf_counter()
    val_logits = trainer.keeper.best_logits
    if val_logits is None:
        val_logits = trainer.logits("val", "final pass (val)")
    logits = {"val": val_logits, "test": trainer.logits("test", "final pass (test)")}
    timings = {"setup_seconds": setup_seconds, "train_seconds": train_seconds,
               "final_eval_seconds": time.perf_counter() - eval_started}
    results = run_results(config, run_data, run_model, trainer, cache, logits, describe_groups(groups), metric,
                          timings, started)
    if accelerator.is_main_process:
        write_run(out, config, run_data, run_model, results, logits, callbacks.run_info, new=new)
    return results


def checked_data(config: RunConfig, data):
    """The splits to train on: the study's (or fold's), else read from `data:`; a run needs a test split."""
    data = data if data is not None else load_data(config)
    if len(data.test) == 0:
        raise DataError("the test split is empty: give data.test or a data.split.test fraction above 0 (a run "
                        "picks its best epoch on val and evaluates test once, after training)")
    return data


def build_trainer(config: RunConfig, run_data: RunData, run_model: RunModel, cache: CachePart, accelerator,
                  evaluate: Evaluator, metric: str, callbacks: RunCallbacks, progress: bool,
                  started: float) -> tuple[Trainer, list[dict]]:
    """The loop's parts from their sub-configs: loaders (`train:`), the trainable set (`freeze:`), optimizer
    (`optim:`), LR schedule (`scheduler:`), best-weights keeper (`train.metric`, patience). Also returns the
    optimizer's parameter groups at the start (metrics.json describes them)."""
    loaders = make_loaders(run_data, config.train, config.seed, run_model.tokenizer.pad_token_id or 0, cache.caches)
    module = run_model.model
    strategy = get_strategy(config.freeze.strategy)
    if strategy.one_process_reason and accelerator.num_processes > 1:
        raise UnfreezeError(f"freeze: {config.freeze.label} runs in one process only ({strategy.one_process_reason}")
    unfreezing = unfreezing_of(strategy, config, run_model)
    groups = parameter_groups(module, config)
    optimizer = build_optimizer(groups, config.optim)
    steps_per_epoch = math.ceil(len(loaders.train_sampler) / config.train.grad_accum_steps)
    lr = LRSchedule(config.scheduler, optimizer, steps_per_epoch * config.train.epochs, metric)
    # Loaders go through Accelerate too: under `accelerate launch` each process then gets its shard of batches.
    # The step-wise scheduler is sized on the unsharded loader (see LRSchedule.prepare).
    model, optimizer, loaders.train, loaders.val, loaders.test = accelerator.prepare(
        module, optimizer, loaders.train, loaders.val, loaders.test)
    lr.prepare(accelerator)
    if config.train.compile:
        # dynamic shapes: batches are padded per batch, so every length would otherwise be a new graph.
        # Train/eval mode and the frozen set are read from `module`, which the compiled module wraps.
        model = torch.compile(model, dynamic=True)
    keeper = BestKeeper(module, metric, config.train.early_stopping_patience,
                        changeable_names(module, strategy.changes_frozen_set))
    trainer = Trainer(model, module, optimizer, lr, unfreezing, loaders, accelerator, evaluate, keeper,
                      cache.cached_from, evaluate.weight, config.train, config.optim, config.seed, callbacks, progress,
                      started)
    return trainer, groups


def unfreezing_of(strategy, config: RunConfig, run_model: RunModel) -> Unfreezing:
    """The run's trainable set: fixed at the start, or grown by the strategy's own schedule (gradual)."""
    # a strategy's schedule reads a `run`: only the attributes it uses
    schedule = strategy.schedule(run_model.model, config, run_model.plan)
    if schedule is None:
        return FixedPlan(run_model.plan, run_model.trainable_params)
    return Scheduled(schedule, run_model.trainable_params)


def run_results(config: RunConfig, run_data: RunData, run_model: RunModel, trainer: Trainer, cache: CachePart,
                logits: dict, groups: list[dict], metric: str, timings: dict, started: float) -> dict:
    """metrics.json: val and test metrics, the history, what trained, timings, the data and machine."""
    model, keeper, history = run_model.model, trainer.keeper, trainer.history
    return {
        "val": trainer.evaluate("val", logits["val"]),
        "test": trainer.evaluate("test", logits["test"]),
        "history": history,
        "best_epoch": keeper.best_row["epoch"] if keeper.best_row else None,
        "selection_metric": metric,
        "num_layers": model.layout.num_layers,
        # gradual unfreezing only adds trainable layers: report what it trained by the end, and where it started
        "trainable_params": trainer.unfreezing.trainable_params(model),
        "trainable_params_at_start": run_model.trainable_params,
        "total_params": run_model.total_params,
        "setup_seconds": round(timings["setup_seconds"], 3),  # load, encode, cache fill (inside train_seconds)
        "train_seconds": round(timings["train_seconds"], 3),
        "final_eval_seconds": round(timings["final_eval_seconds"], 3),  # test (+ val if never evaluated)
        "epoch_eval_seconds": round(sum(row["eval_seconds"] for row in history), 3),  # every validation pass
        "run_seconds": round(time.perf_counter() - started, 3),  # the whole run: load, cache, train, final pass
        "max_length": run_data.max_length,
        "token_lengths": run_data.length_stats,
        "data": run_data.notes,
        "cache": cache.summary(model.pooling, config.train.cache_dtype),
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu_mb(),
        "parameter_groups": groups,
        "test_fingerprint": split_fingerprint(run_data.data, run_data.task),
        "data_fingerprint": data_fingerprint(run_data.data),  # train + val as read; a resumed study compares it
        "machine": machine_info(),
        "train_label_counts": train_label_counts(run_data.data),
    }


def describe_groups(groups: list[dict]) -> list[dict]:
    """The optimizer's parameter groups at the start (name, LR, weight decay, size): under `llrd` this is the
    per-layer LR ladder, so a reader can check what each depth trained with. Called after training, when the
    scheduler has moved `lr` (to 0 at the end of a linear decay), so the LR is `initial_lr`, the start value."""
    return [{"name": g["name"], "lr": g.get("initial_lr", g["lr"]), "weight_decay": g["weight_decay"],
             "params": int(sum(p.numel() for p in g["params"]))} for g in groups]


def changeable_names(model, changes_frozen_set: bool) -> set[str]:
    """Parameters that may change during the run (gradual unfreezing makes frozen ones trainable later)."""
    if changes_frozen_set:
        return {n for n, _ in model.named_parameters()}
    return {n for n, p in model.named_parameters() if p.requires_grad}
