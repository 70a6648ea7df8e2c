"""unfreeze: fine-tuning studies of pretrained transformer encoders.

Python API mirrors the CLI: `unfreeze.train(config, out_dir)`, `unfreeze.run_study(study, out_dir)`,
`unfreeze.load_run_config(path)`; `unfreeze.parse_run_config(dict)` / `unfreeze.parse_study_config(dict)` build
a config from plain data (same validation and error messages as the YAML loaders).
"""
__version__ = "0.1.0"

from unfreeze.config.schema import RunConfig, StudyConfig  # noqa: E402
from unfreeze.config.load import (load_run_config, load_study_config, parse_run_config,  # noqa: E402
                                  parse_study_config)
from unfreeze.errors import UnfreezeError  # noqa: E402


def train(config, out_dir, **kwargs):
    """Run one configuration; see `unfreeze.training.run.train`."""
    from unfreeze.training.run import train as _train

    return _train(config, out_dir, **kwargs)


def run_study(study, out_dir, **kwargs):
    """Run (or resume) a study; see `unfreeze.study.runner.run_study`."""
    from unfreeze.study.runner import run_study as _run_study

    return _run_study(study, out_dir, **kwargs)


__all__ = ["RunConfig", "StudyConfig", "UnfreezeError", "load_run_config", "load_study_config",
           "parse_run_config", "parse_study_config", "train",
           "run_study", "__version__"]
