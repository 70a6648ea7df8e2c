"""The one evaluation loop: batches → forward in eval mode under `torch.inference_mode` → each batch's outputs
handed to the caller. Training's validation/test passes, the activation-cache fill, both probes and `predict`
all run through `run_inference`, so "no dropout, no autograd, inputs on the model's device" is decided once.

Callers keep what differs: what a batch is (a prepared DataLoader under Accelerate, or length-grouped batches of
encoded examples from `inference_batches`), what the forward returns (logits, all hidden states) and what is kept
of it (gathered logits, cache rows, pooled features).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch
from torch import nn

from unfreeze.data.encode import Collator, LengthGroupedBatchSampler

#: Keys of a collated batch that an encoder's forward takes.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class inference_batches:  # noqa: N801 — used like the generator function it replaced
    """(positions, collated batch) over encoded examples (or only `rows` of them), grouped by length so little
    padding is computed (longest first); `positions` index `rows` when given, else the examples. `len()` is the
    number of batches, so a progress bar over it has a total and an ETA."""

    def __init__(self, enc, batch_size: int, pad_token_id: int, token_task: bool = False,
                 rows: np.ndarray | None = None):
        self.collate = Collator(enc, pad_token_id, token_task=token_task)
        self.rows = rows
        lengths = np.asarray(enc.lengths) if rows is None else np.asarray(enc.lengths)[rows]
        self.batches = LengthGroupedBatchSampler(lengths, batch_size, shuffle=False).batches()

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[tuple[list[int], dict]]:
        for positions in self.batches:
            yield positions, self.collate(positions if self.rows is None else [int(self.rows[j]) for j in positions])


def encoder_inputs(batch: dict, device=None) -> dict:
    """The model inputs of a collated batch, on `device` when given."""
    return {k: (batch[k] if device is None else batch[k].to(device)) for k in MODEL_INPUTS if k in batch}


def run_inference(module: nn.Module, batches: Iterable, forward: Callable[[Any], Any],
                  consume: Callable[[Any, Any], None]) -> None:
    """For every item of `batches`: `consume(item, forward(item))`, with `module` in eval mode (dropout off) and
    autograd off. The module is left in eval mode: callers that train next set the modes they need."""
    module.eval()
    with torch.inference_mode():
        for item in batches:
            consume(item, forward(item))
