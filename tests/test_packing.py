"""Packed training batches (NER and text classification): the same model outputs, the same training steps, and a
fallback when they differ."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import WNUT_SAMPLE
from hypothesis import given
from hypothesis import strategies as st

from tunecard.config import build_config
from tunecard.data import read_corpus
from tunecard.data.example import TextExample
from tunecard.encoding.batching import PadCollator
from tunecard.encoding.encoder import Encoder
from tunecard.encoding.models import load_model, load_tokenizer
from tunecard.pipeline import train
from tunecard.speed.attention import restore_attention, tunecard_attention, use_tunecard_attention
from tunecard.speed.packing import (
    FIRSTS,
    FLAT_LENGTH_MULTIPLE,
    PADDING_FREE,
    REFUSED,
    SLOTS,
    PackedCollator,
    choose_collator,
    first_fit_rows,
    first_token_points,
    packed_collator_for,
    packing_matches,
    read_first_tokens,
    reading_point,
    stop_reading_first_tokens,
)


@given(st.lists(st.integers(1, 60), min_size=1, max_size=40))
def test_rows_hold_every_item_once_within_capacity(lengths):
    rows = first_fit_rows(lengths, max(lengths))
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= max(lengths) for row in rows)


def _features(model_folder: Path, count: int = 16):
    tokenizer = load_tokenizer(str(model_folder))
    corpus = read_corpus(WNUT_SAMPLE / "train.conll", task="ner")
    labels = sorted({tag for example in corpus.examples for tag in example.tags})
    label2id = {label: i for i, label in enumerate(labels)}
    model = load_model(str(model_folder), "token-classification", dict(enumerate(labels)))
    features = Encoder(tokenizer, label2id, 128).encode_tokens(corpus.examples[:count])
    return model, tokenizer, features


def _assert_same_loss_and_gradients(model, padded: dict, other: dict) -> None:
    model.train()
    model.zero_grad()
    padded_loss = model(**padded).loss
    padded_loss.backward()
    padded_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    other_loss = model(**other).loss
    other_loss.backward()
    assert other_loss.item() == pytest.approx(padded_loss.item(), abs=1e-5)
    for name, param in model.named_parameters():
        if name in padded_grads:
            torch.testing.assert_close(param.grad, padded_grads[name], atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_batch_gives_the_padded_logits_loss_and_gradients(no_dropout_bert, attention):
    model, tokenizer, features = _features(no_dropout_bert)
    model.config._attn_implementation = attention
    items = [f.model_inputs() for f in features]
    padded = PadCollator(tokenizer.pad_token_id)(items)
    packed_collator = packed_collator_for(model, tokenizer.pad_token_id)
    packed = packed_collator(items)
    assert packed["input_ids"].shape[0] < len(items), "16 short sentences should share rows"
    assert (packed["labels"] != -100).sum() == (padded["labels"] != -100).sum()

    _assert_same_loss_and_gradients(model, padded, packed)
    assert packing_matches(model, features, packed_collator, PadCollator(tokenizer.pad_token_id))


@given(st.lists(st.integers(2, 40), min_size=1, max_size=24))
def test_a_padding_free_batch_holds_each_token_once_where_the_rows_have_it(lengths):
    items = [{"input_ids": [100 * i + t for t in range(n)], "labels": [i] * n, "token_type_ids": [i % 2] * n}
             for i, n in enumerate(lengths)]
    collator = PackedCollator(0, flat=True)
    flat = collator(items)
    rows = collator._pack(items, flat=True)[0]  # the rows its attention sees
    slots = flat[SLOTS]
    tokens = sum(lengths)
    # rounded up to a multiple of 32 with the rows' padding places (one kernel shape per length for oneDNN); the
    # rows as wide as the longest item, or as the rounding needs
    assert FLAT_LENGTH_MULTIPLE == 32
    assert flat["input_ids"].shape == (1, -(-tokens // 32) * 32)
    row_count, width = rows["input_ids"].shape
    assert width == max(max(lengths), -(-flat["input_ids"].shape[1] // row_count))
    assert row_count == PackedCollator(0)(items)["input_ids"].shape[0], "as many rows as packed rows"
    assert len(set(slots.tolist())) == len(slots), "two tokens in one place"
    assert flat["input_ids"][0, :tokens].tolist() == [token for item in items for token in item["input_ids"]]
    padding_places = slots[tokens:]
    assert (rows["labels"].view(-1)[padding_places] == -100).all(), "a padding place must carry no label"
    assert (rows["input_ids"].view(-1)[padding_places] == 0).all()
    for name in ("input_ids", "labels", "token_type_ids", "position_ids"):
        assert torch.equal(flat[name][0], rows[name].view(-1)[slots]), name
    assert torch.equal(flat["attention_mask"], rows["attention_mask"])


@pytest.mark.parametrize("fast_masks", [True, False])
def test_a_padding_free_batch_gives_the_padded_logits_loss_and_gradients(no_dropout_bert, fast_masks):
    model, tokenizer, features = _features(no_dropout_bert)
    items = [f.model_inputs() for f in features]
    padded = PadCollator(tokenizer.pad_token_id)(items)
    flat_collator = packed_collator_for(model, tokenizer.pad_token_id, flat=True)
    flat = flat_collator(items)
    rows = packed_collator_for(model, tokenizer.pad_token_id)(items)
    tokens = sum(len(item["input_ids"]) for item in items)
    assert tokens <= flat["input_ids"].numel() < tokens + FLAT_LENGTH_MULTIPLE
    assert flat["input_ids"].numel() < rows["input_ids"].numel()
    assert not packing_matches(model, features, flat_collator, PadCollator(tokenizer.pad_token_id)), \
        "plain SDPA cannot read a flat batch: the check must refuse it"
    assert use_tunecard_attention(model, fast_masks=fast_masks)
    _assert_same_loss_and_gradients(model, padded, flat)
    assert packing_matches(model, features, flat_collator, PadCollator(tokenizer.pad_token_id))
    restore_attention(model)
    assert model.config._attn_implementation == "sdpa"


def test_the_padding_free_check_leaves_the_attention_as_it_was(no_dropout_bert):
    model, tokenizer, features = _features(no_dropout_bert)
    collator, kind, _ = choose_collator(model, features, PadCollator(tokenizer.pad_token_id),
                                        tokenizer.pad_token_id, padding_free=True)
    assert kind == PADDING_FREE and collator.flat
    assert model.config._attn_implementation == "sdpa"
    model.config._attn_implementation = "eager"  # no AttentionInterface switch: packed rows, not flat
    collator, kind, _ = choose_collator(model, features, PadCollator(tokenizer.pad_token_id),
                                        tokenizer.pad_token_id, padding_free=True)
    assert kind == "packed" and not collator.flat


def test_wrong_positions_fail_the_check(no_dropout_bert):
    model, tokenizer, features = _features(no_dropout_bert)
    wrong = PackedCollator(tokenizer.pad_token_id, position_offset=3)
    assert not packing_matches(model, features, wrong, PadCollator(tokenizer.pad_token_id))


def _run(model: Path, output: Path, **overrides):
    values = dict(task="ner", model=str(model), train=str(WNUT_SAMPLE / "train.conll"), output=str(output),
                  validation=str(WNUT_SAMPLE / "dev.conll"), num_epochs=1, max_train_examples=64,
                  max_eval_examples=32, train_batch_size=16, learning_rate=1e-3, precision="fp32",
                  **overrides)
    return train(build_config(None, values), progress=False)


@pytest.mark.parametrize("layout, overrides", [("packed, padding-free", {}), ("packed", {"speed_options": {"padding_free": False}}),
                                               ("packed, padding-free", {"speed_options": {"fast_dropout": False}})])
def test_packed_training_takes_the_padded_steps(no_dropout_bert, tmp_path, layout, overrides):
    packed = _run(no_dropout_bert, tmp_path / "packed", **overrides)
    padded = _run(no_dropout_bert, tmp_path / "padded", speed_options={"packing": False})
    assert packed.metrics["training"]["batches"] == layout
    assert padded.metrics["training"]["batches"] == "padded"
    packed_losses = [step["loss"] for step in packed.history["steps"]]
    padded_losses = [step["loss"] for step in padded.history["steps"]]
    assert len(packed_losses) == len(padded_losses) == 4
    assert packed_losses == pytest.approx(padded_losses, abs=1e-4)
    assert packed.metrics["validation"]["f1"] == pytest.approx(padded.metrics["validation"]["f1"], abs=1e-6)
    card = (packed.output / "README.md").read_text()
    assert f"Batches: {layout}," in card
    assert "Batches: packed" not in (padded.output / "README.md").read_text()
    assert "tunecard_sdpa" not in (packed.output / "config.json").read_text()  # saved with plain SDPA


class _Feature:
    def __init__(self, ids: list[int], label: int | None = None):
        self.ids = ids
        self.label = label

    def model_inputs(self) -> dict:
        labels = [0] * len(self.ids) if self.label is None else self.label
        return {"input_ids": self.ids, "attention_mask": [1] * len(self.ids), "labels": labels}


def _random_features(classify: bool = False) -> list[_Feature]:
    generator = torch.Generator().manual_seed(0)
    return [_Feature([5, *torch.randint(10, 900, (int(n),), generator=generator).tolist(), 6],
                     label=n % 3 if classify else None)
            for n in torch.randint(1, 30, (16,), generator=generator).tolist()]


@pytest.mark.parametrize("family, packs", [("bert", True), ("roberta", True), ("distilbert", True),
                                           ("deberta-v2", False)])
def test_each_model_family_packs_or_falls_back(family, packs):
    """RoBERTa's positions start after the padding index; DeBERTa's relative attention does not take the block
    mask, and the check sends it back to padding instead of training it on wrong inputs."""
    import transformers

    features = _random_features()
    small = dict(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                 num_labels=3)
    config = {
        "bert": lambda: transformers.BertConfig(**small),
        "roberta": lambda: transformers.RobertaConfig(**small, pad_token_id=1),
        "distilbert": lambda: transformers.DistilBertConfig(vocab_size=1000, dim=32, n_layers=2, n_heads=2,
                                                            hidden_dim=64, num_labels=3),
        "deberta-v2": lambda: transformers.DebertaV2Config(**small),
    }[family]()
    model = transformers.AutoModelForTokenClassification.from_config(config)
    pad = config.pad_token_id if config.pad_token_id is not None else 0
    assert packing_matches(model, features, packed_collator_for(model, pad), PadCollator(pad)) is packs

    # The same families as sequence classifiers: each head reads position 0 of its encoder's output.
    classifier = transformers.AutoModelForSequenceClassification.from_config(config)
    collator, kind, point = choose_collator(classifier, _random_features(classify=True), PadCollator(pad), pad,
                                            padding_free=True, classify=True)
    assert kind == (PADDING_FREE if packs else REFUSED)
    # BERT and RoBERTa take the first tokens after the last attention block; DistilBERT adds that block's
    # residual outside it (the check refuses the block), so it takes the encoder's output.
    assert type(point).__name__ == {"bert": "BertAttention", "roberta": "RobertaAttention",
                                    "distilbert": "Transformer", "deberta-v2": "NoneType"}[family]
    assert reading_point(classifier) is None, "the check leaves the model unhooked"
    assert not any(isinstance(p, torch.nn.Module) and p._forward_hooks for p in first_token_points(classifier))


def test_a_model_that_fails_the_check_trains_padded_and_says_so(no_dropout_bert, tmp_path, monkeypatch):
    import importlib

    packing_module = importlib.import_module("tunecard.speed.packing")
    monkeypatch.setattr(packing_module, "packing_matches", lambda *args: False)
    result = _run(no_dropout_bert, tmp_path / "refused")
    assert result.metrics["training"]["batches"] == "padded (the packing check failed for this model)"
    assert "Batches: packed" not in (result.output / "README.md").read_text()


@given(st.lists(st.integers(2, 40), min_size=1, max_size=24), st.booleans())
def test_a_classification_batch_points_at_each_items_first_token(lengths, flat):
    items = [{"input_ids": [100 * i + t for t in range(n)], "labels": i % 5} for i, n in enumerate(lengths)]
    batch = PackedCollator(0, flat=flat, classify=True)(items)
    assert batch["labels"].tolist() == [item["labels"] for item in items]
    firsts = batch[FIRSTS].tolist()
    assert batch["input_ids"].reshape(-1)[firsts].tolist() == [item["input_ids"][0] for item in items]
    assert batch["position_ids"].reshape(-1)[firsts].tolist() == [0] * len(items)


def _classifier(model_folder: Path):
    tokenizer = load_tokenizer(str(model_folder))
    corpus = read_corpus(WNUT_SAMPLE / "train.conll", task="ner")
    examples = [TextExample(text=" ".join(e.tokens), label=str(len(e.tokens) % 3)) for e in corpus.examples[:16]]
    model = load_model(str(model_folder), "text-classification", {0: "0", 1: "1", 2: "2"})
    features = Encoder(tokenizer, {"0": 0, "1": 1, "2": 2}, 128).encode_texts(examples)
    return model, tokenizer, features


def test_a_packed_classification_batch_gives_the_padded_logits_loss_and_gradients(no_dropout_bert):
    model, tokenizer, features = _classifier(no_dropout_bert)
    items = [f.model_inputs() for f in features]
    padded = PadCollator(tokenizer.pad_token_id)(items)
    rows_collator = packed_collator_for(model, tokenizer.pad_token_id, classify=True)
    flat_collator = packed_collator_for(model, tokenizer.pad_token_id, flat=True, classify=True)
    rows, flat = rows_collator(items), flat_collator(items)
    assert rows["input_ids"].shape[0] < len(items) and flat["input_ids"].numel() < padded["input_ids"].numel()
    pad = PadCollator(tokenizer.pad_token_id)
    assert not packing_matches(model, features, rows_collator, pad), "without the hook the head reads the rows"
    points = first_token_points(model)
    assert points == [model.bert.encoder.layer[-1].attention, model.bert.encoder]
    for point in points:
        assert read_first_tokens(model, point)
        assert packing_matches(model, features, rows_collator, pad)
        _assert_same_loss_and_gradients(model, padded, rows)
        with tunecard_attention(model) as ready:
            assert ready
            _assert_same_loss_and_gradients(model, padded, flat)
            assert packing_matches(model, features, flat_collator, pad)
    stop_reading_first_tokens(model)
    assert not packing_matches(model, features, rows_collator, pad), "the hook is gone"


def test_packed_classification_training_takes_the_padded_steps(no_dropout_bert, tmp_path):
    corpus = read_corpus(WNUT_SAMPLE / "train.conll", task="ner")
    for split, examples in (("train", corpus.examples[:64]), ("dev", corpus.examples[64:96])):
        with open(tmp_path / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows((" ".join(e.tokens), "entity" if set(e.tags) - {"O"} else "none") for e in examples)
    runs = {}
    for name, packing in (("packed", True), ("padded", False)):
        values = dict(task="text-classification", model=str(no_dropout_bert), train=str(tmp_path / "train.csv"),
                      validation=str(tmp_path / "dev.csv"), output=str(tmp_path / name), num_epochs=1,
                      train_batch_size=16, learning_rate=1e-3, precision="fp32", speed_options={"packing": packing})
        runs[name] = train(build_config(None, values), progress=False)
    packed, padded = runs["packed"], runs["padded"]
    assert packed.metrics["training"]["batches"] == PADDING_FREE
    assert padded.metrics["training"]["batches"] == "padded"
    packed_losses = [step["loss"] for step in packed.history["steps"]]
    assert len(packed_losses) == 4
    assert packed_losses == pytest.approx([step["loss"] for step in padded.history["steps"]], abs=1e-4)
    assert packed.metrics["validation"]["accuracy"] == padded.metrics["validation"]["accuracy"]
    card = (packed.output / "README.md").read_text()
    assert "Batches: packed, padding-free, each batch's texts" in card
    assert "the classifier reads each text's first token" in card
