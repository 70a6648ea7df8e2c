"""The run's Accelerator: its device and mixed precision, from `train.device` / `train.mixed_precision`.

Accelerate keeps one process-wide state and refuses a second precision in the same process ("AcceleratorState
has already been initialized and cannot be changed"), so a local study with a grid over `train.mixed_precision`
failed every arm after the first. Each run therefore starts from a fresh state — unless this process is one of
several launched together (`accelerate launch`, torchrun), whose shared state belongs to the launch. Runs in one
process are sequential, so no run's Accelerator is in use when the next one is made.
"""
from __future__ import annotations

import torch
from accelerate import Accelerator


def make_accelerator(config) -> Accelerator:
    """A fresh Accelerator for one run (`config`: a RunConfig); `auto` precision is bf16 / fp16 on CUDA, else
    full precision."""
    t = config.train
    cpu = t.device == "cpu" or (t.device == "auto" and not torch.cuda.is_available()
                                and not torch.backends.mps.is_available())
    precision = t.mixed_precision
    if precision == "auto":
        precision = "no" if cpu or not torch.cuda.is_available() else (
            "bf16" if torch.cuda.is_bf16_supported() else "fp16")
    if t.threads:
        torch.set_num_threads(t.threads)
    reset_accelerate_state()
    return Accelerator(cpu=cpu, mixed_precision=precision)


def reset_accelerate_state() -> None:
    """Forget the previous run's process-wide Accelerate state (device, precision, gradient accumulation), so
    this run's settings apply; kept as it is in a multi-process launch."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    if PartialState._shared_state and PartialState().num_processes > 1:
        return
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
