"""Readers: round trips (property tests), format detection, and every data error a user can meet."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunecard.data import ReadOptions, detect_format, read_corpus
from tunecard.data.example import TEXT_TASK, TOKEN_TASK, Corpus, TextExample, TokenExample
from tunecard.data.jsonl import word_offsets
from tunecard.data.schemes import SCHEMES, Span, spans_to_tags, tags_to_spans
from tunecard.data.stats import corpus_stats, render_stats
from tunecard.data.validate import check_task_consistency, validate_splits
from tunecard.errors import DataError

TMP_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Token characters: any printable character but whitespace and the BOM (a leading U+FEFF is a BOM).
token_chars = st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="\ufeff\x85")
tokens = st.text(token_chars, min_size=1, max_size=6).filter(lambda t: t != "-DOCSTART-")
entity_types = st.sampled_from(["PER", "creative-work", "job title", "人名", "ORG"])


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def error_of(path, options=None, **kwargs) -> DataError:
    with pytest.raises(DataError) as caught:
        read_corpus(path, options, **kwargs)
    return caught.value


def assert_error(error: DataError, code: str, path: Path | None, line: int | None) -> None:
    assert error.code == code, str(error)
    text = str(error)
    if path is not None:
        assert str(path) in text
        assert error.path == str(path)
    if line is not None:
        assert error.line == line
        assert f":{line}:" in text
    assert error.fix


@st.composite
def sentences(draw, token_strategy=tokens):
    """(tokens, spans) pairs with valid, non-overlapping spans."""
    words = draw(st.lists(token_strategy, min_size=1, max_size=8))
    spans, position = [], 0
    while position < len(words):
        if draw(st.booleans()):
            size = draw(st.integers(1, min(3, len(words) - position)))
            spans.append(Span(position, position + size, draw(entity_types)))
            position += size
        else:
            position += 1
    return words, spans


# ---------------------------------------------------------------- CoNLL


@TMP_SETTINGS
@given(
    corpus=st.lists(sentences(), min_size=1, max_size=6),
    scheme=st.sampled_from(SCHEMES),
    separator=st.sampled_from([" ", "\t"]),
    extra_columns=st.integers(0, 2),
    docstarts=st.booleans(),
    give_scheme=st.booleans(),
)
def test_conll_round_trip(tmp_path, corpus, scheme, separator, extra_columns, docstarts, give_scheme):
    if separator == " ":  # with space-separated columns neither tokens nor entity types can hold a space
        corpus = [(words, [Span(a, b, label.replace(" ", "_")) for a, b, label in spans]) for words, spans in corpus]
    lines, expected_lines, expected_docs = [], [], []
    doc = -1
    for index, (words, spans) in enumerate(corpus):
        if docstarts and index % 2 == 0:
            lines += [separator.join(["-DOCSTART-"] + ["-X-"] * extra_columns + ["O"]), ""]
            doc += 1
        expected_lines.append(len(lines) + 1)
        expected_docs.append(doc if docstarts else None)
        for word, tag in zip(words, spans_to_tags(spans, len(words), scheme)):
            lines.append(separator.join([word] + ["NN"] * extra_columns + [tag]))
        lines.append("")
    path = write(tmp_path, "data.conll", "\n".join(lines))
    read = read_corpus(path, ReadOptions(scheme=scheme if give_scheme else None))
    assert read.task == TOKEN_TASK and read.format == "conll" and read.repaired == 0
    assert [ex.tokens for ex in read.examples] == [words for words, _ in corpus]
    assert [ex.tags for ex in read.examples] == [spans_to_tags(s, len(w), "IOB2") for w, s in corpus]
    assert [ex.line for ex in read.examples] == expected_lines
    assert [ex.doc_id for ex in read.examples] == expected_docs


@TMP_SETTINGS
@given(corpus=st.lists(sentences(st.text(token_chars | st.just(" "), min_size=1, max_size=6)
                                 .filter(lambda t: t.strip(" ") and t.strip(" ") != "-DOCSTART-")), min_size=1,
                       max_size=4))
def test_conll_tab_separated_tokens_may_contain_spaces(tmp_path, corpus):
    text = "\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(words, spans_to_tags(spans, len(words), "IOB2")))
                       for words, spans in corpus)
    read = read_corpus(write(tmp_path, "data.tsv", text), ReadOptions(format="conll"))
    # Spaces inside a token are kept; spaces around it are removed (and counted in a warning).
    assert [ex.tokens for ex in read.examples] == [[w.strip(" ") for w in words] for words, _ in corpus]
    spaced = sum(w != w.strip(" ") for words, _ in corpus for w in words)
    assert any(f"{spaced} token(s) had spaces" in w for w in read.warnings) == bool(spaced)


def test_conll_wnut_separator_lines_with_a_tab_and_chinese_bmes(tmp_path):
    wnut = read_corpus(write(tmp_path, "w.conll", "@paul\tO\nNew\tB-creative-work\nYork\tI-creative-work\n\t\nhi\tO\n"))
    assert [ex.tokens for ex in wnut.examples] == [["@paul", "New", "York"], ["hi"]]
    assert wnut.entity_types == ["creative-work"] and wnut.examples[1].line == 5
    bmes = read_corpus(write(tmp_path, "r.char.bmes", "高 B-NAME\n勇 E-NAME\n， O\n\n中 B-ORG\n国 M-ORG\n银 E-ORG\n"))
    assert bmes.scheme == "BMES"
    assert bmes.examples[1].tags == ["B-ORG", "I-ORG", "I-ORG"]


def test_conll_bmes_extension_decides_between_iobes_and_bmes(tmp_path):
    assert read_corpus(write(tmp_path, "a.bmes", "高 B-NAME\n勇 E-NAME\n")).scheme == "BMES"
    assert read_corpus(write(tmp_path, "a.conll", "高 B-NAME\n勇 E-NAME\n")).scheme == "IOBES"


def test_conll_repairs_are_counted_and_warned(tmp_path):
    corpus = read_corpus(write(tmp_path, "a.conll", "a O\nb I-PER\nc I-LOC\n\nd B-PER\n"))
    assert corpus.scheme == "IOB2"
    assert corpus.repaired == 2
    assert corpus.examples[0].tags == ["O", "B-PER", "B-LOC"]
    assert any("2 invalid IOB2 tag(s) repaired" in w and "line 1" in w for w in corpus.warnings)


def test_conll_tag_column_option(tmp_path):
    path = write(tmp_path, "a.conll", "EU B-ORG NNP\nrejects O VBZ\n")
    corpus = read_corpus(path, ReadOptions(tag_column=1))
    assert corpus.examples[0].tags == ["B-ORG", "O"]


def test_conll_fewer_columns_is_malformed(tmp_path):
    path = write(tmp_path, "a.conll", "EU NNP B-ORG\nrejects VBZ O\n\nGerman B-MISC\ncall NN O\n")
    assert_error(error_of(path), "E104", path, 4)


def test_conll_tag_column_that_is_not_a_tag(tmp_path):
    path = write(tmp_path, "a.conll", "EU NNP B-ORG\nrejects VBZ O\n")
    error = error_of(path, ReadOptions(tag_column=1))
    assert_error(error, "E105", path, 1)
    assert "'NNP'" in str(error) and "column 1" in str(error)


def test_conll_unknown_prefix_names_tag_and_line(tmp_path):
    path = write(tmp_path, "a.conll", "EU B-ORG\n\nrejects O\nPeter X-PER\n")
    error = error_of(path)
    assert_error(error, "E105", path, 4)
    assert "'X-PER'" in str(error)


def test_conll_prefix_not_in_given_scheme(tmp_path):
    path = write(tmp_path, "a.conll", "a O\nb S-PER\n")
    assert_error(error_of(path, ReadOptions(scheme="IOB2")), "E105", path, 2)


def test_conll_single_column_and_bad_tag_column(tmp_path):
    path = write(tmp_path, "a.conll", "EU\nrejects\n")
    assert_error(error_of(path, ReadOptions(format="conll")), "E104", path, 1)
    path = write(tmp_path, "b.conll", "EU B-ORG\n")
    assert error_of(path, ReadOptions(tag_column=5)).code == "E104"


def test_conll_only_docstart_is_empty(tmp_path):
    path = write(tmp_path, "a.conll", "-DOCSTART- -X- -X- O\n\n")
    assert_error(error_of(path), "E103", path, None)


# ---------------------------------------------------------------- text files: encoding, BOM, CRLF, binary, empty


def test_not_utf8_names_line_byte_offset_and_fix(tmp_path):
    path = write(tmp_path, "a.conll", b"a O\n\ncaf\xe9 O\n")
    error = error_of(path)
    assert_error(error, "E101", path, 3)
    assert "byte offset 8" in str(error) and "0xe9" in str(error)
    assert "--encoding latin-1" in error.fix
    corpus = read_corpus(path, ReadOptions(encoding="latin-1"))
    assert corpus.examples[1].tokens == ["café"]


def test_bom_is_accepted_with_a_warning(tmp_path):
    corpus = read_corpus(write(tmp_path, "a.conll", b"\xef\xbb\xbfEU B-ORG\n"))
    assert corpus.examples[0].tokens == ["EU"]
    assert any("byte order mark" in w for w in corpus.warnings)


def test_crlf_is_accepted_with_a_warning_and_lines_stay_right(tmp_path):
    corpus = read_corpus(write(tmp_path, "a.conll", "EU B-ORG\r\n\r\nPeter B-PER\r\n"))
    assert [ex.tags for ex in corpus.examples] == [["B-ORG"], ["B-PER"]]
    assert corpus.examples[1].line == 3
    assert any("CRLF" in w for w in corpus.warnings)


def test_utf16_bom_is_reported(tmp_path):
    path = write(tmp_path, "a.txt", "1 hello\n".encode("utf-16"))
    error = error_of(path)
    assert error.code == "E101" and "utf-16" in error.fix
    assert read_corpus(path, ReadOptions(encoding="utf-16")).examples[0].label == "1"


def test_binary_file(tmp_path):
    path = write(tmp_path, "a.conll", b"EU B-ORG\n\x00\x01\x02")
    assert_error(error_of(path), "E102", path, 2)


@pytest.mark.parametrize("content", ["", "\n\n  \n\t\n"])
@pytest.mark.parametrize("name", ["a.conll", "a.txt", "a.jsonl", "a.csv", "a.tsv"])
def test_empty_split(tmp_path, content, name):
    path = write(tmp_path, name, content)
    error = error_of(path)
    assert_error(error, "E103", path, None)
    assert "empty split" in str(error)


def test_missing_file(tmp_path):
    assert error_of(tmp_path / "nope.txt").code == "E107"


# ---------------------------------------------------------------- token JSONL and span JSONL


@TMP_SETTINGS
@given(corpus=st.lists(sentences(st.text(min_size=1, max_size=5)), min_size=1, max_size=5),
       scheme=st.sampled_from(SCHEMES), key=st.sampled_from(["tags", "ner_tags"]))
def test_token_jsonl_round_trip(tmp_path, corpus, scheme, key):
    lines = [json.dumps({"tokens": w, key: spans_to_tags(s, len(w), scheme)}, ensure_ascii=False) for w, s in corpus]
    read = read_corpus(write(tmp_path, "a.jsonl", "\n".join(lines) + "\n"), ReadOptions(scheme=scheme))
    assert read.format == "jsonl"
    assert [ex.tokens for ex in read.examples] == [w for w, _ in corpus]
    assert [ex.tags for ex in read.examples] == [spans_to_tags(s, len(w), "IOB2") for w, s in corpus]
    assert [ex.line for ex in read.examples] == list(range(1, len(corpus) + 1))
    assert all(ex.text is None and ex.offsets is None for ex in read.examples)


words = st.text(st.characters(whitelist_categories=("Lu", "Ll", "Nd", "Po")), min_size=1, max_size=6) \
    | st.sampled_from(["北", "京", "天安门", "東京", "ÄÖü", "e\u0301"])
gaps = st.sampled_from([" ", "  ", "\t", "\u00a0", "\u3000", "\n"])


@st.composite
def span_texts(draw):
    """A text and spans starting and ending on non-space characters (anywhere, also inside words)."""
    parts = draw(st.lists(st.tuples(words, gaps), min_size=1, max_size=6))
    text = "".join(w + g for w, g in parts).rstrip()
    solid = [i for i, c in enumerate(text) if not c.isspace()]
    spans, position = [], 0
    for _ in range(draw(st.integers(0, 3))):
        starts = [i for i in solid if i >= position]
        if not starts:
            break
        start = draw(st.sampled_from(starts))
        end = draw(st.sampled_from([i + 1 for i in solid if i >= start]))
        spans.append((start, end, draw(entity_types)))
        position = end
    return text, spans


@TMP_SETTINGS
@given(records=st.lists(span_texts(), min_size=1, max_size=4))
def test_span_jsonl_round_trip_never_drops_a_span(tmp_path, records):
    lines = [json.dumps({"text": t, "spans": [{"start": s, "end": e, "label": lab} for s, e, lab in spans]})
             for t, spans in records]
    path = write(tmp_path, "s.jsonl", "\n".join(lines))
    # Training reads cut words at span boundaries: every span is a run of words.
    read = read_corpus(path, ReadOptions(split_at_spans=True))
    assert read.format == "spans"
    for example, (text, spans) in zip(read.examples, records, strict=True):
        assert example.text == text and example.spans == spans
        assert example.tokens == [text[s:e] for s, e in example.offsets]
        assert all(not token.isspace() and token for token in example.tokens)
        back = [(example.offsets[s][0], example.offsets[e - 1][1], label)
                for s, e, label in tags_to_spans(example.tags, "IOB2")]
        assert back == spans
    # Evaluation reads find the words without the spans, and keep the gold spans as character offsets.
    blind = read_corpus(path)
    for example, (text, spans) in zip(blind.examples, records, strict=True):
        assert example.offsets == word_offsets(text) and example.spans == spans
        assert example.tokens == [text[s:e] for s, e in example.offsets]


def test_span_jsonl_splits_tokens_and_chinese_characters(tmp_path):
    text = "New Yorkers love 北京大学"
    record = {"text": text, "spans": [{"start": 4, "end": 8, "label": "LOC"}, [17, 19, "LOC"]]}
    path = write(tmp_path, "s.jsonl", json.dumps(record, ensure_ascii=False))
    corpus = read_corpus(path, ReadOptions(split_at_spans=True))
    example = corpus.examples[0]
    assert example.tokens == ["New", "York", "ers", "love", "北", "京", "大", "学"]
    assert example.tags == ["O", "B-LOC", "O", "O", "B-LOC", "I-LOC", "O", "O"]
    assert example.offsets[1] == (4, 8)
    assert any("split" in w for w in corpus.warnings) and corpus.span_counts["split_tokens"] == 1
    # Read for evaluation, "Yorkers" stays one word; the span inside it is counted (it can only be missed).
    blind = read_corpus(path)
    assert blind.examples[0].tokens == ["New", "Yorkers", "love", "北", "京", "大", "学"]
    assert blind.examples[0].tags == ["O", "B-LOC", "O", "B-LOC", "I-LOC", "O", "O"]
    assert blind.span_counts["spans_inside_words"] == 1 and blind.span_counts["split_tokens"] == 0
    assert any("inside a word" in w for w in blind.warnings)


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ([{"start": 0, "end": 5, "label": "A"}, {"start": 4, "end": 8, "label": "B"}], "overlapping"),
        ([{"start": 3, "end": 99, "label": "A"}], "outside the text"),
        ([{"start": 5, "end": 6, "label": "A"}], "covers no token"),
        ([{"start": 0, "end": 2}], "label"),
    ],
)
def test_span_errors(tmp_path, spans, message):
    path = write(tmp_path, "s.jsonl", '{"text": "ok", "spans": []}\n' + json.dumps({"text": "Hello world",
                                                                                   "spans": spans}))
    error = error_of(path)
    assert_error(error, "E110", path, 2)
    assert message in str(error)


def test_token_jsonl_errors(tmp_path):
    good = '{"tokens": ["a"], "tags": ["O"]}\n'
    path = write(tmp_path, "a.jsonl", good + '\n{"tokens": ["a", "b"], "ner_tags": ["O"]}\n')
    assert_error(error_of(path), "E109", path, 3)
    path = write(tmp_path, "b.jsonl", good + '{"tokens": ["a"], "tags": ["O"]\n')
    assert_error(error_of(path), "E111", path, 2)
    path = write(tmp_path, "c.jsonl", good + '{"tokens": ["a"]}\n')
    assert_error(error_of(path, ReadOptions(format="jsonl")), "E111", path, 2)
    path = write(tmp_path, "d.jsonl", good + '{"tokens": ["a"], "tags": [3]}\n')
    assert_error(error_of(path), "E105", path, 2)
    path = write(tmp_path, "e.jsonl", good + '{"tokens": ["a"], "tags": ["Q-X"]}\n')
    assert_error(error_of(path), "E105", path, 2)
    path = write(tmp_path, "f.jsonl", good + "[1, 2]\n")
    assert_error(error_of(path, ReadOptions(format="jsonl")), "E111", path, 2)


def test_json_array_file_is_read_with_lines(tmp_path):
    content = '[\n  {"tokens": ["a"], "tags": ["O"]},\n  {"tokens": ["b"], "tags": ["B-X"]}\n]\n'
    corpus = read_corpus(write(tmp_path, "a.json", content))
    assert [ex.line for ex in corpus.examples] == [2, 3]


# ---------------------------------------------------------------- text classification


texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\x00\ufeff\x85\x1c\x1d\x1e"
                              "\x0b\x0c\u2028\u2029"), min_size=1, max_size=20).filter(lambda t: t.strip())


@TMP_SETTINGS
@given(rows=st.lists(st.tuples(texts, st.sampled_from(["pos", "neg", "1", "-1"])), min_size=3, max_size=8),
       label_first=st.booleans())
def test_csv_round_trip_with_quotes_and_newlines(tmp_path, rows, label_first):
    buffer, starts = io.StringIO(), []
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["label", "text"] if label_first else ["text", "label"])
    for text, label in rows:
        starts.append(buffer.getvalue().count("\n") + 1)
        writer.writerow([label, text] if label_first else [text, label])
    corpus = read_corpus(write(tmp_path, "a.csv", buffer.getvalue()))
    assert [(ex.text, ex.label) for ex in corpus.examples] == rows
    assert [ex.line for ex in corpus.examples] == starts


def test_csv_quoted_newline_keeps_line_numbers(tmp_path):
    path = write(tmp_path, "a.csv", 'text,label\n"two\nlines",pos\nplain,neg\n"x","y",z\n')
    assert_error(error_of(path), "E104", path, 5)
    corpus = read_corpus(write(tmp_path, "b.csv", 'text,label\n"two\nlines",pos\nplain,neg\n'))
    assert [ex.line for ex in corpus.examples] == [2, 4]
    assert corpus.examples[0].text == "two\nlines"


def test_tsv_without_header_label_last_and_quotes_kept(tmp_path):
    corpus = read_corpus(write(tmp_path, "a.tsv", '"so" good\tpositive\nbad\tnegative\nok\tpositive\n'))
    assert corpus.format == "tsv"
    assert [(ex.text, ex.label) for ex in corpus.examples] == [('"so" good', "positive"), ("bad", "negative"),
                                                               ("ok", "positive")]
    assert corpus.warnings == []


def test_header_detection_and_override(tmp_path):
    path = write(tmp_path, "a.tsv", "review\tstars\ngreat\t5\nawful\t1\nmeh\t1\n")
    corpus = read_corpus(path)
    assert [ex.label for ex in corpus.examples] == ["5", "1", "1"]  # 'review' is a known name: header
    path = write(tmp_path, "b.tsv", "x\tq\ngreat\t5\nawful\t1\nmeh\t1\n")
    corpus = read_corpus(path)
    assert len(corpus) == 3 and any("header" in w for w in corpus.warnings)  # said, not silent
    assert len(read_corpus(path, ReadOptions(header=False))) == 4


def test_columns_by_name_index_and_pairs(tmp_path):
    path = write(tmp_path, "a.csv", "id,premise,hypothesis,gold\n1,a cat,an animal,entail\n2,x,y,neutral\n")
    corpus = read_corpus(path, ReadOptions(text_column="premise", text_pair_column="hypothesis",
                                           label_column="gold"))
    assert (corpus.examples[0].text, corpus.examples[0].text_pair, corpus.examples[0].label) == \
        ("a cat", "an animal", "entail")
    corpus = read_corpus(path, ReadOptions(text_column=1, label_column=3, header=True))
    assert corpus.examples[1].label == "neutral" and corpus.examples[1].text_pair == "y"  # found by its name
    # An index written as text (a command-line option, a quoted YAML value) is the same index, from either source.
    from tunecard.config import TrainConfig

    as_text = TrainConfig(task="text-classification", train=str(path), text_column="1", label_column="3",
                          header=True).read_options()
    assert (as_text.text_column, as_text.label_column) == (1, 3)
    assert read_corpus(path, as_text).examples == corpus.examples
    error = error_of(path, ReadOptions(label_column="missing"))
    assert error.code == "E114" and "'missing'" in str(error)
    assert error_of(path).code == "E114"  # four unnamed-looking columns: which is the text?
    three = read_corpus(write(tmp_path, "b.tsv", "1\tthe first\tthe second\n0\tone\ttwo\n1\tuno\tdos\n"))
    assert (three.examples[0].label, three.examples[0].text, three.examples[0].text_pair) == \
        ("1", "the first", "the second")


def test_label_text_lines(tmp_path):
    corpus = read_corpus(write(tmp_path, "a.txt", "1 a fine film .\n0 dull\n\n3 what ?\n"))
    assert corpus.format == "label-text"
    assert [(ex.label, ex.text, ex.line) for ex in corpus.examples] == [("1", "a fine film .", 1),
                                                                        ("0", "dull", 2), ("3", "what ?", 4)]
    path = write(tmp_path, "b.txt", "1 fine\n0\n")
    assert_error(error_of(path, ReadOptions(format="label-text")), "E104", path, 2)


def test_text_jsonl(tmp_path):
    path = write(tmp_path, "a.jsonl", '{"sentence": "good", "label": 1}\n{"sentence": "bad", "label": 0}\n')
    corpus = read_corpus(path)
    assert corpus.format == "text-jsonl" and [ex.label for ex in corpus.examples] == ["1", "0"]
    path = write(tmp_path, "b.jsonl", '{"text": "good", "label": 1}\n{"text": "bad"}\n')
    assert_error(error_of(path), "E114", path, 2)
    path = write(tmp_path, "c.jsonl", '{"text": "good", "label": null}\n')
    assert_error(error_of(path, ReadOptions(format="text-jsonl")), "E104", path, 1)


def test_empty_label_is_an_error(tmp_path):
    path = write(tmp_path, "a.csv", "text,label\ngood,pos\nbad, \n")
    assert_error(error_of(path), "E104", path, 3)


# ---------------------------------------------------------------- detection and dispatch


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("a.txt", "EU B-ORG\nrejects O\n\nPeter B-PER\n", "conll"),
        ("a.txt", "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\n", "conll"),
        ("a.tsv", "EU\tB-ORG\nrejects\tO\n", "conll"),
        ("a.tsv", "very good\tpositive\nbad\tnegative\n", "tsv"),
        ("a.txt", "1 very good\n0 bad\n", "label-text"),
        ("a.data", '{"tokens": ["a"], "tags": ["O"]}\n', "jsonl"),
        ("a.jsonl", '{"text": "a b", "spans": []}\n', "spans"),
        ("a.jsonl", '{"text": "a b", "label": "x"}\n', "text-jsonl"),
        ("a.csv", "text,label\na,b\n", "csv"),
        ("a.bio", "a O\n", "conll"),
    ],
)
def test_detect_format(tmp_path, name, content, fmt):
    assert detect_format(write(tmp_path, name, content)) == fmt


def test_undetectable_and_unknown_formats(tmp_path):
    path = write(tmp_path, "a.txt", "\n".join(f"word{i} other{i} more{i}" for i in range(100)))
    assert_error(error_of(path), "E108", path, None)
    assert error_of(path, ReadOptions(format="xml")).code == "E108"
    assert error_of(write(tmp_path, "b.jsonl", '{"foo": 1}\n')).code == "E108"


def test_task_mismatch(tmp_path):
    path = write(tmp_path, "a.conll", "EU B-ORG\n")
    error = error_of(path, task="text-classification")
    assert_error(error, "E115", path, None)
    assert read_corpus(path, task="ner").task == TOKEN_TASK
    assert error_of(path, task="summarization").code == "E115"


def test_nothing_is_dropped(tmp_path):
    content = "-DOCSTART- O\n\n" + "\n\n".join(f"w{i} O\nx{i} B-A" for i in range(50)) + "\n\n\n"
    corpus = read_corpus(write(tmp_path, "a.conll", content))
    assert len(corpus) == 50 and sum(len(ex.tokens) for ex in corpus.examples) == 100


# ---------------------------------------------------------------- Hugging Face datasets


@pytest.fixture(scope="module")
def saved_datasets(tmp_path_factory):
    datasets = pytest.importorskip("datasets")
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value

    root = tmp_path_factory.mktemp("hf")
    ner_features = Features({"tokens": Sequence(Value("string")),
                             "ner_tags": Sequence(ClassLabel(names=["O", "B-PER", "I-PER", "B-creative-work"]))})
    ner = DatasetDict({
        "train": Dataset.from_dict({"tokens": [["Ann", "Lee", "read"], ["It"]], "ner_tags": [[1, 2, 0], [3]]},
                                   features=ner_features),
        "validation": Dataset.from_dict({"tokens": [["Bo"]], "ner_tags": [[1]]}, features=ner_features),
    })
    ner.save_to_disk(root / "ner")
    ner["train"].save_to_disk(root / "ner_train")
    text_features = Features({"sentence": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    Dataset.from_dict({"sentence": ["good", "bad"], "label": [1, 0]}, features=text_features).save_to_disk(
        root / "sst")
    Dataset.from_dict({"sentence": ["x"], "label": [-1]}, features=text_features).save_to_disk(root / "unlabelled")
    return datasets, root


def test_hf_token_classification(saved_datasets):
    _, root = saved_datasets
    corpus = read_corpus(root / "ner", ReadOptions(split="train"))
    assert corpus.format == "hf" and corpus.task == TOKEN_TASK
    assert corpus.examples[0].tags == ["B-PER", "I-PER", "O"] and corpus.examples[1].tags == ["B-creative-work"]
    assert corpus.examples[1].line == 2 and corpus.path.endswith("[train]")
    assert len(read_corpus(root / "ner_train")) == 2


def test_hf_several_splits_need_a_choice(saved_datasets):
    _, root = saved_datasets
    error = error_of(root / "ner")
    assert error.code == "E113" and "train" in str(error) and "validation" in str(error)
    assert error_of(root / "ner", ReadOptions(split="test")).code == "E113"


def test_hf_text_classification(saved_datasets):
    _, root = saved_datasets
    corpus = read_corpus(root / "sst")
    assert corpus.task == TEXT_TASK and [(ex.text, ex.label) for ex in corpus.examples] == [("good", "pos"),
                                                                                           ("bad", "neg")]
    assert error_of(root / "sst", task="ner").code == "E115"
    assert error_of(root / "unlabelled").code == "E104"


def test_hf_folder_that_is_not_a_dataset(tmp_path):
    assert error_of(tmp_path).code == "E108"


def test_hf_hub_offline_is_a_clear_error(monkeypatch):
    datasets = pytest.importorskip("datasets")
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    error = error_of("someone/no-such-dataset")
    assert error.code == "E112" and "save_to_disk" in error.fix


# ---------------------------------------------------------------- validation across splits


def ner(path: str, *tag_lists: list[str]) -> Corpus:
    return Corpus(path=path, task=TOKEN_TASK, format="conll", scheme="IOB2",
                  examples=[TokenExample(tokens=["w"] * len(t), tags=list(t), line=1 + 3 * i)
                            for i, t in enumerate(tag_lists)])


def test_validate_unseen_entity_type_names_file_label_and_line():
    train = ner("train.txt", ["B-PER", "O"], ["B-LOC"])
    dev = ner("dev.txt", ["O"], ["B-PER"], ["O", "B-MISC"])
    with pytest.raises(DataError) as caught:
        validate_splits(train, {"validation": dev})
    assert_error(caught.value, "E106", Path("dev.txt"), 7)
    assert "'MISC'" in str(caught.value)
    validate_splits(train, {"validation": ner("dev.txt", ["B-LOC"])})


def test_validate_unseen_class_and_empty_and_mixed_tasks():
    train = Corpus(path="t.tsv", task=TEXT_TASK, format="tsv", examples=[TextExample("a", "pos", line=1)])
    test = Corpus(path="x.tsv", task=TEXT_TASK, format="tsv",
                  examples=[TextExample("a", "pos", line=1), TextExample("b", "neutral", line=2)])
    with pytest.raises(DataError) as caught:
        validate_splits(train, {"test": test})
    assert_error(caught.value, "E106", Path("x.tsv"), 2)
    with pytest.raises(DataError) as caught:
        validate_splits(train, {"test": Corpus(path="e.tsv", task=TEXT_TASK, format="tsv")})
    assert caught.value.code == "E103"
    with pytest.raises(DataError) as caught:
        validate_splits(train, {"test": ner("dev.txt", ["O"])})
    assert caught.value.code == "E115"
    assert check_task_consistency([train, test]) == TEXT_TASK
    with pytest.raises(DataError):
        check_task_consistency([train], TOKEN_TASK)


# ---------------------------------------------------------------- stats


def test_stats_ner_and_classification(tmp_path):
    corpus = read_corpus(write(tmp_path, "a.conll", "-DOCSTART- O\n\nAnn B-PER\nLee I-PER\nsaw O\nBo B-PER\n\n"
                                                     "-DOCSTART- O\n\nRome B-LOC\n"))
    stats = corpus_stats(corpus)
    assert stats["examples"] == 2 and stats["tokens"] == 5 and stats["documents"] == 2
    assert stats["entities"] == {"LOC": 1, "PER": 2}
    assert stats["tags"] == {"B-LOC": 1, "B-PER": 2, "I-PER": 1, "O": 1}
    assert stats["words_per_example"] == {"min": 1, "median": 2.5, "max": 4}
    json.dumps(stats)
    text = read_corpus(write(tmp_path, "b.txt", "1 good film\n0 很好\n0 bad\n"))
    stats = corpus_stats(text)
    assert stats["classes"] == {"0": 2, "1": 1} and stats["tokens"] == 5
    assert len(render_stats([corpus_stats(corpus), stats])) == 2


def test_stats_with_a_tokenizer(tmp_path):
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "ann", "lee", "##e", "good", "film"]
    tokenizer = transformers.BertTokenizerFast(vocab={word: i for i, word in enumerate(words)})
    corpus = read_corpus(write(tmp_path, "a.conll", "Ann B-PER\nLeee I-PER\n\nAnn O\n"))
    stats = corpus_stats(corpus, tokenizer, max_length=4)
    assert stats["subwords_per_example_incl_special_tokens"] == {"min": 3, "median": 4, "max": 5}
    assert stats["examples_over_max_length"] == 1 and stats["max_length"] == 4
    assert corpus_stats(corpus, tokenizer)["max_length"] == 512  # no real model_max_length: 512
    json.dumps(stats)
