"""`make bench-estimate` on a tiny study: estimate per arm, run, compare with the measured run times; a folder
that already holds the runs is read back, not re-run; the BENCHMARKS.md section is replaced, not duplicated."""
from __future__ import annotations

import json

import pytest
import yaml

import bench_estimate
from tiny import run_config


def test_bench_estimate_compares_every_arm_and_rewrites_its_section(tiny_bert, sentiment_csv, tmp_path):
    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
    study = tmp_path / "tiny.yaml"
    study.write_text(yaml.safe_dump({"base": base, "grid": {"freeze": ["head", "all"]}, "seeds": [0, 1],
                                     "baseline": False}))
    md, js = tmp_path / "B.md", tmp_path / "e.json"
    md.write_text("# Benchmarks\n\nhand-written\n")
    args = [str(study), "--work", str(tmp_path / "w"), "--md", str(md), "--json", str(js)]
    summary = bench_estimate.main(args)
    entry = summary["studies"]["tiny"]
    assert set(entry["arms"]) == {"head", "all"}
    for arm in entry["arms"].values():
        assert arm["runs"] == arm["runs_finished"] == 2 and arm["estimate_s"] > 0 and arm["actual_s"] > 0
        assert arm["error"] == pytest.approx(arm["estimate_s"] / arm["actual_s"] - 1, rel=0.05, abs=0.01)
    runs = sorted((tmp_path / "w" / "tiny" / "runs").iterdir())
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    assert metrics["run_seconds"] >= metrics["train_seconds"] > 0
    # again: the finished runs are read back (same run times), and the section is replaced in place
    again = bench_estimate.main(args)["studies"]["tiny"]
    assert again["arms"]["all"]["actual_s"] == entry["arms"]["all"]["actual_s"]
    text = md.read_text()
    assert text.count(bench_estimate.MARK_START) == 1 and "hand-written" in text and "| tiny | head | 2 |" in text
    assert json.loads(js.read_text())["studies"]["tiny"]["arms"]["head"]["runs"] == 2
    parts = entry["parts"]  # per part too (#27): the runs' training, final pass and the rest of each run
    assert set(parts) == {name for name, _, _ in bench_estimate.PART_ROWS}
    assert all(p["estimate_s"] > 0 and p["actual_s"] is not None for p in parts.values())
    assert "part: final pass" in text


@pytest.mark.assets
def test_long_document_set_has_a_large_test_split_and_a_valid_study(tmp_path):
    from unfreeze.config.load import load_study_config

    study = bench_estimate.build_long_docs(tmp_path / "long")
    import pandas as pd

    train, test = pd.read_csv(tmp_path / "long" / "train.csv"), pd.read_csv(tmp_path / "long" / "test.csv")
    assert len(train) == 800 and len(test) > 3500 and not set(train["text"]) & set(test["text"])
    assert test["text"].str.split().str.len().median() > 300
    assert load_study_config(study).base["data"]["max_length"] == 512
