"""Model folders load only from safetensors; a folder without weights or with pickle only is refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import transformers

from tunecard.encoding.models import load_model, own_weights
from tunecard.errors import ModelError


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


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's memory map")
def test_loaded_weights_live_in_process_memory_not_in_the_file(tiny_bert_cased, tmp_path):
    """safetensors maps the weights file privately; the first optimizer step would then copy every page it writes
    on a fault. The loaded model's tensors are copies: the file is no longer mapped, tied weights stay tied."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert_cased, folder)
    model = load_model(str(folder), "token-classification", {0: "O", 1: "B-X"})
    weights = str((folder / "model.safetensors").resolve())
    assert weights not in Path("/proc/self/maps").read_text()
    values = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    (folder / "model.safetensors").write_bytes(b"\0" * (folder / "model.safetensors").stat().st_size)
    assert all(torch.equal(tensor, values[name]) for name, tensor in model.state_dict().items())

    tied = transformers.AutoModelForMaskedLM.from_config(transformers.BertConfig(
        vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32))
    assert own_weights(tied).cls.predictions.decoder.weight is tied.bert.embeddings.word_embeddings.weight
