"""`tunecard predict` as a pipeline worker (each stdin line answered as it arrives), its --encoding, coded errors
for undecodable input; `tunecard --version`; train's --max-steps and column flags."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading

import pytest
import yaml
from conftest import saved_classifier
from typer.testing import CliRunner

from tunecard.cli import app

runner = CliRunner()
LATIN1 = "Angela Merkel visited Paris .\nLe caf\xe9 de Z\xfcrich .\nlast line\n".encode("latin-1")


@pytest.fixture(scope="module")
def ner_folder(tiny_bert_cased, tmp_path_factory):
    return saved_classifier(tiny_bert_cased, tmp_path_factory.mktemp("stream-ner"), True,
                            ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])


def _tunecard(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunecard", *args], input=stdin, capture_output=True, timeout=300)


def test_undecodable_file_and_stdin_get_a_coded_error_naming_line_and_fix(ner_folder, tmp_path):
    data = tmp_path / "latin1.txt"
    data.write_bytes(LATIN1)
    done = _tunecard("predict", str(ner_folder), "--file", str(data))  # the real command: exit status, stderr
    message = " ".join(done.stderr.decode().split())
    assert done.returncode == 2 and "Traceback" not in message, message
    assert f"[E101] {data}:2: not valid utf-8: byte 0xe9 at byte offset 36 (line 2, byte 7 of the line)" in message
    assert "--encoding latin-1" in message
    # the line before the bad one was answered first: nothing is dropped silently before the error
    assert [json.loads(line)["text"] for line in done.stdout.decode().splitlines()] == ["Angela Merkel visited Paris ."]

    result = runner.invoke(app, ["predict", str(ner_folder)], input=LATIN1)  # the same bytes on stdin
    assert str(result.exception).startswith("[E101] <stdin>:2: not valid utf-8: byte 0xe9")
    assert "--encoding latin-1" in str(result.exception)
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["Angela Merkel visited Paris ."]


@pytest.mark.parametrize("read_size", [1, 2, 3, 7, 1 << 16])
@pytest.mark.parametrize(("data", "encoding"), [
    ("a\nb\r\n\nlast without newline".encode(), None),
    (b"\xef\xbb\xbfBOM first\nsecond\n", None),
    ("caf\xe9\nZ\xfcrich\n".encode("latin-1"), "latin-1"),
    ("\u5317\u4eac\n\u4e0a\u6d77\n".encode("gb18030"), "gb18030"),
    ("one\ntwo \xe9\n".encode("utf-16"), "utf-16"),
    (b"ok\n\xe4\xb8\xad ok\nbad \xe9 here\nnever read\n", None),
    (b"\xef\xbb\xbfok\n\xff\n", None),
    (b"ok\ncut \xe4\xb8", None),
])
def test_line_groups_match_decoding_the_whole_input(data, encoding, read_size):
    """Whatever the reads return, the lines are those of the whole input decoded at once; an undecodable byte is
    reported at the offset and line that decoding the whole input finds, after every line before it."""
    import codecs
    import io

    from tunecard.data.lines import line_groups
    from tunecard.errors import DataError

    stream = io.BytesIO(data)
    got, error = [], None
    try:
        for group in line_groups(lambda n: stream.read(min(n, read_size)), "<stdin>", encoding, max_lines=2):
            assert 1 <= len(group) <= 2
            got.extend(group)
    except DataError as raised:
        error = raised
    bom = encoding is None and data.startswith(codecs.BOM_UTF8)  # dropped by default, counted in offsets
    body, codec = (data[3:] if bom else data), encoding or "utf-8"
    try:
        lines = body.decode(codec).split("\n")
    except UnicodeDecodeError as expected:
        line = body[:expected.start].count(b"\n") + 1
        assert error is not None and error.code == "E101" and error.line == line
        assert f"byte offset {expected.start + 3 * bom} (line {line}," in error.message
        assert got == body[:expected.start].decode(codec).split("\n")[:line - 1]
        return
    if lines[-1] == "":
        lines.pop()
    assert error is None and got == [line.removesuffix("\r") for line in lines]


def test_encoding_option_reads_the_file_and_stdin(ner_folder, tmp_path):
    data = tmp_path / "latin1.txt"
    data.write_bytes(LATIN1)
    expected = ["Angela Merkel visited Paris .", "Le caf\xe9 de Z\xfcrich .", "last line"]
    from_file = runner.invoke(app, ["predict", str(ner_folder), "--file", str(data), "--encoding", "latin-1"])
    from_stdin = runner.invoke(app, ["predict", str(ner_folder), "--encoding", "latin-1"], input=LATIN1)
    for result in (from_file, from_stdin):
        assert result.exit_code == 0, result.output
        printed = [json.loads(line) for line in result.stdout.splitlines()]
        assert [p["text"] for p in printed] == expected and all(isinstance(p["entities"], list) for p in printed)
    unknown = runner.invoke(app, ["predict", str(ner_folder), "--encoding", "latin-7x"], input=b"x\n")
    assert unknown.exception is not None and "[E101]" in str(unknown.exception)


def test_each_stdin_line_is_answered_before_the_next_arrives(ner_folder):
    process = subprocess.Popen([sys.executable, "-m", "tunecard", "predict", str(ner_folder)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    answers: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [answers.put(line) for line in process.stdout], daemon=True).start()
    try:
        for text in ("Taylor Swift sings in Seattle .", "Angela Merkel visited Paris .", "caf\xe9 \u5317\u4eac"):
            process.stdin.write(text.encode("utf-8") + b"\n")
            process.stdin.flush()  # stdin stays open: an answer can only come from a line read as it arrived
            answer = json.loads(answers.get(timeout=180))
            assert answer["text"] == text and isinstance(answer["entities"], list)
        process.stdin.close()
        assert process.wait(60) == 0
        assert answers.empty()
    finally:
        if process.poll() is None:
            process.kill()


def test_version():
    import tunecard

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"tunecard {tunecard.__version__}"


def test_train_column_flags_and_max_steps(tiny_bert_cased, tmp_path):
    data = tmp_path / "reviews.jsonl"
    rows = [{"id": i, "body": text, "stars": label} for i, (text, label) in
            enumerate([("loved it", "pos"), ("dull and slow", "neg"), ("great cast", "pos"), ("no plot", "neg")] * 4)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    base = ["train", "--task", "text-classification", "--model", str(tiny_bert_cased), "--train", str(data),
            "--precision", "fp32", "--quiet", "--set", "save_strategy=no"]
    without = runner.invoke(app, [*base, "--output", str(tmp_path / "a")])
    assert "[E108]" in str(without.exception) and "--text-column" in str(without.exception)  # the flag it names...
    result = runner.invoke(app, [*base, "--output", str(tmp_path / "b"), "--text-column", "body", "--label-column",
                                 "stars", "--max-steps", "2"])
    assert result.exit_code == 0, result.output  # ...exists and works
    history = json.loads((tmp_path / "b" / "history.json").read_text(encoding="utf-8"))
    assert [row["step"] for row in history["steps"]] == [1, 2]  # 16 examples at batch 16 for 3 epochs: 3 steps
    config = yaml.safe_load((tmp_path / "b" / "train_config.yaml").read_text(encoding="utf-8"))
    assert (config["max_steps"], config["text_column"], config["label_column"]) == (2, "body", "stars")
    labels = json.loads((tmp_path / "b" / "config.json").read_text(encoding="utf-8"))["id2label"]
    assert sorted(labels.values()) == ["neg", "pos"]


def test_train_tag_column(tiny_bert_cased, tmp_path):
    # token, NER tag, chunk tag: the default (the last column) would train on the chunks
    data = tmp_path / "three-columns.conll"
    sentence = [("Angela", "B-PER", "B-NP"), ("Merkel", "I-PER", "I-NP"), ("visited", "O", "B-VP"),
                ("Paris", "B-LOC", "B-NP"), (".", "O", "O")]
    data.write_text(("\n".join(" ".join(row) for row in sentence) + "\n\n") * 8, encoding="utf-8")
    result = runner.invoke(app, ["train", "--task", "ner", "--model", str(tiny_bert_cased), "--train", str(data),
                                 "--output", str(tmp_path / "run"), "--tag-column", "1", "--max-steps", "1",
                                 "--precision", "fp32", "--quiet", "--set", "save_strategy=no"])
    assert result.exit_code == 0, result.output
    labels = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))["id2label"]
    assert {"B-PER", "I-PER", "B-LOC", "O"} <= set(labels.values())  # column 1's tags (I-LOC may be added)
    assert not any(label.endswith(("NP", "VP")) for label in labels.values())  # none of the chunk column's
