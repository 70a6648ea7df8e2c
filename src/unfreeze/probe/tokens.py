"""Per-token linear probes for token tasks (NER): the same question as `probe.py` — where in the frozen encoder
is the task linearly readable? — asked of every word instead of every text.

Each word is represented, at every layer, by the hidden state of its first subword in the window that owns it
(exactly the position whose logits a trained token model uses, see `token_windows`). A logistic regression per
layer maps that state to the word's tag; its val predictions become one tag per word (words without a subword
get the fallback tag, as in a run) and are scored with the run's own `tag_metrics` (entity F1, macro F1 over the
labels outside `data.ignore_labels` …). The TF-IDF line is replaced by the study's token baseline: the most
frequent tag per word.

Training words are capped (`MAX_TRAIN_WORDS`, seeded sample) so the probe stays a minutes-long check on a CPU:
a word-level logistic regression does not need a whole corpus to show where the signal sits.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from unfreeze.errors import UnfreezeError
from unfreeze.model.inference import encoder_inputs, inference_batches, run_inference
from unfreeze.config.schema import RunConfig
from unfreeze.io import write_json

log = logging.getLogger(__name__)

#: Upper bound on training words fed to each layer's probe (a seeded sample beyond it).
MAX_TRAIN_WORDS = 12_000
#: Inverse regularisation strengths tried per layer (fewer than for texts: many more rows per fit).
TOKEN_C_GRID = (0.01, 0.1, 1.0)


def run_token_probe(config: RunConfig, out_dir: str | Path) -> dict:
    """Probe every layer on a token task; write `probe.json` and `probe.png` (same layout as for texts)."""
    from unfreeze.model.backbone import load_backbone
    from unfreeze.data.encode import model_max_positions
    from unfreeze.training.prepare import load_data, seed_everything
    from unfreeze.probe.common import _device, plot_probe, suggest_top_k
    from unfreeze.data.windows import encode_token_splits
    from unfreeze.tasks.token import fbeta_of
    from unfreeze.study.baselines import most_frequent_tag_results

    started = time.perf_counter()
    seed_everything(config.seed)
    data = load_data(config)
    backbone, tokenizer = load_backbone(config.model, config.seed, training=data.train)
    encoded, _, _ = encode_token_splits(tokenizer, data, config.data, model_max_positions(tokenizer, backbone))
    device = _device(config)
    pad = tokenizer.pad_token_id or 0
    scheme = data.notes.get("scheme", "iob2")
    metric = config.selection_metric_for(scheme)
    rng = np.random.default_rng(config.seed)
    train_keys = word_positions(encoded["train"])
    if len(train_keys) > MAX_TRAIN_WORDS:
        train_keys = train_keys[np.sort(rng.choice(len(train_keys), MAX_TRAIN_WORDS, replace=False))]
    val_keys = word_positions(encoded["val"])
    x_train = token_layer_features(backbone, encoded["train"], train_keys, pad, config, device)
    x_val = token_layer_features(backbone, encoded["val"], val_keys, pad, config, device)
    y_train = np.array([data.train.tags[s][w] for s, w in train_keys[:, 2:4]], dtype=np.int64)
    forward_seconds = time.perf_counter() - started

    def score(val_word_preds: np.ndarray) -> float:
        from unfreeze.metrics.tagging import tag_metrics

        preds = [np.full(len(t), encoded["val"].fallback, dtype=np.int64) for t in data.val.tags]
        for (s, w), tag in zip(val_keys[:, 2:4], val_word_preds):
            preds[s][w] = tag
        return float(tag_metrics(data.val.tags, preds, data.label_names, config.data.ignore_labels, scheme,
                                 fbeta_of(config))[metric])

    layers = []
    for index in range(x_train.shape[0]):
        value, c = probe_token_layer(x_train[index], y_train, x_val[index], score, config.seed)
        layers.append({"index": index, "val_metric": value, "C": c})
        log.info("token probe layer %d: val %s %.4f (C=%g)", index, metric, value, c)
    baseline = float(most_frequent_tag_results(config, data)[0]["val"][metric])
    n_val_words = sum(len(t) for t in data.val.tags)
    top_ks, suggestion = suggest_top_k([x["val_metric"] for x in layers], baseline, metric, n_val_words,
                                       baseline_name="most-frequent-tag")
    result = {
        "task": "token", "metric": metric, "model": config.model.name, "pooling": "first subword of each word",
        "num_layers": len(layers) - 1, "n_train": len(data.train), "n_val": len(data.val),
        "n_train_words": int(len(train_keys)), "n_val_words": int(n_val_words), "layers": layers,
        "baseline": "most frequent tag per word", "baseline_val_metric": baseline, "suggested_top_k": top_ks,
        "suggestion": suggestion,
        "seconds": {"load_and_forward": round(forward_seconds, 2), "total": round(time.perf_counter() - started, 2)},
    }
    out = Path(out_dir)
    write_json(out / "probe.json", result)
    plot_probe(result, out / "probe.png")
    return result


def word_positions(enc) -> np.ndarray:
    """(n_words, 4) int array: window row, position of the word's first subword there, sentence, word — for every
    word that has a position (its owner window), in sentence order."""
    rows = []
    for s, positions in enumerate(enc.owners):
        for w in np.flatnonzero(positions[:, 0] >= 0):
            rows.append((positions[w, 0], positions[w, 1], s, w))
    return np.array(rows, dtype=np.int64).reshape(-1, 4)


def token_layer_features(backbone, enc, keys: np.ndarray, pad_token_id: int, config: RunConfig,
                         device) -> np.ndarray:
    """(L + 1, len(keys), hidden) float32: every layer's hidden state at each key's (window, position)."""
    backbone.to(device)
    wanted: dict[int, list[tuple[int, int]]] = {}
    for slot, (row, pos) in enumerate(keys[:, :2]):
        wanted.setdefault(int(row), []).append((slot, int(pos)))
    found: list[np.ndarray] = []

    def picks_of(indices) -> list[tuple[int, int, int]]:
        return [(b, slot, pos) for b, row in enumerate(indices) for slot, pos in wanted.get(int(row), ())]

    def keep(item, result) -> None:
        states = torch.stack([*result.hidden_states[:-1], result.last_hidden_state])  # (L+1, B, T, H)
        b, slots, pos = (torch.as_tensor(x) for x in zip(*picks_of(item[0])))
        if not found:
            found.append(np.zeros((states.shape[0], len(keys), states.shape[-1]), dtype=np.float32))
        found[0][:, slots.numpy()] = states[:, b.to(device), pos.to(device)].float().cpu().numpy()

    batches = (item for item in inference_batches(enc, config.train.eval_batch_size, pad_token_id, token_task=True)
               if picks_of(item[0]))
    run_inference(backbone, batches,
                  lambda item: backbone(**encoder_inputs(item[1], device), output_hidden_states=True), keep)
    if not found:
        raise UnfreezeError("the token probe found no labelled word in the split")
    return found[0]


def probe_token_layer(x_train, y_train, x_val, score, seed: int) -> tuple[float, float]:
    """(best val metric, its C) over `TOKEN_C_GRID`: standardised features, seeded logistic regression."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    scaler = StandardScaler().fit(x_train)
    keep = x_train.std(0) > 1e-5 * np.maximum(np.abs(x_train.mean(0)), 1.0)
    xt, xv = scaler.transform(x_train) * keep, scaler.transform(x_val) * keep
    best: tuple[float, float] | None = None
    for c in TOKEN_C_GRID:
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = LogisticRegression(C=c, max_iter=300, random_state=seed).fit(xt, y_train)
        value = score(clf.predict(xv))
        if best is None or value > best[0]:
            best = (value, c)
    assert best is not None
    return best
