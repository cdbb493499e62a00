"""NER with document context: each sentence fed with the sentences around it in its document, only its own words
labelled and scored, in training, evaluation and prediction; composed with the windows of long sentences."""

from __future__ import annotations

import json

import pytest
from conftest import WNUT_SAMPLE
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tunecard.cli import app
from tunecard.config import DEFAULT_CONTEXT_SIZE, build_config
from tunecard.data.example import TokenExample
from tunecard.data.lines import document_groups
from tunecard.encoding.encoder import (IGNORE_INDEX, Encoder, EncodingStats, _plan_windows, document_chunks,
                                       documents)
from tunecard.errors import ConfigError, DataError, ModelError

runner = CliRunner()


# ---- the plan: windows of a target sentence inside its document ---------------------------------------------

@st.composite
def _document_and_target(draw):
    lengths = draw(st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=80))
    first = draw(st.integers(min_value=0, max_value=len(lengths) - 1))
    last = draw(st.integers(min_value=first + 1, max_value=len(lengths)))
    return lengths, (first, last)


@given(_document_and_target(), st.integers(min_value=1, max_value=60), st.integers(min_value=0, max_value=80))
@settings(max_examples=400, deadline=None)
def test_the_target_is_owned_once_and_context_stays_within_its_budgets(document, budget, context_size):
    lengths, (first, last) = document
    windows = _plan_windows(lengths, budget, (first, last), context_size)
    owned = [word for _, start, end, _ in windows for word in range(start, end)]
    assert owned == list(range(first, last))  # every target word scored exactly once, in order
    # which window owns which word does not depend on the context: the windows of the sentence alone
    alone = _plan_windows(lengths[first:last], budget)
    assert [(start, end) for _, start, end, _ in windows] == [(start + first, end + first) for _, start, end, _ in alone]
    capped = [min(n, budget) for n in lengths]
    for left, start, end, right in windows:
        assert 0 <= left <= start < end <= right <= len(lengths)
        assert sum(capped[left:right]) <= budget or (left, right) == (start, end) == (start, start + 1)
        outside_left = sum(capped[left:first]) if left < first else 0
        outside_right = sum(capped[last:right]) if right > last else 0
        assert outside_left <= context_size and outside_right <= context_size
        # context fills the window: the next word on each side would break the budget or the side's context
        total = sum(capped[left:right])
        if left > 0:
            size = capped[left - 1]
            assert total + size > budget or (left - 1 < first and outside_left + size > context_size)
        if right < len(lengths):
            size = capped[right]
            assert total + size > budget or (right >= last and outside_right + size > context_size)


def test_without_context_the_plan_stays_inside_the_sentence():
    lengths = [3, 1, 4, 1, 5, 9, 2, 6]
    for left, _, _, right in _plan_windows(lengths, 10, (2, 6), 0):
        assert 2 <= left and right <= 6


# ---- documents and chunks -----------------------------------------------------------------------------------

def _examples(doc_ids):
    return [TokenExample(tokens=["w"], tags=["O"], doc_id=d) for d in doc_ids]


def test_documents_are_runs_of_one_id_and_examples_without_one_stand_alone():
    examples = _examples([0, 0, 1, None, None, 1, 1])
    assert [list(r) for r in documents(examples)] == [[0, 1], [2], [3], [4], [5, 6]]


@given(st.lists(st.one_of(st.none(), st.integers(min_value=0, max_value=3)), max_size=60),
       st.integers(min_value=1, max_value=8))
@settings(max_examples=200, deadline=None)
def test_chunks_end_where_documents_end(doc_ids, size):
    examples = _examples(doc_ids)
    chunks = list(document_chunks(iter(examples), size))
    assert [ex for chunk in chunks for ex in chunk] == examples
    assert all(len(chunk) >= size for chunk in chunks[:-1])
    ends = {r.stop for r in documents(examples)}
    position = 0
    for chunk in chunks:
        position += len(chunk)
        assert position in ends  # no document is split between two chunks


def test_jsonl_records_name_their_documents(tmp_path):
    from tunecard.data import read_corpus

    tokens = tmp_path / "tokens.jsonl"
    rows = [{"doc_id": "a", "tokens": ["x"], "tags": ["O"]}, {"doc_id": "a", "tokens": ["y"], "tags": ["O"]},
            {"tokens": ["z"], "tags": ["O"]}, {"doc_id": 7, "tokens": ["w"], "tags": ["B-PER"]},
            {"document_id": "b", "tokens": ["v"], "tags": ["O"]}]
    tokens.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    assert [ex.doc_id for ex in read_corpus(tokens).examples] == [0, 0, None, 1, 2]
    spans = tmp_path / "spans.jsonl"
    spans.write_text('{"doc_id": 3, "text": "Anna runs", "spans": [[0, 4, "PER"]]}\n'
                     '{"doc_id": 3, "text": "Bo", "spans": []}\n{"doc_id": 4, "text": "C", "spans": []}\n',
                     encoding="utf-8")
    assert [ex.doc_id for ex in read_corpus(spans).examples] == [0, 0, 1]

    tokens.write_text('{"doc_id": "a", "tokens": ["x"], "tags": ["O"]}\n{"doc_id": "b", "tokens": ["y"], "tags": ["O"]}'
                      '\n{"doc_id": "a", "tokens": ["z"], "tags": ["O"]}\n', encoding="utf-8")
    with pytest.raises(DataError) as error:
        read_corpus(tokens)
    assert error.value.code == "E111" and error.value.line == 3 and "line 1" in str(error.value)
    tokens.write_text('{"doc_id": ["a"], "tokens": ["x"], "tags": ["O"]}\n', encoding="utf-8")
    with pytest.raises(DataError, match="string or an integer"):
        read_corpus(tokens)


# ---- encoding: what the model is fed ------------------------------------------------------------------------

WORDS = ["Paris", "Angela", "Merkel", "visited", "the", "Commission", "in", "Brussels", "Johannesburg",
         "Mandela", "said", "on", "Thursday", "talks", "football"]
LABELS = {"O": 0, "B-PER": 1, "I-PER": 2}


@pytest.fixture(scope="module")
def short_tokenizer(tiny_bert_short):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert_short)


@st.composite
def _documents(draw):
    examples = []
    for doc in range(draw(st.integers(min_value=1, max_value=4))):
        doc_id = None if draw(st.booleans()) and doc % 2 else doc
        for _ in range(draw(st.integers(min_value=1, max_value=5))):
            # numbered, so that a run of subwords shows which words of the document it came from
            words = [f"{word}{len(examples)}x{i}" for i, word in enumerate(draw(st.lists(st.sampled_from(WORDS),
                                                                                          max_size=14)))]
            tags = draw(st.lists(st.sampled_from(list(LABELS)), min_size=len(words), max_size=len(words)))
            examples.append(TokenExample(tokens=words, tags=tags, doc_id=doc_id))
    return examples


@pytest.fixture(scope="module")
def bpe_tokenizer():
    from families import build_tokenizer

    return build_tokenizer("roberta")  # byte-level BPE: a word's subwords depend on the space before it


def _runs_of(decoded: str, doc_words: list[str]) -> list[tuple[int, int]]:
    """Every (a, b) such that the words doc_words[a:b], one space apart, are `decoded`."""
    return [(a, b) for a in range(len(doc_words)) for b in range(a + 1, len(doc_words) + 1)
            if " ".join(doc_words[a:b]) == decoded]


@given(_documents(), st.sampled_from([12, 20, 32]), st.integers(min_value=1, max_value=24))
@settings(max_examples=100, deadline=None)
def test_context_is_whole_words_of_the_same_document_and_only_the_sentence_is_scored(short_tokenizer, bpe_tokenizer,
                                                                                     examples, max_length,
                                                                                     context_size):
    for tokenizer in (short_tokenizer, bpe_tokenizer):
        encoder = Encoder(tokenizer, LABELS, max_length, context_size=context_size)
        stats = EncodingStats()
        features = encoder.encode_tokens(examples, stats)
        assert [f.example_index for f in features] == sorted(f.example_index for f in features)  # consecutive
        lengths = {word: len(tokenizer(word, add_special_tokens=False)["input_ids"])
                   for example in examples for word in example.tokens}
        for group in documents(examples):
            doc_words = [word for index in group for word in examples[index].tokens]
            first = 0
            for index in group:
                example = examples[index]
                last = first + len(example.tokens)
                mine = [f for f in features if f.example_index == index]
                owned = sorted(word for f in mine for _, word in f.word_positions)
                assert owned == list(range(len(example.tokens)))  # each word scored exactly once
                for feature in mine:
                    assert len(feature) <= max_length
                    labelled = [p for p, label in enumerate(feature.labels) if label != IGNORE_INDEX]
                    assert labelled == [p for p, _ in feature.word_positions]
                    assert all(feature.labels[p] == LABELS[example.tags[w]] for p, w in feature.word_positions)
                    if not example.tokens:
                        continue
                    if len(feature.word_positions) == 1 and max(
                            lengths[example.tokens[w]] for _, w in feature.word_positions) > max_length - encoder.n_special:
                        continue  # a word longer than a whole window: cut, with no room for context
                    # the input is a run of whole words of this document around the words it owns
                    decoded = tokenizer.decode(feature.inputs["input_ids"], skip_special_tokens=True).strip()
                    mine_first = first + min(w for _, w in feature.word_positions)
                    mine_last = first + max(w for _, w in feature.word_positions) + 1
                    runs = [(a, b) for a, b in _runs_of(decoded, doc_words) if a <= mine_first and b >= mine_last]
                    assert runs, (decoded, doc_words)
                    (left, right), = runs  # numbered words: one run only
                    if encoder.words_alone:  # each word's subwords as in its sentence: the budgets are exact
                        before = sum(lengths[w] for w in doc_words[left:first]) if left < first else 0
                        after = sum(lengths[w] for w in doc_words[last:right]) if right > last else 0
                        assert before <= context_size and after <= context_size
                        assert feature.context == before + after
                    assert (feature.context > 0) == (left < first or right > last)
                first = last
        assert stats.context_subwords == [sum(f.context for f in features if f.example_index == i)
                                          for i in range(len(examples))]
        assert stats.documents == len(documents(examples))


def test_without_documents_context_changes_nothing(short_tokenizer):
    examples = [TokenExample(tokens=WORDS[i:i + 9], tags=["O"] * len(WORDS[i:i + 9])) for i in range(0, 15, 3)]
    plain = Encoder(short_tokenizer, LABELS, 20).encode_tokens(examples)
    with_context = Encoder(short_tokenizer, LABELS, 20, context_size=16).encode_tokens(examples)
    assert [vars(f) for f in with_context] == [vars(f) for f in plain]
    # the same sentences in one document get their neighbours' words
    for example in examples:
        example.doc_id = 0
    fed = Encoder(short_tokenizer, LABELS, 20, context_size=16).encode_tokens(examples)
    assert sum(len(f) for f in fed) > sum(len(f) for f in plain)


# ---- training, evaluation and prediction --------------------------------------------------------------------

SENTENCES_PER_DOCUMENT = 4


def _documents_file(path, source, sentences: int):
    """The WNUT-17 sample's first sentences as CoNLL documents of SENTENCES_PER_DOCUMENT sentences each."""
    blocks = source.read_text(encoding="utf-8").strip().split("\n\n")[:sentences]
    parts = []
    for i, block in enumerate(blocks):
        if i % SENTENCES_PER_DOCUMENT == 0:
            parts.append("-DOCSTART-\tO")
        parts.append(block.strip("\n"))
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def document_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("documents")
    return (_documents_file(folder / "train.conll", WNUT_SAMPLE / "train.conll", 48),
            _documents_file(folder / "dev.conll", WNUT_SAMPLE / "dev.conll", 24))


def _values(model, train, validation, output, **overrides) -> dict:
    return dict(task="ner", model=str(model), train=str(train), validation=str(validation), output=str(output),
                num_epochs=1, train_batch_size=16, learning_rate=1e-3, precision="fp32", save_strategy="no",
                context="document", context_size=24, **overrides)


@pytest.fixture(scope="module")
def context_run(no_dropout_bert, document_data, tmp_path_factory):
    from tunecard.pipeline import train

    train_file, dev_file = document_data
    return train(build_config(None, _values(no_dropout_bert, train_file, dev_file,
                                            tmp_path_factory.mktemp("context") / "run")), progress=False)


def test_context_trains_packed_as_padded_and_the_run_says_what_it_used(context_run, no_dropout_bert, document_data,
                                                                      tmp_path):
    """Context tokens are part of each item (labels -100): the speed layer's training-mode check passes and packed,
    padding-free training takes the steps plain padded training takes."""
    from tunecard.pipeline import train

    record = context_run.metrics["speed"]
    assert record["fallback"] is None and record["batches"] == "packed, padding-free"
    train_file, dev_file = document_data
    off = train(build_config(None, _values(no_dropout_bert, train_file, dev_file, tmp_path / "off", speed="off")),
                progress=False)
    assert [s["loss"] for s in context_run.history["steps"]] == pytest.approx(
        [s["loss"] for s in off.history["steps"]], abs=1e-4)

    saved = json.loads((context_run.output / "metrics.json").read_text())
    assert saved["context"]["mode"] == "document" and saved["context"]["subwords_per_side"] == 24
    train_context = saved["context"]["splits"]["train"]
    assert train_context["documents"] == 12 and train_context["examples_with_context"] == 48
    assert 0 < train_context["context_subwords_mean"] <= 48
    assert saved["data"]["train"]["encoding"]["context"]["documents"] == 12
    card = (context_run.output / "README.md").read_text()
    assert "- context: document (24 subwords per side)" in card
    assert "**Document context.** Each sentence was fed to the model with up to 24 subwords" in card
    assert "Train: 12 documents, 48 examples given context" in card


def test_evaluate_scores_with_the_context_training_used(context_run, document_data, monkeypatch):
    """`tunecard evaluate` reads the run's context from train_config.yaml and gives its final validation scores,
    also when the file is encoded in chunks (which end where documents end)."""
    from tunecard.inference import predictor

    _, dev_file = document_data
    expected = context_run.metrics["validation"]
    options = dict(precision="fp32", speed="off")
    result = predictor.evaluate_folder(context_run.output, dev_file, **options)
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-4)
    assert result["f1"] == pytest.approx(expected["f1"], abs=1e-9)
    monkeypatch.setattr(predictor, "CHUNK_SIZE", 3)
    chunked = predictor.evaluate_folder(context_run.output, dev_file, **options)
    assert chunked["loss"] == pytest.approx(expected["loss"], rel=1e-4)


def _lines(path) -> list[str]:
    blocks = path.read_text(encoding="utf-8").strip().split("\n\n")
    return [" ".join(line.split("\t")[0] for line in block.splitlines()) for block in blocks
            if not block.startswith("-DOCSTART-")]


def _shifted(document: str, per_line: list[list[dict]]) -> list[dict]:
    entities, start = [], 0
    for line, found in zip(document.split("\n"), per_line):
        for entity in found:
            entities.append({**entity, "start": entity["start"] + start, "end": entity["end"] + start,
                             "text": document[entity["start"] + start:entity["end"] + start]})
            assert entity["text"] == line[entity["start"]:entity["end"]]
        start += len(line) + 1
    return entities


def test_predict_on_a_document_without_context_is_predict_of_its_lines_moved_to_their_offsets(
        tiny_bert_cased, tmp_path, document_data):
    from conftest import saved_classifier

    from tunecard.inference.predictor import Predictor

    folder = saved_classifier(tiny_bert_cased, tmp_path / "ner", True, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    lines = _lines(document_data[1])[:8]
    document = "\n".join(lines)
    with Predictor(folder, precision="fp32") as model:
        assert model.context_size == 0
        (found,) = model.predict_documents([document])
        assert found == _shifted(document, model.predict(lines))
        assert found  # the widened head finds entities: the comparison is not between two empty lists
        assert all(document[e["start"]:e["end"]] == e["text"] for e in found)
        # CRLF line ends: the same entities, offsets into the text as given
        crlf = document.replace("\n", "\r\n")
        (found_crlf,) = model.predict_documents([crlf])
        assert [e["text"] for e in found_crlf] == [e["text"] for e in found]
        assert all(crlf[e["start"]:e["end"]] == e["text"] for e in found_crlf)


def test_predict_with_context_feeds_the_neighbours_and_a_lone_sentence_as_predict(context_run, document_data):
    from tunecard.inference.predictor import Predictor

    lines = _lines(document_data[1])[:SENTENCES_PER_DOCUMENT]
    document = "\n".join(lines)
    with Predictor(context_run.output, precision="fp32") as model:
        assert model.context_size == 24
        # one sentence per document: no context to add, so predict's answer
        assert model.predict_documents(lines) == model.predict(lines)
        # the sentences of one document: the model sees its neighbours (inputs longer than each line's)
        words = [TokenExample(tokens=line.split(), tags=[], doc_id=0) for line in lines]
        fed = model.encoder.encode_tokens(words)
        alone = model.encoder.encode_tokens([TokenExample(tokens=line.split(), tags=[]) for line in lines])
        assert sum(len(f) for f in fed) > sum(len(f) for f in alone)
        (found,) = model.predict_documents([document])
        assert all(document[e["start"]:e["end"]] == e["text"] for e in found)


def test_the_command_line_predicts_documents(context_run, tmp_path):
    documents_file = tmp_path / "docs.txt"
    documents_file.write_text("Paris is nice .\nAngela Merkel visited .\n\n\nJohannesburg\n\nMandela said so .\n",
                              encoding="utf-8")
    result = runner.invoke(app, ["predict", str(context_run.output), "--document", "--file", str(documents_file)])
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [p["text"] for p in printed] == ["Paris is nice .\nAngela Merkel visited .", "Johannesburg",
                                            "Mandela said so ."]
    for p in printed:
        assert all(p["text"][e["start"]:e["end"]] == e["text"] for e in p["entities"])
    result = runner.invoke(app, ["predict", str(context_run.output), "--document", "--text", "A\nB", "--text", "C"])
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["text"] for line in result.stdout.strip().splitlines()] == ["A\nB", "C"]


def test_documents_are_given_out_when_their_blank_line_arrives():
    groups = iter([["a", "b"], ["", "c"], ["  ", "", "d", ""], [], ["e"]])
    # a group of lines gives out every document it completes, together
    assert list(document_groups(groups)) == [["a\nb"], ["c", "d"], ["e"]]


def test_a_text_classifier_refuses_documents(tiny_bert_cased, tmp_path):
    from conftest import saved_classifier

    from tunecard.inference.predictor import Predictor

    folder = saved_classifier(tiny_bert_cased, tmp_path / "cls", False, ["neg", "pos"])
    with pytest.raises(ModelError) as error:
        Predictor(folder, precision="fp32").predict_documents(["a\nb"])
    assert error.value.code == "E325"
    result = runner.invoke(app, ["predict", str(folder), "--document", "--text", "a"])
    assert isinstance(result.exception, ModelError) and result.exception.code == "E325"  # main() exits 2 on it


# ---- configuration ------------------------------------------------------------------------------------------

def test_context_settings_are_checked(tmp_path):
    base = dict(task="ner", train="t.conll", output=str(tmp_path / "out"))
    assert build_config(None, {**base, "context": "document"}).context_subwords == DEFAULT_CONTEXT_SIZE
    assert build_config(None, {**base, "context": "document", "context_size": 32}).context_subwords == 32
    assert build_config(None, base).context_subwords == 0
    with pytest.raises(ConfigError, match="context_size .* only with context: document"):
        build_config(None, {**base, "context_size": 32})
    with pytest.raises(ConfigError, match="applies to NER"):
        build_config(None, {**base, "task": "text-classification", "context": "document"})
    with pytest.raises(ConfigError, match="context"):
        build_config(None, {**base, "context": "paragraph"})


def test_context_without_documents_in_training_is_an_error(no_dropout_bert, tmp_path):
    from tunecard.training.inputs import read_splits

    config = build_config(None, _values(no_dropout_bert, WNUT_SAMPLE / "train.conll", WNUT_SAMPLE / "dev.conll",
                                        tmp_path / "run"))
    with pytest.raises(DataError) as error:
        read_splits(config)
    assert error.value.code == "E117" and "context: none" in str(error.value)
