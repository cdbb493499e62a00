"""Run a folder's ONNX export with ONNX Runtime behind the torch classifier's interface.

`OnnxModel` puts an ONNX Runtime session behind `model(**inputs).logits`, so prediction and evaluation share
batching, windowing and word assembly with the torch backend (`Predictor(backend="onnx")`). `export/` writes
these files and checks them; this module only reads them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from tunecard.errors import ModelError

ONNX_DIR = "onnx"
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
REPORT_FILE = "export.json"
BACKENDS = ("torch", "onnx")


def _require_runtime(exporting: bool = False):
    import importlib

    # Running needs onnxruntime; exporting also needs onnx and onnxscript (torch.onnx's exporter imports them).
    for name in ("onnxruntime", "onnx", "onnxscript") if exporting else ("onnxruntime",):
        try:
            importlib.import_module(name)
        except ImportError:
            raise ModelError("E320", f"{name} is not installed.",
                             fix="pip install 'tunecard[onnx]' (onnx, onnxruntime, onnxscript).") from None
    return importlib.import_module("onnxruntime")


def check_choice(value: str | None, choices: tuple[str, ...], what: str) -> None:
    if value is not None and value not in choices:
        raise ModelError("E324", f"unknown {what} {value!r}.", fix=f"use one of: {', '.join(choices)}.")


def weights_sha256(folder: Path) -> str | None:
    path = folder / "model.safetensors"
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


class OnnxModel(torch.nn.Module):
    """An ONNX Runtime session with the torch classifier's interface: `model(**inputs).logits` (float32, CPU).

    Args:
        path: the .onnx file.
        config: the folder's transformers config (label map, position limit).
    """

    def __init__(self, path: str | Path, config):
        super().__init__()
        ort = _require_runtime()
        from transformers.modeling_outputs import ModelOutput

        self.path = Path(path)
        self.config = config
        self._output = ModelOutput
        # forward_batches reads the device from the first parameter: inputs stay on the CPU for the session.
        self.anchor = torch.nn.Parameter(torch.empty(0), requires_grad=False)
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (non-exported) exception types
            raise ModelError("E321", f"ONNX Runtime cannot load the file: {exc}", path=self.path,
                             fix="re-export it with `tunecard export DIR --onnx`.") from None
        self.input_names = [i.name for i in self.session.get_inputs()]

    def forward(self, **inputs):
        missing = [name for name in self.input_names if name not in inputs]
        if missing:
            raise ModelError("E321", f"the ONNX graph needs inputs {missing} the tokenizer does not produce.",
                             path=self.path, fix="re-export it from this folder with `tunecard export DIR --onnx`.")
        feeds = {name: inputs[name].cpu().numpy().astype(np.int64, copy=False) for name in self.input_names}
        logits = self.session.run(None, feeds)[0]
        return self._output(logits=torch.from_numpy(logits))


def onnx_path(folder: Path, onnx_file: str | Path | None = None, quantized: bool = False) -> Path:
    """The ONNX file `--backend onnx` uses: `onnx_file`, else DIR/onnx/model.onnx (model.int8.onnx if quantized)."""
    if onnx_file is not None:
        path = Path(onnx_file)
        if quantized and path.name == ONNX_FILE:
            path = path.with_name(INT8_FILE)
    else:
        path = folder / ONNX_DIR / (INT8_FILE if quantized else ONNX_FILE)
    if not path.is_file():
        command = f"tunecard export {folder} --onnx" + (" --quantize int8" if quantized else "")
        raise ModelError("E321", "no exported ONNX model at this path.", path=path,
                         fix=f"export it first: `{command}`.")
    return path


def load_onnx_model(folder: Path, onnx_file: str | Path | None = None, quantized: bool = False) -> OnnxModel:
    """The folder's ONNX export as an OnnxModel, refusing one exported from other weights than the folder's."""
    from transformers import AutoConfig

    path = onnx_path(folder, onnx_file, quantized)
    report_path = path.parent / REPORT_FILE
    if report_path.is_file():
        report = json.loads(report_path.read_text(encoding="utf-8"))
        exported_from, current = report.get("weights_sha256"), weights_sha256(folder)
        if path.name in report.get("files", {}) and exported_from and current and exported_from != current:
            raise ModelError("E322", "the ONNX file was exported from other weights than this folder's.",
                             path=path, fix=f"re-export: `tunecard export {folder} --onnx`.")
    return OnnxModel(path, AutoConfig.from_pretrained(str(folder)))
