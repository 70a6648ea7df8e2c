"""unfreeze: fine-tuning studies of pretrained transformer encoders.

Python API mirrors the CLI: `unfreeze.train(config, out_dir)`, `unfreeze.run_study(study, out_dir)`,
`unfreeze.load_run_config(path)`, `unfreeze.load(path)` (a saved model: an `UnfreezeModel` with `predict`,
`predict_proba`, `save_pretrained`, `export`); `unfreeze.parse_run_config(dict)` /
`unfreeze.parse_study_config(dict)` build a config from plain data (same validation and error messages as the YAML
loaders).
"""
__version__ = "0.1.0"

from unfreeze.errors import UnfreezeError  # noqa: E402

# Loaded on first use (PEP 562): `import unfreeze.io` (fault-test child processes, the CLI's error path) must not
# pay for pydantic + the config schema.
_LAZY = {"RunConfig": "unfreeze.config.schema", "StudyConfig": "unfreeze.config.study",
         "load_run_config": "unfreeze.config.load", "load_study_config": "unfreeze.config.load",
         "parse_run_config": "unfreeze.config.load", "parse_study_config": "unfreeze.config.load",
         "UnfreezeModel": "unfreeze.model.unfreeze_model"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'unfreeze' has no attribute {name!r}")


def train(config, out_dir, **kwargs):
    """Run one configuration; see `unfreeze.training.run.train`."""
    from unfreeze.training.run import train as _train

    return _train(config, out_dir, **kwargs)


def load(path, arm=None):
    """A saved model (a run's best/ folder, a run folder, or a study folder with `arm`) as an `UnfreezeModel`;
    see `unfreeze.model.unfreeze_model`."""
    from unfreeze.model.unfreeze_model import UnfreezeModel

    return UnfreezeModel.from_pretrained(path, arm=arm)


def run_study(study, out_dir, **kwargs):
    """Run (or resume) a study; see `unfreeze.study.runner.run_study`."""
    from unfreeze.study.runner import run_study as _run_study

    return _run_study(study, out_dir, **kwargs)


__all__ = ["RunConfig", "StudyConfig", "UnfreezeError", "UnfreezeModel", "load", "load_run_config", "load_study_config",
           "parse_run_config", "parse_study_config", "train",
           "run_study", "__version__"]
