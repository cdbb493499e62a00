"""Families the code was not written against (tests/families.py, HELD_OUT), as tiny random models built offline:
what the code must find out from the model itself, not from a list of model types.

- MPNet counts positions after its padding index, as RoBERTa does: the packed rows' position ids start there
  (read from its position embedding), and it packs.
- ConvBERT's convolution mixes neighbouring positions: two texts in one row change each other, so the packing check
  refuses it for NER and text classification, even where a freshly initialised head's small logits shrink the
  difference below an absolute bound.
"""

from __future__ import annotations

import pytest
from conftest import WNUT_SAMPLE
from families import build_family

from tunecard import environment
from tunecard.encoding.batching import PadCollator
from tunecard.encoding.encoder import Encoder
from tunecard.encoding.models import load_model, load_tokenizer
from tunecard.speed import packing


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """family -> its tiny base model's folder, built once per module."""
    built: dict = {}

    def get(family: str):
        if family not in built:
            built[family] = build_family(family, tmp_path_factory.mktemp(f"held-out-{family}"))
        return built[family]

    return get


def _features(folder, task: str):
    from tunecard.data import read_corpus
    from tunecard.data.example import TextExample

    tokenizer = load_tokenizer(str(folder))
    examples = read_corpus(WNUT_SAMPLE / "train.conll", task="ner").examples[:16]
    if task == "ner":
        tags = sorted({tag for example in examples for tag in example.tags})
        label2id = {tag: i for i, tag in enumerate(tags)}
        features = Encoder(tokenizer, label2id, 128).encode_tokens(examples)
    else:
        label2id = {"a": 0, "b": 1, "c": 2}
        texts = [TextExample(text=" ".join(example.tokens), label="abc"[i % 3]) for i, example in enumerate(examples)]
        features = Encoder(tokenizer, label2id, 128).encode_texts(texts)
    kind = "token-classification" if task == "ner" else "text-classification"
    model = load_model(str(folder), kind, {i: label for label, i in label2id.items()})
    return tokenizer, model, features


def test_positions_after_the_padding_index_are_read_from_the_model(held_out):
    tokenizer, model, features = _features(held_out("mpnet"), "ner")
    assert environment.position_offset(model) == 2  # its position embedding's padding row is 1
    tokenizer.model_max_length = int(1e30)  # no limit from the tokenizer: the model's table decides
    assert environment.model_max_length(tokenizer, model) == model.config.max_position_embeddings - 2
    collator, layout, _ = packing.choose_collator(model, features, PadCollator(tokenizer.pad_token_id),
                                                  tokenizer.pad_token_id)
    assert layout == packing.PACKED
    rows, _ = collator.pack([feature.model_inputs() for feature in features[:2]])
    length = len(features[0])
    assert rows["position_ids"][0, :length].tolist() == list(range(2, 2 + length))


@pytest.mark.parametrize("task", ["ner", "text"])
def test_a_model_that_mixes_neighbouring_positions_does_not_pack(held_out, task):
    tokenizer, model, features = _features(held_out("convbert"), task)
    _, layout, _ = packing.choose_collator(model, features, PadCollator(tokenizer.pad_token_id),
                                           tokenizer.pad_token_id, padding_free=True, classify=task == "text")
    assert layout == packing.REFUSED
