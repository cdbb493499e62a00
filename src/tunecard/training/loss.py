"""The training loss where it is not the model's own: class weights, and multi-label targets.

Without class weights the Trainer trains on the model's own loss (cross-entropy; for multi-label,
transformers' `problem_type = "multi_label_classification"` gives BCE with float targets) and the Trainer's own
label smoothing. `class_weights` (none | balanced | {label: weight}) replaces it with `TrainingLoss`:

* text classification: cross-entropy with a weight per class (a weighted mean over the batch's texts);
* NER: cross-entropy with a weight per tag over every scored subword (a weighted mean; positions labelled -100,
  padding and context, are not scored). Weights are given per tag, or per entity type for its B- and I- tags;
* multi-label: BCE with a `pos_weight` per label (its positive targets count that much more; negatives 1).

`balanced`: n / (classes x count) per class or tag (scikit-learn's `compute_class_weight("balanced")`, counted on
the training split: texts, or words for NER); for multi-label each label's negatives / positives (1 for a label
every text has). Named weights: labels not named weigh 1.

The loss is a function of the (logit, target) pairs of a batch only, not of how they sit in rows, so packed,
padding-free and padded batches give the same value; the speed layer's training-mode check computes it the same
way (`speed.training_levers(..., loss=...)`). A batch's loss is a weighted mean: its summed loss over its
denominator (cross-entropy: the sum of its scored items' class weights, as torch's `weight`; BCE: texts x labels).
In training, an optimizer step's micro-batches (gradient accumulation) and processes share one denominator, the
step's (`TunecardTrainer.get_batch_samples`), so the step's loss is its whole batch's weighted mean however it is
split, as for the model's own loss (`TunecardTrainer.compute_loss`). Evaluation's loss stays the plain, unweighted
one (`training/evaluate.py`), comparable between runs with and without weights.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F

from tunecard.config import MULTI_LABEL, TrainConfig
from tunecard.data.example import Corpus
from tunecard.encoding.encoder import IGNORE_INDEX
from tunecard.errors import ConfigError

NONE, BALANCED = "none", "balanced"


def class_weights(setting, task: str, labels: list[str], train: Corpus) -> dict[str, float] | None:
    """The weight of each label (NER: each tag) from the config's `class_weights`, or None for `none`.

    Args:
        setting: "none", "balanced" or {label: weight} (TrainConfig.class_weights).
        task: the run's task.
        labels: the model's labels (tags for NER), in id order.
        train: the training corpus (counts for `balanced`).

    Raises:
        ConfigError: E211 a named label the training data does not have (the valid names listed).
    """
    if setting in (None, NONE):
        return None
    if setting == BALANCED:
        return _balanced(task, labels, train)
    return _named(setting, task, labels)


def _balanced(task: str, labels: list[str], train: Corpus) -> dict[str, float]:
    if task == MULTI_LABEL:
        n = len(train.examples)
        positives = Counter(label for example in train.examples for label in example.labels)
        return {label: (n - positives[label]) / positives[label] if positives[label] and n > positives[label] else 1.0
                for label in labels}
    if task == "token-classification":
        counts = Counter(tag for example in train.examples for tag in example.tags)
    else:
        counts = Counter(example.label for example in train.examples)
    total = sum(counts[label] for label in labels)
    return {label: total / (len(labels) * counts[label]) if counts[label] else 1.0 for label in labels}


def _named(setting: dict[str, float], task: str, labels: list[str]) -> dict[str, float]:
    weights = {label: 1.0 for label in labels}
    if task == "token-classification":
        types = sorted({tag[2:] for tag in labels if tag != "O"})
        unknown = [name for name in setting if name not in labels and name not in types]
        valid = f"entity types {types} or tags {labels}"
        for name, weight in setting.items():  # a type first: an explicit B-/I- tag of it wins
            if name in types:
                for prefix in ("B-", "I-"):
                    if f"{prefix}{name}" in weights:
                        weights[f"{prefix}{name}"] = weight
        explicit = {name: weight for name, weight in setting.items() if name in labels}
    else:
        unknown = [name for name in setting if name not in labels]
        valid = f"labels {labels}"
        explicit = setting
    if unknown:
        raise ConfigError("E211", f"class_weights names {unknown}, which the training data does not have; the "
                          f"valid names are the {valid}.", fix="name labels of the training data (spelt as in the "
                          "file), or use class_weights: balanced.")
    weights.update(explicit)
    return weights


class TrainingLoss:
    """The loss of a batch from the model's logits and the batch's labels (see the module docstring).

    Args:
        task: the run's task.
        weights: one weight per label id (NER: tag id), or None.
        label_smoothing: as the Trainer's `label_smoothing_factor` (multi-label: targets moved that far toward 1/2).
    """

    def __init__(self, task: str, weights: list[float] | None, label_smoothing: float = 0.0):
        self.task = task
        self.weights = torch.tensor(weights, dtype=torch.float32) if weights is not None else None
        self.label_smoothing = label_smoothing

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The batch's loss: its weighted mean (as torch's `weight` and `pos_weight` give it)."""
        total, denominator = self.parts(logits, labels)
        return total / denominator.clamp(min=torch.finfo(total.dtype).tiny)

    def parts(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's summed loss and its denominator (`denominator(labels)`): their ratio is the batch's mean, and
        the sums over several batches over their denominators' sum is the mean of the batches together."""
        logits = logits.float()  # the model's own loss runs inside its autocast region, in fp32: so does this one
        weights = self.weights.to(logits.device) if self.weights is not None else None
        labels = labels.to(logits.device)
        if self.task == MULTI_LABEL:
            targets = labels.float()
            if self.label_smoothing:
                targets = targets * (1 - self.label_smoothing) + self.label_smoothing / 2
            total = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weights, reduction="sum")
        else:
            total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), weight=weights,
                                    ignore_index=IGNORE_INDEX, label_smoothing=self.label_smoothing,
                                    reduction="sum")
        return total, self.denominator(labels).to(total.dtype)

    def denominator(self, labels: torch.Tensor) -> torch.Tensor:
        """What a batch's mean divides by (float64): BCE, its texts x labels; cross-entropy, its scored items'
        (labels not -100) class weights summed (their count without weights)."""
        if self.task == MULTI_LABEL:
            return torch.tensor(float(labels.numel()), dtype=torch.float64)
        scored = labels[labels != IGNORE_INDEX]
        if self.weights is None:
            return torch.tensor(float(scored.numel()), dtype=torch.float64)
        return self.weights.to(scored.device, torch.float64)[scored].sum().cpu()

    @staticmethod
    def logits(outputs) -> torch.Tensor:
        """The logits of a model's outputs (a ModelOutput or a tuple)."""
        return outputs.logits if hasattr(outputs, "logits") else outputs[0]


def training_loss(config: TrainConfig, labels: list[str], weights: dict[str, float] | None) -> TrainingLoss | None:
    """The run's loss when it is not the model's own (class weights, or multi-label with label smoothing, which the
    Trainer's smoother computes as a softmax over labels); None: the model's own loss and the Trainer's smoothing."""
    if weights is None and not (config.task == MULTI_LABEL and config.label_smoothing):
        return None
    return TrainingLoss(config.task, [weights[label] for label in labels] if weights is not None else None,
                        config.label_smoothing)
