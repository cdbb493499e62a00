"""Model folders load only from safetensors; a folder without weights or with pickle only is refused clearly."""

from __future__ import annotations

import shutil

import pytest

from tunecard.errors import ModelError
from tunecard.modeling import load_model


def test_folder_without_weights_is_refused(tiny_bert_cased, tmp_path):
    folder = tmp_path / "no-weights"
    shutil.copytree(tiny_bert_cased, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError) as error:
        load_model(str(folder), "token-classification", {0: "O", 1: "B-X", 2: "I-X"})
    assert error.value.code == "E303" and str(folder) in str(error.value)


def test_pickle_only_folder_is_refused_without_trust(tiny_bert_cased, tmp_path):
    folder = tmp_path / "pickle"
    shutil.copytree(tiny_bert_cased, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")  # name alone decides: never unpickled
    with pytest.raises(ModelError) as error:
        load_model(str(folder), "token-classification", {0: "O"})
    assert error.value.code == "E302" and "--trust-pickle" in error.value.fix


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelError) as error:
        load_model(str(tmp_path), "text-classification", {0: "a", 1: "b"})
    assert error.value.code == "E301"
