"""Linear probes per layer: how much of the task is linearly readable at each depth of the *frozen* encoder,
before any compute is spent on fine-tuning. (Token tasks: per-word probes in `probe_tokens.py`.)

One eval-mode forward pass over train and val gives every layer's hidden states (index 0 = embeddings output,
i = output of encoder layer i, L = the encoder's final output), pooled as the run would pool them (`cls` or
`mean`; `pooler` probes the [CLS] state, since the pooler is a dense layer trained on the top layer only). Per
layer a standardised, seeded logistic regression is fitted on train, its C chosen on val from a small grid, and
the val selection metric reported — next to a TF-IDF + logistic-regression baseline on the same splits.

Reading it: a curve that keeps rising to the top says the top layer already carries the task (a head, maybe one
or two unfrozen layers, is enough); a curve that peaks lower and falls says the top layers rewrite what the task
needs (specialised for the pre-training objective) and are the ones worth unfreezing; a curve below the TF-IDF
line everywhere says frozen features lose to bag-of-words here. `suggest_top_k` turns that into numbers.
"""

from __future__ import annotations

import logging

import time

import warnings

from pathlib import Path

import numpy as np

import torch

from unfreeze.errors import UnfreezeError
from unfreeze.model.inference import encoder_inputs, inference_batches, run_inference
from unfreeze.config.schema import RunConfig

from unfreeze.errors import ConfigError

from unfreeze.io import write_json

from unfreeze.metrics.classification import classification_metrics, is_better
from unfreeze.probe.common import _device, plot_probe, suggest_top_k
from unfreeze.tasks import get_task

log = logging.getLogger(__name__)



#: Inverse regularisation strengths tried per layer (features are standardised, so one grid fits all models).
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)



def run_probe(config: RunConfig, out_dir: str | Path) -> dict:
    """Probe every layer of `config.model` on `config.data` (train/val, `data.train_size` respected); write
    `probe.json` and `probe.png` to `out_dir` and return the json's dict."""
    if get_task(config.task).per_token:
        from unfreeze.probe.tokens import run_token_probe

        return run_token_probe(config, out_dir)
    from unfreeze.model.backbone import load_backbone
    from unfreeze.training.prepare import encode_sequence_splits, load_data, seed_everything

    started = time.perf_counter()
    seed_everything(config.seed)
    data = load_data(config)
    backbone, tokenizer = load_backbone(config.model, config.seed, training=data.train)
    encoded, _, _ = encode_sequence_splits(tokenizer, backbone, data, config)
    device = _device(config)
    pad = tokenizer.pad_token_id or 0
    features = {s: layer_features(backbone, encoded[s], pad, config, device) for s in ("train", "val")}
    forward_seconds = time.perf_counter() - started
    metric = config.selection_metric
    layers = []
    for index in range(features["train"].shape[0]):
        value, c = probe_layer(features["train"][index], data.train.labels, features["val"][index],
                               data.val.labels, data.label_names, config, metric)
        layers.append({"index": index, "val_metric": value, "C": c})
        log.info("probe layer %d: val %s %.4f (C=%g)", index, metric, value, c)
    baseline = baseline_val_metric(data, config, metric)
    top_ks, suggestion = suggest_top_k([x["val_metric"] for x in layers], baseline, metric, len(data.val))
    result = {
        "metric": metric, "model": config.model.name, "pooling": config.model.pooling,
        "num_layers": len(layers) - 1, "n_train": len(data.train), "n_val": len(data.val), "layers": layers,
        "baseline_val_metric": baseline, "suggested_top_k": top_ks, "suggestion": suggestion,
        "seconds": {"load_and_forward": round(forward_seconds, 2), "total": round(time.perf_counter() - started, 2)},
    }
    out = Path(out_dir)
    write_json(out / "probe.json", result)
    plot_probe(result, out / "probe.png")
    return result



def layer_features(backbone, enc, pad_token_id: int, config: RunConfig, device) -> np.ndarray:
    """(L + 1, examples, hidden) float32: pooled hidden states of every layer, examples in split order."""
    backbone.to(device)
    found: list[np.ndarray] = []

    def keep(item, result) -> None:
        indices, batch = item
        # like the activation cache: the last boundary is the encoder's output (after any final norm)
        states = [*result.hidden_states[:-1], result.last_hidden_state]
        mask = batch["attention_mask"].to(device)
        pooled = torch.stack([pool(s, mask, config.model.pooling) for s in states])
        if not found:
            found.append(np.zeros((len(states), len(enc), pooled.shape[-1]), dtype=np.float32))
        found[0][:, indices] = pooled.float().cpu().numpy()

    run_inference(backbone, inference_batches(enc, config.train.eval_batch_size, pad_token_id),
                  lambda item: backbone(**encoder_inputs(item[1], device), output_hidden_states=True), keep)
    if not found:
        raise UnfreezeError("the probe got an empty split: give data with val/test examples")
    return found[0]



def pool(states: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    from unfreeze.model.heads import mean_pool

    return mean_pool(states, mask) if pooling == "mean" else states[:, 0]



def probe_layer(x_train, y_train, x_val, y_val, label_names, config: RunConfig, metric: str) -> tuple[float, float]:
    """(best val metric, its C): standardised features, seeded lbfgs logistic regression per C in `C_GRID`.

    Features that are constant up to float round-off are zeroed rather than standardised: scaling 1e-7 jitter to
    unit variance would hand the classifier noise (correlated with length) that looks like signal."""
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_train)
    keep = x_train.std(0) > 1e-5 * np.maximum(np.abs(x_train.mean(0)), 1.0)
    return fit_select(scaler.transform(x_train) * keep, y_train, scaler.transform(x_val) * keep, y_val,
                      label_names, config, metric)



def fit_select(x_train, y_train, x_val, y_val, label_names, config: RunConfig, metric: str) -> tuple[float, float]:
    """Fit per C, keep the C with the best val metric. BLAS is held to one thread: after torch has run, a
    multi-threaded BLAS inside lbfgs is ~10× slower on small problems (thread contention), not faster."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    best: tuple[float, float] | None = None
    for c in C_GRID:
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(C=c, max_iter=500, random_state=config.seed).fit(x_train, y_train)
        value = val_metric(clf, x_val, y_val, label_names, config, metric)
        if best is None or is_better(metric, value, best[0]):
            best = (value, c)
    assert best is not None
    return best



def val_metric(clf, x_val, y_val, label_names, config: RunConfig, metric: str) -> float:
    from sklearn.metrics import log_loss

    proba = clf.predict_proba(x_val)
    preds = clf.classes_[proba.argmax(1)]
    loss = log_loss(y_val, proba, labels=clf.classes_)
    metrics = classification_metrics(y_val, preds, label_names, config.data.positive_label, loss)
    if metric not in metrics or not isinstance(metrics[metric], float):
        raise ConfigError(f"train.metric={metric!r} is not a reported sequence metric; choose one of "
                          f"{sorted(k for k, v in metrics.items() if isinstance(v, float))}")
    return float(metrics[metric])



def baseline_val_metric(data, config: RunConfig, metric: str) -> float | None:
    """TF-IDF + logistic regression on the same splits, exactly the study baseline's
    (`unfreeze.study.baselines.tfidf_logreg`: characters for CJK text, both texts of a pair), on val."""
    from unfreeze.study.baselines import split_pairs, tfidf_logreg

    out = tfidf_logreg(data.train.texts, data.train.labels, data.val.texts, data.val.labels, data.test.texts,
                       data.test.labels, data.label_names, positive_label=config.data.positive_label,
                       seed=config.seed, pairs=split_pairs(data), analyzer=config.data.tfidf_analyzer)
    value = out.get("val", {}).get(metric)
    return None if value is None else float(value)
