"""`make bench-search` on a tiny model and tiny studies: the JSON has the contracted form, the full pass is a real
study (every arm × seed), racing runs fewer runs, and the pruned one-seed search runs each arm once, costliest
first, with the trials the pruner stopped counted until they stopped."""
from __future__ import annotations

import json

import bench_search
from tiny import run_config


def tiny_study(tiny_bert, sentiment_csv, **extra) -> dict:
    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 3, "threads": 1, "save_model": False})
    return {"name": "tiny-study", "base": base, "baseline": False, "seeds": [0, 1, 2, 3], **extra}  # name ≠ key


def test_bench_search_racing_writes_the_contract(tiny_bert, sentiment_csv, tmp_path):
    study = tiny_study(tiny_bert, sentiment_csv, racing={"alpha": 0.2},
                       grid={"optim.lr": [3e-3, 1e-9]})
    out = tmp_path / "search.json"
    bench_search.bench_search({"tiny": study}, out, tmp_path / "work", say=lambda *_: None, method="racing")
    entry = json.loads(out.read_text())["studies"]["tiny"]
    assert {"full_seconds", "fast_seconds", "method", "same_decision"} <= set(entry)
    assert entry["method"] == "racing" and entry["same_decision"] is True and entry["best_full"] == "lr=0.003"
    assert entry["runs_full"] == 8 and entry["runs_fast"] == 7 and list(entry["stopped"]) == ["lr=1e-09"]
    assert entry["full_seconds"] > 0 and entry["fast_seconds"] > 0


def test_bench_search_pruned_one_seed_search(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    import unfreeze.study.estimate as estimate

    monkeypatch.setattr(estimate, "estimate_job", lambda job: job.config.optim.lr)  # 3e-3 "costs" most: first
    study = tiny_study(tiny_bert, sentiment_csv, grid={"optim.lr": [3e-3, 1e-9, 1e-8]})
    study["base"]["train"]["eval_every_steps"] = 2
    out = tmp_path / "search.json"
    bench_search.bench_search({"tiny": study}, out, tmp_path / "work", say=lambda *_: None)
    entry = json.loads(out.read_text())["studies"]["tiny"]
    assert entry["method"] == "pruned" and entry["runs_full"] == 12 and entry["runs_fast"] == 3
    assert entry["best_full"] == "lr=0.003" and entry["best_fast"] == "lr=0.003" and entry["same_decision"] is True
    assert entry["same_arm"] is True and entry["pick_vs_best_test"]["delta"] == 0.0
    control = entry["one_seed_control"]  # the full grid's seed 0 alone: what one seed costs without pruning
    assert control["pick"] == "lr=0.003" and 0 < control["compute_seconds"] < entry["full_compute_seconds"]
    # 3e-3 ran first (never pruned); the two that cannot learn fell behind its curve and stopped early
    assert entry["trials"]["lr=0.003"] == "complete"
    assert all(entry["trials"][arm].startswith("pruned at epoch") for arm in ("lr=1e-08", "lr=1e-09"))
    assert 0 < entry["fast_compute_seconds"] < entry["full_compute_seconds"]
    assert entry["search"]["order"] == "costly_first" and entry["search"]["pruner"] == "median"
    section = bench_search.render(json.loads(out.read_text()))
    assert "| tiny | pruned | 12, " in section and "lr=0.003 → lr=0.003 | same arm | yes: same arm |" in section
    assert section.startswith(bench_search.MARK_START) and "fast trials in the order run: lr=0.003: complete" in section


def test_same_decision_rule(monkeypatch):
    """Same arm; or the full grid's seed-aware test cannot call the pick worse (p >= 0.05, or it scores higher);
    an undecidable comparison (an arm with < 3 runs) is not counted as the same decision."""
    def with_test(**row):
        monkeypatch.setattr(bench_search, "pick_vs_best", lambda *a: {"delta": 0.02, "ci_low": -0.01,
                                                                      "ci_high": 0.05, **row})
        return bench_search.decision(None, "pick", "best", "text", "f1_macro")

    assert with_test(p_value=None) == (False, {"delta": 0.02, "ci_low": -0.01, "ci_high": 0.05, "p_value": None,
                                               "note": "undecidable: an arm has fewer than 3 finished runs"})
    assert with_test(p_value=0.2)[0] is True and with_test(p_value=0.01)[0] is False
    assert with_test(p_value=0.01, delta=-0.03)[0] is True  # significantly *better* than the full grid's pick
    assert "lower by 0.0200 (95% CI -0.0100 to 0.0500), p = 0.01" in bench_search.versus(
        "pick", "best", {"delta": 0.02, "ci_low": -0.01, "ci_high": 0.05, "p_value": 0.01})
