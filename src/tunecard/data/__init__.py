"""Reading training data: one entry point, :func:`read_corpus`, for every supported format.

The format comes from ``ReadOptions.format`` or is detected from the extension and, where the extension
says little (``.txt``, ``.tsv``, none), from the content. See ``docs/data-formats.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

from itertools import islice

from tunecard.data.classification import open_delimited, open_label_text, open_text_jsonl
from tunecard.data.conll import DOCSTART, is_comment_line, open_conll
from tunecard.data.example import (MULTI_LABEL_TASK, TEXT_TASK, TOKEN_TASK, Corpus, CorpusStream, ReadOptions,
                                   TextExample, TokenExample, as_multi_label)
from tunecard.data.hf import is_saved_dataset, read_hf
from tunecard.data.jsonl import is_span, iter_json_records, open_span_jsonl, open_token_jsonl, span_key
from tunecard.data.schemes import parse_tag
from tunecard.data.textfile import preview, read_text_file
from tunecard.errors import DataError

__all__ = [
    "FORMATS", "Corpus", "CorpusStream", "ReadOptions", "TextExample", "TokenExample", "detect_format",
    "normalize_task", "read_corpus", "stream_corpus",
]

FORMAT_TASKS = {
    "conll": TOKEN_TASK, "jsonl": TOKEN_TASK, "spans": TOKEN_TASK, "hf": None,
    "csv": TEXT_TASK, "tsv": TEXT_TASK, "label-text": TEXT_TASK, "text-jsonl": TEXT_TASK,
}
FORMATS = tuple(FORMAT_TASKS)
_FORMAT_ALIASES = {"json": "jsonl", "span-jsonl": "spans", "datasets": "hf", "txt": "label-text"}
# Every spelling of a task a user may write (config, --task, data stats): the one table.
TASK_ALIASES = {
    "token-classification": TOKEN_TASK, "ner": TOKEN_TASK, "token": TOKEN_TASK,
    "text-classification": TEXT_TASK, "classification": TEXT_TASK, "text": TEXT_TASK,
    "sequence-classification": TEXT_TASK,
    "multi-label-classification": MULTI_LABEL_TASK, "multi-label": MULTI_LABEL_TASK, "multilabel": MULTI_LABEL_TASK,
    "multi_label_classification": MULTI_LABEL_TASK, "multi-label-text-classification": MULTI_LABEL_TASK,
    "multilabel-classification": MULTI_LABEL_TASK,
}
_CONLL_SUFFIXES = {".conll", ".conll03", ".bio", ".iob", ".iob1", ".iob2", ".bioes", ".iobes", ".bmes", ".bilou",
                   ".ner"}
_JSON_SUFFIXES = {".jsonl", ".json", ".ndjson"}
_KNOWN_SUFFIXES = _CONLL_SUFFIXES | _JSON_SUFFIXES | {".csv", ".tsv", ".txt", ".tab"}
_HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_SNIFF_LINES = 200
_FORMAT_FIX = f"pass --format with one of {', '.join(FORMATS)}."


def read_corpus(path: str | Path, options: ReadOptions | None = None, task: str | None = None) -> Corpus:
    """Read one data file (or ``save_to_disk`` folder, or hub dataset) into a :class:`Corpus`.

    Args:
        path: a data file, a ``save_to_disk`` folder, or a hub dataset name.
        options: how to read it; every ``None`` field is detected (format, scheme, columns, header).
        task: the task the caller expects (``token-classification``/``ner``, ``text-classification``/
            ``classification`` or ``multi-label-classification``/``multi-label``); a file holding token tags for a
            classification task (or the reverse) is an error. For ``multi-label-classification`` a file with one
            label per example is read as one-label sets; for ``text-classification`` a file whose examples carry
            label lists comes back as a multi-label corpus (its shape decides).

    Raises:
        DataError: see the error table in ``docs/data-formats.md`` (E101-E116).
    """
    opened = _open(path, options, task, stream=False)
    return opened if isinstance(opened, Corpus) else opened.materialize()


def stream_corpus(path: str | Path, options: ReadOptions | None = None, task: str | None = None) -> CorpusStream:
    """Check a data file whole, as :func:`read_corpus` does (the same errors, before any example), and return a
    :class:`CorpusStream` that reads its examples again from the file at each iteration, holding none of them:
    memory does not grow with the file (``tunecard evaluate``). A datasets folder or hub dataset is read into
    memory and served from there.

    Args:
        path: a data file, a ``save_to_disk`` folder, or a hub dataset name.
        options: how to read it (as for :func:`read_corpus`).
        task: the task the caller expects.
    """
    opened = _open(path, options, task, stream=True)
    if isinstance(opened, CorpusStream):
        return opened
    return CorpusStream(path=opened.path, task=opened.task, format=opened.format, size=len(opened),
                        labels_found=opened.entity_types if opened.task == TOKEN_TASK else opened.labels,
                        examples_of=lambda stream: iter(opened.examples), scheme=opened.scheme,
                        warnings=opened.warnings, repaired=opened.repaired, span_counts=opened.span_counts)


_OPENERS = {"conll": open_conll, "jsonl": open_token_jsonl, "spans": open_span_jsonl, "label-text": open_label_text,
            "text-jsonl": open_text_jsonl,
            "csv": lambda text_file, options: open_delimited(text_file, options, "csv"),
            "tsv": lambda text_file, options: open_delimited(text_file, options, "tsv")}


def _open(path: str | Path, options: ReadOptions | None, task: str | None, stream: bool) -> Corpus | CorpusStream:
    options = options or ReadOptions()
    task = normalize_task(task) if task is not None else None
    fmt = normalize_format(options.format) if options.format else detect_format(path, options, task)
    expected = FORMAT_TASKS[fmt]
    family = TEXT_TASK if task == MULTI_LABEL_TASK else task  # multi-label data is in text classification formats
    if family is not None and expected is not None and expected != family:
        raise DataError("E115", f"format {fmt} holds {expected} data, but the task is {task}", path=path,
                        fix="check the file and the task (NER needs token tags, classification needs labels).")
    if fmt == "hf":
        opened = read_hf(path, options, family)
    else:
        opened = _OPENERS[fmt](read_text_file(path, options.encoding, stream=stream), options)
    return as_multi_label(opened) if task == MULTI_LABEL_TASK else opened


def normalize_format(name: str) -> str:
    """Canonical format name (see :data:`FORMATS`).

    Args:
        name: a format name or alias (``json``, ``datasets``, ``span-jsonl``).

    Raises:
        DataError: E108 unknown format.
    """
    lowered = name.strip().lower()
    lowered = _FORMAT_ALIASES.get(lowered, lowered)
    if lowered not in FORMAT_TASKS:
        raise DataError("E108", f"unknown format {name!r}", fix=_FORMAT_FIX)
    return lowered


def normalize_task(task: str) -> str:
    """Canonical task name.

    Args:
        task: ``token-classification`` (or ``ner``), ``text-classification`` (or ``classification``) or
            ``multi-label-classification`` (or ``multi-label``, ``multilabel``).

    Raises:
        DataError: E115 unknown task.
    """
    try:
        return TASK_ALIASES[task.strip().lower()]
    except KeyError:
        raise DataError("E115", f"unknown task {task!r}",
                        fix="use token-classification (ner), text-classification or multi-label-classification "
                        "(multi-label).") from None


def detect_format(path: str | Path, options: ReadOptions | None = None, task: str | None = None) -> str:
    """Detect the format of ``path`` from its extension, then its content.

    Args:
        path: a file, a ``save_to_disk`` folder, or a hub name.
        options: ``encoding`` (for reading the content), ``tag_column``, and ``text_column`` / ``label_column``
            (JSON keys that make a file text-classification JSONL) are used.
        task: the task the caller expects, if known: with NER, a file of one word and its columns per line is
            CoNLL even when its tags are not valid tags, so the CoNLL reader names the line and the bad tag
            (instead of E115 for a format of the other task).

    Raises:
        DataError: E107 missing file, E108 undetectable format, and the file errors E101-E103.
    """
    options = options or ReadOptions()
    location = Path(path)
    if location.is_dir():
        if is_saved_dataset(location):
            return "hf"
        raise DataError("E108", "folder is not a datasets save_to_disk folder", path=path,
                        fix="point to a data file, or to a folder written by save_to_disk.")
    if not location.exists():
        if location.suffix.lower() not in _KNOWN_SUFFIXES and _HUB_NAME.fullmatch(str(path)):
            return "hf"  # not a local path: try it as a hub name (read_hf explains if that fails)
        raise DataError("E107", "file not found", path=path, fix="check the path (it is relative to the current "
                        "folder).")
    suffix = location.suffix.lower()
    if suffix in _CONLL_SUFFIXES:
        return "conll"
    if suffix == ".csv":
        return "csv"
    text_file = read_text_file(location, options.encoding, stream=True)  # checked whole, nothing held
    first = next((line.lstrip() for line in text_file.iter_lines() if line.strip()), "")
    if suffix in _JSON_SUFFIXES or first[:1] in ("{", "["):
        return _sniff_json(text_file, options)
    token_task = task is not None and normalize_task(task) == TOKEN_TASK
    return _sniff_text(text_file, suffix, options.tag_column, token_task)


def _sniff_json(text_file, options: ReadOptions) -> str:
    named = {key for key in (options.text_column, options.label_column) if isinstance(key, str)}  # --text-column
    records = iter_json_records(text_file)
    for _, record in records:
        if "spans" in record:
            return "spans"
        if "tokens" in record:
            return "jsonl"
        listed = _listed_spans(record)
        if listed:
            return "spans"
        if listed == []:  # {"text": ..., "entities": []}: the next records say whether the lists hold spans
            for _, later in islice(records, _SNIFF_LINES):
                listed = _listed_spans(later)
                if listed:
                    return "spans"
                if listed is None:
                    break
        if "text" in record or "sentence" in record or "label" in record or named & set(record):
            return "text-jsonl"
        raise DataError("E108", f"cannot tell the JSON format from the keys {preview(sorted(record), 200)}",
                        path=text_file.path,
                        fix='use "tokens"+"tags" (NER), "text"+"spans" (NER) or "text"+"label" (other keys: name them '
                        'with --text-column and --label-column), or ' + _FORMAT_FIX)
    raise DataError("E103", "empty split: no JSON records", path=text_file.path, fix="point to the right file.")


def _listed_spans(record: dict) -> list | None:
    """A record's spans under another key than ``spans``: ``{"text": ..., "entities": [...]}``, or doccano's
    ``{"text": ..., "label": [[0, 4, "PER"]]}``; None when the record has no such list."""
    if "text" not in record:
        return None
    key = span_key(record)
    return record[key] if key in ("entities", "label") and isinstance(record[key], list) and all(
        is_span(item) for item in record[key]) else None


def _sniff_text(text_file, suffix: str, tag_column: int | None, token_task: bool = False) -> str:
    """CoNLL if most lines end in a tag (for a NER task: if most lines are one word and the same number of
    columns); TSV if most lines have a tab; label-text if first fields repeat."""
    sample = list(islice((line for line in text_file.iter_lines() if line.strip()
                          and not line.strip().startswith(DOCSTART) and not is_comment_line(line)), _SNIFF_LINES))
    fields = [line.rstrip().split("\t") if "\t" in line.strip() else line.split() for line in sample]
    column = tag_column if tag_column is not None else -1
    tag_like = sum(1 for cells in fields if len(cells) >= 2 and -len(cells) <= column < len(cells)
                   and _is_tag(cells[column]))
    if tag_like >= 0.8 * len(sample):
        return "conll"
    if token_task and sample and _word_columns(fields) >= 0.8 * len(sample):
        return "conll"  # CoNLL-shaped with tags that are not tags (b-per, B_PER, 1): the reader says which and where
    if suffix in (".tsv", ".tab") or sum("\t" in line for line in sample) >= 0.8 * len(sample):
        return "tsv"
    first_fields = [cells[0] for cells in fields if len(cells) >= 2]
    if len(first_fields) == len(sample) and len(set(first_fields)) <= max(10, len(sample) // 5):
        return "label-text"
    raise DataError("E108", "cannot detect the format: not CoNLL columns, TSV, or 'label text' lines",
                    path=text_file.path, fix=_FORMAT_FIX)


def _word_columns(fields: list[list[str]]) -> int:
    """How many lines have the most common number of columns (two or more) and a first column of one word."""
    counts: dict[int, int] = {}
    for cells in fields:
        if len(cells) >= 2 and len(cells[0].split()) == 1:
            counts[len(cells)] = counts.get(len(cells), 0) + 1
    return max(counts.values(), default=0)


def _is_tag(value: str) -> bool:
    try:
        parse_tag(value.strip())
    except DataError:
        return False
    return True
