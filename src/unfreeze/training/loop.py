"""The training loop of one run, as a story: for each epoch, batches → forward → loss → backward → (clip, step)
→ evaluate on val → keep the best → stop early when patience runs out.

What differs between runs sits behind the parts the loop is given: the LR schedule and the trainable set
(`training/schedules.py`), the activation cache (`cached_from`), the study's pruner (`RunCallbacks.on_eval`).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from unfreeze.data.encode import Collator, LengthGroupedBatchSampler
from unfreeze.errors import Pruned, TrainingDivergedError
from unfreeze.metrics.classification import is_better, scalar_metrics
from unfreeze.strategies import set_train_mode
from unfreeze.tasks import get_task
from unfreeze.training.callbacks import RunCallbacks
from unfreeze.training.evaluate import Evaluator, collect_logits, model_inputs
from unfreeze.training.loss import loss_fn
from unfreeze.training.prepare import RunData, seed_everything
from unfreeze.training.schedules import LRSchedule, Unfreezing

log = logging.getLogger(__name__)


@dataclass
class Loaders:
    train: DataLoader
    val: DataLoader
    test: DataLoader
    train_sampler: LengthGroupedBatchSampler
    sizes: dict[str, int]  # examples per split (a prepared loader may pad or shard its batches)


def make_loaders(run_data: RunData, train_cfg, seed: int, pad_id: int, caches: dict | None) -> Loaders:
    """Length-grouped batches of each split (`train:` sizes), reading the cached states where there are some
    (`caches`: {split: SplitCache} of the run's cache part, or None)."""
    token_task = get_task(run_data.task).per_token

    def loader(split: str, shuffle: bool) -> tuple[DataLoader, LengthGroupedBatchSampler]:
        enc = run_data.encoded[split]
        sampler = LengthGroupedBatchSampler(
            enc.lengths, train_cfg.batch_size if shuffle else train_cfg.eval_batch_size, shuffle=shuffle, seed=seed,
            group_by_length=train_cfg.length_grouping,
            max_tokens=train_cfg.max_tokens_per_batch if shuffle else None)
        collate = Collator(enc, pad_id, caches.get(split) if caches else None, token_task)
        return DataLoader(list(range(len(enc))), batch_sampler=sampler, collate_fn=collate), sampler

    train_loader, train_sampler = loader("train", True)
    sizes = {split: len(enc) for split, enc in run_data.encoded.items()}
    return Loaders(train_loader, loader("val", False)[0], loader("test", False)[0], train_sampler, sizes)


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
        """`train.metric` is known to be reported: `Evaluator.check_metric` ran before the first step."""
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


def current_lrs(optimizer, optim_cfg) -> dict:
    """`lr`: the encoder's base LR after the schedule (what `optim.lr` has become); `head_lr` likewise. Read from
    the schedule factor of a group, so it keeps its meaning when gradual unfreezing appends groups or LLRD
    spreads per-layer LRs."""
    group = optimizer.param_groups[0]
    factor = group["lr"] / group["initial_lr"] if group.get("initial_lr") else 1.0
    return {"lr": optim_cfg.lr * factor, "head_lr": (optim_cfg.head_lr or optim_cfg.lr) * factor}


@dataclass
class Trainer:
    """The loop's parts. `model`: what the batches go through (prepared by Accelerate, maybe compiled); `module`:
    the classifier itself (train/eval modes, the frozen set); `seed`: the run seed (per-epoch dropout masks)."""

    model: torch.nn.Module
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    lr: LRSchedule
    unfreezing: Unfreezing
    loaders: Loaders
    accelerator: object
    evaluate: Evaluator
    keeper: BestKeeper
    cached_from: int | None
    weight: torch.Tensor | None
    train_cfg: object
    optim_cfg: object
    seed: int
    callbacks: RunCallbacks
    progress: bool
    started: float

    def __post_init__(self):
        self.history: list[dict] = []
        self.step, self.running, self.running_n = 0, 0.0, 0

    def run(self) -> list[dict]:
        """Every epoch, or until early stopping; returns the history (one row per evaluation)."""
        for epoch in range(self.train_cfg.epochs):
            self.run_epoch(epoch)
            if self.keeper.should_stop:
                log.info("early stopping at step %d (epoch %d): no %s improvement in %d evaluations", self.step,
                         epoch + 1, self.keeper.metric, self.keeper.stale)
                break
        return self.history

    def run_epoch(self, epoch: int) -> None:
        """One pass over the training batches; evaluates every `train.eval_every_steps` and at the end."""
        self.unfreezing.on_epoch_start(epoch, self.optimizer, self.lr)
        set_train_mode(self.module, self.unfreezing.plan)
        self.loaders.train_sampler.set_epoch(epoch)
        n_batches = len(self.loaders.train)
        seed_everything(self.seed * 1000 + epoch)  # dropout masks reproducible per epoch
        bar = tqdm(self.loaders.train, desc=f"epoch {epoch + 1}/{self.train_cfg.epochs}",
                   disable=not self.progress, leave=False, dynamic_ncols=True)
        stopped = False
        for i, batch in enumerate(bar):
            if self.train_batch(batch, i, n_batches, epoch):
                self.after_update(bar)
                if self.eval_due():
                    self.evaluate_now(epoch + (i + 1) / n_batches)
                    if self.keeper.should_stop and i + 1 < n_batches:  # patience counts evaluations, not epochs
                        stopped = True
                        break
        bar.close()
        if self.running_n and not stopped:
            self.evaluate_and_log(epoch + 1)

    def train_batch(self, batch: dict, i: int, n_batches: int, epoch: int) -> bool:
        """Forward, loss and backward of batch `i`; True when it closes an accumulation window (time to step)."""
        accum = self.train_cfg.grad_accum_steps
        with self.accelerator.autocast():
            logits = self.model(**model_inputs(batch, self.cached_from))
            loss = loss_fn(logits, batch["labels"], self.weight)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"loss became {loss.item()} at step {self.step + 1} (epoch {epoch + 1}); lower optim.lr, keep "
                "train.max_grad_norm set, or check the labels")
        window = min(accum, n_batches - (i // accum) * accum)  # the epoch's last window may be shorter
        self.accelerator.backward(loss / window)
        self.running += loss.item()
        self.running_n += 1
        return (i + 1) % accum == 0 or i + 1 == n_batches

    def after_update(self, bar) -> None:
        """The optimizer step of an accumulation window, then the schedules that follow steps."""
        if self.train_cfg.max_grad_norm:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.train_cfg.max_grad_norm)
        self.optimizer.step()
        self.lr.after_update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        if self.unfreezing.on_step(self.step, self.optimizer, self.lr):
            set_train_mode(self.module, self.unfreezing.plan)  # the newly unfrozen layer trains with dropout
        if self.step % self.train_cfg.log_every_steps == 0:
            bar.set_postfix(loss=f"{self.running / max(self.running_n, 1):.4f}")

    def eval_due(self) -> bool:
        every = self.train_cfg.eval_every_steps
        return bool(every) and self.step % every == 0

    def evaluate_now(self, epoch: float) -> None:
        """Evaluate on val, add a history row, keep the best, ask the study's pruner; training goes on after."""
        self.evaluate_and_log(epoch)
        set_train_mode(self.module, self.unfreezing.plan)

    def evaluate_and_log(self, epoch: float) -> None:
        eval_started = time.perf_counter()
        logits = self.logits("val", "validating")
        val = self.evaluate("val", logits)
        row = {"epoch": round(epoch, 4), "step": self.step, "train_loss": self.running / max(self.running_n, 1),
               **{f"val_{k}": v for k, v in scalar_metrics(val).items()},
               **current_lrs(self.optimizer, self.optim_cfg), "seconds": round(time.perf_counter() - self.started, 3),
               "eval_seconds": round(time.perf_counter() - eval_started, 3), **self.unfreezing.history_fields()}
        self.history.append(row)
        self.keeper.update(val, row, logits)
        if self.callbacks.on_eval is not None and self.callbacks.on_eval(row):  # the study's pruner
            raise Pruned(row["epoch"], self.step, self.history)
        self.lr.after_eval(val)
        self.running, self.running_n = 0.0, 0

    def logits(self, split: str, desc: str) -> list:
        """Every example's logits of `split` (val or test) through the model as it is now."""
        return collect_logits(self.model, getattr(self.loaders, split), self.accelerator, self.cached_from,
                              self.loaders.sizes[split], desc if self.progress else None)
