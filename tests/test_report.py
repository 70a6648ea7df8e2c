"""The report builds from a real tiny study: every plot embedded, baseline row, significance legend, no network."""
import json
import shutil
import subprocess

import pytest

from tiny import run_config, synthetic_frame
from unfreeze.config.study import StudyConfig
from unfreeze.report.build import build_report
from unfreeze.study.runner import run_study


@pytest.fixture(scope="module")
def study_dir(tiny_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    synthetic_frame(240, classes=3).to_csv(root / "d.csv", index=False)
    base = run_config(tiny_models["bert"], root / "d.csv", train={"epochs": 2, "threads": 1, "save_model": False})
    study = StudyConfig.model_validate({"name": "tiny", "base": base, "seeds": [0, 1], "grid": {
        "freeze": ["head", {"top_k": 1}, "all"], "optim.name": ["adamw", "sgd"], "optim.lr": [1e-3, 1e-2]}})
    run_study(study, root / "study", progress=False, echo=lambda *_: None, study_text="name: tiny\n",
              command="unfreeze study tiny.yaml")
    return root / "study"


def test_report_has_every_section_and_plot(study_dir):
    page = (study_dir / "report.html").read_text()
    for figure in ("learning_curves", "layers", "optimizer_lr", "confusion", "per_class"):
        assert f'id="{figure}"' in page, figure
    assert page.count("data:image/png;base64,") == 5
    assert "baseline: TF-IDF" in page and "significantly worse than the best arm" in page
    assert "unfreeze study tiny.yaml" in page
    assert "http://" not in page and "https://" not in page
    md = (study_dir / "report.md").read_text()
    assert "| baseline: TF-IDF" in md and all((study_dir / "plots" / f"{n}.png").exists()
                                             for n in ("learning_curves", "layers", "optimizer_lr"))


def test_table_has_every_arm_with_mean_and_std(study_dir):
    md = (study_dir / "report.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ") and " ± " in line]
    assert len(table) == 12
    assert all(line.split(" | ")[1] == "2" for line in table)


def test_two_seeds_get_no_seed_aware_test_no_mark_and_an_uninformative_interval(study_dir):
    """Changed with the seed-aware test: 2 seeds per arm used to get a paired bootstrap and †; now Δ only."""
    md = (study_dir / "report.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ") and " ± " in line]
    assert sum("2 seeds: no seed-aware test" in line for line in table) == 11
    assert all("2 seeds: interval uninformative" in line for line in table)
    assert not any(" † " in line or " ‡ " in line for line in table)
    assert "t-test over seeds (paired by seed" in md and "Seeds to settle" in md


def test_report_rebuilds_from_the_folder_alone(study_dir):
    (study_dir / "report.html").unlink()
    md, page = build_report(study_dir)
    assert page.exists() and "Results" in page.read_text()


def test_failures_are_listed(study_dir):
    (study_dir / "failures.json").write_text(json.dumps([{"run_id": "x", "arm": "broken", "error": "boom"}]))
    _, page = build_report(study_dir)
    assert "Failures" in page.read_text() and "boom" in page.read_text()
    (study_dir / "failures.json").unlink()


@pytest.mark.skipif(not shutil.which("chromium"), reason="headless Chromium not installed")
def test_report_renders_in_headless_chromium(study_dir, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1200,2000", f"--screenshot={shot}", (study_dir / "report.html").as_uri()],
                   check=True, timeout=120, capture_output=True)
    from PIL import Image

    pixels = Image.open(shot).convert("L").getextrema()
    assert pixels[0] < 100 and pixels[1] > 200  # not blank: dark text on a light page


def test_token_study_report_has_entity_metrics_per_type_f1_both_matrices_and_its_baseline(tiny_bert, tmp_path):
    """Issue-6 path end to end: a token study (grid, seeds, cache, baseline) → report with entity / ignore-label
    metrics, entity F1 per type, per-label F1 and the confusion matrix with and without the ignored `O`."""
    from test_tokens import tagged_sentences, write_conll

    data = write_conll(tmp_path / "ner.conll", tagged_sentences(200, seed=4))
    base = run_config(tiny_bert, data, task="token", data={"path": str(data), "ignore_labels": ["O"]},
                      optim={"lr": 1e-2}, train={"epochs": 2, "threads": 1, "save_model": False})
    study = StudyConfig.model_validate({"name": "ner", "base": base, "seeds": [0, 1],
                                        "grid": {"freeze": ["head", {"top_k": 1}]}})
    results = run_study(study, tmp_path / "study", progress=False, echo=lambda *_: None)
    assert {"test_entity_f1_micro", "test_f1_macro_ignoring"} <= set(results.columns) and len(results) == 4
    page = (tmp_path / "study" / "report.html").read_text()
    for figure in ("learning_curves", "layers", "confusion", "confusion_all", "per_class", "per_entity"):
        assert f'id="{figure}"' in page, figure
    md = (tmp_path / "study" / "report.md").read_text()
    assert "test entity_f1_micro" in md and "test f1_macro_ignoring" in md
    assert "baseline: most frequent tag per word" in md
    assert "Token macro averages run over the labels present in the test set" in md


def test_report_states_its_setup_and_per_class_f1_over_seeds(study_dir):
    import numpy as np
    import pandas as pd

    from unfreeze.report.setup import per_class_over_seeds

    md = (study_dir / "report.md").read_text()
    assert md.index("## Setup") < md.index("## Results")
    setup = md[md.index("## Setup"):md.index("## Results")]
    for line in ("split sizes (train / val / test) | 192 / 24 / 24", "max_length | ", "truncates",
                 "training labels | ", "seeds | 0, 1", "torch threads", "CPUs"):
        assert line in setup, (line, setup)
    results = pd.read_csv(study_dir / "results.csv")
    arm = results["arm"].iloc[0]
    paths = results.loc[results["arm"] == arm, "path"]
    label = next(iter(json.loads((study_dir / "runs" / paths.iloc[0].split("/")[-1] / "metrics.json")
                                 .read_text())["test"]["labels"]))
    seeds = [json.loads((__import__("pathlib").Path(p) / "metrics.json").read_text())["test"]["per_class"][label]["f1"]
             for p in paths]
    got = per_class_over_seeds(results, arm)[label]
    assert got["n"] == 2 and got["f1"] == pytest.approx(np.mean(seeds)) and got["std"] == pytest.approx(np.std(seeds, ddof=1))
    assert "mean ± std over 2 runs" in md


def test_size_curve_places_the_full_training_set_at_its_real_size():
    """`data.train_size: null` shows as `full` in results.csv; the size plot puts it at the examples the runs
    trained on instead of failing on the string (it did, at the end of examples/chinese_reviews.yaml)."""
    import pandas as pd

    from unfreeze.report import plots

    results = pd.DataFrame({"data.train_size": ["500", "500", "full", "full"], "n_train": [500, 500, 13891, 13891],
                            "strategy": ["head"] * 4, "test_f1_macro": [0.6, 0.62, 0.7, 0.71]})
    assert plots.metric_vs_size(results, "f1_macro", {500.0: 0.78, 13891.0: 0.85})[:4] == b"\x89PNG"
    assert plots.metric_vs_size(results.drop(columns="n_train"), "f1_macro") is None  # one numeric size: no curve
