"""ALBERT-style shared layers: one layer's weights serve every depth, so strategies that treat depths apart
(top_k, gradual, llrd) are refused with one clear line; head / all / bitfit still run."""
import pytest

from tiny import make_tiny_model, run_config
from unfreeze.config.load import parse_run_config
from unfreeze.config.schema import ModelConfig
from unfreeze.errors import ConfigError
from unfreeze.model.backbone import discover_layout, load_backbone
from unfreeze.training.callbacks import RunCallbacks
from unfreeze.training.run import train


@pytest.fixture(scope="module")
def tiny_albert(tmp_path_factory):
    return make_tiny_model("albert", tmp_path_factory.mktemp("albert") / "model", layers=3)


def test_sharing_is_detected_structurally(tiny_albert, tiny_bert):
    albert, _ = load_backbone(ModelConfig(name=tiny_albert))
    bert, _ = load_backbone(ModelConfig(name=tiny_bert))
    assert discover_layout(albert).shared_depths
    assert not discover_layout(bert).shared_depths


@pytest.mark.parametrize("freeze", [{"top_k": 1}, {"gradual": {"every_epochs": 1}}, {"llrd": 0.8}])
def test_depth_strategies_refuse_shared_layers(freeze, tiny_albert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_albert, sentiment_csv, freeze=freeze,
                                      train={"epochs": 1, "threads": 1, "save_model": False}))
    with pytest.raises(ConfigError, match=r"shares one layer's weights across depth.*use head, all, bitfit or lora"):
        train(cfg, tmp_path / "run", progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))


@pytest.mark.parametrize("freeze", ["head", "all"])
def test_whole_stack_strategies_still_run(freeze, tiny_albert, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_albert, sentiment_csv, freeze=freeze,
                                      train={"epochs": 1, "threads": 1, "save_model": False}))
    result = train(cfg, tmp_path / "run", progress=False, callbacks=RunCallbacks(cache_root=tmp_path / "cache"))
    assert result["test"]["loss"] > 0
