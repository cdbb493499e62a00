"""JSON Lines for token classification.

* token JSONL: ``{"tokens": [...], "tags": [...]}`` (``ner_tags`` accepted for ``tags``), tags in any scheme;
* span JSONL: ``{"text": "...", "spans": [{"start": 0, "end": 5, "label": "PER"}]}`` with character offsets
  (end exclusive). The text is split into words without looking at the spans: on whitespace, with every
  punctuation character and every CJK character a word of its own (:func:`word_offsets`). Evaluation files
  keep those words, so a span that starts or ends inside a word can only be missed (the number is reported);
  a training read (``split_at_spans``) cuts a word where a span starts or ends inside it, so no span is lost
  (the number of cut words is reported). Tags are produced in IOB2, and the gold spans are kept as character
  offsets for scoring. Overlapping spans are an error unless ``overlapping_spans`` is ``longest`` or ``first``.

A file holding one JSON array of such objects is read too (line numbers are where each object starts). JSON is
read as the standard says (commas between records, one closing ``]``, nothing after it); records nested more
than :data:`MAX_DEPTH` levels and lone UTF-16 surrogates (``"\\ud800"``, not a character) are errors.
"""

from __future__ import annotations

import bisect
import json
import re
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from tunecard.data.conll import TagCheck
from tunecard.data.example import TOKEN_TASK, Corpus, CorpusStream, ReadOptions, TokenExample, look_alike_warnings
from tunecard.data.textfile import TextFile, preview, read_text_file
from tunecard.errors import DataError

TAG_KEYS = ("tags", "ner_tags")
DOCUMENT_KEYS = ("doc_id", "document_id")  # a record's document (NER with context: document)
OVERLAPPING_SPANS = ("error", "longest", "first")
MAX_DEPTH = 100  # JSON nesting levels read; data records have a handful
# Code point ranges whose characters are one token each (BERT's CJK ideographs, plus CJK punctuation,
# kana and full-width forms, which are written without spaces too).
_CJK_RANGES = (
    (0x3000, 0x303F), (0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
    (0xFF00, 0xFFEF), (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF), (0x2F800, 0x2FA1F), (0x30000, 0x323AF),
)

_CJK_CLASS = "".join(f"{chr(low)}-{chr(high)}" for low, high in _CJK_RANGES)
# One CJK character (not the ideographic space), or a run of other non-space characters.
_WORD = re.compile(f"(?!\\s)[{_CJK_CLASS}]|[^\\s{_CJK_CLASS}]+")
_JSON_SPACE = " \t\r\n"
_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_JSONL_FIX = "write one JSON object per line (JSON Lines)."
_ARRAY_FIX = "fix the JSON, or write one JSON object per line (JSON Lines)."


def iter_json_records(text_file: TextFile) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, object)`` for every record of a JSONL file (blank lines skipped) or JSON array.

    Args:
        text_file: the decoded file.

    Raises:
        DataError: E111 for a line that is not JSON or not an object, JSON nested more than MAX_DEPTH levels,
            a lone surrogate, and an array without its ``]``, with a missing or extra comma, or with anything
            after its ``]``.
    """
    lines = text_file.iter_lines()
    number = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.lstrip(_JSON_SPACE).startswith("["):
            yield from _iter_json_array(text_file.path, number, line, lines)
            return
        yield number, _record(text_file.path, number, line)
        break
    for number, line in enumerate(lines, start=number + 1):
        if line.strip():
            yield number, _record(text_file.path, number, line)


def _record(path: str, number: int, line: str) -> dict:
    _check_depth(path, number, line)
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError("E111", f"not valid JSON ({error.msg} at character {error.colno})", path=path,
                        line=number, fix=_JSONL_FIX) from None
    except RecursionError:
        raise _too_deep(path, number) from None
    return _checked_object(record, path, number, line)


def _checked_object(record: object, path: str, line: int, raw: str) -> dict:
    if not isinstance(record, dict):
        raise DataError("E111", f"expected a JSON object, found {type(record).__name__}", path=path, line=line,
                        fix='write objects such as {"tokens": [...], "tags": [...]}.')
    if _SURROGATE_ESCAPE.search(raw):
        bad = _lone_surrogate(record)
        if bad is not None:
            raise DataError("E111", f"{preview(bad)} holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without "
                            "its pair), which is not a character", path=path, line=line,
                            fix="write the character itself, or both halves of its surrogate pair (\\ud83d\\ude00 "
                            "for U+1F600).")
    return record


def _lone_surrogate(value: object) -> str | None:
    """The first string (key or value) holding a lone surrogate, walked without recursion."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def _check_depth(path: str, number: int, text: str) -> None:
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise _too_deep(path, number + text.count("\n", 0, match.start()))


def _too_deep(path: str, line: int) -> DataError:
    return DataError("E111", f"JSON nested more than {MAX_DEPTH} levels deep", path=path, line=line,
                     fix="write each record as a flat object of strings and lists, such as "
                     '{"tokens": [...], "tags": [...]}.')


def _iter_json_array(path: str, number: int, line: str, lines: Iterator[str]) -> Iterator[tuple[int, dict]]:
    """The records of a file holding one JSON array, read record by record: a record may span lines, and only
    the lines of the record being read are held. ``number`` is always the line of ``rest``'s first character."""
    rest = line.lstrip(_JSON_SPACE)[1:]  # after the [
    opened = number

    def next_content() -> str | None:
        """Skip JSON whitespace, across lines: the rest from its next character, or None at the end."""
        nonlocal rest, number
        while True:
            stripped = rest.lstrip(_JSON_SPACE)
            number += rest.count("\n", 0, len(rest) - len(stripped))
            rest = stripped
            if rest:
                return rest
            try:
                rest = next(lines)
            except StopIteration:
                return None
            number += 1

    expect = "first"  # a record or ]; after a record: , or ]; after a comma: a record
    while True:
        content = next_content()
        if content is None:
            raise DataError("E111", f"the JSON array opened on line {opened} is never closed: the file ends "
                            "before its ]", path=path, line=number, fix="end the array with ] after its last record.")
        char = content[0]
        if expect == "separator" and char not in ",]":
            raise DataError("E111", f"expected , or ] after a record of the JSON array, found {preview(char)}",
                            path=path, line=number, fix="separate the records with commas.")
        if char == ",":
            if expect != "separator":
                raise DataError("E111", "a comma where a record should be in the JSON array", path=path,
                                line=number, fix="remove the extra comma.")
            rest, expect = content[1:], "record"
            continue
        if char == "]":
            if expect == "record":
                raise DataError("E111", "a comma before the ] of the JSON array (JSON allows none)", path=path,
                                line=number, fix="remove the comma after the last record.")
            rest = content[1:]
            break
        start, parts = number, [content]
        depth = _balance(content)
        while depth > 0:  # the record goes on over the next lines (JSON strings never span lines)
            try:
                parts.append(next(lines))
            except StopIteration:
                break
            depth += _balance(parts[-1])
        buffer = "\n".join(parts)
        _check_depth(path, start, buffer)
        try:
            record, end = json.JSONDecoder().raw_decode(buffer)
        except json.JSONDecodeError as error:
            raise DataError("E111", f"not valid JSON ({error.msg})", path=path, line=start + error.lineno - 1,
                            fix=_ARRAY_FIX) from None
        except RecursionError:
            raise _too_deep(path, start) from None
        number = start + buffer.count("\n", 0, end)
        rest = buffer[end:]
        yield start, _checked_object(record, path, start, buffer[:end])
        expect = "separator"
    if next_content() is not None:
        raise DataError("E111", f"content after the closing ] of the JSON array ({preview(rest[:40])})",
                        path=path, line=number, fix="a JSON file holds one array: put every record inside its "
                        "[ ], or write one JSON object per line (JSON Lines) without [ ].")


def _balance(text: str) -> int:
    """Opened minus closed brackets outside strings (a record is complete when it reaches 0)."""
    if "[" not in text and "{" not in text:
        return 0
    text = _STRING.sub('""', text)
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")


# ---------------------------------------------------------------- token JSONL


def read_token_jsonl(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read ``{"tokens", "tags"|"ner_tags"}`` JSON Lines into a token-classification corpus (IOB2 tags).

    Args:
        path: the file.
        options: encoding and scheme; ``None`` fields are detected.

    Raises:
        DataError: E111 bad JSON or missing keys, E109 tokens and tags differ in length, E105 bad tag.
    """
    options = options or ReadOptions()
    return open_token_jsonl(read_text_file(path, options.encoding), options).materialize()


def open_token_jsonl(text_file: TextFile, options: ReadOptions | None = None) -> CorpusStream:
    """Check a token JSONL file whole and return its examples as a :class:`CorpusStream`."""
    options = options or ReadOptions()
    check = TagCheck(text_file.path, options)
    size = 0
    for example in _token_examples(text_file):
        check.add(example)
        size += 1
    if not size:
        raise DataError("E103", "empty split: no JSON records", path=text_file.path, fix="point to the right file.")
    scheme = check.finish()
    warnings = [*text_file.warnings, *check.warnings()]
    return CorpusStream(path=text_file.path, task=TOKEN_TASK, format="jsonl", size=size,
                        labels_found=check.entity_types, scheme=scheme, warnings=warnings,
                        examples_of=lambda stream: check.converted(_token_examples(text_file), stream))


class _Documents:
    """The documents of JSONL records: a `doc_id` (or `document_id`) string or integer names each record's
    document; a document's records are consecutive, and each document gets its index in the file as
    `TokenExample.doc_id` (counted from 0, as CoNLL's -DOCSTART- blocks are). A record without one (or with null)
    is in no document."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.first_line: dict = {}  # id -> line of its first record
        self.current = None  # the id of the previous record, while its document goes on
        self.count = 0

    def of(self, record: dict, line: int) -> int | None:
        key = next((key for key in DOCUMENT_KEYS if key in record), None)
        value = record[key] if key is not None else None
        if value is None:
            self.current = None
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise DataError("E111", f"'{key}' must be a string or an integer, not {preview(value)}", path=self.path,
                            line=line, fix=f'write "{key}": "doc-1", the same for every sentence of a document.')
        if value != self.current:
            if value in self.first_line:
                raise DataError("E111", f"document {preview(value)} goes on after other records (its first record "
                                f"is on line {self.first_line[value]})", path=self.path, line=line,
                                fix="keep the records of a document together, in order.")
            self.first_line[value] = line
            self.current = value
            self.count += 1
        return self.count - 1


def _token_examples(text_file: TextFile) -> Iterator[TokenExample]:
    documents = _Documents(text_file.path)
    for line, record in iter_json_records(text_file):
        tokens = _string_list(record, "tokens", text_file.path, line)
        tag_key = next((key for key in TAG_KEYS if key in record), None)
        if tag_key is None:
            raise DataError("E111", f"missing key 'tags' (or 'ner_tags'); keys are {preview(sorted(record), 200)}",
                            path=text_file.path, line=line, fix='give each object "tokens" and "tags" lists.')
        tags = record[tag_key]
        if not isinstance(tags, list):
            raise DataError("E111", f"'{tag_key}' must be a list", path=text_file.path, line=line,
                            fix='write "tags": ["B-PER", "O", ...].')
        for tag in tags:
            if not isinstance(tag, str):
                raise DataError("E105", f"tag {preview(tag)} is not a string: integer tag ids need their names",
                                path=text_file.path, line=line,
                                fix="write tag names (B-PER, O, ...), or save the data with datasets and a "
                                "ClassLabel feature and read that folder.")
        if len(tags) != len(tokens):
            raise DataError("E109", f"{len(tokens)} tokens but {len(tags)} tags", path=text_file.path, line=line,
                            fix="give exactly one tag per token.")
        yield TokenExample(tokens=tokens, tags=list(tags), line=line, doc_id=documents.of(record, line))


def _string_list(record: dict, key: str, path: str, line: int) -> list[str]:
    if key not in record:
        raise DataError("E111", f"missing key {key!r}; keys are {preview(sorted(record), 200)}", path=path, line=line,
                        fix='give each object "tokens" and "tags" lists.')
    value = record[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DataError("E111", f"{key!r} must be a list of strings", path=path, line=line,
                        fix='write "tokens": ["word", ...].')
    return value


# ---------------------------------------------------------------- span JSONL


def read_span_jsonl(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read ``{"text", "spans": [{"start", "end", "label"}]}`` JSON Lines; spans become IOB2 tags.

    Args:
        path: the file.
        options: the encoding, ``overlapping_spans`` (error, longest, first) and ``split_at_spans`` (cut words
            at span boundaries: for training files); the scheme does not apply (spans have none).

    Raises:
        DataError: E111 bad JSON or keys, E110 a span out of range, empty or over whitespace only, overlapping
            spans (with ``overlapping_spans: error``, after counting every overlap of the file).
    """
    options = options or ReadOptions()
    return open_span_jsonl(read_text_file(path, options.encoding), options).materialize()


def open_span_jsonl(text_file: TextFile, options: ReadOptions | None = None) -> CorpusStream:
    """Check a span JSONL file whole and return its examples as a :class:`CorpusStream`."""
    options = options or ReadOptions()
    policy = _overlap_policy(options.overlapping_spans, text_file.path)
    counts = _SpanCounts()
    types: set[str] = set()
    size = 0
    for example in _span_examples(text_file, policy, options.split_at_spans, counts):
        types.update(label for _, _, label in example.spans)
        size += 1
    path = text_file.path
    if not size:
        raise DataError("E103", "empty split: no JSON records", path=path, fix="point to the right file.")
    if counts.overlapping_pairs and policy == "error":
        (a_start, a_end, a_label), (b_start, b_end, b_label) = counts.first_overlap
        raise DataError(
            "E110",
            f"{counts.overlapping_pairs} pair(s) of overlapping or nested spans in {counts.overlap_records} "
            f"record(s); the first: {a_start}-{a_end} ({a_label}) and {b_start}-{b_end} ({b_label})",
            path=path, line=counts.first_overlap_line,
            fix="set overlapping_spans: longest (keep the longest of spans that overlap) or first (keep the one "
            "listed first) to drop the others, counted in the data statistics; or remove the overlaps from the file.")
    warnings = list(text_file.warnings) + look_alike_warnings(path, types, "entity types")
    if counts.dropped_spans:
        warnings.append(f"{path}: {counts.dropped_spans} span(s) dropped from {counts.overlapping_pairs} pair(s) of "
                        f"overlapping spans (overlapping_spans: {policy}; the first at line "
                        f"{counts.first_overlap_line}).")
    if counts.split_tokens:
        warnings.append(f"{path}: {counts.split_tokens} word(s) were split where a span starts or ends inside them "
                        f"(first at line {counts.first_split_line}); training sees the parts as words.")
    if counts.inside_words:
        warnings.append(f"{path}: {counts.inside_words} span(s) start or end inside a word (first at line "
                        f"{counts.first_inside_line}); words are found without looking at the spans and the model "
                        "labels whole words, so these spans count as missed.")
    return CorpusStream(path=path, task=TOKEN_TASK, format="spans", size=size, labels_found=sorted(types),
                        scheme="IOB2", warnings=warnings, span_counts=counts.as_dict(),
                        examples_of=lambda stream: _span_examples(text_file, policy, options.split_at_spans,
                                                                  _SpanCounts()))


def _overlap_policy(value: str | None, path: str) -> str:
    policy = (value or "error").strip().lower()
    if policy not in OVERLAPPING_SPANS:
        raise DataError("E110", f"unknown overlapping_spans {value!r}", path=path,
                        fix=f"use one of {', '.join(OVERLAPPING_SPANS)}.")
    return policy


class _SpanCounts:
    def __init__(self) -> None:
        self.spans = 0
        self.overlapping_pairs = 0
        self.overlap_records = 0
        self.first_overlap: tuple | None = None
        self.first_overlap_line: int | None = None
        self.dropped_spans = 0
        self.split_tokens = 0
        self.first_split_line: int | None = None
        self.inside_words = 0
        self.first_inside_line: int | None = None

    def as_dict(self) -> dict:
        return {"spans": self.spans, "overlapping_pairs": self.overlapping_pairs,
                "dropped_spans": self.dropped_spans, "split_tokens": self.split_tokens,
                "spans_inside_words": self.inside_words}


def _span_examples(text_file: TextFile, policy: str, split: bool, counts: _SpanCounts) -> Iterator[TokenExample]:
    path = text_file.path
    documents = _Documents(path)
    for line, record in iter_json_records(text_file):
        text = record.get("text")
        if not isinstance(text, str):
            raise DataError("E111", "missing or non-string 'text'", path=path, line=line,
                            fix='write {"text": "...", "spans": [{"start": 0, "end": 4, "label": "PER"}]}.')
        key = span_key(record)
        spans = _checked_spans(record.get(key, []) if key else [], text, path, line, key or "spans")
        pairs = _overlapping_pairs(spans)
        if pairs:
            counts.overlapping_pairs += len(pairs)
            counts.overlap_records += 1
            if counts.first_overlap is None:
                counts.first_overlap, counts.first_overlap_line = pairs[0], line
            if policy != "error":
                kept = _resolve_overlaps(spans, policy)
                counts.dropped_spans += len(spans) - len(kept)
                spans = kept
        spans = sorted(spans)
        counts.spans += len(spans)
        offsets = word_offsets(text)
        if split:
            offsets, n_split = split_at_boundaries(offsets, {b for span in spans for b in span[:2]})
            if n_split:
                counts.split_tokens += n_split
                counts.first_split_line = counts.first_split_line or line
        tags, inside = _project(spans, offsets)
        if inside:
            counts.inside_words += inside
            counts.first_inside_line = counts.first_inside_line or line
        yield TokenExample(tokens=[text[s:e] for s, e in offsets], tags=tags, line=line, text=text, offsets=offsets,
                           spans=spans, doc_id=documents.of(record, line))


def is_span(item: object) -> bool:
    """A span as a record lists it: ``{"start": 0, "end": 4, ...}`` (or doccano's ``start_offset``/``end_offset``)
    or ``[0, 4, "PER"]``."""
    if isinstance(item, dict):
        return ("start" in item or "start_offset" in item) and ("end" in item or "end_offset" in item)
    return (isinstance(item, list) and len(item) == 3 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                for v in item[:2]))


def span_key(record: dict) -> str | None:
    """The key of a record's spans: ``spans``, else ``entities``, else a ``label`` list of spans (doccano)."""
    for key in ("spans", "entities"):  # "entities": spaCy-style
        if key in record:
            return key
    label = record.get("label")  # doccano's sequence-labelling export; a class label is no list of spans
    return "label" if isinstance(label, list) and all(is_span(item) for item in label) else None


def _checked_spans(raw_spans: object, text: str, path: str, line: int,
                   key: str = "spans") -> list[tuple[int, int, str]]:
    """Validate spans (dicts or ``[start, end, label]`` lists), in the order listed."""
    if not isinstance(raw_spans, list):
        raise DataError("E111", f"{key!r} must be a list", path=path, line=line,
                        fix='write "spans": [{"start": 0, "end": 4, "label": "PER"}].')
    spans = []
    for raw in raw_spans:
        if isinstance(raw, dict):
            start, end, label = (raw.get("start", raw.get("start_offset")), raw.get("end", raw.get("end_offset")),
                                 raw.get("label"))
        elif isinstance(raw, list) and len(raw) == 3:
            start, end, label = raw
        else:
            start = end = label = None
        valid_ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
        if not valid_ints or not isinstance(label, str) or not label:
            raise DataError("E110", f"span {preview(raw)} needs integer 'start', 'end' and a non-empty 'label'",
                            path=path, line=line, fix='write {"start": 0, "end": 4, "label": "PER"}.')
        if not 0 <= start < end <= len(text):
            raise DataError("E110", f"span {start}-{end} ({preview(label)}) is empty or outside the text "
                            f"({len(text)} characters)", path=path, line=line,
                            fix="use character offsets with start < end <= len(text) (end is exclusive).")
        if not text[start:end].strip():
            raise DataError("E110", f"span {start}-{end} ({preview(label)}) {preview(text[start:end])} covers no "
                            "token (only whitespace)", path=path, line=line, fix="move the span onto the words it labels.")
        spans.append((start, end, label))
    return spans


def _overlapping_pairs(spans: list[tuple[int, int, str]]) -> list[tuple[tuple, tuple]]:
    """Every pair of spans that share a character (nested and identical ones too), in order of their starts."""
    ordered = sorted(spans)
    pairs = []
    for i, current in enumerate(ordered):
        for other in ordered[i + 1:]:
            if other[0] >= current[1]:
                break
            pairs.append((current, other))
    return pairs


def _resolve_overlaps(spans: list[tuple[int, int, str]], policy: str) -> list[tuple[int, int, str]]:
    """Keep spans greedily, in the policy's order, dropping each that overlaps one kept: ``first`` goes in the
    order the record lists them, ``longest`` from the longest (then the leftmost, then the order listed)."""
    order = list(range(len(spans)))
    if policy == "longest":
        order.sort(key=lambda i: (spans[i][0] - spans[i][1], spans[i][0], i))
    kept: list[tuple[int, int, str]] = []
    for i in order:
        start, end, _ = spans[i]
        if all(end <= other[0] or other[1] <= start for other in kept):
            kept.append(spans[i])
    return kept


def _project(spans: list[tuple[int, int, str]], offsets: list[tuple[int, int]]) -> tuple[list[str], int]:
    """IOB2 tags of the words from character spans (sorted, not overlapping): a word that shares a character with
    a span is in it (a word two spans share goes to the first). Returns the tags and the number of spans that
    start or end inside a word."""
    tags = ["O"] * len(offsets)
    starts = [s for s, _ in offsets]
    inside = 0
    for start, end, label in spans:
        first = bisect.bisect_right(starts, start) - 1
        if first < 0 or offsets[first][1] <= start:
            first += 1
        last = bisect.bisect_left(starts, end) - 1  # the last word starting before the span ends
        if (0 <= first < len(offsets) and offsets[first][0] < start) or (
                0 <= last < len(offsets) and offsets[last][1] > end):
            inside += 1
        begun = False
        for i in range(first, last + 1):
            if tags[i] != "O":
                continue
            tags[i] = ("I-" if begun else "B-") + label
            begun = True
    return tags, inside


def is_cjk(char: str) -> bool:
    """True for characters written without spaces (CJK ideographs and punctuation, kana, full-width forms)."""
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def tokenize_with_offsets(text: str) -> list[tuple[int, int]]:
    """Split ``text`` on whitespace, with each CJK character a token; return ``(start, end)`` offsets (word counts
    in statistics).

    Args:
        text: the text.
    """
    return [match.span() for match in _WORD.finditer(text)]


@cache
def _word_pattern() -> re.Pattern:
    """Whitespace-separated words, with each CJK character and each punctuation character (Unicode category P,
    and the ASCII symbols BERT splits off: $ + < = > ^ ` | ~) a word of its own."""
    import unicodedata

    limit = min(sys.maxunicode, 0x1FFFF)  # no punctuation beyond the first two planes
    punctuation = [code for code in range(limit + 1) if unicodedata.category(chr(code)).startswith("P")]
    punctuation += [code for code in range(33, 127) if not chr(code).isalnum()]
    ranges: list[list[int]] = []
    for code in sorted(set(punctuation)):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    punct = "".join(re.escape(chr(low)) if low == high else f"{re.escape(chr(low))}-{re.escape(chr(high))}"
                    for low, high in ranges)
    return re.compile(f"(?!\\s)[{_CJK_CLASS}]|[{punct}]|[^\\s{_CJK_CLASS}{punct}]+")


def word_offsets(text: str) -> list[tuple[int, int]]:
    """The words of a span file's text, found without its spans: split on whitespace, each punctuation character
    and each CJK character a word (as BERT's basic tokenizer splits). Returns ``(start, end)`` offsets.

    Args:
        text: the text.
    """
    return [match.span() for match in _word_pattern().finditer(text)]


def split_at_boundaries(offsets: list[tuple[int, int]], boundaries: set[int]) -> tuple[list[tuple[int, int]], int]:
    """Cut tokens at every boundary that falls strictly inside them.

    Args:
        offsets: token offsets.
        boundaries: character positions where a span starts or ends.

    Returns:
        The new offsets and the number of tokens that were cut.
    """
    result, n_split = [], 0
    ordered = sorted(boundaries)
    for start, end in offsets:
        low = bisect.bisect_right(ordered, start)
        high = bisect.bisect_left(ordered, end)
        cuts = ordered[low:high]
        if cuts:
            n_split += 1
        edges = [start, *cuts, end]
        result.extend(zip(edges, edges[1:]))
    return result, n_split
