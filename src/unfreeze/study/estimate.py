"""`unfreeze study --dry-run`: which runs exist, which are finished, and roughly what the rest will cost, per arm.

The estimate counts what a run does (`pass_seconds`) and converts it with this machine's throughput for the
study's model, measured once per text-length bucket on a few real batches and cached (`study.throughput`). Where
it cannot be measured it falls back to constants measured on the 2-core development CPU for MiniLM-L6 (≈11,000
tokens/s eval forward, ≈2,500 forward+backward, 0.08 s per AdamW step), scaled by hidden size² × layers. How
close it comes is measured by `make bench-estimate` (BENCHMARKS.md). A planning number, not a promise.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich.table import Table

from unfreeze.strategies import get_strategy
from unfreeze.tasks import get_task

FORWARD_TOKENS_PER_S = 11000.0  # MiniLM-L6 (6 × 384), 2 CPU cores, eval mode (measured 10,600–11,600)
TRAIN_TOKENS_PER_S = 2500.0     # forward + backward, all layers (2,000 on 256-token texts, 2,900 on ≤ 32)
STEP_SECONDS = 0.08             # one AdamW step over every parameter
EMBEDDING_SHARE = 0.5           # share of a BERT-style backbone's parameters in its embeddings (MiniLM: 0.52)
MINILM_SIZE = 6 * 384 ** 2
WARM_UP_TOKENS = 300_000  # the demo's train + val + test at its lengths: 22 s of warm-up measured there
FIXED_SECONDS = 1.0  # per run: building the model and loaders, tokenising, evaluating, writing the run folder


def run_seconds(config, n_train_tokens: float, n_eval_tokens: float, layers: int, hidden: int,
                throughput: dict | None = None, n_val_tokens: float | None = None,
                fill_share: float | None = None, n_train: int = 0) -> float:
    """Seconds for one run of `config`: the sum of `config_parts`."""
    return sum(config_parts(config, n_train_tokens, n_eval_tokens, layers, hidden, throughput, n_val_tokens,
                            fill_share, n_train).values())


def config_parts(config, n_train_tokens: float, n_eval_tokens: float, layers: int, hidden: int,
                 throughput: dict | None = None, n_val_tokens: float | None = None,
                 fill_share: float | None = None, n_train: int = 0) -> dict[str, float]:
    """`run_parts` of one run of `config`; `fill_share`: the share of layers whose activations this run caches
    (None: its own frozen share; 0: the study already filled the cache); `n_train`: training examples (for the
    number of optimizer steps)."""
    freeze, t = config.freeze, config.train
    strategy = get_strategy(freeze.strategy)
    trained = strategy.trained_layers(freeze, layers) or 0
    depth = strategy.run_depth(freeze, layers)
    cached = (strategy.cached_top(freeze) is not None or depth < layers) and t.cache != "off"
    embeddings = (throughput or {}).get("embedding_share", EMBEDDING_SHARE)
    return run_parts(trained, layers, hidden, t.epochs, n_train_tokens, n_eval_tokens, cached,
                     throughput, n_val_tokens=n_val_tokens, fill_share=fill_share,
                     n_steps=-(-n_train // t.batch_size) / t.grad_accum_steps,
                     step_share=strategy.stepped_share(freeze, layers, embeddings), depth=depth)


#: Evaluation through the activation cache (fp32 val/test states, filled once per study with train): a cached
#: run's per-epoch validation and final pass cost only its trainable layers. The ONE place that says so: set it to
#: False for code whose final pass is an uncached forward through every layer.
EVAL_THROUGH_CACHE = True


def pass_seconds(trained_layers: int, layers: int, hidden: int, epochs: int, n_train_tokens: float,
                 n_eval_tokens: float, cached: bool, throughput: dict | None = None,
                 n_val_tokens: float | None = None, fill_share: float | None = None, n_steps: float = 0.0,
                 step_share: float | None = None, depth: int | None = None) -> float:
    """Seconds for one run: the sum of `run_parts` (same arguments)."""
    return sum(run_parts(trained_layers, layers, hidden, epochs, n_train_tokens, n_eval_tokens, cached, throughput,
                         n_val_tokens, fill_share, n_steps, step_share, depth).values())


def run_parts(trained_layers: int, layers: int, hidden: int, epochs: int, n_train_tokens: float,
              n_eval_tokens: float, cached: bool, throughput: dict | None = None,
              n_val_tokens: float | None = None, fill_share: float | None = None, n_steps: float = 0.0,
              step_share: float | None = None, depth: int | None = None) -> dict[str, float]:
    """Seconds for one run, in parts, counted the way `training.run.train` spends them:

    - "cache_fill": one forward of the frozen prefix over train + val + test, paid once per study and data (the
      study fills every boundary it needs in one pass; `fill_share` says how deep, 0 if already paid);
    - "train": forward+backward of the trainable layers over the training tokens, every epoch, and an optimizer
      step per batch (`n_steps` per epoch) over `step_share` of the parameters (default: the trained layers');
      without the cache the frozen layers add one forward per epoch;
    - "validation": evaluation every epoch on val — the trainable layers (cached) or every layer (not cached);
    - "final": the final pass over test (val is not run again: its final numbers are the best epoch's own
      evaluation) — through the cache, only the trainable layers (`EVAL_THROUGH_CACHE`), else every layer;
    - "fixed": a fixed cost per run (`FIXED_SECONDS`: building the model, writing the run folder and best/).

    `depth`: the layers a forward runs when the model stops early (`layer: k`); `n_eval_tokens` counts val + test,
    `n_val_tokens` val alone (default: half). No model, no files: the one-line planner (`study.plan`) calls it
    with plain numbers."""
    scale, train_rate, forward_rate = _rates(layers, hidden, throughput)
    step = (throughput or {}).get("step_seconds", STEP_SECONDS)
    share = trained_layers / layers
    run = (depth if depth is not None else layers) / layers  # share of the encoder a forward pass runs
    n_val = n_eval_tokens / 2 if n_val_tokens is None else n_val_tokens
    stepped = share if step_share is None else step_share
    # the head (and the pooled forward of evaluation) always costs something
    head_train = n_train_tokens * epochs / forward_rate * 0.02
    head_eval = n_eval_tokens / forward_rate * 0.02
    train = n_train_tokens * epochs * share / train_rate + n_steps * epochs * stepped * step + head_train
    if cached:
        fill = (run - share) if fill_share is None else fill_share
        frozen = (n_train_tokens + n_eval_tokens) * fill / forward_rate
        per_epoch_eval = n_val * epochs * share / forward_rate
        final = (n_eval_tokens - n_val) * (share if EVAL_THROUGH_CACHE else run) / forward_rate
    else:
        frozen = 0.0
        train += n_train_tokens * epochs * (run - share) / forward_rate
        per_epoch_eval = n_val * epochs * run / forward_rate
        final = (n_eval_tokens - n_val) * run / forward_rate
    return {"cache_fill": scale * frozen, "train": scale * train, "validation": scale * per_epoch_eval,
            "final": scale * (final + head_eval), "fixed": FIXED_SECONDS}


def _rates(layers: int, hidden: int, throughput: dict | None) -> tuple[float, float, float]:
    """(scale, train tokens/s, forward tokens/s): measured, else the MiniLM constants scaled by model size."""
    if throughput:
        return 1.0, throughput["train_tokens_per_s"], throughput["forward_tokens_per_s"]
    return layers * hidden ** 2 / MINILM_SIZE, TRAIN_TOKENS_PER_S, FORWARD_TOKENS_PER_S


def once_seconds(layers: int, hidden: int, n_train_tokens: float, n_eval_tokens: float,
                 throughput: dict | None = None, fill_share: float = 0.0, warm_up: bool = False) -> float:
    """A study's one-off costs over data it meets for the first time: the activation cache fill of `fill_share`
    of the layers over the tokens, and, for the first data of the study (`warm_up`), the process's first passes —
    measured on the demo, a fresh `unfreeze study` process ran its first run's cache fill and final pass 22 s
    slower than the same run later in the same process — counted as one extra forward over those tokens, at most
    `WARM_UP_TOKENS` (a cost of new batch shapes, which stops growing with the data), and never at a rate slower
    than the development CPU's (`FORWARD_TOKENS_PER_S`, scaled by model size): a throughput measured on a loaded
    machine is no measure of it. Measured on the shared 2-core machine at load 6-13 (#27, BENCHMARKS.md): BBC News,
    cache fill 220 s where the fill alone at the measured rate predicted 242 s and the warm-up at that rate 242 s
    more; Rotten Tomatoes, 122 s where the warm-up at the measured rate alone added 8 min."""
    scale, _, forward_rate = _rates(layers, hidden, throughput)
    tokens = n_train_tokens + n_eval_tokens
    model_scale = layers * hidden ** 2 / MINILM_SIZE
    warm_per_token = min(scale / forward_rate, model_scale / FORWARD_TOKENS_PER_S)
    return scale * tokens * fill_share / forward_rate + min(tokens, WARM_UP_TOKENS) * warm_up * warm_per_token


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
        per_arm, parts = study_estimates(todo)
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
    print_parts(parts, console, "estimated cost of the runs to do, per part")
    console.print("(the first run of each data set also pays the study's one-off warm-up and activation-cache "
                  "fill; they are counted in its arm)", highlight=False)
    console.print(f"rough cost of the {len(todo)} runs to do: {total / 60:.1f} min — {throughput_note(todo[0])}",
                  highlight=False)


def print_parts(parts: dict[str, float], console, title: str, budget: float | None = None,
                labels: dict[str, str] | None = None) -> None:
    """One row per part (minutes, and the share of the budget when there is one) and their total — the figure
    every footer quotes."""
    table = Table(title=title)
    for col in ("part", "min") + (("share of budget",) if budget else ()):
        table.add_column(col, justify="left" if col == "part" else "right")
    names = {**PARTS, **(labels or {})}
    for part, seconds in parts.items():
        table.add_row(names.get(part, part), f"{seconds / 60:.1f}",
                      *((f"{100 * seconds / budget:.0f} %",) if budget else ()))
    total = sum(parts.values())
    table.add_row("total", f"{total / 60:.1f}", *((f"{100 * total / budget:.0f} %",) if budget else ()))
    console.print(table)


def arm_estimates(jobs) -> dict[str, tuple[int, float]]:
    """{arm: (runs, estimated seconds of all of them)} in the jobs' order (see `study_estimates`)."""
    return study_estimates(jobs)[0]


def study_estimates(jobs) -> tuple[dict[str, tuple[int, float]], dict[str, float]]:
    """({arm: (runs, seconds)}, {part: seconds}) — one walk, so the per-arm table and the parts add up to the same
    total. What a study pays once — the activation cache (filled for every boundary at once, as deep as its deepest
    frozen arm) and, for its first data, the process warm-up (`once_seconds`) — is charged to the first run that
    meets the data: val + test once per model and data source, the training texts once per training set."""
    deepest: dict[str, float] = {}
    for job in jobs:
        share = _prefilled_share(job)
        if share is not None:
            deepest[_source_key(job.config)] = max(deepest.get(_source_key(job.config), 0.0), share)
    out: dict[str, tuple[int, float]] = {}
    parts: dict[str, float] = dict.fromkeys(PARTS, 0.0)
    seen: set[str] = set()
    for job in jobs:
        cfg = job.config
        prefilled = _prefilled_share(job) is not None
        run = job_parts(job, fill_share=0.0 if prefilled else None)
        train, evals, layers, hidden, _, _ = _facts(cfg)
        new_tokens = (0.0 if _source_key(cfg) in seen else evals) + (0.0 if _key(cfg) in seen else train)
        first = not seen
        seen.update({_source_key(cfg), _key(cfg)})
        if new_tokens:
            run["cache_fill"] += once_seconds(layers, hidden, new_tokens, 0.0, _THROUGHPUT.get(_key(cfg)),
                                              deepest.get(_source_key(cfg), 0.0), warm_up=first)
        for part, seconds in run.items():
            parts[part] += seconds
        n, total = out.get(job.arm, (0, 0.0))
        out[job.arm] = (n + 1, total + sum(run.values()))
    return out, parts


#: A run's parts as `run_parts` names them, and how plans and dry runs print them.
PARTS = {"cache_fill": "cache fill + warm-up (once per study)", "train": "training",
         "validation": "validation every epoch", "final": "final pass (test)", "fixed": "per-run setup + saving"}


def _prefilled_share(job) -> float | None:
    """`prefilled_share` of a job (None with `train.cache: off`)."""
    cfg = job.config
    return None if cfg.train.cache == "off" else prefilled_share(cfg.freeze, _facts(cfg)[2])


def prefilled_share(freeze, layers: int) -> float | None:
    """The share of layers a study's cache fill serves a run of `freeze` (its frozen prefix); None: it does not use
    the study's cache (nothing frozen, or a boundary only the run itself knows, as `layer: k`)."""
    strategy = get_strategy(freeze.strategy)
    if strategy.cached_top(freeze) is None or not layers:
        return None
    return 1 - (strategy.trained_layers(freeze, layers) or 0) / layers


def throughput_note(job) -> str:
    t = _THROUGHPUT.get(_key(job.config))
    if not t:
        return "MiniLM-size constants for a 2-core CPU (throughput could not be measured)"
    return (f"measured on this machine ({t['device']}, {t['threads']} threads): {t['forward_tokens_per_s']:,.0f} "
            f"tokens/s forward, {t['train_tokens_per_s']:,.0f} forward+backward; activation cache counted")


_TOKENS: dict[str, tuple[float, float, int, int, float, int]] = {}


def _key(cfg) -> str:
    return cfg.model.name + cfg.model.tokenizer + cfg.data.model_dump_json()


def _source_key(cfg) -> str:
    """`_key` without the training-set size: runs that differ only in it share val, test and the cache."""
    return cfg.model.name + cfg.model.tokenizer + cfg.data.model_dump_json(exclude={"train_size"})


def _facts(cfg) -> tuple[float, float, int, int, float, int]:
    """(train tokens, val + test tokens, layers, hidden, val tokens, training examples) of a run config, computed
    once per data."""
    from unfreeze.data.encode import split_token_lengths
    from unfreeze.model.backbone import load_backbone
    from unfreeze.training.prepare import load_data

    key = _key(cfg)
    if key not in _TOKENS:
        data = load_data(cfg)
        backbone, tokenizer = load_backbone(cfg.model, training=data.train)
        cap = cfg.data.max_length if cfg.data.max_length != "auto" else cfg.data.max_length_cap

        def tokens(split) -> float:  # texts are truncated at `cap`; a longer sentence is cut into windows instead
            if not len(split):
                return 0.0
            lengths = split_token_lengths(tokenizer, split)
            return float((lengths if get_task(cfg.task).windows_long_inputs else lengths.clip(max=cap)).sum())

        train, val = tokens(data.train), tokens(data.val)
        evals = val + tokens(data.test)
        config = backbone.config
        _TOKENS[key] = (train, evals, config.num_hidden_layers, config.hidden_size, val, len(data.train))
        _THROUGHPUT[key] = job_throughput(cfg, data, cap, train / max(len(data.train), 1))
    return _TOKENS[key]


def job_parts(job, fill_share: float | None = None) -> dict[str, float]:
    cfg = job.config
    train, evals, layers, hidden, val, n_train = _facts(cfg)
    return config_parts(cfg, train, evals, layers, hidden, throughput=_THROUGHPUT[_key(cfg)], n_val_tokens=val,
                        fill_share=fill_share, n_train=n_train)


def estimate_job(job, fill_share: float | None = None) -> float:
    return sum(job_parts(job, fill_share).values())


_THROUGHPUT: dict[str, dict | None] = {}
def job_throughput(cfg, data, cap: int, mean_tokens: float) -> dict | None:
    """The measured (or cached) throughput of the job's model on a few of its real training texts."""
    from unfreeze.study.throughput import measure_throughput

    split = data.train
    texts = list(split.texts[:64]) if hasattr(split, "texts") else [" ".join(w) for w in split.words[:64]]
    return measure_throughput(cfg.model, texts, max_length=min(cap, 512), threads=cfg.train.threads,
                              mean_tokens=mean_tokens)
