"""Tag schemes for token classification: parse tags, detect the scheme, convert to and from spans.

Supported schemes (prefix letters, then ``-`` and the entity type; ``O`` is outside):

* ``IOB1``  -- ``I`` for every entity token; ``B`` only on the first token of an entity that directly
  follows an entity of the same type.
* ``IOB2``  -- (BIO) ``B`` on the first token of every entity, ``I`` on the others.
* ``IOBES`` -- (BIOES) ``S`` single-token entity, else ``B`` first, ``I`` middle, ``E`` last.
* ``BMES``  -- as IOBES with ``M`` for middle tokens (Chinese word/character-level corpora).
* ``BILOU`` -- as IOBES with ``L`` (last) and ``U`` (unit).

Every conversion goes through spans, so it is lossless for valid sequences: spans -> tags in scheme S ->
spans gives the same spans, and S -> IOB2 -> S gives the same tags. Invalid sequences are repaired with the
single rule :data:`REPAIR_RULE`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple

from tunecard.errors import DataError

SCHEMES: tuple[str, ...] = ("IOB1", "IOB2", "IOBES", "BMES", "BILOU")

SCHEME_ALIASES: dict[str, str] = {"BIO": "IOB2", "IOB": "IOB2", "BIOES": "IOBES", "BILOU": "BILOU"}

REPAIR_RULE = (
    "conlleval rule: a tag that cannot continue the current entity (I-X after O or after an entity of "
    "another type, E-X/M-X/L-X without a start, ...) starts a new entity of its own type X; an entity "
    "that stops without its end tag (IOBES/BMES/BILOU) ends where it stops. The repaired count is the "
    "number of tags that differ from the valid sequence of the same scheme with the same entities."
)

REPAIR_RULE_SHORT = "a tag that cannot continue the current entity starts a new entity of its own type"

OUTSIDE = "O"

# Role of each prefix letter per scheme: "begin" opens an entity, "inside" continues it, "end" continues
# and closes it, "single" is a one-token entity.
_ROLES: dict[str, dict[str, str]] = {
    "IOB1": {"B": "begin", "I": "inside"},
    "IOB2": {"B": "begin", "I": "inside"},
    "IOBES": {"B": "begin", "I": "inside", "E": "end", "S": "single"},
    "BMES": {"B": "begin", "M": "inside", "E": "end", "S": "single"},
    "BILOU": {"B": "begin", "I": "inside", "L": "end", "U": "single"},
}
_ALL_PREFIXES = frozenset(p for roles in _ROLES.values() for p in roles)
_TAG_FIX = "Tags must be 'O' or a prefix (B, I, E, S, M, L, U) then '-' then the type, e.g. B-PER."


class Span(NamedTuple):
    """An entity over token positions ``start`` (inclusive) to ``end`` (exclusive)."""

    start: int
    end: int
    label: str


def normalize_scheme(name: str) -> str:
    """Return the canonical scheme name for ``name`` (case-insensitive, aliases BIO and BIOES accepted).

    Args:
        name: a scheme name such as ``"bio"``, ``"IOB2"`` or ``"BIOES"``.

    Raises:
        DataError: E116 when the name is not a known scheme.
    """
    upper = name.strip().upper()
    upper = SCHEME_ALIASES.get(upper, upper)
    if upper not in SCHEMES:
        raise DataError(
            "E116",
            f"unknown tag scheme {name!r}",
            fix=f"use one of {', '.join(SCHEMES)} (BIO and BIOES are accepted as aliases).",
        )
    return upper


MESSAGE_TAG_CHARS = 60  # a malformed "tag" can be a whole line or a 1 MB field: messages show its start


def _shown(tag: object) -> str:
    text = repr(tag)
    return text if len(text) <= MESSAGE_TAG_CHARS else f"{text[:MESSAGE_TAG_CHARS]}... ({len(text)} characters)"


def parse_tag(tag: object, *, path: str | None = None, line: int | None = None) -> tuple[str, str | None]:
    """Split a tag into ``(prefix, entity_type)``; ``"O"`` gives ``("O", None)``.

    Only the first ``-`` separates the prefix, so types may contain ``-``, spaces or any character
    (``B-creative-work`` -> ``("B", "creative-work")``).

    Args:
        tag: the tag string.
        path: file to name in the error, if any.
        line: line to name in the error, if any.

    Raises:
        DataError: E105 when the tag is not a string, has an unknown prefix or an empty type.
    """
    parsed = _split_tag(tag) if isinstance(tag, str) else None
    if parsed is not None:
        return parsed
    raise DataError("E105", f"{_shown(tag)} is not a tag (unknown prefix or empty type)", path=path, line=line, fix=_TAG_FIX)


def tag_shape_hint(tag: str) -> str | None:
    """What is wrong with a string that is almost a tag, as a sentence for an error's fix; None when nothing fits.

    ``b-per`` (prefix in lower case), ``B_PER`` / ``B:PER`` / ``B.PER`` (another separator), ``PER-B`` (prefix
    last), ``o`` / ``0`` for outside, an integer id. The tag is never rewritten: only the message says how.
    """
    tag = tag.strip()
    if tag in ("o", "0"):
        hint = f"'{OUTSIDE}' (capital letter O) is the outside tag, not {tag!r}"
        return hint + ("; if the column holds integer tag ids, they need their names" if tag == "0" else "")
    if tag.lstrip("-").isdigit():
        return ("integer tag ids need their names (write B-PER, O, ...; or use a datasets folder with a ClassLabel), "
                "unless the tag is in another column (--tag-column)")
    match = re.fullmatch(r"([A-Za-z])[-_:.](.+)", tag)
    if match and match.group(1).upper() in _ALL_PREFIXES and _split_tag(tag) is None:
        prefix, label = match.groups()
        return (f"tags are written prefix, '-', type with an upper-case prefix: {prefix.upper()}-{label} "
                f"for {tag!r}")
    match = re.fullmatch(r"(.+)[-_]([A-Za-z])", tag)
    if match and match.group(2).upper() in _ALL_PREFIXES:
        label, prefix = match.groups()
        return f"the prefix comes first: {prefix.upper()}-{label} for {tag!r}"
    return None


@lru_cache(maxsize=8192)  # corpora use few distinct tags; this keeps long files fast
def _split_tag(tag: str) -> tuple[str, str | None] | None:
    if tag == OUTSIDE:
        return OUTSIDE, None
    prefix, sep, label = tag.partition("-")
    if sep and prefix in _ALL_PREFIXES and label:
        return prefix, label
    return None


def check_prefix(tag: str, scheme: str, *, path: str | None = None, line: int | None = None) -> None:
    """Raise E105 if ``tag`` is not a tag or uses a prefix that ``scheme`` does not have.

    Args:
        tag: the tag string.
        scheme: a canonical scheme name.
        path: file to name in the error, if any.
        line: line to name in the error, if any.
    """
    prefix, _ = parse_tag(tag, path=path, line=line)
    if prefix != OUTSIDE and prefix not in _ROLES[scheme]:
        allowed = ", ".join(sorted(_ROLES[scheme]))
        raise DataError(
            "E105",
            f"tag {_shown(tag)} has prefix {prefix!r}, which scheme {scheme} does not use (it uses {allowed} and O)",
            path=path,
            line=line,
            fix="pass the right scheme (--scheme) or leave it out to detect it from the tags.",
        )


def tags_to_spans(tags: Sequence[str], scheme: str) -> list[Span]:
    """Decode a tag sequence into entity spans, repairing invalid tags with :data:`REPAIR_RULE`.

    Args:
        tags: one tag per token.
        scheme: one of :data:`SCHEMES` (aliases accepted).

    Raises:
        DataError: E105 for a tag with an unknown prefix or one the scheme does not use.
    """
    scheme = normalize_scheme(scheme)
    roles = _ROLES[scheme]
    spans: list[Span] = []
    open_start: int | None = None  # start of the entity that the next tag may continue
    open_label: str | None = None
    for i, tag in enumerate(tags):
        check_prefix(tag, scheme)
        prefix, label = parse_tag(tag)
        if prefix == OUTSIDE:
            if open_start is not None:
                spans.append(Span(open_start, i, open_label))
            open_start = open_label = None
            continue
        role = roles[prefix]
        continues = open_start is not None and open_label == label and role in ("inside", "end")
        if scheme == "IOB1" and role == "begin":
            continues = False  # in IOB1 a B always opens a new entity (its only use is after the same type)
        if not continues:  # begin, single, or an inside/end tag that starts a new entity (the repair rule)
            if open_start is not None:
                spans.append(Span(open_start, i, open_label))
            open_start, open_label = i, label
        if role in ("end", "single"):
            spans.append(Span(open_start, i + 1, label))
            open_start = open_label = None
    if open_start is not None:
        spans.append(Span(open_start, len(tags), open_label))
    return spans


def spans_to_tags(spans: Iterable[Span | tuple[int, int, str]], length: int, scheme: str) -> list[str]:
    """Encode non-overlapping spans as tags in ``scheme``.

    Args:
        spans: ``(start, end, label)`` over token positions, end exclusive.
        length: number of tokens.
        scheme: one of :data:`SCHEMES` (aliases accepted).

    Raises:
        ValueError: spans overlap, are empty or fall outside ``length`` (a programming error: readers
            check user spans before calling this).
    """
    scheme = normalize_scheme(scheme)
    tags = [OUTSIDE] * length
    previous_end, previous_label = -1, None
    for start, end, label in sorted(spans):
        if not 0 <= start < end <= length or start < previous_end:
            raise ValueError(f"invalid or overlapping span {(start, end, label)} for {length} tokens")
        for i in range(start, end):
            adjacent_same = start == previous_end and label == previous_label
            tags[i] = _tag_for(scheme, i - start, end - start, label, adjacent_same=adjacent_same)
        previous_end, previous_label = end, label
    return tags


def _tag_for(scheme: str, position: int, size: int, label: str, *, adjacent_same: bool) -> str:
    """Tag of the token at ``position`` inside an entity of ``size`` tokens."""
    if scheme == "IOB1":
        prefix = "B" if position == 0 and adjacent_same else "I"
    elif scheme == "IOB2":
        prefix = "B" if position == 0 else "I"
    else:
        begin, inside, end, single = {"IOBES": "BIES", "BMES": "BMES", "BILOU": "BILU"}[scheme]
        if size == 1:
            prefix = single
        elif position == 0:
            prefix = begin
        elif position == size - 1:
            prefix = end
        else:
            prefix = inside
    return f"{prefix}-{label}"


def to_iob2(tags: Sequence[str], scheme: str) -> tuple[list[str], int]:
    """Convert tags from ``scheme`` to IOB2, repairing invalid sequences.

    Args:
        tags: one tag per token, in ``scheme``.
        scheme: one of :data:`SCHEMES` (aliases accepted).

    Returns:
        ``(tags_iob2, n_repaired)`` where ``n_repaired`` is the number of input tags that differ from the
        valid ``scheme`` sequence with the same entities (0 for a valid sequence).
    """
    spans = tags_to_spans(tags, scheme)
    valid = spans_to_tags(spans, len(tags), scheme)
    repaired = sum(1 for given, fixed in zip(tags, valid) if given != fixed)
    return spans_to_tags(spans, len(tags), "IOB2"), repaired


def from_iob2(tags: Sequence[str], scheme: str) -> list[str]:
    """Convert IOB2 tags to ``scheme`` (invalid IOB2 is repaired first with :data:`REPAIR_RULE`).

    Args:
        tags: one IOB2 tag per token.
        scheme: the target scheme (aliases accepted).
    """
    return spans_to_tags(tags_to_spans(tags, "IOB2"), len(tags), scheme)


def convert(tags: Sequence[str], source: str, target: str) -> list[str]:
    """Convert tags between any two schemes.

    Args:
        tags: one tag per token in ``source``.
        source: the scheme of ``tags``.
        target: the scheme to produce.
    """
    return spans_to_tags(tags_to_spans(tags, source), len(tags), target)


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of a corpus from its tags.

    Rules, in order: an ``M-`` prefix means BMES; ``L-`` or ``U-`` means BILOU; ``E-`` or ``S-`` means
    IOBES; otherwise (B/I only) IOB1 when some entity starts with ``I-`` and every ``B-`` directly follows
    the same type, else IOB2. A corpus with no entities is IOB2.

    Args:
        tag_sequences: the tag sequences of a corpus (one per example).

    Raises:
        DataError: E105 for a string that is not a tag.
    """
    detector = SchemeDetector()
    for tags in tag_sequences:
        detector.add(tags)
    return detector.scheme


class SchemeDetector:
    """:func:`detect_scheme` one example at a time, so a file can be streamed through it.

    Args:
        lenient: skip strings that are not tags instead of raising (the caller reports them itself).
    """

    def __init__(self, lenient: bool = False) -> None:
        self.lenient = lenient
        self.prefixes: set[str] = set()
        self.i_starts_entity = False  # an I-X not preceded by X: legal only in IOB1
        self.b_after_other = False  # a B-X not preceded by X: never produced by IOB1

    def add(self, tags: Sequence[str]) -> None:
        previous_label = None
        for tag in tags:
            if self.lenient:
                try:
                    prefix, label = parse_tag(tag)
                except DataError:
                    previous_label = None
                    continue
            else:
                prefix, label = parse_tag(tag)
            self.prefixes.add(prefix)
            if prefix == "I" and previous_label != label:
                self.i_starts_entity = True
            elif prefix == "B" and previous_label != label:
                self.b_after_other = True
            previous_label = label

    @property
    def scheme(self) -> str:
        if "M" in self.prefixes:
            return "BMES"
        if self.prefixes & {"L", "U"}:
            return "BILOU"
        if self.prefixes & {"E", "S"}:
            return "IOBES"
        if self.i_starts_entity and not self.b_after_other:
            return "IOB1"
        return "IOB2"
