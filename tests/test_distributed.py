"""Data-parallel training in two processes (torchrun, CPU, gloo): each process trains on its shard of batches,
and evaluation gathers every example exactly once — distributed sampling pads the last batch, and a padded
duplicate must never be counted twice in the metrics."""
import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score, f1_score

from tiny import run_config


@pytest.mark.parametrize("freeze", ["all", {"top_k": 1}])  # top_k: the cache is built by one process, read by both
def test_two_processes_gather_every_example_exactly_once(freeze, tiny_bert, sentiment_csv, tmp_path):
    # eval batches of 7 over 24 rows: 4 batches, which 2 processes can only share with a padded duplicate
    config = run_config(tiny_bert, sentiment_csv, freeze=freeze,
                        train={"epochs": 1, "threads": 1, "eval_batch_size": 7, "save_model": False})
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "unfreeze.cli", "train", str(path), "--out", str(out),
                           "--quiet"], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("trainable parameters") == 1  # one summary, from rank 0
    metrics = json.loads((out / "metrics.json").read_text())
    data = pd.read_csv(sentiment_csv)
    for split in ("val", "test"):
        preds = pd.read_csv(out / f"predictions_{split}.csv")
        assert preds["id"].is_unique and len(preds) == metrics["data"]["sizes"][split]
        assert set(preds["text"]) <= set(data["text"])
        assert metrics[split]["accuracy"] == pytest.approx(accuracy_score(preds["label"], preds["pred"]))
        assert metrics[split]["f1_macro"] == pytest.approx(f1_score(preds["label"], preds["pred"], average="macro"))
