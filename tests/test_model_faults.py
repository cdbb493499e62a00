"""Model folders and tokenizers a user can get wrong (issue 29, item 5): each is a coded error or a warning,
never a silent run on a tokenizer that reads every word as unknown, nor a network error for a path typo."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from conftest import quick_ner_values
from rich.console import Console
from typer.testing import CliRunner

from tunecard.cli import app
from tunecard.config import TrainConfig
from tunecard.encoding.models import load_model, load_tokenizer, unknown_words
from tunecard.errors import ModelError
from tunecard.pipeline import train

runner = CliRunner()


def _without_tokenizer(model: Path, folder: Path) -> Path:
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):  # what model.save_pretrained alone writes
        shutil.copy(model / name, folder / name)
    return folder


def test_folder_without_tokenizer_files_is_E305_not_a_five_entry_tokenizer(tiny_bert_cased, tmp_path):
    folder = _without_tokenizer(tiny_bert_cased, tmp_path / "model-only")
    with pytest.raises(ModelError) as caught:
        load_tokenizer(str(folder))
    assert caught.value.code == "E305" and caught.value.path == str(folder)
    assert "no tokenizer files" in caught.value.message and "save_pretrained" in caught.value.fix


def test_training_on_a_folder_without_tokenizer_stops_before_training(tiny_bert_cased, tmp_path):
    folder = _without_tokenizer(tiny_bert_cased, tmp_path / "model-only")
    config = TrainConfig(**quick_ner_values(folder, tmp_path))
    with pytest.raises(ModelError) as caught:
        train(config, progress=False)
    assert caught.value.code == "E305"
    assert not (tmp_path / "run").exists()


def test_an_empty_vocabulary_is_E305(tiny_bert_cased, tmp_path):
    folder = _without_tokenizer(tiny_bert_cased, tmp_path / "empty-vocab")
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", encoding="utf-8")
    with pytest.raises(ModelError) as caught:
        load_tokenizer(str(folder))
    assert caught.value.code == "E305" and "no vocabulary" in caught.value.message


@pytest.mark.parametrize("name", ["./bad/dir", "../bad/dir", "/no/such/model", "~/no-such-model-dir", "a/b/c"])
def test_a_path_typo_is_folder_not_found_not_a_hub_error(name):
    for load in (lambda: load_tokenizer(name), lambda: load_model(name, "token-classification", {0: "O"})):
        with pytest.raises(ModelError) as caught:
            load()
        assert caught.value.code == "E308" and caught.value.path == name
        assert "model folder not found" in caught.value.message and "Hub" not in caught.value.message


def test_a_hub_id_that_cannot_load_is_still_a_hub_error():
    with pytest.raises(ModelError) as caught:
        load_tokenizer("no-such-org/no-such-model")  # offline in the tests
    assert caught.value.code == "E304" and "no local folder by that name" in caught.value.message


def test_cli_reports_a_path_typo_as_E308(tmp_path):
    train_file = tmp_path / "train.conll"
    train_file.write_text("Ann B-PER\nsings O\n", encoding="utf-8")
    result = runner.invoke(app, ["train", "--train", str(train_file), "--model", "./bad/dir",
                                 "--output", str(tmp_path / "run")])
    assert isinstance(result.exception, ModelError) and result.exception.code == "E308", result.output


def test_unknown_word_share_counts_words_and_names_the_frequent_ones(tiny_bert_cased):
    tokenizer = load_tokenizer(str(tiny_bert_cased))
    report = unknown_words(tokenizer, [["EU", "ᎠᎡ", "rejects", "ᎠᎡ"], ["ትግ", "Zürich", "\u200b"]])
    assert report == {"words": 7, "unknown": 3, "share": round(3 / 7, 4), "examples": ["ᎠᎡ", "ትግ"]}


def test_data_mostly_unknown_to_the_tokenizer_is_warned_on_console_metrics_and_card(tiny_bert_cased, tmp_path):
    # 3 of 10 words per sentence in a script the vocabulary lacks: 30 % of the words read as [UNK].
    sentence = "ᎠᎡ O\nEU B-ORG\nrejects O\nᎣᎤ O\nGerman B-MISC\ncall O\nትግ O\nto O\nboycott O\nlamb O\n"
    train_file = tmp_path / "train.conll"
    train_file.write_text("\n".join([sentence] * 8), encoding="utf-8")
    values = {**quick_ner_values(tiny_bert_cased, tmp_path), "train": str(train_file), "max_steps": 1}
    output = io.StringIO()
    result = train(TrainConfig(**values), progress=False, console=Console(file=output, width=400))
    text = output.getvalue()
    assert "30.0% of the words (24 of 80) are unknown to the tokenizer" in text and "'ᎠᎡ'" in text
    data = json.loads((result.output / "metrics.json").read_text(encoding="utf-8"))["data"]["train"]
    assert data["encoding"]["unknown_to_tokenizer"]["share"] == 0.3
    assert any("unknown to the tokenizer" in warning for warning in data["warnings"])
    card = (result.output / "README.md").read_text(encoding="utf-8")
    assert "**Warning (train):** 30.0% of the words" in card


def test_data_the_tokenizer_knows_gets_no_warning(tiny_bert_cased, tmp_path):
    result = train(TrainConfig(**quick_ner_values(tiny_bert_cased, tmp_path, max_steps=1)), progress=False)
    data = result.metrics["data"]["train"]
    assert data["encoding"]["unknown_to_tokenizer"]["share"] < 0.05
    assert not any("unknown to the tokenizer" in warning for warning in data["warnings"])
    assert "unknown to the tokenizer" not in (result.output / "README.md").read_text(encoding="utf-8")


def test_texts_are_split_into_words_as_the_tokenizer_splits_them(tiny_bert_cased, tmp_path):
    from tunecard.data import read_corpus
    from tunecard.encoding.models import corpus_words, note_unknown_words

    tokenizer = load_tokenizer(str(tiny_bert_cased))
    path = tmp_path / "train.csv"
    path.write_text("text,label\n\"ᎠᎡ, great movie!\",pos\nbad plot ትግ,neg\n", encoding="utf-8")
    corpus = read_corpus(path)
    assert list(corpus_words(tokenizer, corpus)) == [["ᎠᎡ", ",", "great", "movie", "!"], ["bad", "plot", "ትግ"]]
    report, warning = note_unknown_words(tokenizer, corpus)
    assert (report["words"], report["unknown"]) == (8, 2) and warning in corpus.warnings
