"""Prediction's fast paths give what the plain ones give: packed sorted passes, bf16 weights, the Rust tokenizer."""

from __future__ import annotations

import pytest
import torch
from conftest import SAMPLE_TEXTS, WNUT_SAMPLE
from hypothesis import given
from hypothesis import strategies as st

from tunecard.data import read_corpus
from tunecard.encoding import batching
from tunecard.encoding.batching import SORTED_PAD_TO_MULTIPLE_OF, PadCollator, forward_batches, token_budget_batches
from tunecard.encoding.encoder import Encoder, split_words, unpadded_backend
from tunecard.encoding.models import load_model, load_tokenizer
from tunecard.inference.predictor import Predictor
from tunecard.speed.packing import packed_collator_for

TEXTS = [*SAMPLE_TEXTS, "Angela Merkel met Emmanuel Macron in Paris ."]


@pytest.fixture(scope="module")
def ner_folder(tiny_bert_cased, tmp_path_factory):
    """A saved token classifier with a wide head (std 1), so its logits are well apart and argmax is stable."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    torch.manual_seed(0)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    model = AutoModelForTokenClassification.from_pretrained(tiny_bert_cased, num_labels=len(labels),
                                                            id2label=dict(enumerate(labels)))
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
    folder = tmp_path_factory.mktemp("ner")
    model.save_pretrained(folder, safe_serialization=True)
    AutoTokenizer.from_pretrained(tiny_bert_cased).save_pretrained(folder)
    return folder


@given(st.lists(st.integers(1, 300), min_size=1, max_size=60), st.integers(1, 400))
def test_token_budget_batches_hold_every_index_once_within_the_budget(lengths, budget):
    batches = token_budget_batches(lengths, budget)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in batch) <= budget or len(batch) == 1 for batch in batches)


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("row_tokens", [128, 12])  # 12: most sentences are longer than a row and go alone
def test_packed_sorted_passes_give_the_padded_logits(ner_folder, monkeypatch, row_tokens, flat):
    monkeypatch.setattr(batching, "PACKED_ROW_TOKENS", row_tokens)
    tokenizer = load_tokenizer(str(ner_folder))
    model = load_model(str(ner_folder), "token-classification", None)
    corpus = read_corpus(WNUT_SAMPLE / "train.conll", task="ner")
    label2id = {tag: 0 for example in corpus.examples for tag in example.tags}  # only where labels sit is compared
    features = Encoder(tokenizer, label2id, 128).encode_tokens(corpus.examples[:60])
    collator = PadCollator(tokenizer.pad_token_id, SORTED_PAD_TO_MULTIPLE_OF)
    padded = {}
    for indices, logits, batch in forward_batches(model, features, collator, 8):
        for row, index in enumerate(indices):
            padded[index] = logits[row, :len(features[index])]
    seen, shared_rows = [], []
    packed = packed_collator_for(model, tokenizer.pad_token_id, flat=flat)
    pack = packed._pack

    def counting_pack(items, capacity, flat=False):
        batch, where, slots = pack(items, capacity, flat)
        shared_rows.append(batch["input_ids"].shape[0] < len(items))
        return batch, where, slots

    packed._pack = counting_pack
    for indices, logits, batch in forward_batches(model, features, collator, 8, packed=packed):
        if flat:
            assert model.config._attn_implementation == "tunecard_sdpa_torch_masks"  # switched for the passes
        assert logits.shape[:2] == batch["input_ids"].shape  # one row per feature, as padding gives them
        assert torch.equal(batch["labels"], collator([features[i].model_inputs() for i in indices])["labels"])
        for row, index in enumerate(indices):
            torch.testing.assert_close(logits[row, :len(features[index])], padded[index], atol=1e-4, rtol=1e-4)
        seen.extend(indices)
    assert sorted(seen) == list(range(len(features)))
    assert any(shared_rows)  # sentences did share rows (with rows of 12, only the shortest do)
    assert model.config._attn_implementation == "sdpa"  # switched back after the passes


def test_the_predictor_packs_and_finds_the_padded_entities(ner_folder):
    packed = Predictor(ner_folder, precision="fp32")
    padded = Predictor(ner_folder, precision="fp32", speed="off")
    assert packed.packed is not None and packed.packed.flat and padded.packed is None  # padding-free passes
    spans = [[(e["label"], e["start"], e["end"]) for e in entities] for entities in packed.predict(TEXTS)]
    assert spans == [[(e["label"], e["start"], e["end"]) for e in entities] for entities in padded.predict(TEXTS)]
    assert any(spans), "the wide random head should find some entity: the comparison would be empty otherwise"


def test_a_model_that_fails_the_probe_predicts_padded(ner_folder, monkeypatch):
    import tunecard.speed.packing as packing

    monkeypatch.setattr(packing, "packing_matches", lambda *args: False)
    predictor = Predictor(ner_folder, precision="fp32")
    assert predictor.packed is None
    assert len(predictor.predict(TEXTS)) == len(TEXTS)


def test_bf16_prediction_casts_the_weights_once(ner_folder):
    bf16 = Predictor(ner_folder, precision="bf16")
    fp32 = Predictor(ner_folder, precision="fp32")
    assert {p.dtype for p in bf16.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in fp32.model.parameters()} == {torch.float32}
    words = [[w for w, _, _ in ws] for ws in split_words(fp32.encoder.backend, TEXTS)]
    tags_bf16 = [t for sentence in bf16.predict_words(words) for t, _ in sentence]
    tags_fp32 = [t for sentence in fp32.predict_words(words) for t, _ in sentence]
    same = sum(a == b for a, b in zip(tags_bf16, tags_fp32))
    assert same >= 0.9 * len(tags_fp32)  # bf16 rounding may flip a near tie, not the bulk of the tags


@pytest.mark.parametrize("vocab_fixture", ["tiny_bert_cased", "tiny_bert_chinese"])
def test_the_rust_tokenizer_gives_the_wrappers_encodings(vocab_fixture, request):
    tokenizer = load_tokenizer(str(request.getfixturevalue(vocab_fixture)))
    # A tokenizer.json may come with padding and truncation switched on: the copy must not inherit them.
    tokenizer.backend_tokenizer.enable_padding(length=64)
    tokenizer.backend_tokenizer.enable_truncation(max_length=6)
    backend = unpadded_backend(tokenizer)
    wrapper = tokenizer(TEXTS, add_special_tokens=False, return_offsets_mapping=True)
    for index, encoding in enumerate(backend.encode_batch(TEXTS, add_special_tokens=False)):
        assert encoding.ids == wrapper["input_ids"][index]
        assert encoding.offsets == [tuple(o) for o in wrapper["offset_mapping"][index]]
        assert encoding.word_ids == wrapper.word_ids(index)
    word_lists = [text.split() for text in TEXTS]
    encoder = Encoder(tokenizer, {"O": 0}, 512)
    expected = tokenizer(word_lists, is_split_into_words=True, truncation=False, add_special_tokens=True)
    for index, (inputs, word_ids) in enumerate(encoder._encode_many(word_lists)):
        assert inputs == {name: expected[name][index] for name in encoder.input_names}
        assert word_ids == expected.word_ids(index)


def test_the_cli_switches_packing_off(ner_folder):
    import json

    from typer.testing import CliRunner

    from tunecard.cli import app

    outputs = {}
    for flag in ("auto", "off"):
        result = CliRunner().invoke(app, ["predict", str(ner_folder), "--precision", "fp32", "--speed", flag,
                                          *[arg for text in TEXTS for arg in ("--text", text)]])
        assert result.exit_code == 0, result.output
        outputs[flag] = [[(e["label"], e["start"], e["end"]) for e in json.loads(line)["entities"]]
                         for line in result.stdout.strip().splitlines()]
    assert len(outputs["auto"]) == len(TEXTS)
    assert outputs["auto"] == outputs["off"]


def test_eager_attention_packs_in_bf16(ner_folder):
    """Eager attention adds a float mask to its scores: in bf16 the mask must be bf16 too."""
    predictor = Predictor(ner_folder, precision="bf16")
    predictor.model.set_attn_implementation("eager")
    predictor.packed = packed_collator_for(predictor.model, predictor.tokenizer.pad_token_id)
    assert predictor.packed.additive_mask_dtype is torch.float32
    words = [[w for w, _, _ in ws] for ws in split_words(predictor.encoder.backend, TEXTS)]
    packed = [t for sentence in predictor.predict_words(words) for t, _ in sentence]
    predictor.packed = None
    padded = [t for sentence in predictor.predict_words(words) for t, _ in sentence]
    assert sum(a == b for a, b in zip(packed, padded)) >= 0.9 * len(padded)


def test_the_rust_copy_is_reused_until_the_tokenizer_changes(tiny_bert_cased):
    tokenizer = load_tokenizer(str(tiny_bert_cased))
    first = unpadded_backend(tokenizer)
    assert unpadded_backend(tokenizer) is first  # parsing the pipeline is the costly part: done once
    tokenizer.add_tokens(["zzqxword"])
    changed = unpadded_backend(tokenizer)
    assert changed is not first
    assert [w for w, _, _ in split_words(changed, ["a zzqxword b"])[0]] == ["a", "zzqxword", "b"]


def test_a_cpu_that_refuses_onednn_bf16_linears_predicts_with_plain_ones(ner_folder, monkeypatch):
    from tunecard.speed.onednn_linear import OneDnnLinear

    def refuse(self, x):
        raise RuntimeError("this CPU has no oneDNN bf16 matmul")

    monkeypatch.setattr(OneDnnLinear, "forward", refuse)
    predictor = Predictor(ner_folder, precision="bf16", recheck_margin=0)
    assert not predictor.speed_plan.uses("onednn_linears")
    assert not any(isinstance(module, OneDnnLinear) for module in predictor.model.modules())
    assert len(predictor.predict(TEXTS)) == len(TEXTS)
