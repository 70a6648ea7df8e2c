"""A one-line study run again with the same command resumes its study.yaml without planning again (a second
throughput measurement differs a little, and the old code then refused its own resume); other inputs into a folder
where a study ran are one line naming what changed; a plan that never ran is planned again."""
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from unfreeze.cli import app

runner = CliRunner()
RATES = {"forward_tokens_per_s": 4000.0, "train_tokens_per_s": 300.0, "step_seconds": 0.01, "embedding_share": 0.5,
         "device": "cpu", "threads": 1}
# (the 2nd swap: a run saves best/ by a swap inside its staging folder, then swaps the run folder in)
# a one-line study in a child process, throughput fixed at `rates` (argv[1]), the CLI's arguments after it
CHILD = """
import json, sys
from unfreeze.study import throughput
rates = json.loads(sys.argv[1])
throughput.measure_throughput = lambda *a, **k: dict(rates)
from unfreeze.cli import app
app(sys.argv[2:])
"""


def measured(monkeypatch, rates):
    from unfreeze.study import throughput

    monkeypatch.setattr(throughput, "measure_throughput", lambda *a, **k: dict(rates))


def never_measured(monkeypatch):
    from unfreeze.study import throughput

    def fail(*a, **k):
        raise AssertionError("planned again: throughput measured")

    monkeypatch.setattr(throughput, "measure_throughput", fail)


def one_line(data, tiny_bert, out, *extra, budget="1m"):
    return ["study", "--data", str(data), "--budget", budget, "--model", tiny_bert, "--out", str(out), "--quiet",
            "--set", "train.threads=1", *extra]


def planned_and_started(tiny_bert, data, out, monkeypatch, budget="1m"):
    """A dry run's plan, then the study.json a study writes first (what a study killed early leaves behind)."""
    measured(monkeypatch, RATES)
    result = runner.invoke(app, one_line(data, tiny_bert, out, "--dry-run", budget=budget), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    (out / "study.json").write_text(json.dumps({"name": "s", "selection_metric": "accuracy"}))


@pytest.mark.faults
@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes_without_planning_again(tiny_bert, sentiment_csv, tmp_path,
                                                                     monkeypatch):
    """#27: kill -9 a one-line study after its first run; the same command again used to re-plan (throughput
    measured again, slightly different) and refuse its own folder ("holds a study run from another plan")."""
    from io_helpers import child_env

    out = tmp_path / "study"
    killed = subprocess.run([sys.executable, "-c", CHILD, json.dumps(RATES), *one_line(sentiment_csv, tiny_bert, out)],
                            env=child_env(fault="swap.journal_removed@2"), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    finished = sorted(p.parent.name for p in (out / "runs").glob("*/metrics.json"))
    assert len(finished) == 1, (killed.stdout[-3000:], sorted(p.name for p in out.rglob("*"))[:50])
    plan_before = json.loads((out / "plan.json").read_text())
    study_before = (out / "study.yaml").read_text()
    measured(monkeypatch, {**RATES, "forward_tokens_per_s": 3000.0})  # what a second measurement would say
    result = runner.invoke(app, one_line(sentiment_csv, tiny_bert, out), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "not planned again" in result.output
    assert "1 already finished" in result.output
    assert (out / "study.yaml").read_text() == study_before
    plan_after = json.loads((out / "plan.json").read_text())
    assert plan_after["inputs"] == plan_before["inputs"] and plan_after["parts"] == plan_before["parts"]
    # the wall time is this session's only, and says so (the killed session's time is unknown)
    assert "this session's wall time" in result.output and "actual_wall_seconds" not in plan_after
    assert len(plan_after["resumed_session_wall_seconds"]) == 1
    assert (out / "runs" / finished[0] / "metrics.json").is_file()


def test_the_same_inputs_resume_even_when_a_new_measurement_would_differ(tiny_bert, sentiment_csv, tmp_path,
                                                                         monkeypatch):
    out = tmp_path / "study"
    planned_and_started(tiny_bert, sentiment_csv, out, monkeypatch)
    study_before = (out / "study.yaml").read_text()
    never_measured(monkeypatch)
    result = runner.invoke(app, one_line(sentiment_csv, tiny_bert, out, "--dry-run"), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and (out / "study.yaml").read_text() == study_before


@pytest.mark.parametrize("change, needle", [("budget", "--budget 1m → 3m"), ("data", "its contents changed"),
                                            ("set", "--set"), ("model", "--model")])
def test_other_inputs_into_a_started_study_are_one_line(tiny_bert, tiny_models, sentiment_csv, tmp_path,
                                                        monkeypatch, change, needle):
    out = tmp_path / "study"
    planned_and_started(tiny_bert, sentiment_csv, out, monkeypatch)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    args = one_line(sentiment_csv, tiny_bert, out, "--dry-run", budget="3m" if change == "budget" else "1m")
    if change == "data":
        with sentiment_csv.open("a") as handle:
            handle.write("one more review,pos\n")
    if change == "set":
        args += ["--set", "train.epochs=1"]
    if change == "model":
        args[args.index(tiny_bert)] = tiny_models["distilbert"]
    never_measured(monkeypatch)
    result = runner.invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "planned from other inputs" in result.output and needle in result.output, result.output
    assert "choose a new --out" in result.output and "Traceback" not in result.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_a_plan_that_never_ran_is_planned_again_with_new_inputs(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    out = tmp_path / "study"
    measured(monkeypatch, RATES)
    first = runner.invoke(app, one_line(sentiment_csv, tiny_bert, out, "--dry-run"), env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, one_line(sentiment_csv, tiny_bert, out, "--dry-run", budget="3m"),
                          env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    assert "resuming" not in again.output
    assert json.loads((out / "plan.json").read_text())["inputs"]["budget"] == "3m"
