"""Baselines computed from the data, so every report can say how far above chance a model is.

* ``majority_baseline`` (classification): always predict the most frequent training label.
* ``all_o_baseline`` (NER): predict ``O`` for every word; entity P/R/F1 are 0, token accuracy is the
  share of ``O`` tags, which shows how little token accuracy means for NER.
* ``majority_tag_baseline`` (NER): each word gets the tag it most often had in training (``O`` if
  unseen), a simple lexical memorisation baseline in the spirit of the CoNLL shared tasks.
* ``label_set_baseline`` (multi-label): always predict the most frequent training label set.
* ``label_prior_baseline`` (multi-label): each label drawn at random for each text with its training frequency
  (chance level for every label at once), averaged over seeded draws so it is reproducible.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import zip_longest
from typing import Iterable, Iterator, Sequence

from tunecard.errors import DataError
from tunecard.metrics.classification import classification_scores
from tunecard.metrics.entities import EntityScorer, char_entities
from tunecard.metrics.multilabel import MultiLabelScorer, multilabel_scores

# Per evaluation sentence, for span files: its gold spans (start, end, label) as character offsets and its words'
# offsets, so a baseline is scored as the model is (predicted against gold character spans); None: from the tags.
SpanGold = tuple[Sequence[tuple[int, int, str]], Sequence[tuple[int, int]]] | None

NOTHING_TO_LEARN = "E161"
MISALIGNED = "E162"


def _most_frequent(counts: Counter[str], prefer: str | None = None) -> str:
    # Highest count wins; ties go to ``prefer`` (if tied), then to the alphabetically first label, so
    # the baseline does not depend on the order of the training file.
    best = max(counts.values())
    tied = sorted(label for label, n in counts.items() if n == best)
    return prefer if prefer in tied else tied[0]


def majority_baseline(
    train_labels: Iterable[str], eval_labels: Sequence[str], positive_label: str | None = None
) -> dict:
    """Predict the most frequent training label for every evaluation example.

    Args:
        train_labels: the training split's labels (ties: alphabetically first label).
        eval_labels: the evaluation split's gold labels.
        positive_label: as for :func:`~tunecard.metrics.classification.classification_scores`.

    Returns:
        ``{"strategy": "majority", "label": <predicted label>, **classification_scores}``; the label set
        is the union of training and evaluation labels.

    Raises:
        DataError: no training labels.
    """
    counts = Counter(train_labels)
    if not counts:
        raise DataError(NOTHING_TO_LEARN, "majority baseline: the training split has no labels.")
    label = _most_frequent(counts)
    eval_labels = list(eval_labels)
    labels = sorted(set(counts) | set(eval_labels))
    predictions = [label] * len(eval_labels)
    scores = classification_scores(eval_labels, predictions, labels=labels, positive_label=positive_label)
    return {"strategy": "majority", "label": label, **scores}


def all_o_baseline(
    eval_tag_sequences: Iterable[Sequence[str]], mode: str = "default", scheme: str | None = None,
    eval_spans: Iterable[SpanGold] | None = None,
) -> dict:
    """Predict ``O`` for every word of the evaluation split.

    Args:
        eval_tag_sequences: gold tag sequences, one per sentence (read lazily).
        mode: entity scoring mode (see :class:`~tunecard.metrics.entities.EntityScorer`).
        scheme: tag scheme for strict mode.
        eval_spans: span files: per sentence, its gold character spans and word offsets (see SpanGold).

    Returns:
        ``{"strategy": "all-O", **EntityScorer.result()}``: entity precision/recall/F1 are 0.0 and
        ``accuracy`` is the share of ``O`` tags.
    """
    scorer = EntityScorer(mode=mode, scheme=scheme)
    spans = iter(eval_spans) if eval_spans is not None else None
    for gold_tags in eval_tag_sequences:
        _update(scorer, gold_tags, ["O"] * len(gold_tags), next(spans) if spans is not None else None)
    return {"strategy": "all-O", **scorer.result()}


def _update(scorer: EntityScorer, gold_tags: Sequence[str], pred_tags: Sequence[str], gold: SpanGold) -> None:
    if gold is None:
        scorer.update(gold_tags, pred_tags)
        return
    spans, offsets = gold
    scorer.update_entities([(label, start, end) for start, end, label in spans], char_entities(pred_tags, offsets),
                           gold_tags, pred_tags)


def majority_tag_baseline(
    train_word_sequences: Iterable[Sequence[str]],
    train_tag_sequences: Iterable[Sequence[str]],
    eval_word_sequences: Iterable[Sequence[str]],
    eval_tag_sequences: Iterable[Sequence[str]],
    mode: str = "default",
    scheme: str | None = None,
    eval_spans: Iterable[SpanGold] | None = None,
) -> dict:
    """Tag each evaluation word with the tag it most often had in training (``O`` if never seen).

    Words are matched exactly (case-sensitive). Ties between tags go to ``O`` if tied, else to the
    alphabetically first tag. The predicted sequences may be malformed (``I-PER`` after ``O``); they are
    scored like any model output, leniently in default mode.

    Args:
        train_word_sequences: training sentences as word lists.
        train_tag_sequences: their tags, aligned word by word.
        eval_word_sequences: evaluation sentences as word lists.
        eval_tag_sequences: their gold tags, aligned word by word.
        mode: entity scoring mode (see :class:`~tunecard.metrics.entities.EntityScorer`).
        scheme: tag scheme for strict mode.
        eval_spans: span files: per sentence, its gold character spans and word offsets (see SpanGold).

    Returns:
        ``{"strategy": "majority-tag", "unseen_words": <eval words never seen in training>,
        **EntityScorer.result()}``.

    Raises:
        DataError: words and tags differ in number of sentences or of items in a sentence.
    """
    tag_counts: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for words, tags in _aligned(train_word_sequences, train_tag_sequences, "training"):
        for word, tag in zip(words, tags):
            tag_counts[word][tag] += 1
    tag_of = {word: _most_frequent(counts, prefer="O") for word, counts in tag_counts.items()}

    scorer = EntityScorer(mode=mode, scheme=scheme)
    unseen = 0
    spans = iter(eval_spans) if eval_spans is not None else None
    for words, gold_tags in _aligned(eval_word_sequences, eval_tag_sequences, "evaluation"):
        unseen += sum(word not in tag_of for word in words)
        _update(scorer, gold_tags, [tag_of.get(word, "O") for word in words],
                next(spans) if spans is not None else None)
    return {"strategy": "majority-tag", "unseen_words": unseen, **scorer.result()}


def _aligned(
    word_sequences: Iterable[Sequence[str]], tag_sequences: Iterable[Sequence[str]], split: str
) -> Iterator[tuple[Sequence[str], Sequence[str]]]:
    """Pairs (words, tags) sentence by sentence, checking both sides have the same shape."""
    missing = object()
    for index, (words, tags) in enumerate(zip_longest(word_sequences, tag_sequences, fillvalue=missing)):
        if words is missing or tags is missing or len(words) != len(tags):
            found = (
                "fewer word sequences than tag sequences" if words is missing
                else "fewer tag sequences than word sequences" if tags is missing
                else f"{len(words)} words but {len(tags)} tags"
            )
            raise DataError(
                MISALIGNED,
                f"majority-tag baseline: {split} sentence {index}: {found}.",
                fix="give one tag sequence per sentence and one tag per word.",
            )
        yield words, tags


def label_set_baseline(train_sets: Iterable[Sequence[str]], eval_sets: Sequence[Sequence[str]],
                       labels: Sequence[str]) -> dict:
    """Multi-label: predict the most frequent training label set (the empty set included) for every text.

    Args:
        train_sets: the training split's label sets (ties: the set that sorts first, as a tuple of sorted labels).
        eval_sets: the evaluation split's gold label sets.
        labels: the task's labels.

    Returns:
        ``{"strategy": "most frequent label set", "label_set": [...], **multilabel_scores}``.

    Raises:
        DataError: no training examples.
    """
    counts = Counter(tuple(sorted(set(item))) for item in train_sets)
    if not counts:
        raise DataError(NOTHING_TO_LEARN, "label-set baseline: the training split has no examples.")
    best = max(counts.values())
    chosen = min(label_set for label_set, n in counts.items() if n == best)
    scores = multilabel_scores(eval_sets, [list(chosen)] * len(eval_sets), labels=labels)
    return {"strategy": "most frequent label set", "label_set": list(chosen), **scores}


PRIOR_DRAWS = 10  # seeded draws averaged by label_prior_baseline


def label_prior_baseline(train_sets: Sequence[Sequence[str]], eval_sets: Sequence[Sequence[str]],
                         labels: Sequence[str], draws: int = PRIOR_DRAWS, seed: int = 0) -> dict:
    """Multi-label: give each text each label at random with the label's training frequency (independently), and
    average every score over ``draws`` seeded draws: the chance level of a model that knows only how often each
    label occurs.

    Args:
        train_sets: the training split's label sets.
        eval_sets: the evaluation split's gold label sets.
        labels: the task's labels.
        draws: draws averaged.
        seed: the first draw's seed (numpy's default generator).

    Returns:
        ``{"strategy": "per-label prior", "priors": {label: frequency}, "draws": n, **scores}``: the mean of each
        number over the draws (per-label rows included; ``predicted`` and ``empty_predictions`` as means).

    Raises:
        DataError: no training examples.
    """
    import numpy as np

    train_sets = list(train_sets)
    if not train_sets:
        raise DataError(NOTHING_TO_LEARN, "per-label prior baseline: the training split has no examples.")
    priors = {label: sum(label in set(item) for item in train_sets) / len(train_sets) for label in labels}
    rng = np.random.default_rng(seed)
    chances = np.array([priors[label] for label in labels])
    results = []
    for _ in range(draws):
        drawn = rng.random((len(eval_sets), len(labels))) < chances
        scorer = MultiLabelScorer(labels)
        scorer.update(eval_sets, [[labels[i] for i in np.flatnonzero(row)] for row in drawn])
        results.append(scorer.result())
    mean = _mean_of(results)
    return {**mean, "strategy": "per-label prior", "priors": priors, "draws": draws, "average": "micro",
            "labels": list(labels)}


def _mean_of(results: list):
    """The mean of every number of equally shaped results (nested dicts), keeping other values from the first."""
    first = results[0]
    if isinstance(first, dict):
        return {key: _mean_of([r[key] for r in results]) for key in first}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        return sum(results) / len(results)
    return first
