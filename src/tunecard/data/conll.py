"""CoNLL-style column files: one token per line, blank lines between sentences, ``-DOCSTART-`` lines
between documents.

The word is the first column (the second when the first numbers each sentence's tokens 1, 2, 3, ..., as
GermEval 2014 and CoNLL-U write), the tag the last (or ``ReadOptions.tag_column``); any number of columns is
allowed (CoNLL-2003 ``word POS chunk tag``, WNUT ``token<TAB>tag``, character-level Chinese ``char tag``).
When every token line contains a tab, columns are split on single tabs, so tokens may contain spaces (spaces
before or after a token are removed, and counted in a warning); otherwise on runs of spaces and tabs, where a
token can never be or contain a space.

The file is read in passes, none of which holds more than one sentence: its layout (which separator, how many
columns), then its tokens and tags (every error, the scheme), then the examples.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tunecard.data.example import TOKEN_TASK, Corpus, CorpusStream, ReadOptions, TokenExample, look_alike_warnings
from tunecard.data.schemes import (REPAIR_RULE_SHORT, SchemeDetector, check_prefix, normalize_scheme, parse_tag,
                                   tag_shape_hint, to_iob2)
from tunecard.data.textfile import TextFile, preview, read_text_file
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
    return open_conll(read_text_file(path, options.encoding), options).materialize()


@dataclass
class _Layout:
    tab_separated: bool
    tag_column: int
    has_docstart: bool
    first_is_docstart: bool
    comments: int = 0  # comment lines before sentences (# id ..., # sent_id = 1), skipped
    first_comment: int | None = None
    token_column: int = 0  # 1 when column 0 numbers the tokens of each sentence (GermEval 2014, CoNLL-U)


def open_conll(text_file: TextFile, options: ReadOptions | None = None) -> CorpusStream:
    """Check a CoNLL file whole and return its examples as a :class:`CorpusStream`.

    Args:
        text_file: the opened file (whole or streamed).
        options: scheme and tag column; ``None`` fields are detected.
    """
    options = options or ReadOptions()
    layout = _layout(text_file, options)
    check = TagCheck(text_file.path, options, tag_column=layout.tag_column, token_per_line=True)
    spaced = _Spaced()
    size = 0
    for example in _raw_examples(text_file, layout, spaced):
        check.add(example)
        size += 1
    scheme = check.finish()
    warnings = list(text_file.warnings)
    if spaced.count:
        warnings.append(f"{text_file.path}: {spaced.count} token(s) had spaces before or after them (first at line "
                        f"{spaced.first_line}); they were removed (columns are tab-separated, so only the tabs "
                        "separate).")
    if layout.token_column:
        warnings.append(f"{text_file.path}: column 0 numbers the tokens of each sentence (1, 2, 3, ...); the words "
                        f"were read from column 1, the tags from column {layout.tag_column}"
                        + (" (the last; --tag-column chooses another)." if options.tag_column is None else "."))
    if layout.comments:
        warnings.append(f"{text_file.path}: {layout.comments} comment line(s) before sentences (starting with '# ', "
                        f"first at line {layout.first_comment}) were skipped.")
    warnings.extend(check.warnings())

    def examples_of(stream: CorpusStream) -> Iterator[TokenExample]:
        yield from check.converted(_raw_examples(text_file, layout, _Spaced()), stream)

    return CorpusStream(path=text_file.path, task=TOKEN_TASK, format="conll", size=size,
                        labels_found=check.entity_types, examples_of=examples_of, scheme=scheme, warnings=warnings)


class _Spaced:
    """Tokens that had spaces around them (tab-separated columns)."""

    def __init__(self) -> None:
        self.count = 0
        self.first_line: int | None = None


def _line_kind(line: str) -> str:
    # Any whitespace only line is blank: WNUT-17 separates sentences with a single tab, and a stray CR (or
    # form feed, NBSP) alone on a line carries no token either.
    stripped = line.strip()
    if not stripped:
        return "blank"
    if stripped.split(None, 1)[0] == DOCSTART:
        return "docstart"
    return "token"


def _kinds(text_file: TextFile) -> Iterator[tuple[int, str, str]]:
    """``(line number, line, kind)``; kind is ``blank``, ``docstart``, ``token`` or ``comment``: a line before a
    sentence's first token (MultiCoNER's ``# id 5f2c domain=en``, CoNLL-U's ``# sent_id = 1``) that starts with
    ``#`` and a space or tab and does not end in a tag. A ``#`` token (``#  O``) ends in its tag, so it is a token."""
    at_start = True
    for number, line in enumerate(text_file.iter_lines(), start=1):
        kind = _line_kind(line)
        if kind == "token" and at_start and is_comment_line(line):
            kind = "comment"
        at_start = kind != "token"
        yield number, line, kind


def is_comment_line(line: str) -> bool:
    """Starts with ``#`` and a space or tab, and does not end in a tag, whether its columns are split on tabs
    (``#<TAB>B-job title``) or on spaces (a comment if it is before a sentence)."""
    if not (line.startswith("#") and (len(line) == 1 or line[1] in " \t")):
        return False
    for last in {line.rstrip(" \t").split("\t")[-1].strip(), line.split()[-1]}:
        try:
            parse_tag(last)
        except DataError:
            continue
        return False
    return True


def _split(line: str, tab_separated: bool) -> list[str]:
    if tab_separated:
        return line.rstrip(" \t").split("\t")  # tokens keep their spaces; trailing blanks are noise
    return _SPACE_RUN.split(line.strip(" \t"))


def _layout(text_file: TextFile, options: ReadOptions) -> _Layout:
    """Which separator, how many columns (every token line must have them), where the tag is."""
    all_tabs = True
    has_docstart = False
    first_kind = None
    comments = 0
    first_comment = None
    for number, line, kind in _kinds(text_file):
        if kind == "comment":
            comments += 1
            first_comment = first_comment or number
        if kind in ("blank", "comment"):
            continue
        first_kind = first_kind or kind
        if kind == "docstart":
            has_docstart = True
        elif "\t" not in line:
            all_tabs = False
    counts: Counter[int] = Counter()
    first_line: dict[int, int] = {}
    position = 0  # the token's number in its sentence, 1-based
    numbered = True  # column 0 is 1, 2, 3, ... in every sentence
    for number, line, kind in _kinds(text_file):
        if kind == "token":
            cells = _split(line, all_tabs)
            n = len(cells)
            counts[n] += 1
            first_line.setdefault(n, number)
            position += 1
            numbered = numbered and cells[0].strip() == str(position)
        else:
            position = 0
    path = text_file.path
    if not counts:
        raise DataError("E103", "empty split: the file holds no token lines (only blank or -DOCSTART- lines)",
                        path=path, fix="point to the right file, or leave this split out.")
    expected = counts.most_common(1)[0][0]
    if expected < 2:
        raise DataError("E104", "token lines have a single column; a CoNLL file needs a token and a tag column",
                        path=path, line=min(first_line.values()),
                        fix="add the tag column, or pass --format if this is not a CoNLL file.")
    wrong = [line for n, line in first_line.items() if n != expected]
    if wrong:
        line = min(wrong)
        found = next(n for n, first in first_line.items() if first == line)
        separator = "tabs" if all_tabs else "spaces/tabs"
        raise DataError(
            "E104",
            f"malformed line: {found} column(s) separated by {separator}, the rest of the file has {expected}",
            path=path,
            line=line,
            fix="give every token line the same columns (token first, tag last); a token cannot contain "
            "a space unless columns are tab-separated; separate sentences with an empty line.",
        )
    token_column = 1 if numbered and expected >= 3 else 0
    return _Layout(tab_separated=all_tabs, tag_column=_tag_column(path, options.tag_column, expected, token_column),
                   has_docstart=has_docstart, first_is_docstart=first_kind == "docstart", comments=comments,
                   first_comment=first_comment, token_column=token_column)


def _raw_examples(text_file: TextFile, layout: _Layout, spaced: _Spaced) -> Iterator[TokenExample]:
    """The sentences with their tags as the file writes them (any scheme)."""
    docs_seen = 0
    tokens: list[str] = []
    tags: list[str] = []
    start_line = 0
    # Sentences before a first -DOCSTART- form document 0 too, so the ids count from 0 either way.
    first_doc = 1 if layout.first_is_docstart else 0
    for number, line, kind in _kinds(text_file):
        if kind == "comment":
            continue
        if kind == "token":
            row = _split(line, layout.tab_separated)
            if not tokens:
                start_line = number
            token = row[layout.token_column]
            if layout.tab_separated:
                token = token.strip(" ")
                if len(token) != len(row[layout.token_column]):
                    spaced.count += 1
                    spaced.first_line = spaced.first_line or number
            if token == "":
                what = (f"empty token in column {layout.token_column}" if row[layout.token_column] == "" else
                        f"the token in column {layout.token_column} is only spaces")
                raise DataError("E104", what, path=text_file.path, line=number,
                                fix="remove the stray tab or spaces at the start of the line.")
            tokens.append(token)
            tags.append(row[layout.tag_column].strip())
            continue
        if tokens:
            yield TokenExample(tokens=tokens, tags=tags, line=start_line,
                               doc_id=docs_seen - first_doc if layout.has_docstart else None)
            tokens, tags = [], []
        if kind == "docstart":
            docs_seen += 1
    if tokens:
        yield TokenExample(tokens=tokens, tags=tags, line=start_line,
                           doc_id=docs_seen - first_doc if layout.has_docstart else None)


def _tag_column(path: str, requested: int | None, n_columns: int, token_column: int = 0) -> int:
    if requested is None:
        return n_columns - 1
    column = requested + n_columns if requested < 0 else requested
    if not token_column < column < n_columns:
        numbers = "column 0 numbers the tokens, column 1 is the token" if token_column else "column 0 is the token"
        raise DataError("E104", f"tag column {requested} does not exist: token lines have {n_columns} columns "
                        f"({numbers})", path=path, fix=f"pass --tag-column between {token_column + 1} and "
                        f"{n_columns - 1}.")
    return column


class TagCheck:
    """The tags of a token-classification file, fed one raw example at a time: every distinct tag with the line
    of its first use, the scheme (given or detected), and then each example converted to IOB2 with its repairs
    counted.

    Args:
        path: the file, for errors.
        options: ``options.scheme`` forces the scheme; otherwise it is detected.
        tag_column: the tag column, named in errors.
        token_per_line: token ``i`` of an example is on line ``example.line + i`` (CoNLL), so errors can name
            the exact line.
    """

    def __init__(self, path: str, options: ReadOptions, *, tag_column: int | None = None,
                 token_per_line: bool = False) -> None:
        self.path = path
        self.options = options
        self.tag_column = tag_column
        self.token_per_line = token_per_line
        self.first_line: dict[str, int | None] = {}  # distinct tags with the line of their first use
        self.detector = SchemeDetector(lenient=True)
        self.empty = 0
        self.scheme: str | None = None

    def add(self, example: TokenExample) -> None:
        for i, tag in enumerate(example.tags):
            if tag not in self.first_line:
                self.first_line[tag] = (example.line + i if self.token_per_line and example.line is not None
                                        else example.line)
        if not self.options.scheme:
            self.detector.add(example.tags)
        if not example.tokens:
            self.empty += 1

    def finish(self) -> str:
        """Check every distinct tag and decide the scheme.

        Raises:
            DataError: E105 a tag is not a tag or does not fit the scheme, E116 unknown scheme name.
        """
        where = f" in column {self.tag_column}" if self.tag_column is not None else ""
        for tag, line in self.first_line.items():
            try:
                parse_tag(tag)
            except DataError:
                hint = tag_shape_hint(tag) if isinstance(tag, str) else None
                raise DataError("E105", f"{preview(tag)}{where} is not a tag (expected O, or B-/I-/E-/S-/M-/L-/U- and "
                                "a type)", path=self.path, line=line, fix=f"{hint}." if hint else "check the tag column "
                                "(--tag-column) and that every token line has a tag; integer tag ids need their "
                                "names (use a datasets folder).") from None
        if self.options.scheme:
            scheme = normalize_scheme(self.options.scheme)
        else:
            scheme = self.detector.scheme
            if scheme == "IOBES" and Path(self.path).suffix.lower() == ".bmes" and "I" not in {
                    t[:1] for t in self.first_line}:
                scheme = "BMES"  # B/E/S only fits both; the extension decides
        for tag, line in self.first_line.items():
            check_prefix(tag, scheme, path=self.path, line=line)
        self.scheme = scheme
        return scheme

    @property
    def entity_types(self) -> list[str]:
        return sorted({parse_tag(tag)[1] for tag in self.first_line if tag != "O"})

    def warnings(self) -> list[str]:
        """Warnings known once every example was added (the repairs come with the conversion)."""
        found = []
        if self.empty:
            found.append(f"{self.path}: {self.empty} example(s) have no tokens; they are kept.")
        return found + look_alike_warnings(self.path, self.entity_types, "entity types")

    def converted(self, examples: Iterable[TokenExample], stream: CorpusStream) -> Iterator[TokenExample]:
        """The examples with IOB2 tags; at the end, the repairs on ``stream``."""
        repaired = 0
        first_repair: int | None = None
        for example in examples:
            example.tags, n = to_iob2(example.tags, self.scheme)
            if n and first_repair is None:
                first_repair = example.line
            repaired += n
            yield example
        stream.repaired = repaired
        stream.late_warnings = [] if not repaired else [
            f"{self.path}: {repaired} invalid {self.scheme} tag(s) repaired (first in the example at line "
            f"{first_repair}) by the conlleval rule: {REPAIR_RULE_SHORT}"]


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
    """Check the tags of raw examples held in a list, find their scheme and convert them to IOB2 in place.

    Args:
        path: the file, for errors and the corpus.
        fmt: the format name stored on the corpus.
        examples: examples whose tags are still in the file's scheme.
        options: ``options.scheme`` forces the scheme; otherwise it is detected.
        warnings: warnings gathered so far (kept on the corpus).
        token_per_line: token ``i`` of an example is on line ``example.line + i`` (CoNLL).
        tag_column: the tag column, named in errors.

    Raises:
        DataError: E105 a tag is not a tag or does not fit the scheme, E116 unknown scheme name.
    """
    check = TagCheck(path, options, tag_column=tag_column, token_per_line=token_per_line)
    for example in examples:
        check.add(example)
    scheme = check.finish()
    stream = CorpusStream(path=path, task=TOKEN_TASK, format=fmt, size=len(examples),
                          labels_found=check.entity_types, scheme=scheme, warnings=list(warnings),
                          examples_of=lambda stream: check.converted(examples, stream))
    corpus = stream.materialize()
    corpus.warnings = [*warnings, *stream.late_warnings, *check.warnings()]
    return corpus
