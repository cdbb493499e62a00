"""Load encoders and tokenizers from a hub id or a local folder, safely.

Weights load from safetensors only: a folder that holds only pickle checkpoints (`pytorch_model.bin`, `.pt`)
is refused unless the user says they trust it, because unpickling can run arbitrary code.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tunecard.config import looks_like_path
from tunecard.errors import ModelError

PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "model.pth")
# Files that hold a tokenizer's vocabulary (fast tokenizer.json; WordPiece, BPE, SentencePiece files). Without
# any of them transformers builds a tokenizer of the special tokens alone, which reads every word as unknown.
VOCABULARY_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                    "sentencepiece.bpe.model", "tokenizer.model", "sentencepiece.model", "spm.model", "source.spm",
                    "bpe.codes", "vocab.model")
# A data split whose words the tokenizer reads as its unknown token more often than this is warned about.
UNKNOWN_WORDS_WARNING = 0.05
UNKNOWN_WORDS_COUNTED = 100_000  # words looked at per split (enough for the share; bounded time)


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
    return ModelError("E304", f"cannot load {name!r} from the Hugging Face Hub, and there is no local folder by "
                      f"that name ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}).",
                      fix="check the id and your connection, or pass a local folder (offline: HF_HUB_OFFLINE=1 "
                      "with the model in the cache).")


def check_model_exists(name: str) -> None:
    """A name written as a local path (./x, ../x, /x, ~/x, a/b/c) that does not exist is a typo, not a hub id:
    say so instead of trying the Hub and reporting a network error."""
    if not Path(name).exists() and looks_like_path(name):
        raise ModelError("E308", "model folder not found.", path=name,
                         fix="check the path (in a YAML config, a relative path is read from the config file's "
                         "folder); a hub id is written NAME or ORG/NAME.")


def check_tokenizer_folder(path: Path) -> None:
    """A local model folder must hold its tokenizer's vocabulary (a save_pretrained of the model alone has none)."""
    if not (path / "config.json").is_file():
        raise ModelError("E301", "model folder has no config.json.", path=path,
                         fix="point --model at a folder written by save_pretrained, or a hub id.")
    if not any((path / name).is_file() for name in VOCABULARY_FILES):
        raise ModelError("E305", "the model folder has no tokenizer files (none of tokenizer.json, vocab.txt, "
                         "vocab.json with merges.txt, or a SentencePiece model): transformers would build a "
                         "tokenizer of the special tokens alone and read every word as unknown.", path=path,
                         fix="save the base model's tokenizer into the folder "
                         "(AutoTokenizer.from_pretrained(BASE).save_pretrained(FOLDER)), or point --model at the "
                         "folder the model came from.")


def load_tokenizer(name: str):
    """The model's tokenizer as it ships: training encodes pre-split words as their text encodes
    (`encoder.words_encode_as_text`), so nothing is switched on here (RoBERTa's add_prefix_space, say) that would
    make the saved tokenizer encode raw text otherwise than the base model's did."""
    from transformers import AutoTokenizer

    check_model_exists(name)
    path = Path(name)
    if path.is_dir():
        check_tokenizer_folder(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        if path.exists():
            raise ModelError("E305", f"cannot load a tokenizer from this folder: {exc}", path=name,
                             fix="the folder needs tokenizer.json or the tokenizer's vocabulary files.") from None
        raise _hub_error(name, exc) from None
    if len(tokenizer) <= len(set(tokenizer.all_special_tokens)):  # e.g. an empty vocab.txt
        raise ModelError("E305", f"the tokenizer has no vocabulary: its {len(tokenizer)} entries are all special "
                         f"tokens ({', '.join(tokenizer.all_special_tokens)}).", path=name,
                         fix="use the tokenizer files the model was trained with.")
    return tokenizer


def unknown_words(tokenizer, word_lists) -> dict | None:
    """How many of the data's words the tokenizer reads as (or with) its unknown token.

    A share of several percent usually means a tokenizer that does not fit the data (another language, a cased
    text with an uncased vocabulary that lacks its accents, a wrong vocabulary file).

    Args:
        tokenizer: a fast tokenizer.
        word_lists: an iterable of word lists (NER tokens, or the tokenizer's own pre-tokenization of texts);
            the first UNKNOWN_WORDS_COUNTED words are looked at.
    Returns:
        {"words", "unknown", "share", "examples": the most frequent unknown words (up to 5)}, or None for a
        tokenizer without an unknown token (byte-level BPE reads every word).
    """
    unk_id = tokenizer.unk_token_id
    if unk_id is None:
        return None
    counts: Counter = Counter()
    total = 0
    for words in word_lists:
        counts.update(words)
        total += len(words)
        if total >= UNKNOWN_WORDS_COUNTED:
            break
    distinct = [word for word in counts if word.strip()]
    ids = tokenizer(distinct, add_special_tokens=False)["input_ids"] if distinct else []
    unknown = [word for word, word_ids in zip(distinct, ids) if unk_id in word_ids]
    n_unknown = sum(counts[word] for word in unknown)
    unknown.sort(key=lambda word: -counts[word])
    return {"words": total, "unknown": n_unknown, "share": round(n_unknown / total, 4) if total else 0.0,
            "examples": unknown[:5]}


def corpus_words(tokenizer, corpus):
    """The words of a corpus as the tokenizer splits them: NER tokens as they are; texts by its pre-tokenizer."""
    if corpus.task == "token-classification":
        yield from (example.tokens for example in corpus.examples)
        return
    pre_tokenizer = getattr(getattr(tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
    for example in corpus.examples:
        for text in (example.text, example.text_pair):
            if text:
                yield ([word for word, _span in pre_tokenizer.pre_tokenize_str(text)] if pre_tokenizer is not None
                       else text.split())


def note_unknown_words(tokenizer, corpus) -> tuple[dict | None, str | None]:
    """Count the corpus's words unknown to the tokenizer; above the threshold, add a warning to the corpus's
    warnings (kept in metrics.json's data section) and return it too (the console and the card show it)."""
    report = unknown_words(tokenizer, corpus_words(tokenizer, corpus))
    warning = unknown_words_warning(report)
    if warning:
        corpus.warnings.append(warning)
    return report, warning


def unknown_words_warning(report: dict | None) -> str | None:
    """The warning for a split whose unknown-word share is above UNKNOWN_WORDS_WARNING, else None."""
    if not report or report["share"] <= UNKNOWN_WORDS_WARNING:
        return None
    examples = ", ".join(repr(word) for word in report["examples"])
    return (f"{report['share']:.1%} of the words ({report['unknown']} of {report['words']}) are unknown to the "
            f"tokenizer (read as its unknown token), e.g. {examples}: the tokenizer or vocabulary probably does "
            "not fit this data (another language, or the wrong vocabulary file)")


def load_model(name: str, task: str, id2label: dict[int, str] | None = None, trust_pickle: bool = False):
    """Load a classification model; with `id2label`, a fresh head sized for these labels.

    Args:
        name: hub id or local folder.
        task: "token-classification", "text-classification" or "multi-label-classification" (a sequence
            classifier with transformers' `problem_type = "multi_label_classification"`: BCE on float targets, and
            `pipeline("text-classification")` gives each label's sigmoid probability).
        id2label: the label map for fine-tuning (None: keep the folder's own head, for inference).
        trust_pickle: allow pickle weights in a local folder.
    """
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    check_model_exists(name)
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
        if task == "multi-label-classification":
            kwargs["problem_type"] = "multi_label_classification"
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
