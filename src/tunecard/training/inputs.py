"""A run's inputs before any training: the splits read and cross-checked, the label set, the features, and the
facts about them the card reports (statistics, leakage between splits, baselines)."""

from __future__ import annotations

from tunecard.config import MULTI_LABEL, TrainConfig
from tunecard.data import read_corpus
from tunecard.data.example import MULTI_LABEL_TASK, TEXT_TASK, Corpus, as_multi_label
from tunecard.data.stats import corpus_stats, leakage_counts
from tunecard.data.validate import validate_splits
from tunecard.encoding.batching import FeatureDataset
from tunecard.encoding.encoder import Encoder, EncodingStats
from tunecard.errors import ConfigError, DataError
from tunecard.metrics import (all_o_baseline, label_prior_baseline, label_set_baseline, majority_baseline,
                              majority_tag_baseline)

SPLITS = ("train", "validation", "test")


def label_names(corpus: Corpus) -> list[str]:
    """The model's label set, from the training data: O, then B-/I- per entity type; or the sorted classes."""
    if corpus.task == "token-classification":
        return ["O"] + [f"{prefix}-{etype}" for etype in corpus.entity_types for prefix in ("B", "I")]
    labels = corpus.labels
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return labels


def check_positive_label(positive_label: str | None, labels: list[str], is_ner: bool, task: str | None = None) -> None:
    """Fail before training, not at the first evaluation, when positive_label cannot apply."""
    if positive_label is None:
        return
    if task == MULTI_LABEL:
        raise ConfigError("E208", f"positive_label {positive_label!r} applies to binary classification only; in "
                          "multi-label classification every label is decided on its own.",
                          fix="remove positive_label (per-label precision, recall and F1 are reported).")
    if is_ner or len(labels) != 2:
        raise ConfigError("E208", f"positive_label {positive_label!r} applies to binary classification only; this "
                          f"task has labels {labels[:10]}.", fix="remove positive_label.")
    if positive_label not in labels:
        raise ConfigError("E208", f"positive_label {positive_label!r} is not one of the labels {labels}.",
                          fix=f"use one of {labels}.")


def read_splits(config: TrainConfig) -> dict[str, Corpus]:
    """Read and cross-check the splits named in the config (train required; validation strongly advised)."""
    if not config.train:
        raise ConfigError("E207", "no training data given.", fix="pass --train FILE (or `train:` in the config).")
    corpora = {}
    for split in SPLITS:
        path = getattr(config, split)
        if path:  # each split its own encoding; span files cut at span boundaries for training only
            corpus = read_corpus(path, config.read_options(split), task=config.task)
            limit = config.max_train_examples if split == "train" else config.max_eval_examples
            if limit is not None and len(corpus.examples) > limit:
                corpus.examples = corpus.examples[:limit]
                corpus.warnings.append(f"using the first {limit} examples (max_{'train' if split == 'train' else 'eval'}_examples)")
            corpora[split] = corpus
    resolve_multi_label(config, corpora)
    validate_splits(corpora["train"], {k: v for k, v in corpora.items() if k != "train"})
    check_documents(config, corpora)
    return corpora


def check_documents(config: TrainConfig, corpora: dict[str, Corpus]) -> None:
    """`context: document` needs documents: an error if the training split has none (the run would train
    without the context it asked for), a warning on a validation or test split without them."""
    if config.context != "document":
        return
    for split, corpus in corpora.items():
        if any(example.doc_id is not None for example in corpus.examples):
            continue
        if split == "train":
            raise DataError("E117", "context: document, but the training data has no documents (no -DOCSTART- "
                            "line in a CoNLL file, no \"doc_id\" in JSONL records)", path=corpus.path,
                            fix="mark the documents (-DOCSTART- lines between them in CoNLL, a \"doc_id\" per "
                            "JSONL record), or set context: none.")
        corpus.warnings.append("context: document, but this split has no documents (-DOCSTART- lines or "
                               "doc_id keys): its sentences are encoded without context")


def resolve_multi_label(config: TrainConfig, corpora: dict[str, Corpus]) -> None:
    """A text-classification run whose data carries label lists (JSON lists, label_separator) is a multi-label run:
    the config's task becomes multi-label-classification (saved so in train_config.yaml) and splits with one label
    per text are read as one-label sets."""
    if not any(corpus.task == MULTI_LABEL_TASK for corpus in corpora.values()):
        return
    if config.task == TEXT_TASK:
        config.task = MULTI_LABEL
    for corpus in corpora.values():
        as_multi_label(corpus)


def _texts(corpus: Corpus) -> list:
    if corpus.task == "token-classification":
        return [ex.tokens for ex in corpus.examples]
    return [ex.text if ex.text_pair is None else f"{ex.text} [SEP] {ex.text_pair}" for ex in corpus.examples]


def data_report(corpora: dict[str, Corpus], encoding_stats: dict[str, dict]) -> dict:
    """Per split: the reader's statistics, what encoding did, and examples duplicated from training."""
    train_texts = _texts(corpora["train"])
    report = {}
    for split, corpus in corpora.items():
        report[split] = {**corpus_stats(corpus), "encoding": encoding_stats[split], "path": corpus.path,
                         "scheme": corpus.scheme, "repaired": corpus.repaired, "warnings": corpus.warnings}
        if split != "train":
            report[split]["leakage"] = leakage_counts(train_texts, _texts(corpus))
    return report


def compute_baselines(corpora: dict[str, Corpus], positive_label: str | None) -> dict:
    train = corpora["train"]
    baselines = {}
    for split, corpus in corpora.items():
        if split == "train":
            continue
        if corpus.task == "token-classification":
            gold = [ex.tags for ex in corpus.examples]
            # span files: scored against the gold character spans, as the model is (training/evaluate.py)
            spans = ([(ex.spans, ex.offsets) if ex.spans is not None else None for ex in corpus.examples]
                     if corpus.format == "spans" else None)
            baselines[split] = {
                "all_o": all_o_baseline(gold, eval_spans=spans),
                "majority_tag": majority_tag_baseline(
                    [ex.tokens for ex in train.examples], [ex.tags for ex in train.examples],
                    [ex.tokens for ex in corpus.examples], gold, eval_spans=spans,
                ),
            }
        elif corpus.task == MULTI_LABEL_TASK:
            labels = label_names(train)
            train_sets, gold = [ex.labels for ex in train.examples], [ex.labels for ex in corpus.examples]
            baselines[split] = {
                "label_set": label_set_baseline(train_sets, gold, labels),
                "label_prior": label_prior_baseline(train_sets, gold, labels),
            }
        else:
            baselines[split] = {
                "majority": majority_baseline([ex.label for ex in train.examples], [ex.label for ex in corpus.examples],
                                              positive_label=positive_label)
            }
    return baselines


def encode_splits(encoder: Encoder, corpora: dict[str, Corpus], is_ner: bool) -> tuple[dict, dict]:
    """({split: FeatureDataset}, {split: what encoding did}) for every split."""
    datasets, encoding_stats = {}, {}
    for split, corpus in corpora.items():
        stats = EncodingStats()
        if is_ner:
            features = encoder.encode_tokens(corpus.examples, stats)
        else:
            features = encoder.encode_texts(corpus.examples, stats)
        datasets[split] = FeatureDataset(features, corpus.examples)
        encoding_stats[split] = stats.to_dict()
    return datasets, encoding_stats
