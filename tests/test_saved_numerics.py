"""The test split is scored with the numerics of the saved model: after a cached run (fp16 frozen prefix),
`predict RUN` on the test file reproduces predictions_test.csv — the final val/test pass runs the full forward."""
import numpy as np
import pandas as pd
import pytest

from tiny import run_config
from unfreeze.config.load import parse_run_config
from unfreeze.model.predict import predict_file
from unfreeze.training.run import train


def _train(model, data, out, freeze, cache="on", dtype="float16"):
    cfg = parse_run_config(run_config(model, data, freeze=freeze, train={
        "epochs": 2, "threads": 1, "cache": cache, "cache_dtype": dtype}))
    return train(cfg, out, progress=False, cache_root=out.parent / "cache")


def _assert_reproduced(run_dir, tmp_path):
    """`predict RUN` on the test split's texts gives predictions_test.csv again; returns the max |Δ prob|."""
    saved = pd.read_csv(run_dir / "predictions_test.csv")
    test_csv = tmp_path / f"{run_dir.name}-test.csv"
    saved[["text"]].to_csv(test_csv, index=False)
    again = predict_file(run_dir, test_csv, tmp_path / f"{run_dir.name}-again.csv")
    probs = [c for c in saved.columns if c.startswith("prob")]
    assert list(again["pred"].astype(str)) == list(saved["pred"].astype(str))
    diff = np.abs(again[probs].to_numpy() - saved[probs].to_numpy()).max()
    assert diff <= 1e-5, diff
    return diff


def test_predict_reproduces_a_cached_top_k_run(tiny_bert, sentiment_csv, tmp_path):
    result = _train(tiny_bert, sentiment_csv, tmp_path / "run", {"top_k": 1})
    assert result["cache"]["used"] and result["final_eval_seconds"] >= 0
    _assert_reproduced(tmp_path / "run", tmp_path)
