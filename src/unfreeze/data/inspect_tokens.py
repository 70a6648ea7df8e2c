"""`unfreeze inspect` for token (NER-style) data, plus the parts both tasks share: the max_length table and the
imbalance hint.

The max_length table answers "what does a shorter max_length buy?": for 64 / 128 / 256 / 512 it gives the share
of examples that would be truncated and the relative cost. Cost is counted as tokens *processed* per epoch: the
examples are dealt into batches of 32 in a fixed random order, each batch is padded to its longest example capped
at max_length (what the collator does), and the padded batch sizes are summed; 1.00 is the cost at 512. This is
linear in tokens (attention's quadratic term is ignored, which flatters long max_lengths slightly).

Task detection: a built-in token data set (`wnut16`, `msra_ner`), a `.conll`/`.iob`/`.bio` file, a JSONL file
whose first record has the tokens column, or a `.txt`/`.tsv` file that looks like CoNLL (one word per line, tab-
separated tag columns, blank lines between sentences) is token data; anything else is sequence data.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from unfreeze.config.schema import DataConfig

MAX_LENGTHS = (64, 128, 256, 512)
BATCH_SIZE = 32
#: The smallest class is flagged when its share is under this fraction of the uniform share 1 / k (k classes):
#: 25 % of the data for 2 classes, 2.5 % for 20 — a balanced 20-class set (every class ~5 %) is not imbalanced.
MINORITY_OF_UNIFORM = 0.5


def length_table(lengths: np.ndarray, batch_size: int = BATCH_SIZE, seed: int = 0) -> list[dict]:
    """[{max_length, truncated_share, relative_cost}] for MAX_LENGTHS (cost relative to 512; see module doc)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(lengths))
    batches = [lengths[order[i:i + batch_size]] for i in range(0, len(order), batch_size)]

    def cost(cap: int) -> float:
        return float(sum(len(b) * min(int(b.max()), cap) for b in batches))

    full = cost(MAX_LENGTHS[-1]) or 1.0
    return [{"max_length": cap, "truncated_share": float((lengths > cap).mean()),
             "relative_cost": cost(cap) / full} for cap in MAX_LENGTHS]


def imbalance_hint(counts: dict[str, int], what: str = "class") -> str | None:
    """A hint when the smallest class's share is under half the uniform share 1 / k (`MINORITY_OF_UNIFORM`):
    accuracy flatters, balanced weights may help. Judged against k, so 3.3 % of a 20-class set is no alarm while
    9 % of a 3-class set is."""
    total = sum(counts.values())
    if not total or len(counts) < 2:
        return None
    name, n = min(counts.items(), key=lambda kv: kv[1])
    share, uniform = n / total, 1 / len(counts)
    if share >= MINORITY_OF_UNIFORM * uniform:
        return None
    plural = {"class": "classes"}.get(what, what + "s")
    shown = f"{100 * share:.1f}%" if share >= 0.001 else f"{n} of {total:,} ({100 * share:.2g}%)"
    return (f"{what} {name!r} is {shown} of the data, under half the {100 * uniform:.1f}% of a uniform "
            f"split over {len(counts)} {plural}: report f1_macro, not accuracy, and try "
            f"`train.class_weights: balanced`")


def unseen_labels(parts: dict[str, list], train: str = "train") -> dict[str, dict[str, int]]:
    """{label: {split: count}} for labels of the other splits (val, test ...) that never occur in `train`
    (`parts`: {split: list of labels}); empty when there is one split or none is missing."""
    known = set(parts.get(train, []))
    out: dict[str, dict[str, int]] = {}
    for split, labels in parts.items():
        if split == train:
            continue
        for label, n in Counter(labels).items():
            if label not in known:
                out.setdefault(str(label), {})[split] = int(n)
    return dict(sorted(out.items()))


def unseen_labels_warning(unseen: dict[str, dict[str, int]], limit: int = 10) -> str | None:
    """One line naming the val/test labels absent from train (the first `limit`, then how many more)."""
    if not unseen:
        return None
    items = list(unseen.items())
    listing = "; ".join(f"{label!r} ({', '.join(f'{n} in {sp}' for sp, n in where.items())})"
                        for label, where in items[:limit])
    more = f"; … and {len(items) - limit} more" if len(items) > limit else ""
    return (f"{len(items)} label(s) of val/test never occur in train: {listing}{more}. A model cannot predict "
            f"them: every such example will count as an error (merge or drop them if that is not the question)")


def detect_task(cfg: DataConfig) -> str:
    """`token` or `sequence` for what the data config points at (see module doc)."""
    if cfg.dataset is not None:
        from unfreeze.assets import TOKEN_DATASETS

        return "token" if cfg.dataset in TOKEN_DATASETS else "sequence"
    path = Path(cfg.path or cfg.train or "")
    if cfg.format in ("conll",):
        return "token"
    suffixes = "".join(path.suffixes).lower()
    if path.is_dir() or not path.is_file():
        return "sequence"
    if any(ext in suffixes for ext in (".conll", ".iob", ".bio", ".bioes")):
        return "token"
    if ".jsonl" in suffixes or ".json" in suffixes:
        with path.open(encoding="utf-8") as handle:
            first = next((line for line in handle if line.strip()), "")
        try:
            record = json.loads(first)
        except ValueError:
            return "sequence"
        return "token" if isinstance(record, dict) and isinstance(record.get(cfg.tokens_column), list) else "sequence"
    if ".txt" in suffixes or ".tsv" in suffixes:
        return "token" if _looks_like_conll(path) else "sequence"
    return "sequence"


def _looks_like_conll(path: Path, sample: int = 200) -> bool:
    """One whitespace-free word per line plus tab-separated tag column(s), and a blank line between sentences."""
    lines = []
    with path.open(encoding="utf-8", errors="replace") as handle:
        for _, line in zip(range(sample), handle):
            lines.append(line.rstrip("\n"))
    rows = [line for line in lines if line.strip() and not line.startswith("-DOCSTART-")]
    if not rows:
        return False
    columns = [row.split("\t") for row in rows]
    word_per_line = all(len(c) >= 2 and c[0] and " " not in c[0] for c in columns)
    return word_per_line and (any(not line.strip() for line in lines) or len(lines) < sample)


def read_sentences(cfg: DataConfig) -> tuple[list, str, dict]:
    """The training sentences (every sentence when the source has no `train` split), a source name, and every
    split the source has ({split: sentences}, for the unseen-label check)."""
    from unfreeze.data.token_files import read_conll, read_token_file

    if cfg.dataset is not None:
        from unfreeze.assets import DATASETS

        sentences = read_conll(DATASETS[cfg.dataset].locate(), -1)
        return sentences, f"dataset {cfg.dataset}", {"all": sentences}
    source = cfg.path or cfg.train
    parts = read_token_file(source, cfg, require_tags=False)
    return parts.get("train", [s for part in parts.values() for s in part]), str(source), parts


def has_entities(scheme: str, tags: Counter) -> bool:
    """Whether the tags name entities (a BIO-style scheme, or plain tags with an outside tag `O`) rather than
    word classes (part-of-speech tags: no prefixes, no `O`), where an "entity" row would be meaningless."""
    return scheme != "plain" or "O" in tags


def length_report(lengths: np.ndarray, cfg, max_positions: int) -> dict:
    """What inspect says about token lengths (texts or tagged sentences alike): the percentiles, the max_length
    a run would choose, the truncation/cost table and the padding a fixed 512 would waste."""
    from unfreeze.data.encode import choose_max_length

    suggested, stats = choose_max_length(lengths, cfg.model_copy(update={"max_length": "auto"}), max_positions)
    return {"tokens": stats, "suggested_max_length": suggested, "max_length_table": length_table(lengths),
            "padding_waste_at_512": float(1 - lengths.clip(max=512).mean() / 512)}


def model_loader(load_model):
    """`load_model` (name → (backbone, tokenizer)), required once a model name is given: data/ sits below model/,
    so the caller passes `unfreeze.model.backbone.load_backbone_named`."""
    if load_model is None:
        raise ValueError("inspect with a model name needs load_model=unfreeze.model.backbone.load_backbone_named")
    return load_model


def inspect_tokens(cfg: DataConfig, model_name: str | None = None, load_model=None) -> dict:
    """`unfreeze inspect` for tagged sentences; `load_model(model_name)` → (backbone, tokenizer) for token lengths."""
    from unfreeze.data.tag_schemes import detect_scheme, entity_spans

    sentences, source, parts = read_sentences(cfg)
    good = [s for s in sentences if s.words and s.tags is not None]
    tags = Counter(t for s in good for t in s.tags)
    scheme = detect_scheme([s.tags for s in good]) if good else "iob2"
    entities: Counter = Counter()
    for s in good:
        entities.update(kind for kind, _, _ in entity_spans(s.tags, scheme))
    words = np.array([len(s.words) for s in good] or [0])
    report = {
        "task": "token",
        "source": source,
        "rows": len(sentences),
        "dropped_bad_rows": len(sentences) - len(good),
        "duplicate_texts": len(good) - len({tuple(s.words) for s in good}),
        "labels": {k: int(v) for k, v in tags.most_common()},
        "entities": {k: int(v) for k, v in entities.most_common()} if has_entities(scheme, tags) else {},
        "tag_scheme": scheme,
        "majority_share": float(tags.most_common(1)[0][1] / sum(tags.values())) if tags else 0.0,
        "words": {f"p{q}": int(np.percentile(words, q)) for q in (5, 50, 95, 99)} | {"max": int(words.max())},
    }
    hint = (imbalance_hint(dict(entities), "entity type") if report["entities"]
            else imbalance_hint(dict(tags), "tag"))
    if hint:
        report["imbalance_hint"] = hint
    unseen = unseen_labels({name: [t for s in part if s.tags is not None for t in s.tags]
                            for name, part in parts.items()})
    if unseen:
        report["unseen_labels"] = unseen
    if model_name and good:
        from unfreeze.data.encode import model_max_positions

        backbone, tokenizer = model_loader(load_model)(model_name)
        enc = tokenizer([s.words for s in good], is_split_into_words=True, add_special_tokens=True,
                        truncation=False, verbose=False)
        lengths = np.array([len(ids) for ids in enc["input_ids"]])
        report.update(length_report(lengths, cfg, model_max_positions(tokenizer, backbone)))
    return report
