"""Shared fixtures: tiny random encoders of every supported architecture, written to a temp folder so they load
through exactly the same path as a real model (AutoConfig/AutoModel/AutoTokenizer, safetensors, offline)."""
from __future__ import annotations

import logging
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tiny import ARCHITECTURES, make_tiny_model, synthetic_frame  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Activation caches of one test never leak into another (disk or process memory)."""
    from unfreeze.training import cache

    monkeypatch.setenv("UNFREEZE_CACHE_DIR", str(tmp_path / "activation-cache"))
    cache.reset_memory()
    logging.getLogger("unfreeze").setLevel(logging.INFO)
    yield
    cache.reset_memory()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-models")
    return {arch: make_tiny_model(arch, root / arch) for arch in ARCHITECTURES}


@pytest.fixture(scope="session")
def tiny_bert(tiny_models):
    return tiny_models["bert"]


@pytest.fixture
def sentiment_csv(tmp_path):
    path = tmp_path / "sentiment.csv"
    synthetic_frame(240, seed=0).to_csv(path, index=False)
    return path


@pytest.fixture
def child():
    """Run Python code in a child process (optionally killed at a fault point), see `io_helpers.run_child`."""
    from io_helpers import run_child

    return run_child


@pytest.fixture
def tmpfs(tmp_path):
    """A 1 MiB tmpfs mounted for the test (root only); skips where mounting is not allowed."""
    from io_helpers import mounted_tmpfs

    with mounted_tmpfs(tmp_path / "tmpfs") as mnt:
        yield mnt
