"""The reader faults of issue 29 (item 4), each reproduced first: a header-like first label, JSON arrays with
records after `]` or no `]`, JSON nested 1,000+ deep, lone surrogates, and tab-separated CoNLL tokens with
trailing spaces."""

from __future__ import annotations

import pytest

from tunecard.data import ReadOptions, read_corpus
from tunecard.errors import DataError


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def error_of(path, options: ReadOptions | None = None) -> DataError:
    with pytest.raises(DataError) as caught:
        read_corpus(path, options)
    assert caught.value.path == str(path) and caught.value.fix
    return caught.value


# ------------------------------------------------------------------ CSV/TSV: a header-like first label


@pytest.mark.parametrize("word", ["y", "label", "target"])
@pytest.mark.parametrize("sep, name", [(",", "a.csv"), ("\t", "a.tsv")])
def test_headerless_file_whose_first_label_is_a_header_word_keeps_that_row(tmp_path, word, sep, name):
    other = "n" if word == "y" else "other"
    rows = [(word, "great movie"), (other, "bad plot"), (word, "loved it"), (other, "boring")]
    path = write(tmp_path, name, "".join(f"{label}{sep}{text}\n" for label, text in rows))
    corpus = read_corpus(path)
    assert [(ex.label, ex.text, ex.line) for ex in corpus.examples] == [
        (label, text, i) for i, (label, text) in enumerate(rows, start=1)]
    # The first row holds a header-like word: the choice is said, with the way to force the other one.
    warning = next(w for w in corpus.warnings if "header" in w)
    assert "example" in warning and "header: true" in warning
    forced = read_corpus(path, ReadOptions(header=True))
    assert len(forced) == 3


def test_a_real_header_is_still_found_and_said_only_when_it_is_a_guess(tmp_path):
    plain = read_corpus(write(tmp_path, "a.csv", "label,text\npos,good\nneg,bad\npos,fine\n"))
    assert [ex.label for ex in plain.examples] == ["pos", "neg", "pos"] and plain.warnings == []
    # Only one usual name in the first row: read as a header, and said so.
    guessed = read_corpus(write(tmp_path, "b.tsv", "review\tstars\ngreat\t5\nawful\t1\nmeh\t1\n"))
    assert [ex.label for ex in guessed.examples] == ["5", "1", "1"]
    assert any("header" in w and "header: false" in w for w in guessed.warnings)
    # A header-like row whose words are also values of their columns: an example, said.
    both = read_corpus(write(tmp_path, "c.csv", "y,text\ny,great\nn,text\nn,bad\n"))
    assert len(both) == 4 and any("header: true" in w for w in both.warnings)


# ------------------------------------------------------------------ JSON arrays


def test_records_after_the_closing_bracket_are_an_error_with_their_line(tmp_path):
    path = write(tmp_path, "a.json", '[{"tokens": ["a"], "tags": ["O"]}]\n{"tokens": ["b"], "tags": ["O"]}\n')
    error = error_of(path)
    assert error.code == "E111" and error.line == 2 and "after the closing ]" in error.message


def test_a_missing_closing_bracket_is_an_error_with_a_line(tmp_path):
    path = write(tmp_path, "a.json", '[{"tokens": ["a"], "tags": ["O"]},\n{"tokens": ["b"], "tags": ["O"]}\n')
    error = error_of(path)
    assert error.code == "E111" and error.line == 2 and "never closed" in error.message


@pytest.mark.parametrize("content, line", [
    ('[{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["b"], "tags": ["O"]}]\n', 2),  # no comma
    ('[{"tokens": ["a"], "tags": ["O"]},,\n{"tokens": ["b"], "tags": ["O"]}]\n', 1),  # two commas
    ('[{"tokens": ["a"], "tags": ["O"]},\n]\n', 2),  # a trailing comma
])
def test_array_separators_follow_json(tmp_path, content, line):
    error = error_of(write(tmp_path, "a.json", content))
    assert error.code == "E111" and error.line == line


def test_a_valid_array_over_several_lines_is_read_with_each_record_line(tmp_path):
    content = '[\n  {"tokens": ["a"],\n   "tags": ["O"]}, {"tokens": ["b"], "tags": ["B-X"]},\n' \
              '  {"tokens": ["c", "]"], "tags": ["O", "O"]}\n]\n'
    corpus = read_corpus(write(tmp_path, "a.json", content))
    assert [(ex.tokens, ex.line) for ex in corpus.examples] == [(["a"], 2), (["b"], 3), (["c", "]"], 4)]


@pytest.mark.parametrize("name, content", [
    ("deep.jsonl", '{"tokens": ["a"], "tags": ' + "[" * 5000 + "]" * 5000 + "}\n"),
    ("deep.json", "[" + "[" * 5000 + "]" * 5000 + "]\n"),
    ("deep-label.jsonl", '{"text": "a", "label": ' + "[" * 990 + "]" * 990 + "}\n"),
])
def test_json_nested_thousands_deep_is_a_coded_error(tmp_path, name, content):
    for fmt in (None, "jsonl", "spans", "text-jsonl"):
        error = error_of(write(tmp_path, name, content), ReadOptions(format=fmt))
        assert error.code == "E111" and error.line == 1, str(error)


@pytest.mark.parametrize("fmt, record", [
    ("jsonl", '{"tokens": ["a", "\\ud800"], "tags": ["O", "O"]}'),
    ("jsonl", '{"tokens": ["a"], "tags": ["B-\\udfff"]}'),
    ("spans", '{"text": "Ann \\udc00", "spans": [[0, 3, "PER"]]}'),
    ("text-jsonl", '{"text": "fine \\ud83d", "label": "pos"}'),
    ("text-jsonl", '{"text": "fine", "label": "\\ud800"}'),
])
def test_a_lone_surrogate_is_a_coded_error_at_read_time(tmp_path, fmt, record):
    good = {"jsonl": '{"tokens": ["b"], "tags": ["O"]}', "spans": '{"text": "b", "spans": []}',
            "text-jsonl": '{"text": "b", "label": "pos"}'}[fmt]
    for name, content, line in (("a.jsonl", f"{good}\n{record}\n", 2), ("a.json", f"[{good},\n{record}]\n", 2)):
        error = error_of(write(tmp_path, name, content), ReadOptions(format=fmt))
        assert error.code == "E111" and error.line == line and "surrogate" in error.message, str(error)


def test_a_surrogate_pair_is_one_character_and_reads(tmp_path):
    corpus = read_corpus(write(tmp_path, "a.jsonl", '{"tokens": ["\\ud83d\\ude00"], "tags": ["O"]}\n'))
    assert corpus.examples[0].tokens == ["\U0001F600"]


# ------------------------------------------------------------------ CoNLL: spaces around tab-separated tokens


def test_tab_separated_tokens_lose_stray_spaces_with_a_count(tmp_path):
    path = write(tmp_path, "a.conll", "New York  \tB-LOC\nrocks\tO\n\n  Ann\tB-PER\nsays \tO\n")
    corpus = read_corpus(path)
    assert [ex.tokens for ex in corpus.examples] == [["New York", "rocks"], ["Ann", "says"]]
    warning = next(w for w in corpus.warnings if "spaces" in w)
    assert "3 token(s)" in warning and "line 1" in warning


def test_a_token_of_spaces_only_is_an_error(tmp_path):
    error = error_of(write(tmp_path, "a.conll", "EU\tB-ORG\n   \tO\n"))
    assert error.code == "E104" and error.line == 2
