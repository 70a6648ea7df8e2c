"""Estimates from measured throughput: measured once per model + device + threads and cached; the dry run prints
a per-arm table; the study ETA charges each remaining run the measured time of its own arm kind."""
import json

import pytest
import yaml
from typer.testing import CliRunner

from unfreeze.cli import app
from unfreeze.config.schema import ModelConfig
from unfreeze.study import throughput
from unfreeze.study.execute import RunOutcome
from unfreeze.study.runner import ProgressReporter


def test_throughput_is_measured_once_and_cached(tiny_bert, monkeypatch):
    texts = ["the movie was good", "bad plot and boring story"] * 20
    first = throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, max_length=32, threads=1)
    assert first["forward_tokens_per_s"] > 0 and first["train_tokens_per_s"] > 0
    assert first["layers"] == 2 and first["hidden"] == 32
    stored = json.loads(throughput.cache_file().read_text())
    assert stored[first["key"]] == first and tiny_bert in first["key"] and "threads=1" in first["key"]

    def no_timing(*_):
        raise AssertionError("timed again instead of reading the cache")

    monkeypatch.setattr(throughput, "_time_model", no_timing)
    assert throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, threads=1) == first
    assert throughput.cached_throughput(tiny_bert, 1) == first
    assert throughput.measure_throughput(ModelConfig(name="/no/such/model"), texts, threads=1) is None


def test_dry_run_prints_per_arm_estimates_from_measured_throughput(tiny_bert, sentiment_csv, tmp_path):
    from tiny import run_config

    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 2, "threads": 1})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": base, "grid": {"freeze": ["head", "all"]}, "seeds": [0, 1, 2]}))
    result = CliRunner().invoke(app, ["study", str(path), "--out", str(tmp_path / "s"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "per arm" in result.output and "min per run" in result.output
    assert "measured on this machine" in result.output
    stored = json.loads(throughput.cache_file().read_text())
    # measured for the data's text-length bucket (short sentences: ≤ 32 tokens)
    assert f"{tiny_bert}|cpu|threads=1|tokens<=32" in stored


def test_eta_uses_measured_time_per_arm_kind():
    kinds = {"h0": ("head", "head"), "h1": ("head", "head"), "a0": ("all", "all"), "a1": ("all", "all"),
             "t0": ("top-2 lr=1e-3", "top-2")}
    reporter = ProgressReporter(5, 0, "f1_macro", echo=lambda *_: None, kinds=kinds)
    reporter.ran = 1
    # first: a 10 s head run; the rest are charged 10 s each (nothing else known yet); wall = summed run time
    assert reporter.eta(RunOutcome("h0", "head", True, seconds=10.0), elapsed=10.0) == pytest.approx(40.0)
    reporter.ran = 2
    # an `all` run took 100 s: head 10 + all 100 + top-2 (unknown arm and strategy: mean of all = 55)
    assert reporter.eta(RunOutcome("a0", "all", True, seconds=100.0), elapsed=110.0) == pytest.approx(165.0)
    reporter.ran = 3
    # wall time twice the summed run time (overheads): the rest scales by 2
    assert reporter.eta(RunOutcome("h1", "head", True, seconds=10.0), elapsed=240.0) == pytest.approx(
        (100.0 + 40.0) * 2)


def test_cache_fill_and_warm_up_are_charged_once_per_study(tiny_bert, sentiment_csv, monkeypatch):
    """The study fills the activation cache once for every boundary (as deep as its deepest frozen arm) and pays
    the first pass over new batch shapes once; every run pays its own training, evaluation and final pass."""
    from tiny import run_config

    from unfreeze.config.study import StudyConfig
    from unfreeze.study import estimate
    from unfreeze.study.grid import expand

    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 2})
    study = StudyConfig.model_validate({"base": base, "grid": {"freeze": [{"top_k": 1}, "head", "all"]},
                                        "seeds": [0, 1]})
    jobs = expand(study)
    rates = {"forward_tokens_per_s": 1000.0, "train_tokens_per_s": 250.0, "step_seconds": 0.05}
    # 100 training examples in batches of 16: 7 optimizer steps per epoch
    monkeypatch.setattr(estimate, "_facts", lambda cfg: (4000.0, 2000.0, 2, 32, 1000.0, 100))
    monkeypatch.setattr(estimate, "_THROUGHPUT", {estimate._key(jobs[0].config): rates})
    per_arm = {arm: seconds for arm, (_, seconds) in estimate.arm_estimates(jobs).items()}

    def run(trained, cached, fill, stepped=None):
        return estimate.pass_seconds(trained, 2, 32, 2, 4000.0, 2000.0, cached, rates, n_val_tokens=1000.0,
                                     fill_share=fill, n_steps=7, step_share=stepped)

    once = estimate.once_seconds(2, 32, 4000.0, 2000.0, rates, warm_up=True)
    # the process warm-up: one extra forward over every token, at the measured rate or the development CPU's
    # (scaled by model size), whichever is faster
    fastest = min(1 / 1000, 2 * 32 ** 2 / estimate.MINILM_SIZE / estimate.FORWARD_TOKENS_PER_S)
    assert once == pytest.approx((4000 + 2000) * fastest)
    # jobs run breadth-first: top-1 seed 0 comes first and fills the cache as deep as head needs (both layers)
    # top-1's optimizer steps one of two layers, and no embeddings (half the parameters, by the default share)
    top1 = run(1, True, 0.0, stepped=0.25)
    assert per_arm["top-1"] == pytest.approx(2 * top1 + (4000 + 2000) * 1.0 / 1000 + once)
    assert per_arm["head"] == pytest.approx(2 * run(0, True, 0.0))
    assert per_arm["all"] == pytest.approx(2 * run(2, False, None))
    # the parts, by hand: head = 2 epochs of evaluation on val through the head only + the final pass, through the
    # activation cache (val + test were filled with the training texts: the head's own layers only) + fixed
    assert run(0, True, 0.0) == pytest.approx((4000 * 2 + 2000) / 1000 * 0.02 + estimate.FIXED_SECONDS)
    # the per-part walk adds up to the per-arm table (one source for the dry run's two tables)
    arms, parts = estimate.study_estimates(jobs)
    assert sum(parts.values()) == pytest.approx(sum(seconds for _, seconds in arms.values()))
    assert parts["cache_fill"] == pytest.approx((4000 + 2000) * 1.0 / 1000 + once)
    # all, uncached: forward+backward of both layers and 7 optimizer steps every epoch, a full val pass every
    # epoch, the final pass
    assert run(2, False, None) == pytest.approx(4000 * 2 / 250 + 7 * 2 * 0.05 + 1000 * 2 / 1000 + 1000 / 1000
                                                + (4000 * 2 + 2000) / 1000 * 0.02 + estimate.FIXED_SECONDS)


def test_without_measured_throughput_the_constants_scale_with_model_size():
    """No measurement (the model could not be timed): the documented MiniLM constants, every term — the optimizer
    step included — scaled by layers × hidden² (BERT-base is 8× MiniLM-L6)."""
    from unfreeze.study import estimate

    def all_layers(layers, hidden):
        return estimate.pass_seconds(layers, layers, hidden, 1, 10_000.0, 4_000.0, False, None, n_steps=10)

    minilm = (10_000 / estimate.TRAIN_TOKENS_PER_S + 10 * estimate.STEP_SECONDS + 2_000 / estimate.FORWARD_TOKENS_PER_S
              + 2_000 / estimate.FORWARD_TOKENS_PER_S + 14_000 / estimate.FORWARD_TOKENS_PER_S * 0.02)
    assert all_layers(6, 384) == pytest.approx(minilm + estimate.FIXED_SECONDS)
    assert all_layers(12, 768) == pytest.approx(8 * minilm + estimate.FIXED_SECONDS)


def test_a_model_that_stops_at_layer_k_pays_for_k_layers_only():
    from unfreeze.config.schema import RunConfig
    from unfreeze.study import estimate

    rates = {"forward_tokens_per_s": 1000.0, "train_tokens_per_s": 250.0, "step_seconds": 0.05}
    base = {"data": {"path": "x.csv"}, "model": {"name": "m"}, "train": {"epochs": 2}}
    layer2 = RunConfig.model_validate({**base, "freeze": {"layer": 2}})
    head = RunConfig.model_validate({**base, "freeze": "head"})
    args = (4000.0, 2000.0, 6, 384, rates)
    # layer 2 of 6: its own cache of 2 layers over every token; the final pass reads that cache (the head only)
    stop = estimate.run_seconds(layer2, *args, n_val_tokens=1000.0, n_train=100)
    assert stop == pytest.approx(6000 * 2 / 6 / 1000 + 10000 / 1000 * 0.02 + estimate.FIXED_SECONDS)
    assert stop < estimate.run_seconds(head, *args, n_val_tokens=1000.0, n_train=100)


def test_a_throughput_measured_under_load_is_marked_and_measured_again_when_quiet(tiny_bert, monkeypatch):
    """#27: a figure measured while the machine was busy was cached and made every later plan pessimistic."""
    texts = ["the movie was good", "bad plot and boring story"] * 20
    load = {"load1": 9.0, "cores": 2, "busy": True}
    monkeypatch.setattr(throughput, "machine_load", lambda: dict(load))
    said = []
    busy = throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, max_length=32, threads=1,
                                         announce=said.append)
    assert busy["under_load"] == load and said and said[0].startswith("measuring throughput")
    assert "under load" in throughput.load_note(busy)
    # still busy: the stored figure is used (and the plan says so), not measured again
    monkeypatch.setattr(throughput, "_time_model", lambda *a, **k: {"forward_tokens_per_s": 1.0})
    assert throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, threads=1) == busy
    # quiet now: measured again, and the new figure replaces it
    load.update(load1=0.1, busy=False)
    quiet = throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, threads=1)
    assert quiet["forward_tokens_per_s"] == 1.0 and "under_load" not in quiet and throughput.load_note(quiet) is None


def test_dry_run_prints_the_cost_in_parts(tiny_bert, sentiment_csv, tmp_path):
    from tiny import run_config

    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"base": base, "grid": {"freeze": ["head", "all"]}, "seeds": [0]}))
    result = CliRunner().invoke(app, ["study", str(path), "--out", str(tmp_path / "s"), "--dry-run"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for part in ("cache fill + warm-up (once per study)", "training", "validation every epoch",
                 "final pass (test)", "total"):
        assert part in result.output


def test_the_warm_up_is_not_priced_at_a_throughput_measured_on_a_loaded_machine():
    """#27: on the shared machine (load 7), Rotten Tomatoes at --budget 10m was refused at an estimate of 17.0 min,
    half of it the process warm-up priced at the loaded rate (166 tokens/s: 300,000 tokens → 30 min at most); the
    study itself, at --budget 19m, took 2.4 min. The warm-up costs at most the development CPU's figure."""
    from unfreeze.study import estimate

    loaded = {"forward_tokens_per_s": 166.0, "train_tokens_per_s": 34.0, "step_seconds": 3.2}
    fill_only = estimate.once_seconds(6, 384, 60000.0, 30000.0, loaded, fill_share=1.0)
    warm = estimate.once_seconds(6, 384, 60000.0, 30000.0, loaded, fill_share=1.0, warm_up=True) - fill_only
    assert fill_only == pytest.approx(90000 / 166.0)  # the fill itself: at the measured rate
    assert warm == pytest.approx(90000 / estimate.FORWARD_TOKENS_PER_S)  # ~8 s, not another 9 min
    fast = {"forward_tokens_per_s": 50000.0, "train_tokens_per_s": 20000.0, "step_seconds": 0.01}  # a GPU
    assert estimate.once_seconds(6, 384, 60000.0, 30000.0, fast, warm_up=True) == pytest.approx(90000 / 50000.0)
    assert estimate.once_seconds(6, 384, 1e6, 0.0, None, warm_up=True) == pytest.approx(
        estimate.WARM_UP_TOKENS / estimate.FORWARD_TOKENS_PER_S)  # constants: as before, capped in tokens


def test_short_texts_are_timed_in_the_batch_sizes_runs_use_and_old_figures_are_measured_again(tiny_bert,
                                                                                               monkeypatch):
    """#27: throughput was timed on batches of 8 texts whatever their length, unlike the batches of up to 64 a
    cache fill runs; a figure timed that way is not read back."""
    assert throughput.batch_rows(20) == throughput.MAX_ROWS and throughput.batch_rows(128) == 16
    assert throughput.batch_rows(512) == throughput.BATCH_SIZE
    texts = ["the movie was good", "bad plot and boring story"] * 40
    first = throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, max_length=32, threads=1)
    assert first["batch_rows"] >= 32
    stored = json.loads(throughput.cache_file().read_text())
    stored[first["key"]].pop("batch_rows")  # a figure from before: timed at 8 texts a batch
    throughput.cache_file().write_text(json.dumps(stored))
    monkeypatch.setattr(throughput, "_time_model", lambda *a, **k: {"forward_tokens_per_s": 2.0, "batch_rows": 64})
    assert throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, max_length=32,
                                         threads=1)["forward_tokens_per_s"] == 2.0


def test_a_figure_timed_shorter_than_the_datas_length_bucket_is_not_reused_for_longer_runs(tiny_bert, monkeypatch):
    """#27 item 8: a one-line dry run timed long documents at 256 tokens; a study at 512 read that figure back and
    was estimated 35 % short (BENCHMARKS.md). Each timed length below the bucket gets its own entry."""
    timed = []

    def fake_time(_cfg, _texts, max_length, *_, **__):
        timed.append(max_length)
        return {"forward_tokens_per_s": 1000.0 / max_length, "batch_rows": 8, "max_length": max_length}

    monkeypatch.setattr(throughput, "_time_model", fake_time)
    texts = ["word " * 600] * 8
    at = {n: throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, max_length=n, threads=1,
                                           mean_tokens=600.0) for n in (256, 512)}
    assert timed == [256, 512]
    assert at[256]["key"].endswith("|tokens<=512|at=256") and at[512]["key"].endswith("|tokens<=512")
    for n in (256, 512):  # each read back from its own entry, not timed again
        assert throughput.measure_throughput(ModelConfig(name=tiny_bert), texts, max_length=n, threads=1,
                                             mean_tokens=600.0) == at[n]
    assert timed == [256, 512]


@pytest.mark.parametrize("mean, timed, keys", [
    (200.0, (256, 512), ("|tokens<=256", "|tokens<=256|at=512")),  # the review's case: one key for both before
    (600.0, (256, 512), ("|tokens<=512|at=256", "|tokens<=512")),
    (100.0, (64, 512), ("|tokens<=128|at=64", "|tokens<=128|at=512")),
    (20.0, (64, 512), ("|tokens<=32", "|tokens<=32")),  # short texts: the same padded batches either way
])
def test_each_timed_length_that_changes_the_batches_has_its_own_cache_entry(tiny_bert, monkeypatch, mean, timed,
                                                                              keys):
    monkeypatch.setattr(throughput, "_time_model", lambda *_a, **_k: {"forward_tokens_per_s": 1.0, "batch_rows": 8})
    got = [throughput.measure_throughput(ModelConfig(name=tiny_bert), ["x"], max_length=n, threads=1,
                                         mean_tokens=mean)["key"] for n in timed]
    assert [k[len(f"{tiny_bert}|cpu|threads=1"):] for k in got] == list(keys)


def test_a_plan_note_says_when_the_512_token_figure_was_measured_under_load():
    busy = {"load1": 3.1, "cores": 2, "busy": True}
    assert throughput.load_note({"forward_tokens_per_s": 1.0, "longer": {"under_load": busy}}).startswith(
        "throughput measured under load (load average 3.1")
    assert throughput.load_note({"forward_tokens_per_s": 1.0, "longer": {}}) is None
