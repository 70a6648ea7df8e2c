"""`unfreeze study --dry-run`: which runs exist, which are finished, and roughly what the rest will cost, per arm.

The estimate counts token-layer passes and converts them with this machine's throughput for the study's model,
measured once on a few real batches and cached (`study.throughput`). Where it cannot be measured it falls back to
constants measured on a 2-core CPU for a MiniLM-size encoder (≈5,500 tokens/s eval forward, ≈1,000 tokens/s
forward+backward), scaled by hidden size² × layers. It is a planning number, not a promise.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.table import Table

from unfreeze.strategies import get_strategy

FORWARD_TOKENS_PER_S = 5500.0   # MiniLM-L6 (6 × 384), 2 CPU cores, eval mode
TRAIN_TOKENS_PER_S = 1000.0     # forward + backward, all layers
MINILM_SIZE = 6 * 384 ** 2


def run_seconds(config, n_train_tokens: float, n_eval_tokens: float, layers: int, hidden: int,
                throughput: dict | None = None) -> float:
    """Seconds for one run: trainable layers pay forward+backward every epoch; frozen layers pay one forward
    (cached) or one per epoch; evaluation pays a forward of the trainable part per epoch. `throughput`: this
    machine's measured rates for this model (`study.throughput`); None: the MiniLM constants, scaled."""
    freeze = config.freeze
    strategy = get_strategy(freeze.strategy)
    trained = strategy.trained_layers(freeze, layers) or 0
    cached = strategy.cached_top(freeze) is not None and config.train.cache != "off"
    return pass_seconds(trained, layers, hidden, config.train.epochs, n_train_tokens, n_eval_tokens, cached,
                        throughput)


def pass_seconds(trained_layers: int, layers: int, hidden: int, epochs: int, n_train_tokens: float,
                 n_eval_tokens: float, cached: bool, throughput: dict | None = None) -> float:
    """`run_seconds` without a config: what the one-line planner (`study.plan`) calls with plain numbers."""
    if throughput:
        scale, train_rate, forward_rate = 1.0, throughput["train_tokens_per_s"], throughput["forward_tokens_per_s"]
    else:
        scale, train_rate, forward_rate = layers * hidden ** 2 / MINILM_SIZE, TRAIN_TOKENS_PER_S, FORWARD_TOKENS_PER_S
    trainable_share = trained_layers / layers
    train = n_train_tokens * epochs * trainable_share / train_rate
    frozen_passes = 1 if cached else epochs
    frozen = (n_train_tokens + n_eval_tokens) * frozen_passes * (1 - trainable_share) / forward_rate
    evaluation = n_eval_tokens * epochs * trainable_share / forward_rate
    # the head (and the pooled forward of evaluation) always costs something: never estimate zero
    head = (n_train_tokens * epochs + n_eval_tokens) / forward_rate * 0.02
    return scale * (train + frozen + evaluation + head)


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
        per_arm = arm_estimates(todo)
    except Exception as exc:  # an estimate must never block a dry run
        console.print(f"(no cost estimate: {exc})")
        return
    arms_table = Table(title="estimated cost of the runs to do, per arm")
    for col in ("arm", "runs", "min per run", "total min"):
        arms_table.add_column(col, justify="left" if col == "arm" else "right")
    for arm, (n, seconds) in per_arm.items():
        arms_table.add_row(arm, str(n), f"{seconds / n / 60:.1f}", f"{seconds / 60:.1f}")
    console.print(arms_table)
    total = sum(seconds for _, seconds in per_arm.values())
    console.print(f"rough cost of the {len(todo)} runs to do: {total / 60:.0f} min — {throughput_note(todo[0])}")


def arm_estimates(jobs) -> dict[str, tuple[int, float]]:
    """{arm: (runs, estimated seconds of all of them)} in the jobs' order."""
    out: dict[str, tuple[int, float]] = {}
    for job in jobs:
        n, seconds = out.get(job.arm, (0, 0.0))
        out[job.arm] = (n + 1, seconds + estimate_job(job))
    return out


def throughput_note(job) -> str:
    from unfreeze.study.throughput import cached_throughput

    t = cached_throughput(job.config.model.name, job.config.train.threads)
    if not t:
        return "MiniLM-size constants for a 2-core CPU (throughput could not be measured)"
    return (f"measured on this machine ({t['device']}, {t['threads']} threads): {t['forward_tokens_per_s']:,.0f} "
            f"tokens/s forward, {t['train_tokens_per_s']:,.0f} forward+backward; activation cache counted")


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
        _THROUGHPUT[key] = job_throughput(cfg, data, cap)
    return run_seconds(cfg, *_TOKENS[key], throughput=_THROUGHPUT[key])


_THROUGHPUT: dict[str, dict | None] = {}


def job_throughput(cfg, data, cap: int) -> dict | None:
    """The measured (or cached) throughput of the job's model on a few of its real training texts."""
    from unfreeze.study.throughput import measure_throughput

    split = data.train
    texts = list(split.texts[:64]) if hasattr(split, "texts") else [" ".join(w) for w in split.words[:64]]
    return measure_throughput(cfg.model, texts, max_length=min(cap, 512), threads=cfg.train.threads)
