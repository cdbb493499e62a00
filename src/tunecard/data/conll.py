"""CoNLL-style column files: one token per line, blank lines between sentences, ``-DOCSTART-`` lines
between documents.

The word is the first column, the tag the last (or ``ReadOptions.tag_column``); any number of columns is
allowed (CoNLL-2003 ``word POS chunk tag``, WNUT ``token<TAB>tag``, character-level Chinese ``char tag``).
When every token line contains a tab, columns are split on single tabs, so tokens may contain spaces;
otherwise on runs of spaces and tabs, where a token can never be or contain a space.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from tunecard.data.example import TOKEN_TASK, Corpus, ReadOptions, TokenExample
from tunecard.data.schemes import REPAIR_RULE_SHORT, check_prefix, detect_scheme, normalize_scheme, parse_tag, to_iob2
from tunecard.data.textfile import preview, read_text_file
from tunecard.errors import DataError

DOCSTART = "-DOCSTART-"
_SPACE_RUN = re.compile(r"[ \t]+")


def read_conll(path: str | Path, options: ReadOptions | None = None) -> Corpus:
    """Read a CoNLL column file into a token-classification corpus (tags converted to IOB2).

    Args:
        path: the file.
        options: encoding, scheme and tag column; ``None`` fields are detected.

    Raises:
        DataError: E101/E102/E103 (see :mod:`tunecard.data.textfile`), E104 malformed line, E105 not a tag.
    """
    options = options or ReadOptions()
    text_file = read_text_file(path, options.encoding)
    lines = text_file.lines
    kinds = [_line_kind(line) for line in lines]
    tab_separated = all("\t" in line for line, kind in zip(lines, kinds) if kind == "token")
    cells = [_split(line, tab_separated) if kind == "token" else None for line, kind in zip(lines, kinds)]
    n_columns = _expected_columns(text_file.path, cells, tab_separated)
    tag_column = _tag_column(text_file.path, options.tag_column, n_columns)

    has_docstart = "docstart" in kinds
    first_content = next(kind for kind in kinds if kind != "blank")
    docs_seen = 0
    examples: list[TokenExample] = []
    tokens: list[str] = []
    tags: list[str] = []
    start_line = 0

    def flush() -> None:
        if tokens:
            # Sentences before a first -DOCSTART- form document 0 too, so the ids count from 0 either way.
            doc_id = docs_seen - (first_content == "docstart") if has_docstart else None
            examples.append(TokenExample(tokens=list(tokens), tags=list(tags), line=start_line, doc_id=doc_id))
            tokens.clear()
            tags.clear()

    for number, (kind, row) in enumerate(zip(kinds, cells), start=1):
        if kind == "token":
            if not tokens:
                start_line = number
            if row[0] == "":
                raise DataError("E104", "empty token in column 0", path=text_file.path, line=number,
                                fix="remove the stray tab at the start of the line.")
            tokens.append(row[0])
            tags.append(row[tag_column].strip())
            continue
        flush()
        if kind == "docstart":
            docs_seen += 1
    flush()
    corpus = make_token_corpus(text_file.path, "conll", examples, options, text_file.warnings, token_per_line=True,
                               tag_column=tag_column)
    return corpus


def _line_kind(line: str) -> str:
    # Any whitespace only line is blank: WNUT-17 separates sentences with a single tab, and a stray CR (or
    # form feed, NBSP) alone on a line carries no token either.
    stripped = line.strip()
    if not stripped:
        return "blank"
    if stripped.split(None, 1)[0] == DOCSTART:
        return "docstart"
    return "token"


def _split(line: str, tab_separated: bool) -> list[str]:
    if tab_separated:
        return line.rstrip(" \t").split("\t")  # tokens keep their spaces; trailing blanks are noise
    return _SPACE_RUN.split(line.strip(" \t"))


def _expected_columns(path: str, cells: list[list[str] | None], tab_separated: bool) -> int:
    """The column count of most token lines; every token line must have it."""
    counts = Counter(len(row) for row in cells if row is not None)
    if not counts:
        raise DataError("E103", "empty split: the file holds no token lines (only blank or -DOCSTART- lines)",
                        path=path, fix="point to the right file, or leave this split out.")
    expected = counts.most_common(1)[0][0]
    if expected < 2:
        line = next(i for i, row in enumerate(cells, start=1) if row is not None)
        raise DataError("E104", "token lines have a single column; a CoNLL file needs a token and a tag column",
                        path=path, line=line,
                        fix="add the tag column, or pass --format if this is not a CoNLL file.")
    for number, row in enumerate(cells, start=1):
        if row is not None and len(row) != expected:
            separator = "tabs" if tab_separated else "spaces/tabs"
            raise DataError(
                "E104",
                f"malformed line: {len(row)} column(s) separated by {separator}, the rest of the file has {expected}",
                path=path,
                line=number,
                fix="give every token line the same columns (token first, tag last); a token cannot contain "
                "a space unless columns are tab-separated; separate sentences with an empty line.",
            )
    return expected


def _tag_column(path: str, requested: int | None, n_columns: int) -> int:
    if requested is None:
        return n_columns - 1
    column = requested + n_columns if requested < 0 else requested
    if not 1 <= column < n_columns:
        raise DataError("E104", f"tag column {requested} does not exist: token lines have {n_columns} columns "
                        "(column 0 is the token)", path=path, fix=f"pass --tag-column between 1 and {n_columns - 1}.")
    return column


def make_token_corpus(
    path: str,
    fmt: str,
    examples: list[TokenExample],
    options: ReadOptions,
    warnings: list[str],
    *,
    token_per_line: bool = False,
    tag_column: int | None = None,
) -> Corpus:
    """Check the tags of raw examples, find their scheme and convert them to IOB2 in place.

    Args:
        path: the file, for errors and the corpus.
        fmt: the format name stored on the corpus.
        examples: examples whose tags are still in the file's scheme.
        options: ``options.scheme`` forces the scheme; otherwise it is detected.
        warnings: warnings gathered so far (kept on the corpus).
        token_per_line: token ``i`` of an example is on line ``example.line + i`` (CoNLL), so errors can
            name the exact line.
        tag_column: the tag column, named in errors.

    Raises:
        DataError: E105 a tag is not a tag or does not fit the scheme, E116 unknown scheme name.
    """
    first_line: dict[str, int | None] = {}  # distinct tags with the line of their first use
    for example in examples:
        for i, tag in enumerate(example.tags):
            if tag not in first_line:
                first_line[tag] = example.line + i if token_per_line and example.line is not None else example.line
    where = f" in column {tag_column}" if tag_column is not None else ""
    for tag, line in first_line.items():
        try:
            parse_tag(tag)
        except DataError:
            raise DataError("E105", f"{preview(tag)}{where} is not a tag (expected O, or B-/I-/E-/S-/M-/L-/U- and a "
                            "type)", path=path, line=line, fix="check the tag column (--tag-column) and that every "
                            "token line has a tag; integer tag ids need their names (use a datasets folder).") from None
    if options.scheme:
        scheme = normalize_scheme(options.scheme)
    else:
        scheme = detect_scheme(ex.tags for ex in examples)
        if scheme == "IOBES" and Path(path).suffix.lower() == ".bmes" and "I" not in {t[:1] for t in first_line}:
            scheme = "BMES"  # B/E/S only fits both; the extension decides
    for tag, line in first_line.items():
        check_prefix(tag, scheme, path=path, line=line)

    repaired = 0
    first_repair: int | None = None
    for example in examples:
        example.tags, n = to_iob2(example.tags, scheme)
        if n and first_repair is None:
            first_repair = example.line
        repaired += n
    warnings = list(warnings)
    if repaired:
        warnings.append(f"{path}: {repaired} invalid {scheme} tag(s) repaired (first in the example at line "
                        f"{first_repair}) by the conlleval rule: {REPAIR_RULE_SHORT}")
    empty = sum(1 for ex in examples if not ex.tokens)
    if empty:
        warnings.append(f"{path}: {empty} example(s) have no tokens; they are kept.")
    return Corpus(path=path, task=TOKEN_TASK, format=fmt, examples=examples, scheme=scheme, repaired=repaired,
                  warnings=warnings)
