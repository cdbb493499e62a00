"""Text classification files: CSV, TSV, ``label text`` lines and JSON Lines.

Labels are kept as strings, whether the file holds names (``positive``) or integer ids (``1``).

* CSV is read with the ``csv`` module, so quoted fields may hold commas and newlines; an example's line is
  the line where its row starts.
* TSV is split on tabs with no quoting (as GLUE and most corpora write it): a ``"`` is ordinary text.
* ``label-text``: ``LABEL text...`` per line, the label being the first space/tab-separated field (SST-2,
  TREC).
* ``text-jsonl``: ``{"text": ..., "label": ...}`` (also ``sentence``; pairs with ``text_pair``/``sentence2``).

Columns are chosen by ``ReadOptions`` (a header name or a 0-based index), else by header names, else the
label is the first or last column with fewer distinct values (the shorter on a tie) and the text is the
other one (with three columns: the two others, in order, are text and text pair).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from pathlib import Path

from tunecard.data.example import TEXT_TASK, Corpus, ReadOptions, TextExample
from tunecard.data.jsonl import iter_json_records
from tunecard.data.textfile import TextFile, preview, read_text_file
from tunecard.errors import DataError

LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "target", "intent", "y")
TEXT_NAMES = ("text", "sentence", "sentence1", "text_a", "content", "review", "question", "document", "question1")
PAIR_NAMES = ("text_pair", "sentence2", "text_b", "question2", "hypothesis")
_KNOWN_NAMES = {name.lower() for name in LABEL_NAMES + TEXT_NAMES + PAIR_NAMES}
_FIELD_LIMIT = 2**31 - 1  # csv.field_size_limit takes a C long: this fits on every platform
_COLUMN_FIX = "name the columns: --text-column, --label-column (a header name or a 0-based index)."


def read_text_classification(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read a classification file in ``options.format`` (csv, tsv, label-text or text-jsonl).

    Args:
        path: the file.
        options: format, encoding, columns and header; ``format`` must be set (see
            :func:`tunecard.data.read_corpus` for detection).
    """
    options = options or ReadOptions()
    readers = {"csv": read_csv, "tsv": read_tsv, "label-text": read_label_text, "text-jsonl": read_text_jsonl}
    if options.format not in readers:
        raise DataError("E108", f"{options.format!r} is not a text classification format", path=path,
                        fix=f"use one of {', '.join(readers)}.")
    return readers[options.format](path, options)


def read_csv(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read comma-separated values (quoted fields may span lines).

    Args:
        path: the file.
        options: encoding, header and columns; ``None`` fields are detected.

    Raises:
        DataError: E104 a row with another column count or an empty label, E114 a column not found.
    """
    return _read_delimited(path, options or ReadOptions(), delimiter=",", fmt="csv")


def read_tsv(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read tab-separated values (no quoting). Same options and errors as :func:`read_csv`.

    Args:
        path: the file.
        options: encoding, header and columns; ``None`` fields are detected.
    """
    return _read_delimited(path, options or ReadOptions(), delimiter="\t", fmt="tsv")


def _read_delimited(path: str | Path, options: ReadOptions, delimiter: str, fmt: str) -> Corpus:
    text_file = read_text_file(path, options.encoding)
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    reader = csv.reader(io.StringIO(text_file.text, newline=""), delimiter=delimiter, quoting=quoting)
    rows: list[tuple[int, list[str]]] = []
    previous_end = 0
    limit = csv.field_size_limit(_FIELD_LIMIT)  # a long text is data: the default limit is 128 KiB per field
    try:
        for cells in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if any(cell.strip() for cell in cells):
                rows.append((start, cells))
        unclosed = _unclosed_quote_line(text_file.text, delimiter) if delimiter == "," else None
    except csv.Error as error:
        raise DataError("E104", f"malformed {fmt.upper()}: {error}", path=text_file.path, line=reader.line_num,
                        fix="check the quotes on this row.") from None
    finally:
        csv.field_size_limit(limit)
    if unclosed is not None:
        raise DataError("E104", "malformed CSV: a quoted field opened on this line is never closed, so the rest "
                        "of the file would be one field", path=text_file.path, line=unclosed,
                        fix='close the quote (a " inside a quoted field is written "").')
    if not rows:
        raise DataError("E103", "empty split: the file has no rows with text", path=text_file.path,
                        fix="point to the right file.")
    _check_column_counts(text_file.path, rows)
    warnings = list(text_file.warnings)
    label, text, pair, header = _choose_columns(text_file.path, rows, options, warnings)
    data_rows = rows[1:] if header else rows
    if not data_rows:
        raise DataError("E103", "empty split: the file has a header but no rows", path=text_file.path,
                        fix="point to the right file.")
    examples = []
    for line, cells in data_rows:
        examples.append(_example(text_file.path, line, cells[text], cells[label],
                                 cells[pair] if pair is not None else None))
    return _finish(text_file, fmt, examples, warnings)


def _unclosed_quote_line(text: str, delimiter: str) -> int | None:
    """The line where a quoted field that is never closed starts, or None.

    Unless strict, the csv module silently ends such a field at the end of the file, turning everything after
    the stray quote into one field; a strict pass finds it (it stops at other strict-only errors: not ours).
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        for _ in reader:
            start = reader.line_num + 1
    except csv.Error as error:
        return start if "unexpected end of data" in str(error) else None
    return None


def _check_column_counts(path: str, rows: list[tuple[int, list[str]]]) -> None:
    expected = Counter(len(cells) for _, cells in rows).most_common(1)[0][0]
    if expected < 2:
        raise DataError("E104", "rows have a single column; a text and a label column are needed", path=path,
                        line=rows[0][0], fix="check the separator (--format csv or tsv) or use --format label-text.")
    for line, cells in rows:
        if len(cells) != expected:
            raise DataError("E104", f"malformed row: {len(cells)} column(s), the rest of the file has {expected}",
                            path=path, line=line,
                            fix="quote fields that contain the separator (CSV), or remove stray tabs (TSV).")


def _choose_columns(
    path: str, rows: list[tuple[int, list[str]]], options: ReadOptions, warnings: list[str]
) -> tuple[int, int, int | None, bool]:
    """Return (label, text, text pair, has header) column choices."""
    n_columns = len(rows[0][1])
    first = rows[0][1]
    named = any(isinstance(spec, str) and not spec.isdigit()
                for spec in (options.label_column, options.text_column, options.text_pair_column))
    header = options.header
    if header is None:
        has_known_name = any(cell.strip().lower() in _KNOWN_NAMES for cell in first)
        header = named or has_known_name or _label_value_unseen(rows, _guess_label_column(rows[1:] or rows))
        if header and not (named or has_known_name):
            warnings.append(f"{path}: the first row was read as a header ({first}) because its label is not "
                            "used by any other row; pass --no-header if it is an example.")
    names = [cell.strip() for cell in first] if header else None
    body = rows[1:] if header else rows

    label = _resolve(path, options.label_column, names, n_columns, "label")
    text = _resolve(path, options.text_column, names, n_columns, "text")
    pair = _resolve(path, options.text_pair_column, names, n_columns, "text pair")
    if names is not None:
        label = label if label is not None else _find_name(names, LABEL_NAMES)
        text = text if text is not None else _find_name(names, TEXT_NAMES)
        pair = pair if pair is not None or options.text_pair_column is not None else _find_name(names, PAIR_NAMES)
    if label is None:
        label = _guess_label_column(body or rows)
    remaining = [i for i in range(n_columns) if i not in (label, pair)]
    if text is None:
        if len(remaining) == 1:
            text = remaining[0]
        elif n_columns == 3 and label in (0, 2) and pair is None:
            text, pair = remaining  # label at one end: text, then text pair
        else:
            raise DataError("E114", f"cannot tell which of the {n_columns} columns holds the text", path=path,
                            fix=_COLUMN_FIX)
    if len({label, text, pair} - {None}) != 2 + (pair is not None):
        raise DataError("E114", "the label, text and text pair columns must be different", path=path,
                        fix=_COLUMN_FIX)
    return label, text, pair, header


def _guess_label_column(rows: list[tuple[int, list[str]]]) -> int:
    """The first or last column with fewer distinct values (shorter values on a tie)."""
    n_columns = len(rows[0][1])

    def score(column: int) -> tuple[int, float]:
        values = [cells[column] for _, cells in rows]
        return len(set(values)), statistics.fmean(len(v) for v in values)

    return min((n_columns - 1, 0), key=score)


def _label_value_unseen(rows: list[tuple[int, list[str]]], label: int) -> bool:
    """True when the first row's label cell is a value no other row has, in a column whose values repeat."""
    first = rows[0][1][label].strip()
    later = {cells[label].strip() for _, cells in rows[1:]}
    return len(rows) > 2 and first not in later and len(later) < len(rows) - 1


def _resolve(path: str, spec: str | int | None, names: list[str] | None, n_columns: int, what: str) -> int | None:
    if spec is None:
        return None
    if isinstance(spec, str) and spec.isdigit():
        spec = int(spec)
    if isinstance(spec, int):
        if not 0 <= spec < n_columns:
            raise DataError("E114", f"{what} column {spec} does not exist (rows have {n_columns} columns)",
                            path=path, fix=_COLUMN_FIX)
        return spec
    found = _find_name(names or [], (spec,))
    if found is None:
        raise DataError("E114", f"{what} column {spec!r} not found; header is {preview(names, 200)}", path=path,
                        fix=_COLUMN_FIX)
    return found


def _find_name(names: list[str], wanted: tuple[str, ...]) -> int | None:
    lowered = [name.lower() for name in names]
    for name in wanted:
        if name.lower() in lowered:
            return lowered.index(name.lower())
    return None


def read_label_text(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read ``LABEL text`` lines (label = first field, separated by spaces or a tab), as SST-2 and TREC.

    Args:
        path: the file.
        options: the encoding.

    Raises:
        DataError: E104 a line with a label but no text.
    """
    options = options or ReadOptions()
    text_file = read_text_file(path, options.encoding)
    examples = []
    for number, line in enumerate(text_file.lines, start=1):
        if not line.strip():
            continue
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            raise DataError("E104", f"line has a label ({preview(parts[0])}) but no text", path=text_file.path,
                            line=number, fix="write the label, a space, then the text.")
        examples.append(_example(text_file.path, number, parts[1], parts[0], None))
    return _finish(text_file, "label-text", examples, list(text_file.warnings))


def read_text_jsonl(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read ``{"text": ..., "label": ...}`` JSON Lines (keys as in CSV headers, or set in options).

    Args:
        path: the file.
        options: encoding and column (key) names.

    Raises:
        DataError: E111 bad JSON, E114 a key not found.
    """
    options = options or ReadOptions()
    text_file = read_text_file(path, options.encoding)
    examples = []
    for line, record in iter_json_records(text_file):
        keys = list(record)
        text_key = _key(text_file.path, line, keys, options.text_column, TEXT_NAMES, "text")
        label_key = _key(text_file.path, line, keys, options.label_column, LABEL_NAMES, "label")
        pair_key = (_key(text_file.path, line, keys, options.text_pair_column, PAIR_NAMES, "text pair")
                    if options.text_pair_column is not None else _find_key(keys, PAIR_NAMES))
        text, label = record[text_key], record[label_key]
        pair = record[pair_key] if pair_key is not None else None
        if not isinstance(text, str) or not (pair is None or isinstance(pair, str)):
            raise DataError("E111", "the text must be a string", path=text_file.path, line=line,
                            fix=f'write "{text_key}": "..." on every line.')
        if label is None or isinstance(label, (list, dict)):
            raise DataError("E104", f"label {preview(label)} is not a class name or id", path=text_file.path, line=line,
                            fix="give every example one label (a name or an integer id).")
        examples.append(_example(text_file.path, line, text, str(label), pair))
    return _finish(text_file, "text-jsonl", examples, list(text_file.warnings))


def _key(path: str, line: int, keys: list[str], spec: str | int | None, defaults: tuple[str, ...], what: str) -> str:
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        raise DataError("E114", f"{what} column must be a key name in JSON Lines, not {spec!r}", path=path,
                        line=line, fix=_COLUMN_FIX)
    found = _find_key(keys, (spec,) if spec is not None else defaults)
    if found is None:
        raise DataError("E114", f"no {what} key ({spec or ' / '.join(defaults)}); keys are {preview(keys, 200)}",
                        path=path, line=line, fix=_COLUMN_FIX)
    return found


def _find_key(keys: list[str], wanted: tuple[str, ...]) -> str | None:
    index = _find_name(keys, wanted)
    return keys[index] if index is not None else None


def _example(path: str, line: int, text: str, label: str, pair: str | None) -> TextExample:
    label = label.strip()
    if not label:
        raise DataError("E104", "empty label", path=path, line=line, fix="give every example a label.")
    return TextExample(text=text, label=label, text_pair=pair, line=line)


def _finish(text_file: TextFile, fmt: str, examples: list[TextExample], warnings: list[str]) -> Corpus:
    if not examples:
        raise DataError("E103", "empty split: no examples", path=text_file.path, fix="point to the right file.")
    empty = sum(1 for ex in examples if not ex.text.strip())
    if empty:
        warnings.append(f"{text_file.path}: {empty} example(s) have an empty text; they are kept.")
    return Corpus(path=text_file.path, task=TEXT_TASK, format=fmt, examples=examples, warnings=warnings)
