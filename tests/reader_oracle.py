"""An oracle for tunecard's readers, written from docs/data-formats.md and not from the readers' code, and the
generators and mutators of the reader fuzzer (tests/test_fuzz_readers.py, benchmarks/fuzz_readers.py).

For every file format, `oracle(fmt, data, options)` says what a correct reader must do with the bytes: raise
(`Rejected`), or return exactly these examples. The fuzzer generates valid files (which must round-trip to the
examples they were written from), mutates them, and checks tunecard's readers against the oracle: a coded
`DataError`, or the oracle's examples exactly, never a traceback, never a silent drop.

To stay exact, the fuzzer names what the documentation leaves to heuristics: NER files are read with the scheme
given (IOB2) when mutated, CSV/TSV with the header and the columns given.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from dataclasses import dataclass, field

FORMATS = ("conll", "jsonl", "spans", "csv", "tsv", "label-text", "text-jsonl")
PREFIXES = set("BIESMLU")
CJK = ((0x3000, 0x303F), (0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0xFF00, 0xFFEF),
       (0x20000, 0x2A6DF), (0x2A700, 0x2EBEF), (0x2F800, 0x2FA1F), (0x30000, 0x323AF))
TEXT_NAMES = ("text", "sentence", "sentence1", "text_a", "content", "review", "question", "document", "question1")
LABEL_NAMES = ("label", "labels", "class", "category", "sentiment", "target", "intent", "y")
PAIR_NAMES = ("text_pair", "sentence2", "text_b", "question2", "hypothesis")
MAX_DEPTH = 100


class Rejected(Exception):
    """The oracle's verdict: a correct reader refuses this file."""


@dataclass
class Case:
    """A file and how to read it, with the examples a correct reader returns (None: the oracle decides)."""

    fmt: str
    data: bytes
    options: dict = field(default_factory=dict)
    expected: list | None = None


# ---------------------------------------------------------------------------------------------- text


def decode(data: bytes, encoding: str | None) -> list[str]:
    """The file's lines as the documentation describes them, or Rejected."""
    if encoding is None:
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise Rejected("UTF-16 BOM")
        if data[:3] == b"\xef\xbb\xbf":
            data = data[3:]
        if b"\x00" in data:
            raise Rejected("NUL byte")
    try:
        text = data.decode(encoding or "utf-8")
    except UnicodeError:
        raise Rejected("not decodable") from None
    if encoding is not None and text[:1] == "\ufeff":
        text = text[1:]
    if "\r\n" in text:
        text = text.replace("\r\n", "\n")
    elif "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")
    if not text.strip():
        raise Rejected("empty")
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def tag_parts(tag: object) -> tuple[str, str | None]:
    if tag == "O":
        return "O", None
    if isinstance(tag, str) and len(tag) > 2 and tag[0] in PREFIXES and tag[1] == "-":
        return tag[0], tag[2:]
    raise Rejected(f"not a tag: {tag!r}")


def _is_tag(value: str) -> bool:
    try:
        tag_parts(value)
    except Rejected:
        return False
    return True


def iob2_from_iob2_file(tags: list[str]) -> list[str]:
    """IOB2 tags read with scheme IOB2: other prefixes are errors; an I-X that does not continue X begins it."""
    out, previous = [], None
    for tag in tags:
        prefix, kind = tag_parts(tag)
        if prefix not in "BIO":
            raise Rejected(f"prefix {prefix} not in IOB2")
        if prefix == "I" and previous != kind:
            out.append(f"B-{kind}")
        else:
            out.append(tag)
        previous = kind
    return out


# ---------------------------------------------------------------------------------------------- CoNLL


def conll(lines: list[str], options: dict) -> list[tuple]:
    kinds = []
    for line in lines:
        fields = line.split()
        kind = "blank" if not fields else "docstart" if fields[0] == "-DOCSTART-" else "token"
        # "# id 1 domain=en" before a sentence: a comment unless it ends in a tag ("#<TAB>O" is a token)
        if (kind == "token" and (not kinds or kinds[-1] != "token") and re.match("#([ \t]|$)", line)
                and not _is_tag(fields[-1])
                and not _is_tag(line.rstrip(" \t").split("\t")[-1].strip())):
            kind = "comment"
        kinds.append(kind)
    token_lines = [line for line, kind in zip(lines, kinds) if kind == "token"]
    if not token_lines:
        raise Rejected("no token lines")
    tabs = all("\t" in line for line in token_lines)

    def cells(line: str) -> list[str]:
        return line.rstrip(" \t").split("\t") if tabs else re.split("[ \t]+", line.strip(" \t"))

    counts: dict[int, int] = {}
    for line in token_lines:
        counts[len(cells(line))] = counts.get(len(cells(line)), 0) + 1
    most = max(counts.values())
    expected = next(n for n in counts if counts[n] == most)  # the first count met among the most frequent
    if expected < 2 or len(counts) > 1:
        raise Rejected("columns")
    tag_column = options.get("tag_column")
    tag_column = expected - 1 if tag_column is None else tag_column % expected
    if not 1 <= tag_column < expected:
        raise Rejected("tag column")
    # Column 0 numbering each sentence's tokens 1, 2, 3, ... (3+ columns): the words are in column 1.
    numbered, position = True, 0
    for line, kind in zip(lines, kinds):
        position = position + 1 if kind == "token" else 0
        numbered = numbered and (kind != "token" or cells(line)[0].strip() == str(position))
    word = 1 if numbered and expected >= 3 else 0
    if tag_column <= word:
        raise Rejected("tag column")
    examples, tokens, tags, start, docs = [], [], [], 0, 0
    has_doc = "docstart" in kinds
    first_doc = next(kind for kind in kinds if kind != "blank") == "docstart"

    def close():
        if tokens:
            examples.append([list(tokens), list(tags), start, docs - first_doc if has_doc else None])
            tokens.clear()
            tags.clear()

    for number, (line, kind) in enumerate(zip(lines, kinds), start=1):
        if kind == "comment":
            continue
        if kind == "token":
            row = cells(line)
            token = row[word].strip(" ") if tabs else row[word]
            if not token:
                raise Rejected("empty token")
            if not tokens:
                start = number
            tokens.append(token)
            tags.append(row[tag_column].strip())
        else:
            close()
            docs += kind == "docstart"
    close()
    return _token_examples(examples, options)


def _token_examples(examples: list[list], options: dict) -> list[tuple]:
    """Tags checked (every one a tag) and read with the scheme given (the fuzzer gives IOB2 or none)."""
    for example in examples:
        for tag in example[1]:
            tag_parts(tag)
    for example in examples:
        example[1] = iob2_from_iob2_file(example[1]) if options.get("scheme") == "IOB2" else example[1]
    return [tuple(example) for example in examples]


# ---------------------------------------------------------------------------------------------- JSON


def _depth(value) -> int:
    depth, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, (list, dict)):
            depth = max(depth, level)
            pending.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return depth


def _strings(value):
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _load(text: str):
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise Rejected("not JSON") from None
    return value


def json_records(lines: list[str]) -> list[tuple[int | None, dict]]:
    """(line or None, record) for JSON Lines or one JSON array (whose record lines the oracle leaves open)."""
    first = next(i for i, line in enumerate(lines) if line.strip())
    if lines[first].lstrip(" \t\r\n").startswith("["):
        text = "\n".join(lines[first:])
        if text.count("[") + text.count("{") > MAX_DEPTH:
            _guard_depth(text)
        records = _load(text)
        if not isinstance(records, list):
            raise Rejected("not an array")
        numbered = [(None, record) for record in records]
    else:
        numbered = []
        for number, line in enumerate(lines, start=1):
            if line.strip():
                if line.count("[") + line.count("{") > MAX_DEPTH:
                    _guard_depth(line)
                numbered.append((number, _load(line)))
    for _, record in numbered:
        if not isinstance(record, dict) or _depth(record) > MAX_DEPTH:
            raise Rejected("not an object, or too deep")
        if any(re.search("[\ud800-\udfff]", s) for s in _strings(record)):
            raise Rejected("lone surrogate")
    return numbered


def _guard_depth(text: str) -> None:
    """Nesting beyond MAX_DEPTH anywhere (json.loads alone may not reach it first)."""
    depth = 0
    for char in re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text):
        if char in "[{":
            depth += 1
            if depth > MAX_DEPTH + 1:  # the array itself is one level
                raise Rejected("too deep")
        elif char in "]}":
            depth -= 1


def token_jsonl(lines: list[str], options: dict) -> list[tuple]:
    examples = []
    for number, record in json_records(lines):
        tokens = record.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise Rejected("tokens")
        key = "tags" if "tags" in record else "ner_tags" if "ner_tags" in record else None
        if key is None or not isinstance(record[key], list) or not all(isinstance(t, str) for t in record[key]):
            raise Rejected("tags")
        if len(record[key]) != len(tokens):
            raise Rejected("lengths")
        examples.append([tokens, list(record[key]), number, None])
    if not examples:
        raise Rejected("no records")
    return _token_examples(examples, options)


def _is_cjk(char: str) -> bool:
    return any(low <= ord(char) <= high for low, high in CJK)


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    return (33 <= code <= 126 and not char.isalnum()) or unicodedata.category(char).startswith("P")


def words(text: str) -> list[tuple[int, int]]:
    """Whitespace-separated words, each CJK or punctuation character a word: a character loop."""
    found, start = [], None
    for i, char in enumerate(text):
        alone = not char.isspace() and (_is_cjk(char) or _is_punctuation(char))
        if char.isspace() or alone:
            if start is not None:
                found.append((start, i))
                start = None
            if alone:
                found.append((i, i + 1))
        elif start is None:
            start = i
    if start is not None:
        found.append((start, len(text)))
    return found


def spans_file(lines: list[str], options: dict) -> list[tuple]:
    policy = options.get("overlapping_spans") or "error"
    split = options.get("split_at_spans", False)
    examples = []
    for number, record in json_records(lines):
        text = record.get("text")
        raw = record.get("spans", [])
        if not isinstance(text, str) or not isinstance(raw, list):
            raise Rejected("text or spans")
        spans = []
        for item in raw:
            if isinstance(item, dict):
                item = [item.get("start"), item.get("end"), item.get("label")]
            if not (isinstance(item, list) and len(item) == 3):
                raise Rejected("span shape")
            start, end, label = item
            if not (type(start) is int and type(end) is int and isinstance(label, str) and label):
                raise Rejected("span fields")
            if not (0 <= start < end <= len(text)) or not text[start:end].strip():
                raise Rejected("span range")
            spans.append((start, end, label))
        overlapping = any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])
        if overlapping:
            if policy == "error":
                raise Rejected("overlap")
            order = sorted(range(len(spans)), key=lambda i: (spans[i][0] - spans[i][1], spans[i][0], i)) \
                if policy == "longest" else range(len(spans))
            kept = []
            for i in order:
                if all(spans[i][1] <= k[0] or k[1] <= spans[i][0] for k in kept):
                    kept.append(spans[i])
            spans = kept
        spans = sorted(spans)
        offsets = words(text)
        if split:
            cuts = sorted({b for s in spans for b in s[:2]})
            offsets = [piece for s, e in offsets
                       for piece in zip([s] + [c for c in cuts if s < c < e], [c for c in cuts if s < c < e] + [e])]
        tags = ["O"] * len(offsets)
        for start, end, label in spans:
            inside = [i for i, (s, e) in enumerate(offsets) if s < end and e > start and tags[i] == "O"]
            for j, i in enumerate(inside):
                tags[i] = ("B-" if j == 0 else "I-") + label
        examples.append(([text[s:e] for s, e in offsets], tags, number, None, text, offsets, spans))
    if not examples:
        raise Rejected("no records")
    return examples


# ---------------------------------------------------------------------------------------------- classification


def _csv_rows(lines: list[str], sep: str = ",") -> list[tuple[int, list[str]]]:
    """A CSV parser: a field that starts with a quote is quoted ("" inside is a quote) and must end with a quote
    followed by the separator (a comma) or the end of the line; a quote inside an unquoted field is a character; a CR inside an
    unquoted field is an error unless it ends the line; NUL is an error."""
    text = "".join(line + "\n" for line in lines)
    if "\x00" in text:
        raise Rejected("NUL in CSV")
    rows, i, line = [], 0, 1
    while i < len(text):
        start_line, cells, cell = line, [], []
        quoted, at_start = False, True
        while True:
            if i >= len(text):
                if quoted:
                    raise Rejected("unclosed quote")
                cells.append("".join(cell))
                break
            char = text[i]
            if quoted:
                if char == '"':
                    if text[i + 1:i + 2] == '"':
                        cell.append('"')
                        i += 2
                        continue
                    quoted = False
                    i += 1
                    following = text[i:i + 1]
                    if following not in (sep, "\n", "\r"):
                        raise Rejected("text after a closing quote")
                    continue
                if char == "\n":
                    line += 1
                cell.append(char)
                i += 1
                continue
            if char == '"' and at_start:
                quoted, at_start = True, False
                i += 1
                continue
            at_start = False
            if char == sep:
                cells.append("".join(cell))
                cell, at_start = [], True
                i += 1
                continue
            if char == "\r":
                if text[i + 1:i + 2] != "\n":
                    raise Rejected("CR in an unquoted field")
                i += 1
                continue
            if char == "\n":
                cells.append("".join(cell))
                i += 1
                line += 1
                break
            cell.append(char)
            i += 1
        rows.append((start_line, cells))
    return rows


def delimited(lines: list[str], options: dict, fmt: str) -> list[tuple]:
    if fmt == "csv":
        rows = _csv_rows(lines)
    else:
        rows = [(n, line.split("\t")) for n, line in enumerate(lines, start=1)]
        # CSV-quoted on tabs (pandas): a one-line quoted field with "" inside, and the whole file reads so
        if any(re.fullmatch(r'"([^"]|"")*""([^"]|"")*"', cell) for _, cells in rows for cell in cells):
            try:
                quoted = [(n, cells) for n, cells in _csv_rows(lines, "\t") if any(c.strip() for c in cells)]
            except Rejected:
                quoted = []
            widths = {len(cells) for _, cells in quoted}
            if len(widths) == 1 and min(widths) >= 2:
                rows = quoted
    rows = [(n, cells) for n, cells in rows if any(c.strip() for c in cells)]
    if not rows:
        raise Rejected("no rows")
    widths = {len(cells) for _, cells in rows}
    if len(widths) > 1 or min(widths) < 2:
        raise Rejected("columns")
    width = widths.pop()
    label, text = options["label_column"], options["text_column"]
    if label >= width or text >= width:
        raise Rejected("column index")
    pair = None
    if options["header"]:  # a header may name a text pair column
        names = [cell.strip().lower() for cell in rows[0][1]]
        pair = next((names.index(name) for name in PAIR_NAMES if name in names), None)
        if pair in (label, text):
            raise Rejected("pair column is the label or text column")
    body = rows[1:] if options["header"] else rows
    if not body:
        raise Rejected("header only")
    examples = []
    for number, cells in body:
        if not cells[label].strip():
            raise Rejected("empty label")
        examples.append((cells[text], cells[label].strip(), cells[pair] if pair is not None else None, number))
    return examples


def label_text(lines: list[str], options: dict) -> list[tuple]:
    examples = []
    for number, line in enumerate(lines, start=1):
        fields = line.split(None, 1)
        if not fields:
            continue
        if len(fields) < 2 or not fields[1].strip():
            raise Rejected("label without text")
        examples.append((fields[1].strip(), fields[0], None, number))
    if not examples:
        raise Rejected("no examples")
    return examples


def _key(record: dict, names: tuple[str, ...]) -> str | None:
    lowered = [key.lower() for key in record]
    for name in names:
        if name in lowered:
            return list(record)[lowered.index(name)]
    return None


def text_jsonl(lines: list[str], options: dict) -> list[tuple]:
    examples = []
    for number, record in json_records(lines):
        text_key, label_key, pair_key = (_key(record, TEXT_NAMES), _key(record, LABEL_NAMES),
                                         _key(record, PAIR_NAMES))
        if text_key is None or label_key is None:
            raise Rejected("keys")
        text, label = record[text_key], record[label_key]
        pair = record[pair_key] if pair_key is not None else None
        if not isinstance(text, str) or not (pair is None or isinstance(pair, str)):
            raise Rejected("text not a string")
        if isinstance(label, list):  # multi-label: each item as one label would be; the set, sorted
            if any(item is None or isinstance(item, (list, dict)) or not str(item).strip() for item in label):
                raise Rejected("label in a list")
            examples.append((text, tuple(sorted({str(item).strip() for item in label})), pair, number))
            continue
        if label is None or isinstance(label, dict) or not str(label).strip():
            raise Rejected("label")
        examples.append((text, str(label).strip(), pair, number))
    if not examples:
        raise Rejected("no records")
    if any(isinstance(example[1], tuple) for example in examples):  # a plain label beside lists: a one-label set
        examples = [(t, label if isinstance(label, tuple) else (label,), p, n) for t, label, p, n in examples]
    return examples


def oracle(case: Case) -> list[tuple]:
    """The examples a correct reader returns for the case's bytes (as tuples), or Rejected."""
    lines = decode(case.data, case.options.get("encoding"))
    reader = {"conll": conll, "jsonl": token_jsonl, "spans": spans_file, "label-text": label_text,
              "text-jsonl": text_jsonl, "csv": lambda ls, o: delimited(ls, o, "csv"),
              "tsv": lambda ls, o: delimited(ls, o, "tsv")}[case.fmt]
    return reader(lines, case.options)


def as_tuples(corpus, fmt: str) -> list[tuple]:
    """tunecard's examples in the oracle's shape."""
    if fmt in ("conll", "jsonl"):
        return [(ex.tokens, ex.tags, ex.line, ex.doc_id) for ex in corpus]
    if fmt == "spans":
        return [(ex.tokens, ex.tags, ex.line, ex.doc_id, ex.text, ex.offsets, ex.spans) for ex in corpus]
    return [(ex.text, ex.label if ex.labels is None else tuple(ex.labels), ex.text_pair, ex.line) for ex in corpus]


def same(found: list[tuple], expected: list[tuple], fmt: str) -> bool:
    """Equal, where the oracle left a line open (None: the records of a JSON array)."""
    line = 3 if fmt in ("csv", "tsv", "label-text", "text-jsonl") else 2
    if len(found) != len(expected):
        return False
    for got, want in zip(found, expected):
        if want[line] is None:
            got, want = got[:line] + got[line + 1:], want[:line] + want[line + 1:]
        if got != want:
            return False
    return True


# ---------------------------------------------------------------------------------------------- generators

WORDS = ["EU", "rejects", "German", "call", "New", "York", "Ann", "O'Neil", "U.S.", "naïve", "café", "北京", "東京",
         "Zürich", "x", "1", "(", ")", ",", ".", "e\u0301", "😀", "a-b", "#tag", "@user", "don't", "5.2", "B-", "O"]
TYPES = ["PER", "LOC", "ORG", "MISC", "creative-work", "job title", "人名"]
LABELS = ["pos", "neg", "1", "0", "-1", "very positive", "y", "label"]
TEXTS = ["great movie", "bad, really", 'she said "hi"', "two\nlines", "tab\there", "naïve café", "北京大学", "ok",
         "a,b,c", '""', "x y z", "  spaced  ", "😀 emoji", "1 2 3"]


def _spans_over(rng: random.Random, n: int) -> list[tuple[int, int, str]]:
    spans, position = [], 0
    while position < n:
        if rng.random() < 0.35:
            size = rng.randint(1, min(3, n - position))
            spans.append((position, position + size, rng.choice(TYPES)))
            position += size
        else:
            position += 1
    return spans


def _tags(spans, n: int, scheme: str) -> list[str]:
    """Tags of token spans in a scheme (written here from the scheme table of docs/data-formats.md)."""
    tags = ["O"] * n
    single, middle, last = {"IOB2": ("B", "I", "I"), "IOB1": ("I", "I", "I"), "IOBES": ("S", "I", "E"),
                            "BMES": ("S", "M", "E"), "BILOU": ("U", "I", "L")}[scheme]
    previous_end, previous_type = -1, None
    for start, end, kind in spans:
        if scheme == "IOB1":
            first = "B" if previous_end == start and previous_type == kind else "I"
            for i in range(start, end):
                tags[i] = f"{first if i == start else 'I'}-{kind}"
        elif end - start == 1:
            tags[start] = f"{single}-{kind}"
        else:
            for i in range(start, end):
                prefix = "B" if i == start else last if i == end - 1 else middle
                tags[i] = f"{prefix}-{kind}"
        previous_end, previous_type = end, kind
    return tags


def _iob2(spans, n: int) -> list[str]:
    return _tags(spans, n, "IOB2")


def valid_case(fmt: str, rng: random.Random) -> Case:
    """A valid file of `fmt` and the examples it holds."""
    return {"conll": _valid_conll, "jsonl": _valid_token_jsonl, "spans": _valid_spans, "csv": _valid_csv,
            "tsv": _valid_tsv, "label-text": _valid_label_text, "text-jsonl": _valid_text_jsonl}[fmt](rng)


def _line_end(rng: random.Random) -> str:
    return "\r\n" if rng.random() < 0.15 else "\n"


def _valid_conll(rng: random.Random) -> Case:
    tab = rng.random() < 0.5
    scheme = rng.choice(["IOB2", "IOB1", "IOBES", "BMES", "BILOU"])
    extra = rng.randint(0, 2)
    docstarts = rng.random() < 0.3
    lines, expected, doc = [], [], -1
    for index in range(rng.randint(1, 5)):
        if docstarts and index % 2 == 0:
            lines += [("\t" if tab else " ").join(["-DOCSTART-"] + ["-X-"] * extra + ["O"]), ""]
            doc += 1
        n = rng.randint(1, 6)
        tokens = [rng.choice(WORDS) for _ in range(n)]
        if tab and rng.random() < 0.3:
            tokens[0] = "New York"
        spans = _spans_over(rng, n)
        if not tab:
            spans = [(s, e, kind.replace(" ", "_")) for s, e, kind in spans]
        tags = _tags(spans, n, scheme)
        expected.append((tokens, _iob2(spans, n), len(lines) + 1, doc if docstarts else None))
        separator = "\t" if tab else rng.choice([" ", "  ", " \t"])
        lines += [separator.join([token] + ["NN"] * extra + [tag]) for token, tag in zip(tokens, tags)]
        lines.append(rng.choice(["", "", "\t", "  "]))
    end = _line_end(rng)
    text = end.join(lines) + (end if rng.random() < 0.7 else "")
    options = {"scheme": scheme if rng.random() < 0.5 else None}
    return Case("conll", _encode(rng, text, options), options, expected)


def _encode(rng: random.Random, text: str, options: dict) -> bytes:
    if rng.random() < 0.1:
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    return text.encode("utf-8")


def _json_lines(rng: random.Random, records: list[dict]) -> tuple[str, list[int]]:
    ascii_only = rng.random() < 0.5
    if rng.random() < 0.3:  # a JSON array, one record per line or pretty-printed
        if rng.random() < 0.5:
            body = [json.dumps(r, ensure_ascii=ascii_only) for r in records]
            lines, starts = ["["], []
            for i, item in enumerate(body):
                starts.append(len(lines) + 1)
                lines.append(item + ("," if i < len(body) - 1 else ""))
            lines.append("]")
            return "\n".join(lines) + "\n", starts
        text = json.dumps(records, ensure_ascii=ascii_only, indent=2)
        return text + "\n", []
    lines, starts = [], []
    for record in records:
        if rng.random() < 0.15:
            lines.append("")
        starts.append(len(lines) + 1)
        lines.append(json.dumps(record, ensure_ascii=ascii_only))
    return "\n".join(lines) + "\n", starts


def _valid_token_jsonl(rng: random.Random) -> Case:
    scheme = rng.choice(["IOB2", "IOB1", "IOBES", "BMES", "BILOU"])
    records, expected = [], []
    for _ in range(rng.randint(1, 5)):
        n = rng.randint(0, 6)
        tokens = [rng.choice(WORDS + ["New York", " ", "\u200b"]) for _ in range(n)]
        spans = _spans_over(rng, n)
        records.append({"tokens": tokens, rng.choice(["tags", "ner_tags"]): _tags(spans, n, scheme)})
        expected.append([tokens, _iob2(spans, n), None, None])
    text, starts = _json_lines(rng, records)
    for example, start in zip(expected, starts or [None] * len(expected)):
        example[2] = start
    options = {"scheme": scheme if rng.random() < 0.5 else None}
    return Case("jsonl", _encode(rng, text, options), options, [tuple(e) for e in expected])


SPAN_WORDS = ["Ann", "Lee", "Paris.", "New", "Yorkers", "北京", "大学", "(ETH)", "O'Neil", "U.S.", "café", "😀", "e\u0301",
              "x-y", "#1"]
GAPS = [" ", "  ", "\t", "\u00a0", "\u3000", "\n"]


def _valid_spans(rng: random.Random) -> Case:
    records, truth = [], []
    for _ in range(rng.randint(1, 4)):
        text = "".join(rng.choice(SPAN_WORDS) + rng.choice(GAPS) for _ in range(rng.randint(1, 6))).rstrip()
        solid = [i for i, c in enumerate(text) if not c.isspace()]
        spans, position = [], 0
        for _ in range(rng.randint(0, 3)):
            starts = [i for i in solid if i >= position]
            if not starts:
                break
            start = rng.choice(starts)
            end = rng.choice([i + 1 for i in solid if i >= start])
            spans.append((start, end, rng.choice(TYPES)))
            position = end
        listed = [list(s) if rng.random() < 0.3 else {"start": s[0], "end": s[1], "label": s[2]} for s in spans]
        records.append({"text": text, "spans": listed})
        truth.append((text, spans))
    options = {"split_at_spans": rng.random() < 0.5}
    overlapping = rng.random() < 0.3
    if overlapping:  # nested and overlapping spans added: which are kept is the policy's, as the oracle applies it
        options["overlapping_spans"] = rng.choice(["error", "longest", "first"])
        for record in records:
            solid = [i for i, c in enumerate(record["text"]) if not c.isspace()]
            for _ in range(rng.randint(0, 3)):
                start = rng.choice(solid)
                end = rng.choice([i + 1 for i in solid if i >= start])
                record["spans"].insert(rng.randint(0, len(record["spans"])), [start, end, rng.choice(TYPES)])
    text, _ = _json_lines(rng, records)
    case = Case("spans", _encode(rng, text, options), options)
    case.expected = None if overlapping else truth  # (text, spans): the tokens and tags come from the oracle
    return case


def _csv_field(value: str) -> str:
    if any(c in value for c in ',"\n\r') or value != value.strip(" ") or value.startswith('"'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _valid_csv(rng: random.Random) -> Case:
    label_first = rng.random() < 0.5
    header = rng.random() < 0.5
    rows, expected, line = [], [], 1
    if header:
        rows.append(["label", "text"] if label_first else ["text", "label"])
        line += 1
    for _ in range(rng.randint(1, 5)):
        text, label = rng.choice(TEXTS), rng.choice(LABELS)
        expected.append((text, label, None, line))
        rows.append([label, text] if label_first else [text, label])
        line += 1 + text.count("\n")
    options = {"header": header, "label_column": 0 if label_first else 1, "text_column": 1 if label_first else 0}
    data = "".join(",".join(_csv_field(c) for c in row) + "\n" for row in rows)
    return Case("csv", _encode(rng, data, options), options, expected)


def _valid_tsv(rng: random.Random) -> Case:
    header = rng.random() < 0.5
    rows, expected = [], []
    if header:
        rows.append("sentence\tlabel")
    for _ in range(rng.randint(1, 5)):
        text = rng.choice([t for t in TEXTS if "\t" not in t and "\n" not in t])
        label = rng.choice(LABELS)
        expected.append((text, label, None, len(rows) + 1))
        rows.append(f"{text}\t{label}")
    options = {"header": header, "label_column": 1, "text_column": 0}
    return Case("tsv", _encode(rng, "\n".join(rows) + "\n", options), options, expected)


def _valid_label_text(rng: random.Random) -> Case:
    lines, expected = [], []
    for _ in range(rng.randint(1, 5)):
        if rng.random() < 0.2:
            lines.append("")
        label = rng.choice([label for label in LABELS if " " not in label])
        text = rng.choice([t.strip() for t in TEXTS if "\n" not in t and "\t" not in t])
        lines.append(f"{label}{rng.choice([' ', '  ', chr(9)])}{text}")
        expected.append((text, label, None, len(lines)))
    return Case("label-text", _encode(rng, "\n".join(lines) + "\n", {}), {}, expected)


def _valid_text_jsonl(rng: random.Random) -> Case:
    records, expected = [], []
    for _ in range(rng.randint(1, 5)):
        text = rng.choice(TEXTS)
        label = rng.choice(LABELS + [0, 1, 7])
        record = {rng.choice(["text", "sentence", "Text"]): text, "label": label}
        pair = None
        if rng.random() < 0.2:
            pair = rng.choice(TEXTS)
            record["text_pair"] = pair
        records.append(record)
        expected.append([text, str(label).strip(), pair, None])
    data, starts = _json_lines(rng, records)
    for example, start in zip(expected, starts or [None] * len(expected)):
        example[3] = start
    return Case("text-jsonl", _encode(rng, data, {}), {}, [tuple(e) for e in expected])


# ---------------------------------------------------------------------------------------------- mutations

FRAGMENTS = (
    "\n", "\r\n", "\r", "\n\n", "\t", " ", "   ", "\ufeff", "\u200b", "\u00a0", "\x85", "\u2028", "\x0c", "é", "人名",
    "😀", "-DOCSTART-", "-DOCSTART- -X- O\n", "EU\tB-ORG\n", "rejects O\n", "New York\tI-LOC\n", "B-PER", "I-PER",
    "E-PER", "S-LOC", "B-", "X-PER", "O", "B-job title", "0", "1", "-1", '"', '""', ",", "\\", "{", "}", "[", "]",
    ":", "null", "true", "1e999", "NaN", '"tokens"', '"tags"', '"ner_tags"', '"text"', '"spans"', '"label"',
    '"start"', '"end"', "\\ud800", "\\udc00", "\\ud83d\\ude00", '"\\ud800"', "[" * 120, "]" * 120, "{" * 3,
    '{"tokens": ["a"], "tags": ["O"]}\n', '{"text": "Ann", "spans": [[0, 3, "PER"]]}\n',
    '{"text": "ok", "label": "pos"}\n', "[1, 2]\n", '"quoted, field"', '"multi\nline"', "pos great film\n",
    "neg\tawful\n", "word", "  \t", "\t\t", "],\n[", ",\n", "}\n{",
)


JSON_VALUES = (None, True, 0, 1, -1, 3, 99, 1.5, float("inf"), float("nan"), "", " ", "O", "B-PER", "I-PER", "E-X",
               "B-", "X-PER", "人名", "\u200b", "a b", "\ud800", "x\udfffy", "\U0001F600", [], {}, ["O"], ["a", "b"],
               [0, 1], {"start": 0}, [[0, 1, "X"]], [0, 3, "PER"], [[]] * 3, "B-PER I-PER")
JSON_KEYS = ("tokens", "tags", "ner_tags", "text", "spans", "label", "start", "end", "sentence", "text_pair", "Label",
             "labels", "y")


def _deep(level: int):
    value: object = "x"
    for _ in range(level):
        value = [value]
    return value


def mutate_json(case: Case, rng: random.Random) -> Case:
    """Valid JSON with hostile content: values replaced, deleted or added anywhere in the records (lone
    surrogates, nesting 100 and 101 levels deep, wrong types), written as JSON Lines or one array."""
    lines = case.data.decode("utf-8-sig").strip().split("\n")
    first = lines[0].lstrip()
    records = json.loads("\n".join(lines)) if first.startswith("[") else [json.loads(x) for x in lines if x.strip()]
    for _ in range(rng.randint(1, 3)):
        paths = []
        pending = [((), records)]
        while pending:
            where, node = pending.pop()
            paths.append((where, node))
            children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
            pending.extend(((*where, key), child) for key, child in children)
        where, node = rng.choice(paths)
        value = rng.choice(JSON_VALUES) if rng.random() < 0.9 else _deep(rng.choice([99, 100, 101, 150]))
        op = rng.random()
        if where and op < 0.5:
            parent = records
            for step in where[:-1]:
                parent = parent[step]
            parent[where[-1]] = json.loads(json.dumps(value))
        elif where and op < 0.7:
            parent = records
            for step in where[:-1]:
                parent = parent[step]
            del parent[where[-1]]
        elif isinstance(node, list):
            node.append(json.loads(json.dumps(value)))
        elif isinstance(node, dict):
            node[rng.choice(JSON_KEYS)] = json.loads(json.dumps(value))
    if not isinstance(records, list):
        records = [records]
    text, _ = _json_lines(rng, records) if records else ("[]\n", [])
    options = dict(case.options)
    if case.fmt == "jsonl":
        options["scheme"] = "IOB2"
    if case.fmt == "spans":
        options["overlapping_spans"] = rng.choice(["error", "longest", "first"])
    # A lone surrogate written raw is not UTF-8: written as the JSON escape \\ud800 instead.
    return Case(case.fmt, text.encode("utf-8", errors="backslashreplace"), options)


def mutate(case: Case, rng: random.Random) -> Case:
    """The case's file with 1-4 edits: fragments inserted, replaced or deleted, lines dropped, doubled or swapped,
    spaces added at a line's end; sometimes a BOM, CRLF, or Latin-1 bytes with the encoding given."""
    try:
        text = case.data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = case.data.decode("latin-1")
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        position = rng.randint(0, len(text))
        if op < 0.35:
            text = text[:position] + rng.choice(FRAGMENTS) + text[position:]
        elif op < 0.5:
            text = text[:position] + text[position + rng.randint(1, 8):]
        elif op < 0.65:
            fragment = rng.choice(FRAGMENTS)
            text = text[:position] + fragment + text[position + len(fragment):]
        else:
            lines = text.split("\n")
            i = rng.randrange(len(lines))
            choice = rng.random()
            if choice < 0.25:
                del lines[i]
            elif choice < 0.5:
                lines.insert(i, lines[i])
            elif choice < 0.75:
                j = rng.randrange(len(lines))
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines[i] += rng.choice([" ", "  ", "\t", " \t"])
            text = "\n".join(lines)
    options = dict(case.options)
    if case.fmt in ("conll", "jsonl"):
        options["scheme"] = "IOB2"  # exact: no detection to guess
    if case.fmt == "spans":
        options["overlapping_spans"] = rng.choice(["error", "longest", "first"])
    roll = rng.random()
    if roll < 0.08:
        data = b"\xef\xbb\xbf" + text.encode("utf-8")
    elif roll < 0.14:
        options["encoding"] = "latin-1"
        data = text.encode("latin-1", errors="replace")
    elif roll < 0.18:
        data = text.replace("\n", "\r\n").encode("utf-8")
    else:
        data = text.encode("utf-8")
    return Case(case.fmt, data, options)


def cases(fmt: str, n: int, seed: int):
    """n cases for one reader from one seed: every third a valid file, the others mutations of one (for JSON
    formats, half of them structural: valid JSON with hostile values)."""
    rng = random.Random(f"{seed}:{fmt}")
    for index in range(n):
        valid = valid_case(fmt, rng)
        if index % 3 == 0:
            yield index, valid
        elif fmt in ("jsonl", "spans", "text-jsonl") and index % 3 == 1:
            yield index, mutate_json(valid, rng)
        else:
            yield index, mutate(valid, rng)


# ---------------------------------------------------------------------------------------------- the check

LINE_CODES = {"E101", "E102", "E104", "E105", "E109", "E110", "E111"}


def check_case(case: Case, path, stream: bool = True) -> tuple[str, str | None]:
    """Read the case with tunecard and hold it to the oracle. Returns (outcome, problem): the outcome is
    "valid file read" (a generated file round-tripped), "mutated file read" or the code tunecard refused a file
    with; the problem is None when tunecard and the oracle agree, else what went wrong."""
    from tunecard.data import ReadOptions, read_corpus, stream_corpus
    from tunecard.errors import DataError

    path.write_bytes(case.data)
    options = ReadOptions(format=case.fmt, **case.options)
    try:
        expected, verdict = oracle(case), None
    except Rejected as why:
        expected, verdict = None, str(why)
    if case.expected is not None and verdict is not None:
        return "oracle", f"the oracle rejects a valid generated file ({verdict})"
    try:
        corpus = read_corpus(path, options)
    except DataError as error:
        outcome = f"refused with {error.code}"
        if expected is not None:
            return outcome, f"tunecard refused a file the oracle reads: {error}"
        n_lines = case.data.count(b"\n") + case.data.count(b"\r") + 1
        if error.path != str(path) or not error.fix or not error.code.startswith("E1"):
            return outcome, f"an error without its file, fix or data code: {error}"
        if error.line is not None and not 1 <= error.line <= n_lines:
            return outcome, f"an error on a line the file does not have: {error}"
        if error.code in LINE_CODES and error.line is None and "column" not in error.message:
            return outcome, f"an error on one line that names none: {error}"
        return outcome, None
    except Exception as error:  # noqa: BLE001 - anything else is a reader bug
        return "traceback", f"a traceback: {type(error).__name__}: {error}"
    outcome = "valid file read" if case.expected is not None else "file read"
    if expected is None:
        return outcome, f"tunecard read a file the oracle rejects ({verdict}): {len(corpus)} examples"
    found = as_tuples(corpus.examples, case.fmt)
    if case.expected is not None:
        truth = ([(ex.text, ex.spans) for ex in corpus.examples] if case.fmt == "spans" else found)
        wanted = case.expected if case.fmt != "spans" else [(t, sorted(s)) for t, s in case.expected]
        if case.fmt == "spans" and truth != wanted or case.fmt != "spans" and not same(truth, wanted, case.fmt):
            return outcome, f"a valid file did not round-trip: {truth!r} != {wanted!r}"
    exact = case.fmt not in ("conll", "jsonl") or case.options.get("scheme") == "IOB2"
    if exact and not same(found, expected, case.fmt):
        return outcome, f"tunecard's examples differ from the oracle's: {found!r} != {expected!r}"
    if stream:
        streamed = stream_corpus(path, options)
        if as_tuples(list(streamed), case.fmt) != found or streamed.all_warnings != corpus.warnings:
            return outcome, "the streamed read differs from the whole read"
    return outcome, None


def run(fmt: str, n: int, seed: int, folder, stream_every: int = 8) -> tuple[dict, list[str]]:
    """n cases for one reader: (outcome counts, failures with their case number and file). Every
    `stream_every`-th case is also read streamed and compared with the whole read."""
    from collections import Counter

    outcomes: Counter[str] = Counter()
    failures = []
    path = folder / f"fuzz-{fmt}.txt"
    for index, case in cases(fmt, n, seed):
        outcome, problem = check_case(case, path, stream=index % stream_every == 0)
        outcomes[outcome] += 1
        if problem:
            failures.append(f"{fmt} case {index} (seed {seed}) {case.options} {case.data[:300]!r}: {problem}")
    return dict(outcomes), failures
