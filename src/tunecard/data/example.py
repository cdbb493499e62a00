"""The one internal representation every reader produces.

Token classification examples carry their tags in IOB2 (BIO) whatever scheme the file used; the original
scheme is kept on the corpus so it can be reported. Text classification examples carry label names (str); in a
multi-label corpus each example carries its set of label names instead (`labels`, possibly empty).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from itertools import islice
from typing import Literal

Task = Literal["token-classification", "text-classification", "multi-label-classification"]
TOKEN_TASK: Task = "token-classification"
TEXT_TASK: Task = "text-classification"
MULTI_LABEL_TASK: Task = "multi-label-classification"
CLASSIFICATION_TASKS = (TEXT_TASK, MULTI_LABEL_TASK)


def _label_key(label: str) -> str:
    """What two spellings of one label share: case, spaces, and a number's format (``1``, ``1.0``, `` 01``)."""
    text = " ".join(label.split()).casefold()
    try:
        number = float(text)
    except ValueError:
        return text
    return repr(int(number)) if number.is_integer() else repr(number)


def look_alike_warnings(path: str, labels, what: str = "labels") -> list[str]:
    """The warning (none or one) naming the labels of one file that differ only in case, spaces or the format of
    a number (``positive``/``Positive``, ``1``/``1.0``): each is trained as a class of its own, seldom meant."""
    groups: dict[str, list[str]] = {}
    for label in sorted(set(labels)):
        groups.setdefault(_label_key(label), []).append(label)
    alike = [group for group in groups.values() if len(group) > 1]
    if not alike:
        return []
    shown = "; ".join(" / ".join(map(repr, group)) for group in alike[:5])
    more = f" and {len(alike) - 5} more" if len(alike) > 5 else ""
    return [f"{path}: {what} that differ only in case, spaces or number format: {shown}{more}; each is a class of "
            "its own. If they are one, write them the same way."]


@dataclass
class TokenExample:
    tokens: list[str]
    tags: list[str]  # IOB2, one per token
    line: int | None = None  # 1-based line of the file where the example starts
    doc_id: int | None = None  # index of the document (-DOCSTART- block) in its file; None if the file has none
    text: str | None = None  # original text when the file gave one (span JSONL)
    offsets: list[tuple[int, int]] | None = None  # character offsets of tokens in `text`
    # span JSONL: the gold spans (start, end, label) as character offsets into `text`, so evaluation scores
    # predicted against gold character spans whatever the words are
    spans: list[tuple[int, int, str]] | None = None


@dataclass
class TextExample:
    text: str
    label: str | None  # the class (None in a multi-label corpus)
    text_pair: str | None = None
    line: int | None = None
    labels: list[str] | None = None  # multi-label: the example's labels, sorted, without duplicates (may be empty)

    @property
    def label_set(self) -> list[str]:
        """The example's labels: its set (multi-label) or its one class."""
        return self.labels if self.labels is not None else [self.label]


def as_multi_label(corpus):
    """A text-classification :class:`Corpus` or :class:`CorpusStream` as multi-label data: each example's class
    becomes a one-label set (a file with one label per text read for a multi-label task). A corpus is changed in
    place, a stream converts each example as it is read; either is returned."""
    if corpus.task != TEXT_TASK:
        return corpus
    corpus.task = MULTI_LABEL_TASK
    if isinstance(corpus, CorpusStream):
        read = corpus.examples_of
        corpus.examples_of = lambda stream: (_one_label_set(example) for example in read(stream))
    else:
        for example in corpus.examples:
            _one_label_set(example)
    return corpus


def _one_label_set(example: TextExample) -> TextExample:
    if example.labels is None:
        example.labels, example.label = [example.label], None
    return example


@dataclass
class Corpus:
    """The content of one file (or one split of a datasets dataset)."""

    path: str
    task: Task
    format: str
    examples: list = field(default_factory=list)
    scheme: str | None = None  # tag scheme found in (or given for) the file: IOB1, IOB2, IOBES, BMES, BILOU
    repaired: int = 0  # invalid tag sequences repaired (see tunecard.data.schemes.REPAIR_RULE)
    warnings: list[str] = field(default_factory=list)
    span_counts: dict | None = None  # span JSONL: see SPAN_COUNTS

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def labels(self) -> list[str]:
        """Sorted label set: tag set (IOB2) for NER, class names for classification."""
        if self.task == TOKEN_TASK:
            return sorted({t for ex in self.examples for t in ex.tags})
        if self.task == MULTI_LABEL_TASK:
            return sorted({label for ex in self.examples for label in ex.labels})
        return sorted({ex.label for ex in self.examples})

    @property
    def entity_types(self) -> list[str]:
        return sorted({t[2:] for t in self.labels if t != "O"}) if self.task == TOKEN_TASK else []


# What a span JSONL read counts (Corpus.span_counts): spans in the file, overlapping pairs, spans dropped by
# `overlapping_spans`, tokens split where a span starts or ends inside them (training reads), and spans whose
# start or end falls inside a word (evaluation reads: such a span can only be missed).
SPAN_COUNTS = ("spans", "overlapping_pairs", "dropped_spans", "split_tokens", "spans_inside_words")


@dataclass
class CorpusStream:
    """A corpus whose file was checked whole (every error is raised before the first example) and whose examples
    are read again from the file at every iteration, so none is held: ``tunecard evaluate`` on a large file.

    ``labels_found`` (entity types for NER, classes for classification), ``size`` and ``scheme`` are known
    before iterating; ``repaired`` and the warnings about repairs are complete once an iteration has finished.
    """

    path: str
    task: Task
    format: str
    size: int
    labels_found: list[str]
    examples_of: Callable[["CorpusStream"], Iterator]  # one pass over the file; may set repaired/late warnings
    scheme: str | None = None
    warnings: list[str] = field(default_factory=list)
    repaired: int = 0
    late_warnings: list[str] = field(default_factory=list)
    span_counts: dict | None = None

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator:
        return self.examples_of(self)

    def chunks(self, size: int) -> Iterator[list]:
        """The examples in lists of at most ``size``."""
        examples = iter(self)
        while chunk := list(islice(examples, size)):
            yield chunk

    @property
    def all_warnings(self) -> list[str]:
        return [*self.warnings, *self.late_warnings]

    @property
    def entity_types(self) -> list[str]:
        return self.labels_found if self.task == TOKEN_TASK else []

    def materialize(self) -> Corpus:
        """Every example in a :class:`Corpus`."""
        examples = list(self)
        return Corpus(path=self.path, task=self.task, format=self.format, examples=examples, scheme=self.scheme,
                      repaired=self.repaired, warnings=self.all_warnings, span_counts=self.span_counts)


@dataclass
class ReadOptions:
    """How to read a file. Every field None means: detect it."""

    format: str | None = None  # conll, jsonl, spans, hf, csv, tsv, label-text, text-jsonl
    scheme: str | None = None  # IOB1, IOB2, IOBES, BMES, BILOU
    encoding: str | None = None  # default utf-8 (a BOM is accepted with a warning)
    tag_column: int | None = None  # CoNLL: 0-based column of the tag; default last
    text_column: str | int | None = None
    text_pair_column: str | int | None = None
    label_column: str | int | None = None
    label_separator: str | None = None  # CSV/TSV: the label cell holds several labels split on this (multi-label)
    header: bool | None = None
    split: str | None = None  # for datasets dataset dicts / hub names
    overlapping_spans: str | None = None  # span JSONL: error (default), longest or first
    split_at_spans: bool = False  # span JSONL: cut words where a span starts or ends inside them (training)

    def __post_init__(self):
        # A column given as "2" (a command-line option, a quoted YAML value) is the index 2, as 2 is.
        for name in ("text_column", "text_pair_column", "label_column"):
            value = getattr(self, name)
            if isinstance(value, str) and value.lstrip("-").isdigit():
                setattr(self, name, int(value))

    @classmethod
    def of(cls, settings) -> "ReadOptions":
        """The reading fields of any object that has them (a TrainConfig)."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)})
