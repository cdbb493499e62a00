"""Fuzzing every reader: whatever the bytes, a reader returns a sane corpus or raises a located DataError.

A located error is a :class:`TunecardError` naming the file and, for problems on one line, a line that
exists in the file. Any other exception (IndexError, UnicodeError, KeyError...) is a reader bug.

Each generated file goes through every file reader (and format detection), so N hypothesis examples are N
cases per reader: generating structured content costs far more here than reading it. Content comes from
three sources: raw bytes; valid seed files of every format mutated by inserting, deleting and replacing
hostile fragments (BOMs, CR, NUL, tabs, quotes, JSON punctuation, unicode tags); and free concatenations of
those fragments. The ``datasets`` reader takes tables, not bytes, and is fuzzed with generated datasets.

Beyond sanity, each file reader is held to an independent oracle (``reader_oracle.py``, written from
docs/data-formats.md): generated valid files must round-trip exactly, and mutated ones must give a coded error or
exactly the oracle's examples, streamed or whole (2,000 cases per reader here; ``benchmarks/fuzz_readers.py``
runs 10,000 or more).
"""

from __future__ import annotations

import copy
import json
import os
from unittest import mock

import reader_oracle

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tunecard.data import ReadOptions, read_corpus
from tunecard.data.example import MULTI_LABEL_TASK, TEXT_TASK, TOKEN_TASK, Corpus
from tunecard.data.schemes import parse_tag
from tunecard.errors import DataError, TunecardError

FILE_READERS = ("conll", "jsonl", "spans", "csv", "tsv", "label-text", "text-jsonl", None)  # None: detect
TOKEN_FORMATS = {"conll", "jsonl", "spans"}
# Codes that are always about one line of the file: the error must name it.
LINE_CODES = {"E101", "E102", "E105", "E109", "E110", "E111"}

SEEDS = (
    "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\nPeter NNP B-NP B-PER\n",
    "@paul\tO\nNew York\tB-location\nrocks\tO\n\t\n人\tB-人名\n名\tE-人名\n",
    '{"tokens": ["EU", "rejects"], "tags": ["B-ORG", "O"]}\n{"tokens": ["Ann"], "ner_tags": ["S-PER"]}\n',
    '[{"text": "Ann lives in Paris", "spans": [{"start": 0, "end": 3, "label": "PER"}, [13, 18, "LOC"]]}]\n',
    'text,label\n"great, really",pos\n"two\nlines",neg\nawful,neg\n',
    "sentence\tlabel\nit works\t1\nit does not\t0\n",
    "DESC:manner How did serfdom develop ?\nENTY:cremat What films featured the character ?\n",
    '{"text": "good film", "label": "pos"}\n{"sentence": "bad", "label": 0, "text_pair": "x"}\n',
)
FRAGMENTS = (
    "\n", "\r\n", "\r", "\n\n", "\t", " ", "   ", "\ufeff", "\x00", "\u200b", "\u00a0", "\x85", "\u2028", "\x0c",
    "é", "人名", "😀", "-DOCSTART-", "-DOCSTART- -X- O O\n", "EU\tB-ORG\n", "rejects O\n", "New York\tI-LOC\n",
    "B-PER", "I-PER", "E-PER", "S-LOC", "M-X", "U-X", "L-X", "B-", "I-", "X-PER", "O", "B-job title", "B-人名", "0",
    "1", "-1", '"', '""', ",", "\\", "{", "}", "[", "]", ":", "null", "true", "1e999", "NaN", '"tokens"', '"tags"',
    '"ner_tags"', '"text"', '"spans"', '"label"', '"start"', '"end"', '{"tokens": ["a"], "tags": ["O"]}\n',
    '{"text": "Ann", "spans": [{"start": 0, "end": 3, "label": "PER"}]}\n', '{"text": "ok", "label": "pos"}\n',
    "[1, 2]\n", '"quoted, field"', '"multi\nline"', "text,label\n", "label\ttext\n", "pos great film\n",
    "neg\tawful\n", "word",
)
PREFIXES = (b"",) * 6 + (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\xe9")
ENCODINGS = (None,) * 6 + ("latin-1", "cp1252", "utf-16")
JSON_SEEDS = (
    [{"tokens": ["EU", "rejects", "German"], "tags": ["B-ORG", "O", "B-MISC"]},
     {"tokens": ["Ann"], "ner_tags": ["S-PER"]}],
    [{"text": "Ann lives in Paris", "spans": [{"start": 0, "end": 3, "label": "PER"}, [13, 18, "LOC"]]},
     {"text": "人名在北京", "spans": [{"start": 3, "end": 5, "label": "LOC"}]}],
    [{"text": "good film", "label": "pos"}, {"sentence": "bad", "label": 0, "text_pair": "x"}],
)
JSON_VALUES = (None, True, 0, 1, -1, 3, 99, 1.5, float("inf"), "", " ", "O", "B-PER", "I-PER", "E-X", "B-", "X-PER",
               "人名", "\u200b", "a b", [], {}, ["O"], ["a", "b"], [0, 1], {"start": 0}, [[0, 1, "X"]])
JSON_KEYS = ("tokens", "tags", "ner_tags", "text", "spans", "label", "start", "end", "sentence", "text_pair")


@st.composite
def mutated_seed(draw) -> str:
    text = draw(st.sampled_from(SEEDS))
    edits = draw(st.lists(st.tuples(st.sampled_from("idr"), st.integers(0, 400), st.integers(1, 12),
                                    st.sampled_from(FRAGMENTS)), max_size=5))
    for op, position, size, fragment in edits:
        position %= len(text) + 1
        if op == "i":
            text = text[:position] + fragment + text[position:]
        elif op == "d":
            text = text[:position] + text[position + size:]
        else:
            text = text[:position] + fragment + text[position + len(fragment):]
    return text


def _json_paths(value, prefix=()):
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _json_paths(child, (*prefix, key))


@st.composite
def mutated_json(draw) -> str:
    """A valid JSON seed with values replaced, deleted or added: well-formed JSON, hostile content."""
    root = copy.deepcopy(draw(st.sampled_from(JSON_SEEDS)))
    for op, choice, value, key in draw(st.lists(st.tuples(st.sampled_from("sda"), st.integers(0, 99),
                                                          st.sampled_from(JSON_VALUES), st.sampled_from(JSON_KEYS)),
                                                max_size=3)):
        path = list(_json_paths(root))[choice % len(list(_json_paths(root)))]
        parent = root
        for step in path[:-1]:
            parent = parent[step]
        node = parent[path[-1]] if path else root
        if op == "s" and path:
            parent[path[-1]] = copy.deepcopy(value)
        elif op == "d" and path:
            del parent[path[-1]]
        elif op == "a" and isinstance(node, list):
            node.append(copy.deepcopy(value))
        elif op == "a" and isinstance(node, dict):
            node[key] = copy.deepcopy(value)
    lines = [json.dumps(record, ensure_ascii=False) for record in (root if isinstance(root, list) else [root])]
    return "[" + ",\n".join(lines) + "]" if draw(st.booleans()) else "\n".join(lines) + "\n"


@st.composite
def hostile_files(draw) -> bytes:
    source = draw(st.sampled_from(("bytes", "seed", "seed", "json", "json", "fragments")))
    if source == "bytes":
        return draw(st.binary(max_size=300))
    if source == "fragments":
        text = "".join(draw(st.lists(st.sampled_from(FRAGMENTS), max_size=25)))
    else:
        text = draw(mutated_seed() if source == "seed" else mutated_json())
    codec = draw(st.sampled_from(("utf-8",) * 6 + ("latin-1", "utf-16-le")))
    return draw(st.sampled_from(PREFIXES)) + text.encode(codec, errors="replace")


def line_bound(data: bytes) -> int:
    """An upper bound on the file's line count whatever its encoding and line endings."""
    return data.count(b"\n") + data.count(b"\r") + 1


def check_read(path, fmt: str | None, encoding: str | None, n_lines: int) -> None:
    try:
        corpus = read_corpus(path, ReadOptions(format=fmt, encoding=encoding))
    except TunecardError as error:
        where = f"reader {fmt or 'detect'}: {error}"
        assert isinstance(error, DataError), where
        assert error.path == str(path) and error.fix, where
        if error.code in LINE_CODES or (error.code == "E104" and "tag column" not in error.message):
            assert error.line is not None, where
        if error.line is not None:
            assert 1 <= error.line <= n_lines, where
        return
    assert_sane(corpus, fmt, n_lines)


def assert_sane(corpus: Corpus, fmt: str | None, n_lines: int) -> None:
    """What the rest of tunecard relies on: examples exist, every token has one IOB2 tag, every text a label."""
    assert len(corpus) > 0
    if fmt is not None:  # a file of text classification may hold label lists: multi-label, by its shape
        assert corpus.task in ((TOKEN_TASK,) if fmt in TOKEN_FORMATS else (TEXT_TASK, MULTI_LABEL_TASK))
    for example in corpus.examples:
        assert example.line is None or 1 <= example.line <= n_lines
        if corpus.task == TOKEN_TASK:
            assert all(isinstance(token, str) for token in example.tokens)
            assert len(example.tags) == len(example.tokens)
            previous = "O"
            for tag in example.tags:
                prefix, kind = parse_tag(tag)
                assert prefix in ("B", "I", "O")
                if prefix == "I":  # IOB2: an I- continues an entity of its own type
                    assert previous in (f"B-{kind}", f"I-{kind}"), example.tags
                previous = tag
        elif corpus.task == MULTI_LABEL_TASK:  # a set of non-empty names, sorted, each once (possibly empty)
            assert example.label is None and example.labels == sorted(set(example.labels))
            assert all(isinstance(label, str) and label.strip() for label in example.labels)
            assert example.text_pair is None or isinstance(example.text_pair, str)
        else:
            assert isinstance(example.text, str) and isinstance(example.label, str) and example.label.strip()
            assert example.text_pair is None or isinstance(example.text_pair, str)


FUZZ = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@FUZZ
@given(data=hostile_files(), encoding=st.sampled_from(ENCODINGS))
def test_every_file_reader_returns_a_sane_corpus_or_a_located_error(tmp_path, data, encoding):
    path = tmp_path / "data.txt"  # .txt: detection has to look at the content
    path.write_bytes(data)
    for fmt in FILE_READERS:
        check_read(path, fmt, encoding, line_bound(data))


# ---------------------------------------------------------------- each reader against an independent oracle

# Cases per reader (a third valid generated files, the rest mutations of them): 2,000 in the suite; the benchmark
# benchmarks/fuzz_readers.py runs 10,000 or more (docs/bad-input.md).
ORACLE_CASES = int(os.environ.get("TUNECARD_FUZZ_CASES", "2000"))


@pytest.mark.parametrize("fmt", reader_oracle.FORMATS)
def test_every_reader_agrees_with_an_independent_oracle(tmp_path, fmt):
    """A valid generated file round-trips exactly; a mutated one gives a coded DataError naming the file (and a
    line the file has) or exactly the oracle's examples; a streamed read gives what the whole read gives."""
    outcomes, failures = reader_oracle.run(fmt, ORACLE_CASES, seed=29, folder=tmp_path)
    n = sum(outcomes.values())
    assert n >= ORACLE_CASES and not failures, f"{len(failures)} of {n} cases failed:\n" + "\n".join(failures[:5])
    # The cases reach both sides: files read, and files refused for what the oracle refuses them for.
    assert outcomes.get("valid file read", 0) >= ORACLE_CASES // 5 and outcomes.get("file read", 0) > 0
    assert sum(count for outcome, count in outcomes.items() if outcome.startswith("refused")) > ORACLE_CASES // 10


# ---------------------------------------------------------------- datasets (save_to_disk folders, hub)

TAG_NAMES = ["O", "B-PER", "I-PER", "B-人名"]
HF_STRINGS = st.sampled_from(["good", "", " ", "\u200b", "人名", "a\nb", "O", "B-PER", "I-PER", "X-PER", "B-"])
HF_INTS = st.integers(-2, 5)


def _cells(draw, kind, size: int, n_names: int = 0) -> list:
    """Cells of one arrow type (strings, ints, or ClassLabel ids: datasets refuses ids past the names and
    below -1), some of them null."""
    values = {"str": HF_STRINGS, "int": HF_INTS, "id": st.integers(-1, n_names - 1)}[kind]
    return [draw(values | st.none()) if draw(st.integers(0, 5)) == 0 else draw(values) for _ in range(size)]


@st.composite
def hf_tables(draw):
    """A small datasets table: NER (tokens + tags) or classification (text + label), with hostile cells:
    nulls, ints where strings belong, tag ids outside the ClassLabel names, empty strings."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    rows = draw(st.integers(0, 4))
    class_label = draw(st.booleans())
    kinds = [draw(st.sampled_from(["str", "str", "int"])) for _ in range(2)]
    if draw(st.booleans()):  # NER
        tokens = [_cells(draw, kinds[0], draw(st.integers(0, 4))) if draw(st.integers(0, 9)) else None
                  for _ in range(rows)]
        tags = [_cells(draw, "id" if class_label else kinds[1], draw(st.integers(0, 4)), len(TAG_NAMES))
                for _ in range(rows)]
        columns = {"tokens": tokens, draw(st.sampled_from(["ner_tags", "tags", "pos_tags"])): tags}
        kind = Sequence(ClassLabel(names=TAG_NAMES)) if class_label else None
    else:
        columns = {draw(st.sampled_from(["text", "sentence", "review"])): _cells(draw, kinds[0], rows),
                   "label": _cells(draw, "id" if class_label else kinds[1], rows, 2)}
        kind = ClassLabel(names=["neg", "pos"]) if class_label else None
    features = None
    if kind is not None:
        other, tag_column = list(columns)
        value = Value("string" if kinds[0] == "str" else "int64")
        features = Features({other: Sequence(value) if other == "tokens" else value, tag_column: kind})
    try:
        return Dataset.from_dict(columns, features=features)
    except Exception:  # noqa: BLE001 - arrow refuses some columns (all null lists): no user can have those
        assume(False)


@settings(max_examples=400, deadline=None)
@given(dataset=hf_tables(), task=st.sampled_from([None, TOKEN_TASK, TEXT_TASK]))
def test_datasets_reader_returns_a_sane_corpus_or_a_located_error(dataset, task):
    with mock.patch("tunecard.data.hf._load", return_value=dataset):
        try:
            corpus = read_corpus("saved-folder", ReadOptions(format="hf"), task=task)
        except TunecardError as error:
            assert isinstance(error, DataError), str(error)
            assert error.path == "saved-folder" and error.fix, str(error)
            if error.code in LINE_CODES | {"E104"}:
                assert error.line is not None and 1 <= error.line <= len(dataset), str(error)
            return
    assert_sane(corpus, None, len(dataset))


@pytest.mark.parametrize("cells, code", [
    ({"tokens": [["a", "b"]], "ner_tags": [[1, -1]]}, "E105"),  # -1 must not silently become the last name
    ({"tokens": [[1, 2]], "tags": [["O", "O"]]}, "E104"),
    ({"text": [None], "label": [1]}, "E104"),
    ({"text": ["fine"], "label": [None]}, "E104"),
])
def test_datasets_reader_rejects_cells_found_by_fuzzing(cells, code):
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    features = None
    if "ner_tags" in cells:
        features = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=TAG_NAMES))})
    dataset = Dataset.from_dict(cells, features=features)
    with mock.patch("tunecard.data.hf._load", return_value=dataset):
        with pytest.raises(DataError) as caught:
            read_corpus("saved-folder", ReadOptions(format="hf"))
    assert caught.value.code == code and caught.value.line == 1, str(caught.value)
