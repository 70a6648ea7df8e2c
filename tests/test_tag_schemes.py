"""Tag schemes: detection, validation, strict span reading and lossless conversion, held to hand counts and to
seqeval (strict mode).

The fixtures/<scheme>.txt files are hand-written: the same three sentences, `token<TAB>gold<TAB>pred`, each
in the scheme's own tags, with one scheme-specific *invalid* fragment planted in the prediction of sentence 0
at the word "in" (position 4), which the strict reading must not count as an entity.
"""
from __future__ import annotations

import random
from itertools import pairwise
from pathlib import Path

import pytest
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.scheme import BILOU, IOB1, IOB2, IOBES, IOE1, IOE2, Tokens

from unfreeze.data import tag_schemes as ts
from unfreeze.metrics import seqeval_bridge as sb
from unfreeze.errors import UnfreezeError

FIXTURES = Path(__file__).parent / "fixtures" / "tag_schemes"
SEQEVAL_CLASS = {"iob1": IOB1, "iob2": IOB2, "ioe1": IOE1, "ioe2": IOE2, "iobes": IOBES, "bilou": BILOU}


def read_fixture(scheme: str) -> tuple[list[list[str]], list[list[str]], list[list[str]]]:
    words, gold, pred = [], [], []
    for block in (FIXTURES / f"{scheme}.txt").read_text(encoding="utf-8").strip().split("\n\n"):
        rows = [line.split("\t") for line in block.splitlines()]
        words.append([r[0] for r in rows])
        gold.append([r[1] for r in rows])
        pred.append([r[2] for r in rows])
    return words, gold, pred


def seqeval_spans(tags: list[str], cls) -> set[tuple[str, int, int]]:
    return {(e.tag, e.start, e.end) for e in Tokens(tags, cls).entities}


# Hand counts. Gold (all prefixed schemes): s0 PER[0,2) PER[3,4) LOC[5,8); s1 LOC[1,2) LOC[2,3) LOC[3,4)
# ORG[6,8); s2 ORG[0,3) PER[4,6) → 9 entities. Prediction: s0 PER[0,2)✓ (Mary missed) LOC[5,7)✗ (boundary)
# + the invalid fragment at "in" (not an entity); s1 LOC[1,3)✗ (Paris+Berlin merged) LOC[3,4)✓ ORG[6,8)✓;
# s2 ORG[0,3)✓ LOC[4,6)✗ (type) → 7 predicted, 4 correct. P = 4/7, R = 4/9, F1 = 2·4/(7+9) = 0.5.
# (A lenient conlleval reading of iob2 would add LOC[4,5) for the stray I-LOC: P = 4/8.)
# plain (IO): adjacent LOCs cannot be separated, so gold s1 is one LOC[1,4) → 7 gold; prediction s0 PER[0,2)✓
# MISC[4,5)✗ LOC[5,7)✗, s1 LOC[1,3)✗ ORG[6,8)✓, s2 ORG[0,3)✓ LOC[4,6)✗ → 7 predicted, 3 correct:
# P = R = F1 = 3/7.
HAND = {s: {"tp": 4, "pred": 7, "gold": 9, "precision": 4 / 7, "recall": 4 / 9, "f1": 0.5}
        for s in ("iob1", "iob2", "ioe1", "ioe2", "iobes", "bilou", "bmes")}
HAND["plain"] = {"tp": 3, "pred": 7, "gold": 7, "precision": 3 / 7, "recall": 3 / 7, "f1": 3 / 7}
GOLD_SPANS = [{("PER", 0, 2), ("PER", 3, 4), ("LOC", 5, 8)},
              {("LOC", 1, 2), ("LOC", 2, 3), ("LOC", 3, 4), ("ORG", 6, 8)},
              {("ORG", 0, 3), ("PER", 4, 6)}]
# The planted fragment in each prediction: (violation kind, position in sentence 0).
PLANTED = {"iob2": ("continues_nothing", 4), "iob1": ("b_not_after_same_type", 4),
           "ioe1": ("e_not_before_same_type", 4), "ioe2": ("entity_not_closed", 5),
           "iobes": ("entity_not_closed", 5), "bilou": ("entity_not_closed", 5), "bmes": ("continues_nothing", 4)}


@pytest.mark.parametrize("scheme", ts.SCHEMES)
def test_hand_counted_entity_metrics_per_scheme(scheme):
    """Every scheme's file gives the hand-counted P/R/F1 — from our spans and from seqeval strict mode."""
    _, gold, pred = read_fixture(scheme)
    ours = sb.entity_counts(gold, pred, scheme)
    for key, value in HAND[scheme].items():
        assert ours[key] == pytest.approx(value), (scheme, key)
    g, kwargs = sb.seqeval_inputs(gold, scheme)
    p, _ = sb.seqeval_inputs(pred, scheme)
    assert precision_score(g, p, **kwargs) == pytest.approx(HAND[scheme]["precision"])
    assert recall_score(g, p, **kwargs) == pytest.approx(HAND[scheme]["recall"])
    assert f1_score(g, p, **kwargs) == pytest.approx(HAND[scheme]["f1"])


@pytest.mark.parametrize("scheme", [s for s in ts.SCHEMES if s != "plain"])
def test_gold_spans_are_the_same_in_every_scheme_file(scheme):
    """The seven prefixed files encode one set of gold entities: reading is scheme-aware, not prefix-blind."""
    _, gold, _ = read_fixture(scheme)
    assert [ts.entity_spans(t, scheme) for t in gold] == GOLD_SPANS


@pytest.mark.parametrize("scheme", ["iob1", "iob2", "ioe2", "iobes", "bilou"])
def test_native_seqeval_class_on_raw_tags_matches(scheme):
    """For schemes seqeval reads itself, its strict class on the *unconverted* tags gives the hand counts."""
    _, gold, pred = read_fixture(scheme)
    kwargs = {"mode": "strict", "scheme": SEQEVAL_CLASS[scheme]}
    assert f1_score(gold, pred, **kwargs) == pytest.approx(HAND[scheme]["f1"])
    for tags in gold + pred:
        assert ts.entity_spans(tags, scheme) == seqeval_spans(tags, SEQEVAL_CLASS[scheme])


def test_seqeval_ioe1_class_misses_a_valid_single_token_entity():
    """Why ioe1 goes to seqeval as IOBES: seqeval's IOE1 drops `E-LOC` (Paris) after `O`, valid IOE1 for a
    one-word entity followed by a same-type one, so it reads 8 of the 9 gold entities."""
    _, gold, _ = read_fixture("ioe1")
    assert seqeval_spans(gold[1], IOE1) == {("LOC", 2, 3), ("LOC", 3, 4), ("ORG", 6, 8)}
    assert ts.entity_spans(gold[1], "ioe1") == GOLD_SPANS[1]
    assert sb.seqeval_mode("ioe1")["scheme"] is IOBES
    converted, kwargs = sb.seqeval_inputs(gold, "ioe1")
    assert f1_score(converted, converted, **kwargs) == 1.0
    assert sum(len(seqeval_spans(c, IOBES)) for c in converted) == 9


def test_seqeval_iob1_class_drops_entity_before_invalid_b():
    """Why iob1 goes to seqeval as IOBES: seqeval's IOB1 drops the well-formed X[1,2) when an invalid `B-Y`
    follows it (a prediction can do that); the strict reading keeps it and flags the B-Y."""
    tags = ["I-X", "B-X", "B-Y"]
    assert seqeval_spans(tags, IOB1) == {("X", 0, 1)}
    assert ts.entity_spans(tags, "iob1") == {("X", 0, 1), ("X", 1, 2)}
    assert ts.validate([tags], "iob1")["counts"] == {"b_not_after_same_type": 1}
    assert sb.seqeval_mode("iob1")["scheme"] is IOBES


def test_plain_matches_seqeval_default_mode_on_io_tags():
    """plain = IO runs, exactly what the current unfreeze code gets from seqeval's default mode on `I-<tag>`."""
    _, gold, pred = read_fixture("plain")

    def io(sents):
        return [["O" if t == "O" else f"I-{t}" for t in s] for s in sents]

    assert f1_score(io(gold), io(pred)) == pytest.approx(3 / 7)
    for s in gold + pred:
        assert ts.entity_spans(s, "plain") == {(t, a, b + 1) for t, a, b in get_entities(io([s])[0])}


# ---------------------------------------------------------------------------------------------------------
# Detection


@pytest.mark.parametrize("scheme", ts.SCHEMES)
def test_detects_each_fixture_scheme(scheme):
    """Gold alone and gold + (slightly invalid) predictions are both recognised as the file's scheme."""
    _, gold, pred = read_fixture(scheme)
    assert ts.detect_scheme(gold) == scheme
    assert ts.detect_scheme(gold + pred) == scheme


@pytest.mark.parametrize("tags, expected", [
    ([["B-PER", "I-PER", "O", "B-LOC"]], "iob2"),             # every entity starts with B-
    ([["B-PER", "O", "B-LOC", "B-LOC"]], "iob2"),             # only B-: single-token entities
    ([["I-PER", "I-PER", "O", "I-LOC"]], "iob1"),             # only I- (IO data): read as runs
    ([["I-PER", "B-PER", "O", "I-LOC"]], "iob1"),             # B- only between same-type neighbours
    ([["B_PER", "I_PER", "O"]], "iob2"),                      # underscore separator
    ([["S-PER", "O", "S-LOC"]], "iobes"),                     # only S-
    ([["B-PER", "E-PER", "O"]], "iobes"),                     # B-/E- without I-/M-: iobes (bmes reads it alike)
    ([["B-PER", "I-PER", "E-PER", "S-LOC"]], "iobes"),
    ([["B-PER", "M-PER", "E-PER", "S-LOC"]], "bmes"),
    ([["B-PER", "I-PER", "L-PER", "U-LOC"]], "bilou"),
    ([["E-PER", "O", "E-LOC"]], "ioe2"),                      # only E-: single-token entities
    ([["I-PER", "E-PER", "O", "I-LOC", "E-LOC"]], "ioe2"),    # E- ends every entity
    ([["I-PER", "E-PER", "I-PER", "O", "I-LOC"]], "ioe1"),    # E- only before a same-type entity
    ([["PER", "PER", "O", "LOC"]], "plain"),
    ([["B-PER", "LOC", "O"]], "plain"),                       # one unprefixed tag makes it plain
    ([["B"], ["I"]], "plain"),                                # typeless chunk tags are labels
    ([["O", "O"]], "plain"),                                  # no entity at all
    ([["B-PER", "I-PER", "O"], ["I-LOC", "O"]], "iob2"),      # a stray I- is a violation, not IOB1 evidence
])
def test_detect_scheme_rules(tags, expected):
    assert ts.detect_scheme(tags) == expected


def test_detect_mixed_prefixes_falls_back_to_fewest_violations():
    """B-/I-/E-/S- plus one stray M-: no scheme covers it; iobes breaks fewer rules than bmes."""
    tags = [["B-PER", "I-PER", "E-PER"], ["S-LOC", "O"], ["B-ORG", "I-ORG", "E-ORG"], ["B-PER", "M-PER", "E-PER"]]
    assert ts.detect_scheme(tags) == "iobes"
    assert ts.validate(tags, "iobes")["counts"] == {"prefix_not_in_scheme": 1, "entity_not_closed": 1,
                                                   "continues_nothing": 1}


def test_canonical_scheme_aliases_and_errors():
    assert ts.canonical_scheme("BIOES") == "iobes"
    assert ts.canonical_scheme("bio") == "iob2"
    with pytest.raises(UnfreezeError, match="bioes"):
        ts.canonical_scheme("bieo")


# ---------------------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize("scheme", ts.SCHEMES)
def test_fixture_gold_is_valid_and_each_prediction_has_its_planted_violation(scheme):
    _, gold, pred = read_fixture(scheme)
    assert ts.validate(gold, scheme)["total"] == 0
    report = ts.validate(pred, scheme)
    if scheme == "plain":
        assert report["total"] == 0
        return
    kind, position = PLANTED[scheme]
    assert report["counts"] == {kind: 1}
    assert report["examples"][kind][0]["sentence"] == 0
    assert report["examples"][kind][0]["position"] == position


@pytest.mark.parametrize("scheme, sentences, counts", [
    ("iob2", [["O", "I-X", "B-Y", "I-X"], ["I-X"]], {"continues_nothing": 2, "continues_other_type": 1}),
    ("iob2", [["B-X", "S-X"]], {"prefix_not_in_scheme": 1}),
    ("iob1", [["B-X"], ["I-X", "B-X", "B-Y"]], {"b_not_after_same_type": 2}),
    ("iob1", [["B-X", "B-X"], ["O", "B-X", "I-X"]], {"b_not_after_same_type": 2}),  # 2nd B-X follows an X
    ("ioe1", [["I-X", "E-X", "O"], ["E-X", "E-X", "I-X"]], {"e_not_before_same_type": 1}),
    ("ioe2", [["I-X", "O", "I-X", "I-Y", "E-Y"], ["I-X"]], {"entity_not_closed": 3}),
    ("iobes", [["B-X", "I-X", "O"], ["E-X"], ["B-X", "I-Y", "E-Y"], ["B-X", "S-X"], ["B-X"]],
     {"entity_not_closed": 4, "continues_nothing": 1, "continues_other_type": 1}),
    ("bilou", [["B-X", "L-X", "L-X"], ["U-X", "I-X", "L-X"]], {"continues_nothing": 2}),
    ("bmes", [["M-PER", "E-PER", "B-PER", "E-PER"], ["B-LOC", "M-LOC", "O"], ["B-LOC", "I-LOC", "E-LOC"]],
     {"continues_nothing": 2, "entity_not_closed": 2, "prefix_not_in_scheme": 1}),
])
def test_validation_counts(scheme, sentences, counts):
    assert ts.validate(sentences, scheme)["counts"] == counts


def test_validation_examples_name_sentence_position_and_context():
    report = ts.validate([["B-X", "I-X"], ["O", "I-X", "I-X"], ["I-Y"], ["I-Y"], ["I-Y"]], "iob2")
    assert report["total"] == 4
    assert report["sentences_with_violations"] == 4
    assert report["examples"]["continues_nothing"] == [
        {"sentence": 1, "position": 1, "tags": ["O", "I-X", "I-X"]},
        {"sentence": 2, "position": 0, "tags": ["<start>", "I-Y", "<end>"]},
        {"sentence": 3, "position": 0, "tags": ["<start>", "I-Y", "<end>"]},
    ]
    unclosed = ts.validate([["O", "B-X", "I-X"]], "iobes")["examples"]["entity_not_closed"][0]
    assert unclosed == {"sentence": 0, "position": 3, "tags": ["I-X", "<end>"]}


# ---------------------------------------------------------------------------------------------------------
# Conversion


@pytest.mark.parametrize("source", [s for s in ts.SCHEMES if s != "plain"])
@pytest.mark.parametrize("target", [s for s in ts.SCHEMES if s != "plain"])
def test_conversion_keeps_every_gold_span(source, target):
    _, gold, _ = read_fixture(source)
    converted = ts.convert(gold, source, target)
    assert [ts.entity_spans(t, target) for t in converted] == GOLD_SPANS
    assert ts.validate(converted, target)["total"] == 0
    if target == source:
        assert converted == gold  # valid tags come back unchanged: conversion is a bijection on valid data


def test_hand_written_files_are_conversions_of_each_other():
    """Each hand-written gold column equals the conversion of the IOB2 one — the files agree tag by tag."""
    _, iob2, _ = read_fixture("iob2")
    for scheme in ("iob1", "ioe1", "ioe2", "iobes", "bilou", "bmes"):
        assert ts.convert(iob2, "iob2", scheme) == read_fixture(scheme)[1], scheme


def test_bmes_to_iobes_maps_m_to_i():
    _, bmes, _ = read_fixture("bmes")
    mapped = [[t.replace("M-", "I-", 1) if t.startswith("M-") else t for t in s] for s in bmes]
    assert ts.to_iobes(bmes, "bmes") == mapped == read_fixture("iobes")[1]


def test_plain_cannot_separate_touching_same_type_entities():
    with pytest.raises(UnfreezeError, match="iobes"):
        ts.spans_to_tags({("LOC", 0, 1), ("LOC", 1, 2)}, 3, "plain")
    assert ts.spans_to_tags({("LOC", 0, 1), ("PER", 1, 2)}, 3, "plain") == ["LOC", "PER", "O"]


def test_conversion_drops_invalid_fragments_exactly_as_strict_reading_does():
    tags = [["O", "I-LOC", "B-LOC", "I-LOC"], ["B_PER", "I_PER"]]
    assert ts.to_iobes(tags, "iob2") == [["O", "O", "B-LOC", "E-LOC"], ["B-PER", "E-PER"]]


# The sentence shapes of the MSRA corpus (character level) hand-tagged in BIO and in BMES, including its
# chunking artefact: a 100-character cut splits a name, leaving B-PER → S-PER at the end of one sentence and
# I-PER I-PER → M-PER E-PER at the start of the next (a fragment, not an entity, in both readings).
MSRA_LIKE = [
    ("中共中央致中国致公党十一大的贺词",
     "B-ORG I-ORG I-ORG I-ORG O B-ORG I-ORG I-ORG I-ORG I-ORG I-ORG I-ORG O O O O",
     "B-ORG M-ORG M-ORG E-ORG O B-ORG M-ORG M-ORG M-ORG M-ORG M-ORG E-ORG O O O O"),
    ("江泽民在北京会见了李鹏和美国客人",
     "B-PER I-PER I-PER O B-LOC I-LOC O O O B-PER I-PER O B-LOC I-LOC O O",
     "B-PER M-PER E-PER O B-LOC E-LOC O O O B-PER E-PER O B-LOC E-LOC O O"),
    ("代表崔世昌梁", "O O B-PER I-PER I-PER B-PER", "O O B-PER M-PER E-PER S-PER"),
    ("庆庭谢后和京沪", "I-PER I-PER B-PER I-PER O B-LOC B-LOC", "M-PER E-PER B-PER E-PER O S-LOC S-LOC"),
]


def test_bio_and_bmes_versions_of_the_same_sentences_give_identical_spans():
    bio = [b.split() for _, b, _ in MSRA_LIKE]
    bmes = [m.split() for _, _, m in MSRA_LIKE]
    for (text, _, _), b, m in zip(MSRA_LIKE, bio, bmes):
        assert len(text) == len(b) == len(m)
    assert ts.detect_scheme(bio) == "iob2" and ts.detect_scheme(bmes) == "bmes"
    spans = [ts.entity_spans(b, "iob2") for b in bio]
    assert spans == [ts.entity_spans(m, "bmes") for m in bmes]
    assert sum(map(len, spans)) == 11  # 2 ORG; 2 PER 2 LOC; 2 PER (崔世昌, 梁); PER 谢后 + LOC 京 + LOC 沪 (not 庆庭)
    assert ts.to_iobes(bio[:2], "iob2") == ts.to_iobes(bmes[:2], "bmes")  # valid sentences: same tags too
    assert ts.validate(bio, "iob2")["counts"] == ts.validate(bmes, "bmes")["counts"] == {"continues_nothing": 1}
    # Read as "plain" (what unfreeze's current detector says for M- tags), B-/M-/E-PER are three labels.
    assert ts.detect_scheme(bmes) != "plain"
    assert [ts.entity_spans(m, "plain") for m in bmes] != spans
    g, kwargs = sb.seqeval_inputs(bmes, "bmes")
    assert f1_score(ts.to_iobes(bio, "iob2"), g, **kwargs) == 1.0


# ---------------------------------------------------------------------------------------------------------
# Random sequences against seqeval


def _random_spans(rng: random.Random, n: int) -> list[tuple[str, int, int]]:
    spans, i = [], 0
    while i < n:
        length = rng.randint(1, 3)
        if rng.random() < 0.5 and i + length <= n:
            spans.append((rng.choice("XY"), i, i + length))
            i += length
        else:
            i += 1
    return spans


@pytest.mark.parametrize("scheme", [s for s in ts.SCHEMES if s != "plain"])
def test_random_valid_sequences_round_trip_and_match_seqeval(scheme):
    rng = random.Random(0)
    reference = SEQEVAL_CLASS.get(scheme, IOBES)
    for _ in range(1500):
        n = rng.randint(1, 9)
        spans = set(_random_spans(rng, n))
        tags = ts.spans_to_tags(spans, n, scheme)
        assert ts.entity_spans(tags, scheme) == spans
        assert ts.validate([tags], scheme)["total"] == 0
        iobes = ts.to_iobes([tags], scheme)[0]
        assert seqeval_spans(iobes, IOBES) == spans
        if scheme != "ioe1" or not any(t.startswith("E-") and (i == 0 or tags[i - 1][2:] != t[2:])
                                       for i, t in enumerate(tags)):
            tagged = [t.replace("M-", "I-") for t in tags] if scheme == "bmes" else tags
            assert seqeval_spans(tagged, reference) == spans, tags


@pytest.mark.parametrize("scheme", ["iob2", "ioe2", "iobes", "bilou", "bmes", "iob1"])
def test_random_invalid_sequences_read_like_seqeval_strict(scheme):
    """Model predictions break schemes; for these schemes our strict reading equals seqeval's on anything
    (bmes compared as IOBES after mapping M→I token by token, the way seqeval would have to see it; iob1
    except its documented `B-X B-Y` quirk)."""
    rng = random.Random(1)
    letters = sorted(ts.ALPHABET[scheme])
    vocab = ["O"] + [f"{p}-{t}" for p in letters for t in "XY"]
    reference = SEQEVAL_CLASS.get(scheme, IOBES)
    compared = 0
    for _ in range(3000):
        tags = [rng.choice(vocab) for _ in range(rng.randint(1, 7))]
        if scheme == "iob1" and any(a[0] == b[0] == "B" and a != b for a, b in pairwise(tags)):
            continue
        compared += 1
        mapped = [t.replace("M-", "I-") for t in tags] if scheme == "bmes" else tags
        assert ts.entity_spans(tags, scheme) == seqeval_spans(mapped, reference), tags
        converted, kwargs = sb.seqeval_inputs([tags], scheme)
        assert seqeval_spans(converted[0], kwargs["scheme"]) == ts.entity_spans(tags, scheme)
    assert compared > 2000
