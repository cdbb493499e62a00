"""Checks across splits: same task everywhere, no empty split, no label that training never shows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tunecard.data.example import TOKEN_TASK, Corpus
from tunecard.data.textfile import preview
from tunecard.errors import DataError


def check_task_consistency(corpora: Mapping[str, Corpus] | Sequence[Corpus], task: str | None = None) -> str:
    """Check that every corpus holds the same task (and ``task`` if given); return that task.

    Args:
        corpora: the splits, by name or in a list (the first one sets the task when ``task`` is None).
        task: the task the configuration asks for (canonical name), or None.

    Raises:
        DataError: E115 when a corpus holds another task; E103 when there is no corpus at all.
    """
    items = list(corpora.items()) if isinstance(corpora, Mapping) else [(c.path, c) for c in corpora]
    if not items:
        raise DataError("E103", "no data: no split was given", fix="give at least a training file.")
    expected = task or items[0][1].task
    for name, corpus in items:
        if corpus.task != expected:
            source = "the task asked for" if task else f"the first split ({items[0][1].path})"
            raise DataError("E115", f"split {name!r} holds {corpus.task} data ({corpus.format}), but {source} is "
                            f"{expected}", path=corpus.path,
                            fix="use files of the same kind for every split, and the task that fits them.")
    return expected


def validate_splits(train: Corpus, others: dict[str, Corpus]) -> None:
    """Check the evaluation splits against the training split.

    Every label of an evaluation split (entity type for NER, class for classification) must occur in
    training: the model could never predict it, and its metrics would be meaningless.

    Args:
        train: the training corpus.
        others: evaluation corpora by split name (``validation``, ``test``, ...).

    Raises:
        DataError: E103 an empty split, E115 mixed tasks, E106 a label missing from training.
    """
    check_task_consistency({"train": train, **others})
    for name, corpus in {"train": train, **others}.items():
        if len(corpus) == 0:
            raise DataError("E103", f"empty split: {name} has no examples", path=corpus.path,
                            fix="point to the right file, or leave this split out.")
    known = set(labels_of(train))
    for name, corpus in others.items():
        unseen = {label: line for label, line in first_lines(corpus).items() if label not in known}
        if unseen:
            label, line = next(iter(unseen.items()))
            what = "entity type" if corpus.task == TOKEN_TASK else "label"
            others_text = f" (also {', '.join(map(repr, list(unseen)[1:]))})" if len(unseen) > 1 else ""
            raise DataError(
                "E106",
                f"{what} {preview(label)} in the {name} split never occurs in the training file {train.path}"
                f"{others_text}; first in the example at line {line}",
                path=corpus.path,
                line=line,
                fix=f"add {preview(label)} examples to the training data, or remove or relabel them in the {name} "
                "file.",
            )


def labels_of(corpus: Corpus) -> list[str]:
    """Entity types (NER) or class names (classification) of a corpus, sorted.

    Args:
        corpus: the corpus.
    """
    return corpus.entity_types if corpus.task == TOKEN_TASK else corpus.labels


def first_lines(corpus: Corpus) -> dict[str, int | None]:
    """Each label (entity type or class) with the line of the first example using it, in file order.

    Args:
        corpus: the corpus.
    """
    found: dict[str, int | None] = {}
    for example in corpus.examples:
        labels = [tag[2:] for tag in example.tags if tag != "O"] if corpus.task == TOKEN_TASK else example.label_set
        for label in labels:
            found.setdefault(label, example.line)
    return found
