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


def test_live_report_is_throttled_by_the_cost_of_its_last_rebuild(monkeypatch, tmp_path):
    """Issue 25: a live rebuild took 81 s after every run. A rebuild is skipped while the time since the last one
    is under `ratio` × its cost, so rebuilding never takes more than ~1 / (1 + ratio) of the study's time."""
    from types import SimpleNamespace

    from unfreeze.study.live import LiveReport

    now = {"t": 0.0}
    cost = {"s": 10.0}

    def build(self):
        now["t"] += cost["s"]

    monkeypatch.setattr(LiveReport, "build", build)
    live = LiveReport(tmp_path, [], ratio=4.0, clock=lambda: now["t"])
    done = SimpleNamespace(skipped=False, ok=True)
    built = []
    for _ in range(30):  # a run finishes every 6 s of study time; each rebuild costs 10 s
        now["t"] += 6.0
        before = live.built
        live(done)
        built.append(live.built > before)
    assert built[0] and live.built + live.skipped == 30
    assert live.seconds <= (now["t"]) / (1 + 4.0) + cost["s"]  # bounded share of the study's time
    first, second = [i for i, b in enumerate(built) if b][:2]
    assert second - first == 7  # 6 s runs: the next rebuild only once 40 s (4 × 10 s) have passed
    live(SimpleNamespace(skipped=False, ok=False))  # a failed run never triggers a rebuild
    live(SimpleNamespace(skipped=True, ok=True))
    assert live.built + live.skipped == 30


def many_labels_frame(k: int, seed: int = 0):
    """`k` classes, each cued by its own 3-letter word among neutral filler; every 10th class is rare (3 rows)."""
    import string

    import numpy as np
    import pandas as pd

    from tiny import NEUTRAL

    rng, letters, rows = np.random.default_rng(seed), string.ascii_lowercase, []
    for i in range(k):
        cue = letters[i % 26] + letters[(i // 26) % 26] + letters[(i * 7) % 26]
        for j in range(12 if i % 10 else 3):
            words = [*rng.choice(NEUTRAL, 4), cue]
            rng.shuffle(words)
            rows.append({"text": " ".join(words) + f" {j}", "label": f"tag{i:03d}"})
    return pd.DataFrame(rows)


@pytest.mark.slow
def test_study_on_many_labels_reads_right(tiny_bert, tmp_path):
    """Issue 25 end to end, through the CLI: a 40-class study (tiny random model, 1 epoch) gives plots no larger
    than 2,000 px a side, report.html under the documented size, top-N lists, a per-class flag for classes never
    got right, no one-dot learning curve, markdown without HTML entities, and no warning printed twice."""
    import re
    import sys

    import yaml
    from PIL import Image

    from unfreeze.report.plots import MAX_PX
    from unfreeze.report.render import HTML_LIMIT_BYTES

    frame = many_labels_frame(40)
    test = frame.sample(frac=0.2, random_state=0)
    frame.drop(test.index).to_csv(tmp_path / "train.csv", index=False)
    test = test.assign(text=test["text"] + " held")
    test.iloc[0, test.columns.get_loc("label")] = "never-in-train"  # one warning, printed once
    test.to_csv(tmp_path / "test.csv", index=False)
    base = run_config(tiny_bert, tmp_path / "train.csv", data={"train": str(tmp_path / "train.csv"),
                                                               "test": str(tmp_path / "test.csv")},
                      train={"epochs": 1, "threads": 1, "save_model": False})
    (tmp_path / "many.yaml").write_text(yaml.safe_dump({"name": "many", "base": base, "seeds": [0, 1],
                                                        "grid": {"freeze": ["head"]}}))
    out = tmp_path / "study"
    done = subprocess.run([sys.executable, "-c", "from unfreeze.cli import app; app()", "study",
                           str(tmp_path / "many.yaml"), "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("WARNING")]
    assert len(printed) == len(set(printed)), printed
    assert sum("never occur in the training split" in line for line in printed) == 1, printed
    for png in (out / "plots").glob("*.png"):
        assert max(Image.open(png).size) <= MAX_PX, png.name
    assert (out / "plots" / "confusion.png").exists() and not (out / "plots" / "learning_curves.png").exists()
    assert (out / "report.html").stat().st_size < HTML_LIMIT_BYTES
    md = (out / "report.md").read_text()
    setup = md[md.index("## Setup"):md.index("## Results")]
    assert re.search(r"training labels \| .*, … and 1\d more", setup)  # 40 labels: the first 30, then a count
    flags = md[md.index("## Per-class outcomes"):]
    assert "never got right" in flags and "train.class_weights: balanced" in flags
    assert "&lt;" not in md and "&gt;" not in md and "&amp;" not in md


def test_plots_for_110_labels_stay_readable_and_at_most_2000_px():
    """Issue 25: 110 tags drew a 7,480 × 6,358 px confusion matrix; now the 19 most confused classes + "other"
    (every example still counted once), per-class bars for the 20 best and 20 worst, each plot ≤ 2,000 px."""
    import io

    import numpy as np
    import pandas as pd
    from PIL import Image

    from unfreeze.report import plots

    rng = np.random.default_rng(0)
    labels = [f"tag{i:03d}" for i in range(110)]
    matrix = rng.integers(0, 3, (110, 110)) + np.diag(rng.integers(5, 50, 110))
    matrix[7, 3] = 500  # the most confused pair must be shown
    cut, names = plots.most_confused(matrix.tolist(), labels)
    assert len(names) == 20 and names[-1] == "other (91 classes)" and {"tag007", "tag003"} <= set(names)
    assert cut.sum() == matrix.sum() and cut[names.index("tag007"), names.index("tag003")] == 500
    for png in (plots.confusion_matrix_plot(matrix.tolist(), labels, "t"),
                plots.per_class_f1({n: {"f1": float(f)} for n, f in zip(labels, rng.random(110))}, "t")):
        assert max(Image.open(io.BytesIO(png)).size) <= plots.MAX_PX
    small, _ = plots.most_confused([[3, 1], [0, 2]], ["a", "b"])
    assert small.tolist() == [[3, 1], [0, 2]]
    one_epoch = {"head": [pd.DataFrame({"epoch": [1.0], "train_loss": [0.5], "val_f1_macro": [0.7]})]}
    assert plots.learning_curves(one_epoch, "f1_macro") is None  # one dot on a 0.945–1.05 axis: left out
    two = {"head": [pd.DataFrame({"epoch": [1.0, 2.0], "train_loss": [0.5, 0.4], "val_f1_macro": [0.7, 0.8]})]}
    assert plots.learning_curves(two, "f1_macro")[:4] == b"\x89PNG"


def test_markdown_escapes_tags_not_comparisons_and_html_escapes_everything():
    """Issue 25: report.md showed a literal `p &lt; 0.0001`; a tag-like `<` is backslash-escaped (CommonMark shows
    it as text), `<` before a digit or space and a lone `&` stay as typed; report.html escapes every one."""
    from unfreeze.report.render import render_html, render_markdown

    blocks = [("p", "p < 0.0001, a & b, <script>x</script>, &amp;"), ("table", ["arm"], [["two\nlines | pipe"]])]
    md = render_markdown(blocks)
    assert "p < 0.0001, a & b, \\<script>x\\</script>, \\&amp;" in md
    assert "&lt;" not in md and "| two lines \\| pipe |" in md
    page = render_html(blocks)
    assert "p &lt; 0.0001, a &amp; b, &lt;script&gt;" in page and "<script>" not in page


def test_setup_lists_are_cut_at_30_with_a_count_and_unpredicted_classes_are_flagged(tmp_path):
    """Issue 25: the Setup row listed all 110 tags; a class with F1 0.0 in every seed went unmentioned."""
    import pandas as pd

    from unfreeze.report.setup import per_class_flags, setup_rows

    counts = {f"tag{i:03d}": 100 - i for i in range(45)}
    paths = []
    for seed in (0, 1):
        run = tmp_path / f"r{seed}"
        run.mkdir()
        per_class = {"pos": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 20},
                     "neutral": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 7},
                     "absent": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0},
                     "neg": {"precision": 0.5, "recall": 0.5, "f1": 0.5 * seed, "support": 9}}
        (run / "metrics.json").write_text(json.dumps({"train_label_counts": counts, "test": {"per_class": per_class}}))
        (run / "config.yaml").write_text("model: {name: m}\n")
        paths.append(str(run))
    results = pd.DataFrame({"arm": ["head", "head"], "seed": [0, 1], "path": paths})
    row = dict(setup_rows(results))["training labels"]
    assert row.startswith("tag000: 100 (") and row.endswith(", … and 15 more") and "tag030" not in row
    flags = per_class_flags(results, "head")
    assert flags[0] == ("h2", "Per-class outcomes")
    text = flags[1][1]
    assert "'neutral' (7 test examples, never predicted)" in text and "train.class_weights: balanced" in text
    assert "'neg'" not in text and "'absent'" not in text  # F1 0 in one seed only; no test examples
    assert per_class_flags(results, None) == []


def test_learning_curves_skip_an_arm_whose_history_lacks_the_study_metric():
    """A study whose arms report different metrics (a grid over data.path mixing plain tags with IOB2 ones, or arms
    with their own train.metric: the report takes the most common selection metric) crashed the whole study with
    `ValueError: No objects to concatenate` while drawing the learning curves; that arm's metric panel is left out."""
    import pandas as pd

    from unfreeze.report import plots

    histories = {
        "iob2": [pd.DataFrame({"epoch": [1.0, 2.0], "train_loss": [0.5, 0.4], "val_entity_f1_macro": [0.2, 0.3]})],
        "plain": [pd.DataFrame({"epoch": [1.0, 2.0], "train_loss": [0.6, 0.5], "val_f1_macro_ignoring": [0.1, 0.2]})],
    }
    assert plots.learning_curves(histories, "entity_f1_macro")[:4] == b"\x89PNG"
