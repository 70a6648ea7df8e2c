"""`unfreeze study --dry-run`: which runs exist, which are finished, and roughly what the rest will cost.

The estimate counts token-layer passes and converts them with throughputs measured on a 2-core CPU for a
MiniLM-size encoder (`docs/../shared` figures: ≈5,500 tokens/s eval forward, ≈1,000 tokens/s forward+backward),
scaled by hidden size² × layers. It is a planning number, not a promise.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.table import Table

from unfreeze.strategies import get_strategy

FORWARD_TOKENS_PER_S = 5500.0   # MiniLM-L6 (6 × 384), 2 CPU cores, eval mode
TRAIN_TOKENS_PER_S = 1000.0     # forward + backward, all layers
MINILM_SIZE = 6 * 384 ** 2


def run_seconds(config, n_train_tokens: float, n_eval_tokens: float, layers: int, hidden: int) -> float:
    """Seconds for one run: trainable layers pay forward+backward every epoch; frozen layers pay one forward
    (cached) or one per epoch; evaluation pays a forward of the trainable part per epoch."""
    scale = layers * hidden ** 2 / MINILM_SIZE
    freeze = config.freeze
    strategy = get_strategy(freeze.strategy)
    trainable_share = (strategy.trained_layers(freeze, layers) or 0) / layers
    cached = strategy.cached_top(freeze) is not None and config.train.cache != "off"
    epochs = config.train.epochs
    train = n_train_tokens * epochs * trainable_share / TRAIN_TOKENS_PER_S
    frozen_passes = 1 if cached else epochs
    frozen = (n_train_tokens + n_eval_tokens) * frozen_passes * (1 - trainable_share) / FORWARD_TOKENS_PER_S
    evaluation = n_eval_tokens * epochs * trainable_share / FORWARD_TOKENS_PER_S
    return scale * (train + frozen + evaluation)


#: Above this many runs `--dry-run` prints a per-arm summary and a warning instead of one row per run.
MAX_RUN_ROWS = 200


def print_plan(study, jobs, out: Path, console) -> None:
    from unfreeze.training.run_dir import is_finished

    done = {j.run_id for j in jobs if is_finished(out / "runs" / j.run_id)}
    if len(jobs) > MAX_RUN_ROWS:  # a run-per-line table of thousands of rows helps nobody: one line per arm
        console.print(f"warning: study {study.name} has {len(jobs)} runs (over {MAX_RUN_ROWS}); check the grid is "
                      "the one you meant — showing one line per arm", highlight=False)
        table = Table(title=f"study {study.name}: {len(jobs)} runs, {len(done)} finished")
        for col in ("arm", "runs", "done", "to run"):
            table.add_column(col)
        per_arm: dict[str, list[int]] = {}
        for job in jobs:
            counts = per_arm.setdefault(job.arm, [0, 0])
            counts[0] += 1
            counts[1] += job.run_id in done
        for arm, (runs, finished) in per_arm.items():
            table.add_row(arm, str(runs), str(finished), str(runs - finished))
    else:
        table = Table(title=f"study {study.name}: {len(jobs)} runs, {len(done)} finished")
        for col in ("run", "arm", "seed", "fold", "status"):
            table.add_column(col)
        for job in jobs:
            table.add_row(job.run_id, job.arm, str(job.seed), "-" if job.fold < 0 else str(job.fold),
                          "done" if job.run_id in done else "to run")
    console.print(table)
    arms = Counter(j.arm for j in jobs)
    console.print(f"{len(arms)} arms × seeds {study.seeds}" + (f" × {study.cv.folds} folds" if study.cv else ""))
    todo = [j for j in jobs if j.run_id not in done]
    if not todo:
        return
    try:
        total = sum(estimate_job(j) for j in todo)
        console.print(f"rough cost of the {len(todo)} runs to do: {total / 60:.0f} min on a 2-core CPU "
                      "(MiniLM-size throughput, activation cache counted; GPUs are much faster)")
    except Exception as exc:  # an estimate must never block a dry run
        console.print(f"(no cost estimate: {exc})")


_TOKENS: dict[str, tuple[float, float, int, int]] = {}


def estimate_job(job) -> float:
    from unfreeze.model.backbone import load_backbone
    from unfreeze.data.encode import token_lengths
    from unfreeze.training.prepare import load_data

    cfg = job.config
    key = cfg.model.name + cfg.model.tokenizer + cfg.data.model_dump_json()
    if key not in _TOKENS:
        data = load_data(cfg)
        backbone, tokenizer = load_backbone(cfg.model, training=data.train)
        cap = cfg.data.max_length if cfg.data.max_length != "auto" else cfg.data.max_length_cap
        if cfg.task == "token":
            lengths = lambda s: [min(cap, 1.3 * len(w) + 2) for w in s.words]  # noqa: E731
        else:
            lengths = lambda s: token_lengths(tokenizer, s.texts).clip(max=cap)  # noqa: E731
        train = float(sum(lengths(data.train)))
        evals = float(sum(lengths(data.val)) + sum(lengths(data.test)))
        _TOKENS[key] = (train, evals, backbone.config.num_hidden_layers, backbone.config.hidden_size)
    return run_seconds(cfg, *_TOKENS[key])
