"""Corpus statistics for ``tunecard data stats``: a JSON-serialisable dict per file, and rich tables."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence

from tunecard.data.example import MULTI_LABEL_TASK, TOKEN_TASK, Corpus
from tunecard.data.jsonl import tokenize_with_offsets
from tunecard.data.schemes import tags_to_spans

DEFAULT_MAX_LENGTH = 512
# How `data stats` names the span counts of a span JSONL file (Corpus.span_counts).
SPAN_COUNT_NAMES = {
    "spans": "spans (after overlaps)",
    "overlapping_pairs": "pairs of overlapping spans",
    "dropped_spans": "spans dropped (overlapping_spans)",
    "split_tokens": "words split at span boundaries",
    "spans_inside_words": "spans starting or ending inside a word",
}
_BATCH = 1000


def corpus_stats(corpus: Corpus, tokenizer=None, max_length: int | None = None) -> dict:
    """Count examples, words, labels and (with a tokenizer) subwords of a corpus.

    Words are the tokens of NER examples; for classification, whitespace-separated words with each CJK
    character counted as one word. Entity counts count entities (spans), not tags.

    Args:
        corpus: the corpus.
        tokenizer: a transformers (fast) tokenizer, or None to skip subword counts.
        max_length: the length to count examples against; default the tokenizer's ``model_max_length`` when
            it is a real limit, else 512.

    Returns:
        A JSON-serialisable dict; the subword keys are present only with a tokenizer.
    """
    ner = corpus.task == TOKEN_TASK
    if ner:
        words = [len(ex.tokens) for ex in corpus.examples]
    else:
        words = [_count_words(ex.text) + (_count_words(ex.text_pair) if ex.text_pair else 0)
                 for ex in corpus.examples]
    stats: dict = {
        "path": corpus.path,
        "format": corpus.format,
        "task": corpus.task,
        "examples": len(corpus),
        "tokens": sum(words),
        "words_per_example": _summary(words),
    }
    if ner:
        entities = Counter(span.label for ex in corpus.examples for span in tags_to_spans(ex.tags, "IOB2"))
        doc_ids = {ex.doc_id for ex in corpus.examples if ex.doc_id is not None}
        stats.update(
            scheme=corpus.scheme,
            repaired=corpus.repaired,
            documents=len(doc_ids) if doc_ids else None,
            entities=dict(sorted(entities.items())),
            tags=dict(sorted(Counter(tag for ex in corpus.examples for tag in ex.tags).items())),
        )
        if corpus.span_counts is not None:  # span JSONL: spans, overlaps, dropped spans, split words
            stats["span_counts"] = dict(corpus.span_counts)
    else:
        stats.update(
            classes=dict(sorted(Counter(label for ex in corpus.examples for label in ex.label_set).items())),
            pairs=sum(1 for ex in corpus.examples if ex.text_pair is not None),
        )
        if corpus.task == MULTI_LABEL_TASK:  # classes count the examples that carry each label
            sizes = [len(ex.labels) for ex in corpus.examples]
            stats.update(labels_per_example=_summary(sizes), without_labels=sizes.count(0),
                         label_sets=len({tuple(ex.labels) for ex in corpus.examples}))
    if tokenizer is not None:
        stats.update(_subword_stats(corpus, tokenizer, max_length))
    stats["warnings"] = list(corpus.warnings)
    return stats


def _count_words(text: str) -> int:
    return len(tokenize_with_offsets(text))


def _summary(values: Sequence[int]) -> dict:
    if not values:
        return {"min": 0, "median": 0, "max": 0}
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _subword_stats(corpus: Corpus, tokenizer, max_length: int | None) -> dict:
    if max_length is None:
        model_max = getattr(tokenizer, "model_max_length", None)
        # Tokenizers without a limit report a huge sentinel (int(1e30)).
        max_length = model_max if isinstance(model_max, int) and 0 < model_max <= 100_000 else DEFAULT_MAX_LENGTH
    lengths: list[int] = []
    examples = corpus.examples
    for start in range(0, len(examples), _BATCH):
        batch = examples[start:start + _BATCH]
        if corpus.task == TOKEN_TASK:  # the words as the text they stand for, as training encodes them
            encoded = tokenizer([" ".join(ex.tokens) for ex in batch], add_special_tokens=True, truncation=False,
                                verbose=False)
        else:
            pairs = [ex.text_pair for ex in batch]
            encoded = tokenizer([ex.text for ex in batch], pairs if any(p is not None for p in pairs) else None,
                                add_special_tokens=True, truncation=False, verbose=False)
        lengths.extend(len(ids) for ids in encoded["input_ids"])
    return {
        "tokenizer": getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__,
        "subwords_per_example_incl_special_tokens": _summary(lengths),
        "max_length": max_length,
        "examples_over_max_length": sum(1 for n in lengths if n > max_length),
    }


def render_stats(stats_list: Sequence[dict]) -> list:
    """One rich table per file, for the terminal.

    Args:
        stats_list: dicts from :func:`corpus_stats`.

    Returns:
        A list of ``rich.table.Table`` (print each, or wrap them in ``rich.console.Group``).
    """
    from rich.markup import escape  # paths like name[split] and labels must not be read as markup
    from rich.table import Table

    tables = []
    for stats in stats_list:
        table = Table(title=escape(f"{stats['path']} ({stats['format']}, {stats['task']})"), show_header=True)
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("examples", str(stats["examples"]))
        table.add_row("words", str(stats["tokens"]))
        table.add_row("words per example (min / median / max)", _triple(stats["words_per_example"]))
        if stats["task"] == TOKEN_TASK:
            table.add_row("scheme", str(stats["scheme"]))
            table.add_row("invalid tags repaired", str(stats["repaired"]))
            if stats["documents"] is not None:
                table.add_row("documents", str(stats["documents"]))
            for label, count in stats["entities"].items():
                table.add_row(escape(f"entities {label}"), str(count))
            for key, count in (stats.get("span_counts") or {}).items():
                table.add_row(SPAN_COUNT_NAMES.get(key, key), str(count))
        else:
            if stats["pairs"]:
                table.add_row("text pairs", str(stats["pairs"]))
            if "labels_per_example" in stats:  # multi-label
                table.add_row("labels per example (min / median / max)", _triple(stats["labels_per_example"]))
                table.add_row("examples without a label", str(stats["without_labels"]))
                table.add_row("distinct label sets", str(stats["label_sets"]))
            for label, count in stats["classes"].items():
                table.add_row(escape(f"class {label}"), str(count))
        if "max_length" in stats:
            table.add_row("tokenizer", escape(str(stats["tokenizer"])))
            table.add_row("subwords incl. special tokens (min / median / max)",
                          _triple(stats["subwords_per_example_incl_special_tokens"]))
            table.add_row(f"examples over {stats['max_length']} subwords", str(stats["examples_over_max_length"]))
        for warning in stats.get("warnings", []):
            table.add_row("warning", escape(warning))
        tables.append(table)
    return tables


def _triple(summary: dict) -> str:
    return f"{summary['min']} / {summary['median']:g} / {summary['max']}"


LEAKAGE_MIN_WORDS = 3  # shorter texts ('Reuters', '-- END --') are not counted as leaked


def normal_text(text) -> str:
    """A text (or word list) whitespace- and case-normalized, as leakage compares them."""
    if isinstance(text, (list, tuple)):
        text = " ".join(str(t) for t in text)
    return " ".join(str(text).split()).casefold()


def leakage_counts(train_texts: Iterable, eval_texts: Iterable) -> dict:
    """{"duplicates": n, "eval_examples": m}: evaluation examples whose text (whitespace- and case-normalized) is in
    training. Texts of fewer than LEAKAGE_MIN_WORDS words are not counted as duplicates. Texts may be strings or
    word lists."""
    train = {normal_text(t) for t in train_texts}
    duplicates = total = 0
    for text in eval_texts:
        total += 1
        normal = normal_text(text)
        if len(normal.split()) >= LEAKAGE_MIN_WORDS and normal in train:
            duplicates += 1
    return {"duplicates": duplicates, "eval_examples": total}
