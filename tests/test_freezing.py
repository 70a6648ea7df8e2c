"""Freezing is structural and architecture-agnostic: exactly the expected parameters get gradients, and frozen
parameters are bit-identical after training, for BERT, DistilBERT, RoBERTa, ELECTRA and DeBERTa-v2."""
import pytest
import torch
from safetensors.torch import load_file

from tiny import ARCHITECTURES, run_config, run_parts
from unfreeze.config.load import parse_run_config
from unfreeze.data.encode import Collator
from unfreeze.training.loss import loss_fn
from unfreeze.training.evaluate import model_inputs
from unfreeze.training.run import train

# Independent oracle, per architecture: the prefix of the top layer's parameter names.
TOP_LAYER = {
    "bert": "backbone.encoder.layer.1.", "roberta": "backbone.encoder.layer.1.",
    "electra": "backbone.encoder.layer.1.", "deberta-v2": "backbone.encoder.layer.1.",
    "distilbert": "backbone.transformer.layer.1.",
}
POOLER = "backbone.pooler."


def expected_trainable(arch: str, strategy, names: list[str]) -> set[str]:
    head = {n for n in names if n.startswith("head.")}
    backbone = [n for n in names if n.startswith("backbone.") and not n.startswith(POOLER)]
    if strategy == "head":
        return head
    if strategy == "top1":
        return head | {n for n in backbone if n.startswith(TOP_LAYER[arch])}
    if strategy == "all":
        return head | set(backbone)
    if strategy == "bitfit":
        return head | {n for n in backbone if n.endswith(".bias")}
    raise ValueError(strategy)


FREEZE = {"head": "head", "top1": {"top_k": 1}, "all": "all", "bitfit": "bitfit"}


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("strategy", list(FREEZE))
def test_exactly_expected_parameters_get_gradients(arch, strategy, tiny_models, sentiment_csv):
    cfg = parse_run_config(run_config(tiny_models[arch], sentiment_csv, freeze=FREEZE[strategy]))
    run = run_parts(cfg)
    names = [n for n, _ in run.model.named_parameters()]
    expected = expected_trainable(arch, strategy, names)
    assert {n for n, p in run.model.named_parameters() if p.requires_grad} == expected
    batch = Collator(run.encoded["train"], run.tokenizer.pad_token_id)(list(range(8)))
    loss_fn(run.model(**model_inputs(batch, None)), batch["labels"], None).backward()
    assert {n for n, p in run.model.named_parameters() if p.grad is not None} == expected


@pytest.mark.parametrize("arch", ["bert", "distilbert", "electra"])
@pytest.mark.parametrize("strategy", ["head", "top1", "bitfit"])
def test_frozen_parameters_bit_identical_after_training(arch, strategy, tiny_models, sentiment_csv, tmp_path):
    cfg = parse_run_config(run_config(tiny_models[arch], sentiment_csv, freeze=FREEZE[strategy],
                                      train={"epochs": 1, "threads": 1}))
    train(cfg, tmp_path / "run", progress=False)
    before = load_file(f"{tiny_models[arch]}/model.safetensors")
    after = load_file(str(tmp_path / "run" / "best" / "encoder" / "model.safetensors"))  # mean pooling: encoder/
    trainable = {n.removeprefix("backbone.") for n in expected_trainable(
        arch, strategy, [f"backbone.{n}" for n in before])}
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    if trainable:
        assert changed, "training changed no backbone parameter"
    assert changed <= trainable
    frozen = set(before) - trainable
    assert all(torch.equal(before[n], after[n]) for n in frozen)


def test_frozen_layers_run_in_eval_mode(tiny_bert, sentiment_csv):
    from unfreeze.strategies.base import set_train_mode

    run = run_parts(parse_run_config(run_config(tiny_bert, sentiment_csv, freeze={"top_k": 1})))
    set_train_mode(run.model, run.plan)
    layers = run.model.layout.layers
    assert not layers[0].training and layers[1].training
    assert not run.model.layout.embeddings.training and run.model.head.training


def test_top_k_larger_than_depth_is_an_error(tiny_bert, sentiment_csv):
    from unfreeze.errors import ConfigError

    with pytest.raises(ConfigError, match="only 2 layers"):
        run_parts(parse_run_config(run_config(tiny_bert, sentiment_csv, freeze={"top_k": 5})))


def test_unknown_architecture_fails_clearly():
    from torch import nn

    from unfreeze.model.backbone import discover_layout
    from unfreeze.errors import UnfreezeError

    class NotATransformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.proj = nn.Linear(4, 4)

        def get_input_embeddings(self):
            return self.emb

    with pytest.raises(UnfreezeError, match="unsupported architecture NotATransformer"):
        discover_layout(NotATransformer())


def test_pooler_pooling_needs_a_pooler(tiny_models, sentiment_csv):
    from unfreeze.errors import ConfigError

    with pytest.raises(ConfigError, match="pooler"):
        run_parts(parse_run_config(run_config(tiny_models["distilbert"], sentiment_csv,
                                                model={"name": tiny_models["distilbert"], "pooling": "pooler"})))
