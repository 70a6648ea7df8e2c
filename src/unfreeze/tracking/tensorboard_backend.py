"""TensorBoard backend: one event folder per run (see the package docstring)."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from unfreeze.tracking.common import (INSTALL_HINT, BackendUnavailable, _Part, safe_name)

# ---------------------------------------------------------------------------------------------------------
# TensorBoard


FINISHED_MARKER = ".unfreeze-finished"


class TensorboardBackend:
    """Event files under `<root_dir>/tensorboard/[<study>/]<run name>`: one scalar per metric per evaluation
    (x axis = optimizer step), the final metrics at the last step, and the params as HParams at the end.

    A run folder holding `.unfreeze-finished` is skipped on resume; one without it (an interrupted attempt)
    has its old event files removed first, so TensorBoard does not draw the curve twice."""

    name = "tensorboard"

    def __init__(self, root_dir: Path | None, experiment: str):
        if importlib.util.find_spec("tensorboard") is None:
            raise BackendUnavailable(f"the package is not installed; {INSTALL_HINT['tensorboard']}")
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401 — fails early if torch's bridge breaks

        self.root = (root_dir / "tensorboard") if root_dir is not None else Path("runs")
        self.fix = f"check that {self.root} is writable"

    def _folder(self, name: str, parent: _Part | None, run_id: str | None) -> Path:
        leaf = safe_name(name)
        if run_id and run_id not in leaf:
            leaf = f"{leaf}-{safe_name(run_id, 40)}"
        return (parent.ref / leaf) if parent is not None else self.root / leaf

    @staticmethod
    def _clear_events(folder: Path) -> None:
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()

    def start_study(self, name: str, params: dict[str, str], tags: dict[str, str], study_dir: str | None) -> _Part:
        return _Part(self.root / safe_name(name), extra={"params": params})

    def start_run(self, name: str, params: dict[str, str], tags: dict[str, str], parent: _Part | None,
                  run_id: str | None) -> _Part:
        from torch.utils.tensorboard import SummaryWriter

        folder = self._folder(name, parent, run_id)
        if (folder / FINISHED_MARKER).exists():
            return _Part(folder, skipped=True)
        if folder.exists():
            self._clear_events(folder)
        writer = SummaryWriter(log_dir=str(folder))
        return _Part(folder, extra={"writer": writer, "hparams": {**params, **tags}})

    def log_metrics(self, part: _Part, metrics: dict[str, float], step: int) -> None:
        writer = part.extra["writer"]
        for key, value in metrics.items():
            writer.add_scalar(key, value, global_step=step)
        part.last_step = max(part.last_step, step)

    def _write_hparams(self, writer, hparams: dict[str, Any], metrics: dict[str, float], step: int) -> None:
        from torch.utils.tensorboard.summary import hparams as hparams_summary

        for key, value in metrics.items():
            writer.add_scalar(key, value, global_step=step)
        exp, ssi, sei = hparams_summary(hparams, metrics)
        for summary in (exp, ssi, sei):
            writer.file_writer.add_summary(summary, step)

    def end_run(self, part: _Part, metrics: dict[str, float], status: str) -> None:
        writer = part.extra["writer"]
        try:
            self._write_hparams(writer, {**part.extra["hparams"], "status": status}, metrics, part.last_step)
        finally:
            writer.close()
        (part.ref / FINISHED_MARKER).write_text(status + "\n")

    def end_study(self, part: _Part, metrics: dict[str, float], artifacts: list[Path], status: str) -> None:
        """Study-level numbers go to `<study>/_study` (replaced on each study run: it is a summary)."""
        from torch.utils.tensorboard import SummaryWriter

        if not metrics:
            return
        folder = part.ref / "_study"
        if folder.exists():
            self._clear_events(folder)
        with SummaryWriter(log_dir=str(folder)) as writer:
            self._write_hparams(writer, {**part.extra["params"], "status": status}, metrics, 0)
