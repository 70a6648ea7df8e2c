"""`unfreeze study FILE --dry-run` lists every arm's problem at once, as `unfreeze validate` does (both from
`study/preflight.py`), instead of stopping at the first arm's error."""
import yaml
from typer.testing import CliRunner

from tiny import run_config
from unfreeze.cli import app


def test_a_grid_dry_run_lists_every_arms_error(tiny_bert, sentiment_csv, tmp_path):
    study = tmp_path / "s.yaml"
    study.write_text(yaml.safe_dump({"name": "s", "base": run_config(tiny_bert, sentiment_csv),
                                     "arms": {"fast": {"optim": {"lr": -1}}, "big": {"train": {"batch_size": 0}}},
                                     "grid": {"train.epochs": [1, 0]}}))
    dry = CliRunner().invoke(app, ["study", str(study), "--out", str(tmp_path / "o"), "--dry-run"])
    validate = CliRunner().invoke(app, ["validate", str(study)])
    assert dry.exit_code == validate.exit_code == 2, dry.output
    assert "Traceback" not in dry.output
    for needle in ("study arm 'fast · epochs=1'", "`optim.lr`", "study arm 'big · epochs=1'", "`train.batch_size`",
                   "`train.epochs`", "3 problem(s) in this study file"):
        assert needle in dry.output, dry.output
    errors = [line for line in dry.output.splitlines() if line.startswith("error:")]
    assert errors == [line for line in validate.output.splitlines() if line.startswith("error:")]
    assert not (tmp_path / "o").exists()
