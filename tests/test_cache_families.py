"""The activation cache changes speed, not numbers, for every encoder family it claims, at every boundary.

For each family a 3-layer tiny model is trained with `top_k` 0, 1, 2 (boundaries 3, 2, 1) once from an fp32
cache and once with `cache: off`; the per-epoch train and val losses (the val pass runs the cached forward) agree
to 1e-5. Val and test are evaluated through their float32 cache (pooled vectors for `head`): the saved model run
through the full forward (`predict`, same batches) gives BIT-IDENTICAL predictions — the cached final pass is the
uncached one. DeBERTa-v2 with `conv_kernel_size > 0` is the case that needs the layer list to keep its indices:
transformers mixes a convolution of the embeddings into layer 0's output.
"""
import pandas as pd
import pytest

from tiny import CACHE_FAMILIES, make_tiny_model, run_config, synthetic_frame
from unfreeze.config.load import parse_run_config
from unfreeze.model.predict import predict_file
from unfreeze.training.callbacks import RunCallbacks
from unfreeze.training.run import train

pytestmark = pytest.mark.slow  # over ~20 s on 2 cores; `make test` runs it

LAYERS = 3


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("families") / "small.csv"
    synthetic_frame(40, seed=0).to_csv(path, index=False)
    return path


def _run(model, data, out, top_k, cache_mode, save_model=False):
    # eval_batch_size 64 = predict's batch size: the same batches, so equality can be exact
    cfg = parse_run_config(run_config(model, data, freeze={"top_k": top_k}, train={
        "epochs": 1, "batch_size": 16, "eval_batch_size": 64, "threads": 1, "cache": cache_mode,
        "cache_dtype": "float32", "save_model": save_model}))
    result = train(cfg, out, progress=False, callbacks=RunCallbacks(cache_root=out.parent / "cache"))
    return result, pd.read_csv(out / "predictions_test.csv")


def assert_predict_reproduces_exactly(run_dir, tmp_path, splits=("val", "test")):
    """`predict RUN` (the full forward of best/) on each split's texts gives predictions_<split>.csv bit for bit."""
    for split in splits:
        saved = pd.read_csv(run_dir / f"predictions_{split}.csv")
        texts = tmp_path / f"{run_dir.name}-{split}.csv"
        saved[["text"]].to_csv(texts, index=False)
        predict_file(run_dir, texts, tmp_path / f"{run_dir.name}-{split}-again.csv")
        again = pd.read_csv(tmp_path / f"{run_dir.name}-{split}-again.csv")
        probs = [c for c in saved.columns if c.startswith("prob")]
        assert probs and list(again["pred"].astype(str)) == list(saved["pred"].astype(str)), split
        assert (again[probs].to_numpy() == saved[probs].to_numpy()).all(), (run_dir, split)


@pytest.mark.parametrize("arch", CACHE_FAMILIES)
def test_cached_equals_uncached_at_every_boundary(arch, small_csv, tmp_path):
    model = make_tiny_model(arch, tmp_path / "model", layers=LAYERS)
    for top_k in range(LAYERS):
        cached, _ = _run(model, small_csv, tmp_path / f"on{top_k}", top_k, "on", save_model=True)
        plain, plain_pred = _run(model, small_csv, tmp_path / f"off{top_k}", top_k, "off")
        assert cached["cache"]["used"] and cached["cache"]["from_layer"] == LAYERS - top_k
        assert cached["cache"]["pooled"] == ("mean" if top_k == 0 else None)
        assert not plain["cache"]["used"]
        assert cached["test"]["loss"] == pytest.approx(plain["test"]["loss"], abs=1e-5), (arch, top_k)
        for a, b in zip(cached["history"], plain["history"], strict=True):
            assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5), (arch, top_k)
            assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5), (arch, top_k)
        assert_predict_reproduces_exactly(tmp_path / f"on{top_k}", tmp_path)
