"""Evaluation metrics: entity-level NER scores (seqeval/conlleval parity), classification and multi-label scores,
baselines."""

from tunecard.metrics.baselines import (all_o_baseline, label_prior_baseline, label_set_baseline, majority_baseline,
                                        majority_tag_baseline)
from tunecard.metrics.classification import ClassificationScorer, classification_scores, default_positive_label
from tunecard.metrics.entities import SUPPORTED_SCHEMES, EntityScorer, char_entities, extract_entities, score_entities
from tunecard.metrics.multilabel import (DEFAULT_THRESHOLD, MultiLabelScorer, decide, multilabel_scores,
                                         tune_thresholds)

__all__ = [
    "DEFAULT_THRESHOLD",
    "MultiLabelScorer",
    "SUPPORTED_SCHEMES",
    "decide",
    "label_prior_baseline",
    "label_set_baseline",
    "multilabel_scores",
    "tune_thresholds",
    "ClassificationScorer",
    "EntityScorer",
    "all_o_baseline",
    "char_entities",
    "classification_scores",
    "default_positive_label",
    "extract_entities",
    "majority_baseline",
    "majority_tag_baseline",
    "score_entities",
]
