"""What the text and token probes share: the device, the probe plot, and the `top_k` suggestion read off the
per-layer curve.
"""
from __future__ import annotations

import logging



from pathlib import Path

import numpy as np

import torch

from unfreeze.config.schema import RunConfig


from unfreeze.io import atomic_path

from unfreeze.metrics.classification import LOWER_IS_BETTER
from unfreeze.tasks import get_task

log = logging.getLogger(__name__)



def _device(config: RunConfig) -> torch.device:
    """The device a run with this config would use (`train.device`, `train.threads` honoured)."""
    from unfreeze.training.accelerator import make_accelerator

    return make_accelerator(config).device



def noise_tolerance(scores: list[float], metric: str, n_val: int) -> float:
    """Differences below this are noise: one binomial standard error at the best score (≥ 0.01) for rate-like
    metrics, 1 % of the best value for the loss."""
    if metric in LOWER_IS_BETTER:
        return 0.01 * abs(min(scores))
    best = min(max(max(scores), 0.0), 1.0)
    return max(0.01, float(np.sqrt(best * (1 - best) / max(n_val, 1))))



def suggest_top_k(scores: list[float], baseline: float | None, metric: str, n_val: int,
                  baseline_name: str = "TF-IDF") -> tuple[list[int], str]:
    """Which `top_k` values are worth a run, from the per-layer probe scores (index 0 = embeddings .. L).

    Rule: let `d` be the deepest layer whose score is within noise (`noise_tolerance`) of the best layer's.
    * `d == L` (the top layer reads as well as any): the frozen top already carries the task; suggest 0 (head),
      1 and 2 — unfreezing a little adapts it, more buys little.
    * `d < L`: the layers above `d` lose linearly readable signal, so they are the ones to retrain: suggest
      `top_k = L − d` (exactly those layers) and `L − d + 1` (one margin layer).
    * If even the best layer is below the TF-IDF baseline (beyond noise), frozen features lose to bag-of-words:
      also suggest all L layers, and say so.
    """
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    good = [sign * s for s in scores]
    top = len(scores) - 1
    tol = noise_tolerance(scores, metric, n_val)
    best = max(good)
    best_at = good.index(best)
    peak = max(i for i, g in enumerate(good) if g >= best - tol)
    at = f"layer {best_at} ({metric} {sign * best:.3f})"
    if peak == top:
        top_ks = [k for k in (0, 1, 2) if k <= top]
        text = (f"The top layer reads the task as well as the best, {at}, within noise ±{tol:.3f}: a frozen "
                f"encoder + head already gets most of it; try top_k {top_ks}.")
    else:
        k = top - peak
        top_ks = sorted({k, min(top, k + 1)})
        held = f", stays within noise (±{tol:.3f}) up to layer {peak}" if peak != best_at else ""
        text = (f"Linearly readable signal is best at {at}{held} and falls to {scores[-1]:.3f} at the top layer "
                f"{top}: the top {k} layer(s) lose what the task needs; unfreeze at least them: top_k {top_ks}.")
    if baseline is not None and best < sign * baseline - tol:
        top_ks = sorted({*top_ks, top})
        text += (f" No layer beats the {baseline_name} baseline ({baseline:.3f}): frozen features are weak here; "
                 f"expect to need full fine-tuning (all / llrd, top_k {top}).")
    elif baseline is not None:
        text += f" {baseline_name} baseline: {baseline:.3f}."
    return top_ks, text



def plot_probe(result: dict, path: Path) -> None:
    """Val metric per layer with the TF-IDF baseline as a horizontal line, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    index = [x["index"] for x in result["layers"]]
    values = [x["val_metric"] for x in result["layers"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(index, values, marker="o", label="linear probe (frozen features)")
    if result["baseline_val_metric"] is not None:
        ax.axhline(result["baseline_val_metric"], color="grey", linestyle="--",
                   label=result.get("baseline", "TF-IDF + logistic regression"))
    ax.set_xticks(index)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel(f"val {result['metric']}")
    unit = get_task(result.get("task")).probe_unit
    count = result.get("n_train_words", result["n_train"])
    ax.set_title(f"Linear probe per layer: {Path(str(result['model'])).name} ({result['pooling']}"
                 f"{' pooling' if unit == 'train' else ''}, {count} {unit})")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
