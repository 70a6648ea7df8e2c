"""A resumed study whose training file was edited since its runs finished: refused in one line (rc 2) before any
training, finished runs untouched; unchanged data resumes; runs from before data fingerprints are kept with a
warning."""
import json

import pandas as pd
import yaml
from typer.testing import CliRunner

from tiny import run_config, synthetic_frame
from unfreeze.cli import app


def write_study(tmp_path, model):
    files = {}
    for split, (n, seed) in {"train": (120, 0), "val": (40, 1), "test": (40, 2)}.items():
        files[split] = tmp_path / f"{split[:2]}.csv"
        synthetic_frame(n, seed=seed).to_csv(files[split], index=False)
    base = run_config(model, None, data={k: str(v) for k, v in files.items()},
                      train={"epochs": 1, "threads": 1, "save_model": False})
    path = tmp_path / "s4.yaml"
    path.write_text(yaml.safe_dump({"name": "s4", "base": base, "seeds": [0], "baseline": True}))
    return path, files


def snapshot(out):
    return {str(p.relative_to(out)): p.read_bytes() for p in [*out.glob("runs/*/*"), *out.glob("baseline/**/*")]
            if p.is_file()}


def flip_labels(path):
    frame = pd.read_csv(path)
    frame["label"] = frame["label"].map({"pos": "neg", "neg": "pos"})
    frame.to_csv(path, index=False)


def rerun_after_flip(path, out, train_file, override: str):
    """Run the study, flip the training labels, run it again with `--set override`: (its result refused with rc 2,
    the run and baseline files as they were before the rerun)."""
    first = study(path, out)
    assert first.exit_code == 0, first.output
    before = snapshot(out)
    flip_labels(train_file)
    result = study(path, out, "--set", override)
    assert result.exit_code == 2, result.output
    return result, before


def study(path, out, *extra):
    return CliRunner().invoke(app, ["study", str(path), "--out", str(out), *extra])


def test_resume_after_training_labels_flipped_is_refused_and_finished_run_untouched(tiny_bert, tmp_path):
    path, files = write_study(tmp_path, tiny_bert)
    out = tmp_path / "S4"
    result, before = rerun_after_flip(path, out, files["train"], "seeds=[0,1]")
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert str(files["train"]) in lines[0] and "new --out" in lines[0], lines[0]
    assert snapshot(out) == before  # nothing trained, nothing rewritten (baseline included)
    assert len(list(out.glob("runs/*"))) == 1
    metrics = json.loads(next(out.glob("runs/*/metrics.json")).read_text())
    assert set(metrics["data_fingerprint"]) == {"train", "val"}


def test_resume_with_unchanged_data_adds_the_new_seed(tiny_bert, tmp_path):
    path, _ = write_study(tmp_path, tiny_bert)
    out = tmp_path / "S4"
    assert study(path, out).exit_code == 0
    finished = {p.parent.name: p.read_bytes() for p in out.glob("runs/*/metrics.json")}
    result = study(path, out, "--set", "seeds=[0,1]")
    assert result.exit_code == 0, result.output
    assert "1 already finished" in result.output and "warning" not in result.output
    runs = {p.parent.name: p.read_bytes() for p in out.glob("runs/*/metrics.json")}
    assert len(runs) == 2 and all(runs[k] == v for k, v in finished.items())


def test_runs_from_before_data_fingerprints_are_kept_with_one_warning(tiny_bert, tmp_path):
    path, files = write_study(tmp_path, tiny_bert)
    out = tmp_path / "S4"
    assert study(path, out).exit_code == 0
    for target in [*out.glob("runs/*/metrics.json"), *out.glob("baseline/**/metrics.json")]:
        metrics = json.loads(target.read_text())
        metrics.pop("data_fingerprint", None)
        target.write_text(json.dumps(metrics))
    result = study(path, out)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "predate data fingerprints" in line]
    assert len(warnings) == 1, result.output


def test_search_resumed_after_training_labels_flipped_is_refused(tiny_bert, tmp_path):
    import pytest

    pytest.importorskip("optuna")
    path, files = write_study(tmp_path, tiny_bert)
    spec = yaml.safe_load(path.read_text())
    spec["search"] = {"sampler": "random", "trials": 1, "seed": 0, "space": {"optim.lr": [1e-3, 1e-2]}}
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "S5"
    result, before = rerun_after_flip(path, out, files["train"], "search.trials=2")
    assert len(result.output.strip().splitlines()) == 1 and str(files["train"]) in result.output, result.output
    assert snapshot(out) == before


def test_cv_study_resumes_with_unchanged_data_and_refuses_an_edited_validation_file(tiny_bert, tmp_path):
    path, files = write_study(tmp_path, tiny_bert)
    spec = yaml.safe_load(path.read_text())
    spec.update(cv={"folds": 2}, baseline=False)
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "CV"
    assert study(path, out).exit_code == 0
    again = study(path, out, "--set", "seeds=[0,1]")
    assert again.exit_code == 0 and "2 already finished" in again.output, again.output
    before = snapshot(out)
    frame = pd.read_csv(files["val"])
    frame.loc[0, "label"] = "neg" if frame.loc[0, "label"] == "pos" else "pos"
    frame.to_csv(files["val"], index=False)
    result = study(path, out, "--set", "seeds=[0,1,2]")
    assert result.exit_code == 2 and str(files["val"]) in result.output, result.output
    assert snapshot(out) == before
