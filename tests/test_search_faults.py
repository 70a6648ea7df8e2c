"""A search never mixes two searches, and its faults are one line (issue #26): a resumed search whose space,
sampler, pruner or base changed is refused (never merged into the stored trials), a SQLite `storage:` file is
owned by one study folder, a damaged or deleted `optuna.db` is one line and keeps every finished run, `--track`
tracks a search, the progress lines keep their `[trial N]`, and the report's pick follows the arms table on ties."""
import json

import pytest
import yaml

import unfreeze.study as study
from unfreeze.config.study import StudyConfig
from unfreeze.errors import ConfigError, UnfreezeError
from unfreeze.training.run import train as REAL_TRAIN

optuna = pytest.importorskip("optuna")

from test_search import make_search, record_training  # noqa: E402


def quiet(*_):
    return None


def trial_numbers(out) -> int:
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{(out / 'optuna.db').resolve()}")
    return len(stored.trials)


@pytest.fixture
def finished(tiny_bert, sentiment_csv, tmp_path):
    """A finished two-trial random search over `optim.lr` (log) and `freeze`."""
    s, out = make_search(tiny_bert, sentiment_csv, trials=2), tmp_path / "study"
    study.run_study(s, out, progress=False, echo=quiet)
    return s, out


@pytest.mark.parametrize("change, named", [
    ({"space": {"optim.lr": {"low": 2e-3, "high": 5e-3, "log": True}, "freeze": ["head", {"top_k": 1}]}},
     r"search.space.optim.lr: \[0.0001, 0.01\] \(log\) → \[0.002, 0.005\] \(log\)"),
    ({"space": {"optim.lr": {"low": 1e-4, "high": 1e-2, "log": True}, "freeze": ["head", "all"]}},
     r"search.space.freeze: \[\"head\", \"{\\\"top_k\\\": 1}\"\] → \[\"head\", \"all\"\]"),
    ({"space": {"optim.lr": {"low": 1e-4, "high": 1e-2}, "freeze": ["head", {"top_k": 1}]}},
     r"search.space.optim.lr: \[0.0001, 0.01\] \(log\) → \[0.0001, 0.01\];"),
    ({"sampler": "tpe"}, "search.sampler: random → tpe"),
    ({"pruner": "median"}, "search.pruner: none → median"),
])
def test_a_changed_search_is_refused_in_one_line_never_merged(finished, change, named, monkeypatch):
    s, out = finished
    before = (out / "results.csv").read_bytes()
    changed = StudyConfig.model_validate({**s.model_dump(), "search": {**s.search.model_dump(), **change}})
    calls = record_training(monkeypatch, lambda config, out_dir: out_dir.name)
    with pytest.raises(ConfigError, match=named) as exc:
        study.run_study(changed, out, progress=False, echo=quiet)
    assert "\n" not in str(exc.value) and "optuna.db" in str(exc.value) and "another --out" in str(exc.value)
    assert calls == [] and trial_numbers(out) == 2 and (out / "results.csv").read_bytes() == before

    from typer.testing import CliRunner

    from unfreeze.cli import app

    path = out.parent / "changed.yaml"
    path.write_text(yaml.safe_dump(changed.model_dump(mode="json", exclude_defaults=True, exclude_none=True)))
    shown = CliRunner().invoke(app, ["study", str(path), "--dry-run", "--out", str(out)])
    assert shown.exit_code == 2 and "another definition" in shown.output and "Traceback" not in shown.output


def test_a_changed_base_is_refused_and_the_same_search_resumes(finished, monkeypatch):
    s, out = finished
    other = StudyConfig.model_validate({**s.model_dump(), "base": {**s.base, "train": {**s.base["train"],
                                                                                        "epochs": 2}}})
    with pytest.raises(ConfigError, match=r"base \(the run config every trial starts from"):
        study.run_study(other, out, progress=False, echo=quiet)
    more = StudyConfig.model_validate({**s.model_dump(), "search": {**s.search.model_dump(), "trials": 3}})
    calls = record_training(monkeypatch, lambda config, out_dir: out_dir.name)
    assert len(study.run_study(more, out, progress=False, echo=quiet)) == 3 and len(calls) == 1  # a bigger budget


def test_a_search_stored_before_the_identity_is_checked_by_its_distributions(tiny_bert, sentiment_csv, tmp_path):
    """An optuna.db written without `unfreeze_search` (an older version): its trials' distributions decide."""
    out = tmp_path / "study"
    out.mkdir()
    old = optuna.create_study(study_name="s", storage=f"sqlite:///{(out / 'optuna.db').resolve()}",
                              direction="maximize")
    old.add_trial(optuna.trial.create_trial(
        params={"optim.lr": 1e-3, "freeze": "head"}, value=0.5,
        distributions={"optim.lr": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True),
                       "freeze": optuna.distributions.CategoricalDistribution(["head", '{"top_k": 1}'])}))
    s = make_search(tiny_bert, sentiment_csv, trials=2)
    with pytest.raises(ConfigError, match=r"search.space.optim.lr: FloatDistribution\(.*in trial 0"):
        study.run_study(s, out, progress=False, echo=quiet)


def test_a_sqlite_storage_belongs_to_one_study_folder(tiny_bert, sentiment_csv, tmp_path):
    storage = f"sqlite:///{(tmp_path / 'shared.db').resolve()}"
    s = make_search(tiny_bert, sentiment_csv, trials=1, storage=storage)
    study.run_study(s, tmp_path / "a", progress=False, echo=quiet)
    with pytest.raises(ConfigError, match=f"belongs to the study folder {tmp_path / 'a'}") as exc:
        study.run_study(s, tmp_path / "b", progress=False, echo=quiet)
    assert "another `name:`" in str(exc.value) and not (tmp_path / "b" / "study.json").exists()
    renamed = StudyConfig.model_validate({**s.model_dump(), "name": "s2"})
    assert len(study.run_study(renamed, tmp_path / "b", progress=False, echo=quiet)) == 1  # its own study name


def test_a_damaged_optuna_db_is_one_line_naming_it_and_the_fix(finished):
    from typer.testing import CliRunner

    from unfreeze.cli import app

    s, out = finished
    (out / "optuna.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(UnfreezeError, match=r"optuna.db: the search's Optuna storage failed \(file is not a "
                                            r"database\).*mv .*optuna.db .*optuna.db.bad"):
        study.run_study(s, out, progress=False, echo=quiet)
    path = out.parent / "s.yaml"
    path.write_text(yaml.safe_dump(s.model_dump(mode="json", exclude_defaults=True)))
    for args in (["study", str(path), "--out", str(out)], ["study", str(path), "--dry-run", "--out", str(out)]):
        shown = CliRunner().invoke(app, args)
        assert shown.exit_code == 2 and "Traceback" not in shown.output, shown.output
        assert len([line for line in shown.output.splitlines() if "error:" in line]) == 1


def test_optuna_db_deleted_mid_study_stops_in_one_line_and_keeps_the_trial(tiny_bert, sentiment_csv, tmp_path,
                                                                          monkeypatch):
    """The db vanishes while trial 1 trains: the study stops with one line once it tells the result, the trial's
    finished run folder is kept, and the rerun (a new db) reuses both finished runs instead of retraining them."""
    import unfreeze.training.run as training

    s, out = make_search(tiny_bert, sentiment_csv, trials=3), tmp_path / "study"
    started = []

    def train(config, out_dir, **kw):
        started.append(out_dir.name)
        if len(started) == 2:
            (out / "optuna.db").unlink()
        return REAL_TRAIN(config, out_dir, **kw)

    monkeypatch.setattr(training, "train", train)
    with pytest.raises(UnfreezeError, match=r"optuna.db: the search's Optuna storage failed") as exc:
        study.run_study(s, out, progress=False, echo=quiet)
    assert "\n" not in str(exc.value)
    assert all((out / "runs" / run_id / "metrics.json").exists() for run_id in started)
    first_two = list(started)
    started.clear()
    results = study.run_study(s, out, progress=False, echo=quiet)
    assert len(results) == 3 and set(first_two) <= set(results["run_id"])
    assert not set(started) & set(first_two)  # the kept runs were told again, not retrained


@pytest.mark.parametrize("bound, match", [
    ({"low": 1e-5, "high": float("inf")}, "finite numbers"),
    ({"low": float("nan"), "high": 1e-3}, "finite numbers"),
    ({"low": 1e-3, "high": 1e-5}, "low < high"),
    ({"low": 0, "high": 1e-3, "log": True}, "needs low > 0"),
    ({"low": 1e-5, "high": 1e-3, "log": "yes_please"}, r"log: write true or false, got 'yes_please'"),
])
def test_bad_ranges_are_refused_in_the_schema(tiny_bert, sentiment_csv, bound, match):
    with pytest.raises(Exception, match=match):
        make_search(tiny_bert, sentiment_csv, space={"optim.lr": bound})


def test_documented_range_spelling_loads_from_yaml(tiny_bert, sentiment_csv, tmp_path):
    """`{low: 1e-5, high: 1e-3}` as docs/config.md writes it (YAML 1.1 reads `1e-5` as text)."""
    from tiny import run_config
    from unfreeze.config.load import load_study_config

    base = run_config(tiny_bert, sentiment_csv)
    path = tmp_path / "s.yaml"
    path.write_text(f"base: {json.dumps(base)}\nsearch:\n  space:\n    optim.lr: {{low: 1e-5, high: 1e-3, log: true}}"
                    "\n    optim.weight_decay: {low: '0', high: '1e-2'}\n")
    s = load_study_config(path)
    assert s.search.space["optim.lr"] == {"low": 1e-5, "high": 1e-3, "log": True}
    assert s.search.space["optim.weight_decay"] == {"low": 0.0, "high": 1e-2}  # numeric text: a number


def test_track_logs_a_search_as_a_parent_and_one_child_per_trial(tiny_bert, sentiment_csv, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    s, out = make_search(tiny_bert, sentiment_csv, trials=2), tmp_path / "study"
    results = study.run_study(s, out, progress=False, echo=quiet, track=["mlflow"])
    client = MlflowClient(f"sqlite:///{(out / 'mlflow.db').resolve()}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    parents = [r for r in runs if MLFLOW_PARENT_RUN_ID not in r.data.tags]
    children = [r for r in runs if MLFLOW_PARENT_RUN_ID in r.data.tags]
    assert len(parents) == 1 and sorted(r.data.tags["run_id"] for r in children) == sorted(results["run_id"])
    assert parents[0].data.params["search.sampler"] == "random"
    study.run_study(s, out, progress=False, echo=quiet, track=["mlflow"])  # resumed: nothing logged twice
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 3


def test_trial_lines_keep_their_prefix_through_rich(tiny_bert, sentiment_csv, tmp_path):
    from typer.testing import CliRunner

    from unfreeze.cli import app

    s = make_search(tiny_bert, sentiment_csv, trials=1)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s.model_dump(mode="json", exclude_defaults=True)))
    shown = CliRunner().invoke(app, ["study", str(path), "--out", str(tmp_path / "study"), "--quiet"])
    assert shown.exit_code == 0, shown.output
    assert "[trial 0] " in shown.output


def test_tied_trials_the_pick_is_the_arms_tables_best(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    """Every trial scores the same: the report's pick and the arms table's "best (by val)" name one arm, and the
    best trial re-run with more seeds is that arm too."""
    import unfreeze.training.run as training
    from unfreeze.io import read_json, write_json

    def tied(config, out_dir, **kw):
        metrics = REAL_TRAIN(config, out_dir, **kw)
        metrics["val"]["f1_macro"] = 0.5
        saved = read_json(out_dir / "metrics.json")
        saved["val"]["f1_macro"] = 0.5
        write_json(out_dir / "metrics.json", saved)
        return metrics

    monkeypatch.setattr(training, "train", tied)
    s = make_search(tiny_bert, sentiment_csv, sampler="grid", trials=3,
                    space={"freeze": ["head", {"top_k": 1}, "all"]})
    out = tmp_path / "study"
    results = study.run_study(s, out, progress=False, echo=quiet)
    report = (out / "report.md").read_text()
    table_best = [line for line in report.splitlines() if "best (by val)" in line][0].split("|")[1].strip()
    pick = report.split("Pick: trial ", 1)[1].split("(", 1)[1].split(")", 1)[0]
    assert pick == table_best == min(results["arm"])


@pytest.mark.parametrize("storage", ["notaurl", "postgresql://nohost.invalid:1/db"])
def test_an_unusable_storage_url_is_one_line(tiny_bert, sentiment_csv, tmp_path, storage):
    """Widened: a storage URL SQLAlchemy cannot parse, or one whose database driver is missing (or unreachable)."""
    from typer.testing import CliRunner

    from unfreeze.cli import app

    s = make_search(tiny_bert, sentiment_csv, trials=1, storage=storage)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(s.model_dump(mode="json", exclude_defaults=True)))
    shown = CliRunner().invoke(app, ["study", str(path), "--dry-run", "--out", str(tmp_path / "out")])
    assert shown.exit_code == 2 and "Traceback" not in shown.output, shown.output
    assert shown.output.startswith("error: search.storage") and len(shown.output.strip().splitlines()) == 1


def test_two_folders_creating_one_storage_study_together_one_is_refused(tiny_bert, sentiment_csv, tmp_path):
    """Both passed the resume check before either created the study: the second to open it reads back the owner."""
    from unfreeze.study.trials import open_study

    s = make_search(tiny_bert, sentiment_csv, trials=1, storage=f"sqlite:///{(tmp_path / 'shared.db').resolve()}")
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
    open_study(s, tmp_path / "a", "f1_macro")
    with pytest.raises(ConfigError, match=f"belongs to the study folder {tmp_path / 'a'}"):
        open_study(s, tmp_path / "b", "f1_macro")


@pytest.mark.parametrize("space,named", [
    ({"optim.lr": [1.0e-3, 0.001], "freeze": ["head"]}, "search.space.optim.lr: value 0.001 duplicates value 0.001"),
    ({"freeze": ["all", "head", "all"]}, "search.space.freeze: value 'all' duplicates value 'all'"),
])
def test_duplicate_choices_in_a_search_space_are_refused_like_the_grids(tiny_bert, sentiment_csv, space, named):
    """`optim.lr: [1.0e-3, 0.001]` is one config twice: refused before any trial, as the grid refuses it."""
    from unfreeze.study.preflight import check, problems

    s = make_search(tiny_bert, sentiment_csv, space=space)
    assert any(named in line for line in problems(s)), problems(s)
    with pytest.raises(ConfigError, match="drop one of them"):
        check(s)
    check(make_search(tiny_bert, sentiment_csv, space={"optim.lr": [1.0e-3, 2.0e-3], "freeze": ["all", "head"]}))
