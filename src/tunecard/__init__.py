"""tunecard: fine-tune BERT-family encoders for NER and text classification, and write a truthful model card."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("tunecard")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

__all__ = ["__version__", "load", "train", "evaluate_folder", "TrainConfig", "build_config", "TunecardError"]


def __getattr__(name: str):
    # Lazy: `import tunecard` stays fast (no torch import) for the CLI's --help and the data tools.
    if name == "load":
        from .inference import load

        return load
    if name == "evaluate_folder":
        from .inference import evaluate_folder

        return evaluate_folder
    if name == "train":
        from .train import train

        return train
    if name in ("TrainConfig", "build_config"):
        from . import config

        return getattr(config, name)
    if name == "TunecardError":
        from .errors import TunecardError

        return TunecardError
    raise AttributeError(f"module 'tunecard' has no attribute {name!r}")
