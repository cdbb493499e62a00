"""Shared fixtures: tiny random encoders built offline from ../shared/vocab, and paths to data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout; a git worktree under wt/ finds it one level further up.
SHARED = next((folder for folder in (ROOT.parent / "shared", ROOT.parent.parent / "shared") if folder.is_dir()),
              ROOT.parent / "shared")
SHARED_DATA = SHARED / "data"
SAMPLES = ROOT / "src" / "tunecard" / "samples"
WNUT_SAMPLE = SAMPLES / "wnut17"
# Texts prediction must survive: punctuation, accents, CJK, emoji and URLs, an empty text, and one long enough to
# be cut into several windows by a 32-position model.
SAMPLE_TEXTS = [
    "Taylor Swift sings in Seattle .",
    "Dr. Müller (ETH Zürich) met O'Neil at 9:30am, then left — quickly!!",
    "北京大学的王小明去了上海。",
    "naïve café déjà-vu 😀 #hashtag @user https://example.com/a?b=c",
    "",
    " ".join(f"Angela Merkel met Emmanuel Macron in Paris on day {i} ." for i in range(12)),
]


def build_tiny_bert(folder: Path, vocab_file: Path, *, lowercase: bool, hidden: int = 64, layers: int = 2,
                    max_positions: int = 512) -> Path:
    """A small random BERT (safetensors) with a real WordPiece vocabulary: trains in seconds on CPU."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    torch.manual_seed(0)
    # transformers 5: BertTokenizer is the fast (tokenizers-backed) one and takes the vocabulary as `vocab`.
    tokenizer = BertTokenizer(vocab=str(vocab_file), do_lower_case=lowercase, tokenize_chinese_chars=True,
                              model_max_length=max_positions)
    assert tokenizer.vocab_size > 1000, "the vocabulary did not load"
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=hidden * 2, max_position_embeddings=max_positions)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def _vocab(name: str) -> Path:
    path = SHARED / "vocab" / name / "vocab.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found: tiny test models are built from ../shared/vocab")
    return path


@pytest.fixture(scope="session")
def tiny_bert_cased(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-cased"), _vocab("bert-base-cased"), lowercase=False)


@pytest.fixture(scope="session")
def tiny_bert_short(tmp_path_factory) -> Path:
    """max 32 positions: any real sentence longer than that is windowed."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-short"), _vocab("bert-base-cased"), lowercase=False,
                           max_positions=32)


@pytest.fixture(scope="session")
def tiny_bert_chinese(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert-chinese"), _vocab("bert-base-chinese"), lowercase=True)


@pytest.fixture(scope="session")
def no_dropout_bert(tmp_path_factory) -> Path:
    """A tiny random BERT without dropout, so packed and padded training can be compared step by step."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("tiny-bert-no-dropout")
    torch.manual_seed(0)
    tokenizer = BertTokenizer(vocab=str(_vocab("bert-base-cased")), do_lower_case=False)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def saved_classifier(base, folder, ner: bool, labels: list[str]):
    """A save_pretrained token (`ner`) or sequence classifier on a tiny encoder, its head widened (std 1) so its
    logits spread over a few units: export parity is then about the graph, not about which of two near-equal
    logits rounding favours, and bf16 still meets some close calls (tests/test_recheck.py)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(0)
    cls = AutoModelForTokenClassification if ner else AutoModelForSequenceClassification
    model = cls.from_pretrained(base, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                label2id={label: i for i, label in enumerate(labels)})
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    return folder


def quick_ner_values(model_folder: Path, tmp_path: Path, **overrides) -> dict:
    """Config values for a one-epoch, two-batch NER run on the WNUT-17 sample (training-path tests)."""
    return dict(task="ner", model=str(model_folder), train=str(WNUT_SAMPLE / "train.conll"),
                output=str(tmp_path / "run"), num_epochs=1, max_train_examples=32, train_batch_size=16,
                precision="fp32", save_strategy="no", **overrides)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not found")
    return SHARED_DATA
