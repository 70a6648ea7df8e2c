"""One fine-tuning run, as a story: prepare → (cache the frozen prefix) → for each epoch: batches → forward →
loss → backward → clip → step → evaluate on val → keep the best → restore the best → test once → write.

The test split is evaluated exactly once, with the weights chosen on validation. Metrics are computed on the
whole split from gathered predictions (`accelerator.gather_for_metrics`, de-duplicated by example index). With
the activation cache, validation and the test pass read val/test's float32 cache (equal to the full forward), so
they cost only the layers that train; the reported val numbers are those of the best evaluation itself (same
weights, same forward), not a second pass.
"""

from __future__ import annotations

import logging

import math

import time

from dataclasses import dataclass

from pathlib import Path

from typing import Callable

import numpy as np

import torch



from torch.utils.data import DataLoader

from tqdm.auto import tqdm

from unfreeze.training.memory import peak_gpu_mb, peak_rss_mb, reset_peak_memory
from unfreeze.training.run_dir import (check_run_dir, data_fingerprint, is_new, machine_info, test_fingerprint,
                                        train_label_counts, write_run)

from unfreeze.config.schema import RunConfig

from unfreeze.data.encode import Collator, LengthGroupedBatchSampler

from unfreeze.errors import ConfigError, DataError, Pruned, TrainingDivergedError, UnfreezeError

from unfreeze.strategies import count_parameters, get_strategy, set_train_mode

from unfreeze.metrics.classification import LOWER_IS_BETTER, is_better, scalar_metrics

from unfreeze.training.optim import build_optimizer, build_scheduler, parameter_groups

from unfreeze.training.prepare import PreparedRun, load_data, prepare_run, seed_everything

from unfreeze.training.accelerator import make_accelerator

from unfreeze.training.cache import build_caches
from unfreeze.training.evaluate import collect_logits, evaluate_split, model_inputs
from unfreeze.training.loss import class_weight_tensor, loss_fn

log = logging.getLogger(__name__)



@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader
    test: DataLoader
    train_sampler: LengthGroupedBatchSampler



def make_loaders(run: PreparedRun, caches: dict | None) -> Loaders:
    t = run.config.train
    pad = run.tokenizer.pad_token_id or 0
    token_task = run.config.task == "token"

    def loader(split: str, shuffle: bool) -> tuple[DataLoader, LengthGroupedBatchSampler]:
        enc = run.encoded[split]
        sampler = LengthGroupedBatchSampler(
            enc.lengths, t.batch_size if shuffle else t.eval_batch_size, shuffle=shuffle, seed=run.config.seed,
            group_by_length=t.length_grouping, max_tokens=t.max_tokens_per_batch if shuffle else None)
        collate = Collator(enc, pad, caches.get(split) if caches else None, token_task)
        return DataLoader(list(range(len(enc))), batch_sampler=sampler, collate_fn=collate), sampler

    train_loader, train_sampler = loader("train", True)
    return Loaders(train_loader, loader("val", False)[0], loader("test", False)[0], train_sampler)



class BestKeeper:
    """Keeps the best weights in memory (only tensors that can change) and decides early stopping."""

    def __init__(self, model, metric: str, patience: int | None, names: set[str]):
        self.model, self.metric, self.patience = model, metric, patience
        self.names = names
        self.best_value: float | None = None
        self.best_metrics: dict | None = None
        self.best_row: dict | None = None
        self.best_logits: list | None = None
        self.state: dict[str, torch.Tensor] = {}
        self.stale = 0

    def update(self, metrics: dict, row: dict, logits: list | None = None) -> bool:
        """`train.metric` is known to be reported: `check_selection_metric` ran before the first step."""
        value = metrics[self.metric]
        if is_better(self.metric, value, self.best_value):
            self.best_value, self.best_metrics, self.best_row, self.stale = value, metrics, row, 0
            self.best_logits = logits
            self.state = {n: p.detach().clone() for n, p in self.model.named_parameters() if n in self.names}
            return True
        self.stale += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.stale >= self.patience

    def restore(self) -> None:
        with torch.no_grad():
            params = dict(self.model.named_parameters())
            for name, value in self.state.items():
                params[name].copy_(value)



def train(config: RunConfig, out_dir: str | Path, overwrite: bool = False, progress: bool = True,
          data=None, cache_root: str | Path | None = None, cache_top_ks: set[int] | None = None,
          run_info: dict | None = None, on_eval: Callable[[dict], bool] | None = None) -> dict:
    """Run one configuration and write the run folder (layout in `training/run_dir.py`). Returns `metrics.json`'s dict.

    `data` lets a study pass splits it already loaded (or a CV fold); `cache_top_ks` lists every `top_k` of the
    study (0 = head) so one forward pass fills the activation cache for all of them; `run_info` is written to
    `run.json` before the run is marked finished. `on_eval(row)` is called with each history row (a search's
    pruner); returning True stops the run with `Pruned`, and nothing is written."""
    threads = torch.get_num_threads()
    try:
        return _train(config, out_dir, overwrite, progress, data, cache_root, cache_top_ks, run_info, on_eval)
    finally:
        torch.set_num_threads(threads)  # one run's `train.threads` must not carry over to the study's next run


def _train(config: RunConfig, out_dir, overwrite, progress, data, cache_root, cache_top_ks, run_info,
           on_eval) -> dict:
    out = check_run_dir(out_dir, overwrite)
    new = is_new(out)
    started = time.perf_counter()
    reset_peak_memory()
    accelerator = make_accelerator(config)
    seed_everything(config.seed)
    data = data if data is not None else load_data(config)
    if len(data.test) == 0:
        raise DataError("the test split is empty: give data.test or a data.split.test fraction above 0 (a run "
                        "picks its best epoch on val and evaluates test once, after training)")
    run = prepare_run(config, data)
    weight = class_weight_tensor(run)
    metric = config.selection_metric_for(run.data.notes.get("scheme"))
    check_selection_metric(run, metric, weight)
    with accelerator.main_process_first():  # one process fills the on-disk cache; the others then read it
        cache_started = time.perf_counter()
        caches, cached_from, cache_computed = build_caches(run, accelerator, cache_root, progress, cache_top_ks)
        cache_seconds = time.perf_counter() - cache_started
    loaders = make_loaders(run, caches)
    model = run.model
    strategy = get_strategy(config.freeze.strategy)
    if strategy.one_process_reason and accelerator.num_processes > 1:
        raise UnfreezeError(f"freeze: {config.freeze.label} runs in one process only ({strategy.one_process_reason}")
    schedule = strategy.schedule(run)
    groups = parameter_groups(model, config)
    optimizer = build_optimizer(groups, config.optim)
    steps_per_epoch = math.ceil(len(loaders.train_sampler) / config.train.grad_accum_steps)
    scheduler = build_scheduler(optimizer, config.scheduler, steps_per_epoch * config.train.epochs,
                                maximize=metric not in LOWER_IS_BETTER)
    # Loaders go through Accelerate too: under `accelerate launch` each process then gets its shard of batches.
    # The step-wise scheduler is sized on the unsharded loader; prepared, Accelerate steps it once per process
    # per optimizer step, so warm-up and decay span the same share of training on 1 or N processes.
    model, optimizer, loaders.train, loaders.val, loaders.test = accelerator.prepare(
        model, optimizer, loaders.train, loaders.val, loaders.test)
    if config.scheduler.name != "plateau":
        scheduler = accelerator.prepare_scheduler(scheduler)
    if config.train.compile:
        # dynamic shapes: batches are padded per batch, so every length would otherwise be a new graph.
        # Train/eval mode and the frozen set are read from `run.model`, which the compiled module wraps.
        model = torch.compile(model, dynamic=True)
    keeper = BestKeeper(run.model, metric, config.train.early_stopping_patience, _changeable_names(run.model, config))
    history: list[dict] = []
    step, running, running_n = 0, 0.0, 0
    log.info("trainable parameters: %d of %d (%.3g%%)", run.trainable_params, run.total_params,
             100 * run.trainable_params / run.total_params)

    def evaluate_and_log(epoch: float) -> None:
        nonlocal running, running_n
        eval_started = time.perf_counter()
        logits = collect_logits(model, loaders.val, accelerator, cached_from, len(run.encoded["val"]),
                                "validating" if progress else None)
        val = evaluate_split(run, "val", logits, weight)
        row = {"epoch": round(epoch, 4), "step": step, "train_loss": running / max(running_n, 1),
               **{f"val_{k}": v for k, v in scalar_metrics(val).items()},
               **current_lrs(optimizer, config), "seconds": round(time.perf_counter() - started, 3),
               "eval_seconds": round(time.perf_counter() - eval_started, 3)}
        if schedule is not None:
            row["unfrozen_layers"] = schedule.unfrozen
            row["embeddings_trainable"] = schedule.plan.embeddings_trainable
        history.append(row)
        keeper.update(val, row, logits)
        if on_eval is not None and on_eval(row):
            raise Pruned(row["epoch"], step, history)
        if config.scheduler.name == "plateau":
            scheduler.step(val[metric])
        running, running_n = 0.0, 0

    for epoch in range(config.train.epochs):
        if schedule is not None:
            schedule.on_epoch_start(epoch, optimizer, scheduler)
        set_train_mode(run.model, run.plan if schedule is None else schedule.plan)
        loaders.train_sampler.set_epoch(epoch)
        n_batches, accum, stopped = len(loaders.train), config.train.grad_accum_steps, False
        seed_everything(config.seed * 1000 + epoch)  # dropout masks reproducible per epoch
        bar = tqdm(loaders.train, desc=f"epoch {epoch + 1}/{config.train.epochs}", disable=not progress,
                   leave=False, dynamic_ncols=True)
        for i, batch in enumerate(bar):
            with accelerator.autocast():
                logits = model(**model_inputs(batch, cached_from))
                loss = loss_fn(logits, batch["labels"], weight)
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"loss became {loss.item()} at step {step + 1} (epoch {epoch + 1}); lower optim.lr, keep "
                    "train.max_grad_norm set, or check the labels")
            window = min(accum, n_batches - (i // accum) * accum)  # the epoch's last window may be shorter
            accelerator.backward(loss / window)
            running += loss.item()
            running_n += 1
            if (i + 1) % accum == 0 or i + 1 == n_batches:
                if config.train.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), config.train.max_grad_norm)
                optimizer.step()
                if config.scheduler.name != "plateau":
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                if schedule is not None and schedule.on_step(step, optimizer, scheduler):
                    set_train_mode(run.model, schedule.plan)  # the newly unfrozen layer trains with dropout
                if step % config.train.log_every_steps == 0:
                    bar.set_postfix(loss=f"{running / max(running_n, 1):.4f}")
                if config.train.eval_every_steps and step % config.train.eval_every_steps == 0:
                    evaluate_and_log(epoch + (i + 1) / n_batches)
                    set_train_mode(run.model, run.plan if schedule is None else schedule.plan)
                    if keeper.should_stop and i + 1 < n_batches:  # patience counts evaluations, not epochs
                        stopped = True
                        break
        bar.close()
        if running_n and not stopped:
            evaluate_and_log(epoch + 1)
        if keeper.should_stop:
            log.info("early stopping at step %d (epoch %d): no %s improvement in %d evaluations", step, epoch + 1,
                     metric, keeper.stale)
            break
    train_seconds = time.perf_counter() - started
    keeper.restore()
    # The final pass reads val/test's float32 cache when there is one (the states the full forward computes, so
    # `unfreeze predict best/` reproduces predictions_test.csv), running only the layers that train. Val: the
    # best evaluation's own logits — the restored weights through the same forward would give them again.
    eval_started = time.perf_counter()
    val_logits = keeper.best_logits
    if val_logits is None:
        val_logits = collect_logits(model, loaders.val, accelerator, cached_from, len(run.encoded["val"]),
                                    "final pass (val)" if progress else None)
    test_logits = collect_logits(model, loaders.test, accelerator, cached_from, len(run.encoded["test"]),
                                 "final pass (test)" if progress else None)
    final_eval_seconds = time.perf_counter() - eval_started
    results = {
        "val": evaluate_split(run, "val", val_logits, weight),
        "test": evaluate_split(run, "test", test_logits, weight),
        "history": history,
        "best_epoch": keeper.best_row["epoch"] if keeper.best_row else None,
        "selection_metric": metric,
        "num_layers": run.model.layout.num_layers,
        # gradual unfreezing only adds trainable layers: report what it trained by the end, and where it started
        "trainable_params": trainable_now(run.model) if schedule is not None else run.trainable_params,
        "trainable_params_at_start": run.trainable_params,
        "total_params": run.total_params,
        "train_seconds": round(train_seconds, 3),
        "final_eval_seconds": round(final_eval_seconds, 3),  # the final pass: test (+ val if never evaluated)
        "epoch_eval_seconds": round(sum(row["eval_seconds"] for row in history), 3),  # every validation pass
        "run_seconds": round(time.perf_counter() - started, 3),  # the whole run: load, cache, train, final pass
        "max_length": run.max_length,
        "token_lengths": run.length_stats,
        "data": run.data.notes,
        "cache": cache_summary(run, caches, cached_from, cache_computed, cache_seconds),
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu_mb(),
        "parameter_groups": describe_groups(groups),
        "test_fingerprint": test_fingerprint(run),
        "data_fingerprint": data_fingerprint(run.data),  # train + val as read; a resumed study compares it
        "machine": machine_info(),
        "train_label_counts": train_label_counts(run.data),
    }
    if accelerator.is_main_process:
        write_run(out, run, run.model, results,
                          {"val": val_logits, "test": test_logits}, run_info, new=new)
    return results



def current_lrs(optimizer, config: RunConfig) -> dict:
    """`lr`: the encoder's base LR after the schedule (what `optim.lr` has become); `head_lr` likewise. Read from
    the schedule factor of a group, so it keeps its meaning when gradual unfreezing appends groups or LLRD
    spreads per-layer LRs."""
    group = optimizer.param_groups[0]
    factor = group["lr"] / group["initial_lr"] if group.get("initial_lr") else 1.0
    return {"lr": config.optim.lr * factor, "head_lr": (config.optim.head_lr or config.optim.lr) * factor}



def check_selection_metric(run: PreparedRun, metric: str, weight) -> None:
    """Fail before the first step, not after epoch 1, when `train.metric` is not a metric this task reports:
    the metric names come from evaluating constant predictions on the validation split."""
    n_classes = len(run.label_names)
    enc = run.encoded["val"]
    if run.config.task == "token":
        dummy = [np.zeros((int(n), n_classes), dtype=np.float32) for n in enc.lengths]
    else:
        dummy = [np.zeros(n_classes, dtype=np.float32)] * len(enc)
    reported = scalar_metrics(evaluate_split(run, "val", dummy, weight))
    if metric not in reported:
        raise ConfigError(f"train.metric={metric!r} is not a metric of this {run.config.task} task; "
                          f"choose one of {sorted(reported)}")



def describe_groups(groups: list[dict]) -> list[dict]:
    """The optimizer's parameter groups at the start (name, LR, weight decay, size): under `llrd` this is the
    per-layer LR ladder, so a reader can check what each depth trained with. Called after training, when the
    scheduler has moved `lr` (to 0 at the end of a linear decay), so the LR is `initial_lr`, the start value."""
    return [{"name": g["name"], "lr": g.get("initial_lr", g["lr"]), "weight_decay": g["weight_decay"],
             "params": int(sum(p.numel() for p in g["params"]))} for g in groups]



def trainable_now(model) -> int:
    return count_parameters(model)[0]



def _changeable_names(model, config: RunConfig) -> set[str]:
    """Parameters that may change during the run (gradual unfreezing makes frozen ones trainable later)."""
    if get_strategy(config.freeze.strategy).changes_frozen_set:
        return {n for n, _ in model.named_parameters()}
    return {n for n, p in model.named_parameters() if p.requires_grad}



def cache_summary(run: PreparedRun, caches: dict | None, cached_from: int | None, computed: int,
                  seconds: float) -> dict:
    """metrics.json "cache": whether it served the run, from which layer, what the head read (`pooled`: `mean` /
    `cls` vectors, or null for token states), the dtypes per split, examples computed now and the fill time."""
    summary = {"used": cached_from is not None, "from_layer": cached_from, "computed_examples": computed,
               "fill_seconds": round(seconds, 3)}
    if caches:
        from unfreeze.training.cache import EVAL_DTYPE

        summary.update(pooled=run.model.pooling if caches["train"].pooled else None,
                       dtypes={"train": run.config.train.cache_dtype, "val": EVAL_DTYPE, "test": EVAL_DTYPE})
    return summary
