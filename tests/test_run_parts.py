"""A run built from its parts: what a study hands a run comes in one `RunCallbacks` object, and the LR schedule /
trainable set are small objects the loop calls without asking their kind (`training/schedules.py`)."""
import json

import pytest
import torch

from tiny import run_config
from unfreeze.config.load import parse_run_config
from unfreeze.config.schema import SchedulerConfig
from unfreeze.errors import Pruned
from unfreeze.training.callbacks import RunCallbacks
from unfreeze.training.run import train
from unfreeze.training.schedules import LRSchedule


def small(tiny_bert, data, **train):
    return parse_run_config(run_config(tiny_bert, data, train={"epochs": 2, "threads": 1, "save_model": False,
                                                               **train}))


def test_the_pruner_sees_each_evaluation_and_stops_the_run_before_anything_is_written(tiny_bert, sentiment_csv,
                                                                                       tmp_path):
    rows = []
    callbacks = RunCallbacks(on_eval=lambda row: rows.append(row) or len(rows) == 2)
    with pytest.raises(Pruned) as stop:
        train(small(tiny_bert, sentiment_csv, eval_every_steps=3), tmp_path / "run", progress=False,
              callbacks=callbacks)
    assert [r["step"] for r in rows] == [3, 6] and stop.value.step == 6 and stop.value.history == rows
    assert not (tmp_path / "run").exists()


def test_run_info_and_cache_plan_reach_the_run_folder_and_the_cache(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze="head",
                                      train={"epochs": 1, "threads": 1, "save_model": False}))
    callbacks = RunCallbacks(cache_root=tmp_path / "study-cache", cache_top_ks={0, 1}, run_info={"arm": "head"})
    result = train(cfg, tmp_path / "run", progress=False, callbacks=callbacks)
    assert json.loads((tmp_path / "run" / "run.json").read_text()) == {"arm": "head"}
    assert result["cache"]["used"] and any((tmp_path / "study-cache").iterdir())
    plain = train(cfg, tmp_path / "plain", progress=False)  # no callbacks: no run.json, the default cache
    assert not (tmp_path / "plain" / "run.json").exists() and plain["test"] == result["test"]


@pytest.mark.parametrize("name", ["linear", "plateau"])
def test_each_lr_schedule_moves_only_on_its_own_hook(name):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([{"params": [param], "lr": 1.0}], lr=1.0)
    lr = LRSchedule(SchedulerConfig(name=name, warmup_ratio=0.0, patience=0), optimizer, 10, "f1_macro")
    start = optimizer.param_groups[0]["lr"]
    lr.after_update()  # step-wise: one step of the linear decay; plateau: nothing
    after_step = optimizer.param_groups[0]["lr"]
    lr.after_eval({"f1_macro": 0.5})
    lr.after_eval({"f1_macro": 0.4})  # plateau, patience 0: no improvement halves the LR; step-wise: nothing
    after_evals = optimizer.param_groups[0]["lr"]
    if name == "linear":
        assert after_step == pytest.approx(0.9 * start) and after_evals == after_step
    else:
        assert after_step == start and after_evals == pytest.approx(0.5 * start)
