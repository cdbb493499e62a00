"""Score a model on encoded examples: loss plus every metric of the scoring layer, streamed batch by batch.

Only argmax ids are kept (one int per word for NER), never full logits, so memory stays bounded. The loss is
the plain cross-entropy averaged over every scored position (subwords for NER, examples for classification),
without label smoothing, so it is comparable between runs whatever their training loss was.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .batching import PadCollator, forward_batches
from .encode import IGNORE_INDEX, Feature
from .metrics import ClassificationScorer, EntityScorer


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
    """
    is_ner = task == "token-classification"
    loss_sum, loss_count = 0.0, 0
    if is_ner:
        word_predictions = [[None] * len(ex.tokens) for ex in examples]
    else:
        predicted_labels: list[str | None] = [None] * len(examples)
    for indices, logits, batch in forward_batches(model, features, collator, batch_size, bf16):
        labels = batch["labels"]
        flat_logits = logits.reshape(-1, logits.shape[-1])
        flat_labels = labels.reshape(-1).to(flat_logits.device)
        scored = flat_labels != IGNORE_INDEX
        if scored.any():
            loss_sum += F.cross_entropy(flat_logits[scored], flat_labels[scored], reduction="sum").item()
            loss_count += int(scored.sum())
        predicted = logits.argmax(dim=-1).cpu().tolist()
        for row, feature_index in zip(predicted, indices):
            feature = features[feature_index]
            if is_ner:
                words = word_predictions[feature.example_index]
                for position, word in feature.word_positions:
                    words[word] = id2label[row[position]]
            else:
                predicted_labels[feature.example_index] = id2label[row]
    if is_ner:
        scorer = EntityScorer()
        for example, predicted_tags in zip(examples, word_predictions):
            missing = [i for i, tag in enumerate(predicted_tags) if tag is None]
            if missing:  # would mean a window bug: fail loudly rather than score a partial sentence
                raise RuntimeError(f"no prediction for words {missing[:5]} of example at line {example.line}")
            scorer.update(example.tags, predicted_tags)
        result = scorer.result()
    else:
        label_names = [id2label[i] for i in sorted(id2label)]
        scorer = ClassificationScorer(labels=label_names, positive_label=positive_label)
        scorer.update([ex.label for ex in examples], predicted_labels)
        result = scorer.result()
    result["loss"] = loss_sum / loss_count if loss_count else float("nan")
    return result


# Scalar metrics copied into history rows and the card's results table, in this order.
NER_TABLE_METRICS = ("precision", "recall", "f1", "accuracy")
CLASSIFICATION_TABLE_METRICS = ("accuracy", "precision", "recall", "f1")


def table_metrics(task: str) -> tuple[str, ...]:
    return NER_TABLE_METRICS if task == "token-classification" else CLASSIFICATION_TABLE_METRICS
