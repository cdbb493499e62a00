"""Read every shared benchmark corpus with format detection and check the published counts.

The corpora live outside the repository (never copied in): ``../shared/data`` next to the project root.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from tunecard.data import ReadOptions, read_corpus
from tunecard.data.example import TEXT_TASK, TOKEN_TASK, Corpus
from tunecard.data.stats import corpus_stats
from tunecard.data.validate import validate_splits
from tunecard.errors import DataError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

pytestmark = [
    pytest.mark.skipif(not DATA.is_dir(), reason=f"shared datasets not found at {DATA}"),
    pytest.mark.slow,  # reads full corpora (a few seconds in all)
]


@cache
def read(relative: str, encoding: str | None = None) -> Corpus:
    return read_corpus(DATA / relative, ReadOptions(encoding=encoding))


def tokens(corpus: Corpus) -> int:
    return sum(len(ex.tokens) for ex in corpus.examples)


def test_conll2003():
    train, valid = read("conll2003/train.txt"), read("conll2003/valid.txt")
    assert (train.format, train.task, train.scheme, train.repaired) == ("conll", TOKEN_TASK, "IOB2", 0)
    assert len(train) == 14041 and tokens(train) == 203621
    stats = corpus_stats(train)
    assert stats["entities"] == {"PER": 6600, "ORG": 6321, "LOC": 7140, "MISC": 3438}
    assert stats["documents"] == 946 and train.examples[0].doc_id == 0 and train.examples[0].line == 3
    assert len(valid) == 3250
    validate_splits(train, {"validation": valid})


@pytest.mark.parametrize(("split", "count"), [("train", 3394), ("dev", 1009), ("test", 1287)])
def test_wnut17(split, count):
    corpus = read(f"wnut17/{split}.conll")
    assert len(corpus) == count and corpus.scheme == "IOB2"
    assert "creative-work" in corpus.entity_types and len(corpus.entity_types) == 6
    assert all(ex.doc_id is None for ex in corpus.examples)


def test_wnut17_splits_are_consistent():
    validate_splits(read("wnut17/train.conll"), {"dev": read("wnut17/dev.conll"), "test": read("wnut17/test.conll")})


@pytest.mark.parametrize(("split", "count"), [("train", 3821), ("dev", 463), ("test", 477)])
def test_resume_ner(split, count):
    corpus = read(f"resume_ner/{split}.char.bmes")
    assert len(corpus) == count and corpus.scheme == "BMES"
    assert all(len(token) == 1 for ex in corpus.examples[:50] for token in ex.tokens)  # one character per line
    assert len(corpus.entity_types) == 8


@pytest.mark.parametrize(("split", "count"), [("train", 6920), ("dev", 872), ("test", 1821)])
def test_sst2(split, count):
    corpus = read(f"sst2/{split}.txt")
    assert (corpus.format, corpus.task, len(corpus)) == ("label-text", TEXT_TASK, count)
    assert corpus.labels == ["0", "1"]


@pytest.mark.parametrize(("split", "count"), [("train", 9600), ("dev", 1200)])
def test_chnsenticorp(split, count):
    corpus = read(f"chnsenticorp/{split}.tsv")
    assert (corpus.format, len(corpus), corpus.labels) == ("tsv", count, ["negative", "positive"])
    assert corpus.warnings == []  # no header: nothing was taken for one


def test_trec6_train_is_latin1():
    path = DATA / "trec6/train.txt"
    with pytest.raises(DataError) as caught:
        read_corpus(path)
    assert caught.value.code == "E101" and caught.value.path == str(path) and caught.value.line is not None
    assert "latin-1" in caught.value.fix
    train = read("trec6/train.txt", "latin-1")
    assert len(train) == 5452 and train.labels == ["0", "1", "2", "3", "4", "5"]
    test = read("trec6/test.txt")
    assert len(test) == 500
    validate_splits(train, {"test": test})


def test_every_split_of_every_dataset_validates():
    # Two organisations run across a sentence break in train: 4 tags repaired (M- after the break, ...).
    assert read("resume_ner/train.char.bmes").repaired == 4
    validate_splits(read("resume_ner/train.char.bmes"),
                    {"dev": read("resume_ner/dev.char.bmes"), "test": read("resume_ner/test.char.bmes")})
    validate_splits(read("sst2/train.txt"), {"dev": read("sst2/dev.txt"), "test": read("sst2/test.txt")})
    validate_splits(read("chnsenticorp/train.tsv"), {"dev": read("chnsenticorp/dev.tsv")})
