"""The frozen-prefix cache changes speed, not results; it is reused across runs and invalidated when the weights,
the data or the tokenisation change; it respects its RAM budget by memory-mapping from disk."""
import json
import re

import numpy as np
import pytest

from tiny import make_tiny_model, run_config, synthetic_frame
from unfreeze.training import cache
from unfreeze.config.load import parse_run_config
from unfreeze.training.callbacks import RunCallbacks
from unfreeze.training.run import train


def run(model, data, tmp_path, name, freeze, cache_mode="auto", dtype="float32", seed=0, **train_opts):
    cfg = parse_run_config(run_config(model, data, freeze=freeze, seed=seed, train={
        "epochs": 2, "threads": 1, "cache": cache_mode, "cache_dtype": dtype, "save_model": False, **train_opts}))
    return train(cfg, tmp_path / name, progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))


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
    train(cfg, tmp_path / "head", progress=False,
          callbacks=RunCallbacks(cache_root=tmp_path / "cache", cache_top_ks={0, 1}))
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
    train(cfg, tmp_path / "d", progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))
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

    train(sized(60), tmp_path / "a", progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))
    before = cache.STATS["forward_examples"]
    train(sized(120), tmp_path / "b", progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))
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


# Evaluation through the cache (issue #27): val/test in float32, pooled vectors for `head`


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_head_run_reads_pooled_vectors_and_never_runs_the_encoder_once_cached(pooling, tiny_bert, sentiment_csv,
                                                                              tmp_path, monkeypatch):
    """A head run's cache is one pooled vector per example (no token states), and a run with a warm cache trains,
    validates and runs its final pass without calling the encoder at all."""
    from unfreeze.model.heads import EncoderClassifier

    def head_run(name, seed):
        cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze="head", seed=seed,
                                          model={"name": tiny_bert, "pooling": pooling},
                                          train={"epochs": 2, "threads": 1, "save_model": False}))
        return train(cfg, tmp_path / name, progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))

    first = head_run("a", 0)
    assert first["cache"]["pooled"] == pooling
    assert first["cache"]["dtypes"] == {"train": "float16", "val": "float32", "test": "float32"}
    arrays = {p.name for p in (tmp_path / "cache").glob("*/shard-*/*.npy")}
    assert arrays == {f"{pooling}2.npy", "keys.npy", "offsets.npy"}  # no per-token layer2.npy
    pooled = [np.load(p) for p in (tmp_path / "cache").glob(f"*-float32/shard-*/{pooling}2.npy")]
    assert sum(len(a) for a in pooled) == first["data"]["sizes"]["val"] + first["data"]["sizes"]["test"]
    calls = []
    original = EncoderClassifier.encode
    monkeypatch.setattr(EncoderClassifier, "encode", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    second = head_run("b", 1)
    assert second["cache"]["computed_examples"] == 0 and calls == []
    assert second["final_eval_seconds"] >= 0 and second["epoch_eval_seconds"] >= 0


@pytest.mark.parametrize("freeze", ["head", {"top_k": 1}])
def test_fp16_training_cache_still_reports_what_predict_computes_bit_for_bit(freeze, tiny_bert, sentiment_csv,
                                                                             tmp_path):
    """Training reads fp16 states; validation and the final pass read val/test's float32 cache: `predict RUN` (the
    full forward of best/, same batches) reproduces predictions_val.csv and predictions_test.csv exactly."""
    from test_cache_families import assert_predict_reproduces_exactly

    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze=freeze, train={
        "epochs": 2, "threads": 1, "eval_batch_size": 64, "cache_dtype": "float16"}))
    result = train(cfg, tmp_path / "run", progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))
    assert result["cache"]["used"] and result["cache"]["dtypes"]["train"] == "float16"
    assert_predict_reproduces_exactly(tmp_path / "run", tmp_path)


def test_evaluation_seconds_are_recorded_per_epoch_and_for_the_final_pass(tiny_bert, sentiment_csv, tmp_path):
    result = run(tiny_bert, sentiment_csv, tmp_path, "r", {"top_k": 1})
    assert all(row["eval_seconds"] >= 0 for row in result["history"]) and len(result["history"]) == 2
    assert result["epoch_eval_seconds"] == pytest.approx(sum(r["eval_seconds"] for r in result["history"]), abs=2e-3)
    assert result["final_eval_seconds"] >= 0 and result["cache"]["fill_seconds"] >= 0
    assert result["cache"]["fill_seconds"] <= result["setup_seconds"] <= result["train_seconds"]
    history = (tmp_path / "r" / "history.csv").read_text().splitlines()[0].split(",")
    assert "eval_seconds" in history


def test_cache_fill_and_final_pass_show_progress_with_a_total(tiny_bert, sentiment_csv, tmp_path, capsys):
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze={"top_k": 1},
                                      train={"epochs": 1, "threads": 1, "save_model": False}))
    train(cfg, tmp_path / "p", progress=True, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))
    err = capsys.readouterr().err
    # a percentage is shown only when the bar has a total (tqdm then also shows an ETA)
    for split in ("train", "val", "test"):
        assert re.search(rf"caching frozen layers \({split}: \d+ examples\):\s+\d+%", err), err
    assert re.search(r"final pass \(test\):\s+\d+%", err) and re.search(r"validating:\s+\d+%", err), err
    train(cfg, tmp_path / "q", progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))
    assert capsys.readouterr().err == ""  # quiet


# Verification of the shards on open (issue #26): checksums on each shard's first open per process


def test_shards_are_checksummed_on_first_open_only_unless_changed(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    import os

    from unfreeze.errors import ConfigError
    from unfreeze.io import integrity
    from unfreeze.training.cache_store import StoreIndex

    monkeypatch.delenv("UNFREEZE_CACHE_VERIFY", raising=False)
    run(tiny_bert, sentiment_csv, tmp_path, "a", {"top_k": 1})
    store = next((tmp_path / "cache").glob("*-float32"))
    hashed = []
    original = integrity.file_checksum
    monkeypatch.setattr(integrity, "file_checksum", lambda p, a="crc32": hashed.append(p) or original(p, a))
    StoreIndex(store, "float32")
    assert hashed == []  # written by this process: its checksums were computed from the files on disk
    integrity.forget_verified()  # a new process
    StoreIndex(store, "float32")
    files = len([p for p in store.glob("shard-*/*") if p.name != "manifest.json"])
    assert len(hashed) == files  # every byte read once
    StoreIndex(store, "float32")
    assert len(hashed) == files  # memoised
    layer = next(store.glob("shard-*/layer1.npy"))
    os.utime(layer)  # rewritten (mtime changed): checked again
    StoreIndex(store, "float32")
    assert layer in hashed[files:]
    monkeypatch.setenv("UNFREEZE_CACHE_VERIFY", "full")
    before = len(hashed)
    StoreIndex(store, "float32", integrity.verify_mode())
    assert len(hashed) == before + files
    monkeypatch.setenv("UNFREEZE_CACHE_VERIFY", "lengths")
    integrity.forget_verified()
    StoreIndex(store, "float32", integrity.verify_mode())
    assert len(hashed) == before + files
    monkeypatch.setenv("UNFREEZE_CACHE_VERIFY", "sometimes")
    with pytest.raises(ConfigError, match="UNFREEZE_CACHE_VERIFY='sometimes'.*first"):
        run(tiny_bert, sentiment_csv, tmp_path, "b", {"top_k": 1})


def _renaming_shards(monkeypatch, action):
    """Path.rename with `action(tmp, target)` for a finished shard's temp folder (`.shard-….tmp`)."""
    from pathlib import Path

    real = Path.rename

    def rename(self, target):
        if self.name.startswith(".shard-"):
            return action(real, self, Path(target))
        return real(self, target)

    monkeypatch.setattr(Path, "rename", rename)


def test_a_shard_rename_failing_for_another_reason_than_the_race_is_one_line(tiny_bert, sentiment_csv, tmp_path,
                                                                             monkeypatch):
    """A rename OSError was swallowed whatever it was (only "another process published it first" may be): the
    run then read a shard that was never stored (FileNotFoundError, rc 1)."""
    import errno

    from unfreeze.errors import UnfreezeError

    def refuse(real, tmp, target):
        raise PermissionError(errno.EACCES, "Permission denied", str(target))

    _renaming_shards(monkeypatch, refuse)
    with pytest.raises(UnfreezeError, match=r"activation cache .*could not store shard shard-\w+ \(Permission "
                                            r"denied\).*UNFREEZE_CACHE_DIR"):
        run(tiny_bert, sentiment_csv, tmp_path, "a", "head")
    assert not list((tmp_path / "cache").glob("*/.shard-*"))  # the computed temp shard is not left behind


def test_a_shard_another_process_published_first_is_used(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    """The race itself stays harmless: the other writer's shard (same examples, same weights) is read."""
    import errno
    import shutil

    def lose_the_race(real, tmp, target):
        shutil.copytree(tmp, target)  # the other process's rename landed first
        raise OSError(errno.ENOTEMPTY, "Directory not empty", str(target))

    plain = run(tiny_bert, sentiment_csv, tmp_path, "plain", "head", cache_mode="off")
    _renaming_shards(monkeypatch, lose_the_race)
    raced = run(tiny_bert, sentiment_csv, tmp_path, "raced", "head")
    assert raced["cache"]["used"]
    assert raced["test"]["loss"] == pytest.approx(plain["test"]["loss"], abs=1e-5)


def test_a_study_fingerprints_the_weights_and_hashes_the_examples_once(tiny_bert, sentiment_csv, tmp_path,
                                                                       monkeypatch):
    """#27 review: every run of a study rebuilt the store index (every shard's keys), re-hashed every example and
    the whole backbone. Now once per process, keyed so that a changed model folder hashes again."""
    import shutil

    from unfreeze.config.study import StudyConfig
    from unfreeze.study import runner
    from unfreeze.training import cache_store

    counts = {"weights": 0, "keys": 0}

    def counting(name, real):
        def wrapped(*a, **k):
            counts[name] += 1
            return real(*a, **k)
        return wrapped

    monkeypatch.setattr(cache, "weights_fingerprint", counting("weights", cache.weights_fingerprint))
    monkeypatch.setattr(cache, "example_keys", counting("keys", cache.example_keys))
    adds = []
    real_add = cache_store.StoreIndex.add
    monkeypatch.setattr(cache_store.StoreIndex, "add", lambda self, shard: adds.append(shard) or real_add(self, shard))
    base = run_config(tiny_bert, sentiment_csv, train={"epochs": 1, "threads": 1, "save_model": False})
    spec = {"name": "memo", "base": base, "grid": {"freeze": ["head", {"top_k": 1}]}, "seeds": [0, 1, 2],
            "baseline": False}
    runner.run_study(StudyConfig.model_validate(spec), tmp_path / "study", progress=False, echo=lambda *_: None)
    assert counts["weights"] == 1  # one backbone, 6 runs
    assert counts["keys"] == 3  # train, val, test: once each
    assert len(adds) == len(set(adds))  # no shard's keys read twice (they were re-read for every run)
    # a model folder whose weights change in place is hashed again: the new weights get their own store
    other = tmp_path / "other-model"
    shutil.copytree(tiny_bert, other)
    run(str(other), sentiment_csv, tmp_path, "other", "head")
    run(str(other), sentiment_csv, tmp_path, "other-again", "head", seed=1)
    assert counts["weights"] == 2
    make_tiny_model("bert", other, seed=1)
    run(str(other), sentiment_csv, tmp_path, "changed", "head")
    assert counts["weights"] == 3 and len(list((tmp_path / "cache").glob("*-float32"))) == 2
