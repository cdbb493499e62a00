"""tunecard: fine-tune BERT-family encoders for NER and text classification, and write a truthful model card."""

from __future__ import annotations

import sys
from importlib import metadata
from types import ModuleType

try:
    __version__ = metadata.version("tunecard")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+source"

# Public name -> module that defines it. Imported on first use: `import tunecard` stays fast (no torch import)
# for the CLI's --help and the data tools.
_EXPORTS = {
    "train": "train",
    "load": "inference",
    "evaluate_folder": "inference",
    "TrainConfig": "config",
    "build_config": "config",
    "search": "search",
    "export_onnx": "export",
    "write_report": "report",
    "compare_runs": "compare",
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


class _Package(ModuleType):
    """Importing the submodules `tunecard.train` / `tunecard.search` must not replace the functions of the same
    name on the package (Python sets a loaded submodule as an attribute of its parent)."""

    def __setattr__(self, name, value):
        if name in _EXPORTS and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
