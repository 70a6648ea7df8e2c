"""Issue #26, paths and names: export and `--out` never replace or fill what unfreeze did not write, two configs
never share an arm, a name never becomes a colliding or escaping path, and user strings print as they are."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from io_helpers import child_env, mounted_tmpfs
from tiny import run_config, synthetic_frame
from unfreeze.cli import app

pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_bert):
    """One finished tiny run with a saved model; tests that change it work on a copy (`run_copy`)."""
    from unfreeze.config.schema import RunConfig
    from unfreeze.training.run import train

    root = tmp_path_factory.mktemp("trained")
    data = root / "data.csv"
    synthetic_frame(120, seed=0).to_csv(data, index=False)
    out = root / "run"
    train(RunConfig.model_validate(run_config(tiny_bert, data, train={"epochs": 1, "threads": 1})), out,
          progress=False)
    return out


@pytest.fixture
def run_copy(trained_run, tmp_path):
    target = tmp_path / "runs" / "mine"
    shutil.copytree(trained_run, target)
    return target


def invoke(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, result.output


def one_line_rc_2(result, output, *needles):
    assert result.exit_code == 2, output
    assert "Traceback" not in output and output.count("error:") == 1, output
    for needle in needles:
        assert needle in output, output


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs (root bypasses permission bits, not a read-only mount); skips where mounting is refused."""
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as mnt:
        yield mnt


# 1. export never replaces what it did not write


@pytest.mark.parametrize("overwrite", [False, True])
def test_export_refuses_an_unrelated_folder_even_with_overwrite(trained_run, tmp_path, overwrite):
    target = tmp_path / "project"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    result, out = invoke("export", trained_run, "-o", target, *(["--overwrite"] if overwrite else []))
    one_line_rc_2(result, out, "notes.txt")
    assert listing(target) == ["notes.txt"] and (target / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("where", ["run", "best", "inside", "parent"])
def test_export_never_writes_onto_or_into_the_run(run_copy, where):
    before = listing(run_copy)
    target = {"run": run_copy, "best": run_copy / "best", "inside": run_copy / "onnx", "parent": run_copy.parent}[where]
    result, out = invoke("export", run_copy, "-o", target, "--overwrite")
    one_line_rc_2(result, out)
    assert listing(run_copy) == before and (run_copy / "metrics.json").is_file()


def test_export_onto_a_file_is_refused_and_the_file_kept(trained_run, tmp_path):
    target = tmp_path / "model.onnx"
    target.write_text("a file")
    result, out = invoke("export", trained_run, "-o", target, "--overwrite")
    one_line_rc_2(result, out, "is a file")
    assert target.read_text() == "a file"


def test_export_leaves_a_sibling_tmp_folder_it_did_not_create(trained_run, tmp_path):
    (tmp_path / "exported.tmp").mkdir()
    (tmp_path / "exported.tmp" / "keep.txt").write_text("mine")
    result, out = invoke("export", trained_run, "-o", tmp_path / "exported")
    assert result.exit_code == 0, out
    assert (tmp_path / "exported" / "model.onnx").is_file()
    assert (tmp_path / "exported.tmp" / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported", "exported.tmp"]  # no staging left behind


def test_export_replaces_an_earlier_export_only_with_overwrite(trained_run, tmp_path):
    target = tmp_path / "exported"
    assert invoke("export", trained_run, "-o", target)[0].exit_code == 0
    one_line_rc_2(*invoke("export", trained_run, "-o", target), "--overwrite")
    result, out = invoke("export", trained_run, "-o", target, "--format", "onnx", "--overwrite")
    assert result.exit_code == 0, out
    assert (target / "model.onnx").is_file()


def test_export_to_the_current_folder_is_one_line(trained_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    one_line_rc_2(*invoke("export", trained_run, "-o", "."), "current folder")
    assert listing(tmp_path) == ["notes.txt"]


def test_export_to_a_read_only_folder_is_one_line(trained_run, read_only_dir):
    one_line_rc_2(*invoke("export", trained_run, "-o", read_only_dir / "exported"), "not a writable folder")


def test_export_of_an_unfinished_run_is_refused(run_copy, tmp_path):
    (run_copy / "metrics.json").unlink()
    one_line_rc_2(*invoke("export", run_copy, "-o", tmp_path / "exported"), "unfinished run")
    one_line_rc_2(*invoke("export", run_copy / "best", "-o", tmp_path / "exported"), "unfinished run")
    assert not (tmp_path / "exported").exists()


def test_export_of_a_run_without_a_model_says_how_to_get_one(run_copy, tmp_path):
    shutil.rmtree(run_copy / "best")
    one_line_rc_2(*invoke("export", run_copy, "-o", tmp_path / "exported"), "saved no model", "save_model=true")


def test_export_takes_arm_for_a_study_folder(trained_run, tmp_path):
    study = tmp_path / "study"
    run = study / "runs" / "abc123"
    shutil.copytree(trained_run, run)
    (run / "run.json").write_text(json.dumps({"run_id": "abc123", "arm": "all", "seed": 0, "fold": -1,
                                              "overrides": {}}))
    (study / "study.json").write_text(json.dumps({"name": "s", "grid_keys": []}))
    one_line_rc_2(*invoke("export", study, "-o", tmp_path / "exported"), "--arm")
    result, out = invoke("export", study, "--arm", "all", "-o", tmp_path / "exported")
    assert result.exit_code == 0, out
    assert (tmp_path / "exported" / "model.onnx").is_file()


@pytest.mark.parametrize("where", ["run_file", "input", "folder"])
def test_predict_never_replaces_a_run_file_its_input_or_a_folder(run_copy, tmp_path, where):
    texts = tmp_path / "in.csv"
    texts.write_text("text\ngood movie\nbad film\n")
    target = {"run_file": run_copy / "predictions_test.csv", "input": texts, "folder": tmp_path / "runs"}[where]
    before = {p: p.read_bytes() for p in [texts, *run_copy.rglob("*")] if p.is_file()}
    one_line_rc_2(*invoke("predict", run_copy, texts, "-o", target), "-o")
    assert {p: p.read_bytes() for p in before} == before


SWAP_CHILD = """
import shutil, sys
from unfreeze.io.swap import swap_dir
shutil.copytree(sys.argv[1], sys.argv[2])
swap_dir(sys.argv[2], sys.argv[1])
"""


@pytest.mark.faults
@pytest.mark.parametrize("command", ["predict", "export"])
def test_a_kill_between_the_swap_renames_is_recovered_on_read(run_copy, tmp_path, command):
    killed = subprocess.run([sys.executable, "-c", SWAP_CHILD, str(run_copy), str(tmp_path / "stage")],
                            env=child_env(fault="swap.old_moved"), capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not run_copy.exists()  # the window between the two renames
    if command == "predict":
        texts = tmp_path / "in.csv"
        texts.write_text("text\ngood movie\nbad film\n")
        result, out = invoke("predict", run_copy, texts, "-o", tmp_path / "pred.csv")
        assert result.exit_code == 0, out
        assert len((tmp_path / "pred.csv").read_text().splitlines()) == 3
    else:
        result, out = invoke("export", run_copy, "-o", tmp_path / "exported")
        assert result.exit_code == 0, out
    assert (run_copy / "metrics.json").is_file() and not (run_copy.parent / ".swap").exists()


# 2. --out is never the current folder, a parent of it, home, the root, or a folder of someone else's files


@pytest.fixture
def no_work(monkeypatch):
    """Fails the test if training or a study starts: every refusal below comes before any work."""
    import unfreeze.study.runner as runner
    import unfreeze.training.run as training

    def started(*args, **kwargs):
        raise AssertionError("work started")

    monkeypatch.setattr(training, "prepare_parts", started)
    monkeypatch.setattr(runner, "run_study", started)


@pytest.fixture
def project(tmp_path):
    """A user's folder: notes and sources, with the run / study files beside them."""
    folder = tmp_path / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "src" / "code.py").write_text("x = 1")
    return folder


def _configs(tiny_bert, folder: Path) -> dict[str, Path]:
    data = folder.parent / "data.csv"
    synthetic_frame(60, seed=0).to_csv(data, index=False)
    base = run_config(tiny_bert, data, train={"epochs": 1, "threads": 1, "save_model": False})
    (folder.parent / "run.yaml").write_text(yaml.safe_dump(base))
    (folder.parent / "study.yaml").write_text(yaml.safe_dump({"name": "s", "base": base, "baseline": False}))
    return {"train": folder.parent / "run.yaml", "study": folder.parent / "study.yaml"}


@pytest.mark.parametrize("command", ["train", "study"])
@pytest.mark.parametrize("where", ["dot", "parent", "home", "root", "foreign"])
def test_out_never_names_a_folder_unfreeze_did_not_write(tiny_bert, project, monkeypatch, no_work, command, where):
    configs = _configs(tiny_bert, project)
    monkeypatch.chdir(project / "src" if where in ("dot", "parent") else project.parent)
    if where == "home":
        monkeypatch.setenv("HOME", str(project))
    out = {"dot": ".", "parent": "..", "home": str(project), "root": "/", "foreign": str(project)}[where]
    before = listing(project)
    result, output = invoke(command, configs[command], "--out", out, *(["--overwrite"] if command == "train" else []))
    one_line_rc_2(result, output, "--out")
    assert listing(project) == before and (project / "notes.txt").read_text() == "mine"


def test_study_out_that_is_a_file_or_read_only_is_one_line(tiny_bert, project, read_only_dir, no_work):
    configs = _configs(tiny_bert, project)
    one_line_rc_2(*invoke("study", configs["study"], "--out", project / "notes.txt"), "is a file")
    one_line_rc_2(*invoke("study", configs["study"], "--out", read_only_dir), "not a writable folder")


def test_study_out_dot_never_mixes_with_an_existing_runs_folder(tiny_bert, project, monkeypatch, no_work):
    configs = _configs(tiny_bert, project)
    (project / "runs").mkdir()
    monkeypatch.chdir(project)
    one_line_rc_2(*invoke("study", configs["study"], "--out", "."), "current folder")
    assert listing(project / "runs") == []


def test_train_out_dot_overwrite_keeps_the_current_folder_through_the_library(tiny_bert, project, monkeypatch,
                                                                              no_work):
    from unfreeze.config.load import load_run_config
    from unfreeze.errors import UnfreezeError
    from unfreeze.training.run import train

    configs = _configs(tiny_bert, project)
    monkeypatch.chdir(project)
    with pytest.raises(UnfreezeError, match="current folder"):
        train(load_run_config(configs["train"], []), Path("."), overwrite=True, progress=False)
    assert (project / "notes.txt").read_text() == "mine"


def test_probe_out_that_is_a_file_is_one_line_before_any_work(tiny_bert, project, no_work, monkeypatch):
    import unfreeze.probe.sequence as probe

    monkeypatch.setattr(probe, "run_probe", lambda *a, **k: (_ for _ in ()).throw(AssertionError("work started")))
    configs = _configs(tiny_bert, project)
    one_line_rc_2(*invoke("probe", configs["train"], "--out", project / "notes.txt"), "is a file")
    assert (project / "notes.txt").read_text() == "mine"


# 4. two configs never share an arm name, and results never pool them


def test_two_model_folders_named_best_are_two_arms(tiny_bert, tmp_path, sentiment_csv):
    from unfreeze.config.study import StudyConfig
    from unfreeze.study.grid import expand

    for owner in ("A", "B"):
        shutil.copytree(tiny_bert, tmp_path / owner / "best")
    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
    study = StudyConfig.model_validate({"name": "s", "base": base, "seeds": [0, 1], "grid": {
        "model.name": [str(tmp_path / "A" / "best"), str(tmp_path / "B" / "best")]}})
    runs = expand(study)
    arms = {run.arm: run.config.model.name for run in runs}
    assert len(arms) == 2 and len(set(arms.values())) == 2
    assert sorted(arms) == ["model=best (A/best)", "model=best (B/best)"]


def test_results_of_an_older_study_never_pool_two_configs_under_one_name(trained_run, tmp_path):
    from unfreeze.study.results import collect_results

    study = tmp_path / "study"
    for run_id, folder, seed in (("r1", "A/best", 0), ("r2", "B/best", 0), ("r3", "A/best", 1)):
        shutil.copytree(trained_run, study / "runs" / run_id)
        (study / "runs" / run_id / "run.json").write_text(json.dumps(
            {"run_id": run_id, "arm": "model=best", "seed": seed, "fold": -1, "overrides": {"model.name": folder}}))
    (study / "study.json").write_text(json.dumps({"name": "s", "grid_keys": ["model.name"]}))
    frame = collect_results(study)
    sizes = frame.groupby("arm").size().sort_values()
    assert list(sizes) == [1, 2] and all(name.startswith("model=best #") for name in sizes.index)


def test_predict_arm_of_an_older_study_never_averages_two_configs(trained_run, tmp_path):
    from unfreeze.io.paths import overrides_hash

    study = tmp_path / "study"
    for run_id, folder in (("r1", "A/best"), ("r2", "B/best")):
        shutil.copytree(trained_run, study / "runs" / run_id)
        (study / "runs" / run_id / "run.json").write_text(json.dumps(
            {"run_id": run_id, "arm": "model=best", "seed": 0, "fold": -1, "overrides": {"model.name": folder}}))
    (study / "study.json").write_text(json.dumps({"name": "s", "grid_keys": ["model.name"]}))
    texts = tmp_path / "in.csv"
    texts.write_text("text\ngood movie\n")
    one_line_rc_2(*invoke("predict", study, texts, "-o", tmp_path / "p.csv", "--arm", "model=best"),
                  "2 different configs")
    name = f"model=best #{overrides_hash({'model.name': 'B/best'})}"
    result, out = invoke("predict", study, texts, "-o", tmp_path / "p.csv", "--arm", name)
    assert result.exit_code == 0, out


# 5. names become collision-free, non-escaping path components


def test_cv_ensembles_of_arms_fast_and_Fast_do_not_overwrite_each_other(tiny_bert, sentiment_csv, tmp_path):
    from unfreeze.config.study import StudyConfig
    from unfreeze.study.runner import run_study

    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
    study = StudyConfig.model_validate({"name": "s", "base": base, "baseline": False, "cv": {"folds": 2},
                                        "arms": {"Fast": {"optim": {"lr": 3e-3}}, "fast": {"optim": {"lr": 1e-3}}}})
    run_study(study, tmp_path / "study", progress=False, echo=lambda *_: None)
    written = [json.loads(p.read_text()) for p in (tmp_path / "study" / "ensembles").glob("*/metrics.json")]
    assert sorted(m["arm"] for m in written) == ["Fast", "fast"]
    folders = [p.name.lower() for p in (tmp_path / "study" / "ensembles").iterdir()]
    assert len(set(folders)) == 2  # distinct on a case-insensitive disk too


def adversarial_names() -> list[str]:
    cafe = "café"
    names = ["fast", "Fast", "FAST", "fast ", " fast", "fa-st", "fa_st", "fa st", "fa/st", "fa\\st", "fa:st",
             unicodedata.normalize("NFC", cafe), unicodedata.normalize("NFD", cafe), "CAFÉ", "ﬁle", "file",
             "..", ".", "../../etc", "/etc/passwd", "a/../../b", "~", "$HOME", "%2e%2e", "con", "CON", "nul.txt",
             "[/oops]", "[bold]x[/bold]", "x" * 300, "y" * 300 + "a", "y" * 300 + "b", "-", "--", "a-", "-a",
             "top-2", "top-2-s0", "top-2-0123456789", "数据", "データ", "🙂", "a\u200db", "ab", "", " "]
    return names


def test_adversarial_arm_names_never_collide_or_escape(tiny_bert, sentiment_csv, tmp_path):
    """Named arms with hostile names: each keeps its own arm and its own ensemble folder (also case-folded), and
    every folder stays inside `ensembles/` and is one valid file name."""
    from unfreeze.config.study import StudyConfig
    from unfreeze.study.ensemble import ensemble_folder
    from unfreeze.study.grid import expand

    names = adversarial_names()
    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
    arms = {name: {"optim": {"lr": 1e-4 * (i + 1)}} for i, name in enumerate(names)}
    runs = expand(StudyConfig.model_validate({"name": "s", "base": base, "seeds": [0, 1, 10], "arms": arms}))
    assert {run.arm for run in runs} == set(names)
    root = (tmp_path / "ensembles").resolve()
    folders = {ensemble_folder(run.arm, run.seed) for run in runs}
    assert len(folders) == len(names) * 3
    for key in (str.lower, str.casefold, lambda f: unicodedata.normalize("NFKC", f).casefold()):
        assert len({key(f) for f in folders}) == len(folders)
    for folder in folders:
        assert folder.isascii() and folder not in (".", "..") and "/" not in folder and "\\" not in folder
        assert len(folder.encode()) <= 255 and not any(c < " " for c in folder)
        assert (root / folder).resolve().parent == root
        os.makedirs(tmp_path / "ensembles" / folder)  # a real file system takes it
    assert len(list((tmp_path / "ensembles").iterdir())) == len(folders)


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "nul\x00", "[/x]\nline", "sep\u2028x"])
def test_control_characters_in_an_arm_name_are_one_line_naming_it(tiny_bert, sentiment_csv, tmp_path, name):
    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": base, "arms": {name: {"optim": {"lr": 1e-3}}}}))
    result, out = invoke("validate", path)
    assert result.exit_code == 2 and "Traceback" not in out and repr(name) in out, out
    one_line_rc_2(*invoke("study", path, "--out", tmp_path / "study"), repr(name))
    assert not (tmp_path / "study" / "runs").exists()


def test_control_characters_from_a_grid_value_are_refused(tiny_bert, sentiment_csv):
    from unfreeze.config.study import StudyConfig
    from unfreeze.errors import ConfigError
    from unfreeze.study.grid import expand

    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
    study = StudyConfig.model_validate({"name": "s", "base": base, "grid": {"data.text_column": ["text", "te\nxt"]}})
    with pytest.raises(ConfigError, match=r"control character '\\n'"):
        expand(study)


# user strings print as they are


def markup_named_study(tiny_bert, sentiment_csv, tmp_path, name: str) -> Path:
    """A study file whose arms (and name) look like rich markup."""
    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": base, "baseline": False,
                                    "arms": {"[/oops]": {"optim": {"lr": 1e-3}}, "[bold]b": {"optim": {"lr": 2e-3}}}}))
    return path


def test_arm_named_like_rich_markup_runs_and_prints_as_written(tiny_bert, sentiment_csv, tmp_path):
    path = markup_named_study(tiny_bert, sentiment_csv, tmp_path, "[red]s")
    result, out = invoke("study", path, "--out", tmp_path / "study", "--quiet")
    assert result.exit_code == 0, out
    assert "[/oops]" in out and "[bold]b" in out and "study [red]s" in out


def test_tensorboard_folders_of_two_run_names_never_meet(tmp_path):
    """`a b` and `a_b` (and `Fast` / `fast`) used to share one TensorBoard folder: the second run was skipped as
    finished, or cleared the first one's events."""
    pytest.importorskip("tensorboard")
    from unfreeze.tracking.tensorboard_backend import TensorboardBackend

    backend = TensorboardBackend(tmp_path, "exp")
    folders = {backend._folder(name, None, None) for name in ("a b", "a_b", "a/b", "Fast", "fast", "..")}
    assert len({str(f).lower() for f in folders}) == 6
    assert all(f.parent == tmp_path / "tensorboard" for f in folders)


def test_dry_run_table_prints_markup_like_arm_names_as_written(tiny_bert, sentiment_csv, tmp_path):
    path = markup_named_study(tiny_bert, sentiment_csv, tmp_path, "s")
    result, out = invoke("study", path, "--out", tmp_path / "study", "--dry-run")
    assert result.exit_code == 0, out
    assert "[/oops]" in out and "[bold]b" in out


@pytest.mark.parametrize("command", ["train", "study", "export"])
def test_one_kind_of_folder_is_never_replaced_by_another(tiny_bert, trained_run, project, no_work, command):
    """`train --overwrite` onto a study, `study` into a run folder, `export --overwrite` onto a study: refused."""
    configs = _configs(tiny_bert, project)
    study = project.parent / "studies" / "s"
    (study / "runs").mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"name": "s"}))
    before = {"train": listing(study), "study": listing(trained_run), "export": listing(study)}[command]
    args = {"train": ["train", configs["train"], "--out", study, "--overwrite"],
            "study": ["study", configs["study"], "--out", trained_run],
            "export": ["export", trained_run, "-o", study, "--overwrite"]}[command]
    one_line_rc_2(*invoke(*args), "unfreeze only fills or replaces a folder it wrote")
    assert (listing(study) if command != "study" else listing(trained_run)) == before


# Hostile-tester follow-ups of issue #26


def _fake_study(trained_run, where: Path) -> Path:
    """A study folder as `unfreeze study` leaves it: study.json, one run under runs/, a baseline folder."""
    (where / "runs").mkdir(parents=True)
    shutil.copytree(trained_run, where / "runs" / "r1")
    (where / "baseline" / "tfidf").mkdir(parents=True)
    (where / "study.json").write_text(json.dumps({"name": "s", "selection_metric": "accuracy", "run_ids": ["r1"],
                                                  "grid_keys": []}))
    return where


def test_train_overwrite_never_deletes_a_users_hidden_or_prediction_like_entries(tiny_bert, project, no_work):
    """A bare metrics.json is not a run, and `.git`, `.notes.txt`, `predictions_mine.csv` are never ours."""
    configs = _configs(tiny_bert, project)
    fake = project.parent / "A1"
    (fake / ".git").mkdir(parents=True)
    (fake / ".git" / "HEAD").write_text("x")
    (fake / "metrics.json").write_text("{}")
    (fake / ".notes.txt").write_text("n")
    before = listing(fake)
    one_line_rc_2(*invoke("train", configs["train"], "--out", fake, "--overwrite"), "unfreeze only fills")
    assert listing(fake) == before
    run = project.parent / "A2"  # a real run's files, plus the user's hidden file and a predictions-like name
    for name in ("config.yaml", "metrics.json", "history.csv"):
        (run / name).parent.mkdir(exist_ok=True)
        (run / name).write_text("{}")
    for extra in (".notes.txt", "predictions_mine.csv"):
        (run / extra).write_text("mine")
        one_line_rc_2(*invoke("train", configs["train"], "--out", run, "--overwrite"), repr(extra))
        (run / extra).unlink()


@pytest.mark.parametrize("command", ["train_run", "train_baseline", "export", "probe", "predict_results",
                                     "predict_study_json"])
def test_nothing_but_the_study_writes_inside_a_study(tiny_bert, trained_run, project, no_work, monkeypatch, command):
    import unfreeze.probe.sequence as probe

    monkeypatch.setattr(probe, "run_probe", lambda *a, **k: (_ for _ in ()).throw(AssertionError("work started")))
    configs = _configs(tiny_bert, project)
    study = _fake_study(trained_run, project.parent / "STUDY")
    (study / "results.csv").write_text("arm\nx\n")
    data = project.parent / "data.csv"
    before = {p: p.read_bytes() for p in study.rglob("*") if p.is_file()}
    args = {"train_run": ["train", configs["train"], "--out", study / "runs" / "r1", "--overwrite"],
            "train_baseline": ["train", configs["train"], "--out", study / "baseline" / "tfidf", "--overwrite"],
            "export": ["export", trained_run, "-o", study / "exported"],
            "probe": ["probe", configs["train"], "--out", study / "probe"],
            "predict_results": ["predict", trained_run, data, "-o", study / "results.csv"],
            "predict_study_json": ["predict", trained_run, data, "-o", study / "study.json"]}[command]
    one_line_rc_2(*invoke(*args), "inside the study", str(study))
    assert {p: p.read_bytes() for p in study.rglob("*") if p.is_file()} == before


def test_a_damaged_study_json_is_one_line_in_report(trained_run, tmp_path):
    study = _fake_study(trained_run, tmp_path / "STUDY")
    (study / "study.json").write_text("id,pred\n1,pos\n")
    one_line_rc_2(*invoke("report", study), "study.json", "damaged")


def test_one_line_plan_never_rewrites_a_finished_study(tiny_bert, sentiment_csv, tmp_path):
    out = tmp_path / "X"
    out.mkdir()
    (out / "study.json").write_text(json.dumps({"name": "s", "selection_metric": "accuracy"}))
    (out / "study.yaml").write_text("the study that ran\n")
    one_line_rc_2(*invoke("study", "--data", sentiment_csv, "--budget", "1m", "--model", tiny_bert, "--out", out,
                          "--dry-run"), "holds a study")
    assert (out / "study.yaml").read_text() == "the study that ran\n" and not (out / "plan.json").exists()


@pytest.mark.parametrize("name", ["study.yaml", "plan.json"])
@pytest.mark.parametrize("command", ["one_line", "study"])
def test_a_users_study_yaml_or_plan_json_is_never_overwritten(tiny_bert, project, sentiment_csv, no_work, name,
                                                              command):
    configs = _configs(tiny_bert, project)
    out = project.parent / "A2"
    out.mkdir()
    (out / name).write_text("mine\n")
    args = (["study", "--data", sentiment_csv, "--budget", "1m", "--model", tiny_bert, "--out", out, "--dry-run"]
            if command == "one_line" else ["study", configs["study"], "--out", out])
    one_line_rc_2(*invoke(*args), repr(name))
    assert listing(out) == [name] and (out / name).read_text() == "mine\n"


def test_probe_out_is_only_an_earlier_probe_folder(tiny_bert, trained_run, project, no_work, monkeypatch):
    import unfreeze.probe.sequence as probe

    monkeypatch.setattr(probe, "run_probe", lambda *a, **k: (_ for _ in ()).throw(AssertionError("work started")))
    configs = _configs(tiny_bert, project)
    (project / "probe.json").write_text("mine")  # a user's probe.json beside their notes
    for out, needle in [(project, "notes.txt"), (trained_run, "run folder"), (trained_run / "best", "saved model"),
                        (trained_run / "best" / "p", "saved model")]:
        before = listing(out) if out.exists() else None
        one_line_rc_2(*invoke("probe", configs["train"], "--out", out), needle)
        assert (listing(out) if out.exists() else None) == before
    assert (project / "probe.json").read_text() == "mine"
    earlier = project.parent / "probe"
    earlier.mkdir()
    (earlier / "probe.json").write_text("{}")
    result, output = invoke("probe", configs["train"], "--out", earlier)
    assert isinstance(result.exception, AssertionError), output  # an earlier probe's folder is accepted


def test_a_run_installed_meanwhile_at_a_new_out_is_kept(tiny_bert, trained_run, tmp_path, monkeypatch):
    """Two `train --out C1` into a new folder: the one that finishes second finds C1 written (simulated here,
    deterministically, by installing the other process's run after this one checked C1, before it swaps its own
    in) and raises UnfreezeError (rc 2 at the CLI)."""
    import unfreeze.training.run as training
    from unfreeze.config.schema import RunConfig
    from unfreeze.errors import UnfreezeError

    data = tmp_path / "data.csv"
    synthetic_frame(60, seed=0).to_csv(data, index=False)
    out = tmp_path / "C1"
    preparing = training.prepare_parts

    def other_process_finishes_meanwhile(*args, **kwargs):
        shutil.copytree(trained_run, out)
        return preparing(*args, **kwargs)

    monkeypatch.setattr(training, "prepare_parts", other_process_finishes_meanwhile)
    before = {p: p.read_bytes() for p in out.parent.glob("C1/**/*") if p.is_file()} if out.exists() else None
    config = RunConfig.model_validate(run_config(tiny_bert, data, train={"epochs": 1, "threads": 1,
                                                                         "save_model": False}))
    with pytest.raises(UnfreezeError, match="another process meanwhile"):
        training.train(config, out, progress=False)
    assert before is None and listing(out) == listing(trained_run)
    assert (out / "metrics.json").read_bytes() == (trained_run / "metrics.json").read_bytes()
    assert not (tmp_path / ".unfinished").exists() or not any((tmp_path / ".unfinished").iterdir())


def test_an_export_installed_meanwhile_at_a_new_o_is_kept_and_exports_say_their_source(trained_run, tmp_path,
                                                                                       monkeypatch):
    import unfreeze.model.export as export
    from unfreeze.errors import UnfreezeError

    out = tmp_path / "EX"
    exporting = export._export_onnx

    def other_process_finishes_meanwhile(best, tmp, opset):
        exporting(best, tmp, opset)
        out.mkdir()
        (out / export.EXPORT_META).write_text('{"the": "other export"}')

    monkeypatch.setattr(export, "_export_onnx", other_process_finishes_meanwhile)
    with pytest.raises(UnfreezeError, match="another process meanwhile"):
        export.export_model(trained_run, out)
    assert listing(out) == [export.EXPORT_META] and json.loads((out / export.EXPORT_META).read_text()) == {
        "the": "other export"}
    assert [p.name for p in tmp_path.iterdir()] == ["EX"]  # this export's staging is gone
    monkeypatch.undo()
    info = json.loads((export.export_model(trained_run, tmp_path / "EX2") / export.EXPORT_META).read_text())
    assert info["exported_from"] == str(trained_run / "best") and info["target"] == str(trained_run)


@pytest.mark.parametrize("command", ["study", "one_line"])
@pytest.mark.parametrize("inside", ["run", "best"])
def test_a_study_is_never_written_inside_a_run_or_a_saved_model(tiny_bert, trained_run, project, sentiment_csv,
                                                                no_work, command, inside):
    configs = _configs(tiny_bert, project)
    out = (trained_run if inside == "run" else trained_run / "best") / "st2"
    args = (["study", configs["study"], "--out", out] if command == "study" else
            ["study", "--data", sentiment_csv, "--budget", "1m", "--model", tiny_bert, "--out", out, "--dry-run"])
    one_line_rc_2(*invoke(*args), "unfreeze only fills", "choose a new --out outside it")
    assert not out.exists()


def test_a_quoted_tilde_in_out_is_the_home_folder(tmp_path, monkeypatch):
    from unfreeze.io.paths import check_out_file, check_out_folder

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)
    assert check_out_folder("~/r", "--out", "run") == tmp_path / "home" / "r"
    assert check_out_file("~/p.csv") == tmp_path / "home" / "p.csv"
    assert not (tmp_path / "~").exists()


def test_save_pretrained_never_replaces_a_folder_it_did_not_write(trained_run, tmp_path):
    """A review found `UnfreezeModel.save_pretrained(path)` replacing whatever was at `path` (and any `path.tmp`):
    `save_pretrained(".")` would have deleted the current folder. It now refuses a foreign folder, a study's inside
    and the current folder; replaces only a saved model; never touches a sibling `<path>.tmp`."""
    from unfreeze import load
    from unfreeze.errors import UnfreezeError

    model = load(trained_run / "best")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    sibling = tmp_path / "copy.tmp"
    sibling.mkdir()
    (sibling / "keep.txt").write_text("keep me")
    with pytest.raises(UnfreezeError, match="not a saved model"):
        model.save_pretrained(mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    saved = model.save_pretrained(tmp_path / "copy")
    assert (saved / "unfreeze.json").is_file() and (sibling / "keep.txt").read_text() == "keep me"
    assert model.save_pretrained(saved) == saved  # a saved model may be replaced
    cwd = os.getcwd()
    try:
        os.chdir(mine)
        with pytest.raises(UnfreezeError):
            model.save_pretrained(".")
    finally:
        os.chdir(cwd)
    assert (mine / "notes.txt").read_text() == "keep me"


# The checks of `study --out` and `predict -o` hold for Python callers of the API functions too


@pytest.mark.parametrize("where", ["foreign", "run", "dot"])
def test_run_study_from_python_checks_its_out_folder(tiny_bert, project, trained_run, monkeypatch, where):
    """`unfreeze.run_study(study, out)` skipped the CLI's `--out` check: it filled a user's folder with a study."""
    import unfreeze
    import unfreeze.study.runner as runner
    from unfreeze.config.load import load_study_config
    from unfreeze.errors import UnfreezeError

    monkeypatch.setattr(runner, "_run_study_locked", lambda *a, **k: (_ for _ in ()).throw(AssertionError("ran")))
    study = load_study_config(_configs(tiny_bert, project)["study"])
    out = {"foreign": project, "run": trained_run, "dot": project / "src"}[where]
    monkeypatch.chdir(project / "src" if where == "dot" else project.parent)
    before = listing(out)
    needle = {"foreign": "holds", "run": "a run folder", "dot": "current folder"}[where]
    with pytest.raises(UnfreezeError, match=f"--out .*{needle}"):
        unfreeze.run_study(study, out, progress=False, echo=lambda *_: None)
    assert listing(out) == before  # not even the lock file


def test_predict_file_from_python_checks_its_output(trained_run, tmp_path):
    """`predict_file(model, input, output)` skipped the CLI's `-o` check: `output` = `input` replaced the input."""
    from unfreeze.errors import UnfreezeError
    from unfreeze.model.predict import predict_file

    data = tmp_path / "new.csv"
    data.write_text("text\na fine movie\n")
    for output, needle in [(data, "is the input file"), (trained_run / "p.csv", "a run folder"), (tmp_path, "folder")]:
        with pytest.raises(UnfreezeError, match=f"-o .*{needle}"):
            predict_file(trained_run / "best", data, output)
    assert data.read_text() == "text\na fine movie\n" and not (trained_run / "p.csv").exists()
    frame = predict_file(trained_run / "best", data, tmp_path / "p.csv")
    assert len(frame) == 1 and (tmp_path / "p.csv").is_file()
