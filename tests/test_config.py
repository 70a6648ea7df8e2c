"""Typed configs: unknown keys are errors with a suggestion; shorthands resolve; overrides apply."""
import pytest

from unfreeze.config.schema import FreezeConfig, RunConfig
from unfreeze.config.load import apply_overrides, load_run_config, parse_run_config, study_overrides
from unfreeze.errors import ConfigError


def test_misspelt_key_names_the_key_and_suggests_the_closest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: rotten_tomatoes}\noptim: {lerning_rate: 0.1}\n")
    with pytest.raises(ConfigError) as exc:
        load_run_config(path)
    message = str(exc.value)
    assert "optim.lerning_rate" in message and str(path) in message


def test_misspelt_top_level_key_suggests(tmp_path):
    with pytest.raises(ConfigError, match="did you mean `train`"):
        parse_run_config({"data": {"dataset": "x"}, "trian": {}})


def test_nested_key_suggestion():
    with pytest.raises(ConfigError, match="did you mean `train.epochs`"):
        parse_run_config({"data": {"dataset": "x"}, "train": {"epoch": 2}})


def test_data_needs_exactly_one_source():
    with pytest.raises(ConfigError, match="exactly one of"):
        parse_run_config({"data": {"dataset": "x", "path": "y.csv"}})


@pytest.mark.parametrize("value, strategy, k, label", [
    ("head", "head", None, "head"),
    ("all", "all", None, "all"),
    ({"top_k": 2}, "top_k", 2, "top-2"),
    ("top_3", "top_k", 3, "top-3"),
    ({"llrd": 0.8}, "llrd", None, "llrd-0.8"),
    ({"lora": {"r": 4}}, "lora", None, "lora-r4"),
    ({"gradual": {"every_epochs": 2}}, "gradual", None, "gradual"),
])
def test_freeze_shorthands(value, strategy, k, label):
    cfg = FreezeConfig.model_validate(value)
    assert cfg.strategy == strategy and cfg.k == k and cfg.label == label


def test_top_k_needs_k():
    with pytest.raises(ConfigError, match="top_k needs"):
        parse_run_config({"data": {"dataset": "x"}, "freeze": {"strategy": "top_k"}})


def test_overrides_parse_yaml_values():
    data = apply_overrides({"data": {"dataset": "x"}}, ["train.epochs=2", "optim.lr=1e-3", "freeze={top_k: 2}"])
    cfg = RunConfig.model_validate(data)
    assert cfg.train.epochs == 2 and cfg.optim.lr == 1e-3 and cfg.freeze.k == 2


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.epochs"])
    for empty in ("=3", " =3", "train..epochs=2", ".lr=1"):  # `=3` said "unknown key `(top level)`"
        with pytest.raises(ConfigError, match=r"the key before `=` is empty"):
            apply_overrides({}, [empty])
        with pytest.raises(ConfigError, match=r"the key before `=` is empty"):
            study_overrides([empty])


def test_selection_metric_defaults_per_task():
    assert parse_run_config({"data": {"dataset": "x"}}).selection_metric == "f1_macro"
    token = parse_run_config({"task": "token", "data": {"dataset": "x"}})
    assert token.selection_metric == "entity_f1_micro"


def test_bare_yaml_on_off_mean_the_cache_modes(tmp_path):
    from unfreeze.config.load import load_run_config

    path = tmp_path / "run.yaml"
    path.write_text("data: {path: d.csv}\nmodel: {name: m}\ntrain: {cache: off}\n")
    assert load_run_config(path).train.cache == "off"
    path.write_text("data: {path: d.csv}\nmodel: {name: m}\ntrain: {cache: on}\n")
    assert load_run_config(path).train.cache == "on"


def test_numeric_labels_in_yaml_are_read_as_label_text():
    """A CSV's 0/1 label column becomes labels "0"/"1": `positive_label: 1` and `{1: 3.0}` must mean those."""
    cfg = parse_run_config({"data": {"dataset": "x", "positive_label": 1, "ignore_labels": [0]},
                            "train": {"class_weights": {1: 3.0, 0: 1}, "loss_ignore_labels": [2]}})
    assert cfg.data.positive_label == "1" and cfg.data.ignore_labels == ["0"]
    assert cfg.train.class_weights == {"1": 3.0, "0": 1} and cfg.train.loss_ignore_labels == ["2"]


def test_negative_class_weight_is_refused():
    with pytest.raises(ConfigError, match="must be a number >= 0"):
        parse_run_config({"data": {"dataset": "x"}, "train": {"class_weights": {"a": -1}}})


def test_every_shipped_example_file_loads():
    """Each examples/*.yaml is a valid study (has `grid`/`base`) or run config — a renamed key fails here."""
    from pathlib import Path

    import yaml

    from unfreeze.config.load import load_run_config, load_study_config

    files = sorted((Path(__file__).parent.parent / "examples").glob("*.yaml"))
    assert {"chinese_reviews.yaml", "msra_ner.yaml", "wnut16_freezing.yaml"} <= {f.name for f in files}
    for file in files:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        if "base" in data or "grid" in data:
            load_study_config(file)
        else:
            load_run_config(file)


def test_study_set_applies_run_keys_to_base(tmp_path):
    import yaml

    from unfreeze.config.load import load_study_config
    from unfreeze.errors import ConfigError

    file = tmp_path / "s.yaml"
    file.write_text(yaml.safe_dump({"base": {"data": {"dataset": "x"}, "train": {"epochs": 3}},
                                    "grid": {"freeze": ["head", "all"]}}))
    cfg = load_study_config(file, ["train.epochs=1", "seeds=[0, 1]", "data.train_size=50"])
    assert cfg.base["train"]["epochs"] == 1 and cfg.base["data"] == {"dataset": "x", "train_size": 50}
    assert cfg.seeds == [0, 1] and "train" not in cfg.model_dump(exclude_unset=True)
    with pytest.raises(ConfigError, match=r"did you mean `train.epochs`"):
        load_study_config(file, ["trian.epochs=1"])
    with pytest.raises(ConfigError, match=r"did you mean `train.epochs`"):
        load_study_config(file, ["train.epocs=1"])
    with pytest.raises(ConfigError, match=r"did you mean `seeds`"):
        load_study_config(file, ["seds=[1]"])


# ---------------------------------------------------------------------------------------------------------
# issue #26: strict YAML, every problem at once, a run limit from the grid's shape


def _validate(path):
    from typer.testing import CliRunner

    from unfreeze.cli import app

    result = CliRunner().invoke(app, ["validate", str(path)])
    return result.exit_code, [line for line in result.output.splitlines() if line.startswith("error:")], result.output


def test_a_key_given_twice_is_refused_naming_it_and_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: rotten_tomatoes}\ntrain:\n  epochs: 1\noptim: {lr: 1e-3}\ntrain:\n  epochs: 9\n")
    with pytest.raises(ConfigError, match=r"c.yaml: key `train` appears twice in one mapping \(lines 2 and 5\)"):
        load_run_config(path)
    path.write_text("data: {dataset: rotten_tomatoes}\noptim: {lr: 1e-3, lr: 1e-2}\n")  # nested, flow style
    with pytest.raises(ConfigError, match=r"key `lr` appears twice"):
        load_run_config(path)
    code, errors, _ = _validate(path)
    assert code == 2 and len(errors) == 1


def test_exponent_numbers_without_a_dot_work_where_numbers_are_expected(tmp_path):
    """YAML 1.1 reads `1e-5` as text: number fields convert it (and a search range's ends, see
    test_search_faults), while grid values keep their spelling, so arm names of studies already run do not change."""
    from unfreeze.config.load import load_study_config

    path = tmp_path / "c.yaml"
    path.write_text("data: {dataset: rotten_tomatoes}\noptim: {lr: 1e-5}\n")
    assert load_run_config(path, ["optim.head_lr=3e-4"]).optim.head_lr == 3e-4
    path.write_text("base: {data: {dataset: rotten_tomatoes}}\ngrid: {optim.lr: [1e-5, 1.0e-4]}\n")
    assert load_study_config(path).grid["optim.lr"] == ["1e-5", 1e-4]


def test_validate_reports_every_error_of_the_study_and_its_base_at_once(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("seeds: [1, 1]\ncv: {folds: 1}\nbase:\n  data: {dataset: rotten_tomatoes}\n"
                    "  train: {epochz: 1, batch_sise: 2}\n  optim: {lr: -1, nam: adamw}\n")
    code, errors, _ = _validate(path)
    assert code == 2 and len(errors) == 6, errors
    joined = " ".join(errors)
    for key in ("seeds", "cv.folds", "base: `optim.lr`", "optim.nam", "train.epochz", "train.batch_sise"):
        assert key in joined
    path.write_text("base:\n  data: {dataset: rotten_tomatoes}\n  train: {epochz: 1, batch_sise: 2}\n"
                    "  optim: {lr: -1, nam: adamw}\ngrid:\n  optim.name: [adamw, adamz]\n  freeze: [head, top_9x]\n")
    code, errors, _ = _validate(path)  # the base's 4 once (not once per arm), each bad grid value once
    assert code == 2 and len(errors) == 6 and "top_9x" in errors[0] and "adamz" in errors[5], errors
    assert sum("base:" in e for e in errors) == 4
    path.write_text("base: {train: {epochs: 1}}\ngrid:\n  data.dataset: [rotten_tomatoes, imdb]\n")
    code, errors, output = _validate(path)  # a base that only its arms complete is valid
    assert code == 0, output


def test_validate_runs_the_checks_a_search_study_makes_before_training(tmp_path):
    from typer.testing import CliRunner

    from unfreeze.cli import app

    path = tmp_path / "s.yaml"
    path.write_text("base: {data: {dataset: rotten_tomatoes}}\nsearch:\n  space:\n    optim.name: [adamw, adamz]\n"
                    "    train.epochz: [1, 2]\n    optim.lr: {low: 1e-5, high: 1e-3, log: true}\n")
    code, errors, _ = _validate(path)
    assert code == 2 and len(errors) == 2 and "adamz" in errors[0] and "did you mean `train.epochs`" in errors[1]
    dry = CliRunner().invoke(app, ["study", str(path), "--dry-run", "--out", str(tmp_path / "out")])
    # the same list, refused, every problem listed (#27 review: the dry run named the first one only)
    assert dry.exit_code == 2 and "adamz" in dry.output and "did you mean `train.epochs`" in dry.output


def test_a_grid_over_the_run_limit_is_refused_from_its_shape(tmp_path, monkeypatch):
    """10^6 grid points: counted from the lists' lengths, never expanded (the old code listed them: > 150 s)."""
    from typer.testing import CliRunner

    import unfreeze.study.grid as grid
    from unfreeze.cli import app
    from unfreeze.config.study import MAX_RUNS

    def never(*_):
        raise AssertionError("the grid was expanded")

    monkeypatch.setattr(grid, "grid_combinations", never)
    ten = list(range(1, 11))
    lists = "\n".join(f"  {k}: {ten}" for k in ("train.epochs", "train.batch_size", "data.train_size",
                                                  "train.eval_batch_size", "train.log_every_steps", "data.split_seed"))
    path = tmp_path / "s.yaml"
    path.write_text(f"base: {{data: {{dataset: rotten_tomatoes}}}}\nseeds: [0, 1]\ngrid:\n{lists}\n")
    code, errors, _ = _validate(path)
    assert code == 2 and len(errors) == 1 and "plans 2,000,000 runs" in errors[0] and f"{MAX_RUNS:,}" in errors[0]
    dry = CliRunner().invoke(app, ["study", str(path), "--dry-run", "--out", str(tmp_path / "out")])
    assert dry.exit_code == 2 and "2,000,000 runs" in dry.output
    path.write_text("base: {data: {dataset: rotten_tomatoes}}\nsearch: {sampler: grid, space: {" +
                    ", ".join(f"{k}: {ten}" for k in ("train.epochs", "train.batch_size", "data.train_size",
                                                      "data.split_seed")) + "}}\n")
    code, errors, _ = _validate(path)
    assert code == 2 and "the grid has 10,000 points" in errors[0]
