"""Evaluation metrics: entity-level NER scores (seqeval/conlleval parity), classification scores, baselines."""

from tunecard.metrics.baselines import all_o_baseline, majority_baseline, majority_tag_baseline
from tunecard.metrics.classification import ClassificationScorer, classification_scores, default_positive_label
from tunecard.metrics.entities import SUPPORTED_SCHEMES, EntityScorer, char_entities, extract_entities, score_entities

__all__ = [
    "SUPPORTED_SCHEMES",
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
