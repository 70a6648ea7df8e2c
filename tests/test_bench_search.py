"""`make bench-search` on a tiny model and a tiny study: the JSON has the contracted form, racing ran fewer runs
than the full study, and the full pass is a real study (every arm × seed)."""
from __future__ import annotations

import json

import bench_search
from tiny import run_config


def test_bench_search_writes_the_contract(tiny_bert, sentiment_csv, tmp_path):
    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 3, "threads": 1, "save_model": False})
    study = {"name": "tiny", "base": base, "baseline": False, "seeds": [0, 1, 2, 3], "racing": {"alpha": 0.2},
             "arms": {"good": {"optim": {"lr": 3e-3}}, "frozen lr": {"optim": {"lr": 1e-9}}}}
    out = tmp_path / "search.json"
    bench_search.bench_search({"tiny": study}, out, tmp_path / "work", say=lambda *_: None)
    entry = json.loads(out.read_text())["studies"]["tiny"]
    assert {"full_seconds", "fast_seconds", "method", "same_decision"} <= set(entry)
    assert entry["method"] == "racing" and entry["same_decision"] is True and entry["best_full"] == "good"
    assert entry["runs_full"] == 8 and entry["runs_fast"] == 7 and list(entry["stopped"]) == ["frozen lr"]
    assert entry["full_seconds"] > 0 and entry["fast_seconds"] > 0
