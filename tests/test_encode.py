"""Subword alignment and windows: every gold label of a long sentence is scored exactly once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunecard.data.example import TextExample, TokenExample
from tunecard.encoding.encoder import IGNORE_INDEX, Encoder, EncodingStats, _plan_windows


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=200), st.integers(min_value=1, max_value=60))
@settings(max_examples=300, deadline=None)
def test_windows_own_every_word_exactly_once(word_lengths, budget):
    windows = _plan_windows(word_lengths, budget)
    owned = [w for _, start, end, _ in windows for w in range(start, end)]
    assert owned == list(range(len(word_lengths)))
    capped = [min(n, budget) for n in word_lengths]
    for left, start, end, right in windows:
        assert left <= start < end <= right
        assert sum(capped[left:right]) <= budget or end - start == 1


@pytest.fixture(scope="module")
def short_tokenizer(tiny_bert_short):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_bert_short)


def _long_example(n_words: int) -> TokenExample:
    words, tags = [], []
    for i in range(n_words):
        if i % 7 == 3:
            words += ["Johannesburg", "Mandela"]
            tags += ["B-PER", "I-PER"]
        else:
            words.append(f"word{i}")
            tags.append("O")
    return TokenExample(tokens=words, tags=tags)


LABELS = {"O": 0, "B-PER": 1, "I-PER": 2}


def test_long_sentences_are_windowed_and_every_label_kept(short_tokenizer):
    encoder = Encoder(short_tokenizer, LABELS, max_length=32)
    examples = [_long_example(60), _long_example(5), TokenExample(tokens=[], tags=[])]
    stats = EncodingStats()
    features = encoder.encode_tokens(examples, stats)
    assert stats.windowed_examples == 1 and stats.windows > 2
    for feature in features:
        assert len(feature) <= 32
    for index, example in enumerate(examples):
        owned = sorted(w for f in features if f.example_index == index for _, w in f.word_positions)
        assert owned == list(range(len(example.tokens)))
        # Each labelled position carries the gold tag of the word it belongs to.
        for f in (f for f in features if f.example_index == index):
            for position, word in f.word_positions:
                assert f.labels[position] == LABELS[example.tags[word]]
            labelled = [p for p, label in enumerate(f.labels) if label != IGNORE_INDEX]
            assert labelled == [p for p, _ in f.word_positions]


def test_batched_encoding_equals_one_sentence_at_a_time(short_tokenizer):
    """Sentences are tokenized 1024 to a call: across chunk boundaries, windows, empty sentences and words the
    tokenizer drops, every feature is the one a call per sentence gives."""
    encoder = Encoder(short_tokenizer, LABELS, max_length=32)
    examples = []
    for i in range(2100):
        kind = i % 5
        if kind == 0:
            examples.append(TokenExample(tokens=[], tags=[]))
        elif kind == 1:
            examples.append(_long_example(20 + i % 30))
        elif kind == 2:
            examples.append(TokenExample(tokens=["a", "\u200b", f"w{i}"], tags=["O", "O", "B-PER"]))
        else:
            examples.append(_long_example(1 + i % 6))
    together = encoder.encode_tokens(examples)
    alone = []
    for index, example in enumerate(examples):
        for feature in encoder.encode_tokens([example]):
            feature.example_index = index
            alone.append(feature)
    assert [vars(f) for f in together] == [vars(f) for f in alone]


def test_a_word_longer_than_the_window_is_still_scored(short_tokenizer):
    encoder = Encoder(short_tokenizer, LABELS, max_length=16)
    giant = "-".join(["Mandela"] * 20)  # punctuation splits it: ~60 subwords, more than a whole window
    example = TokenExample(tokens=["Mandela", giant, "Mandela"], tags=["B-PER", "O", "B-PER"])
    stats = EncodingStats()
    features = encoder.encode_tokens([example], stats)
    assert stats.truncated_words == 1
    owned = sorted(w for f in features for _, w in f.word_positions)
    assert owned == [0, 1, 2]


def test_all_subword_labels_continue_as_inside(short_tokenizer):
    encoder = Encoder(short_tokenizer, LABELS, max_length=32, label_all_subwords=True)
    (feature,) = encoder.encode_tokens([TokenExample(tokens=["Mandela"], tags=["B-PER"])])  # Man ##dela
    labels = [label for label in feature.labels if label != IGNORE_INDEX]
    assert labels[0] == LABELS["B-PER"] and all(label == LABELS["I-PER"] for label in labels[1:])
    assert len(labels) > 1


def test_classification_truncation_is_counted(short_tokenizer):
    encoder = Encoder(short_tokenizer, {"neg": 0, "pos": 1}, max_length=16)
    stats = EncodingStats()
    features = encoder.encode_texts([TextExample("word " * 50, "pos"), TextExample("short", "neg")], stats)
    assert stats.truncated_examples == 1
    assert [f.labels for f in features] == [1, 0]
    assert max(len(f) for f in features) == 16


def test_windowed_evaluation_scores_every_word(tiny_bert_short):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from tunecard.encoding.batching import PadCollator
    from tunecard.training.evaluate import evaluate_features

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert_short)
    id2label = {v: k for k, v in LABELS.items()}
    model = AutoModelForTokenClassification.from_pretrained(tiny_bert_short, num_labels=3, id2label=id2label,
                                                            label2id=LABELS)
    examples = [_long_example(80), _long_example(9)]
    features = Encoder(tokenizer, LABELS, max_length=32).encode_tokens(examples)
    result = evaluate_features(model, features, examples, task="token-classification", id2label=id2label,
                               collator=PadCollator(tokenizer.pad_token_id), batch_size=4)
    assert result["tokens"] == sum(len(ex.tokens) for ex in examples)
    assert result["gold_entities"] == sum(tag == "B-PER" for ex in examples for tag in ex.tags)


def _two_passes(encoder, texts):
    """Words from encoding the texts, then the words encoded on their own: what `encode_raw_texts` replaces."""
    from tunecard.encoding.encoder import split_words

    words = split_words(encoder.backend, texts)
    features = encoder.encode_tokens([TokenExample(tokens=[w for w, _, _ in ws], tags=[]) for ws in words])
    return features, words


# Letters, digits, punctuation, accents, CJK, a zero-width space, a control character and various spaces.
RAW_TEXT = st.text(st.sampled_from(list("abcXYZ019 .,;-'\"()éÅß東京の\u200b\x07\t\n ")), max_size=60)


@pytest.fixture(scope="module")
def raw_encoders(tiny_bert_cased, tiny_bert_chinese, tiny_bert_short):
    from transformers import AutoTokenizer

    return [Encoder(AutoTokenizer.from_pretrained(folder), {"O": 0}, max_length)
            for folder, max_length in ((tiny_bert_cased, 512), (tiny_bert_chinese, 512), (tiny_bert_short, 12))]


@given(st.lists(RAW_TEXT, min_size=1, max_size=6))
@settings(max_examples=150, deadline=None)
def test_raw_texts_encoded_once_give_the_features_of_their_words(raw_encoders, texts):
    for encoder in raw_encoders:
        assert encoder.words_alone  # WordPiece behind BERT's pre-tokenizer
        features, words = encoder.encode_raw_texts(texts)
        expected_features, expected_words = _two_passes(encoder, texts)
        assert words == expected_words
        assert [(f.inputs, f.labels, f.example_index, f.word_positions) for f in features] == [
            (f.inputs, f.labels, f.example_index, f.word_positions) for f in expected_features]


def _byte_level_tokenizer(add_prefix_space: bool):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    backend.decoder = decoders.ByteLevel()
    corpus = ["Peter Blackburn visited Brussels .", "The European Commission said on Thursday", "East Timor"] * 20
    backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<pad>",
                                                                                             "<unk>"]))
    backend.post_processor = processors.RobertaProcessing(("</s>", 1), ("<s>", 0), trim_offsets=True)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", add_prefix_space=add_prefix_space)


@pytest.mark.parametrize("add_prefix_space", [False, True])
def test_byte_level_bpe_words_are_encoded_as_their_text(add_prefix_space):
    """Byte-level BPE marks a word by the space before it: a word encoded alone lacks it, so without
    add_prefix_space pre-split words are encoded as their text instead (with it, every word and the text's first
    one get the space and give the text's subwords; this tiny vocabulary still leaves lone space markers, which
    cover no character and belong to no word, so the words are aligned by offsets there too); raw texts are
    encoded as pipeline encodes them."""
    tokenizer = _byte_level_tokenizer(add_prefix_space)
    encoder = Encoder(tokenizer, {"O": 0, "B-PER": 1}, 64)
    words = ["Peter", "Blackburn", "visited", "Brussels", "."]
    alone = encoder.backend.encode(words, is_pretokenized=True, add_special_tokens=True)
    assert (alone.ids == tokenizer(" ".join(words))["input_ids"]) is add_prefix_space
    assert not encoder.words_alone
    (feature,) = encoder.encode_tokens([TokenExample(tokens=words, tags=["B-PER", "O", "O", "O", "O"])])
    assert feature.inputs["input_ids"] == tokenizer(" ".join(words))["input_ids"]
    assert [word for _, word in feature.word_positions] == list(range(5))
    assert feature.labels[feature.word_positions[0][0]] == 1
    texts = ["Peter Blackburn visited Brussels.", "East  Timor said", "  "]
    features, found = encoder.encode_raw_texts(texts)
    assert [f.inputs["input_ids"] for f in features] == tokenizer(texts)["input_ids"]
    assert [[w for w, _, _ in ws] for ws in found] == [["Peter", "Blackburn", "visited", "Brussels", "."],
                                                        ["East", "Timor", "said"], []]
    for feature, words_found in zip(features, found):  # each word read at its first subword that covers it
        tokens = feature.inputs["input_ids"]
        for position, word in feature.word_positions:
            assert tokenizer.decode(tokens[position]).strip() == words_found[word][0][:len(tokenizer.decode(
                tokens[position]).strip())]


def test_a_raw_text_of_spaces_longer_than_the_model_still_gets_its_feature():
    """Byte-level BPE turns a run of spaces into tokens that belong to no word: a text longer than the model with
    no word in it gets a feature of the special tokens (every text has one), and no words."""
    encoder = Encoder(_byte_level_tokenizer(False), {"O": 0}, 8)
    texts = ["East" + " " * 40 + ".", " " * 40, "said"]
    assert len(encoder.backend.encode(texts[1]).ids) > 8
    features, words = encoder.encode_raw_texts(texts)
    assert [[w for w, _, _ in ws] for ws in words] == [["East", "."], [], ["said"]]
    assert sorted({f.example_index for f in features}) == [0, 1, 2]
    assert all(len(f) <= 8 for f in features)
    assert [w for f in features if f.example_index == 0 for _, w in f.word_positions] == [0, 1]  # in windows
    assert [f.word_positions for f in features if f.example_index == 1] == [[]]


def test_raw_texts_longer_than_the_model_are_windowed(short_tokenizer):
    encoder = Encoder(short_tokenizer, {"O": 0}, 12)
    texts = ["one two", " ".join(f"word{i}" for i in range(30)), "", "three"]
    features, words = encoder.encode_raw_texts(texts)
    expected_features, expected_words = _two_passes(encoder, texts)
    assert words == expected_words and len(words[1]) == 30 and words[2] == []
    assert [(f.inputs, f.example_index, f.word_positions) for f in features] == [
        (f.inputs, f.example_index, f.word_positions) for f in expected_features]
    assert [f.example_index for f in features].count(1) > 1  # windows, consecutive, in text order


class _NoOffsets:
    """A Rust-tokenizer stand-in whose encodings map no token back to the text (every offset (0, 0))."""

    def __init__(self, backend):
        self.backend = backend

    def _blank(self, encoding):
        return type("Encoding", (), {"ids": encoding.ids, "word_ids": encoding.word_ids,
                                     "offsets": [(0, 0)] * len(encoding.ids)})()

    def encode(self, *args, **kwargs):
        return self._blank(self.backend.encode(*args, **kwargs))

    def encode_batch(self, *args, **kwargs):
        return [self._blank(encoding) for encoding in self.backend.encode_batch(*args, **kwargs)]


def test_a_tokenizer_without_offsets_is_refused_where_words_need_them(short_tokenizer):
    """Without offsets neither the words of a raw text nor the subwords of a word encoded in its text can be found:
    a coded error, not features whose words silently carry no label."""
    from tunecard.encoding.encoder import has_offsets, words_encode_as_text
    from tunecard.errors import ConfigError

    encoder = Encoder(short_tokenizer, LABELS, max_length=32)
    assert has_offsets(encoder.backend)
    blind = _NoOffsets(encoder.backend)
    assert not has_offsets(blind) and not words_encode_as_text(blind)
    encoder.backend, encoder.words_alone, encoder.offsets = blind, False, False
    with pytest.raises(ConfigError) as raised:
        encoder.encode_tokens([_long_example(3)])
    assert raised.value.code == "E201"
    with pytest.raises(ConfigError):
        encoder.encode_raw_texts(["Mandela visited Johannesburg"])
