"""Weights & Biases backend: one W&B run per unfreeze run, grouped by study (see the package docstring)."""
from __future__ import annotations

import importlib.util
import netrc
import os
import re
from pathlib import Path

from unfreeze.tracking.common import (INSTALL_HINT, WANDB_MAX_TAG_LENGTH, BackendUnavailable, _Part, stable_id)

# ---------------------------------------------------------------------------------------------------------
# Weights & Biases


class WandbBackend:
    """One W&B run per unfreeze run (`group` = study, `job_type` = arm), finished at `end_run`.

    Offline unless the user chose: with neither WANDB_MODE nor an API key (WANDB_API_KEY or a `wandb login`
    netrc entry) runs are written offline under `<root_dir>/wandb` (`wandb sync` uploads them later). Run ids
    are stable hashes of (study dir, run_id), so a later sync of a redone run updates the same W&B run. A run
    is skipped on resume when its marker `<root_dir>/wandb/.unfreeze/<id>.finished` exists."""

    name = "wandb"

    def __init__(self, root_dir: Path | None, experiment: str):
        if importlib.util.find_spec("wandb") is None:
            raise BackendUnavailable(f"the package is not installed; {INSTALL_HINT['wandb']}")
        import wandb  # noqa: F401 — import errors are reported here, not at the first run

        self.root = root_dir
        if root_dir is not None:
            root_dir.mkdir(parents=True, exist_ok=True)
        self.project = re.sub(r"[/\\#?%:]", "_", experiment)[:128] or "unfreeze"
        self.mode = None if (os.environ.get("WANDB_MODE") or _wandb_key_present()) else "offline"
        self.fix = "run `wandb login`, or set WANDB_MODE=offline"
        self.markers = (root_dir / "wandb" / ".unfreeze") if root_dir is not None else None

    def _init(self, **kwargs):
        import wandb

        settings = wandb.Settings(silent=True, console="off",
                                  init_timeout=float(os.environ.get("WANDB_INIT_TIMEOUT", "60")))
        if self.root is not None:
            kwargs["dir"] = str(self.root)
        if self.mode is not None:
            kwargs["mode"] = self.mode
        return wandb.init(project=self.project, reinit="create_new", settings=settings, **kwargs)

    def start_study(self, name: str, params: dict[str, str], tags: dict[str, str], study_dir: str | None) -> _Part:
        return _Part(name[:128], extra={"params": params, "tags": tags, "key": study_dir or name})

    def start_run(self, name: str, params: dict[str, str], tags: dict[str, str], parent: _Part | None,
                  run_id: str | None) -> _Part:
        key = stable_id(parent.extra["key"] if parent is not None else "", run_id) if run_id else None
        marker = (self.markers / f"{key}.finished") if (key and self.markers is not None) else None
        if marker is not None and marker.exists():
            return _Part(None, skipped=True)
        job_type = tags.get("arm", "run")[:WANDB_MAX_TAG_LENGTH]
        run = self._init(name=name, id=key, group=parent.ref if parent is not None else None, job_type=job_type,
                         config={**params, **tags},
                         tags=[f"{k}={v}"[:WANDB_MAX_TAG_LENGTH] for k, v in tags.items()])
        return _Part(run, extra={"marker": marker})

    def log_metrics(self, part: _Part, metrics: dict[str, float], step: int) -> None:
        part.ref.log(metrics, step=step)
        part.last_step = max(part.last_step, step)

    def end_run(self, part: _Part, metrics: dict[str, float], status: str) -> None:
        part.ref.summary.update(metrics)
        part.ref.finish(exit_code=0 if status == "FINISHED" else 1)
        marker = part.extra.get("marker")
        if marker is not None and status == "FINISHED":
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(status + "\n")

    def end_study(self, part: _Part, metrics: dict[str, float], artifacts: list[Path], status: str) -> None:
        """W&B has no parent runs: the study's numbers and files go to one short run (job_type `study`)."""
        files = [p for p in artifacts if p.is_file()]
        if not metrics and not files:
            return
        run = self._init(name=f"{part.ref} (study)", group=part.ref, job_type="study", config=part.extra["params"],
                         tags=[f"{k}={v}"[:WANDB_MAX_TAG_LENGTH] for k, v in part.extra["tags"].items()])
        try:
            run.summary.update(metrics)
            for path in files:
                run.save(str(path), base_path=str(path.parent), policy="now")
        finally:
            run.finish(exit_code=0 if status == "FINISHED" else 1)


def _wandb_key_present() -> bool:
    """True when W&B could log online: WANDB_API_KEY, or a netrc entry for the W&B host (`wandb login`)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = re.sub(r"^https?://", "", os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).split("/")[0]
    try:
        path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
        return os.path.exists(path) and netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False
