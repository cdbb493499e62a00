"""Entity-level scoring of word-level tag sequences, with the numbers seqeval (and conlleval) give.

Two ways to read entities out of tags:

* ``mode="default"`` reproduces seqeval's default ``get_entities`` (itself a port of conlleval.pl): it
  accepts B/I/E/S/O prefixes and is lenient with malformed sequences (``I-X`` after ``O`` opens an
  entity, ``I-X`` after ``B-Y`` closes ``Y`` and opens ``X``, ...).
* ``mode="strict"`` reproduces seqeval ``mode="strict"`` for a given ``scheme`` (IOB2, IOBES, BILOU):
  only well-formed chunks of that scheme count (``I-X`` after ``O`` is no entity in IOB2, ``B-X`` with
  no ``E-X`` is no entity in IOBES).

Why the span extraction is written here instead of calling seqeval: evaluation must stream. The scorer
accumulates counts sentence by sentence, so evaluating 100k sentences keeps no full prediction lists,
whereas seqeval wants every gold and predicted sequence in memory at once, and its strict mode pulls its
own scheme classes. ``tests/test_metrics_entities.py`` proves the spans and numbers equal seqeval's
(exhaustively on short sequences, and hypothesis property tests over random, malformed corpora).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import zip_longest
from typing import Iterable, Sequence

from tunecard.errors import ConfigError, DataError

Entity = tuple[str, int, int]  # (type, start, end exclusive)

MODES = ("default", "strict")
MISSED = "(missed)"  # confusion column: a gold entity whose boundaries no prediction has

# Codes of the errors raised by the metrics package (see docs/metrics.md).
INVALID_TAG = "E160"
BAD_MODE = "E260"
LENGTH_MISMATCH = "E261"

_DEFAULT_PREFIXES = "BIESO"


# --------------------------------------------------------------------------------------------------
# default mode: seqeval get_entities / conlleval
# --------------------------------------------------------------------------------------------------


def _default_prefix_and_type(tag: str) -> tuple[str, str]:
    # Same parsing as seqeval: first character is the prefix, the type is what follows the first '-'
    # ("B-creative-work" -> "creative-work"); no type at all ("B", "O") reads as "_".
    return tag[0], tag[1:].split("-", maxsplit=1)[-1] or "_"


def _chunk_ends(prev_prefix: str, prefix: str, prev_type: str, type_: str) -> bool:
    """seqeval ``end_of_chunk``: did a chunk end on the previous word?"""
    if prev_prefix in "ES":
        return True
    if prev_prefix in "BI" and prefix in "BSO":
        return True
    return prev_prefix != "O" and prev_type != type_


def _chunk_starts(prev_prefix: str, prefix: str, prev_type: str, type_: str) -> bool:
    """seqeval ``start_of_chunk``: does a chunk start on this word?"""
    if prefix in "BS":
        return True
    if prev_prefix in "ESO" and prefix in "IE":
        return True
    return prefix != "O" and prev_type != type_


def _default_entities(tags: Sequence[str], where: str) -> list[Entity]:
    for position, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag or tag[0] not in _DEFAULT_PREFIXES:
            # seqeval only warns here, and an unknown prefix with no type can then leave a chunk open
            # across sentence boundaries; refusing is the only way to keep the numbers meaningful.
            raise DataError(
                INVALID_TAG,
                f"{where}tag {tag!r} at position {position} is not a B-/I-/E-/S- tag or 'O'.",
                fix="use BIO/BIOES tags; for BILOU (L-/U-) tags score with mode='strict', scheme='BILOU'.",
            )
    entities: list[Entity] = []
    prev_prefix, prev_type, begin = "O", "", 0
    # The trailing "O" closes the last chunk; seqeval puts the same "O" between sentences, so scoring
    # sentence by sentence gives exactly its spans (a chunk never survives an "O").
    for i, tag in enumerate([*tags, "O"]):
        prefix, type_ = _default_prefix_and_type(tag)
        if _chunk_ends(prev_prefix, prefix, prev_type, type_):
            entities.append((prev_type, begin, i))
        if _chunk_starts(prev_prefix, prefix, prev_type, type_):
            begin = i
        prev_prefix, prev_type = prefix, type_
    return entities


# --------------------------------------------------------------------------------------------------
# strict mode: seqeval scheme.Tokens.entities
# --------------------------------------------------------------------------------------------------

_ANY, _SAME, _DIFF = "any", "same", "diff"
Pattern = tuple[str, str, str]  # (previous prefixes, current prefixes, type condition)


@dataclass(frozen=True)
class _Scheme:
    """A tag scheme as seqeval's strict mode defines it: prefix patterns that start, continue, end."""

    name: str
    allowed: str
    start: tuple[Pattern, ...]
    inside: tuple[Pattern, ...]
    end: tuple[Pattern, ...]


_ALL = "IOBESUL"
SCHEMES: dict[str, _Scheme] = {
    "IOB2": _Scheme(
        "IOB2",
        allowed="IOB",
        start=((_ALL, "B", _ANY),),
        inside=(("B", "I", _SAME), ("I", "I", _SAME)),
        end=(("I", "O", _ANY), ("I", "I", _DIFF), ("I", "B", _ANY),
             ("B", "O", _ANY), ("B", "I", _DIFF), ("B", "B", _ANY)),
    ),
    "IOBES": _Scheme(
        "IOBES",
        allowed="IOBES",
        start=((_ALL, "B", _ANY), (_ALL, "S", _ANY)),
        inside=(("B", "I", _SAME), ("B", "E", _SAME), ("I", "I", _SAME), ("I", "E", _SAME)),
        end=(("S", _ALL, _ANY), ("E", _ALL, _ANY)),
    ),
    "BILOU": _Scheme(
        "BILOU",
        allowed="BILOU",
        start=((_ALL, "B", _ANY), (_ALL, "U", _ANY)),
        inside=(("B", "I", _SAME), ("B", "L", _SAME), ("I", "I", _SAME), ("I", "L", _SAME)),
        end=(("U", _ALL, _ANY), ("L", _ALL, _ANY)),
    ),
}
SUPPORTED_SCHEMES = tuple(SCHEMES)  # strict-mode schemes, by their seqeval names
_SCHEME_ALIASES = {"BIO": "IOB2", "BIOES": "IOBES"}

_Token = tuple[str, str]  # (prefix, type)
_OUTSIDE: _Token = ("O", "_")


def _matches(patterns: tuple[Pattern, ...], prev: _Token, token: _Token) -> bool:
    for prev_prefixes, prefixes, condition in patterns:
        if prev[0] in prev_prefixes and token[0] in prefixes:
            if condition == _ANY or (condition == _SAME) == (prev[1] == token[1]):
                return True
    return False


def _strict_entities(tags: Sequence[str], scheme: _Scheme, where: str) -> list[Entity]:
    tokens: list[_Token] = []
    for position, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag or tag[0] not in scheme.allowed:
            # seqeval raises KeyError/ValueError here too: strict mode never guesses.
            raise DataError(
                INVALID_TAG,
                f"{where}tag {tag!r} at position {position} is not valid in the {scheme.name} scheme "
                f"(allowed prefixes: {', '.join(scheme.allowed)}).",
                fix="score with the scheme the tags use, or with mode='default'.",
            )
        # Same parsing as seqeval's Token: the type is the rest with '-' stripped from both ends.
        tokens.append((tag[0], tag[1:].strip("-") or "_"))
    extended = [*tokens, _OUTSIDE]

    def forward(start: int, prev: _Token) -> int:
        """Index of the first word after ``start - 1`` that does not continue the chunk."""
        for i in range(start, len(extended)):
            if not _matches(scheme.inside, prev, extended[i]):
                return i
            prev = extended[i]
        return len(tokens) - 1  # unreachable: the trailing O never continues a chunk

    entities: list[Entity] = []
    i, prev = 0, _OUTSIDE
    while i < len(extended):
        token = extended[i]
        if _matches(scheme.start, prev, token):
            end = forward(i + 1, token)
            if _matches(scheme.end, extended[end - 1], extended[end]):
                entities.append((token[1], i, end))
            i = end  # like seqeval, an unfinished chunk is skipped as a whole
        else:
            i += 1
        prev = extended[i - 1]
    return entities


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------


def resolve_scheme(mode: str, scheme: str | None) -> _Scheme | None:
    """Check ``mode``/``scheme`` and return the strict scheme (``None`` in default mode).

    Args:
        mode: ``"default"`` (seqeval default, conlleval-compatible) or ``"strict"``.
        scheme: ``"IOB2"`` (alias ``"BIO"``), ``"IOBES"`` (alias ``"BIOES"``) or ``"BILOU"``; required in
            strict mode, ignored-but-checked otherwise.
    """
    if mode not in MODES:
        raise ConfigError(BAD_MODE, f"unknown entity scoring mode {mode!r}.", fix="use 'default' or 'strict'.")
    resolved = None
    if scheme is not None:
        name = _SCHEME_ALIASES.get(str(scheme).upper(), str(scheme).upper())
        if name not in SCHEMES:
            raise ConfigError(
                BAD_MODE, f"unknown tag scheme {scheme!r} for entity scoring.", fix="use IOB2, IOBES or BILOU."
            )
        resolved = SCHEMES[name]
    if mode == "strict" and resolved is None:
        raise ConfigError(
            BAD_MODE, "strict entity scoring needs a tag scheme.", fix="pass scheme='IOB2', 'IOBES' or 'BILOU'."
        )
    return resolved if mode == "strict" else None


def extract_entities(tags: Sequence[str], mode: str = "default", scheme: str | None = None) -> list[Entity]:
    """Read the entities of one sentence's tags.

    Args:
        tags: one tag per word, e.g. ``["B-PER", "I-PER", "O"]``.
        mode: ``"default"`` (seqeval default / conlleval) or ``"strict"`` (seqeval ``mode="strict"``).
        scheme: tag scheme for strict mode: IOB2, IOBES or BILOU.

    Returns:
        ``(type, start, end)`` tuples in sentence order, ``end`` exclusive.

    Raises:
        DataError: a tag the mode/scheme cannot read. ConfigError: unknown mode or scheme.
    """
    resolved = resolve_scheme(mode, scheme)
    return _extract(list(tags), resolved, where="")


def char_entities(tags: Sequence[str], offsets: Sequence[tuple[int, int]]) -> list[Entity]:
    """The entities of word tags (default mode) as ``(type, start, end)`` character offsets, from the words'
    ``offsets`` (first word's start, last word's end): to score against span files' gold character spans.

    Args:
        tags: one tag per word.
        offsets: each word's ``(start, end)`` character offsets.
    """
    return [(type_, offsets[start][0], offsets[end - 1][1]) for type_, start, end in extract_entities(tags)]


def _extract(tags: Sequence[str], scheme: _Scheme | None, where: str) -> list[Entity]:
    return _default_entities(tags, where) if scheme is None else _strict_entities(tags, scheme, where)


def _ratio(numerator: float, denominator: float) -> float:
    # Undefined ratios are 0.0, as seqeval/scikit-learn's default zero_division gives them.
    return numerator / denominator if denominator else 0.0


def _f1(precision: float, recall: float) -> float:
    # seqeval's formula (from precision and recall, not from counts), so the floats match.
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _weighted_mean(values: list[float], weights: list[int]) -> float:
    total = sum(weights)
    return sum(v * w for v, w in zip(values, weights)) / total if total else 0.0


def breaks_iob2(tags: Sequence[str]) -> bool:
    """Whether a tag sequence is invalid IOB2: an I-X first, or after O or after a tag of another type (the
    sequences scoring repairs by the conlleval rule and `decoding: constrained` never predicts)."""
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and (previous == "O" or previous[2:] != tag[2:]):
            return True
        previous = tag
    return False


class EntityScorer:
    """Streaming entity-level scorer: feed one sentence at a time, read the metrics at the end.

    Only counters are kept (per type: gold, predicted, correct; type confusions; token counts), so
    memory does not grow with the number of sentences.

    Args:
        mode: ``"default"`` (seqeval default / conlleval) or ``"strict"``.
        scheme: tag scheme for strict mode: IOB2, IOBES or BILOU.
    """

    def __init__(self, mode: str = "default", scheme: str | None = None) -> None:
        self.mode = mode
        self._scheme = resolve_scheme(mode, scheme)
        self.scheme = self._scheme.name if self._scheme else None
        self._gold: Counter[str] = Counter()
        self._predicted: Counter[str] = Counter()
        self._correct: Counter[str] = Counter()
        self._confusion: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._spurious: Counter[str] = Counter()
        self.sentences = 0
        self.tokens = 0
        self.correct_tokens = 0
        self.invalid_sentences = 0  # predicted tags that break IOB2 (`breaks_iob2`)

    def update(self, gold_tags: Sequence[str], pred_tags: Sequence[str]) -> None:
        """Add one sentence.

        Args:
            gold_tags: the reference tags, one per word.
            pred_tags: the predicted tags, one per word (same length).

        Raises:
            ConfigError: the two sequences differ in length (the message names the sentence index).
            DataError: a tag the mode/scheme cannot read.
        """
        index = self.sentences
        self._check_lengths(gold_tags, pred_tags)
        gold_entities = _extract(gold_tags, self._scheme, where=f"sentence {index} (gold): ")
        pred_entities = _extract(pred_tags, self._scheme, where=f"sentence {index} (predicted): ")
        self._count(gold_entities, pred_entities, gold_tags, pred_tags)

    def update_entities(self, gold_entities: Sequence[Entity], pred_entities: Sequence[Entity],
                        gold_tags: Sequence[str], pred_tags: Sequence[str]) -> None:
        """Add one sentence whose gold entities are given as they are, not read from tags: span files, where
        entities are ``(type, start, end)`` character offsets, so a gold span whose boundary falls inside a word
        is missed by any word-level prediction (it matches no predicted span).

        Args:
            gold_entities: the reference entities (not overlapping), in any unit of position.
            pred_entities: the predicted entities, in the same unit.
            gold_tags: the words' reference tags, for token accuracy.
            pred_tags: the words' predicted tags (same length).
        """
        self._check_lengths(gold_tags, pred_tags)
        self._count(list(gold_entities), list(pred_entities), gold_tags, pred_tags)

    def _check_lengths(self, gold_tags: Sequence[str], pred_tags: Sequence[str]) -> None:
        if len(gold_tags) != len(pred_tags):
            raise ConfigError(
                LENGTH_MISMATCH,
                f"sentence {self.sentences}: {len(gold_tags)} gold tags but {len(pred_tags)} predicted tags.",
                fix="predict exactly one tag per word (first sub-token of each word).",
            )

    def _count(self, gold_entities: list[Entity], pred_entities: list[Entity], gold_tags: Sequence[str],
               pred_tags: Sequence[str]) -> None:
        # Entities of one sentence never overlap, so a boundary pair identifies at most one entity.
        predicted_type_at = {(start, end): type_ for type_, start, end in pred_entities}
        gold_boundaries = {(start, end) for _, start, end in gold_entities}
        for type_, start, end in gold_entities:
            self._gold[type_] += 1
            predicted_type = predicted_type_at.get((start, end))
            if predicted_type == type_:
                self._correct[type_] += 1
            self._confusion[type_][MISSED if predicted_type is None else predicted_type] += 1
        for type_, start, end in pred_entities:
            self._predicted[type_] += 1
            if (start, end) not in gold_boundaries:
                self._spurious[type_] += 1

        self.sentences += 1
        self.invalid_sentences += breaks_iob2(pred_tags)
        self.tokens += len(gold_tags)
        self.correct_tokens += sum(g == p for g, p in zip(gold_tags, pred_tags))

    def result(self) -> dict:
        """The metrics over every sentence seen so far.

        Returns:
            ``precision``, ``recall``, ``f1`` (micro over entities), ``accuracy`` (token accuracy),
            ``macro_precision``, ``macro_recall``, ``macro_f1``, ``weighted_precision``,
            ``weighted_recall``, ``weighted_f1`` (weights: gold support), ``per_label`` {type: {precision,
            recall, f1, support, predicted, correct}}, ``confusion`` {gold type: {predicted type or
            "(missed)": n}}, ``spurious`` {predicted type: n}, ``gold_entities``, ``predicted_entities``,
            ``correct_entities``, ``sentences``, ``tokens``, ``mode``, ``scheme``, ``invalid_sentences``
            (sentences whose predicted tags break IOB2: an I-X first or after O or another type). Types are the union of
            gold and predicted types, sorted, as in seqeval; undefined ratios are 0.0.
        """
        types = sorted(set(self._gold) | set(self._predicted))
        per_label: dict[str, dict] = {}
        for type_ in types:
            precision = _ratio(self._correct[type_], self._predicted[type_])
            recall = _ratio(self._correct[type_], self._gold[type_])
            per_label[type_] = {
                "precision": precision,
                "recall": recall,
                "f1": _f1(precision, recall),
                "support": self._gold[type_],
                "predicted": self._predicted[type_],
                "correct": self._correct[type_],
            }
        gold_total = sum(self._gold.values())
        predicted_total = sum(self._predicted.values())
        correct_total = sum(self._correct.values())
        precision = _ratio(correct_total, predicted_total)
        recall = _ratio(correct_total, gold_total)
        rows = list(per_label.values())
        supports = [row["support"] for row in rows]
        return {
            "precision": precision,
            "recall": recall,
            "f1": _f1(precision, recall),
            "accuracy": _ratio(self.correct_tokens, self.tokens),
            "macro_precision": _mean([row["precision"] for row in rows]),
            "macro_recall": _mean([row["recall"] for row in rows]),
            "macro_f1": _mean([row["f1"] for row in rows]),
            "weighted_precision": _weighted_mean([row["precision"] for row in rows], supports),
            "weighted_recall": _weighted_mean([row["recall"] for row in rows], supports),
            "weighted_f1": _weighted_mean([row["f1"] for row in rows], supports),
            "per_label": per_label,
            "confusion": {
                gold_type: dict(sorted(self._confusion[gold_type].items())) for gold_type in sorted(self._confusion)
            },
            "spurious": dict(sorted(self._spurious.items())),
            "gold_entities": gold_total,
            "predicted_entities": predicted_total,
            "correct_entities": correct_total,
            "sentences": self.sentences,
            "tokens": self.tokens,
            "mode": self.mode,
            "scheme": self.scheme,
            "invalid_sentences": self.invalid_sentences,
        }


def score_entities(
    gold: Iterable[Sequence[str]],
    pred: Iterable[Sequence[str]],
    mode: str = "default",
    scheme: str | None = None,
) -> dict:
    """Score predicted tag sequences against gold ones (convenience wrapper over :class:`EntityScorer`).

    Args:
        gold: reference tag sequences, one list of tags per sentence (any iterable; read lazily).
        pred: predicted tag sequences, aligned with ``gold``.
        mode: ``"default"`` (seqeval default / conlleval) or ``"strict"``.
        scheme: tag scheme for strict mode: IOB2, IOBES or BILOU.

    Returns:
        The dict of :meth:`EntityScorer.result`.

    Raises:
        ConfigError: different numbers of sentences, or of tags within a sentence.
    """
    scorer = EntityScorer(mode=mode, scheme=scheme)
    missing = object()
    # zip_longest rather than list(): iterables (e.g. a generator over a large file) are never materialised.
    for gold_tags, pred_tags in zip_longest(gold, pred, fillvalue=missing):
        if gold_tags is missing or pred_tags is missing:
            side = "gold" if gold_tags is missing else "predicted"
            raise ConfigError(
                LENGTH_MISMATCH,
                f"sentence {scorer.sentences}: the {side} sequences ended before the other side's.",
                fix="predict one tag sequence per evaluated sentence.",
            )
        scorer.update(gold_tags, pred_tags)
    return scorer.result()
