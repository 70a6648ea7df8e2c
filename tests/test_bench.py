"""`unfreeze bench` end to end on a tiny random encoder and synthetic data: the harness runs every method and
writes the markdown and JSON contracts. Speed is never asserted here (wall-clock on shared CI is noise); the
ratio arithmetic and target verdicts are checked on fixed numbers instead."""
from __future__ import annotations

import json
import math

import pytest
import torch
from tiny import VOCAB, make_tiny_model, synthetic_frame

import bench

HEADLINE_KEYS = {"later_epoch_speedup", "total_speedup", "vs_trainer_total_speedup", "metric_delta", "efficiency"}
TINY_SIZES = {"bbc_news": {"train": 40, "val": 20, "test": 9, "max_length": 24}, "epochs": 2, "seeds": [0],
              "limit_tokens": {"forward": 150, "train": 150}}


@pytest.fixture(scope="module")
def six_layer_bert(tmp_path_factory):
    """The tiny BERT of tests/tiny.py with 6 layers, so `top_4` leaves a frozen prefix as on MiniLM."""
    from transformers import AutoModel, BertConfig

    folder = tmp_path_factory.mktemp("bench-model")
    make_tiny_model("bert", folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    AutoModel.from_config(config).save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def bench_run(six_layer_bert, tmp_path_factory):
    """One data set (the JSON's headline numbers are BBC News); Rotten Tomatoes runs the same code path."""
    out = tmp_path_factory.mktemp("bench-out") / "BENCHMARKS.md"
    data = {"bbc_news": synthetic_frame(120, seed=1, classes=3)}
    summary = bench.run_bench(True, out, None, model=six_layer_bert, datasets=data, sizes=TINY_SIZES,
                              isolate=False, threads=1, device="cpu", command="unfreeze bench --quick (test)")
    return summary, out


def test_every_method_runs_and_json_has_the_contract(bench_run):
    summary, out = bench_run
    for key, dataset in summary["datasets"].items():
        assert dataset["errors"] == {}, (key, dataset["errors"])
    latest = json.loads((out.parent / "benchmarks" / "latest.json").read_text())
    assert set(latest["strategies"]) == {"head", "top_2", "top_4", "all"}
    for name, row in latest["strategies"].items():
        assert HEADLINE_KEYS <= set(row), name
        for key in ("later_epoch_speedup", "total_speedup", "vs_trainer_total_speedup", "efficiency"):
            assert row[key] is not None and math.isfinite(row[key]) and row[key] > 0, (name, key)
        assert HEADLINE_KEYS <= set(row["attention_dropout_0"])
    assert latest["study_speedup"] > 0 and latest["quick"] is True and latest["date"]
    assert {"cpu", "cores", "torch_threads", "ram_gb", "device"} <= set(latest["machine"])
    assert latest["machine"]["torch_threads"] == 1


def test_markdown_has_tables_ratios_limit_and_targets(bench_run):
    _, out = bench_run
    text = out.read_text()
    for needed in ("unfreeze bench --quick (test)", "AMD" if "AMD" in bench.cpu_model() else "cores",
                   "## Data sizes", "## BBC News", "## Targets", "| top_4 | HF Trainer |",
                   "| all | unfreeze, attention_dropout 0 |", "seed÷ later", "efficiency", "attention_dropout 0",
                   "4-strategy study, end to end"):
        assert needed in text, needed
    assert "failed" not in text.lower()
    assert "Rotten Tomatoes all, per later epoch | Rotten Tomatoes | ≥ 2 | — | not measured" in text


def test_unfreeze_rows_used_the_cache_and_quality_is_recorded(bench_run):
    summary, _ = bench_run
    rows = summary["datasets"]["bbc_news"]["strategies"]
    for strategy in ("head", "top_2", "top_4", "all"):
        for method in ("seed", "trainer", "unfreeze", "unfreeze0"):
            assert 0 <= rows[strategy][method]["val_f1"] <= 1
            assert len(rows[strategy][method]["val_f1_by_seed"]) >= 1
    limit = summary["datasets"]["bbc_news"]["limit"]
    assert limit["train_tokens"] > 0 and set(limit["strategies"]) == {"head", "top_2", "top_4", "all"}


def test_sizes_override_one_key_and_keep_the_rest():
    overrides = bench.parse_sizes(["bbc_news.train=200", "seeds=[0, 1]", "epochs=2"])
    plan = bench.make_plan(True, sizes=overrides, device="cpu")
    bbc = next(d for d in plan.datasets if d.key == "bbc_news")
    assert (bbc.train, bbc.val, bbc.max_length) == (200, bench.SIZES["quick"]["bbc_news"]["val"], 256)
    assert plan.seeds == [0, 1] and plan.epochs == 2 and len(plan.datasets) == 2


def test_ratios_and_efficiency_from_fixed_numbers():
    plan = bench.make_plan(True, datasets={"bbc_news": "unused"}, device="cpu", strategies=("head",))

    def run(epochs, f1):
        return {"epoch_seconds": epochs, "total_seconds": sum(epochs), "val_f1": f1, "peak_rss_mb": 100.0}

    res = {"seed/head": run([10.0, 8.0, 8.0], 0.80), "trainer/head": run([6.0, 4.0, 4.0], 0.80),
           "unfreeze/head/0": run([3.0, 0.5, 0.5], 0.82), "unfreeze0/head/0": run([2.0, 0.25, 0.25], 0.81)}
    rows = bench.strategy_rows(plan, res, {"limit_seconds": 2.0, "limit_seconds_attention_dropout_0": 2.0}, "head")
    u = rows["unfreeze"]
    assert u["later_epoch_speedup"] == pytest.approx(16.0)
    assert u["total_speedup"] == pytest.approx(26 / 4)
    assert u["vs_trainer_total_speedup"] == pytest.approx(14 / 4)
    assert u["efficiency"] == pytest.approx(0.5)
    assert u["metric_delta"] == pytest.approx(0.02)
    assert rows["unfreeze0"]["metric_delta_vs_default"] == pytest.approx(-0.01)
    assert bench.stats([{"error": "boom"}]) == {"error": "boom"}


def test_target_verdicts_name_the_gap():
    assert bench.target_status(None, 2) == "not measured"
    assert bench.target_status(3.0, 2).startswith("met (+50%")
    assert "needs 2.00× more" in bench.target_status(1.0, 2)
    datasets = {"bbc_news": {"strategies": {"head": {"unfreeze": {"later_epoch_speedup": 60.0}}}, "study": {}}}
    verdicts = {t["target"]: t for t in bench.evaluate_targets(datasets)}
    assert verdicts["head, per later epoch"]["met"] is True
    assert verdicts["head, total"]["met"] is None
    assert verdicts["Rotten Tomatoes all, per later epoch"]["status"] == "not measured"


def test_isolated_job_runs_in_its_own_process(six_layer_bert, tmp_path, monkeypatch):
    """The forkserver path: the result comes back from another process with that process's own peak RSS."""
    monkeypatch.setattr(bench, "_PRELOAD", ["bench_methods"])
    plan = bench.make_plan(True, six_layer_bert, {"bbc_news": synthetic_frame(60, seed=3)}, TINY_SIZES,
                           device="cpu", threads=1)
    d = plan.datasets[0]
    files, _ = bench.materialise(d, tmp_path / "data")
    job = bench.make_job(plan, d, files, tmp_path, "seed", strategy="head")
    result = bench.run_job(job, isolate=True)
    assert "error" not in result, result.get("traceback")
    assert result["isolated"] is True and result["peak_rss_mb"] > 0 and len(result["epoch_seconds"]) == 2


def test_rerun_keeps_the_hand_written_notes(tmp_path):
    out = tmp_path / "BENCHMARKS.md"
    assert bench.kept_notes(out).strip() == bench.NOTES_MARKER  # a first run leaves the marker for notes
    out.write_text("# old tables\n\n" + bench.NOTES_MARKER + "\n\n## Profile\nkeep me\n")
    assert bench.kept_notes(out) == "\n" + bench.NOTES_MARKER + "\n\n## Profile\nkeep me\n"
