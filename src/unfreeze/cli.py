"""`unfreeze train | study | report | predict | inspect | probe | validate | calibrate` — thin wrappers over library
functions.

Every user error (`UnfreezeError`) becomes one line on stderr and exit code 2; nothing already written is
touched before validation passes.
"""
from __future__ import annotations

import functools
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from unfreeze.cli_print import OnceFilter, print_arm_table, print_inspect_report, print_run_summary
from unfreeze.errors import UnfreezeError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Fine-tuning studies of pretrained transformer encoders.")
# markup=False: arm, label, study and file names are user strings ("[/oops]" would be a rich MarkupError, "[trial 3]"
# would vanish); the few styled prefixes below ask for markup explicitly and escape what they wrap.
console = Console(markup=False)
err_console = Console(stderr=True, markup=False)


def print_error(line: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(str(line))}", markup=True, highlight=False, soft_wrap=True)


def exit_on_problems(errors: list[str], source, kind: str) -> None:
    """Every problem, one `error:` line each, then exit 2 (`validate` and every dry run list them all)."""
    for line in errors:
        print_error(line)
    if errors:
        err_console.print(f"{source}: {len(errors)} problem(s) in this {kind} file", highlight=False, soft_wrap=True)
        raise typer.Exit(2)

# Exit codes (README "Exit codes"): 0 everything finished, 2 bad input (one line on stderr), 3 a study finished
# but some runs failed (summary printed, failures.json), 130 interrupted (finished runs kept, rerun resumes).
EXIT_BAD_INPUT, EXIT_RUNS_FAILED, EXIT_INTERRUPTED = 2, 3, 130

SetOption = typer.Option(None, "--set", help="Override a config key, e.g. --set train.epochs=2 (repeatable).")
TrackOption = typer.Option(None, "--track", help="Also log to mlflow, tensorboard or wandb (repeatable; adds to "
                                                 "the file's `tracking:`).")


def _setup(verbose: bool = False) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # `warnings.warn` through the same handlers, so the filter below sees it too
    for handler in logging.getLogger().handlers:  # the console handler only (not a test's capture handler)
        if type(handler) is logging.StreamHandler and not any(isinstance(f, OnceFilter) for f in handler.filters):
            handler.addFilter(OnceFilter())
    logging.getLogger("unfreeze").setLevel(logging.INFO)
    for noisy in ("transformers", "accelerate", "datasets", "torch"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def user_errors(fn):
    """Turn an UnfreezeError into one clear line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UnfreezeError as exc:
            print_error(str(exc))
            raise typer.Exit(EXIT_BAD_INPUT)

    return wrapper


def _command_line() -> str:
    return "unfreeze " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@app.command()
@user_errors
def train(config: Path = typer.Argument(..., help="Run config YAML."),
          out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/<config name>)."),
          overrides: Optional[list[str]] = SetOption,
          overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run folder."),
          quiet: bool = typer.Option(False, "--quiet", help="No progress bars."),
          track: Optional[list[str]] = TrackOption):
    """Fine-tune one configuration; writes metrics.json, history.csv, predictions and best/."""
    _setup()
    from unfreeze.config.load import load_run_config
    from unfreeze.io.paths import expand, refuse_inside_study
    from unfreeze.tracking.runs import check_backend_names, track_run
    from unfreeze.training.run import train as run_train

    check_backend_names(track)
    out = expand(out or Path("runs") / config.stem)
    refuse_inside_study(out, "--out")  # the study writes its own runs through the library, not through `train`
    cfg = load_run_config(config, overrides)
    results = run_train(cfg, out, overwrite=overwrite, progress=not quiet)
    if int(os.environ.get("RANK", "0")) == 0:  # under `accelerate launch` / torchrun: one summary, not one per process
        track_run(cfg, out, results, track)
        print_run_summary(results, out)


@app.command()
@user_errors
def predict(model: Path = typer.Argument(..., help="A run's best/ folder, a run folder, or a study folder (+ --arm)."),
            input: Path = typer.Argument(..., help="CSV/TSV/JSONL/Parquet with the text column (CoNLL/JSONL for token models)."),
            output: Path = typer.Option(..., "-o", "--output", help="Where to write predictions."),
            arm: Optional[str] = typer.Option(None, "--arm", help="Study arm: average its fold/seed models."),
            text_column: Optional[str] = typer.Option(None, "--text-column"),
            submission: bool = typer.Option(False, "--submission", help="Only id + predicted label.")):
    """Predict labels (and per-class probabilities) for a file with a saved model."""
    _setup()
    from unfreeze.io.paths import expand
    from unfreeze.model.predict import predict_file

    output = expand(output)  # checked by predict_file (`io.paths.check_out_file`), for Python callers too
    frame = predict_file(model, input, output, arm=arm, text_column=text_column, submission=submission)
    console.print(f"wrote {len(frame) if frame is not None else ''} predictions to {output}")


@app.command()
@user_errors
def export(model: Path = typer.Argument(..., help="A run's best/ folder, a run folder, or a study folder (+ --arm)."),
           output: Path = typer.Option(..., "-o", "--output", help="Folder to write (a new one, or an earlier "
                                       "export with --overwrite)."),
           arm: Optional[str] = typer.Option(None, "--arm", help="Study arm (a study folder): its one saved model."),
           overwrite: bool = typer.Option(False, "--overwrite", help="Replace an earlier export at -o."),
           format: str = typer.Option("onnx", "--format", help="onnx (every transformer head) or transformers "
                                      "(token heads; pooling: pooler with no hidden layers)."),
           opset: int = typer.Option(17, "--opset", help="ONNX opset version.")):
    """Export a saved model for use without unfreeze: ONNX (+ tokenizer + labels) or a transformers folder."""
    _setup()
    from unfreeze.model.export import export_model

    out = export_model(model, output, format, opset, arm=arm, overwrite=overwrite)
    console.print(f"exported {format} model to {out}")


@app.command()
@user_errors
def inspect(data: Optional[Path] = typer.Argument(None, help="A data file or datasets folder."),
            dataset: Optional[str] = typer.Option(None, "--dataset", help="A built-in data set instead of a file."),
            text: str = typer.Option("text", "--text"), label: str = typer.Option("label", "--label"),
            model: Optional[str] = typer.Option("minilm", "--model", help="Tokenizer for token lengths ('' to skip)."),
            percentile: float = typer.Option(95.0, "--percentile"),
            task: Optional[str] = typer.Option(None, "--task", help="token or sequence (default: detected — "
                                                                     "CoNLL / token JSONL / wnut16 / msra_ner are token)")):
    """Label balance, duplicates, token-length percentiles, a max_length table and a suggested max_length."""
    _setup()
    from unfreeze.data.inspect import inspect_config
    from unfreeze.tasks import inspect_data, task_names

    if (data is None) == (dataset is None):
        raise UnfreezeError("give a data file or --dataset NAME")
    if task is not None and task not in task_names():
        raise UnfreezeError(f"--task {task!r}: choose {' or '.join(task_names())}")
    cfg = inspect_config(str(data) if data else None, dataset, text, label, percentile)
    err_console.print(f"inspect: reading {data or dataset}" + (f" and counting tokens with {model}" if model else "")
                      + " …", highlight=False, markup=False)
    from unfreeze.model.backbone import load_backbone_named

    report = inspect_data(cfg, model or None, task, load_model=load_backbone_named)
    print_inspect_report(report, percentile)


def _plan_one_line(config, data, test, text_column, label_column, model, budget, out, overrides,
                   dry_run) -> Path | None:
    """`study --data … --budget …`: plan, print, refuse (rc 2, nothing written) or write OUT/study.yaml under the
    study lock; the study file to run, or None after a dry run. OUT planned from the same inputs: its study.yaml,
    not planned again (`study.plan_inputs`)."""
    from unfreeze.io.paths import check_out_folder, expand

    if config is not None or data is None or budget is None:
        raise UnfreezeError("a one-line study takes --data FILE and --budget (e.g. 20m) and no study YAML")
    from unfreeze.io.lock import study_running
    from unfreeze.study.oneline import (parse_budget, plan_from_data, planned_base, print_one_line_plan, refusal,
                                        write_plan)
    from unfreeze.study.plan_inputs import plan_inputs, planned_study

    seconds = parse_budget(budget)  # a bad budget: one line before any work
    out = expand(out or Path("studies") / data.stem)
    holder = study_running(out) if out.is_dir() else None  # first: a running study's files are all its own
    if holder:
        raise UnfreezeError(f"study folder {out} is in use by {holder}; wait for it or choose another --out")
    out = check_out_folder(out, "--out", "study")
    base, applied = planned_base(data, test, text_column, label_column, model, overrides)
    inputs = plan_inputs(base, budget, seconds, model, overrides, text_column, label_column)
    config = planned_study(out, inputs)
    if config is not None:
        console.print(f"resuming {config}: planned before from the same data, budget, model and --set "
                      "(plan.json), so it runs as planned, not planned again", highlight=False, soft_wrap=True)
    else:
        plan = plan_from_data(base, applied, budget, data.stem, overrides,
                              announce=lambda text: console.print(text, highlight=False))
        print_one_line_plan(plan, budget, console)
        if plan.refused:  # before any training, and nothing written
            raise UnfreezeError(refusal(plan, budget))
        config = write_plan(plan, out, inputs)
        console.print(f"wrote {config}", highlight=False)
    if dry_run:  # validate what was written (every arm, each problem listed), run nothing
        from unfreeze.config.load import load_study_config
        from unfreeze.study.preflight import problems

        exit_on_problems(problems(load_study_config(config), str(config)), config, "study")
        return None
    return config


def _dry_run(cfg, config: Path, out: Path) -> None:
    """`study --dry-run`: every arm's problem as `validate` lists them (study/preflight.py), then the plan."""
    from unfreeze.study.preflight import problems

    exit_on_problems(problems(cfg, str(config)), config, "study")
    if cfg.search is not None:
        from unfreeze.study.search import plan_search

        plan_search(cfg, out, console)
        return
    from unfreeze.study.estimate import print_plan
    from unfreeze.study.grid import expand

    print_plan(cfg, expand(cfg), out, console)


@app.command()
@user_errors
def study(config: Optional[Path] = typer.Argument(None, help="Study YAML (or none, with --data: a one-line study)."),
          out: Optional[Path] = typer.Option(None, "--out", help="Study folder (default studies/<config name>)."),
          overrides: Optional[list[str]] = typer.Option(
              None, "--set", help="Override a key (repeatable): a study key (seeds=[0,1], grid.freeze=[head]) as "
                                  "written, a run key (train.epochs=1, data.train_size=500) applies to `base`."),
          dry_run: bool = typer.Option(False, "--dry-run", help="List the runs and a cost estimate; run nothing."),
          executor: Optional[str] = typer.Option(None, "--executor", help="local (default) or ray."),
          address: Optional[str] = typer.Option(None, "--address", help="Ray address: auto or ray://host:port."),
          quiet: bool = typer.Option(False, "--quiet", help="No per-run progress bars."),
          track: Optional[list[str]] = TrackOption,
          data: Optional[Path] = typer.Option(None, "--data", help="One-line study: the training data file, "
                                                                    "or a built-in data set's name (planned to fit "
                                                                    "--budget; no YAML needed)."),
          test: Optional[Path] = typer.Option(None, "--test", help="One-line study: a separate test file."),
          text_column: Optional[str] = typer.Option(None, "--text-column", help="One-line study: text column."),
          label_column: Optional[str] = typer.Option(None, "--label-column", help="One-line study: label column."),
          budget: Optional[str] = typer.Option(None, "--budget", help="One-line study: time budget (20m, 1h)."),
          model: str = typer.Option("minilm", "--model", help="One-line study: the encoder.")):
    """Run (or resume) every run of a study, the baseline, and write the report.

    `unfreeze study --data train.csv --budget 20m` plans the study instead (strategies, data size, max_length,
    epochs, seeds within the budget), prints the plan and what it traded away, writes it to OUT/study.yaml and
    runs it (--dry-run: plan and write only)."""
    _setup()
    from unfreeze.io.paths import check_out_folder

    one_line = data is not None or budget is not None
    if one_line:
        config = _plan_one_line(config, data, test, text_column, label_column, model, budget, out, overrides,
                                dry_run)
        if config is None:
            return
        out, overrides = config.parent, None  # applied: study.yaml is what runs
    elif config is None:
        raise UnfreezeError("give a study YAML, or --data FILE --budget 20m for a one-line study")
    from unfreeze.config.load import load_study_config
    from unfreeze.study.runner import make_executor, run_study
    from unfreeze.tracking.runs import check_backend_names

    check_backend_names(track)
    out = check_out_folder(out or Path("studies") / config.stem, "--out", "study")
    cfg = load_study_config(config, overrides)
    if dry_run:
        _dry_run(cfg, config, out)
        return
    if executor not in (None, "local", "ray"):
        raise UnfreezeError(f"--executor {executor!r}: choose local or ray")
    if address and (executor or cfg.executor) != "ray":
        raise UnfreezeError(f"--address {address!r} is for the Ray executor: add --executor ray")
    import time

    started, resumed = time.perf_counter(), (out / "study.json").is_file()
    try:
        results = run_study(cfg, out, executor=make_executor(cfg, executor, address), progress=not quiet,
                            echo=functools.partial(console.print, markup=False, highlight=False, soft_wrap=True),
                            study_text=config.read_text(encoding="utf-8"),
                            command=_command_line(), track=track)
    except KeyboardInterrupt:
        from unfreeze.study.runner import finished_runs

        err_console.print(f"interrupted: {finished_runs(out)} runs finished and kept; rerun the same command to "
                          "resume", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if not results.empty:
        print_arm_table(out)
    if one_line:
        from unfreeze.study.oneline import print_outcome

        print_outcome(out, time.perf_counter() - started, console, resumed)
    if results.attrs.get("failed_runs"):
        raise typer.Exit(EXIT_RUNS_FAILED)


@app.command()
@user_errors
def report(study_dir: Path = typer.Argument(..., help="A study folder.")):
    """(Re)build report.md and report.html from a study folder."""
    _setup()
    from unfreeze.report.build import build_report
    from unfreeze.study.results import collect_results

    if not (study_dir / "study.json").is_file():
        raise UnfreezeError(f"{study_dir}: not a study folder (no study.json)")
    from unfreeze.io.lock import study_running

    holder = study_running(study_dir)
    if holder:  # allowed on purpose: an interim report of a long study; every file is replaced atomically
        err_console.print(f"note: a study is still running in {study_dir} ({holder}); this report shows the runs "
                          "finished so far and the study rewrites it when it ends", highlight=False, soft_wrap=True)
    md, html = build_report(study_dir, collect_results(study_dir))
    console.print(f"wrote {md} and {html}")


@app.command()
@user_errors
def validate(config: Path = typer.Argument(..., help="A run or study YAML.")):
    """Check a run or study file without loading a model: every error at once; exit 0 valid, 2 invalid."""
    from unfreeze.config.load import validate_file

    kind, errors, cfg = validate_file(config)
    if kind == "study" and cfg is not None:  # every check a study makes before training (study/preflight.py)
        from unfreeze.study.preflight import problems

        errors = problems(cfg, str(config))
    exit_on_problems(errors, config, kind)
    console.print(f"{config}: valid {kind} file", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def probe(config: Path = typer.Argument(..., help="Run config YAML."),
          out: Path = typer.Option(Path("probe"), "--out"), overrides: Optional[list[str]] = SetOption):
    """Linear probe per layer: where is the signal before you spend compute?"""
    _setup()
    from unfreeze.config.load import load_run_config
    from unfreeze.io.paths import check_out_folder, refuse_inside_study
    from unfreeze.probe.sequence import run_probe

    refuse_inside_study(out, "--out")
    out = check_out_folder(out, "--out", "probe")  # only a folder holding nothing but an earlier probe's files

    result = run_probe(load_run_config(config, overrides), out)
    console.print(result.get("suggestion", ""))
    console.print(f"wrote {out / 'probe.json'} and {out / 'probe.png'}")


@app.command()
@user_errors
def calibrate(generator: Path = typer.Argument(..., help="GEN.py defining simulate(rng) -> one study (format: "
                                                         "docs/statistics.md). It is imported, i.e. executed."),
              studies: int = typer.Option(1000, "--studies", help="Simulated studies."),
              seed: int = typer.Option(0, "--seed", help="Seed of the numpy Generator passed to simulate."),
              json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the rates to this JSON file.")):
    """Run the report's decision path on studies from YOUR generative model: false-mark rate, false baseline
    verdicts, power."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from unfreeze.io import write_json
    from unfreeze.metrics.calibrate import calibrate as run_calibration
    from unfreeze.metrics.calibrate import check_json_out, load_generator, table_rows

    json_out = check_json_out(json_out, generator)  # before the generator runs: never replaces a file of ours
    simulate = load_generator(generator)
    with Progress(TextColumn("calibrate"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("studies", total=studies)
        result = run_calibration(simulate, studies, seed, progress=lambda done: bar.update(task, completed=done),
                                 source=str(generator))
    table = Table(title=f"unfreeze calibrate {generator.name} ({studies} studies, seed {seed})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    for name, value in table_rows(result):
        table.add_row(name, value)
    console.print(table)
    if json_out is not None:
        write_json(json_out, result)
        console.print(f"wrote {json_out}")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
