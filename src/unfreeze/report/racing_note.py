"""How the report and racing's progress line say why an arm stopped (`racing.json`'s `stopped` entries).

Here, in `report/`, because both the report (`build.py`) and racing (`study/racing.py`) say it, and the study
layer sits above the report layer (docs/CONTRACTS.md: the layer order)."""
from __future__ import annotations

from unfreeze.metrics.compare import format_p


def stop_note(entry: dict) -> str:
    """How the report and the progress line say why an arm stopped."""
    return (f"stopped after {entry['after_seeds']} seeds: worse than {entry['leader']} on val, "
            f"{format_p(entry['p_holm'], entry['n_boot'])} (Holm; stop below {entry['alpha_per_look']:.3g})")
