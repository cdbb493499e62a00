"""Tag schemes: parsing, detection, lossless conversion (property tests) and the repair rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunecard.data.schemes import (
    REPAIR_RULE,
    SCHEMES,
    Span,
    check_prefix,
    convert,
    detect_scheme,
    from_iob2,
    normalize_scheme,
    parse_tag,
    spans_to_tags,
    tags_to_spans,
    to_iob2,
)
from tunecard.errors import DataError

# Entity types with '-', spaces and non-ASCII characters, as real corpora have (B-creative-work, B-人名).
entity_types = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6
) | st.sampled_from(["PER", "creative-work", "job title", "人名", "B-I", "O"])

PREFIXES = {"IOB1": "BI", "IOB2": "BI", "IOBES": "BIES", "BMES": "BMES", "BILOU": "BILU"}


@st.composite
def span_sets(draw, max_tokens: int = 20) -> tuple[int, list[Span]]:
    """A length and valid, sorted, non-overlapping spans (adjacent same-type spans included)."""
    length = draw(st.integers(0, max_tokens))
    label_pool = draw(st.lists(entity_types, min_size=1, max_size=3))
    spans, position = [], 0
    while position < length:
        if draw(st.booleans()):
            size = draw(st.integers(1, min(4, length - position)))
            spans.append(Span(position, position + size, draw(st.sampled_from(label_pool))))
            position += size
        else:
            position += 1
    return length, spans


@st.composite
def any_tags(draw, scheme: str) -> list[str]:
    """Arbitrary (often invalid) tag sequences using the prefixes of ``scheme``."""
    labels = st.sampled_from(["PER", "LOC", "creative-work"])
    tag = st.one_of(st.just("O"), st.builds(lambda p, t: f"{p}-{t}", st.sampled_from(PREFIXES[scheme]), labels))
    return draw(st.lists(tag, max_size=15))


@pytest.mark.parametrize("scheme", SCHEMES)
@given(data=span_sets())
def test_spans_to_tags_to_spans_is_identity(scheme, data):
    length, spans = data
    tags = spans_to_tags(spans, length, scheme)
    assert len(tags) == length
    assert tags_to_spans(tags, scheme) == spans


@pytest.mark.parametrize("scheme", SCHEMES)
@given(data=span_sets())
def test_scheme_to_iob2_and_back_is_identity(scheme, data):
    length, spans = data
    tags = spans_to_tags(spans, length, scheme)
    iob2, repaired = to_iob2(tags, scheme)
    assert repaired == 0
    assert iob2 == spans_to_tags(spans, length, "IOB2")
    assert from_iob2(iob2, scheme) == tags


@pytest.mark.parametrize("scheme", SCHEMES)
@given(data=span_sets())
def test_detected_scheme_decodes_the_same_spans(scheme, data):
    length, spans = data
    tags = spans_to_tags(spans, length, scheme)
    assert tags_to_spans(tags, detect_scheme([tags])) == spans


@pytest.mark.parametrize("source", SCHEMES)
@pytest.mark.parametrize("target", SCHEMES)
@given(data=span_sets(max_tokens=10))
@settings(max_examples=30)
def test_convert_between_any_two_schemes(source, target, data):
    length, spans = data
    tags = spans_to_tags(spans, length, source)
    assert convert(tags, source, target) == spans_to_tags(spans, length, target)


@pytest.mark.parametrize("scheme", SCHEMES)
@given(data=st.data())
def test_repair_gives_valid_iob2_and_counts_changed_tags(scheme, data):
    tags = data.draw(any_tags(scheme))
    iob2, repaired = to_iob2(tags, scheme)
    assert to_iob2(iob2, "IOB2") == (iob2, 0)  # the output is always valid
    valid = from_iob2(iob2, scheme)
    assert repaired == sum(a != b for a, b in zip(tags, valid))
    assert (repaired == 0) == (valid == tags)


@pytest.mark.parametrize(
    ("scheme", "tags", "expected", "repaired"),
    [
        ("IOB2", ["O", "I-PER", "I-PER"], ["O", "B-PER", "I-PER"], 1),  # I-X after O
        ("IOB2", ["I-PER"], ["B-PER"], 1),  # I-X at the start
        ("IOB2", ["B-PER", "I-LOC", "I-LOC"], ["B-PER", "B-LOC", "I-LOC"], 1),  # I-X after B-Y
        ("IOB2", ["B-PER", "I-PER", "I-LOC"], ["B-PER", "I-PER", "B-LOC"], 1),  # I-X after I-Y
        ("IOBES", ["O", "E-PER"], ["O", "B-PER"], 1),  # E-X without start
        ("IOBES", ["B-PER", "O"], ["B-PER", "O"], 1),  # entity without its end: B-PER should be S-PER
        ("IOBES", ["B-PER", "I-PER", "E-PER", "I-PER"], ["B-PER", "I-PER", "I-PER", "B-PER"], 1),
        ("BMES", ["M-LOC", "E-LOC"], ["B-LOC", "I-LOC"], 1),
        ("BMES", ["B-LOC", "M-LOC", "E-LOC", "S-PER"], ["B-LOC", "I-LOC", "I-LOC", "B-PER"], 0),
        ("BILOU", ["L-ORG", "U-ORG"], ["B-ORG", "B-ORG"], 1),
        ("IOB1", ["I-PER", "I-PER", "B-PER", "O", "I-LOC"], ["B-PER", "I-PER", "B-PER", "O", "B-LOC"], 0),
        ("IOB1", ["O", "B-PER"], ["O", "B-PER"], 1),  # IOB1 writes B only after the same type
    ],
)
def test_repair_examples(scheme, tags, expected, repaired):
    assert to_iob2(tags, scheme) == (expected, repaired)


def test_repair_rule_is_the_documented_conlleval_rule():
    assert "conlleval" in REPAIR_RULE
    assert "starts a new entity of its own type" in REPAIR_RULE


@pytest.mark.parametrize(
    ("tag", "parsed"),
    [
        ("O", ("O", None)),
        ("B-creative-work", ("B", "creative-work")),
        ("I-job title", ("I", "job title")),
        ("S-人名", ("S", "人名")),
        ("B--", ("B", "-")),
    ],
)
def test_parse_tag(tag, parsed):
    assert parse_tag(tag) == parsed


@pytest.mark.parametrize("tag", ["X-PER", "PER", "B-", "B", "", "o", "b-PER", 3, None])
def test_unknown_prefix_is_an_error_naming_the_tag(tag):
    with pytest.raises(DataError) as caught:
        parse_tag(tag, path="train.txt", line=7)
    assert caught.value.code == "E105"
    assert repr(tag) in str(caught.value)
    assert "train.txt:7" in str(caught.value)


def test_prefix_outside_the_scheme_is_an_error():
    with pytest.raises(DataError) as caught:
        check_prefix("E-PER", "IOB2")
    assert caught.value.code == "E105"
    with pytest.raises(DataError):
        tags_to_spans(["B-PER", "M-PER"], "IOBES")


@pytest.mark.parametrize(
    ("sequences", "scheme"),
    [
        ([["B-PER", "I-PER", "O"], ["O", "B-LOC"]], "IOB2"),
        ([["I-PER", "I-PER", "O"], ["I-PER", "B-PER"]], "IOB1"),
        ([["O", "O"]], "IOB2"),
        ([], "IOB2"),
        ([["B-PER", "E-PER", "S-LOC"]], "IOBES"),
        ([["B-PER", "I-PER", "E-PER"]], "IOBES"),
        ([["B-NAME", "M-NAME", "E-NAME"]], "BMES"),
        ([["U-PER", "O"]], "BILOU"),
        ([["I-PER", "O", "B-PER"]], "IOB2"),  # B after O never happens in IOB1: IOB2 with a repair
    ],
)
def test_detect_scheme(sequences, scheme):
    assert detect_scheme(sequences) == scheme


@pytest.mark.parametrize(("name", "canonical"), [("bio", "IOB2"), ("BIOES", "IOBES"), ("iob1", "IOB1"),
                                                 (" bmes ", "BMES"), ("BILOU", "BILOU")])
def test_scheme_names_and_aliases(name, canonical):
    assert normalize_scheme(name) == canonical


def test_unknown_scheme_name():
    with pytest.raises(DataError) as caught:
        normalize_scheme("IO")
    assert caught.value.code == "E116"


def test_spans_to_tags_rejects_overlaps():
    with pytest.raises(ValueError):
        spans_to_tags([Span(0, 2, "A"), Span(1, 3, "B")], 3, "IOB2")


def test_a_huge_bad_tag_is_shortened_in_the_message():
    from tunecard.data.schemes import check_prefix, parse_tag
    from tunecard.errors import DataError

    huge = "X-" + "y" * 1_000_000
    for call in (lambda: parse_tag(huge[2:]), lambda: check_prefix("E-" + huge, "IOB2")):
        with pytest.raises(DataError) as caught:
            call()
        assert len(str(caught.value)) < 500
        assert "characters)" in str(caught.value)
