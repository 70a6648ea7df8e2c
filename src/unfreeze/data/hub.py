"""`data.hub`: data sets read through `datasets.load_dataset` — a hub name (from the local cache when offline) or
one of its packaged builders (`csv`, `json`, `parquet` with `data_files`). The result goes through the same
column mapping, cleaning and splitting as a file: sentence rows become a frame (`sequence.py`), token rows
become sentences (`token_files.py`), ClassLabel ids become their names either way.
"""
from __future__ import annotations

import os

from unfreeze.config.schema import HubConfig
from unfreeze.errors import DataError

#: Split names of hub data sets that mean our `val`.
VAL_NAMES = ("validation", "val", "dev", "valid")


def load_hub_splits(hub: HubConfig) -> dict[str, tuple[object, str]]:
    """{train|val|test: (datasets.Dataset, source name)}; splits the data set lacks are absent (carved later)."""
    if hub.splits is not None:
        return {("val" if ours == "validation" else ours): (_load(hub, theirs), _source(hub, theirs))
                for ours, theirs in hub.splits.items()}
    loaded = _load(hub, None)
    out = {}
    for split, dataset in loaded.items():
        ours = "val" if split in VAL_NAMES else split
        if ours in ("train", "val", "test") and ours not in out:
            out[ours] = (dataset, _source(hub, split))
    if "train" not in out:
        raise DataError(f"data.hub {hub.path!r}: no `train` split (splits: {sorted(loaded)}); map one with "
                        "data.hub.splits: {train: NAME}")
    return out


def _source(hub: HubConfig, split: str) -> str:
    return f"hub {hub.path}{'/' + hub.name if hub.name else ''}[{split}]"


def hub_offline() -> bool:
    import datasets

    flags = (os.environ.get(k, "0") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(f not in ("0", "", "false", "False") for f in flags) or bool(
        getattr(datasets.config, "HF_HUB_OFFLINE", False))


def _load(hub: HubConfig, split: str | None):
    import datasets
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    try:
        return datasets.load_dataset(hub.path, hub.name, data_files=hub.data_files, revision=hub.revision,
                                     split=split)
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one line naming the data set
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if split is not None and "split" in first.lower() and "unknown" in first.lower():
            raise DataError(f"data.hub {hub.path!r}: {first} (set data.hub.splits)") from None
        if hub_offline() and not hub.data_files:
            raise DataError(
                f"data.hub.path {hub.path!r}{' (' + hub.name + ')' if hub.name else ''} is not in the local "
                "datasets cache and HF_HUB_OFFLINE=1 forbids downloading it; run once online (unset HF_HUB_OFFLINE "
                "and HF_DATASETS_OFFLINE) to cache it, or save it with `save_to_disk` and give that folder as "
                f"data.path ({type(exc).__name__}: {first})") from None
        raise DataError(f"data.hub {hub.path!r}: could not be loaded: {type(exc).__name__}: {first}") from None


def hub_frames(hub: HubConfig) -> dict[str, tuple[object, str]]:
    """Sentence tasks: {split: (pandas frame with ClassLabel names, source)}."""
    return {split: (dataset_to_frame(ds), source) for split, (ds, source) in load_hub_splits(hub).items()}


def dataset_to_frame(dataset):
    """Class-label integer columns become their names, so labels read the same as in a CSV."""
    import datasets

    frame = dataset.to_pandas()
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.ClassLabel):
            frame[name] = [feature.int2str(int(v)) for v in frame[name]]
    return frame
