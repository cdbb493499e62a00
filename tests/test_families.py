"""Every common encoder family, as a tiny random model (tests/families.py): BERT, DistilBERT, ELECTRA, RoBERTa,
XLM-R, DeBERTa-v2, ModernBERT.

For each: training encodes pre-split words as their raw text encodes them; NER and text classification train
with `speed: auto` and `speed: off` to the same loss curve; and `tunecard predict` on the saved folder gives the
entities and labels `transformers.pipeline` gives on it.

How pipeline's "first" aggregation and tunecard's words relate (the mapping the entity comparison applies):
- tunecard labels each of the tokenizer's own words (its pre-tokenizer's: BERT splits punctuation off, byte-level
  BPE splits letters from punctuation, SentencePiece splits on spaces) at its first subword that covers one of its
  characters, as training labels it; a token that covers only whitespace (a lone Ġ) belongs to no word.
- pipeline groups tokens into words by the continuing-subword prefix where the tokenizer's model has one
  (WordPiece's ##): its words are then tunecard's, and entities are compared as they are. Otherwise it starts a
  word at every token with a space before it (and at every unknown token), the rest continuing the word. Its
  words are then the runs of tokenizer words with no space between them ("Zürich)" is one word, labelled by
  "Zürich"): tunecard's word tags are mapped onto those runs, each taking its first word's tag. Where the
  heuristic starts words elsewhere, at a lone ▁ and again at the token after it (both start at the word's first
  character), at a whitespace-only token or an unknown token, pipeline labels words tunecard does not have (the
  HF token-classification recipe, like tunecard, labels a SentencePiece word at its ▁): such a text is compared
  token by token only.
- pipeline's offsets include the space before a word where the tokenizer's offsets do (ModernBERT, DeBERTa-v2);
  tunecard's leave it out, so pipeline's spans are compared without leading whitespace.
- Both group word tags into entities the same way (B- starts one; I- continues one of its own type, else starts
  one): seqeval's default reading, `metrics.extract_entities`.
"""

from __future__ import annotations

import json
import warnings

import pytest

from conftest import WNUT_SAMPLE
from families import FAMILIES, build_family

from tunecard.data.example import TokenExample

WORDPIECE = ("bert", "distilbert", "electra")
BYTE_LEVEL = ("roberta", "modernbert")
# Raw texts for prediction: punctuation inside and beside words, accents, several spaces in a row, leading and
# trailing spaces (no tabs or newlines: pipeline's heuristic looks for a space only, see the docstring).
RAW_TEXTS = [
    "Taylor Swift sings in Seattle .",
    "Dr. Müller (ETH Zürich) met O'Neil at 9:30am, then left — quickly!!",
    "naïve café déjà-vu in São Paulo; Łódź, Besançon & Malmö.",
    "Empire State Building  =  ESB .   Pretty bad storm here",
    "I'm   at the   New York Yankees game with @paulwalk",
    "Don't stop: it's 3.5% of $20!",
    "Apple's CEO Tim Cook visited Berlin, Paris and Rome.",
    "  leading and trailing spaces  ",
    "Paris Hilton and Justin Bieber flew to London on Friday",
    "RT @user : new iPhone from Apple looks great !",
    "I am going to the game tonight with my friends",
    "the new song is out now on YouTube !",
    "Watching the Lakers game on TV with Chris",
    "My mom is in New York for the week",
]
CLASSES = ("location", "person", "other")
# speed auto against off: |loss difference| per logged step. Both runs take the same batches and steps in fp32
# with dropout 0, so only the order of float arithmetic differs (packed or padding-free rows against padded ones:
# other matmul shapes, hence other kernel blocking and summation order; fused projections; sparse embedding
# rows), about 1e-7 relative per operation: at most 5e-7 observed over these 14 pairs of runs (2026-12-06, AMX
# Xeon). 1e-4 leaves room for other CPUs' kernels, 200 times that, and stays far below what a batch the model
# computes differently gives: the packing check refuses a 1e-3 difference in any logit.
LOSS_TOLERANCE = 1e-4
# pipeline's probabilities against tunecard's (fp32): one text alone against padded, length-sorted batches.
PROBABILITY_TOLERANCE = 1e-4


@pytest.fixture(scope="session")
def family_folder(tmp_path_factory):
    """family -> the tiny base model's folder, built once per session."""
    built: dict = {}

    def get(family: str):
        if family not in built:
            built[family] = build_family(family, tmp_path_factory.mktemp(f"family-{family}"))
        return built[family]

    return get


def _wnut(split: str, count: int) -> list[TokenExample]:
    from tunecard.data import read_corpus

    return read_corpus(WNUT_SAMPLE / f"{split}.conll", task="ner").examples[:count]


@pytest.mark.parametrize("family", FAMILIES)
def test_training_words_are_encoded_as_their_raw_text_encodes_them(family, family_folder):
    """What the model trains on is what pipeline gives it for the sentence as raw text; each word is labelled at
    its first subword, the one that covers its first character."""
    from tunecard.data import read_corpus
    from tunecard.data.stats import corpus_stats
    from tunecard.encoding.encoder import Encoder
    from tunecard.encoding.models import load_tokenizer

    tokenizer = load_tokenizer(str(family_folder(family)))
    examples = _wnut("dev", 80)
    tags = sorted({tag for example in examples for tag in example.tags})
    encoder = Encoder(tokenizer, {tag: i for i, tag in enumerate(tags)}, 128)
    if family in WORDPIECE:
        assert encoder.words_alone
    if family in BYTE_LEVEL:  # a word encoded alone lacks the space that marks it in text
        assert not encoder.words_alone
    features = encoder.encode_tokens(examples)
    assert len(features) == len(examples)  # none longer than 128 subwords
    corpus = read_corpus(WNUT_SAMPLE / "dev.conll", task="ner")
    corpus.examples = examples  # `tunecard data-stats --tokenizer` counts what training encodes
    lengths = corpus_stats(corpus, tokenizer)["subwords_per_example_incl_special_tokens"]
    assert (lengths["min"], lengths["max"]) == (min(map(len, features)), max(map(len, features)))
    for example, feature in zip(examples, features):
        text = " ".join(example.tokens)
        expected = tokenizer(text, return_offsets_mapping=True)
        assert feature.inputs["input_ids"] == expected["input_ids"]
        assert [word for _, word in feature.word_positions] == list(range(len(example.tokens)))
        start = 0
        for (position, word), token in zip(feature.word_positions, example.tokens):
            start = text.index(token, start)
            first, end = expected["offset_mapping"][position]
            assert first <= start < end  # the word's first subword covers its first character
            assert feature.labels[position] == encoder.label2id[example.tags[word]]
            start += len(token)

    # Sentences longer than the model: windows of whole words, each word scored once at its first subword; a raw
    # text's windows are stretches of its own encoding (what pipeline's tokenizer gives for the whole text).
    short = Encoder(tokenizer, encoder.label2id, 12)
    windowed = short.encode_tokens(examples)
    assert len(windowed) > len(examples)
    for index, example in enumerate(examples):
        windows = [f for f in windowed if f.example_index == index]
        assert sorted(word for f in windows for _, word in f.word_positions) == list(range(len(example.tokens)))
        assert all(len(f) <= 12 for f in windows)
        assert all(feature.labels[position] == short.label2id[example.tags[word]]
                   for feature in windows for position, word in feature.word_positions)
    first, last = tokenizer("")["input_ids"]  # the special tokens around a text, in every family here
    long_texts = [" ".join(RAW_TEXTS[:4]), "  ".join(RAW_TEXTS[4:])]
    features, words = short.encode_raw_texts(long_texts)
    for index, text in enumerate(long_texts):
        whole = tokenizer(text)["input_ids"][1:-1]
        windows = [f for f in features if f.example_index == index]
        assert sorted(word for f in windows for _, word in f.word_positions) == list(range(len(words[index])))
        for feature in windows:
            ids = feature.inputs["input_ids"]
            assert len(ids) <= 12 and (ids[0], ids[-1]) == (first, last)
            assert any(whole[i:i + len(ids) - 2] == ids[1:-1] for i in range(len(whole)))

    features, words = encoder.encode_raw_texts(RAW_TEXTS)
    assert [f.inputs["input_ids"] for f in features] == tokenizer(RAW_TEXTS)["input_ids"]
    for text, text_words in zip(RAW_TEXTS, words):
        assert all(text[start:end] == word and word.strip() == word and word for word, start, end in text_words)


@pytest.mark.parametrize("family", FAMILIES)
def test_the_length_limit_is_the_longest_input_the_model_takes(family, family_folder):
    """RoBERTa-style models count positions from after the padding index: two fewer than their position table."""
    import torch
    from transformers import AutoModel

    from tunecard import environment
    from tunecard.encoding.models import load_tokenizer

    folder = family_folder(family)
    model = AutoModel.from_pretrained(folder).eval()
    tokenizer = load_tokenizer(str(folder))
    tokenizer.model_max_length = int(1e30)  # what a tokenizer without a limit reports: the model alone decides
    limit = environment.model_max_length(tokenizer, model)
    assert limit == model.config.max_position_embeddings - (2 if family in ("roberta", "xlm-roberta") else 0)
    token = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("the"))[0]
    with torch.no_grad():
        model(input_ids=torch.full((1, limit), token))
        if getattr(model.embeddings, "position_embeddings", None) is not None:  # absolute positions: a table's end
            with pytest.raises((IndexError, RuntimeError)):
                model(input_ids=torch.full((1, limit + 1), token))


# ---- training with the speed layer on and off, and prediction against pipeline (slow: trains 28 tiny runs) ----
def _classification_file(folder) -> tuple:
    """A small text-classification sample made from the WNUT-17 sample: a sentence's class is the kind of its
    first entity (location, person) or other."""
    paths = []
    for split, count in (("train", 64), ("dev", 16)):
        path = folder / f"{split}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for example in _wnut(split, count):
                kinds = [tag[2:] for tag in example.tags if tag.startswith("B-")]
                label = kinds[0] if kinds and kinds[0] in CLASSES else "other"
                handle.write(json.dumps({"text": " ".join(example.tokens), "label": label}) + "\n")
        paths.append(path)
    return tuple(paths)


@pytest.fixture(scope="module")
def trained(family_folder, tmp_path_factory):
    """(family, task, speed) -> the RunResult of a three-step run, trained once per module."""
    from tunecard.config import build_config
    from tunecard.pipeline import train

    runs: dict = {}
    scratch = tmp_path_factory.mktemp("family-runs")
    text_train, text_dev = _classification_file(scratch)

    def get(family: str, task: str, speed: str):
        key = (family, task, speed)
        if key not in runs:
            data = (dict(train=str(WNUT_SAMPLE / "train.conll"), validation=str(WNUT_SAMPLE / "dev.conll"))
                    if task == "ner" else dict(train=str(text_train), validation=str(text_dev)))
            values = dict(task=task, model=str(family_folder(family)), output=str(scratch / "-".join(key)),
                          num_epochs=1, max_train_examples=48, max_eval_examples=16, train_batch_size=16,
                          learning_rate=1e-3, precision="fp32", save_strategy="no", speed=speed, **data)
            runs[key] = train(build_config(None, values), progress=False)
        return runs[key]

    return get


# What the speed layer does with each family's training batches (metrics.json), NER and text classification.
# BERT-style encoders with transformers' attention interface pack padding-free; DeBERTa-v2 computes its relative
# attention in its own code and ModernBERT unpads and masks in its own, so the packing check refuses them and they
# train padded (docs/training.md, "Model families").
PADDING_FREE, REFUSED = "packed, padding-free", "padded (the packing check failed for this model)"
LAYOUT = {"bert": PADDING_FREE, "distilbert": PADDING_FREE, "electra": PADDING_FREE, "roberta": PADDING_FREE,
          "xlm-roberta": PADDING_FREE, "deberta-v2": REFUSED, "modernbert": REFUSED}


@pytest.mark.slow
@pytest.mark.parametrize("task", ["ner", "text"])
@pytest.mark.parametrize("family", FAMILIES)
def test_speed_auto_and_off_train_the_same_loss_curve(family, task, trained):
    auto, off = trained(family, task, "auto"), trained(family, task, "off")
    assert auto.metrics["training"]["batches"] == LAYOUT[family]
    assert off.metrics["training"]["batches"] == "padded"
    packing = auto.metrics["speed"]["levers"]["packing"]
    assert packing["used"] is (LAYOUT[family] != REFUSED)
    card = (auto.output / "README.md").read_text(encoding="utf-8")
    assert f"- Batches: {LAYOUT[family]}" in card
    if LAYOUT[family] == REFUSED:  # the fallback and its reason, in metrics.json and on the card
        assert "packing check failed" in packing["note"] and f"packing: not used ({packing['note']})" in card
    auto_losses = [step["loss"] for step in auto.history["steps"]]
    off_losses = [step["loss"] for step in off.history["steps"]]
    assert len(auto_losses) == len(off_losses) == 3
    assert auto_losses == pytest.approx(off_losses, abs=LOSS_TOLERANCE)
    assert auto_losses[0] != pytest.approx(auto_losses[-1], abs=10 * LOSS_TOLERANCE)  # it did train


def _cli_predict(folder, texts: list[str]) -> list:
    from typer.testing import CliRunner

    from tunecard.cli import app

    result = CliRunner().invoke(app, ["predict", str(folder), "--precision", "fp32",
                                      *[arg for text in texts for arg in ("--text", text)]])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [line["text"] for line in lines] == texts
    return [line.get("entities", line.get("prediction")) for line in lines]


def _pipeline(task: str, folder, **kwargs):
    from transformers import pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Tokenizer does not support real words, using fallback heuristic"
        return pipeline(task, model=str(folder), device="cpu", **kwargs)


def _word_aware(tokenizer) -> bool:
    """pipeline's own test: its "first" aggregation groups subwords by the model's continuing-subword prefix."""
    return bool(getattr(tokenizer.backend_tokenizer.model, "continuing_subword_prefix", None))


def whitespace_runs(words: list) -> list[list[int]]:
    """The words (indices) of each run of words with no space between them: pipeline's words where it has only its
    heuristic (see the module docstring)."""
    runs: list[list[int]] = []
    for index, (_, start, _) in enumerate(words):
        if runs and words[index - 1][2] == start:
            runs[-1].append(index)
        else:
            runs.append([index])
    return runs


def pipeline_heuristic_starts(tokenizer, text: str) -> set[int]:
    """The tokens at which pipeline's fallback heuristic starts a word (TokenClassificationPipeline.
    gather_pre_entities): a token continues a word if it does not start the text and no space is at or just
    before its start; an unknown token always starts one."""
    encoding = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    return {index for index, (token, (start, _), special) in enumerate(zip(
        encoding["input_ids"], encoding["offset_mapping"], encoding["special_tokens_mask"]))
        if not special and (not (start > 0 and " " not in text[start - 1:start + 1]) or token == tokenizer.unk_token_id)}


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_ner_predictions_are_pipelines(family, trained):
    from tunecard.inference.predictor import Predictor

    folder = trained(family, "ner", "auto").output
    predictor = Predictor(folder, precision="fp32")
    features, words = predictor.encoder.encode_raw_texts(RAW_TEXTS)
    tags = predictor._tag_words([[w for w, _, _ in ws] for ws in words], None, features)
    tags = [[tag for tag, _ in word_tags] for word_tags in tags]

    # Token by token: each word's tag is pipeline's label of the token it is read at (the same input ids).
    by_token = _pipeline("token-classification", folder, aggregation_strategy="none", ignore_labels=[])
    assert [f.inputs["input_ids"] for f in features] == by_token.tokenizer(RAW_TEXTS)["input_ids"]
    for feature, text, text_tags in zip(features, RAW_TEXTS, tags):
        labels = {token["index"]: token["entity"] for token in by_token(text)}
        assert [text_tags[word] for _, word in feature.word_positions] == [
            labels[position] for position, _ in feature.word_positions]

    # Entity by entity: `tunecard predict` against pipeline's "first" aggregation.
    from tunecard.metrics import extract_entities

    first = _pipeline("token-classification", folder, aggregation_strategy="first")
    word_aware = _word_aware(first.tokenizer)
    assert word_aware is (family in WORDPIECE)
    predicted = _cli_predict(folder, RAW_TEXTS)
    compared = entities = 0
    for text, feature, text_words, text_tags, found in zip(RAW_TEXTS, features, words, tags, predicted):
        ours = {(e["label"], e["start"], e["end"]) for e in found}
        assert all(text[e["start"]:e["end"]] == e["text"] for e in found)
        theirs = {(e["entity_group"], e["end"] - len(text[e["start"]:e["end"]].lstrip()), e["end"]) for e in first(text)}
        if word_aware:
            assert ours == theirs
        else:
            runs = whitespace_runs(text_words)
            first_subword = dict((word, position) for position, word in feature.word_positions)
            if {first_subword[run[0]] for run in runs} != pipeline_heuristic_starts(first.tokenizer, text):
                continue  # pipeline's words are not runs of tunecard's: compared token by token above
            mapped = {(label, text_words[runs[start][0]][1], text_words[runs[end - 1][-1]][2])
                      for label, start, end in extract_entities([text_tags[run[0]] for run in runs])}
            assert mapped == theirs
        compared += 1
        entities += len(theirs)
    assert compared >= 5 and entities >= 3, (compared, entities)  # enough texts compared, and entities in them


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_text_predictions_are_pipelines(family, trained):
    folder = trained(family, "text", "auto").output
    predicted = _cli_predict(folder, RAW_TEXTS)
    expected = _pipeline("text-classification", folder, top_k=None)(RAW_TEXTS)
    for ours, theirs in zip(predicted, expected):
        probabilities = {item["label"]: item["score"] for item in theirs}
        assert ours["label"] == max(probabilities, key=probabilities.get)
        assert ours["probabilities"] == pytest.approx(probabilities, abs=PROBABILITY_TOLERANCE)
    assert len({ours["label"] for ours in predicted}) >= 1
