"""Text classification files: CSV, TSV, ``label text`` lines and JSON Lines.

Labels are kept as strings, whether the file holds names (``positive``) or integer ids (``1``).

* CSV is read with the ``csv`` module, so quoted fields may hold commas and newlines; an example's line is
  the line where its row starts. A file whose rows split on ``;`` (not on ``,``) into the same two or more
  columns is read as semicolon-separated, as Excel writes CSV where the decimal mark is a comma.
* TSV is split on tabs with no quoting (as GLUE and most corpora write it): a ``"`` is ordinary text; unless the
  file is CSV-quoted with tabs (as pandas' ``to_csv(sep="\\t")`` writes): a quoted field holds a doubled quote
  (``""``), a tab or a line break, and the whole file reads strictly as such, in the same columns.
* ``label-text``: ``LABEL text...`` per line, the label being the first space/tab-separated field (SST-2,
  TREC).
* ``text-jsonl``: ``{"text": ..., "label": ...}`` (also ``sentence``; pairs with ``text_pair``/``sentence2``).

Multi-label data (a set of labels per text) is read by shape: a JSON list of labels
(``{"text": ..., "labels": ["acting", "music"]}``, an empty list for none) makes a JSON Lines file multi-label
(a plain label beside lists is a one-label set), and CSV, TSV and ``label-text`` files are read as multi-label when
``label_separator`` is set: the label cell is split on it (``acting|music``; an empty cell is an empty set). A
file read without it whose labels look like lists (``acting,music``) gets a warning naming the option.

Columns are chosen by ``ReadOptions`` (a header name or a 0-based index), else by header names, else the
label is the first or last column with fewer distinct values (the shorter on a tie) and the text is the
other one (with three columns: the two others, in order, are text and text pair).
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from tunecard.data.example import (TEXT_TASK, Corpus, CorpusStream, ReadOptions, TextExample, as_multi_label,
                                   look_alike_warnings)
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
        DataError: E104 a row with another column count, an empty label or broken quoting, E114 a column not
            found.
    """
    options = options or ReadOptions()
    return open_delimited(read_text_file(path, options.encoding), options, "csv").materialize()


def read_tsv(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read tab-separated values (no quoting). Same options and errors as :func:`read_csv`.

    Args:
        path: the file.
        options: encoding, header and columns; ``None`` fields are detected.
    """
    options = options or ReadOptions()
    return open_delimited(read_text_file(path, options.encoding), options, "tsv").materialize()


_SHAPE_ROWS = 200  # rows looked at to tell a semicolon-separated CSV file


def csv_delimiter(text_file: TextFile) -> str:
    """``,``, or ``;`` when the first rows all split on ``;`` into the same number (two or more) of columns and
    on ``,`` into one column or into differing numbers (Excel's CSV where the decimal mark is a comma)."""
    def shape(delimiter: str) -> Counter[int]:
        counts: Counter[int] = Counter()
        reader = csv.reader((line + "\n" for line in islice(text_file.iter_lines(), _SHAPE_ROWS)), delimiter=delimiter)
        try:
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    counts[len(cells)] += 1
        except csv.Error:  # a quote cut by the sample's end, or a stray one: the rows before it tell
            pass
        return counts

    semicolon = shape(";")
    if len(semicolon) != 1 or min(semicolon) < 2:
        return ","
    comma = shape(",")
    return "," if len(comma) == 1 and min(comma) >= 2 else ";"


_DOUBLED_QUOTE_CELL = re.compile(r'"(?:[^"]|"")*""(?:[^"]|"")*"')  # "...""..." : a quoted field holding a quote


def _quoted_tsv_survey(text_file: TextFile) -> _Survey | None:
    """The survey of a TSV file read as CSV-quoted on tabs (pandas' ``to_csv(sep="\\t")``), when the whole file
    reads strictly so into the same two or more columns; None otherwise. Asked only when a field on one line is in
    quotes with a doubled quote inside (``"say ""hi"" now"``, the TSV survey's ``quote_evidence``): a GLUE-style
    file, whose ``"`` are text, fails one of these. (A quote left open on a line is no evidence: in a GLUE-style
    file it could join lines up to the next stray quote.)"""
    try:
        survey = _Survey(text_file, "csv", "\t")
    except DataError:
        return None
    return survey if len(survey.counts) == 1 and min(survey.counts) >= 2 else None


def _rows(text_file: TextFile, fmt: str, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, cells) for every row with some text.

    TSV lines are split on tabs. CSV is read strictly: a quote opened and never closed, text right after a
    closing quote (``"ab"c``) or a carriage return inside an unquoted field is an error, where a lenient reader
    would swallow the rest of the file into one field, drop the quotes or start a row.
    """
    if fmt == "tsv":
        for number, line in enumerate(text_file.iter_lines(), start=1):
            cells = line.split("\t")
            if any(cell.strip() for cell in cells):
                yield number, cells
        return
    reader = csv.reader((line + "\n" for line in text_file.iter_lines()), strict=True, delimiter=delimiter)
    previous_end = 0
    while True:
        limit = csv.field_size_limit(_FIELD_LIMIT)  # a long text is data: the default limit is 128 KiB per field
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                raise DataError("E104", "malformed CSV: a quoted field opened on this line is never closed, so the "
                                "rest of the file would be one field", path=text_file.path, line=previous_end + 1,
                                fix='close the quote (a " inside a quoted field is written "").') from None
            if "new-line character" in str(error):
                raise DataError("E104", "malformed CSV: a carriage return (\\r) inside an unquoted field",
                                path=text_file.path, line=reader.line_num,
                                fix="remove the stray carriage return, or quote the field.") from None
            raise DataError("E104", f"malformed CSV: {error}", path=text_file.path, line=reader.line_num,
                            fix='check the quotes on this row: a quoted field ends with a quote followed by the '
                            'separator or the end of the line (a " inside it is written "").') from None
        finally:
            csv.field_size_limit(limit)
        start, previous_end = previous_end + 1, reader.line_num
        if any(cell.strip() for cell in cells):
            yield start, cells


class _Column:
    """What the header and label guesses need of one column, over the rows after the first: its distinct values
    (up to a cap) and their mean length."""

    CAP = 4096

    def __init__(self) -> None:
        self.values: set[int] = set()
        self.length = 0
        self.rows = 0

    def add(self, value: str) -> None:
        if len(self.values) < self.CAP:
            self.values.add(hash(value))
        self.length += len(value)
        self.rows += 1


class _Survey:
    """One pass over the rows: column counts, the first row, and per-column facts for the guesses."""

    def __init__(self, text_file: TextFile, fmt: str, delimiter: str = ",") -> None:
        self.path = text_file.path
        self.counts: Counter[int] = Counter()
        self.first_line: dict[int, int] = {}
        self.first: tuple[int, list[str]] | None = None
        self.rows = 0
        self.ends = {"first": _Column(), "last": _Column()}  # the first and last columns, rows after the first
        self.recurs: list[int | None] = []  # per cell of the first row: a later line where its column has it
        self.quote_evidence = False  # TSV: a cell is "...""..." (see _quoted_tsv_survey)
        for line, cells in _rows(text_file, fmt, delimiter):
            if fmt == "tsv" and not self.quote_evidence:
                self.quote_evidence = any('""' in cell and _DOUBLED_QUOTE_CELL.fullmatch(cell) for cell in cells)
            self.rows += 1
            self.counts[len(cells)] += 1
            self.first_line.setdefault(len(cells), line)
            if self.first is None:
                self.first = (line, cells)
                stripped = [cell.strip() for cell in cells]
                self.recurs = [None] * len(cells)
                continue
            self.ends["first"].add(cells[0].strip())
            self.ends["last"].add(cells[-1].strip())
            for i in range(min(len(cells), len(stripped))):
                if self.recurs[i] is None and stripped[i] and cells[i].strip() == stripped[i]:
                    self.recurs[i] = line

    def check_column_counts(self) -> int:
        if not self.rows:
            raise DataError("E103", "empty split: the file has no rows with text", path=self.path,
                            fix="point to the right file.")
        expected = self.counts.most_common(1)[0][0]
        if expected < 2:
            raise DataError("E104", "rows have a single column; a text and a label column are needed", path=self.path,
                            line=self.first[0], fix="check the separator (--format csv or tsv) or use --format "
                            "label-text.")
        wrong = [line for n, line in self.first_line.items() if n != expected]
        if wrong:
            line = min(wrong)
            found = next(n for n, first in self.first_line.items() if first == line)
            raise DataError("E104", f"malformed row: {found} column(s), the rest of the file has {expected}",
                            path=self.path, line=line,
                            fix="quote fields that contain the separator (CSV), or remove stray tabs (TSV).")
        return expected

    def guessed_label_column(self, n_columns: int, with_first: bool) -> int:
        """The first or last column with fewer distinct values (shorter values on a tie)."""
        first_cells = self.first[1]

        def score(column: int) -> tuple[int, float]:
            stats = self.ends["first" if column == 0 else "last"]
            distinct, length, rows = len(stats.values), stats.length, stats.rows
            if with_first or not rows:
                value = first_cells[column].strip()
                distinct += hash(value) not in stats.values and distinct < _Column.CAP
                length, rows = length + len(value), rows + 1
            return distinct, length / rows

        return min((n_columns - 1, 0), key=score)

    def check_guessed_label(self, label: int, n_columns: int, with_first: bool) -> None:
        """E114 when the column guessed to hold the labels has a different value in every one of 20 or more rows:
        an id column (``1001,pos,great film``) or a text, not labels; reading it as labels would make a class of
        each row."""
        stats = self.ends["first" if label == 0 else "last"]
        rows, distinct = stats.rows, len(stats.values)
        if with_first:
            rows += 1
            distinct += hash(self.first[1][label].strip()) not in stats.values
        if 20 <= rows < _Column.CAP and distinct == rows:
            raise DataError("E114", f"cannot tell which column holds the labels: column {label}, the likelier of the "
                            f"{'first and last' if n_columns > 2 else 'two'} columns, has a different value in each "
                            f"of its {rows} rows (an id or a text, not labels)", path=self.path,
                            fix="name the columns: --label-column N and --text-column M (0-based; in a config "
                            "label_column and text_column), or give the file a header row such as id,label,text.")

    def label_unseen(self, label: int) -> bool:
        """True when the first row's label cell is a value no other row has, in a column whose values repeat."""
        stats = self.ends["first" if label == 0 else "last"]
        return self.rows > 2 and self.recurs[label] is None and len(stats.values) < self.rows - 1


def open_delimited(text_file: TextFile, options: ReadOptions | None, fmt: str) -> CorpusStream:
    """Check a CSV or TSV file whole and return its examples as a :class:`CorpusStream`."""
    options = options or ReadOptions()
    delimiter = csv_delimiter(text_file) if fmt == "csv" else "\t"
    survey = _Survey(text_file, fmt, delimiter)
    quoted = _quoted_tsv_survey(text_file) if survey.quote_evidence else None
    quoted_tsv = quoted is not None
    if quoted_tsv:
        survey = quoted
    fmt_read = "csv" if quoted_tsv else fmt  # a CSV-quoted TSV file is read by the CSV reader, on tabs
    n_columns = survey.check_column_counts()
    warnings = list(text_file.warnings)
    if quoted_tsv:
        warnings.append(f"{text_file.path}: read with CSV quoting on tabs (as pandas' to_csv(sep='\\t') writes it): "
                        "a field in quotes may hold tabs and line breaks, and \"\" is a quote.")
    if delimiter == ";":
        warnings.append(f"{text_file.path}: read as semicolon-separated: its rows split on ';' into {n_columns} "
                        "columns, not on ','.")
    label, text, pair, header = _choose_columns(text_file.path, survey, n_columns, options, warnings)

    def examples() -> Iterator[TextExample]:
        rows = _rows(text_file, fmt_read, delimiter)
        if header:
            next(rows)
        for line, cells in rows:
            yield _example(text_file.path, line, cells[text], cells[label], cells[pair] if pair is not None else None,
                           options.label_separator)

    classes: set[str] = set()
    size = empty = 0
    for example in examples():
        classes.update(example.label_set)
        size += 1
        empty += not example.text.strip()
    if not size:
        raise DataError("E103", "empty split: the file has a header but no rows", path=text_file.path,
                        fix="point to the right file.")
    return _stream(text_file, fmt, size, classes, empty, warnings, lambda stream: examples(),
                   multi_label=options.label_separator is not None)


def _choose_columns(
    path: str, survey: _Survey, n_columns: int, options: ReadOptions, warnings: list[str]
) -> tuple[int, int, int | None, bool]:
    """Return (label, text, text pair, has header) column choices."""
    first = survey.first[1]
    named = any(isinstance(spec, str) and not spec.isdigit()
                for spec in (options.label_column, options.text_column, options.text_pair_column))
    header = options.header
    if header is None:
        header = named or _header_from_evidence(path, survey, n_columns, warnings)
    names = [cell.strip() for cell in first] if header else None

    label = _resolve(path, options.label_column, names, n_columns, "label")
    text = _resolve(path, options.text_column, names, n_columns, "text")
    pair = _resolve(path, options.text_pair_column, names, n_columns, "text pair")
    if names is not None:
        label = label if label is not None else _find_name(names, LABEL_NAMES)
        text = text if text is not None else _find_name(names, TEXT_NAMES)
        pair = pair if pair is not None or options.text_pair_column is not None else _find_name(names, PAIR_NAMES)
    if label is None:
        label = survey.guessed_label_column(n_columns, with_first=not header)
        survey.check_guessed_label(label, n_columns, with_first=not header)
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


def _header_from_evidence(path: str, survey: _Survey, n_columns: int, warnings: list[str]) -> bool:
    """Whether the first row is a header, from what the whole file shows; a guess is said in a warning.

    Evidence for a header: cells that are usual column names (label, text, y, ...). Evidence for an example:
    a cell of the first row that is also a value of its column further down (a header name is not a value).
    Both, or a single name among other words, leave it a guess.
    """
    first = survey.first[1]
    cells = [cell.strip() for cell in first]
    names = [i for i, cell in enumerate(cells) if cell.lower() in _KNOWN_NAMES]
    filled = [i for i, cell in enumerate(cells) if cell]
    recurring = [i for i in filled if survey.recurs[i] is not None]
    shown = preview(first, 120)
    if recurring:
        if names:
            i = recurring[0]
            warnings.append(f"{path}: the first row {shown} was read as an example, not a header: "
                            f"{preview(cells[names[0]])} is a usual column name, but {preview(cells[i])} is also a "
                            f"value of its column on line {survey.recurs[i]}. If it is a header, set header: true "
                            "(--header, or --set header=true).")
        return False
    if names:
        if len(names) < len(filled):
            warnings.append(f"{path}: the first row {shown} was read as a header because "
                            f"{preview(cells[names[0]])} is a usual column name. If it is an example, set "
                            "header: false (--no-header, or --set header=false).")
        return True
    label = survey.guessed_label_column(n_columns, with_first=False) if survey.rows > 1 else n_columns - 1
    if survey.label_unseen(label):
        warnings.append(f"{path}: the first row {shown} was read as a header because its label "
                        f"{preview(cells[label])} is used by no other row. If it is an example, set header: false "
                        "(--no-header, or --set header=false).")
        return True
    return False


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


FASTTEXT_PREFIX = "__label__"  # fastText's label marker; its multi-label lines start with several of them


def read_label_text(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read ``LABEL text`` lines (label = first field, separated by spaces or a tab), as SST-2 and TREC.

    Args:
        path: the file.
        options: the encoding.

    Raises:
        DataError: E104 a line with a label but no text.
    """
    options = options or ReadOptions()
    return open_label_text(read_text_file(path, options.encoding), options).materialize()


def open_label_text(text_file: TextFile, options: ReadOptions | None = None) -> CorpusStream:
    """Check a ``label text`` file whole and return its examples as a :class:`CorpusStream`."""
    separator = (options or ReadOptions()).label_separator

    def examples() -> Iterator[TextExample]:
        for number, line in enumerate(text_file.iter_lines(), start=1):
            if not line.strip():
                continue
            parts = line.strip().split(None, 1)
            if len(parts) < 2:
                raise DataError("E104", f"line has a label ({preview(parts[0])}) but no text", path=text_file.path,
                                line=number, fix="write the label, a space, then the text.")
            if parts[0].startswith(FASTTEXT_PREFIX) and parts[1].startswith(FASTTEXT_PREFIX):
                # fastText's multi-label line: the second label would silently become the text's first word
                labels = [word for word in line.split() if word.startswith(FASTTEXT_PREFIX)]
                raise DataError("E104", f"line has several fastText labels ({preview(' '.join(labels[:4]))}); a "
                                "label-text line holds one label field", path=text_file.path, line=number,
                                fix="for one label per text keep one; for multi-label join them into one field "
                                "with a separator (__label__a|__label__b text) and set label_separator: '|'.")
            yield _example(text_file.path, number, parts[1], parts[0], None, separator)

    return _checked_stream(text_file, "label-text", examples, multi_label=separator is not None)


def read_text_jsonl(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read ``{"text": ..., "label": ...}`` JSON Lines (keys as in CSV headers, or set in options).

    Args:
        path: the file.
        options: encoding and column (key) names.

    Raises:
        DataError: E111 bad JSON, E114 a key not found.
    """
    options = options or ReadOptions()
    return open_text_jsonl(read_text_file(path, options.encoding), options).materialize()


def open_text_jsonl(text_file: TextFile, options: ReadOptions | None = None) -> CorpusStream:
    """Check a classification JSONL file whole and return its examples as a :class:`CorpusStream`."""
    options = options or ReadOptions()

    def examples() -> Iterator[TextExample]:
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
            if isinstance(label, list):  # a list of labels: multi-label data (its shape decides)
                yield TextExample(text=text, label=None, text_pair=pair, line=line,
                                  labels=_label_list(text_file.path, line, label, label_key, "key"))
                continue
            if label is None or isinstance(label, dict):
                raise DataError("E104", f"label {preview(label)} is not a class name or id", path=text_file.path,
                                line=line, fix="give every example one label (a name or an integer id), or a list "
                                "of labels for multi-label data.")
            yield _example(text_file.path, line, text, str(label), pair, options.label_separator)

    return _checked_stream(text_file, "text-jsonl", examples, multi_label=options.label_separator is not None)


def _checked_stream(text_file: TextFile, fmt: str, examples, multi_label: bool = False) -> CorpusStream:
    """The check pass over every example; a file with any label list (JSON) is multi-label, its plain labels
    one-label sets."""
    classes: set[str] = set()
    size = empty = 0
    for example in examples():
        classes.update(example.label_set)
        multi_label = multi_label or example.labels is not None
        size += 1
        empty += not example.text.strip()
    return _stream(text_file, fmt, size, classes, empty, list(text_file.warnings), lambda stream: examples(),
                   multi_label=multi_label)


def _stream(text_file: TextFile, fmt: str, size: int, classes: set[str], empty: int, warnings: list[str],
            examples_of, multi_label: bool = False) -> CorpusStream:
    if not size:
        raise DataError("E103", "empty split: no examples", path=text_file.path, fix="point to the right file.")
    if empty:
        warnings.append(f"{text_file.path}: {empty} example(s) have an empty text; they are kept.")
    warnings.extend(look_alike_warnings(text_file.path, classes))
    if not multi_label and fmt != "text-jsonl":
        listed = _list_like_labels(classes)
        if listed:
            separator, found = listed
            warnings.append(f"{text_file.path}: labels such as {', '.join(map(repr, found))} look like lists of "
                            f"labels, each read as one class; for multi-label data pass label_separator "
                            f"{separator!r} (--label-separator '{separator}').")
    stream = CorpusStream(path=text_file.path, task=TEXT_TASK, format=fmt, size=size, labels_found=sorted(classes),
                          examples_of=examples_of, warnings=warnings)
    return as_multi_label(stream) if multi_label else stream


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


def _example(path: str, line: int, text: str, label: str, pair: str | None,
             separator: str | None = None) -> TextExample:
    if separator is not None:  # multi-label: the cell is a list of labels (empty: no label)
        parts = [part.strip() for part in label.split(separator)] if label.strip() else []
        if any(not part for part in parts):
            raise DataError("E104", f"empty label between separators in {preview(label)} (label_separator "
                            f"{separator!r})", path=path, line=line,
                            fix=f"write labels separated by one {separator!r}, e.g. a{separator}b; an empty cell "
                            "means no label.")
        # the parts are stripped and non-empty, all _label_list would check
        return TextExample(text=text, label=None, text_pair=pair, line=line, labels=sorted(set(parts)))
    label = label.strip()
    if not label:
        raise DataError("E104", "empty label", path=path, line=line, fix="give every example a label.")
    return TextExample(text=text, label=label, text_pair=pair, line=line)


def _label_list(path: str, line: int, values: list, column: str | int, what: str = "column",
                names: list[str] | None = None) -> list[str]:
    """A multi-label example's labels: names (or integer ids) as strings, stripped, sorted, each once.

    Args:
        path, line: where the example is (a file, or ``SOURCE[split]`` and a row).
        values: the labels as read.
        column: the column (or JSON key) that holds them, named in errors.
        what: ``column`` or ``key``, as the format calls it.
        names: ClassLabel names (Hugging Face datasets): an integer id is turned into its name.

    Raises:
        DataError: E104 a label that is null, a list or an object, empty, or an id without a name.
    """
    labels = []
    for value in values:  # what a label may be, as for one label per text: not null, a list or an object, or empty
        if names is not None and isinstance(value, int) and not 0 <= value < len(names):
            raise DataError("E104", f"label id {value} in the list {preview(values, 120)} of {what} {column!r} has "
                            f"no name in {preview(names, 200)}", path=path, line=line,
                            fix=f"give each label in {what} {column!r} as one of its ClassLabel's names or ids.")
        if value is None or isinstance(value, (list, dict)) or not str(value).strip():
            raise DataError("E104", f"label {preview(value)} in the list {preview(values, 120)} of {what} {column!r} "
                            "is not a class name or id", path=path, line=line,
                            fix=f'give each label as a non-empty name or an integer id: "{column}": ["a", "b"].')
        labels.append(names[value] if names is not None and isinstance(value, int) else str(value).strip())
    return sorted(set(labels))


# Characters that join labels in a cell when a file holds several per text (a multi-label file read without
# label_separator turns each combination into a class of its own).
LIST_SEPARATORS = (",", ";", "|")
LIST_SHARE = 0.2  # at least this share of the distinct labels (and two of them) look like lists: warn


def _list_like_labels(labels: set[str]) -> tuple[str, list[str]] | None:
    """(separator, examples) when the labels look like lists of other labels joined by a separator."""
    for separator in LIST_SEPARATORS:
        joined = sorted(label for label in labels if separator in label.strip(separator))
        if len(joined) >= 2 and len(joined) >= LIST_SHARE * len(labels):
            return separator, joined[:3]
    return None
