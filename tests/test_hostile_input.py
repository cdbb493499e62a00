"""Hostile input, case by case: what the user gets for each bad input listed in docs/bad-input.md.

The table in the docs is checked against these cases, so it shows messages tunecard really prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tunecard.data import ReadOptions, read_corpus
from tunecard.data.example import TokenExample
from tunecard.errors import DataError

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"
MB = 1_000_000


@dataclass
class BadInput:
    """One bad input: the file, how it is read, and what the user gets (an error code, or success)."""

    name: str  # the row of docs/bad-input.md
    file: str
    content: bytes
    code: str | None  # None: read, possibly with a warning
    excerpt: str  # in the error message, or in a warning
    line: int | None = None
    options: dict = field(default_factory=dict)


CASES = [
    BadInput("empty file", "train.conll", b"", "E103", "empty split: the file has no examples"),
    BadInput("only blank lines", "train.conll", b"\n  \n\t\n\r\n", "E103", "empty split: the file has no examples"),
    BadInput("binary file (an image)", "train.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "E102",
             "binary file: NUL byte at byte offset 8 (line 3)", 3),
    BadInput("binary garbage without NUL bytes", "train.txt", b"\xff\xd8\xff\xe0JFIF", "E101",
             "not valid utf-8: byte 0xff at byte offset 0 (line 1, byte 1 of the line)", 1),
    BadInput("NUL byte inside a text file", "train.conll", b"EU B-ORG\nrejects O\nGer\x00man B-MISC\n", "E102",
             "binary file: NUL byte at byte offset 22 (line 3)", 3),
    BadInput("UTF-16 file with a BOM", "train.conll", "EU B-ORG\n".encode("utf-16"), "E101",
             "file is UTF-16 (it starts with a UTF-16 byte order mark), not UTF-8", 1),
    BadInput("UTF-16 file without a BOM", "train.conll", "EU B-ORG\n".encode("utf-16-le"), "E102",
             "binary file: NUL byte at byte offset 1 (line 1)", 1),
    BadInput("Latin-1 file", "train.conll", "EU B-ORG\nCafé O\n".encode("latin-1"), "E101",
             "not valid utf-8: byte 0xe9 at byte offset 12 (line 2, byte 4 of the line)", 2),
    BadInput("Latin-1 file with --encoding latin-1", "train.conll", "EU B-ORG\nCafé O\n".encode("latin-1"), None,
             "", options={"encoding": "latin-1"}),
    BadInput("UTF-8 BOM", "train.conll", b"\xef\xbb\xbfEU B-ORG\nrejects O\n", None,
             "starts with a UTF-8 byte order mark (BOM); it was ignored"),
    BadInput("Windows (CRLF) line endings", "train.conll", b"EU B-ORG\r\nrejects O\r\n\r\nPeter B-PER\r\n", None,
             "has Windows (CRLF) line endings; they were read as LF"),
    BadInput("old Mac (CR) line endings", "train.conll", b"EU B-ORG\rrejects O\r\rPeter B-PER\r", None,
             "has old Mac (CR) line endings; they were read as LF"),
    BadInput("mixed tabs and spaces between columns", "train.conll", b"EU\tB-ORG\nrejects  O\nGerman \t B-MISC\n",
             None, ""),
    BadInput("token with a space, columns not all tab-separated", "train.conll", b"New York\tB-LOC\nis O\n",
             "E104", "malformed line: 2 column(s) separated by spaces/tabs, the rest of the file has 3", 2),
    BadInput("labels with spaces or unicode (tab-separated)", "train.conll",
             "Ann\tB-job title\nLee\tI-job title\n北\tB-地名\n".encode(), None, ""),
    BadInput("label with a space, space-separated columns", "train.conll", b"Ann B-PER\nboss B-job title\n", "E104",
             "malformed line: 3 column(s) separated by spaces/tabs, the rest of the file has 2", 2),
    BadInput("a 1 MB token", "train.conll", b"x" * MB + b"\tO\nEU\tB-ORG\n", None, ""),
    BadInput("a 1 MB line without columns", "train.conll", b"EU B-ORG\n" + b"word " * (MB // 5) + b"\n", "E104",
             "malformed line: 200000 column(s) separated by spaces/tabs, the rest of the file has 2", 2),
    BadInput("a 1 MB tag", "train.conll", b"EU B-ORG\nx " + b"y" * MB + b"\n", "E105",
             "'yyyyy", 2),
    BadInput("a 1 MB CSV field", "train.csv", b'text,label\n"' + b"a, " * (MB // 3) + b'",pos\nbad,neg\n', None, ""),
    BadInput("a 1 MB JSON line", "train.jsonl", b'{"text": "' + b"a " * (MB // 2) + b'", "label": "pos"}\n', None,
             ""),
    BadInput("JSONL line that is a list", "train.jsonl", b'{"tokens": ["a"], "tags": ["O"]}\n[1, 2]\n', "E111",
             "expected a JSON object, found list", 2),
    BadInput("JSONL line that is a string", "train.jsonl", b'{"tokens": ["a"], "tags": ["O"]}\n"EU"\n', "E111",
             "expected a JSON object, found str", 2),
    BadInput("JSONL line that is not JSON", "train.jsonl", b'{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a"] "t'
             b'ags": ["O"]}\n', "E111", "not valid JSON (Expecting ',' delimiter at character 18)", 2),
    BadInput("CSV with quoted newlines", "train.csv", b'text,label\n"two\nlines",pos\n"x, y",neg\nbad,neg\n', None,
             ""),
    BadInput("CSV quote never closed", "train.csv", b'text,label\ngood,pos\n"oops,neg\nbad,neg\n', "E104",
             "malformed CSV: a quoted field opened on this line is never closed", 3),
    BadInput("CSV row with an extra column", "train.csv", b"text,label\ngood,pos\nbad,so,neg\n", "E104",
             "malformed row: 3 column(s), the rest of the file has 2", 3),
    BadInput("zero-width or control character as a token", "train.conll", "EU\tB-ORG\n\u200b\tO\n\u00ad\tO\n".encode(),
             None, ""),
    BadInput("headerless CSV whose first label is a header word", "train.csv",
             b"y,great movie\nn,bad plot\ny,loved it\nn,boring\n", None, "was read as an example, not a header"),
    BadInput("CSV text after a closing quote", "train.csv", b'text,label\n"good" film,pos\nbad,neg\n', "E104",
             "malformed CSV: ',' expected after '\"'", 2),
    BadInput("JSON array with a record after its closing ]", "train.json",
             b'[{"tokens": ["a"], "tags": ["O"]}]\n{"tokens": ["b"], "tags": ["O"]}\n', "E111",
             "content after the closing ] of the JSON array", 2),
    BadInput("JSON array without its closing ]", "train.json",
             b'[{"tokens": ["a"], "tags": ["O"]},\n{"tokens": ["b"], "tags": ["O"]}\n', "E111",
             "the JSON array opened on line 1 is never closed", 2),
    BadInput("JSON array with a missing comma", "train.json",
             b'[{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["b"], "tags": ["O"]}]\n', "E111",
             "expected , or ] after a record of the JSON array, found '{'", 2),
    BadInput("JSON nested 1,000+ levels deep", "train.jsonl",
             b'{"tokens": ["a"], "tags": ' + b"[" * 5000 + b"]" * 5000 + b"}\n", "E111",
             "JSON nested more than 100 levels deep", 1),
    BadInput("lone surrogate in a JSONL token", "train.jsonl",
             b'{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["\\ud800"], "tags": ["O"]}\n', "E111",
             "holds a lone UTF-16 surrogate", 2),
    BadInput("tab-separated CoNLL token with trailing spaces", "train.conll", b"New York  \tB-LOC\nrocks\tO\n", None,
             "1 token(s) had spaces before or after them (first at line 1); they were removed"),
    BadInput("tab-separated CoNLL token of spaces only", "train.conll", b"EU\tB-ORG\n   \tO\n", "E104",
             "the token in column 0 is only spaces", 2),
    BadInput("UTF-8 file given as latin-1", "valid.conll", "EU B-ORG\nCaf\u00e9 O\n".encode(), None,
             "read as latin-1 as asked, but the file is valid UTF-8", options={"encoding": "latin-1"}),
    BadInput("span boundary inside a word (evaluation read)", "test.jsonl",
             b'{"text": "New Yorkers", "spans": [[4, 8, "LOC"]]}\n', None,
             "1 span(s) start or end inside a word (first at line 1)"),
    BadInput("span boundary inside a word (training read)", "train.jsonl",
             b'{"text": "New Yorkers", "spans": [[4, 8, "LOC"]]}\n', None,
             "1 word(s) were split where a span starts or ends inside them", options={"split_at_spans": True}),
    BadInput("overlapping or nested spans", "train.jsonl",
             b'{"text": "Bank of China", "spans": [[0, 13, "ORG"], [8, 13, "LOC"]]}\n{"text": "ok", "spans": []}\n'
             b'{"text": "Ann Lee", "spans": [[0, 7, "PER"], [0, 3, "PER"]]}\n', "E110",
             "2 pair(s) of overlapping or nested spans in 2 record(s); the first: 0-13 (ORG) and 8-13 (LOC)", 1),
    BadInput("overlapping spans with overlapping_spans: longest", "train.jsonl",
             b'{"text": "Bank of China", "spans": [[0, 13, "ORG"], [8, 13, "LOC"]]}\n', None,
             "1 span(s) dropped from 1 pair(s) of overlapping spans (overlapping_spans: longest",
             options={"overlapping_spans": "longest"}),
]


def read(tmp_path: Path, case: BadInput):
    path = tmp_path / case.file
    path.write_bytes(case.content)
    return path, lambda: read_corpus(path, ReadOptions(**case.options))


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(tmp_path, case):
    path, run = read(tmp_path, case)
    if case.code is None:
        corpus = run()
        assert len(corpus) > 0
        if case.excerpt:
            assert any(case.excerpt in warning and str(path) in warning for warning in corpus.warnings), corpus.warnings
        return
    with pytest.raises(DataError) as caught:
        run()
    error = caught.value
    assert error.code == case.code, str(error)
    assert case.excerpt in error.message
    assert error.path == str(path) and str(path) in str(error) and error.fix
    assert error.line == case.line
    assert len(str(error)) < 600  # a 1 MB line is cut in the message, never copied into it


def test_docs_table_shows_every_case_with_its_code_and_message():
    text = DOC.read_text(encoding="utf-8")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    for case in CASES:
        assert case.name in rows, f"docs/bad-input.md has no row for {case.name!r}"
        row = rows[case.name]
        if case.code:
            assert case.code in row and case.excerpt in row.replace("\\|", "|"), row
        elif case.excerpt:
            assert case.excerpt in row, row


# ---------------------------------------------------------------- details of some cases


def test_latin1_error_names_the_encoding_and_the_option(tmp_path):
    path = tmp_path / "train.conll"
    path.write_bytes("EU B-ORG\nCafé O\n".encode("latin-1"))
    with pytest.raises(DataError) as caught:
        read_corpus(path)
    assert "utf-8" in caught.value.message and "--encoding latin-1" in caught.value.fix
    corpus = read_corpus(path, ReadOptions(encoding="latin-1"))
    assert corpus.examples[0].tokens == ["EU", "Café"] and corpus.warnings == []


def test_bom_and_crlf_leave_no_trace_in_tokens_tags_or_headers(tmp_path):
    conll = tmp_path / "train.conll"
    conll.write_bytes(b"\xef\xbb\xbfEU\tB-ORG\r\nrejects\tO\r\n\r\nPeter\tB-PER\r\n")
    corpus = read_corpus(conll)
    assert [ex.tokens for ex in corpus.examples] == [["EU", "rejects"], ["Peter"]]
    assert corpus.labels == ["B-ORG", "B-PER", "O"] and [ex.line for ex in corpus.examples] == [1, 4]
    csv_file = tmp_path / "train.csv"
    csv_file.write_bytes(b"\xef\xbb\xbftext,label\r\ngood,pos\r\nbad,neg\r\n")
    corpus = read_corpus(csv_file)  # the header is found by name: the BOM is not part of "text"
    assert [(ex.text, ex.label, ex.line) for ex in corpus.examples] == [("good", "pos", 2), ("bad", "neg", 3)]


def test_crlf_file_errors_name_the_right_line(tmp_path):
    path = tmp_path / "train.conll"
    path.write_bytes(b"EU B-ORG\r\nrejects O\r\n\r\nPeter X-PER\r\n")
    with pytest.raises(DataError) as caught:
        read_corpus(path)
    assert caught.value.code == "E105" and caught.value.line == 4


def test_labels_with_spaces_and_unicode_survive_every_format(tmp_path):
    conll = tmp_path / "train.conll"
    conll.write_text("Ann\tB-job title\nLee\tI-job title\n北\tB-地名\n京\tI-地名\n", encoding="utf-8")
    assert read_corpus(conll).entity_types == ["job title", "地名"]
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text('{"tokens": ["Ann", "北"], "tags": ["S-job title", "S-地名"]}\n', encoding="utf-8")
    assert read_corpus(jsonl).examples[0].tags == ["B-job title", "B-地名"]
    csv_file = tmp_path / "train.csv"
    csv_file.write_text("text,label\ngreat,very positive\nbad,消极\nok,very positive\n", encoding="utf-8")
    assert read_corpus(csv_file).labels == ["very positive", "消极"]


def test_csv_quoted_newlines_keep_text_and_line_numbers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b'text,label\n"two\nlines",pos\n"x, ""y""",neg\nbad,neg\n')
    corpus = read_corpus(path)
    assert [(ex.text, ex.line) for ex in corpus.examples] == [("two\nlines", 2), ('x, "y"', 4), ("bad", 5)]


def test_label_only_in_the_test_split_stops_train_before_the_model_loads(tmp_path):
    from tunecard.config import TrainConfig
    from tunecard.pipeline import train

    train_file = tmp_path / "train.conll"
    train_file.write_text("Ann B-PER\nsings O\n\nBob B-PER\n", encoding="utf-8")
    test_file = tmp_path / "test.conll"
    test_file.write_text("Bob B-PER\n\nin O\nParis B-LOC\n", encoding="utf-8")
    output = tmp_path / "run"
    config = TrainConfig(task="ner", model=str(tmp_path / "never-loaded"), train=str(train_file), test=str(test_file),
                         output=str(output))
    with pytest.raises(DataError) as caught:
        train(config, progress=False)
    error = caught.value
    assert error.code == "E106" and error.path == str(test_file) and error.line == 3
    assert "'LOC'" in error.message and "test split" in error.message and str(train_file) in error.message
    assert not output.exists()


# ---------------------------------------------------------------- long sentences and words without subwords


@pytest.fixture(scope="module")
def short_model(tiny_bert_short):
    """A token classifier with 32 positions: a 10,000-word sentence becomes hundreds of windows."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    labels = ["O", "B-PER", "I-PER", "B-LOC"]
    model = AutoModelForTokenClassification.from_pretrained(
        tiny_bert_short, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)})
    return model, AutoTokenizer.from_pretrained(tiny_bert_short), labels


def _score(short_model, examples):
    from tunecard.encoding.batching import PadCollator
    from tunecard.encoding.encoder import IGNORE_INDEX, Encoder, EncodingStats
    from tunecard.training.evaluate import evaluate_features

    model, tokenizer, labels = short_model
    encoder = Encoder(tokenizer, {label: i for i, label in enumerate(labels)}, max_length=32)
    stats = EncodingStats()
    features = encoder.encode_tokens(examples, stats)
    trained = sum(1 for feature in features for label in feature.labels if label != IGNORE_INDEX)
    result = evaluate_features(model, features, examples, task="token-classification", id2label=model.config.id2label,
                               collator=PadCollator(tokenizer.pad_token_id), batch_size=64)
    return stats, trained, result


def test_a_10000_token_sentence_is_windowed_and_every_gold_label_scored(short_model):
    pattern = [("Ann", "B-PER"), ("Lee", "I-PER"), ("visited", "O"), ("Johannesburg", "B-LOC"), ("x" * 300, "O"),
               ("北京", "B-LOC"), ("\u200b", "O"), (",", "O")]
    words = [pattern[i % len(pattern)] for i in range(10_000)]
    example = TokenExample(tokens=[w for w, _ in words], tags=[t for _, t in words], line=1)
    stats, trained, result = _score(short_model, [example])
    assert stats.windowed_examples == 1 and stats.windows > 300
    assert trained == 10_000  # each word carries its label in exactly one window (first subword)
    assert result["tokens"] == 10_000 and result["sentences"] == 1
    assert result["gold_entities"] == 3 * 10_000 // len(pattern)  # Ann Lee, Johannesburg, 北京
    assert stats.unknown_words == 10_000 // len(pattern)  # the zero-width spaces


def test_words_the_tokenizer_drops_are_still_labelled_and_scored(short_model):
    """U+200B, a soft hyphen, a control character, a private-use character: no subword of their own."""
    example = TokenExample(tokens=["EU", "\u200b", "\u00ad", "\x7f", "\ue000", "rejects"],
                           tags=["B-LOC", "B-PER", "I-PER", "O", "B-LOC", "O"], line=1)
    stats, trained, result = _score(short_model, [example])
    assert stats.unknown_words == 4 and trained == 6
    assert result["tokens"] == 6 and result["per_label"]["PER"]["support"] == 1
