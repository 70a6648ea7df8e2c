"""A search trial as a run: the planned run of one Optuna trial, and what its run needs besides a grid run's —
the pruner fed after every evaluation, and `pruned.json` when the pruner stops it.

It travels to wherever the run runs (this process, or a Ray worker: the trial is picklable). In the driver's
process it reports through the driver's own Optuna trial; in a worker it opens the study's storage by URL (a path
every node sees, as for the run folders). Asking and telling stay with the driver (study/trials.py).
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unfreeze.errors import Pruned
from unfreeze.io import write_json
from unfreeze.study.grid import PlannedRun

log = logging.getLogger(__name__)


@dataclass
class TrialRef:
    """Where to report a trial's evaluations: its storage, study and id, the pruner that judges it, the metric."""
    storage: str
    study_name: str
    trial_id: int
    number: int
    metric: str
    pruner: Any
    local: Any = field(default=None, repr=False, compare=False)  # the driver's optuna Trial; never pickled

    def __getstate__(self) -> dict:
        return {**self.__dict__, "local": None}

    def handle(self):
        """The Optuna trial to report to: the driver's own, else one opened on the storage (a Ray worker)."""
        if self.local is None:
            import optuna

            study = optuna.load_study(study_name=self.study_name, storage=self.storage, pruner=self.pruner)
            self.local = optuna.trial.Trial(study, self.trial_id)
        return self.local


@dataclass
class TrialRun(PlannedRun):
    """The run of one search trial (the study's first seed); `info` says which trial."""
    trial: TrialRef | None = None

    @property
    def info(self) -> dict:
        return {**super().info, "trial": self.trial.number}

    def started(self) -> dict:
        """Called where the run starts: records that process on the trial, and returns `train`'s pruning hook."""
        trial = self.trial.handle()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        return {"on_eval": self.on_eval}

    def on_eval(self, row: dict) -> bool:
        """Feed the pruner one evaluation; True stops the run (`train` raises `Pruned`)."""
        import optuna

        value = row.get(f"val_{self.trial.metric}")
        if value is None:
            return False
        try:
            trial = self.trial.handle()
            trial.report(value, row["step"])
            return trial.should_prune()
        except optuna.exceptions.UpdateFinishedTrialError:  # failed as stale by another process: finish the run
            return False
        except optuna.exceptions.StorageInternalError:  # the storage broke (deleted?): finish and keep the run;
            return False  # telling its result then stops the search in one line (search_identity.storage_errors)

    def pruned(self, run_dir: Path, stop: Pruned, started: float) -> None:
        """The pruner stopped the run: where, and its history so far, for results.csv and the report."""
        write_json(run_dir / "pruned.json", {"info": self.info, "epoch": stop.epoch, "step": stop.step,
                                             "metric": self.trial.metric, "history": stop.history,
                                             "run_seconds": round(time.perf_counter() - started, 3)})
