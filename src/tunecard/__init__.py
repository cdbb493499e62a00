"""tunecard: fine-tune BERT-family encoders for NER and text classification, and write a truthful model card."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("tunecard")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

# Public name -> module that defines it. Imported on first use: `import tunecard` stays fast (no torch import)
# for the CLI's --help and the data tools. A hyperparameter search is `tunecard.search.search(config, trials=N)`.
_EXPORTS = {
    "train": "pipeline",
    "load": "inference",
    "evaluate_folder": "inference",
    "TrainConfig": "config",
    "build_config": "config",
    "export_onnx": "export",
    "write_report": "reporting.report",
    "compare_runs": "reporting.compare",
    "diagnose_run": "doctor",
    "read_corpus": "data",
    "TunecardError": "errors",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        from importlib import import_module

        value = getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tunecard' has no attribute {name!r}")
