"""One error family for everything a user can get wrong.

The CLI turns an `UnfreezeError` into a single line on stderr and exit code 2, so every message must name the
file / column / key / value at fault and, where there is one, the fix.
"""


class UnfreezeError(Exception):
    """A user-facing error: bad config, bad data, missing asset, refused overwrite."""


class ConfigError(UnfreezeError):
    """The YAML or an override does not validate."""


class DataError(UnfreezeError):
    """A data file, column or value is unusable."""


class AssetMissingError(UnfreezeError):
    """A built-in model or data set lives in a registry package that is not installed."""


class TrainingDivergedError(UnfreezeError):
    """The loss became NaN or infinite."""


class Pruned(Exception):
    """Not an error: a search's pruner stopped a run after an evaluation (`RunCallbacks.on_eval` returned True).
    Carries where it stopped, so the study can record the trial as "pruned at epoch k"."""

    def __init__(self, epoch: float, step: int, history: list[dict]):
        super().__init__(f"pruned at epoch {epoch:g} (step {step})")
        self.epoch, self.step, self.history = epoch, step, history


class DiskFullError(UnfreezeError):
    """The file system ran out of space (or quota) while writing; nothing finished was changed."""


class LockedError(UnfreezeError):
    """Another live process holds the study folder (its `.lock`): one study process per folder."""


class LockUnsupportedError(UnfreezeError):
    """The study folder's file system cannot lock files."""
