"""JSON Lines for token classification.

* token JSONL: ``{"tokens": [...], "tags": [...]}`` (``ner_tags`` accepted for ``tags``), tags in any scheme;
* span JSONL: ``{"text": "...", "spans": [{"start": 0, "end": 5, "label": "PER"}]}`` with character offsets
  (end exclusive). The text is split on whitespace, and every CJK character is a token of its own; a span
  boundary inside a token splits that token, so no span is ever lost. Tags are produced in IOB2.

A file holding one JSON array of such objects is read too (line numbers are where each object starts).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from tunecard.data.conll import make_token_corpus
from tunecard.data.example import TOKEN_TASK, Corpus, ReadOptions, TokenExample
from tunecard.data.schemes import Span, spans_to_tags
from tunecard.data.textfile import TextFile, preview, read_text_file
from tunecard.errors import DataError

TAG_KEYS = ("tags", "ner_tags")
# Code point ranges whose characters are one token each (BERT's CJK ideographs, plus CJK punctuation,
# kana and full-width forms, which are written without spaces too).
_CJK_RANGES = (
    (0x3000, 0x303F), (0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF),
    (0xFF00, 0xFFEF), (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF), (0x2F800, 0x2FA1F), (0x30000, 0x323AF),
)

_CJK_CLASS = "".join(f"{chr(low)}-{chr(high)}" for low, high in _CJK_RANGES)
# One CJK character (not the ideographic space), or a run of other non-space characters.
_WORD = re.compile(f"(?!\\s)[{_CJK_CLASS}]|[^\\s{_CJK_CLASS}]+")


def iter_json_records(text_file: TextFile) -> Iterator[tuple[int, dict]]:
    """Yield ``(line, object)`` for every record of a JSONL file (blank lines skipped) or JSON array.

    Args:
        text_file: the decoded file.

    Raises:
        DataError: E111 for a line that is not JSON or not an object.
    """
    if text_file.text.lstrip().startswith("["):
        yield from _iter_json_array(text_file)
        return
    for number, line in enumerate(text_file.lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError("E111", f"not valid JSON ({error.msg} at character {error.colno})", path=text_file.path,
                            line=number, fix="write one JSON object per line (JSON Lines).") from None
        yield number, _require_object(record, text_file.path, number)


def _iter_json_array(text_file: TextFile) -> Iterator[tuple[int, dict]]:
    text = text_file.text
    decoder = json.JSONDecoder()
    position = text.index("[") + 1
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            return
        line = text.count("\n", 0, position) + 1
        try:
            record, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as error:
            raise DataError("E111", f"not valid JSON ({error.msg})", path=text_file.path, line=error.lineno,
                            fix="fix the JSON, or write one JSON object per line (JSON Lines).") from None
        yield line, _require_object(record, text_file.path, line)


def _require_object(record: object, path: str, line: int) -> dict:
    if not isinstance(record, dict):
        raise DataError("E111", f"expected a JSON object, found {type(record).__name__}", path=path, line=line,
                        fix='write objects such as {"tokens": [...], "tags": [...]}.')
    return record


def read_token_jsonl(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read ``{"tokens", "tags"|"ner_tags"}`` JSON Lines into a token-classification corpus (IOB2 tags).

    Args:
        path: the file.
        options: encoding and scheme; ``None`` fields are detected.

    Raises:
        DataError: E111 bad JSON or missing keys, E109 tokens and tags differ in length, E105 bad tag.
    """
    options = options or ReadOptions()
    text_file = read_text_file(path, options.encoding)
    examples = []
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
        examples.append(TokenExample(tokens=tokens, tags=list(tags), line=line))
    if not examples:
        raise DataError("E103", "empty split: no JSON records", path=text_file.path, fix="point to the right file.")
    return make_token_corpus(text_file.path, "jsonl", examples, options, text_file.warnings)


def _string_list(record: dict, key: str, path: str, line: int) -> list[str]:
    if key not in record:
        raise DataError("E111", f"missing key {key!r}; keys are {preview(sorted(record), 200)}", path=path, line=line,
                        fix='give each object "tokens" and "tags" lists.')
    value = record[key]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DataError("E111", f"{key!r} must be a list of strings", path=path, line=line,
                        fix='write "tokens": ["word", ...].')
    return value


def read_span_jsonl(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read ``{"text", "spans": [{"start", "end", "label"}]}`` JSON Lines; spans become IOB2 tags.

    Args:
        path: the file.
        options: the encoding (the scheme does not apply: spans have none).

    Raises:
        DataError: E111 bad JSON or keys, E110 a span out of range, empty, overlapping or over whitespace only.
    """
    options = options or ReadOptions()
    text_file = read_text_file(path, options.encoding)
    examples = []
    split_tokens = 0
    for line, record in iter_json_records(text_file):
        text = record.get("text")
        if not isinstance(text, str):
            raise DataError("E111", "missing or non-string 'text'", path=text_file.path, line=line,
                            fix='write {"text": "...", "spans": [{"start": 0, "end": 4, "label": "PER"}]}.')
        spans = _checked_spans(record.get("spans", []), text, text_file.path, line)
        offsets = tokenize_with_offsets(text)
        offsets, n_split = split_at_boundaries(offsets, {b for span in spans for b in span[:2]})
        split_tokens += n_split
        token_spans = []
        for start, end, label in spans:
            first = next((i for i, (s, _) in enumerate(offsets) if s >= start), None)
            last = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][1] <= end), None)
            if first is None or last is None or first > last:
                raise DataError("E110", f"span {start}-{end} ({preview(label)}) {preview(text[start:end])} covers no "
                                "token (only whitespace)", path=text_file.path, line=line,
                                fix="move the span onto the words it labels.")
            token_spans.append(Span(first, last + 1, label))
        examples.append(TokenExample(
            tokens=[text[s:e] for s, e in offsets], tags=spans_to_tags(token_spans, len(offsets), "IOB2"),
            line=line, text=text, offsets=offsets,
        ))
    if not examples:
        raise DataError("E103", "empty split: no JSON records", path=text_file.path, fix="point to the right file.")
    warnings = list(text_file.warnings)
    if split_tokens:
        warnings.append(f"{text_file.path}: {split_tokens} token(s) were split where a span starts or ends inside "
                        "them.")
    return Corpus(path=text_file.path, task=TOKEN_TASK, format="spans", examples=examples, scheme="IOB2",
                  warnings=warnings)


def _checked_spans(raw_spans: object, text: str, path: str, line: int) -> list[tuple[int, int, str]]:
    """Validate spans (dicts or ``[start, end, label]`` lists) and reject overlaps."""
    if not isinstance(raw_spans, list):
        raise DataError("E111", "'spans' must be a list", path=path, line=line,
                        fix='write "spans": [{"start": 0, "end": 4, "label": "PER"}].')
    spans = []
    for raw in raw_spans:
        if isinstance(raw, dict):
            start, end, label = raw.get("start"), raw.get("end"), raw.get("label")
        elif isinstance(raw, list) and len(raw) == 3:
            start, end, label = raw
        else:
            start = end = label = None
        valid_ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
        if not valid_ints or not isinstance(label, str) or not label:
            raise DataError("E110", f"span {preview(raw)} needs integer 'start', 'end' and a non-empty 'label'",
                            path=path, line=line, fix='write {"start": 0, "end": 4, "label": "PER"}.')
        if not 0 <= start < end <= len(text):
            raise DataError("E110", f"span {start}-{end} ({label}) is empty or outside the text "
                            f"({len(text)} characters)", path=path, line=line,
                            fix="use character offsets with start < end <= len(text) (end is exclusive).")
        spans.append((start, end, label))
    spans.sort()
    for previous, current in zip(spans, spans[1:]):
        if current[0] < previous[1]:
            raise DataError("E110", f"overlapping spans {previous[0]}-{previous[1]} ({previous[2]}) and "
                            f"{current[0]}-{current[1]} ({current[2]})", path=path, line=line,
                            fix="keep one of them: nested or overlapping entities cannot be tagged.")
    return spans


def is_cjk(char: str) -> bool:
    """True for characters written without spaces (CJK ideographs and punctuation, kana, full-width forms)."""
    code = ord(char)
    return any(low <= code <= high for low, high in _CJK_RANGES)


def tokenize_with_offsets(text: str) -> list[tuple[int, int]]:
    """Split ``text`` on whitespace, with each CJK character a token; return ``(start, end)`` offsets.

    Args:
        text: the text.
    """
    return [match.span() for match in _WORD.finditer(text)]


def split_at_boundaries(offsets: list[tuple[int, int]], boundaries: set[int]) -> tuple[list[tuple[int, int]], int]:
    """Cut tokens at every boundary that falls strictly inside them.

    Args:
        offsets: token offsets.
        boundaries: character positions where a span starts or ends.

    Returns:
        The new offsets and the number of tokens that were cut.
    """
    result, n_split = [], 0
    for start, end in offsets:
        cuts = sorted(b for b in boundaries if start < b < end)
        if cuts:
            n_split += 1
        edges = [start, *cuts, end]
        result.extend(zip(edges, edges[1:]))
    return result, n_split
