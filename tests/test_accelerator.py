"""`train.mixed_precision` within one process: Accelerate fixes its state once per process, so a local study with
a grid over `train.mixed_precision` failed its second arm ("AcceleratorState has already been initialized");
each run now starts from a fresh Accelerate state (training/accelerator.py)."""
import json

from tiny import run_config
from unfreeze.config.load import parse_run_config
from unfreeze.config.study import StudyConfig
from unfreeze.study.runner import run_study
from unfreeze.training.accelerator import make_accelerator


def test_each_run_gets_the_precision_it_asks_for_in_one_process(tiny_bert, sentiment_csv):
    precisions = []
    for precision in ("bf16", "no", "bf16"):
        cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"mixed_precision": precision,
                                                                           "device": "cpu", "threads": 1}))
        precisions.append(make_accelerator(cfg).mixed_precision)
    assert precisions == ["bf16", "no", "bf16"]


def test_a_local_study_over_mixed_precision_finishes_both_arms(tiny_bert, sentiment_csv, tmp_path):
    """Both arms finish in this one process, and the bf16 arm really ran under bf16: same seed and data, yet its
    training losses differ from full precision's."""
    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
    study = StudyConfig.model_validate({"name": "precision", "base": base, "baseline": False,
                                        "grid": {"train.mixed_precision": ["no", "bf16"]}})
    out = tmp_path / "study"
    results = run_study(study, out, progress=False, echo=lambda *_: None)
    assert results.attrs["failed_runs"] == 0 and len(results) == 2
    losses = {}
    for run in out.glob("runs/*"):
        arm = json.loads((run / "run.json").read_text())["overrides"]["train.mixed_precision"]
        history = json.loads((run / "metrics.json").read_text())["history"]
        losses[arm] = [h["train_loss"] for h in history if "train_loss" in h]
    assert set(losses) == {"no", "bf16"} and losses["no"] != losses["bf16"]
