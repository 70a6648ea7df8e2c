"""The one-line planner's smaller promises: each data file read once (through `data.sequence.read_frames`), `--set`
parsed once however it is written, each arm costed once, and a resumed session's wall time never passed off as
the study's."""
import json
import re

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from unfreeze.cli import app

runner = CliRunner()
RATES = {"forward_tokens_per_s": 4000.0, "train_tokens_per_s": 300.0, "step_seconds": 0.01, "embedding_share": 0.5,
         "device": "cpu", "threads": 1}


@pytest.fixture
def fixed_rates(monkeypatch):
    from unfreeze.study import throughput

    monkeypatch.setattr(throughput, "measure_throughput", lambda *a, **k: dict(RATES))


def test_the_planner_reads_each_data_file_once(tiny_bert, sentiment_csv, tmp_path, monkeypatch, fixed_rates):
    """#27: the row check read the files (through the private `_raw_frames`), then `load_data` read them again."""
    from unfreeze.data import sequence

    test = tmp_path / "test.csv"
    test.write_text("text,label\n" + "".join(f"a fine test text {i},pos\nbad test text {i},neg\n" for i in range(8)))
    reads = []
    real = sequence.read_table
    monkeypatch.setattr(sequence, "read_table", lambda path, *a, **k: reads.append(str(path)) or real(path, *a, **k))
    result = runner.invoke(app, ["study", "--data", str(sentiment_csv), "--test", str(test), "--budget", "2m",
                                 "--model", tiny_bert, "--out", str(tmp_path / "o"), "--dry-run"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert sorted(reads) == sorted([str(sentiment_csv.resolve()), str(test.resolve())])


@pytest.mark.parametrize("pin", ["train.epochs=1", "train={epochs: 1}", "base.train.epochs=1"])
def test_a_pinned_setting_is_estimated_however_the_set_is_written(tiny_bert, sentiment_csv, tmp_path, fixed_rates,
                                                                  pin):
    """The planner's own `--set` parser missed `train={epochs: 1}`: the study ran 1 epoch, the plan estimated more."""
    out = tmp_path / "o"
    result = runner.invoke(app, ["study", "--data", str(sentiment_csv), "--budget", "20m", "--model", tiny_bert,
                                 "--out", str(out), "--dry-run", "--set", pin], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1 epoch," in json.loads((out / "plan.json").read_text())["tried"]


def test_pinned_settings_reads_the_applied_overrides():
    from unfreeze.study.oneline import pinned_settings

    applied = {"base": {"train": {"epochs": 2}, "data": {"max_length": 64, "train_size": True}}, "seeds": [0, 1]}
    assert pinned_settings(applied) == {"epochs": 2, "max_length": 64, "seeds": 2}
    assert pinned_settings({"base": {"train": None}}) == {}


def test_cost_model_parts_costs_each_arm_once(monkeypatch):
    from unfreeze.study import plan
    from unfreeze.study.plan import CostModel, DataFacts, Settings

    calls = []
    real = plan.run_parts
    monkeypatch.setattr(plan, "run_parts", lambda *a, **k: calls.append(1) or real(*a, **k))
    facts = DataFacts(n_train=2000, n_eval=400, lengths=np.full(1000, 40))
    model = CostModel(facts, {"forward_tokens_per_s": 5000.0, "train_tokens_per_s": 1000.0}, 6, 384, 16)
    parts = model.parts(Settings(arms=["head", {"top_k": 2}, "all"], epochs=2, seeds=2, train_size=1000,
                                 max_length=64))
    assert len(calls) == 3  # one per arm (it was 6: `arms` costed each, then `parts` again)
    assert parts["train"] > 0


@pytest.mark.parametrize("resumed", [False, True])
def test_a_resumed_session_says_its_wall_time_is_its_own(tmp_path, resumed):
    """`print_outcome` wrote the resumed session's wall time as the study's (`actual_wall_seconds`), over the
    first session's, and judged "over its plan" on it."""
    from unfreeze.study.oneline import print_outcome

    out = tmp_path / "s"
    out.mkdir()
    (out / "plan.json").write_text(json.dumps({"parts": {"train": 30.0, "study": 30.0}}))
    console = Console(record=True, width=300)
    print_outcome(out, 600.0, console, resumed=resumed)
    text, plan = console.export_text(), json.loads((out / "plan.json").read_text())
    if resumed:
        assert "this session's wall time 10.0 min" in text and "not in this figure" in text
        assert "over its plan" not in text and plan["resumed_session_wall_seconds"] == [600.0]
        assert "actual_wall_seconds" not in plan
    else:
        assert "study wall time 10.0 min" in text and "900 % over its plan" in text
        assert plan["actual_wall_seconds"] == 600.0


def _plan(per_run=60.0, runs=3):
    parts = {"cache_fill": 30.0, "train": 2 * runs * per_run * 0.8, "validation": 2 * runs * per_run * 0.1,
             "final": 2 * runs * per_run * 0.05, "fixed": 2 * runs * per_run * 0.05, "baseline": 5.0, "study": 5.0}
    return {"budget_seconds": 900.0, "parts": parts, "arms": [["head", runs, per_run], ["top-2", runs, per_run]],
            "traded": [], "tried": "head / top-2", "baseline": "TF-IDF"}


@pytest.mark.parametrize("seconds, over", [(120.0, True), (50.0, False)])
def test_a_study_part_way_through_says_when_it_runs_over_its_plan(tmp_path, seconds, over):
    """#27 4b: the live report compared the first finished run with the estimate for ALL runs, so a study running
    at twice its plan looked under it until the end. Now the finished runs are compared with their own share."""
    import pandas as pd

    from unfreeze.report.plan_section import plan_blocks

    results = pd.DataFrame({"arm": ["head", "top-2"], "train_seconds": [seconds * 0.9] * 2,
                            "final_eval_seconds": [seconds * 0.1] * 2, "run_seconds": [seconds] * 2})
    text = " ".join(str(b[1]) for b in plan_blocks(tmp_path, _plan(), results) if b[0] == "p")
    assert ("Running over its plan: the 2 of 6 runs finished so far took 4.0 min" in text) == over, text
    if over:
        assert "111 % over the 1.9 min planned for them" in text


def test_the_baseline_on_large_data_shows_progress_with_a_total(monkeypatch, capsys):
    """#27 item 6: the baseline on large data had no progress at all (minutes on 100k long texts)."""
    import sys

    from unfreeze.study import baselines

    monkeypatch.setattr(baselines, "LARGE_BASELINE", 8)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    texts = [f"good film {i}" if i % 2 else f"bad film {i}" for i in range(12)]
    labels = np.arange(12) % 2
    baselines.tfidf_logreg(texts, labels, texts[:4], labels[:4], texts[:4], labels[:4], ["neg", "pos"])
    err = capsys.readouterr().err
    assert "baseline: TF-IDF on 20 texts" in err and re.search(r"\d/4 \[", err), err  # a total, so an ETA
    monkeypatch.setattr(baselines, "LARGE_BASELINE", 21)  # small data: no bar
    baselines.tfidf_logreg(texts, labels, texts[:4], labels[:4], texts[:4], labels[:4], ["neg", "pos"])
    assert "baseline" not in capsys.readouterr().err


def test_a_slow_final_report_is_announced_with_its_expected_time(tmp_path):
    from unfreeze.study import live

    clock = iter([0.0, 12.0, 100.0, 100.0]).__next__
    built = []
    report = live.LiveReport(tmp_path, [], clock=clock, build_report=lambda d, r: built.append(r) or ("md", "html"))
    report.build = lambda: None  # the live rebuild itself (timed by the clock: 12 s)
    report(type("Outcome", (), {"skipped": False, "ok": True})())
    said = []
    assert report.build_final("results", said.append) == ("md", "html") and built == ["results"]
    assert said == ["building the report: about 12 s (as its last rebuild)"]
