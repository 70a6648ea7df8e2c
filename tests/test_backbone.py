"""Loading offline and structural discovery, on the tiny models and on the shipped MiniLM."""
import pytest
import torch

from tiny import ARCHITECTURES
from unfreeze.model.backbone import discover_layout, load_backbone, start_at_layer, weights_fingerprint
from unfreeze.config.schema import ModelConfig
from unfreeze.errors import AssetMissingError


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_layout_found_for_every_architecture(arch, tiny_models):
    model, _ = load_backbone(ModelConfig(name=tiny_models[arch]))
    layout = discover_layout(model)
    assert layout.num_layers == 2
    assert layout.embeddings is not None and model.get_input_embeddings() in list(layout.embeddings.modules())


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_start_at_layer_reproduces_the_full_forward(arch, tiny_models):
    """Feeding layer b's input hidden states reproduces the full model output: the cache's foundation."""
    model, tok = load_backbone(ModelConfig(name=tiny_models[arch]))
    model.eval()
    layout = discover_layout(model)
    enc = tok(["the good movie", "a bad film was it"], padding=True, return_tensors="pt",
              return_token_type_ids=False)
    with torch.no_grad():
        full = model(**enc, output_hidden_states=True)
        for b in range(layout.num_layers):
            with start_at_layer(layout, b, full.hidden_states[b]):
                partial = model(**enc).last_hidden_state
            mask = enc["attention_mask"].bool()
            assert torch.allclose(partial[mask], full.last_hidden_state[mask], atol=1e-5)
    assert len(layout.layers) == 2  # restored after the context
    assert not any("forward" in vars(layer) for layer in layout.layers)  # no pass-through left behind


def test_dropout_overrides_reach_the_config(tiny_bert):
    model, _ = load_backbone(ModelConfig(name=tiny_bert, attention_dropout=0.0, hidden_dropout=0.05))
    assert model.config.attention_probs_dropout_prob == 0.0 and model.config.hidden_dropout_prob == 0.05


def test_hub_id_offline_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(AssetMissingError, match="not a local folder.*offline.*minilm"):
        load_backbone(ModelConfig(name="someone/not-downloaded-model"))


def test_fingerprint_changes_with_weights(tiny_bert):
    model, _ = load_backbone(ModelConfig(name=tiny_bert))
    before = weights_fingerprint(model)
    with torch.no_grad():
        next(model.parameters()).add_(1e-3)
    assert weights_fingerprint(model) != before


@pytest.mark.assets
def test_shipped_minilm_loads_offline_and_is_discovered():
    model, tok = load_backbone(ModelConfig(name="minilm"))
    layout = discover_layout(model)
    assert layout.num_layers == 6 and model.config.hidden_size == 384
    out = model(**tok(["a fine film"], return_tensors="pt"))
    assert out.last_hidden_state.shape[-1] == 384


def test_decoders_and_encoder_decoders_are_refused_clearly():
    """A GPT-2 or T5 also has one big stack of identical blocks; its causal / cross attention would make every
    pooled or per-token reading wrong, so discovery refuses it instead of 'supporting' it."""
    from transformers import GPT2Config, GPT2Model, T5Config, T5Model

    from unfreeze.errors import UnfreezeError

    gpt2 = GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50, n_positions=16))
    with pytest.raises(UnfreezeError, match="'gpt2' is a decoder"):
        discover_layout(gpt2)
    t5 = T5Model(T5Config(num_layers=2, d_model=32, d_kv=8, d_ff=64, num_heads=2, vocab_size=50))
    with pytest.raises(UnfreezeError, match="'t5' is an encoder-decoder"):
        discover_layout(t5)
