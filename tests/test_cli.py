"""The command line: thin wrappers that print what the library computes, and clear errors with exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import WNUT_SAMPLE
from typer.testing import CliRunner

from tunecard.cli import app

runner = CliRunner()


def test_data_stats_json_counts_the_sample():
    result = runner.invoke(app, ["data", "stats", str(WNUT_SAMPLE / "train.conll"), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["examples"] == 1500
    assert stats["entities"]["person"] == 320


def test_bad_input_exits_2_with_file_line_and_fix(tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("0 caf\xe9 ?\n1 ok ?\n".encode("latin-1"))
    done = subprocess.run([sys.executable, "-m", "tunecard", "data", "stats", str(bad)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert "[E101]" in message and f"{bad}:1" in message and "--encoding" in message


def test_train_predict_evaluate_from_the_command_line(tiny_bert_cased, tmp_path):
    output = tmp_path / "run"
    args = ["train", "--task", "ner", "--model", str(tiny_bert_cased), "--train", str(WNUT_SAMPLE / "train.conll"),
            "--validation", str(WNUT_SAMPLE / "dev.conll"), "--output", str(output), "--epochs", "1",
            "--precision", "fp32", "--quiet", "--set", "max_train_examples=64", "--set", "max_eval_examples=32"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (output / "README.md").is_file()

    result = runner.invoke(app, ["predict", str(output), "--text", "Taylor Swift sings in Seattle ."])
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout.strip().splitlines()[0])
    assert line["text"] == "Taylor Swift sings in Seattle ." and isinstance(line["entities"], list)

    many = tmp_path / "many.txt"
    many.write_text("\n".join(f"Line {i} mentions Seattle ." for i in range(1500)) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["predict", str(output), "--file", str(many)])
    assert result.exit_code == 0, result.output
    printed = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [p["text"] for p in printed] == [f"Line {i} mentions Seattle ." for i in range(1500)]  # order kept across chunks

    result = runner.invoke(app, ["evaluate", str(output), "--data", str(WNUT_SAMPLE / "dev.conll"), "--json"])
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["sentences"] == 400 and 0.0 <= scores["f1"] <= 1.0


def test_every_public_name_resolves_even_after_its_submodule_is_imported():
    import tunecard
    import tunecard.pipeline
    import tunecard.search

    for name in tunecard.__all__:
        assert getattr(tunecard, name) is not None, name
    from tunecard import train
    from tunecard.search import search

    assert callable(train) and callable(search) and train.__module__ == "tunecard.pipeline"
    with pytest.raises(AttributeError):
        tunecard.no_such_name
