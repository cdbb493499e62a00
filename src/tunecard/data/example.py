"""The one internal representation every reader produces.

Token classification examples carry their tags in IOB2 (BIO) whatever scheme the file used; the original
scheme is kept on the corpus so it can be reported. Text classification examples carry label names (str).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

Task = Literal["token-classification", "text-classification"]
TOKEN_TASK: Task = "token-classification"
TEXT_TASK: Task = "text-classification"


@dataclass
class TokenExample:
    tokens: list[str]
    tags: list[str]  # IOB2, one per token
    line: int | None = None  # 1-based line of the file where the example starts
    doc_id: int | None = None  # index of the document (-DOCSTART- block) in its file; None if the file has none
    text: str | None = None  # original text when the file gave one (span JSONL)
    offsets: list[tuple[int, int]] | None = None  # character offsets of tokens in `text`


@dataclass
class TextExample:
    text: str
    label: str
    text_pair: str | None = None
    line: int | None = None


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

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def labels(self) -> list[str]:
        """Sorted label set: tag set (IOB2) for NER, class names for classification."""
        if self.task == TOKEN_TASK:
            return sorted({t for ex in self.examples for t in ex.tags})
        return sorted({ex.label for ex in self.examples})

    @property
    def entity_types(self) -> list[str]:
        return sorted({t[2:] for t in self.labels if t != "O"}) if self.task == TOKEN_TASK else []


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
    header: bool | None = None
    split: str | None = None  # for datasets dataset dicts / hub names

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
