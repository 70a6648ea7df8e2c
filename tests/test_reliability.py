"""Faults of issue #17 survived end to end: one study process per folder, exit codes that tell failure from
success, run folders that are old-or-new after `kill -9` during `--overwrite`."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml
from typer.testing import CliRunner

from io_helpers import child_env
from tiny import run_config
from unfreeze.cli import app
from unfreeze.config.study import StudyConfig
from unfreeze.errors import LockedError
from unfreeze.study.runner import run_study


def study_spec(model, data, **extra) -> dict:
    base = run_config(model, data, train={"epochs": 1, "threads": 1, "save_model": False})
    return {"name": "t", "base": base, "baseline": False, **extra}


HOLDING_STUDY = """
import sys, time
from pathlib import Path
from unfreeze.config.study import StudyConfig
from unfreeze.study.runner import run_study

class SlowExecutor:  # stands in for hours of training while the lock is held
    def run(self, jobs, study_dir, pool, top_ks, report):
        (Path(study_dir) / "started").write_text("x")
        time.sleep(60)
        return []

run_study(StudyConfig.model_validate_json(Path(sys.argv[1]).read_text()), sys.argv[2], executor=SlowExecutor(),
          echo=lambda *_: None, command="unfreeze study first.yaml")
"""


def test_second_study_on_the_same_folder_fails_at_once_naming_the_pid(tiny_bert, sentiment_csv, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(StudyConfig.model_validate(study_spec(tiny_bert, sentiment_csv)).model_dump_json())
    out = tmp_path / "study"
    first = subprocess.Popen([sys.executable, "-c", HOLDING_STUDY, str(spec), str(out)], env=child_env(),
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out / "started").exists():
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        started = time.monotonic()
        with pytest.raises(LockedError, match=rf"pid {first.pid} on host .*first\.yaml"):
            run_study(StudyConfig.model_validate_json(spec.read_text()), out, echo=lambda *_: None)
        assert time.monotonic() - started < 5  # fails fast, does not wait for the holder
    finally:
        first.kill()
        first.wait()
    # kill -9 frees the lock: the folder is usable again (the flock died with its holder)
    from unfreeze.io.lock import StudyLock, study_running

    assert study_running(out) is None
    with StudyLock(out):
        pass


def test_cli_second_study_is_one_line_and_rc_2(tiny_bert, sentiment_csv, tmp_path):
    from unfreeze.io.lock import StudyLock

    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(study_spec(tiny_bert, sentiment_csv)))
    out = tmp_path / "study"
    with StudyLock(out, command="unfreeze study other.yaml"):
        result = CliRunner().invoke(app, ["study", str(cfg), "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "in use by pid" in result.output and "other.yaml" in result.output


def test_study_with_a_failing_arm_exits_3_after_the_summary(tiny_bert, sentiment_csv, tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(study_spec(tiny_bert, sentiment_csv, grid={"freeze": ["head", {"top_k": 7}]})))
    out = tmp_path / "study"
    result = CliRunner().invoke(app, ["study", str(cfg), "--out", str(out), "--quiet"])
    assert result.exit_code == 3, result.output
    assert "1 of 2 runs failed" in result.output and "only 2 layers" in result.output
    assert len(list(out.glob("runs/*/metrics.json"))) == 1


def test_ctrl_c_prints_one_line_and_exits_130(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    import unfreeze.study.runner as runner

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_study", interrupted)
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(study_spec(tiny_bert, sentiment_csv)))
    result = CliRunner().invoke(app, ["study", str(cfg), "--out", str(tmp_path / "study"), "--quiet"])
    assert result.exit_code == 130
    assert "interrupted: 0 runs finished and kept; rerun the same command to resume" in result.output


OVERWRITE_RUN = """
import sys, yaml
from unfreeze.config.schema import RunConfig
from unfreeze.training.run import train
train(RunConfig.model_validate(yaml.safe_load(open(sys.argv[1]))), sys.argv[2], overwrite=True, progress=False)
"""


@pytest.mark.faults
@pytest.mark.parametrize("point", ["swap.new_staged", "swap.old_moved", "swap.new_installed"])
def test_kill_9_during_the_run_swap_leaves_old_or_new(tiny_bert, sentiment_csv, tmp_path, point):
    from unfreeze.config.schema import RunConfig
    from unfreeze.training.run import train
    from unfreeze.training.run_dir import check_run_dir, is_finished

    def config(seed):
        return run_config(tiny_bert, sentiment_csv, seed=seed, train={"epochs": 1, "threads": 1, "save_model": False})

    out = tmp_path / "run"
    old = train(RunConfig.model_validate(config(0)), out, progress=False)
    new_cfg = tmp_path / "new.yaml"
    new_cfg.write_text(yaml.safe_dump(config(1)))
    killed = subprocess.run([sys.executable, "-c", OVERWRITE_RUN, str(new_cfg), str(out)],
                            env=child_env(fault=point), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    check_run_dir(out, overwrite=True)  # finishes the interrupted swap (what `train --overwrite` does first)
    assert is_finished(out)
    seed = yaml.safe_load((out / "config.yaml").read_text())["seed"]
    metrics = json.loads((out / "metrics.json").read_text())
    if point == "swap.new_staged":  # the journal exists: the new run wins
        assert seed == 1
    assert seed == 1 or metrics == json.loads(json.dumps(old))  # old run untouched, or the complete new one
    assert not (tmp_path / ".swap").exists()  # recovery tidied up


def _flip(path):
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(data)


# (damage, freeze, store dtype, array): every kind of cached file — fp16 training token states, fp32 val/test
# token states, pooled head vectors (fp16 train, fp32 val/test) — and every kind of damage
CACHE_DAMAGE = [("flipped", {"top_k": 1}, "float16", "layer1"), ("flipped", {"top_k": 1}, "float32", "layer1"),
                ("flipped", "head", "float16", "mean2"), ("flipped", "head", "float32", "mean2"),
                ("truncated", {"top_k": 1}, "float32", "layer1"), ("zero_length", "head", "float32", "mean2"),
                ("no_manifest", {"top_k": 1}, "float16", "layer1")]


@pytest.mark.parametrize("damage, freeze, dtype, array", CACHE_DAMAGE)
def test_corrupted_cache_shard_is_recomputed_and_metrics_equal_a_clean_run(tiny_bert, sentiment_csv, tmp_path,
                                                                            monkeypatch, caplog, damage, freeze,
                                                                            dtype, array):
    """With DEFAULT settings (no UNFREEZE_CACHE_VERIFY): a damaged shard is found on open, deleted with one
    warning, its examples recomputed, and the metrics equal the clean run's."""
    import os

    from unfreeze.config.schema import RunConfig
    from unfreeze.io.integrity import forget_verified
    from unfreeze.training import cache
    from unfreeze.training.callbacks import RunCallbacks
    from unfreeze.training.run import train

    monkeypatch.delenv("UNFREEZE_CACHE_VERIFY", raising=False)
    cfg = RunConfig.model_validate(run_config(tiny_bert, sentiment_csv, freeze=freeze,
                                              train={"epochs": 1, "threads": 1, "save_model": False}))
    clean = train(cfg, tmp_path / "clean", progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))
    shards = sorted((tmp_path / "cache").glob(f"*-{dtype}/shard-*"))
    assert shards and all((s / "manifest.json").is_file() for s in shards)
    target = next(s for s in shards if (s / f"{array}.npy").is_file())
    layer = target / f"{array}.npy"
    stat = layer.stat()
    if damage == "truncated":
        layer.write_bytes(layer.read_bytes()[:-100])
    elif damage == "flipped":  # keeps the length and, like a bit flipped on disk, the mtime
        _flip(layer)
        os.utime(layer, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    elif damage == "zero_length":
        layer.write_bytes(b"")
    else:
        (target / "manifest.json").unlink()
    forget_verified()  # as a new process: it has checked no shard yet
    cache.reset_memory()
    before = cache.STATS["forward_examples"]
    again = train(cfg, tmp_path / "again", progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))
    assert cache.STATS["forward_examples"] > before  # the damaged shard's examples were recomputed
    warnings = [r for r in caplog.records if "damaged shard" in r.getMessage()]
    assert len(warnings) == 1 and target.name in warnings[0].getMessage()
    assert again["val"] == clean["val"] and again["test"] == clean["test"]
    assert again["history"][0]["val_loss"] == clean["history"][0]["val_loss"]


def test_quoted_tsv_with_tabs_and_newlines_keeps_every_row(tmp_path):
    import pandas as pd

    from unfreeze.data.sequence import read_table

    frame = pd.DataFrame({"text": ["a\ttab", "two\nlines", 'say "hi"', "plain"], "label": ["x", "y", "x", "y"]})
    path = tmp_path / "d.tsv"
    frame.to_csv(path, sep="\t", index=False)
    pd.testing.assert_frame_equal(read_table(path), frame)  # pandas' own writer is the reference


def test_header_only_table_is_one_data_error(tmp_path):
    from unfreeze.errors import DataError
    from unfreeze.data.sequence import read_table

    for name in ("h.csv", "h.tsv"):
        (tmp_path / name).write_text("text,label\n" if name.endswith("csv") else "text\tlabel\n")
        with pytest.raises(DataError, match="no data rows"):
            read_table(tmp_path / name)


def test_dollar_and_html_in_labels_and_arm_names_render_a_report(tiny_bert, tmp_path):
    from tiny import synthetic_frame

    frame = synthetic_frame(120, classes=2)
    names = sorted(frame["label"].unique())
    frame["label"] = frame["label"].map({names[0]: "$\\frac{x$", names[1]: "<b>cost $5</b>"})
    frame.to_csv(tmp_path / "d.csv", index=False)
    spec = study_spec(tiny_bert, tmp_path / "d.csv", arms={"$\\nosuchcmd{$ <i>": {"optim.lr": 1e-3}})
    run_study(StudyConfig.model_validate(spec), tmp_path / "study", echo=lambda *_: None, progress=False)
    md = (tmp_path / "study" / "report.md").read_text()
    # markdown: a tag-like `<` backslash-escaped (CommonMark shows it as text), no HTML entity (issue 25)
    assert "$\\nosuchcmd{$ \\<i>" in md and __import__("re").search(r"(?<!\\)<i>", md) is None
    page = (tmp_path / "study" / "report.html").read_text()
    assert "data:image/png;base64," in page and "<b>cost" not in page


def test_dry_run_of_a_huge_grid_warns_and_summarises_per_arm(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    import unfreeze.study.estimate as estimate

    monkeypatch.setattr(estimate, "estimate_job", lambda job, **_: 1.0)
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(study_spec(tiny_bert, sentiment_csv, grid={"optim.lr": [1e-3, 1e-2, 1e-4]},
                                             seeds=list(range(70)))))
    result = CliRunner().invoke(app, ["study", str(cfg), "--out", str(tmp_path / "s"), "--dry-run"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "210 runs (over 200)" in result.output
    assert result.output.count(" 70 ") >= 3 and "to run" in result.output
    assert len(result.output.splitlines()) < 40


def test_adapter_folder_with_only_a_pickle_is_refused_in_one_line(tmp_path):
    from unfreeze.errors import UnfreezeError
    from unfreeze.model.checkpoint import _load_adapter

    (tmp_path / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UnfreezeError, match="only adapter_model.bin"):
        _load_adapter(tmp_path, {"adapter_of": "x"})


# ---------------------------------------------------------------------------------------------------------
# Bad input found before any work: --set values, output locations, broken saved models


def _config_file(tiny_bert, sentiment_csv, tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1})))
    return path


def test_invalid_yaml_in_set_is_one_line_rc_2(tiny_bert, sentiment_csv, tmp_path):
    cfg = _config_file(tiny_bert, sentiment_csv, tmp_path)
    result = CliRunner().invoke(app, ["train", str(cfg), "--out", str(tmp_path / "r"), "--set", "train.epochs=[1"])
    assert result.exit_code == 2, result.output
    assert "--set 'train.epochs=[1'" in result.output and "not valid YAML" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "r").exists()


@pytest.mark.parametrize("where", ["file", "dot"])
def test_unusable_out_is_refused_before_training(tiny_bert, sentiment_csv, tmp_path, monkeypatch, where):
    cfg = _config_file(tiny_bert, sentiment_csv, tmp_path)
    calls = []
    import unfreeze.training.run as training

    monkeypatch.setattr(training, "prepare_parts", lambda *a, **k: calls.append(1) or (_ for _ in ()).throw(
        AssertionError("training started")))
    if where == "file":
        target = tmp_path / "taken.txt"
        target.write_text("not a folder")
        out = str(target)
    else:
        monkeypatch.chdir(tmp_path)  # tmp_path holds run.yaml: `--out .` names a non-empty folder
        out = "."
    result = CliRunner().invoke(app, ["train", str(cfg), "--out", out])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and calls == []
    assert ("is a file" in result.output) if where == "file" else ("current folder" in result.output)


def test_predict_on_a_broken_saved_model_is_one_line_rc_2(tmp_path):
    best = tmp_path / "best"
    best.mkdir()
    (best / "unfreeze.json").write_text("{not json")
    texts = tmp_path / "in.csv"
    texts.write_text("text\nhello\n")
    result = CliRunner().invoke(app, ["predict", str(best), str(texts), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 2 and "malformed" in result.output and "Traceback" not in result.output
    (best / "unfreeze.json").write_text(json.dumps({"labels": ["a", "b"], "model": {}, "task": "sequence"}))
    result = CliRunner().invoke(app, ["predict", str(best), str(texts), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 2 and "no model.safetensors" in result.output


def test_disk_full_while_saving_best_is_one_line_and_keeps_the_previous_run(tiny_bert, sentiment_csv, tmp_path,
                                                                              monkeypatch):
    """ENOSPC inside transformers' own save (not our atomic writes) must still be one DiskFullError line, with the
    half-written staging folder removed and the run already at --out left as it was."""
    import errno

    import unfreeze.training.run_dir as run_dir
    from unfreeze.config.load import parse_run_config
    from unfreeze.errors import DiskFullError
    from unfreeze.training.run import train

    config = parse_run_config(run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1}))
    out = tmp_path / "run"
    train(config, out, progress=False)
    before = (out / "metrics.json").read_bytes()

    def full(target, *args, **kwargs):
        target.mkdir(parents=True, exist_ok=True)
        (target / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_dir, "save_model", full)
    with pytest.raises(DiskFullError, match="disk full while writing"):
        train(config, out, overwrite=True, progress=False)
    assert (out / "metrics.json").read_bytes() == before
    staging = tmp_path / ".unfinished"
    assert not staging.exists() or not any(staging.iterdir())
