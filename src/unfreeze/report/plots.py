"""The study plots, as PNG bytes (matplotlib, Agg backend): every plot has a title, axis labels and a legend
where it shows several series. Each function returns None when its question does not apply to the study."""
from __future__ import annotations

import io

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Labels, arm names and titles come from user data: `$x$` or a lone `$` must be drawn as typed, not parsed as
# mathtext (which raises on unbalanced `$` and would crash the report).
plt.rcParams["text.parse_math"] = False
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

#: Families that draw Han / kana / hangul, in order of preference, when the system has one.
CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Source Han Sans SC", "WenQuanYi Zen Hei",
                "WenQuanYi Micro Hei", "Microsoft YaHei", "PingFang SC", "Hiragino Sans GB", "SimHei")


def _cjk_family() -> str | None:
    """The font family the plots fall back to for CJK glyphs: a system CJK font, else the bundled Noto Sans CJK
    (`assets.CJK_FONT`, installed by `make assets`), else None (CJK labels would be boxes; the report says so)."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in installed:
            return family
    from unfreeze.assets import CJK_FONT
    from unfreeze.errors import AssetMissingError

    try:
        path = str(CJK_FONT.locate())
        font_manager.fontManager.addfont(path)
        return font_manager.FontProperties(fname=path).get_name()
    except (AssetMissingError, OSError, RuntimeError, ValueError):  # absent, or not a readable font file
        return None


CJK_FAMILY = _cjk_family()
if CJK_FAMILY and CJK_FAMILY not in plt.rcParams["font.family"]:
    # per-glyph fallback: Latin text keeps the configured family, CJK characters come from the CJK font
    plt.rcParams["font.family"] = [*plt.rcParams["font.family"], CJK_FAMILY]


def has_cjk(text: str) -> bool:
    """Whether `text` holds characters DejaVu Sans cannot draw and a CJK font can (Han, kana, hangul, CJK
    punctuation and full-width forms)."""
    return any(0x2E80 <= ord(c) <= 0x9FFF or 0xAC00 <= ord(c) <= 0xD7AF or 0xF900 <= ord(c) <= 0xFAFF
               or 0xFF00 <= ord(c) <= 0xFFEF for c in str(text))


DPI = 110
#: No plot is larger than this many pixels on a side (the report embeds every plot; 110 labels once drew a
#: 7,480 × 6,358 px confusion matrix): figures are capped at MAX_PX / DPI inches.
MAX_PX = 2000
#: The confusion matrix shows at most this many classes (the most confused ones, the rest pooled as "other"),
#: and the per-class F1 bars at most MAX_BARS classes (the highest and the lowest F1, half each).
MAX_CONFUSION_CLASSES = 20
MAX_BARS = 40


def _inches(width: float, height: float) -> tuple[float, float]:
    cap = MAX_PX / DPI
    return min(width, cap), min(height, cap)


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    for ax in fig.axes:
        if ax.get_xlabel() in ("epoch", "encoder layers trained (0 = head only)"):
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()


def learning_curves(histories: dict[str, list[pd.DataFrame]], metric: str) -> bytes | None:
    """Per arm: train loss and validation metric per epoch; mean line with a min–max band over seeds. None when
    no run evaluated more than once (one epoch is one dot: the arms table already says it)."""
    if not histories:
        return None
    if all(f.empty or f["epoch"].round().nunique() < 2 for frames in histories.values() for f in frames):
        return None
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(11, 4))
    for arm, frames in histories.items():
        epochs = [f[f["epoch"] == f["epoch"].round()] for f in frames if not f.empty]
        if not epochs:
            continue
        for ax, column in ((ax_loss, "train_loss"), (ax_metric, f"val_{metric}")):
            columns = [f.set_index("epoch")[column] for f in epochs if column in f]
            if not columns:  # this arm does not report the study's metric (its own train.metric / tag scheme)
                continue
            table = pd.concat(columns, axis=1)
            if table.empty:
                continue
            line = ax.plot(table.index, table.mean(axis=1), marker="o", label=arm)[0]
            ax.fill_between(table.index, table.min(axis=1), table.max(axis=1), alpha=0.15, color=line.get_color())
    ax_loss.set(title="Training loss per epoch (mean, band = min–max over seeds)", xlabel="epoch", ylabel="train loss")
    ax_metric.set(title=f"Validation {metric} per epoch", xlabel="epoch", ylabel=f"val {metric}")
    ax_metric.legend(fontsize=8)
    return _png(fig)


def _error_lines(ax, frame: pd.DataFrame, x: str, y: str, group: str | None, label: str = "all runs") -> None:
    groups = frame.groupby(group) if group else [(label, frame)]
    for name, part in groups:
        agg = part.groupby(x)[y].agg(["mean", "std"]).sort_index()
        ax.errorbar(agg.index, agg["mean"], yerr=agg["std"].fillna(0), marker="o", capsize=3, label=str(name))


def metric_vs_layers(results: pd.DataFrame, metric: str, other: str | None) -> bytes | None:
    """Seed 000's question: how does the test metric grow with the number of unfrozen layers?

    Models trained from scratch (`model_family` bilstm) are left out. The line joins only the layer-count strategies (head, top-k, all); BitFit, LLRD, LoRA and gradual runs train
    something else at the same depth, so each is drawn as its own marker instead of being averaged into it."""
    column = f"test_{metric}"
    frame = results.dropna(subset=["unfrozen_layers", column])
    if "model_family" in frame:  # a BiLSTM's "layers" are not a pretrained stack being unfrozen: not this question
        frame = frame[frame["model_family"].fillna("transformer") == "transformer"]
    if frame.empty:
        return None
    strategy = frame["strategy"].astype(str) if "strategy" in frame else pd.Series("all", index=frame.index)
    by_layers = (frame["depth_only"].fillna(False).astype(bool) if "depth_only" in frame
                 else pd.Series(False, index=frame.index))
    if frame["unfrozen_layers"].nunique() < 2 and frame.loc[by_layers, "unfrozen_layers"].nunique() < 2:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if by_layers.any():
        _error_lines(ax, frame[by_layers], "unfrozen_layers", column, other, label="head → top-k → all")
    markers = iter("sD^vP*Xph")
    for n, (name, part) in enumerate(frame[~by_layers].groupby(strategy[~by_layers])):
        agg = part.groupby("unfrozen_layers")[column].agg(["mean", "std"])
        shift = 0.12 * (n + 1) * (-1) ** n  # side by side where several strategies train the same depth
        ax.errorbar(agg.index + shift, agg["mean"], yerr=agg["std"].fillna(0), marker=next(markers, "o"), linestyle="none",
                    capsize=3, markersize=8, label=str(name))
    ax.set(title=f"Test {metric} vs unfrozen layers (mean ± std over seeds)",
           xlabel="encoder layers trained (0 = head only)", ylabel=f"test {metric}")
    ax.legend(fontsize=8, title=other)
    return _png(fig)


def metric_vs_size(results: pd.DataFrame, metric: str, baseline: dict[float, float] | None = None) -> bytes | None:
    """Seed 001's question: how does each strategy scale with training-set size? `baseline`: {size: test
    metric} of the baseline trained on each size, drawn as a dashed line (the floor each size must beat)."""
    column = f"test_{metric}"
    if "data.train_size" not in results or results["data.train_size"].nunique() < 2:
        return None
    frame = results.copy()
    # `full` (data.train_size: null) has no number in the grid: plot it at the size the runs trained on
    frame["size"] = pd.to_numeric(frame["data.train_size"], errors="coerce")
    if "n_train" in frame:
        frame["size"] = frame["size"].fillna(pd.to_numeric(frame["n_train"], errors="coerce"))
    frame = frame.dropna(subset=["size"])
    if frame["size"].nunique() < 2:
        return None
    # a model trained from scratch is its own series, not one more "all" next to the fine-tuned encoder's
    frame["series"] = frame["strategy"]
    if "model_family" in frame:
        other = frame["model_family"].fillna("transformer") != "transformer"
        frame.loc[other, "series"] = frame.loc[other, "model_family"].astype(str).str.replace("bilstm", "BiLSTM")
    fig, ax = plt.subplots(figsize=(6.5, 4))
    _error_lines(ax, frame, "size", column, "series")
    if baseline:
        sizes = sorted(baseline)
        ax.plot(sizes, [baseline[s] for s in sizes], linestyle="--", marker="x", color="grey",
                label="baseline (same training set)")
    ax.set_xscale("log")
    sizes = sorted(frame["size"].unique())  # ticks at the sizes run, as plain numbers (mathtext is off)
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xticks(sizes, [f"{int(s):,}" for s in sizes])
    ax.set(title=f"Test {metric} vs training-set size (mean ± std)", xlabel="training examples (log scale)",
           ylabel=f"test {metric}")
    ax.legend(fontsize=8, title="strategy / model")
    return _png(fig)


def optimizer_lr_heatmap(results: pd.DataFrame, metric: str) -> bytes | None:
    """Seed 004's question: optimizer × learning rate (one panel per batch size when it varies)."""
    if not {"optim.name", "optim.lr"} <= set(results) or results["optim.lr"].nunique() < 2:
        return None
    facets = sorted(results["train.batch_size"].dropna().unique(), key=float) if "train.batch_size" in results \
        and results["train.batch_size"].nunique() > 1 else [None]
    fig, axes = plt.subplots(1, len(facets), figsize=_inches(5 * len(facets), 3.8), squeeze=False)
    for ax, facet in zip(axes[0], facets):
        part = results if facet is None else results[results["train.batch_size"] == facet]
        table = part.pivot_table(index="optim.name", columns="optim.lr", values=f"test_{metric}", aggfunc="mean")
        table = table[sorted(table.columns, key=float)]
        image = ax.imshow(table.to_numpy(), cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(table.columns)), table.columns, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(len(table.index)), table.index)
        for (i, j), value in np.ndenumerate(table.to_numpy()):
            ax.text(j, i, "–" if np.isnan(value) else f"{value:.3f}", ha="center", va="center", color="w", fontsize=8)
        ax.set(title=f"test {metric}" + ("" if facet is None else f", batch size {facet}"), xlabel="learning rate",
               ylabel="optimizer")
        fig.colorbar(image, ax=ax, label=f"mean test {metric}")
    return _png(fig)


def most_confused(matrix: list[list[int]], labels: list[str], k: int = MAX_CONFUSION_CLASSES
                  ) -> tuple[np.ndarray, list[str]]:
    """The matrix cut to the `k` classes with the most errors (as true or as predicted class, off-diagonal), the
    others pooled into one "other (N classes)" row and column, so every example is still counted once."""
    cm = np.asarray(matrix)
    if len(labels) <= k:
        return cm, list(labels)
    errors = cm.sum(axis=0) + cm.sum(axis=1) - 2 * np.diag(cm)
    keep = sorted(np.argsort(-errors, kind="stable")[:k - 1])
    rest = [i for i in range(len(labels)) if i not in set(keep)]
    groups = [[i] for i in keep] + [rest]
    out = np.array([[cm[np.ix_(a, b)].sum() for b in groups] for a in groups])
    return out, [labels[i] for i in keep] + [f"other ({len(rest)} classes)"]


def confusion_matrix_plot(matrix: list[list[int]], labels: list[str], title: str) -> bytes:
    """The confusion matrix; with more than `MAX_CONFUSION_CLASSES` classes, the most confused ones and "other"
    (`most_confused`), the title saying so. Never over `MAX_PX` on a side."""
    total = len(labels)
    cm, labels = most_confused(matrix, labels)
    if len(labels) < total:
        title += f"\n{len(labels) - 1} most confused of {total} classes; the rest pooled as 'other'"
    size = max(4, 0.6 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=_inches(size, size * 0.85))
    image = ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(labels)), labels)
    for (i, j), value in np.ndenumerate(cm):
        ax.text(j, i, str(value), ha="center", va="center", color="white" if value > cm.max() / 2 else "black",
                fontsize=8)
    ax.set(title=title, xlabel="predicted", ylabel="true")
    fig.colorbar(image, ax=ax, label="examples")
    return _png(fig)


def per_class_f1(per_class: dict[str, dict], title: str) -> bytes | None:
    """Bars of F1 per class; error bars where `per_class[name]` carries a `std` (mean ± std over seeds). Labels are
    rotated about their right end (`rotation_mode="anchor"`) so each sits under its own bar, not the neighbour's."""
    if len(per_class) < 3:
        return None
    names = list(per_class)
    if len(names) > MAX_BARS:  # the best and the worst classes: the range a reader looks for
        ranked = sorted(names, key=lambda n: -per_class[n]["f1"])
        names = ranked[:MAX_BARS // 2] + ranked[-(MAX_BARS // 2):]
        title += f"\nthe {MAX_BARS // 2} highest and {MAX_BARS // 2} lowest of {len(per_class)} classes"
    fig, ax = plt.subplots(figsize=_inches(max(6, 0.45 * len(names) + 2), 4.2))
    stds = [per_class[n].get("std", 0.0) for n in names]
    x = np.arange(len(names))
    ax.bar(x, [per_class[n]["f1"] for n in names], yerr=stds if any(stds) else None, capsize=3, color="tab:blue")
    ax.set_xticks(x, names, rotation=45, ha="right", rotation_mode="anchor")
    ax.set(title=title, xlabel="class", ylabel="F1 (mean ± std over seeds)" if any(stds) else "F1", ylim=(0, 1.05))
    return _png(fig)
