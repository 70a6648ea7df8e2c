"""Runs are compared only on a shared test set: `test_fingerprint` in metrics.json / results.csv, one report table
per test set (a grid over data.split_seed), the label-vector fallback for older runs; plus the run-level facts
the report relies on (parameter_groups at the start, every example evaluated exactly once)."""
import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from tiny import run_config
from unfreeze.config.study import StudyConfig
from unfreeze.errors import UnfreezeError
from unfreeze.report.build import BETTER_MARK, SIG_MARK, build_report
from unfreeze.study.runner import run_study


@pytest.fixture(scope="module")
def split_study(tiny_models, tmp_path_factory):
    from tiny import synthetic_frame

    root = tmp_path_factory.mktemp("split_seed")
    synthetic_frame(200, seed=0).to_csv(root / "d.csv", index=False)
    base = run_config(tiny_models["bert"], root / "d.csv", freeze="head", optim={"lr": 1e-2},
                      train={"epochs": 1, "threads": 1, "save_model": False})
    study = StudyConfig.model_validate({"name": "splits", "base": base, "seeds": [0, 1, 2], "baseline": False,
                                        "grid": {"data.split_seed": [0, 1]}})
    results = run_study(study, root / "study", progress=False, echo=lambda *_: None)
    return root / "study", results


def test_fingerprint_is_sha1_of_test_ids_and_labels(split_study):
    out, results = split_study
    assert results["test_fingerprint"].nunique() == 2 and len(results) == 6
    for run_dir, fingerprint in zip(results["path"], results["test_fingerprint"]):
        frame = pd.read_csv(f"{run_dir}/predictions_test.csv", dtype={"id": str, "label": str})
        payload = json.dumps([[i, label] for i, label in zip(frame["id"], frame["label"])], ensure_ascii=False)
        assert fingerprint == hashlib.sha1(payload.encode()).hexdigest()
        assert json.loads(open(f"{run_dir}/metrics.json").read())["test_fingerprint"] == fingerprint
    assert "test_fingerprint" in pd.read_csv(out / "results.csv").columns
    by_split = results.groupby("data.split_seed")["test_fingerprint"].nunique()
    assert (by_split == 1).all()


def _result_tables(md: str) -> list[list[str]]:
    tables, current = [], []
    for line in md.splitlines():
        if line.startswith("| arm "):
            current = []
            tables.append(current)
        elif line.startswith("| ") and tables and not line.startswith("|---"):
            current.append(line)
    return tables


def test_report_has_one_table_per_test_set_and_no_marks_across_them(split_study):
    out, _ = split_study
    md = (out / "report.md").read_text()
    arm_tables = [t for t in _result_tables(md) if t and "split_seed" in t[0]]
    assert len(arm_tables) == 2 and all(len(t) == 1 for t in arm_tables)
    assert "2 different test sets" in md and "never across tables" in md
    assert all("best (by val)" in t[0] for t in arm_tables)  # each arm is alone with its test set: nothing compared
    results_section = md.split("## Results")[1].split("## Plots")[0]
    assert SIG_MARK not in results_section.replace(f"{SIG_MARK} = ", "")
    assert BETTER_MARK not in results_section.replace(f"{BETTER_MARK} = ", "")


def test_older_runs_without_a_fingerprint_fall_back_to_the_label_vectors(split_study):
    out, _ = split_study
    frame = pd.read_csv(out / "results.csv").drop(columns="test_fingerprint")
    md_path, _ = build_report(out, frame)
    md = md_path.read_text()
    assert len([t for t in _result_tables(md) if t and "split_seed" in t[0]]) == 2
    build_report(out)  # restore the module's report from results.csv


def test_parameter_groups_record_the_learning_rate_at_the_start(split_study):
    """The default linear schedule ends at LR 0; metrics.json must still say what training started with."""
    _, results = split_study
    groups = json.loads(open(f"{results['path'].iloc[0]}/metrics.json").read())["parameter_groups"]
    assert groups and all(g["lr"] == pytest.approx(1e-2) for g in groups)


def test_collect_logits_raises_when_an_example_is_missing():
    import torch

    from unfreeze.training.evaluate import collect_logits

    class Model(torch.nn.Module):
        def forward(self, input_ids, attention_mask):
            return torch.zeros(len(input_ids), 2)

    class Gather:
        def gather_for_metrics(self, values):
            return values

    batch = {"input_ids": torch.zeros(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3, dtype=torch.long),
             "index": torch.tensor([0, 2])}
    with pytest.raises(UnfreezeError, match=r"gathered 2 of 3 examples \(first missing index 1\)"):
        collect_logits(Model(), [batch], Gather(), None, 3)
    ok = collect_logits(Model(), [{**batch, "index": torch.tensor([0, 1])}], Gather(), None, 2)
    assert len(ok) == 2 and np.allclose(ok[0], 0)
