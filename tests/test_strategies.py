"""Strategies beyond a fixed frozen set: layer-wise LR decay puts the right LR on every parameter, gradual
unfreezing trains exactly the scheduled layers each epoch (and the optimizer really steps them), LoRA trains only
adapters + head and saves a plain model that reloads to the same predictions; none of them uses the activation
cache."""
import types

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from tiny import run_config, run_parts
from unfreeze.training import cache
from unfreeze.strategies import apply_freeze, gradual, lora
from unfreeze.config.schema import FreezeConfig
from unfreeze.config.load import parse_run_config
from unfreeze.data.encode import Collator
from unfreeze.errors import ConfigError
from unfreeze.training.optim import build_optimizer, build_scheduler, parameter_groups
from unfreeze.training.loss import loss_fn
from unfreeze.training.evaluate import model_inputs
from unfreeze.training.run import train

# Independent oracles, per architecture: where layer i and the embeddings live in parameter names.
LAYER = {"bert": "backbone.encoder.layer.{}.", "distilbert": "backbone.transformer.layer.{}."}
LORA_TARGETS = {"bert": ["query", "value"], "roberta": ["query", "value"], "electra": ["query", "value"],
                "distilbert": ["q_lin", "v_lin"], "deberta-v2": ["query_proj", "value_proj"]}
HAS_BITFIT_OPTION = "bitfit" in FreezeConfig.model_fields


def prepared(model_dir, data, freeze, **overrides):
    return run_parts(parse_run_config(run_config(model_dir, data, freeze=freeze, **overrides)))


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


# ---------------------------------------------------------------------------------------------------------
# LLRD


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_llrd_gives_each_depth_its_learning_rate(arch, tiny_models, sentiment_csv):
    pooling = "pooler" if arch == "bert" else "mean"
    run = prepared(tiny_models[arch], sentiment_csv, {"llrd": 0.5}, optim={"lr": 1e-3, "head_lr": 1e-2},
                   model={"name": tiny_models[arch], "pooling": pooling})
    lr_of = {id(p): g["lr"] for g in parameter_groups(run.model, run.config) for p in g["params"]}

    def expected(name: str) -> float:  # L = 2: embeddings 1e-3·0.5³, layer 0 ·0.5², layer 1 ·0.5, pooler ·1
        if name.startswith("head."):
            return 1e-2
        if name.startswith("backbone.embeddings."):
            return 1e-3 * 0.5 ** 3
        for i in range(2):
            if name.startswith(LAYER[arch].format(i)):
                return 1e-3 * 0.5 ** (2 - i)
        assert name.startswith("backbone.pooler."), name
        return 1e-3

    params = dict(run.model.named_parameters())
    assert trainable_names(run.model) == set(params)  # everything trains (the used pooler included)
    assert set(lr_of) == {id(p) for p in params.values()}
    for name, param in params.items():
        assert lr_of[id(param)] == pytest.approx(expected(name)), name
    assert min(lr_of.values()) == pytest.approx(1e-3 * 0.5 ** 3)


def test_llrd_groups_reach_the_optimizer_and_keep_no_decay(tiny_bert, sentiment_csv):
    run = prepared(tiny_bert, sentiment_csv, {"llrd": 0.8}, optim={"lr": 1e-3, "weight_decay": 0.1})
    optimizer = build_optimizer(parameter_groups(run.model, run.config), run.config.optim)
    groups = {g["name"]: g for g in optimizer.param_groups}
    assert {"depth0", "depth0/no_decay", "depth1", "depth2", "head", "head/no_decay"} <= set(groups)
    assert groups["depth0"]["lr"] == pytest.approx(1e-3 * 0.8 ** 3)
    assert groups["depth2/no_decay"]["weight_decay"] == 0.0 and groups["depth2"]["weight_decay"] == 0.1
    layer_norm_bias = run.model.layout.layers[1].output.LayerNorm.bias
    assert any(p is layer_norm_bias for p in groups["depth2/no_decay"]["params"])


@pytest.mark.skipif(not HAS_BITFIT_OPTION, reason="needs the `freeze.bitfit` option in config.py")
def test_bitfit_under_llrd_trains_biases_with_layer_lrs(tiny_bert, sentiment_csv):
    run = prepared(tiny_bert, sentiment_csv, {"llrd": 0.5, "bitfit": True}, optim={"lr": 1e-3})
    names = [n for n, _ in run.model.named_parameters()]
    head = {n for n in names if n.startswith("head.")}
    biases = {n for n in names if n.endswith(".bias") and n.startswith("backbone.") and ".pooler." not in n}
    assert trainable_names(run.model) == head | biases
    assert run.plan.biases_only and run.config.freeze.label == "llrd-0.5-bitfit"
    lrs = {g["name"]: g["lr"] for g in parameter_groups(run.model, run.config)}
    assert lrs["depth0/no_decay"] == pytest.approx(1e-3 * 0.5 ** 3) and lrs["depth2/no_decay"] == pytest.approx(5e-4)


@pytest.mark.skipif(not HAS_BITFIT_OPTION, reason="needs the `freeze.bitfit` option in config.py")
@pytest.mark.parametrize("freeze", [{"lora": {"r": 4}, "bitfit": True}, {"gradual": {}, "bitfit": True},
                                    {"top_k": 1, "bitfit": True}])
def test_bitfit_refuses_strategies_it_does_not_combine_with(freeze, tiny_bert, sentiment_csv):
    with pytest.raises(ConfigError, match="combines with llrd"):
        parse_run_config(run_config(tiny_bert, sentiment_csv, freeze=freeze))


def test_apply_refuses_bitfit_outside_llrd(tiny_bert, sentiment_csv):
    run = prepared(tiny_bert, sentiment_csv, "head")
    with pytest.raises(ConfigError, match="combines with llrd only"):
        apply_freeze(run.model, types.SimpleNamespace(strategy="lora", bitfit=True))


# ---------------------------------------------------------------------------------------------------------
# Gradual unfreezing


def test_gradual_trains_the_scheduled_layers_each_epoch(tiny_bert, sentiment_csv, tmp_path, monkeypatch):
    """Snapshots at each epoch start: what changed during epoch e must be exactly the units scheduled for e,
    and every new group must be in the running optimizer with a non-zero, scheduled LR."""
    snapshots, seen = [], []
    original = gradual.GradualUnfreezer.on_epoch_start

    def recording(self, epoch, optimizer, *args, **kwargs):
        changed = original(self, epoch, optimizer, *args, **kwargs)
        snapshots.append({n: p.detach().clone() for n, p in self.model.named_parameters()})
        head = optimizer.param_groups[0]
        seen.append({"changed": changed, "factor": head["lr"] / head["initial_lr"],
                     "groups": [(g["name"], g["lr"], g["initial_lr"]) for g in optimizer.param_groups],
                     "type": type(optimizer).__name__,
                     "head_steps": int(optimizer.state[head["params"][0]].get("step", 0)) if epoch else 0})
        return changed

    monkeypatch.setattr(gradual.GradualUnfreezer, "on_epoch_start", recording)
    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze={"gradual": {"every_epochs": 1}},
                                      optim={"lr": 1e-3, "head_lr": 1e-2},
                                      train={"epochs": 5, "threads": 1, "save_model": False}))
    result = train(cfg, tmp_path / "run", progress=False)
    assert [row["unfrozen_layers"] for row in result["history"]] == [0, 1, 2, 2, 2]
    assert [s["changed"] for s in seen] == [False, True, True, True, False]
    assert seen[1]["type"] == "AcceleratedOptimizer" and seen[1]["head_steps"] == 12  # same optimizer, state kept
    # reported: what it trained by the end, and the head-only start
    assert result["trainable_params_at_start"] < result["trainable_params"] <= result["total_params"]

    names = list(snapshots[0])
    head = {n for n in names if n.startswith("head.")}
    layer = [{n for n in names if n.startswith(LAYER["bert"].format(i))} for i in range(2)]
    embeddings = {n for n in names if n.startswith("backbone.embeddings.")}
    expected = [head, head | layer[1], head | layer[1] | layer[0], head | layer[1] | layer[0] | embeddings]
    for epoch, trainable in enumerate(expected):
        before, after = snapshots[epoch], snapshots[epoch + 1]
        changed = {n for n in names if not torch.equal(before[n], after[n])}
        assert changed <= trainable, f"epoch {epoch}: {sorted(changed - trainable)[:3]} changed while frozen"
        matrices = {n for n in trainable if before[n].dim() == 2}
        assert matrices <= changed, f"epoch {epoch}: {sorted(matrices - changed)[:3]} did not train"

    for epoch, new_group in ((1, "depth2"), (2, "depth1"), (3, "depth0")):
        groups = {name: (lr, initial) for name, lr, initial in seen[epoch]["groups"]}
        assert new_group in groups and new_group not in {g[0] for g in seen[epoch - 1]["groups"]}
        lr, initial = groups[new_group]
        assert initial == pytest.approx(1e-3) and lr == pytest.approx(1e-3 * seen[epoch]["factor"]) and lr > 0
    assert seen[4]["groups"][-1][1] > 0  # still scheduled (linear decay, not yet 0) after more steps


def start_gradual(model_dir, data, every_epochs, scheduler):
    run = prepared(model_dir, data, {"gradual": {"every_epochs": every_epochs}},
                   scheduler={"name": scheduler, "patience": 0})
    unfreezer = gradual.GradualUnfreezer(run.model, run.config, run.plan)
    optimizer = build_optimizer(parameter_groups(run.model, run.config), run.config.optim)
    return run, unfreezer, optimizer, build_scheduler(optimizer, run.config.scheduler, 20, maximize=True)


def test_gradual_fractional_schedule_keeps_lambda_scheduler_in_step(tiny_bert, sentiment_csv):
    run, unfreezer, optimizer, scheduler = start_gradual(tiny_bert, sentiment_csv, 0.5, "linear")
    assert {n.split(".")[0] for n in trainable_names(run.model)} == {"head"}
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert unfreezer.on_epoch_start(0, optimizer, scheduler) is False
    assert unfreezer.on_epoch_start(1, optimizer, scheduler) is True  # two units per epoch: both layers at once
    assert unfreezer.unfrozen == 2 and unfreezer.plan.trainable_layers == [0, 1]
    assert not unfreezer.plan.embeddings_trainable and unfreezer.on_epoch_start(1, optimizer, scheduler) is False
    optimizer.step()
    scheduler.step()  # a LambdaLR that was not extended fails here (torch zips groups strictly)
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    assert 0 < factor < 1 and len(optimizer.param_groups) == 6
    assert all(g["lr"] == pytest.approx(g["initial_lr"] * factor) for g in optimizer.param_groups)
    assert unfreezer.on_epoch_start(2, optimizer, scheduler) and unfreezer.plan.embeddings_trainable
    assert unfreezer.on_epoch_start(9, optimizer, scheduler) is False  # nothing left to unfreeze


def test_gradual_by_steps_unfreezes_mid_epoch_in_stages_with_layer_decay(tiny_bert, sentiment_csv, tmp_path):
    """`every_steps` + `layers_per_stage`: stages follow optimizer steps (12 per epoch here), two units at a time;
    with `decay` the unfrozen layers join at their layer-wise LRs (ULMFiT's discriminative fine-tuning)."""
    cfg = parse_run_config(run_config(
        tiny_bert, sentiment_csv, freeze={"gradual": {"every_steps": 6, "layers_per_stage": 2, "decay": 0.5}},
        optim={"lr": 1e-3, "head_lr": 1e-2}, scheduler={"name": "constant", "warmup_ratio": 0},
        train={"epochs": 2, "threads": 1, "save_model": False, "eval_every_steps": 3}))
    assert cfg.freeze.label == "gradual-llrd-0.5"
    result = train(cfg, tmp_path / "run", progress=False)
    by_step = {row["step"]: (row["unfrozen_layers"], row["embeddings_trainable"]) for row in result["history"]}
    assert by_step[3] == (0, False)  # head only
    assert by_step[6] == (2, False)  # after step 6: both layers at once (a stage of 2), mid-epoch
    assert by_step[12] == (2, True)  # after step 12: the embeddings
    lrs = {g["name"]: g["lr"] for g in result["parameter_groups"]}
    assert set(lrs) == {"head", "head/no_decay"}  # at the start only the head trains
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert {"unfrozen_layers", "embeddings_trainable", "lr", "head_lr"} <= set(history.columns)
    assert history["lr"].iloc[-1] == pytest.approx(1e-3) and history["head_lr"].iloc[-1] == pytest.approx(1e-2)


def test_gradual_decay_sets_per_layer_lrs_of_new_groups(tiny_bert, sentiment_csv):
    run = prepared(tiny_bert, sentiment_csv, {"gradual": {"every_epochs": 1, "decay": 0.5}}, optim={"lr": 1e-3})
    unfreezer = gradual.GradualUnfreezer(run.model, run.config, run.plan)
    optimizer = build_optimizer(parameter_groups(run.model, run.config), run.config.optim)
    unfreezer.on_epoch_start(2, optimizer)  # two stages: layers 1 and 0
    lrs = {g["name"].split("/")[0]: g["lr"] for g in optimizer.param_groups}
    assert lrs["depth2"] == pytest.approx(1e-3 * 0.5) and lrs["depth1"] == pytest.approx(1e-3 * 0.25)


def test_gradual_with_plateau_scheduler(tiny_bert, sentiment_csv):
    run, unfreezer, optimizer, plateau = start_gradual(tiny_bert, sentiment_csv, 1, "plateau")
    plateau.step(0.5)
    plateau.step(0.4)  # no improvement, patience 0: LRs halve
    assert unfreezer.on_epoch_start(1, optimizer, plateau)
    new = optimizer.param_groups[-1]
    assert new["lr"] == pytest.approx(new["initial_lr"] * 0.5)  # joins at the reduced level
    plateau.step(0.3)
    assert new["lr"] == pytest.approx(new["initial_lr"] * 0.25)


# ---------------------------------------------------------------------------------------------------------
# LoRA


@pytest.mark.parametrize("arch", sorted(LORA_TARGETS))
def test_lora_finds_attention_projections_and_trains_only_adapters_and_head(arch, tiny_models, sentiment_csv):
    run = prepared(tiny_models[arch], sentiment_csv, {"lora": {"r": 4}})
    assert run.config.freeze.target_modules is None
    names = [n for n, _ in run.model.named_parameters()]
    adapters = {n for n in names if ".lora_A." in n or ".lora_B." in n}
    targets = LORA_TARGETS[arch]
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in adapters} == set(targets)
    assert len(adapters) == 2 * 2 * 2  # A and B, for query and value, in both layers
    expected = adapters | {n for n in names if n.startswith("head.")}
    assert trainable_names(run.model) == expected
    batch = Collator(run.encoded["train"], run.tokenizer.pad_token_id)(list(range(8)))
    loss_fn(run.model(**model_inputs(batch, None)), batch["labels"], None).backward()
    assert {n for n, p in run.model.named_parameters() if p.grad is not None} == expected


def test_lora_layout_still_points_at_live_modules(tiny_bert, sentiment_csv):
    run = prepared(tiny_bert, sentiment_csv, {"lora": {"r": 4}})
    model, layout = run.model, run.model.layout
    assert any(m is layout.layers for m in model.backbone.modules())
    assert layout.layers_owner is model.backbone.get_base_model().encoder
    batch = Collator(run.encoded["val"], run.tokenizer.pad_token_id)(list(range(4)))
    inputs = model_inputs(batch, None)
    model.eval()
    with torch.no_grad():
        out = model.backbone(**inputs, output_hidden_states=True)
        skipped = model.encode(**inputs, cached_states=out.hidden_states[1], cached_from=1)
    assert torch.allclose(skipped, out.last_hidden_state, atol=1e-5)


def test_lora_unknown_architecture_is_a_clear_error():
    from torch import nn

    from unfreeze.errors import UnfreezeError

    class Fused(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(4, 12)
            self.out = nn.Linear(4, 4)

    layout = types.SimpleNamespace(layers=nn.ModuleList([Fused()]))
    with pytest.raises(UnfreezeError, match="target_modules"):
        lora.lora_targets(layout)


def test_lora_run_keeps_backbone_frozen_and_saved_model_reloads(tiny_bert, sentiment_csv, tmp_path):
    from unfreeze.model.predict import predict_file

    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze={"lora": {"r": 4, "alpha": 8}},
                                      optim={"lr": 1e-2}, train={"epochs": 2, "threads": 1}))
    result = train(cfg, tmp_path / "run", progress=False)
    assert not result["cache"]["used"]
    before = load_file(f"{tiny_bert}/model.safetensors")
    after = load_file(str(tmp_path / "run" / "best" / "encoder" / "model.safetensors"))  # merged: a plain BertModel
    assert set(after) == set(before)
    changed = {n for n in before if not torch.equal(before[n], after[n])}
    assert changed == {f"encoder.layer.{i}.attention.self.{m}.weight" for i in range(2) for m in ("query", "value")}
    expected = pd.read_csv(tmp_path / "run" / "predictions_test.csv")
    got = predict_file(tmp_path / "run" / "best", tmp_path / "run" / "predictions_test.csv", tmp_path / "p.csv")
    assert got["pred"].tolist() == expected["pred"].tolist()
    assert (got["prob_pos"] - expected["prob_pos"]).abs().max() < 1e-5
    adapter = tmp_path / "run" / "best" / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()


# ---------------------------------------------------------------------------------------------------------
# The activation cache stays off


@pytest.mark.parametrize("freeze", ["bitfit", {"llrd": 0.8}, {"gradual": {"every_epochs": 1}}, {"lora": {"r": 4}}])
def test_strategies_that_train_the_prefix_never_use_the_cache(freeze, tiny_bert, sentiment_csv):
    run = prepared(tiny_bert, sentiment_csv, freeze, train={"cache": "on", "threads": 1})
    assert not run.plan.cacheable
    batches = cache.STATS["forward_batches"]
    assert cache.caches_for_run(run, "cpu", boundaries={1, 2}) == (None, None)
    assert cache.STATS["forward_batches"] == batches


def test_lora_adapter_folder_reloads_to_the_same_predictions(tiny_bert, sentiment_csv, tmp_path):
    """`best/adapter` (small, unmerged) is itself loadable by `unfreeze predict`: pretrained backbone + adapter."""
    from unfreeze.model.predict import predict_file

    cfg = parse_run_config(run_config(tiny_bert, sentiment_csv, freeze={"lora": {"r": 4, "alpha": 8}},
                                      optim={"lr": 1e-2}, train={"epochs": 1, "threads": 1}))
    train(cfg, tmp_path / "run", progress=False)
    adapter = tmp_path / "run" / "best" / "adapter"
    assert not (adapter / "model.safetensors").exists()  # only the adapter weights, not a copy of the backbone
    expected = pd.read_csv(tmp_path / "run" / "predictions_test.csv")
    got = predict_file(adapter, tmp_path / "run" / "predictions_test.csv", tmp_path / "p.csv")
    assert got["pred"].tolist() == expected["pred"].tolist()
    assert (got["prob_pos"] - expected["prob_pos"]).abs().max() < 1e-5
