"""What changes while a run trains, behind two small objects the loop calls without asking what kind they are.

`LRSchedule`: the learning-rate schedule from `scheduler:`. Step-wise schedules (linear, cosine, constant) move
after every optimizer step; `plateau` moves after every evaluation, with the validation metric. The loop calls
both hooks; each kind acts on its own.

`Unfreezing`: which parameters train, from the strategy (`freeze:`). Most strategies fix the set at the start
(`FixedPlan`); gradual unfreezing grows it per epoch or step (`Scheduled`, around the strategy's own schedule) and
records how far it got in each history row.
"""
from __future__ import annotations

from torch.optim.lr_scheduler import ReduceLROnPlateau

from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.strategies import FreezePlan, count_parameters
from unfreeze.training.optim import build_scheduler


class LRSchedule:
    """`scheduler`: the torch scheduler (after `prepare`, Accelerate's wrapper for step-wise ones), which gradual
    unfreezing extends when it adds parameter groups."""

    def __init__(self, cfg, optimizer, total_steps: int, metric: str):
        self.per_eval = cfg.name == "plateau"
        self.scheduler = build_scheduler(optimizer, cfg, total_steps, maximize=metric not in LOWER_IS_BETTER)
        self.metric = metric

    def prepare(self, accelerator) -> None:
        """Step-wise schedules go through Accelerate (stepped once per process per optimizer step, so warm-up and
        decay span the same share of training on 1 or N processes); plateau reads the metric and stays as is."""
        if not self.per_eval:
            self.scheduler = accelerator.prepare_scheduler(self.scheduler)

    def after_update(self) -> None:
        if not self.per_eval:
            self.scheduler.step()

    def after_eval(self, val: dict) -> None:
        if self.per_eval:
            self.scheduler.step(val[self.metric])


class Unfreezing:
    """The trainable set of a run, as the loop sees it: `plan` (what trains now: `set_train_mode` keeps the rest in
    eval mode), hooks at each epoch start and optimizer step (True: the set changed), the history row's fields,
    and the trainable parameters to report at the end."""

    plan: FreezePlan
    trainable_at_start: int

    def on_epoch_start(self, epoch: int, optimizer, lr: LRSchedule) -> bool:
        return False

    def on_step(self, step: int, optimizer, lr: LRSchedule) -> bool:
        return False

    def history_fields(self) -> dict:
        return {}

    def trainable_params(self, model) -> int:
        return self.trainable_at_start


class FixedPlan(Unfreezing):
    """A strategy whose trainable set is fixed at the start (every strategy but gradual unfreezing)."""

    def __init__(self, plan: FreezePlan, trainable_at_start: int):
        self.plan = plan
        self.trainable_at_start = trainable_at_start


class Scheduled(Unfreezing):
    """A strategy's schedule (`Strategy.schedule`: `on_epoch_start`, `on_step`, `plan`, `unfrozen`) that makes more
    parameters trainable as the run goes."""

    def __init__(self, schedule, trainable_at_start: int):
        self.schedule = schedule
        self.trainable_at_start = trainable_at_start

    @property
    def plan(self) -> FreezePlan:
        return self.schedule.plan

    def on_epoch_start(self, epoch: int, optimizer, lr: LRSchedule) -> bool:
        return self.schedule.on_epoch_start(epoch, optimizer, lr.scheduler)

    def on_step(self, step: int, optimizer, lr: LRSchedule) -> bool:
        return self.schedule.on_step(step, optimizer, lr.scheduler)

    def history_fields(self) -> dict:
        return {"unfrozen_layers": self.schedule.unfrozen,
                "embeddings_trainable": self.schedule.plan.embeddings_trainable}

    def trainable_params(self, model) -> int:
        """What it trained by the end (it only adds trainable layers; where it started is reported beside)."""
        return count_parameters(model)[0]
