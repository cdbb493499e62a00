"""Load encoders and tokenizers from a hub id or a local folder, safely.

Weights load from safetensors only: a folder that holds only pickle checkpoints (`pytorch_model.bin`, `.pt`)
is refused unless the user says they trust it, because unpickling can run arbitrary code.
"""

from __future__ import annotations

from pathlib import Path

from tunecard.errors import ModelError

# Model types whose BPE tokenizers need a leading space to tokenize pre-split words like running text.
PREFIX_SPACE_MODEL_TYPES = {"roberta", "xlm-roberta", "longformer", "bart", "gpt2", "deberta", "mpnet", "camembert"}
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth")


def check_model_folder(path: Path, trust_pickle: bool = False) -> None:
    """Refuse folders without weights, and pickle-only folders unless trusted."""
    if not (path / "config.json").is_file():
        raise ModelError("E301", "model folder has no config.json.", path=path,
                         fix="point --model at a folder written by save_pretrained, or a hub id.")
    has_safetensors = any(path.glob("*.safetensors")) or (path / "model.safetensors.index.json").is_file()
    has_pickle = any((path / name).exists() for name in PICKLE_WEIGHTS)
    if has_safetensors:
        return
    if has_pickle and not trust_pickle:
        raise ModelError("E302", "model folder has only pickle weights (pytorch_model.bin); loading them can run "
                         "arbitrary code.", path=path,
                         fix="convert to safetensors (model.save_pretrained(dir)) or pass --trust-pickle if you "
                         "trust the source.")
    if not has_pickle:
        raise ModelError("E303", "model folder has a config but no weights (*.safetensors).", path=path,
                         fix="copy the weights into the folder, or use a hub id.")


def _hub_error(name: str, exc: Exception) -> ModelError:
    return ModelError("E304", f"cannot load {name!r} from the Hugging Face Hub ({type(exc).__name__}: "
                      f"{str(exc).splitlines()[0][:200]}).",
                      fix="check the id and your connection, or pass a local folder (offline: HF_HUB_OFFLINE=1 "
                      "with the model in the cache).")


def load_tokenizer(name: str):
    from transformers import AutoConfig, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(name)
        kwargs = {"add_prefix_space": True} if config.model_type in PREFIX_SPACE_MODEL_TYPES else {}
        return AutoTokenizer.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        if Path(name).exists():
            raise ModelError("E305", f"cannot load a tokenizer from this folder: {exc}", path=name,
                             fix="the folder needs tokenizer.json or the tokenizer's vocabulary files.") from None
        raise _hub_error(name, exc) from None


def load_model(name: str, task: str, id2label: dict[int, str] | None = None, trust_pickle: bool = False):
    """Load a classification model; with `id2label`, a fresh head sized for these labels.

    Args:
        name: hub id or local folder.
        task: "token-classification" or "text-classification".
        id2label: the label map for fine-tuning (None: keep the folder's own head, for inference).
        trust_pickle: allow pickle weights in a local folder.
    """
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    path = Path(name)
    if path.exists():
        check_model_folder(path, trust_pickle)
    cls = AutoModelForTokenClassification if task == "token-classification" else AutoModelForSequenceClassification
    kwargs: dict = {"use_safetensors": not trust_pickle}
    if id2label is not None:
        kwargs.update(
            num_labels=len(id2label),
            id2label=dict(id2label),
            label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=True,  # a base model's own head (if any) is replaced by ours
        )
    try:
        model = cls.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as exc:
        if path.exists():
            raise ModelError("E306", f"cannot load the model: {exc}", path=path) from None
        raise _hub_error(name, exc) from None
    return own_weights(model)


def own_weights(model):
    """Copy the parameters and buffers out of the weights file into the process's own memory.

    safetensors maps the file privately, so the first write to each page of a weight (the first optimizer step)
    copies that page on a fault: 299 ms for MiniLM's 90 MB on the AMX Xeon (23,500 faults), against 26 ms for
    copying the tensors here. The weights then also no longer depend on the file staying as it was. Tied weights
    stay tied: each parameter object is copied once and keeps its identity."""
    import torch

    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.data = tensor.data.clone()
    return model
