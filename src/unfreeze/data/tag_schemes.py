"""Entity tag schemes: detect which one a tagged corpus uses, count where it breaks that scheme, read entity
spans, and convert between schemes without changing a single span.

Why: entity-level precision/recall/F1 only mean something when spans are read with the scheme the tags were
written in. BMES (B/M/E/S, the usual Chinese NER format) read as "plain" cuts every multi-character entity
into its B-/M-/E- pieces; IOB1 read as IOB2 drops every entity that starts with I-. So the scheme is detected
from the data (or declared), violations are *counted, never repaired* in gold data (a silent repair changes
the test set every published number refers to), and metrics are computed by seqeval in strict mode on tags
in a scheme seqeval reads correctly.

Schemes (prefix letters; `O` is outside everywhere; a tag is `<prefix><sep><type>` with sep `-` or `_`):

=======  ==========================================================================================
iob1     I- starts or continues an entity; B- only starts an entity directly after one of the same type.
iob2     B- starts every entity, I- continues it (a.k.a. BIO, the CoNLL-2003 distribution format).
ioe1     I- continues or starts; E- only ends an entity directly followed by one of the same type.
ioe2     E- ends every entity, I- precedes it (single-token entity: E-).
iobes    B- begin, I- inside, E- end, S- single ("bioes" is an alias). Every entity is explicitly closed.
bilou    as iobes with L- (last) for E- and U- (unit) for S-.
bmes     as iobes with M- (middle) for I- — the Chinese NER convention (MSRA, Weibo, Resume ...).
plain    no prefixes: an entity is a maximal run of one non-`O` tag (the IO reading).
=======  ==========================================================================================

Reading is *strict* (seqeval `mode="strict"`): an entity counts only when it is well formed in its scheme.
A fragment that breaks the scheme (IOB2 `I-X` after `O`, IOBES `B-X I-X O` never closed, ...) is not an
entity, and the tokens after it are read as if it were `O`. The tests hold this to seqeval's strict classes
on hand-written files and on random tag sequences: identical for valid tags of every scheme except one seqeval
IOE1 bug, and identical on random *invalid* sequences (what predictions look like) for iob2, ioe2, iobes,
bilou, bmes (as IOBES) and iob1 except one quirk. Both seqeval problems are documented in the tests: its IOE1
drops a valid single-token entity written `E-X` after `O`/start, and its IOB1 drops a well-formed entity
followed by an invalid `B-Y`. `seqeval_inputs` therefore sends iob1, ioe1, bmes, plain and `_`-separated tags
to seqeval as IOBES (via `to_iobes`), so seqeval's numbers always equal `entity_spans`.

Spans are `(type, start, end)` with `end` exclusive (Python slices; same as `seqeval.scheme.Entity`, unlike
`seqeval.metrics.sequence_labeling.get_entities`, whose end is inclusive).
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence


from unfreeze.errors import ConfigError, DataError

SCHEMES = ("iob1", "iob2", "ioe1", "ioe2", "iobes", "bilou", "bmes", "plain")
ALIASES = {"bioes": "iobes", "bio": "iob2", "iob": "iob2", "io": "plain", "bmeso": "bmes", "bmeo": "bmes"}

#: Prefix letters each scheme allows (besides the bare `O`).
ALPHABET = {
    "iob1": frozenset("BI"), "iob2": frozenset("BI"), "ioe1": frozenset("IE"), "ioe2": frozenset("IE"),
    "iobes": frozenset("BIES"), "bilou": frozenset("BILU"), "bmes": frozenset("BMES"), "plain": frozenset(),
}
# Roles in the explicitly closed schemes: begin, inside, end, single.
_CLOSED = {"iobes": ("B", "I", "E", "S"), "bilou": ("B", "I", "L", "U"), "bmes": ("B", "M", "E", "S")}
# Order for ties in detection: the more common scheme first (two schemes tie at zero violations only when
# they read identical spans on the data, e.g. iobes/bmes on data with only B-/E-/S-).
_PREFERENCE = ("iob2", "iobes", "bmes", "bilou", "iob1", "ioe2", "ioe1")

_TAG = re.compile(r"^([BIEMSLU])[-_](.+)$")

#: Violation kinds `validate` counts (a sentence can show several at one position). A stray fragment counts
#: once, at its first token: `O I-X I-X` and `O M-X E-X` are one violation each, not two.
VIOLATIONS = {
    "prefix_not_in_scheme": "a prefix the scheme does not have (S- in IOB2, M- in IOBES) or an unprefixed tag",
    "continues_nothing": "a continuation (I-/M-/E-/L-) with no entity open: after O, at sentence start, or "
                         "after an entity already closed by E-/S-/L-/U-",
    "continues_other_type": "a continuation of type X while an entity of type Y is open (I-X after B-Y)",
    "entity_not_closed": "IOBES/BILOU/BMES/IOE2: an entity left without its E-/L- (next tag O, B-, S-, "
                         "another type, or the sentence end — then position = sentence length)",
    "b_not_after_same_type": "IOB1: B-X not directly after an X token (B- only separates same-type neighbours)",
    "e_not_before_same_type": "IOE1: E-X not directly followed by an X token (E- only separates same-type "
                              "neighbours)",
}


def canonical_scheme(scheme: str) -> str:
    """`scheme` lower-cased with aliases resolved ("bioes" → "iobes", "bio" → "iob2"); error if unknown."""
    name = ALIASES.get(scheme.lower(), scheme.lower())
    if name not in SCHEMES:
        raise ConfigError(f"data.tag_scheme: {scheme!r} is unknown; use one of {', '.join(SCHEMES)} (or bioes)")
    return name


def parse_tag(tag: str) -> tuple[str | None, str]:
    """("B", "PER") for "B-PER" or "B_PER"; ("O", "") for "O"; (None, tag) for a tag without a scheme prefix
    (including a bare "B" with no type: typeless chunk tags are read as plain labels)."""
    if tag == "O":
        return "O", ""
    m = _TAG.match(tag)
    return (m.group(1), m.group(2)) if m else (None, tag)


# ---------------------------------------------------------------------------------------------------------
# One strict reader per scheme family; spans and violations come from the same pass, so `validate` and
# `entity_spans` can never disagree about what is an entity.


def _scan(tags: Sequence[str], scheme: str) -> tuple[list[tuple[str, int, int]], list[tuple[str, int]]]:
    """(spans in order, violations as (kind, position)) of one sentence read strictly in `scheme`."""
    spans: list[tuple[str, int, int]] = []
    bad: list[tuple[str, int]] = []
    if scheme == "plain":
        run: tuple[str, int] | None = None
        for i, tag in enumerate(tags):
            if run and run[0] != tag:
                spans.append((run[0], run[1], i))
                run = None
            if tag != "O" and run is None:
                run = (tag, i)
        if run:
            spans.append((run[0], run[1], len(tags)))
        return spans, bad

    allowed = ALPHABET[scheme]
    open_: tuple[str, int] | None = None  # (type, start) of the entity being read
    pending: tuple[str, int, int] | None = None  # IOE1: entity ended by E-, valid only if same type follows
    closed = scheme in _CLOSED
    begin, _, end, single = _CLOSED.get(scheme, ("", "", "", ""))

    last_type = ""  # type of the previous token as written (valid or not); IOB1's B- rule reads it
    broken: str | None = None  # type of a stray fragment being skipped (counted once, at its first token)
    for i, tag in enumerate(tags):
        stray, broken = broken, None
        p, t = parse_tag(tag)
        if p != "O" and (p is None or p not in allowed):
            bad.append(("prefix_not_in_scheme", i))
            p, t = "O", ""
        prev_type, last_type = last_type, t
        if scheme == "ioe1" and pending is not None:
            if p in ("I", "E") and t == pending[0]:
                spans.append(pending)
            else:
                bad.append(("e_not_before_same_type", pending[2] - 1))
            pending = None
        if p == "O":
            if open_ is not None:
                if closed or scheme == "ioe2":
                    bad.append(("entity_not_closed", i))
                else:
                    spans.append((open_[0], open_[1], i))
            open_ = None
        elif scheme == "iob2":
            if p == "B":
                if open_ is not None:
                    spans.append((open_[0], open_[1], i))
                open_ = (t, i)
            elif open_ is not None and open_[0] == t:
                pass
            else:
                if open_ is not None:
                    spans.append((open_[0], open_[1], i))
                    bad.append(("continues_other_type", i))
                elif stray != t:
                    bad.append(("continues_nothing", i))
                open_, broken = None, t
        elif scheme == "iob1":
            if p == "I" and open_ is not None and open_[0] == t:
                continue
            if open_ is not None:
                spans.append((open_[0], open_[1], i))
            if p == "B" and prev_type != t:  # B- after O/start/another type (even after an invalid B-X)
                bad.append(("b_not_after_same_type", i))
                open_ = None
            else:
                open_ = (t, i)
        elif scheme in ("ioe1", "ioe2"):
            same = open_ is not None and open_[0] == t
            if open_ is not None and not same:  # another type starts: the open run ends here
                if scheme == "ioe2":
                    bad.append(("entity_not_closed", i))
                else:
                    spans.append((open_[0], open_[1], i))
                open_ = None
            if p == "I":
                if open_ is None:
                    open_ = (t, i)
            else:  # E-
                entity = (t, open_[1] if open_ is not None else i, i + 1)
                if scheme == "ioe2":
                    spans.append(entity)
                else:
                    pending = entity
                open_ = None
        else:  # iobes, bilou, bmes
            same = open_ is not None and open_[0] == t
            if p in (begin, single):
                if open_ is not None:
                    bad.append(("entity_not_closed", i))
                open_ = (t, i) if p == begin else None
                if p == single:
                    spans.append((t, i, i + 1))
            elif same:
                if p == end:
                    spans.append((t, open_[1], i + 1))  # type: ignore[index]
                    open_ = None
            else:
                if open_ is not None:
                    bad.append(("entity_not_closed", i))
                    bad.append(("continues_other_type", i))
                elif stray != t:
                    bad.append(("continues_nothing", i))
                open_ = None
                broken = t if p != end else None  # E-/L- ends the stray fragment
    n = len(tags)
    if pending is not None:
        bad.append(("e_not_before_same_type", pending[2] - 1))
    if open_ is not None:
        if closed or scheme == "ioe2":
            bad.append(("entity_not_closed", n))
        else:
            spans.append((open_[0], open_[1], n))
    return spans, bad


def entity_spans(tags: Sequence[str], scheme: str) -> set[tuple[str, int, int]]:
    """Entities of one sentence as {(type, start, end)}, `end` exclusive, read strictly in `scheme` (fragments
    that break the scheme are not entities; see the module docstring). Spans never overlap."""
    return set(_scan(list(tags), canonical_scheme(scheme))[0])


def validate(sentences: Sequence[Sequence[str]], scheme: str, examples: int = 3) -> dict:
    """Where `sentences` break `scheme`, counted per kind (keys of `VIOLATIONS`), never repaired.

    Returns {"scheme", "total", "counts": {kind: n}, "sentences_with_violations", "examples": {kind: [
    {"sentence": i, "position": j, "tags": window}]}} with up to `examples` examples per kind; `window` is the
    tags from j-1 to j+1, with "<start>" / "<end>" marking the sentence edges, so `I-PER` after `O` reads
    ["O", "I-PER", ...]. Position = len(tags) means "at the sentence end" (an entity left open)."""
    scheme = canonical_scheme(scheme)
    counts: Counter = Counter()
    shown: dict[str, list[dict]] = {}
    affected = 0
    for s, tags in enumerate(sentences):
        tags = list(tags)
        bad = _scan(tags, scheme)[1]
        affected += bool(bad)
        for kind, j in bad:
            counts[kind] += 1
            if len(shown.setdefault(kind, [])) < examples:
                padded = ["<start>", *tags, "<end>"]
                shown[kind].append({"sentence": s, "position": j, "tags": padded[j:j + 3]})
    return {"scheme": scheme, "total": int(sum(counts.values())), "counts": dict(counts),
            "sentences_with_violations": affected, "examples": shown}


# ---------------------------------------------------------------------------------------------------------
# Detection


def _prefixes(sentences: Sequence[Sequence[str]]) -> tuple[set[str], bool]:
    """(prefix letters used, whether some non-O tag has no prefix)."""
    letters: set[str] = set()
    unprefixed = False
    for tag in {t for s in sentences for t in s}:
        p, _ = parse_tag(tag)
        if p is None:
            unprefixed = True
        elif p != "O":
            letters.add(p)
    return letters, unprefixed


def _candidates(letters: set[str]) -> list[str]:
    """Schemes whose alphabet covers `letters` and whose distinguishing letter occurs (M- for bmes, L-/U- for
    bilou, S- or B-+E- for iobes, E- for ioe1/ioe2). Reading pure B-/I- data as IOBES would only report every
    entity as unclosed, so it is never a candidate; nor is IOBES for I-/E- data (that is an IOE scheme)."""
    need = {"iob1": set(), "iob2": set(), "iobes": {"E", "S"}, "bmes": {"M"}, "bilou": {"L", "U"},
            "ioe1": {"E"}, "ioe2": {"E"}}
    out = [s for s in _PREFERENCE if letters <= ALPHABET[s] and (not need[s] or letters & need[s])]
    if "iobes" in out and not letters & {"B", "S"}:  # only I-/E-: an IOE reading, not unclosed IOBES
        out.remove("iobes")
    return out


def violation_counts(sentences: Sequence[Sequence[str]], schemes: Iterable[str] = SCHEMES[:-1]) -> dict[str, int]:
    """{scheme: total violations} — the evidence `detect_scheme` decides on (useful in a log line)."""
    return {s: sum(len(_scan(list(tags), s)[1]) for tags in sentences) for s in schemes}


def detect_scheme(sentences: Sequence[Sequence[str]]) -> str:
    """The scheme the tags are written in, from the prefixes present and where they occur.

    Rules, in order:
    1. No tag other than `O`, or some non-`O` tag without a `B-/I-/E-/S-/M-/L-/U-` prefix (with `-` or `_`)
       → "plain" (runs of one tag are entities).
    2. Candidates are the schemes whose alphabet covers every prefix seen *and* that use their distinguishing
       letter: M- → bmes; L-/U- → bilou; S-, or E- with B- → iobes; E- without B-/S- → ioe1/ioe2; only
       B-/I- → iob1/iob2.
    3. Among the candidates, the one the data breaks least often (`violation_counts`) wins; ties go to the
       common scheme (iob2 > iobes > bmes > bilou > iob1 > ioe2 > ioe1). So only B-/I- with every entity
       starting with B- → iob2; I- starting entities and B- only between same-type neighbours → iob1; only
       I- tags (IO data) → iob1 (it reads I-runs exactly as IO); only B- tags → iob2 (single-token
       entities); E- ending every entity → ioe2, E- only between same-type neighbours → ioe1; B-/E-/S-
       without I-/M- → iobes (bmes reads it identically).
    4. Prefixes no single scheme covers (B- with L- and E-, M- with I-, ...) → the scheme with fewest
       violations over all prefixed schemes, so `validate` then names the stray tags.
    """
    letters, unprefixed = _prefixes(sentences)
    if unprefixed or not letters:
        return "plain"
    candidates = _candidates(letters) or list(_PREFERENCE)
    if len(candidates) == 1:
        return candidates[0]
    counts = violation_counts(sentences, candidates)
    return min(candidates, key=lambda s: (counts[s], _PREFERENCE.index(s)))


# ---------------------------------------------------------------------------------------------------------
# Conversion


def spans_to_tags(spans: Iterable[tuple[str, int, int]], length: int, scheme: str = "iobes") -> list[str]:
    """Tags of one sentence of `length` tokens in `scheme` whose strict reading is exactly `spans`.

    Spans must not overlap. For iob1/ioe1 the B-/E- marker is written only between adjacent same-type
    entities; for plain, adjacent same-type entities cannot be told apart and raise an error."""
    scheme = canonical_scheme(scheme)
    tags = ["O"] * length
    ordered = sorted(spans, key=lambda s: s[1])
    for k, (typ, start, end) in enumerate(ordered):
        if not 0 <= start < end <= length or any(t != "O" for t in tags[start:end]):
            raise DataError(f"span {(typ, start, end)} is outside 0..{length} or overlaps another span")
        n = end - start
        if scheme == "plain":
            if k and ordered[k - 1][0] == typ and ordered[k - 1][2] == start:
                raise DataError(f"spans {ordered[k - 1]} and {(typ, start, end)} touch and share a type: "
                                    "plain tags cannot separate them; convert to iobes instead")
            body = [typ] * n
        elif scheme in _CLOSED:
            b, i, e, s = _CLOSED[scheme]
            body = [f"{s}-{typ}"] if n == 1 else [f"{b}-{typ}"] + [f"{i}-{typ}"] * (n - 2) + [f"{e}-{typ}"]
        elif scheme == "iob2":
            body = [f"B-{typ}"] + [f"I-{typ}"] * (n - 1)
        elif scheme == "ioe2":
            body = [f"I-{typ}"] * (n - 1) + [f"E-{typ}"]
        elif scheme == "iob1":
            after_same = k > 0 and ordered[k - 1][0] == typ and ordered[k - 1][2] == start
            body = [f"{'B' if after_same else 'I'}-{typ}"] + [f"I-{typ}"] * (n - 1)
        else:  # ioe1
            before_same = k + 1 < len(ordered) and ordered[k + 1][0] == typ and ordered[k + 1][1] == end
            body = [f"I-{typ}"] * (n - 1) + [f"{'E' if before_same else 'I'}-{typ}"]
        tags[start:end] = body
    return tags


def convert(sentences: Sequence[Sequence[str]], source: str, target: str) -> list[list[str]]:
    """Every sentence re-tagged from `source` to `target` with identical strict entity spans.

    Lossless for tags valid in `source`. Fragments that break `source` are not entities under the strict
    reading, so they become `O` — run `validate` on the original tags first if you need to report them."""
    source, target = canonical_scheme(source), canonical_scheme(target)
    return [spans_to_tags(_scan(list(tags), source)[0], len(tags), target) for tags in sentences]


def to_iobes(sentences: Sequence[Sequence[str]], scheme: str) -> list[list[str]]:
    """`convert(sentences, scheme, "iobes")`: the canonical form (explicit begin and end, `-` separator).
    BMES maps B→B, M→I, E→E, S→S."""
    return convert(sentences, scheme, "iobes")
