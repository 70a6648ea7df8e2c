"""Follow ONE study run through the code: which unfreeze modules it enters, and how often the path goes back to a
module it had left (issue #24: "a run built from its parts").

A one-arm, one-seed study (tiny random BERT built in-process, `top_k: 1` with the activation cache, 2 epochs, the
model saved) runs under `sys.setprofile`. Every Python call whose caller and callee lie in different `unfreeze`
modules is a *module switch*; a switch into a module that was entered before and is not on the call stack any
more is a *return visit* (the path went back to a module it had left). Calls inside one module, and calls into
third-party code, are not switches; a third-party frame between two unfreeze frames is skipped (the unfreeze
caller counts).

Printed, for the whole study, for the part inside `training.run.train` (the run itself), and for the switches
inside that part between two `training/` modules (the run's own structure, without model / io / data):
  modules        distinct unfreeze modules entered
  switches       calls that cross from one unfreeze module into another
  return_visits  switches into a module entered before and since left (all of them: loops repeat them)
  distinct_back  distinct (from, to) module pairs among the return visits (independent of epochs and batches)

    PYTHONPATH=src:benchmarks:tests python benchmarks/walk_run.py            # numbers
    PYTHONPATH=src:benchmarks:tests python benchmarks/walk_run.py --path     # + the collapsed module path of train()
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections import Counter
from pathlib import Path

TRAINING = "unfreeze.training."
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


class Walk:
    """Module switches of the calls made while active (`sys.setprofile`)."""

    def __init__(self):
        self.entered: list[str] = []  # first-entry order
        self.switches: list[tuple[str, str]] = []
        self.on_stack: list[bool] = []  # per switch: the target module was still on the call stack
        self.back: list[tuple[str, str]] = []
        self.path: list[str] = []  # module of each switch target, in order
        self.in_train_from: int | None = None
        self.train_span: tuple[int, int] | None = None

    @staticmethod
    def module_of(frame) -> str | None:
        name = frame.f_globals.get("__name__", "")
        return name if name.startswith("unfreeze") else None

    def caller_module(self, frame) -> str | None:
        frame = frame.f_back
        while frame is not None:
            mod = self.module_of(frame)
            if mod is not None:
                return mod
            frame = frame.f_back
        return None

    def stack_modules(self, frame) -> set[str]:
        mods = set()
        while frame is not None:
            mod = self.module_of(frame)
            if mod is not None:
                mods.add(mod)
            frame = frame.f_back
        return mods

    def __call__(self, frame, event, arg) -> None:
        if event != "call":
            if event == "return" and frame.f_code.co_name == "train" and self.module_of(frame) == \
                    "unfreeze.training.run" and self.in_train_from is not None and self.train_span is None:
                self.train_span = (self.in_train_from, len(self.switches))
            return
        mod = self.module_of(frame)
        if mod is None:
            return
        if frame.f_code.co_name == "train" and mod == "unfreeze.training.run" and self.in_train_from is None:
            self.in_train_from = len(self.switches)
        caller = self.caller_module(frame)
        if mod not in self.entered:
            self.entered.append(mod)
        if caller is None or caller == mod:
            return
        on_stack = mod in self.stack_modules(frame.f_back)
        if mod in self.path and not on_stack:
            self.back.append((caller, mod))
        self.switches.append((caller, mod))
        self.on_stack.append(on_stack)
        self.path.append(mod)


def figures(switches, back) -> dict:
    modules = {m for pair in switches for m in pair}
    return {"modules": len(modules), "switches": len(switches), "return_visits": len(back),
            "distinct_back": len(set(back))}


def train_part(walk: Walk) -> tuple[list, list]:
    """Switches and return visits inside `train()` (recounted from its first switch: a module the study entered
    before the run is 'left' only once the run leaves it)."""
    start, end = walk.train_span
    switches = walk.switches[start:end]
    seen, back = set(), []
    for (caller, mod), on_stack in zip(switches, walk.on_stack[start:end]):
        if mod in seen and not on_stack:
            back.append((caller, mod))
        seen.add(mod)
    return switches, back


def study_config(tmp: Path):
    from tiny import make_tiny_model, run_config, synthetic_frame
    from unfreeze.config.study import StudyConfig

    model = make_tiny_model("bert", tmp / "model")
    data = tmp / "data.csv"
    synthetic_frame(120, seed=0).to_csv(data, index=False)
    base = run_config(model, data, freeze={"top_k": 1},
                      train={"epochs": 2, "batch_size": 16, "eval_batch_size": 32, "threads": 1})
    return StudyConfig.model_validate({"name": "walk", "base": base, "baseline": False, "seeds": [0]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", action="store_true", help="print train()'s collapsed module path")
    parser.add_argument("--pairs", action="store_true", help="print train()'s distinct return-visit pairs")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    import unfreeze.study as study

    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        config = study_config(tmp)
        walk = Walk()
        sys.setprofile(walk)
        try:
            study.run_study(config, tmp / "study", progress=False, echo=lambda *_: None)
        finally:
            sys.setprofile(None)
    whole = figures(walk.switches, walk.back)
    whole["modules"] = len(walk.entered)
    inside, back = train_part(walk)
    run = figures(inside, back)
    print(f"study (one run):   {whole}")
    print(f"inside train():    {run}")
    own = [i for i, (a, b) in enumerate(inside) if a.startswith(TRAINING) and b.startswith(TRAINING)]
    own_back = [pair for pair in back if pair[0].startswith(TRAINING) and pair[1].startswith(TRAINING)]
    print(f"training/ → training/: {figures([inside[i] for i in own], own_back)}")
    print("most frequent return visits in train():",
          ", ".join(f"{a.removeprefix('unfreeze.')}→{b.removeprefix('unfreeze.')} ×{n}"
                    for (a, b), n in Counter(back).most_common(5)))
    train_modules = sorted({m for pair in inside for m in pair})
    print("modules inside train():", " ".join(m.removeprefix("unfreeze.") for m in train_modules))
    if args.pairs:
        for (a, b), n in sorted(Counter(back).items()):
            print(f"  {a.removeprefix('unfreeze.')} → {b.removeprefix('unfreeze.')} ×{n}")
    if args.path:
        collapsed = [m for i, m in enumerate(p for _, p in inside) if i == 0 or m != inside[i - 1][1]]
        print(" → ".join(m.removeprefix("unfreeze.") for m in collapsed[:400]))


if __name__ == "__main__":
    main()
