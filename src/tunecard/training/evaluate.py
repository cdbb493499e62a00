"""Score a model on encoded examples: loss plus every metric of the scoring layer, streamed batch by batch.

Only each word's chosen label id is kept, never full logits (each word's argmax; NER with `decoding:
constrained`, the best valid IOB2 sequence of each window, `metrics.decoding`), and each example is scored as
soon as its last window is predicted, so memory does not grow with the number of examples
(tests/test_bounded_memory.py). The loss is the plain cross-entropy averaged over every scored position (subwords
for NER, examples for classification), without label smoothing or class weights, so it is comparable between
runs whatever their training loss was.

Multi-label: each label is decided on its own, its sigmoid probability at or above its threshold (0.5 in the
evaluations during training; the thresholds tuned on validation afterwards, `tuned_thresholds`); the loss is the
plain BCE averaged over every (text, label) pair. `keep_probabilities` keeps the [texts, labels] probabilities
that threshold tuning needs (the one place a whole split's outputs are held: a float per text and label), and
`Evaluation.rescored` scores them again at the tuned thresholds without a second pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from tunecard.config import MULTI_LABEL, TASK_METRICS
from tunecard.encoding.batching import PadCollator, forward_batches
from tunecard.encoding.encoder import IGNORE_INDEX, Feature
from tunecard.metrics import (DEFAULT_THRESHOLD, ClassificationScorer, EntityScorer, MultiLabelScorer, char_entities,
                              decide, tune_thresholds)
from tunecard.metrics.decoding import TagDecoder

# bf16 evaluation and prediction: close calls (two best logits nearer than this) are predicted again in fp32. On
# the benchmark's MiniLM with bf16 weights, the largest gap at which a word's best label differed from fp32's was
# 0.125 of 255k CoNLL-2003 words, and no sentence came out different at 0.15 (docs/performance.md, "Close
# calls"). Autocast moves logits less than bf16 weights.
RECHECK_MARGIN = 0.15


def evaluate_features(
    model: torch.nn.Module,
    features: list[Feature],
    examples: list,
    *,
    task: str,
    id2label: dict[int, str],
    collator: PadCollator,
    batch_size: int = 64,
    bf16: bool = False,
    positive_label: str | None = None,
    packed=None,
    recheck_margin: float = 0.0,
    recheck_model: torch.nn.Module | None = None,
    thresholds: list[float] | None = None,
    decoding: str = "argmax",
) -> dict:
    """Evaluate and return the scorer's full result plus `loss`.

    Args:
        model: a token or sequence classification model.
        features: the encoded examples (windows included).
        examples: the examples the features came from (gold tags / labels).
        task: "token-classification" or "text-classification".
        id2label: the model's label map.
        collator: pads batches.
        batch_size: evaluation batch size.
        bf16: run the forward pass under bf16 autocast.
        positive_label: binary classification: the label precision/recall/F1 refer to.
        packed: NER: run packed (see `batching.forward_batches`).
        recheck_margin: features with a close call (`close_calls`) are predicted and scored again in fp32: by
            `recheck_model` (a bf16 model's fp32 weights), or with `bf16` by the same model without autocast.
        thresholds: multi-label: the decision threshold per label id (default 0.5 each).
        decoding: NER: "argmax" or "constrained" (`metrics.decoding`).
    """
    evaluation = Evaluation(task, id2label, positive_label, thresholds=thresholds, decoding=decoding)
    evaluation.add(model, features, examples, collator=collator, batch_size=batch_size, bf16=bf16, packed=packed,
                   recheck_model=recheck_model or (model if bf16 else None), recheck_margin=recheck_margin)
    return evaluation.result()


def decoded_ids(decoder: TagDecoder, logits: torch.Tensor, features: list[Feature]) -> list[dict[int, int]]:
    """NER, constrained decoding: for each row of `logits` ([rows, positions, labels]), the label id chosen at each
    position its feature owns (position -> id). A later window of a long sentence (its first word is not the
    sentence's first) may open with I-X: the entity can start in the window before."""
    owned = [sorted(feature.word_positions, key=lambda item: item[1]) for feature in features]
    scores = [logits[row, [position for position, _ in words]] for row, words in enumerate(owned)]
    paths = decoder.decode(scores, [bool(words) and words[0][1] > 0 for words in owned])
    return [{position: label for (position, _), label in zip(words, path)} for words, path in zip(owned, paths)]


def threshold_logits(thresholds: list[float]) -> torch.Tensor:
    """Multi-label: each threshold as a logit (fp32): a close call in bf16 is a logit this near its threshold."""
    return torch.logit(torch.tensor(thresholds, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)).float()


class Evaluation:
    """Scores accumulated over any number of chunks of examples, so a caller can encode and evaluate a large
    file a chunk at a time. Each example is scored as soon as its last window is predicted: what is kept
    between batches is the scorers' counts and the words of sentences whose windows are not all done.

    Args:
        task: "token-classification", "text-classification" or "multi-label-classification".
        id2label: the model's label map.
        positive_label: binary classification: the label precision/recall/F1 refer to.
        thresholds: multi-label: the decision threshold per label id (default 0.5 each).
        keep_probabilities: multi-label: keep every text's probabilities and gold targets (`probabilities`,
            `targets`, in example order) for threshold tuning, and the order they were scored in (`rescored`).
        decoding: NER: "argmax" (each word's best tag) or "constrained" (the best valid IOB2 sequence).
    """

    def __init__(self, task: str, id2label: dict[int, str], positive_label: str | None = None,
                 thresholds: list[float] | None = None, keep_probabilities: bool = False, decoding: str = "argmax"):
        self.is_ner = task == "token-classification"
        self.decoder = TagDecoder(id2label) if self.is_ner and decoding == "constrained" else None
        self.multi_label = task == MULTI_LABEL
        self.id2label = id2label
        self.labels = labels = [id2label[i] for i in sorted(id2label)]
        if self.is_ner:
            self.scorer = EntityScorer()
        elif self.multi_label:
            self.scorer = MultiLabelScorer(labels)
        else:
            self.scorer = ClassificationScorer(labels=labels, positive_label=positive_label)
        self.thresholds = list(thresholds) if thresholds is not None else [DEFAULT_THRESHOLD] * len(labels)
        self._threshold_tensor = torch.tensor(self.thresholds, dtype=torch.float64)  # multi-label decisions
        # multi-label: each threshold as a logit (a close call is a logit this near it), else None; fixed here
        self.decision_logits = threshold_logits(self.thresholds) if self.multi_label else None
        self.keep_probabilities = keep_probabilities
        self.probabilities: list[list[float]] = []
        self.targets: list[list[float]] = []
        self._scored_rows: list[list[int]] = []  # keep_probabilities: each batch's rows of `probabilities`
        self.loss_sum, self.loss_count = 0.0, 0
        self.examples = 0

    def add(self, model: torch.nn.Module, features: list[Feature], examples: list, *, collator: PadCollator,
            batch_size: int = 64, bf16: bool = False, packed=None, recheck_model: torch.nn.Module | None = None,
            recheck_margin: float = 0.0) -> None:
        """Predict and score `examples`.

        Args:
            model: a token or sequence classification model.
            features: the encoded examples, as the Encoder makes them (the windows of a sentence consecutive).
            examples: the examples the features' `example_index` refers to; each is scored once.
            collator: pads batches.
            batch_size: evaluation batch size.
            bf16: run the forward pass under bf16 autocast.
            packed: NER: run packed (see `batching.forward_batches`).
            recheck_model, recheck_margin: a feature whose two best logits are less than `recheck_margin` apart
                (at some word it owns, NER; for the text, classification) is predicted again by `recheck_model`
                (the fp32 weights of a bf16 `model`), and scored, loss included, on that pass only, as
                `inference.Predictor` predicts it.
        """
        windows_left = _windows_per_example(features)  # only examples with several windows
        partial: dict[int, list] = {}  # example index -> predicted tag per word, while windows are missing
        scored = 0
        kept: dict[int, tuple[list[float], list[float]]] = {}  # multi-label, keep_probabilities: by example
        kept_batches: list[list[int]] = []  # multi-label, keep_probabilities: each batch's example indices
        for indices, logits, batch, _ in rechecked_batches(model, features, collator, batch_size, bf16=bf16,
                                                           packed=packed, recheck_model=recheck_model,
                                                           recheck_margin=recheck_margin,
                                                           decision_logits=self.decision_logits):
            labels = batch["labels"]
            if self.multi_label:
                example_indices = [features[i].example_index for i in indices]
                scored += self._add_multi_label(logits, labels, example_indices, examples, kept)
                if self.keep_probabilities:
                    kept_batches.append(example_indices)
                continue
            flat_logits = logits.reshape(-1, logits.shape[-1])
            flat_labels = labels.reshape(-1).to(flat_logits.device)
            mask = flat_labels != IGNORE_INDEX
            if mask.any():
                self.loss_sum += F.cross_entropy(flat_logits[mask], flat_labels[mask], reduction="sum").item()
                self.loss_count += int(mask.sum())
            predicted = (decoded_ids(self.decoder, logits, [features[i] for i in indices]) if self.decoder
                         else logits.argmax(dim=-1).cpu().tolist())
            if not self.is_ner:
                self.scorer.update([examples[features[i].example_index].label for i in indices],
                                   [self.id2label[row] for row in predicted])
                scored += len(indices)
                continue
            for row, feature_index in zip(predicted, indices):
                feature = features[feature_index]
                example = examples[feature.example_index]
                words = partial.get(feature.example_index) or [None] * len(example.tokens)
                for position, word in feature.word_positions:
                    words[word] = self.id2label[row[position]]
                left = windows_left.get(feature.example_index, 1) - 1
                if left:
                    windows_left[feature.example_index] = left
                    partial[feature.example_index] = words
                    continue
                partial.pop(feature.example_index, None)
                missing = [i for i, tag in enumerate(words) if tag is None]
                if missing:  # would mean a window bug: fail loudly rather than score a partial sentence
                    raise RuntimeError(f"no prediction for words {missing[:5]} of example at line {example.line}")
                if getattr(example, "spans", None) is not None and example.offsets is not None:
                    # A span file: predicted against gold character spans, whatever the words are.
                    self.scorer.update_entities([(label, start, end) for start, end, label in example.spans],
                                                char_entities(words, example.offsets), example.tags, words)
                else:
                    self.scorer.update(example.tags, words)
                scored += 1
        if scored != len(examples):
            raise RuntimeError(f"{len(examples) - scored} of {len(examples)} examples got no prediction")
        row_of = {index: len(self.probabilities) + row for row, index in enumerate(sorted(kept))}
        for index in sorted(kept):  # in example order, whatever order the length-sorted batches had
            self.probabilities.append(kept[index][0])
            self.targets.append(kept[index][1])
        self._scored_rows.extend([row_of[index] for index in batch] for batch in kept_batches)
        self.examples += scored

    def _add_multi_label(self, logits: torch.Tensor, labels: torch.Tensor, example_indices: list[int],
                         examples: list, kept: dict) -> int:
        targets = labels.to(logits.device).float()
        self.loss_sum += F.binary_cross_entropy_with_logits(logits, targets, reduction="sum").item()
        self.loss_count += targets.numel()
        probabilities = torch.sigmoid(logits)
        predicted = probabilities.double() >= self._threshold_tensor.to(logits.device)
        self.scorer.update([examples[index].labels for index in example_indices],
                           [[self.labels[i] for i in row.nonzero().view(-1).tolist()] for row in predicted])
        if self.keep_probabilities:
            for index, row, target in zip(example_indices, probabilities.tolist(), targets.tolist()):
                kept[index] = (row, target)
        return len(example_indices)

    def result(self) -> dict:
        """The scorer's full result plus `loss` (NaN when nothing was scored)."""
        result = self.scorer.result()
        result["loss"] = self.loss_sum / self.loss_count if self.loss_count else float("nan")
        return result

    def rescored(self, thresholds: list[float]) -> dict:
        """Multi-label, `keep_probabilities`: `result` at other thresholds (one per label id), from the kept
        probabilities: each batch decided and scored again in the order it was first scored, so the scorer adds
        the same numbers in the same order, as a second pass of the same model with the same batches (fp32, no
        recheck) would. The loss does not depend on the thresholds: it is this pass's."""
        if not (self.multi_label and self.keep_probabilities):
            raise ValueError("rescored needs a multi-label evaluation that kept its probabilities")
        scorer = MultiLabelScorer(self.labels)
        for rows in self._scored_rows:  # the kept floats are the fp32 probabilities exactly, as the pass compared
            decided = decide([self.probabilities[row] for row in rows], thresholds)
            scorer.update([[self.labels[i] for i, target in enumerate(self.targets[row]) if target] for row in rows],
                          [[self.labels[i] for i in ids] for ids in decided])
        result = scorer.result()
        result["loss"] = self.loss_sum / self.loss_count if self.loss_count else float("nan")
        return result


# Given a NER feature with a close call, its logits [seq, labels] and the margin: whether the close call can change
# what the caller reports. Rows it answers False for are not predicted again.
CloseCallFilter = Callable[[Feature, torch.Tensor, float], bool]


def close_calls(logits: torch.Tensor, features: list[Feature], margin: float,
                matters: CloseCallFilter | None = None, decision_logits: torch.Tensor | None = None) -> set[int]:
    """The rows of `logits` ([batch, labels], or [batch, seq, labels] for NER features) whose two best logits are
    less than `margin` apart: for classification at the row, for NER at some word the row's feature owns (and,
    with `matters`, only rows for which it returns True). Multi-label (`decision_logits`: each label's threshold as
    a logit): the rows with some label's logit less than `margin` from its threshold."""
    if decision_logits is not None:
        if not margin > 0:
            return set()
        near = ((logits - decision_logits.to(logits.device)).abs() < margin).any(dim=-1)
        return set(near.nonzero().view(-1).tolist())
    if logits.shape[-1] < 2 or not margin > 0:
        return set()
    best_two = logits.topk(2, dim=-1).values
    near = (best_two[..., 0] - best_two[..., 1]) < margin
    if near.dim() == 1:
        return set(near.nonzero().view(-1).tolist())
    close = set()
    for row in near.any(dim=-1).nonzero().view(-1).tolist():  # only these rows can have a close word
        near_here = near[row].tolist()
        if any(near_here[position] for position, _ in features[row].word_positions) and (
                matters is None or matters(features[row], logits[row], margin)):
            close.add(row)
    return close


def rechecked_batches(model: torch.nn.Module, features: list[Feature], collator: PadCollator, batch_size: int, *,
                      bf16: bool = False, with_labels: bool = True, packed=None,
                      recheck_model: torch.nn.Module | None = None, recheck_margin: float = 0.0,
                      recheck_filter: CloseCallFilter | None = None, decision_logits: torch.Tensor | None = None,
                      ) -> Iterator[tuple[list[int], torch.Tensor, dict[str, torch.Tensor], bool]]:
    """`batching.forward_batches`, with close calls answered by `recheck_model` (fp32; the same model without
    autocast when it is `model` run with `bf16`). A feature with a close call (`close_calls`, at `recheck_margin`,
    narrowed by `recheck_filter`) is taken out of the batch it came in and yielded once, from a pass of
    `recheck_model` over all such features after the first pass. Yields (feature indices, logits, padded batch,
    whether this is the recheck pass). Multi-label: `decision_logits` (see `close_calls`)."""
    check = recheck_model is not None and recheck_margin > 0
    close: list[int] = []
    for indices, logits, batch in forward_batches(model, features, collator, batch_size, bf16,
                                                  with_labels=with_labels, packed=packed):
        near = (close_calls(logits, [features[i] for i in indices], recheck_margin, recheck_filter, decision_logits)
                if check else set())
        if near:
            close.extend(indices[row] for row in sorted(near))
            kept = [row for row in range(len(indices)) if row not in near]
            if not kept:
                continue
            indices, logits = [indices[row] for row in kept], logits[kept]
            batch = {name: tensor[kept] for name, tensor in batch.items()}  # every entry is one row per feature
        yield indices, logits, batch, False
    if close:
        subset = [features[i] for i in close]
        for indices, logits, batch in forward_batches(recheck_model, subset, collator, batch_size,
                                                      with_labels=with_labels, packed=packed):
            yield [close[i] for i in indices], logits, batch, True


def _windows_per_example(features: list[Feature]) -> dict[int, int]:
    """Feature counts of the examples that have several (their windows are consecutive features)."""
    counts: dict[int, int] = {}
    for previous, feature in zip(features, features[1:]):
        if feature.example_index == previous.example_index:
            counts[feature.example_index] = counts.get(feature.example_index, 1) + 1
    return counts


# Scalar metrics copied into history rows and the card's results table, in this order.
CLASSIFICATION_TABLE_METRICS = TASK_METRICS["text-classification"]


def table_metrics(task: str) -> tuple[str, ...]:
    return TASK_METRICS.get(task, CLASSIFICATION_TABLE_METRICS)


def tuned_thresholds(evaluation: "Evaluation") -> dict:
    """Multi-label: a decision threshold per label tuned on an evaluation that kept its probabilities (each
    label's F1 at its best; 0.5 for a label without a positive example there), as metrics.json keeps them."""
    labels = [evaluation.id2label[i] for i in sorted(evaluation.id2label)]
    tuned = tune_thresholds(evaluation.probabilities, evaluation.targets, DEFAULT_THRESHOLD) if evaluation.targets \
        else [{"threshold": DEFAULT_THRESHOLD, "tuned": False, "support": 0, "f1": None} for _ in labels]
    return {label: entry for label, entry in zip(labels, tuned)}
