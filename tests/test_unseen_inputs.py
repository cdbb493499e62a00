"""Inputs a new user brings that the other reader tests did not hold: each case failed (a misleading error, or a
wrong read) before its fix."""

from __future__ import annotations

import pytest

from tunecard.data import read_corpus
from tunecard.errors import DataError


def write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def error_of(path, task=None) -> DataError:
    with pytest.raises(DataError) as caught:
        read_corpus(path, task=task)
    assert caught.value.path == str(path) and caught.value.fix
    return caught.value


# ------------------------------------------------------------------ CoNLL-shaped files whose tags are not tags


@pytest.mark.parametrize("name", ["train.txt", "train.tsv", "train.conll"])
@pytest.mark.parametrize("tags, bad, line, hint", [
    (["b-loc", "i-loc", "O"], "b-loc", 1, "B-loc for 'b-loc'"),
    (["B_LOC", "I_LOC", "O"], "B_LOC", 1, "B-LOC for 'B_LOC'"),
    (["LOC-B", "LOC-I", "O"], "LOC-B", 1, "the prefix comes first: B-LOC"),
    (["B-LOC", "I-LOC", "o"], "o", 3, "'O' (capital letter O) is the outside tag"),
    (["3", "4", "0"], "3", 1, "integer tag ids need their names"),
])
def test_a_ner_file_with_tags_that_are_not_tags_names_the_line_and_the_fix(tmp_path, name, tags, bad, line, hint):
    # Before: a .txt/.tsv file was detected as label-text or TSV and a NER task got E115 ("format label-text holds
    # text-classification data"), naming neither the line nor the tag.
    words = ["New", "York", "today"]
    path = write(tmp_path, name, "".join(f"{w}\t{t}\n" for w, t in zip(words, tags)) + "\n")
    error = error_of(path, task="ner")
    assert error.code == "E105" and error.line == line and repr(bad) in str(error)
    assert hint in error.fix


def test_a_classification_file_given_for_ner_is_still_the_task_error(tmp_path):
    path = write(tmp_path, "train.tsv", "a great movie\tpositive\nboring and long\tnegative\n")
    assert error_of(path, task="ner").code == "E115"
    assert read_corpus(path).task == "text-classification"  # without a task, detection is unchanged


# ------------------------------------------------------------------ span JSONL as annotation tools export it


@pytest.mark.parametrize("records", [
    # doccano's sequence-labelling export: spans as [start, end, label] under "label"; a text without any first
    ['{"id": 1, "text": "nothing here", "label": []}',
     '{"id": 2, "text": "John lives in Paris", "label": [[0, 4, "PER"], [14, 19, "LOC"]]}'],
    # doccano 1.6+: "entities" with start_offset / end_offset
    ['{"id": 1, "text": "nothing here", "entities": [], "relations": []}',
     '{"id": 2, "text": "John lives in Paris", "entities": [{"id": 1, "label": "PER", "start_offset": 0, '
     '"end_offset": 4}, {"id": 2, "label": "LOC", "start_offset": 14, "end_offset": 19}], "relations": []}'],
    # spaCy-style "entities" of [start, end, label]
    ['{"text": "nothing here", "entities": []}',
     '{"text": "John lives in Paris", "entities": [[0, 4, "PER"], [14, 19, "LOC"]]}'],
])
def test_span_files_under_the_keys_annotation_tools_write_are_read_as_spans(tmp_path, records):
    # Before: detected as classification JSONL: E104 ("label [0, 4, 'PER'] ... is not a class name"), E114 (no
    # label key), or for a NER task E115.
    path = write(tmp_path, "train.jsonl", "\n".join(records) + "\n")
    for task in (None, "ner"):
        corpus = read_corpus(path, task=task)
        assert corpus.format == "spans" and [ex.line for ex in corpus.examples] == [1, 2]
        assert corpus.examples[0].tags == ["O", "O"]
        assert corpus.examples[1].tags == ["B-PER", "O", "O", "B-LOC"]
        assert corpus.examples[1].spans == [(0, 4, "PER"), (14, 19, "LOC")]
    assert error_of(path, task="text-classification").code == "E115"


def test_label_lists_of_names_stay_multi_label(tmp_path):
    path = write(tmp_path, "train.jsonl", '{"text": "a", "label": []}\n{"text": "b", "label": ["x", "y"]}\n')
    corpus = read_corpus(path)
    assert corpus.format == "text-jsonl" and [ex.labels for ex in corpus.examples] == [[], ["x", "y"]]


# ------------------------------------------------------------------ comment lines before sentences


@pytest.mark.parametrize("name, sep", [("en_train.conll", " "), ("train.txt", " "), ("train.tsv", "\t")])
def test_comment_lines_before_sentences_are_skipped_and_counted(tmp_path, name, sep):
    # MultiCoNER writes "# id <uuid> domain=en" before each sentence; before, the comment was read as a token
    # line (E105 "'domain=en' is not a tag"), or the file as "label text" lines.
    lines = ["# id f5fa5d2c domain=en", "the", "new", "york", "", "# id 9b1c domain=en", "bob", "#", ""]
    tags = [None, "O", "B-CW", "I-CW", None, None, "B-PER", "O", None]
    content = "\n".join(f"{w}{sep}_{sep}_{sep}{t}" if t else w for w, t in zip(lines, tags)) + "\n"
    corpus = read_corpus(write(tmp_path, name, content))
    assert corpus.format == "conll"
    assert [(ex.tokens, ex.tags, ex.line) for ex in corpus.examples] == [
        (["the", "new", "york"], ["O", "B-CW", "I-CW"], 2), (["bob", "#"], ["B-PER", "O"], 7)]
    assert any("2 comment line(s)" in w and "line 1" in w for w in corpus.warnings)


def test_a_hash_line_inside_a_sentence_is_still_a_token_line(tmp_path):
    path = write(tmp_path, "train.conll", "the O\n# x y\nend O\n")
    assert error_of(path).code == "E104"  # not skipped silently: only a line before a sentence is a comment


# ------------------------------------------------------------------ a column that numbers the tokens


def test_a_token_number_column_is_not_read_as_the_words(tmp_path):
    # GermEval 2014 (and CoNLL-U) number each sentence's tokens in column 0: before, the words read were
    # "1", "2", "3", ... with no error and no warning.
    content = ("# http://de.wikipedia.org/wiki/Manfred_Korfmann [2009-10-17]\n"
               "1\tAufgrund\tO\tO\n2\tseiner\tO\tO\n3\tKorfmann\tB-PER\tO\n\n"
               "# http://de.wikipedia.org/wiki/Berlin [2009-10-17]\n1\tBerlin\tB-LOC\tO\n2\t2\tO\tO\n")
    path = write(tmp_path, "germeval.tsv", content)
    corpus = read_corpus(path)
    assert [ex.tokens for ex in corpus.examples] == [["Aufgrund", "seiner", "Korfmann"], ["Berlin", "2"]]
    assert any("column 0 numbers the tokens" in w and "from column 3" in w for w in corpus.warnings)
    from tunecard.data import ReadOptions
    outer = read_corpus(path, ReadOptions(tag_column=2))
    assert [ex.tags for ex in outer.examples] == [["O", "O", "B-PER"], ["B-LOC", "O"]]


def test_numbers_that_do_not_count_each_sentence_are_words(tmp_path):
    corpus = read_corpus(write(tmp_path, "train.conll", "1 CD O\n2 CD O\n\n5 CD O\n"))
    assert [ex.tokens for ex in corpus.examples] == [["1", "2"], ["5"]]
    two_columns = read_corpus(write(tmp_path, "two.conll", "1 O\n2 O\n"))  # a number column needs a word beside it
    assert two_columns.examples[0].tokens == ["1", "2"]


# ------------------------------------------------------------------ compressed files and archives


def _xlsx_bytes() -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
    return buffer.getvalue()


@pytest.mark.parametrize("name, make, said", [
    ("train.csv.gz", lambda: __import__("gzip").compress(b"text,label\ngreat,1\nbad,0\n"), "gzip-compressed"),
    ("train.csv", lambda: __import__("gzip").compress(b"text,label\ngreat,1\nbad,0\n"), "gzip-compressed"),
    ("train.xlsx", _xlsx_bytes, "zip archive"),
    ("train.conll.bz2", lambda: __import__("bz2").compress(b"EU B-ORG\n"), "bzip2-compressed"),
    ("train.parquet", lambda: b"PAR1\x15\x04\x15\x00rest of a parquet file", "Parquet"),
])
@pytest.mark.parametrize("encoding", [None, "latin-1"])
def test_a_compressed_file_or_archive_is_named_as_such_in_any_encoding(tmp_path, name, make, said, encoding):
    # Before: E102 "binary file: NUL byte ... if it is UTF-16 text, pass --encoding utf-16", or E101 suggesting
    # --encoding latin-1, which then decoded the compressed bytes as text.
    from tunecard.data import ReadOptions

    path = write(tmp_path, name, make())
    with pytest.raises(DataError) as caught:
        read_corpus(path, ReadOptions(encoding=encoding))
    assert caught.value.code == "E102" and said in str(caught.value) and caught.value.line == 1
    assert "utf-16" not in caught.value.fix and "latin-1" not in caught.value.fix


def test_predict_input_that_is_gzip_is_named_as_such():
    import gzip
    import io

    from tunecard.data.lines import line_groups

    data = io.BytesIO(gzip.compress("Angela Merkel visited Paris.\n".encode()))
    with pytest.raises(DataError) as caught:
        list(line_groups(data.read1, "<stdin>", "latin-1"))  # latin-1 would decode any bytes into garbage lines
    assert caught.value.code == "E102" and "gzip" in str(caught.value)


def test_text_that_starts_like_a_magic_number_is_text(tmp_path):
    corpus = read_corpus(write(tmp_path, "train.conll", "PAR1 B-X\nBZh O\n"))
    assert corpus.examples[0].tokens == ["PAR1", "BZh"]


def test_a_hash_token_whose_tag_has_a_space_is_a_token(tmp_path):
    corpus = read_corpus(write(tmp_path, "train.tsv", "#\tB-job title\n\n# id 2\tdomain=en\nx\tO\n"))
    assert [ex.tokens for ex in corpus.examples] == [["#"], ["x"]]


# ------------------------------------------------------------------ semicolon-separated CSV (Excel in many locales)


def test_a_semicolon_separated_csv_file_is_read_with_a_warning(tmp_path):
    # Before: E104 "rows have a single column", with no way to name the separator.
    content = 'text;score;label\n"great movie; really";4,5;positive\nbad film, sadly;1,0;negative\nok;3;positive\n'
    corpus = read_corpus(write(tmp_path, "train.csv", content))
    assert [(ex.text, ex.label, ex.line) for ex in corpus.examples] == [
        ("great movie; really", "positive", 2), ("bad film, sadly", "negative", 3), ("ok", "positive", 4)]
    assert any("semicolon-separated" in w for w in corpus.warnings)


def test_a_comma_separated_file_with_semicolons_in_its_texts_stays_comma_separated(tmp_path):
    corpus = read_corpus(write(tmp_path, "train.csv", "text,label\nfine; good,pos\nbad; awful,neg\n"))
    assert [(ex.text, ex.label) for ex in corpus.examples] == [("fine; good", "pos"), ("bad; awful", "neg")]
    assert not any("semicolon" in w for w in corpus.warnings)


# ------------------------------------------------------------------ TSV written by pandas (CSV quoting on tabs)


def test_a_tsv_file_written_by_pandas_is_read_with_its_quoting(tmp_path):
    # pandas' to_csv(sep="\t") quotes a field holding a quote, a tab or a line break. Before: the text kept the
    # quotes ('"he said ""hi"" there"'), and a quoted line break was E104 "malformed row".
    content = ('text\tlabel\n"he said ""hi"" there"\ta\n"two\nlines here"\tb\nplain\ta\n"tab\tinside"\tb\n')
    corpus = read_corpus(write(tmp_path, "train.tsv", content))
    assert [(ex.text, ex.label, ex.line) for ex in corpus.examples] == [
        ('he said "hi" there', "a", 2), ("two\nlines here", "b", 3), ("plain", "a", 5), ("tab\tinside", "b", 6)]
    assert any("CSV quoting on tabs" in w for w in corpus.warnings)


@pytest.mark.parametrize("content", [
    'text\tlabel\n"Hello," she said\tpos\nplain\tneg\n"quoted"\tpos\n',  # quotes that are text (GLUE style)
    'text\tlabel\n"open quote\tpos\nclosed later"\tneg\n',  # an open quote alone is no evidence: lines stay rows
])
def test_a_tsv_file_whose_quotes_are_text_keeps_them(tmp_path, content):
    corpus = read_corpus(write(tmp_path, "train.tsv", content))
    expected = [line.split("\t")[0] for line in content.splitlines()[1:]]
    assert [ex.text for ex in corpus.examples] == expected
    assert not any("quoting" in w for w in corpus.warnings)


# ------------------------------------------------------------------ labels that differ only in spelling


@pytest.mark.parametrize("name, content, shown", [
    ("train.csv", "text,label\na,Positive\nb,positive\nc,1\nd,1.0\ne,neg\n", ["'1' / '1.0'", "'Positive' / 'positive'"]),
    ("train.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 1.0}\n', ["'1' / '1.0'"]),
    ("train.conll", "John B-PER\nParis B-loc\n\nMary B-per\nRome B-LOC\n", ["'LOC' / 'loc'", "'PER' / 'per'"]),
    ("spans.jsonl", '{"text": "Ann Bo", "spans": [[0, 3, "PER"], [4, 6, "Per"]]}\n', ["'PER' / 'Per'"]),
])
def test_labels_that_differ_only_in_spelling_are_kept_apart_with_a_warning(tmp_path, name, content, shown):
    # Before: read as separate classes without a word (a pandas float column gives 1.0 beside 1).
    corpus = read_corpus(write(tmp_path, name, content))
    warning = next(w for w in corpus.warnings if "differ only in case" in w)
    assert all(group in warning for group in shown)


def test_distinct_labels_get_no_spelling_warning(tmp_path):
    corpus = read_corpus(write(tmp_path, "train.csv", "text,label\na,1\nb,10\nc,pos\nd,post\n"))
    assert not any("differ only" in w for w in corpus.warnings)


# ------------------------------------------------------------------ a headerless file with an id column


@pytest.mark.parametrize("order", ["id first", "id last"])
def test_an_id_column_is_not_taken_for_the_labels(tmp_path, order):
    # Before: a headerless id,label,text file was read with the ids as labels (a class per row), the label as the
    # text and the text as a text pair, without a word.
    rows = [(str(1000 + i), "pos" if i % 2 else "neg", f"text number {i} is here") for i in range(24)]
    lines = [f"{i},{label},{text}" if order == "id first" else f"{text},{label},{i}" for i, label, text in rows]
    path = write(tmp_path, "train.csv", "\n".join(lines) + "\n")
    error = error_of(path)
    assert error.code == "E114" and "different value in each of its 24 rows" in str(error)
    assert "--label-column" in error.fix
    from tunecard.data import ReadOptions
    named = read_corpus(path, ReadOptions(label_column=1, text_column=2 if order == "id first" else 0))
    assert [ex.label for ex in named.examples[:2]] == ["neg", "pos"] and named.examples[0].text_pair is None


def test_a_small_file_whose_labels_are_all_different_still_reads(tmp_path):
    corpus = read_corpus(write(tmp_path, "train.csv", "great film,pos\nawful,neg\nso so,meh\n"))
    assert [ex.label for ex in corpus.examples] == ["pos", "neg", "meh"]


def test_a_fasttext_line_with_several_labels_is_not_read_as_one_label_and_text(tmp_path):
    # Before: `__label__b` silently became the first word of the text of a one-label example.
    content = "__label__a a fine film\n__label__a __label__b great and long\n__label__b dull\n"
    with pytest.raises(DataError) as caught:
        read_corpus(write(tmp_path, "train.txt", content))
    assert caught.value.code == "E104" and caught.value.line == 2 and "label_separator" in str(caught.value)
    # the fix the error gives reads: one field of labels joined by the separator
    from tunecard.data.example import ReadOptions

    fixed = content.replace("__label__a __label__b", "__label__a|__label__b")
    corpus = read_corpus(write(tmp_path, "fixed.txt", fixed), ReadOptions(label_separator="|"))
    assert [(ex.text, ex.labels) for ex in corpus.examples][1] == ("great and long", ["__label__a", "__label__b"])
    # one fastText label per line stays a plain label-text file
    single = read_corpus(write(tmp_path, "single.txt", "__label__a a fine film\n__label__b dull\n__label__a ok\n"))
    assert [ex.text for ex in single.examples] == ["a fine film", "dull", "ok"]
