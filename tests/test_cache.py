"""The frozen-prefix cache changes speed, not results; it is reused across runs and invalidated when the weights,
the data or the tokenisation change; it respects its RAM budget by memory-mapping from disk."""
import json

import pytest

from tiny import make_tiny_model, run_config, synthetic_frame
from unfreeze.training import cache
from unfreeze.config.load import parse_run_config
from unfreeze.training.run import train


def run(model, data, tmp_path, name, freeze, cache_mode="auto", dtype="float32", seed=0, **train_opts):
    cfg = parse_run_config(run_config(model, data, freeze=freeze, seed=seed, train={
        "epochs": 2, "threads": 1, "cache": cache_mode, "cache_dtype": dtype, "save_model": False, **train_opts}))
    return train(cfg, tmp_path / name, progress=False, cache_root=tmp_path / "cache")


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
@pytest.mark.parametrize("freeze", ["head", {"top_k": 1}])
def test_fp32_cache_equals_uncached_path(arch, freeze, tiny_models, sentiment_csv, tmp_path):
    cached = run(tiny_models[arch], sentiment_csv, tmp_path, "on", freeze)
    plain = run(tiny_models[arch], sentiment_csv, tmp_path, "off", freeze, cache_mode="off")
    assert cached["cache"]["used"] and not plain["cache"]["used"]
    for split in ("val", "test"):
        assert cached[split]["loss"] == pytest.approx(plain[split]["loss"], abs=1e-5)
        assert cached[split]["f1_macro"] == pytest.approx(plain[split]["f1_macro"], abs=1e-5)
    for a, b in zip(cached["history"], plain["history"]):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_fp16_cache_within_documented_tolerance(arch, tiny_models, sentiment_csv, tmp_path):
    """Documented tolerance for fp16 storage: |Δ loss| ≤ 1e-2 and |Δ accuracy| ≤ 0.05 on a tiny model."""
    half = run(tiny_models[arch], sentiment_csv, tmp_path, "fp16", {"top_k": 1}, dtype="float16")
    plain = run(tiny_models[arch], sentiment_csv, tmp_path, "off", {"top_k": 1}, cache_mode="off")
    assert half["val"]["loss"] == pytest.approx(plain["val"]["loss"], abs=1e-2)
    assert abs(half["val"]["accuracy"] - plain["val"]["accuracy"]) <= 0.05


def test_second_run_computes_nothing(tiny_bert, sentiment_csv, tmp_path):
    run(tiny_bert, sentiment_csv, tmp_path, "a", "head")
    computed = cache.STATS["forward_batches"]
    assert computed > 0
    run(tiny_bert, sentiment_csv, tmp_path, "b", "head", seed=1)
    assert cache.STATS["forward_batches"] == computed


def test_one_pass_fills_every_boundary_of_a_study(tiny_bert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze="head",
                                      train={"epochs": 1, "threads": 1, "cache_dtype": "float32"}))
    train(cfg, tmp_path / "head", progress=False, cache_root=tmp_path / "cache", cache_top_ks={0, 1})
    computed = cache.STATS["forward_batches"]
    run(tiny_bert, sentiment_csv, tmp_path, "top1", {"top_k": 1})
    assert cache.STATS["forward_batches"] == computed


def test_ram_budget_spills_to_memory_map_with_same_results(tiny_bert, sentiment_csv, tmp_path):
    in_ram = run(tiny_bert, sentiment_csv, tmp_path, "ram", {"top_k": 1})
    cache.reset_memory()
    loaded = cache.STATS["loaded_ram"]
    mapped = run(tiny_bert, sentiment_csv, tmp_path, "disk", {"top_k": 1}, cache_ram_mb=0)
    assert cache.STATS["loaded_ram"] == loaded and cache.STATS["mapped_disk"] >= 3
    assert mapped["val"]["loss"] == pytest.approx(in_ram["val"]["loss"], abs=1e-6)


def test_cache_invalidated_when_data_tokenisation_or_weights_change(tiny_bert, sentiment_csv, tmp_path):
    run(tiny_bert, sentiment_csv, tmp_path, "a", "head")
    before = cache.STATS["forward_batches"]
    run(tiny_bert, sentiment_csv, tmp_path, "b", "head", max_tokens_per_batch=None)  # same → reused
    assert cache.STATS["forward_batches"] == before
    other = tmp_path / "other.csv"
    synthetic_frame(240, seed=5).to_csv(other, index=False)
    run(tiny_bert, other, tmp_path, "c", "head")
    after_data = cache.STATS["forward_batches"]
    assert after_data > before
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze="head", data={
        "path": str(sentiment_csv), "max_length": 8}, train={"epochs": 1, "threads": 1, "save_model": False}))
    train(cfg, tmp_path / "d", progress=False, cache_root=tmp_path / "cache")
    after_tokens = cache.STATS["forward_batches"]
    assert after_tokens > after_data
    reseeded = make_tiny_model("bert", tmp_path / "bert-seed1", seed=1)
    run(reseeded, sentiment_csv, tmp_path, "e", "head")
    assert cache.STATS["forward_batches"] > after_tokens


@pytest.mark.parametrize("freeze", ["bitfit", "all"])
def test_strategies_that_train_inside_the_prefix_fall_back(freeze, tiny_bert, sentiment_csv, tmp_path, caplog):
    result = run(tiny_bert, sentiment_csv, tmp_path, "x", freeze, cache_mode="on")
    assert not result["cache"]["used"]
    assert "activation cache not used" in caplog.text


def test_cache_is_keyed_per_example_so_other_subsets_reuse_it(tiny_bert, sentiment_csv, tmp_path):
    """A size study's train subsets overlap: a second subset computes only the examples the first did not have."""
    from unfreeze.training.prepare import load_data

    def sized(n):
        return parse_run_config(run_config(tiny_bert, sentiment_csv, freeze="head", data={
            "path": str(sentiment_csv), "train_size": n, "max_length": 64},
            train={"epochs": 1, "threads": 1, "save_model": False}))

    train(sized(60), tmp_path / "a", progress=False, cache_root=tmp_path / "cache")
    before = cache.STATS["forward_examples"]
    train(sized(120), tmp_path / "b", progress=False, cache_root=tmp_path / "cache")
    first, second = (set(load_data(sized(n)).train.texts) for n in (60, 120))
    assert len(second - first) > 0
    assert cache.STATS["forward_examples"] - before == len(second - first)  # val and test: all reused


def test_cross_validation_computes_each_example_once(tiny_bert, sentiment_csv, tmp_path):
    """Folds re-shuffle one pool of examples: the frozen prefix is computed once per example, not once per fold."""
    import unfreeze.study as study
    from unfreeze.config.study import StudyConfig

    base = run_config(tiny_bert, sentiment_csv, freeze="head",
                      train={"epochs": 1, "threads": 1, "save_model": False, "cache_dtype": "float32"})
    spec = StudyConfig.model_validate({"name": "cv", "base": base, "baseline": False, "cv": {"folds": 3}})
    before = cache.STATS["forward_examples"]
    results = study.run_study(spec, tmp_path / "study", progress=False, echo=lambda *_: None)
    assert len(results) == 3
    sizes = json.loads(next((tmp_path / "study" / "runs").glob("*/metrics.json")).read_text())["data"]["sizes"]
    pool_and_test = 240 - sizes.get("dropped", 0)
    computed = cache.STATS["forward_examples"] - before
    assert computed <= pool_and_test < 2 * computed  # once each (3 folds without sharing: ≈ 3× the pool)
