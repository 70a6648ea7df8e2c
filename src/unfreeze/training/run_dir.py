"""The run folder: its layout is a contract that studies, reports and `predict` rely on.

```
RUN/
  config.yaml            fully resolved config (defaults filled in) + library / torch versions
  history.csv            one row per evaluation: epoch, step, train_loss, val_<metric>…, lr, seconds, eval_seconds
  predictions_val.csv    id, text, label, pred, prob_<class>…   (token tasks: predictions_<split>.jsonl)
  predictions_test.csv
  best/                  best model: safetensors weights, tokenizer, head.safetensors, unfreeze.json
  metrics.json           written LAST: its presence means the run finished
```
Every file is written atomically (temp file + rename), and the whole folder too: a run writes into
`<parent>/.unfinished/.<name>.<pid>.<hex>.tmp/` and swaps it in as `RUN` when complete (`unfreeze.io.swap`: a
journal makes `kill -9` at any moment leave the old or the new run), so `--overwrite` keeps the previous run until
the new one is whole, and a study never sees a half-written run folder.
"""

from __future__ import annotations

import os
import shutil


import platform


import sys

from pathlib import Path

import numpy as np

import pandas as pd

import torch

from unfreeze import __version__

from unfreeze.errors import UnfreezeError
from unfreeze.io.atomic import disk_full_error, is_disk_full
from unfreeze.config.load import run_config_dict


from unfreeze.io import recover_dir, write_dataframe_csv, write_json, write_yaml
from unfreeze.io.atomic import temp_name
from unfreeze.io.lock import stale_temp_cleanup
from unfreeze.io.paths import check_out_folder
from unfreeze.io.swap import swap_dir
from unfreeze.model.checkpoint import save_model
from unfreeze.tasks import get_task



DONE_FILE = "metrics.json"



def check_run_dir(out_dir: str | Path, overwrite: bool) -> Path:
    """Refuse an unusable `--out` (`io.paths.check_out_folder`: never the current folder or a parent of it, the home
    folder, the root, a file, or a folder holding anything that is not a run) and an existing run unless
    `overwrite`; deletes nothing (see `write_run`). First finishes a swap of `out_dir` that a killed process left
    half done, so the folder looked at is the old or the new run."""
    return check_out_folder(out_dir, "--out", "run", overwrite, before_contents=recover_dir)



def staging_dir(out: Path) -> Path:
    """Where a run's files are written before they replace `out` in one journaled swap. A hidden sibling folder,
    so the study's `runs/*/metrics.json` never matches a half-swapped run; its name carries this process's pid
    (`atomic.temp_name`), so two `unfreeze train --out X` never delete each other's staging, and a dead
    process's staging is recognised and removed by `stale_temp_cleanup`."""
    return out.parent / ".unfinished" / temp_name(out.name)



def is_finished(run_dir: str | Path) -> bool:
    return (Path(run_dir) / DONE_FILE).is_file()



def versions() -> dict:
    import transformers

    return {"unfreeze": __version__, "torch": str(torch.__version__), "transformers": str(transformers.__version__),
            "python": sys.version.split()[0], "platform": platform.platform()}



def machine_info() -> dict:
    """What ran the run, for the report's setup section and for reading train_seconds: CPU count, torch's intra-op
    threads, and the GPU's name where one was used."""
    import os

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpu": gpu}


def train_label_counts(data) -> dict[str, int]:
    """Training-set label (sequence) or tag (token) counts by name: the report's label distribution."""
    names = list(data.label_names)
    labels = getattr(data.train, "labels", None)
    flat = np.asarray(labels if labels is not None else [t for row in data.train.tags for t in row], dtype=int)
    flat = flat[(flat >= 0) & (flat < len(names))]
    counts = np.bincount(flat, minlength=len(names))
    return {names[i]: int(c) for i, c in enumerate(counts)}


def is_new(out: Path) -> bool:
    """`out` is absent or an empty folder: then `write_run(..., new=True)` installs only where it still is."""
    return not os.path.lexists(out) or (out.is_dir() and not any(out.iterdir()))


def write_run(out: Path, config, run_data, run_model, results: dict, logits: dict[str, list[np.ndarray]],
              run_info: dict | None = None, new: bool = False) -> None:
    """Write every file into a staging folder, then swap it in place of `out`. With `--overwrite`, the previous
    run stays whole until the new one is complete: bad input, a crash or a NaN loss never destroys it. `new`: `out`
    was absent or empty when checked; another process's run installed there meanwhile is kept, and this one raises
    `UnfreezeError` (rc 2) instead of replacing it. `run_data` / `run_model`: the run's parts
    (`training.prepare.RunData`, `RunModel`)."""
    stage = staging_dir(out)
    if stage.parent.is_dir():
        stale_temp_cleanup(stage.parent)  # staging folders of runs that died while writing
    stage.mkdir(parents=True)
    try:
        write_yaml(stage / "config.yaml", {**run_config_dict(config), "versions": versions()})
        if run_info is not None:
            write_json(stage / "run.json", run_info)
        write_dataframe_csv(stage / "history.csv", pd.DataFrame(results["history"]))
        for split, split_logits in logits.items():
            write_predictions(stage, config, run_data, split, split_logits)
        if config.train.save_model:
            save_model(stage / "best", config, run_data, run_model.model, run_model.tokenizer, results)
        write_json(stage / DONE_FILE, results)
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)  # half a run is never counted; the previous `out` is untouched
        if is_disk_full(exc):
            raise disk_full_error(stage, exc) from None
        raise
    try:
        swap_dir(stage, out, "--out" if new else None)
    except UnfreezeError:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    try:
        stage.parent.rmdir()
    except OSError:
        pass  # another run is staging beside it



def split_fingerprint(data, task: str) -> str:
    """metrics.json's `test_fingerprint`: sha1 of the test split's example ids and labels (tag lists for token
    tasks), in order, of `data` (a TaskData or TokenTaskData) under `task`.

    Why: a report may compare, pair and rank runs only when they were scored on the same test examples; a grid
    over `data.split_seed` changes the test split while the arm names stay comparable-looking. Two runs with the
    same fingerprint saw the same test set."""
    import hashlib
    import json

    test = data.test
    labels = get_task(task).gold_labels(test, data.label_names)
    payload = json.dumps([[str(i), label] for i, label in zip(test.ids, labels)], ensure_ascii=False)
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()


def data_fingerprint(data) -> dict[str, str]:
    """{"train": sha256, "val": sha256} of the example ids, texts (+ pairs) or words, and labels (as names) of
    the splits a run trains and selects on, in order. Remembered on `data`, so a study hashes each loaded data
    set (or CV fold) once, not once per run.

    Why: run folders are keyed by a hash of the config, not of the files' contents; a study resumed after its
    training file was edited must not pool runs trained on the old and the new data as seeds
    (`study.data_check`)."""
    import hashlib
    import json

    known = getattr(data, "_data_fingerprint", None)
    if known is not None:
        return known
    names = data.label_names
    result = {}
    for split in ("train", "val"):
        part = getattr(data, split)
        if hasattr(part, "tags"):
            rows = [[str(i), list(words), [names[int(t)] for t in tags]]
                    for i, words, tags in zip(part.ids, part.words, part.tags)]
        else:
            pairs = part.pairs if part.pairs is not None else [None] * len(part)
            rows = [[str(i), t, p, names[int(y)]] for i, t, p, y in zip(part.ids, part.texts, pairs, part.labels)]
        payload = json.dumps(rows, ensure_ascii=False)
        result[split] = hashlib.sha256(payload.encode("utf-8")).hexdigest()
    data._data_fingerprint = result
    return result


def write_predictions(out: Path, config, run_data, split: str, logits: list[np.ndarray]) -> None:
    get_task(config.task).write_predictions(out, run_data, split, logits)
