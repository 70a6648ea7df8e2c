"""The bridge from our tag schemes to seqeval: which seqeval scheme class reads a scheme's tags exactly as
`data.tag_schemes.entity_spans` does, the tags to give it, and the span-count reference the tests hold seqeval to."""
from __future__ import annotations

from collections.abc import Sequence

from unfreeze.data.tag_schemes import ALPHABET, canonical_scheme, entity_spans, to_iobes
from unfreeze.errors import DataError


#: Schemes whose seqeval strict class reads valid *and* invalid tags exactly as `entity_spans` (checked by the
#: tests on random tag sequences). Everything else goes to seqeval as IOBES through `to_iobes`.
SEQEVAL_NATIVE = {"iob2": "IOB2", "ioe2": "IOE2", "iobes": "IOBES", "bilou": "BILOU"}


def seqeval_mode(scheme: str) -> dict:
    """seqeval keyword arguments for strict entity metrics on tags of `scheme` as `seqeval_inputs` returns
    them: {"mode": "strict", "scheme": cls}.

    iob2/ioe2/iobes/bilou → their own class. bmes, plain, iob1 and ioe1 → IOBES, on tags converted with
    `to_iobes`: seqeval has no BMES or IO class, its IOE1 class misses a valid single-token `E-X` after `O`,
    and its IOB1 class drops a valid entity when an invalid `B-Y` follows it (predictions do that)."""
    from seqeval import scheme as seqeval_scheme

    return {"mode": "strict", "scheme": getattr(seqeval_scheme, SEQEVAL_NATIVE.get(canonical_scheme(scheme),
                                                                                    "IOBES"))}


def seqeval_inputs(sentences: Sequence[Sequence[str]], scheme: str) -> tuple[list[list[str]], dict]:
    """(tags, kwargs) such that `seqeval.metrics.f1_score(gold, pred, **kwargs)` on the returned tags reads
    exactly the spans of `entity_spans` in `scheme`. Apply to gold and predictions alike (same scheme).
    Tags pass through unchanged for a native scheme written with `-`; otherwise they become IOBES."""
    scheme = canonical_scheme(scheme)
    allowed = ALPHABET[scheme]
    # Passed through only when seqeval's class accepts every tag (it raises on a prefix outside its scheme).
    if scheme in SEQEVAL_NATIVE and all(t == "O" or (t[1:2] == "-" and t[0] in allowed) for s in sentences
                                        for t in s):
        return [list(s) for s in sentences], seqeval_mode(scheme)
    return to_iobes(sentences, scheme), seqeval_mode("iobes")


def entity_counts(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], scheme: str) -> dict:
    """Entity-level true positives / predicted / gold counts and micro P/R/F1 (exact span and type match),
    computed from `entity_spans` — the reference the tests hold seqeval to."""
    if len(gold) != len(pred):
        raise DataError(f"{len(gold)} gold sentences but {len(pred)} predicted")
    tp = n_pred = n_gold = 0
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise DataError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        gs, ps = entity_spans(g, scheme), entity_spans(p, scheme)
        tp, n_pred, n_gold = tp + len(gs & ps), n_pred + len(ps), n_gold + len(gs)
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * tp / (n_pred + n_gold) if n_pred + n_gold else 0.0
    return {"tp": tp, "pred": n_pred, "gold": n_gold, "precision": precision, "recall": recall, "f1": f1}
