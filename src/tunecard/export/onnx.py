"""Export a trained folder to ONNX (optionally int8-quantized), checked against torch.

`export_onnx(DIR)` writes DIR/onnx/model.onnx with dynamic batch and sequence axes (torch.onnx's
torch.export-based exporter), checks it against torch on sample inputs (logits must match within
tolerance, else nothing is kept), and with `quantize="int8"` also writes model.int8.onnx (ONNX Runtime
dynamic quantization: int8 weights, activations quantized per batch on the fly). DIR/onnx/export.json
records what was checked: the fp32 logits' largest deviation, the int8 model's agreement with torch, and
the hash of the weights exported (so a retrained folder never silently serves an old ONNX file).
Running the export is `inference/onnx_runtime.py`'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import torch

from tunecard.errors import ModelError
from tunecard.inference.onnx_runtime import (
    ONNX_DIR,
    ONNX_FILE,
    REPORT_FILE,
    OnnxModel,
    _require_runtime,
    check_choice,
    weights_sha256,
)

QUANTIZATIONS = ("int8",)
DEFAULT_OPSET = 18
# fp32 ONNX Runtime vs torch: kernels differ in summation order only; more than this means a wrong graph.
ATOL = 1e-4
RTOL = 1e-3
# Sample inputs the exported graph is checked on: punctuation, accents, CJK, emoji, digits, and one text long
# enough to be windowed (NER) or truncated (classification) by any model with <= 512 positions.
CHECK_TEXTS = [
    "Taylor Swift sings in Seattle .",
    "Dr. Müller flew from Zürich to São Paulo on 3/4/2021 — business class!",
    "東京タワーは日本の東京都港区にある。",
    "Apple Inc. (NASDAQ: AAPL) hired Jean-Luc Picard, CEO of Starfleet, for $1.2M 😀",
    "ok",
    " ".join(f"Angela Merkel met Emmanuel Macron in Paris on day {i} ." for i in range(60)),
]


@contextlib.contextmanager
def _quiet(logger_name: str | None):
    """The exporter logs missing optional packages (torchvision) and deprecations, the quantizer advice on the
    root logger: noise for users, whose check is the comparison with torch that follows."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _export_graph(model: torch.nn.Module, sample: dict[str, torch.Tensor], path: Path, opset: int) -> None:
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    # Graphs over 2 GB must keep their weights outside the protobuf file (path + ".data").
    external = sum(p.numel() * p.element_size() for p in model.parameters()) > 1.8e9
    with _quiet("torch.onnx"):
        try:
            program = torch.onnx.export(
                model, (), kwargs=sample, input_names=list(sample), output_names=["logits"],
                dynamic_shapes={name: {0: batch, 1: sequence} for name in sample},
                opset_version=opset, dynamo=True, external_data=external, verbose=False)
            program.save(str(path), external_data=external)
        except Exception as exc:  # the exporter raises many internal types; all mean "this graph did not export"
            raise ModelError("E323", f"torch.onnx.export failed: {type(exc).__name__}: {exc}",
                             fix="check the model's architecture exports with torch.export; report it with "
                                 "`tunecard env`.") from None


def _compare(predictor, reference: OnnxModel | torch.nn.Module, candidate: OnnxModel, features) -> dict:
    """Largest logit deviation and argmax agreement of `candidate` against `reference` on the same batches."""
    from tunecard.encoding.batching import forward_batches

    worst, agree, total, close = 0.0, 0, 0, True
    batches = zip(forward_batches(reference, features, predictor.collator, predictor.batch_size, with_labels=False),
                  forward_batches(candidate, features, predictor.collator, predictor.batch_size, with_labels=False))
    for (_, expected, batch), (_, got, _) in batches:
        if predictor.is_ner:  # compare real tokens only: padding positions are never read
            keep = batch["attention_mask"].bool()
            expected, got = expected[keep], got[keep]
        worst = max(worst, float((expected - got).abs().max()))
        close = close and torch.allclose(got, expected, atol=ATOL, rtol=RTOL)
        agree += int((expected.argmax(-1) == got.argmax(-1)).sum())
        total += expected.shape[0]
    return {"max_abs_diff": worst, "allclose": close, "argmax_agreement": agree / total, "compared": total,
            "compared_unit": "tokens" if predictor.is_ner else "texts"}


def export_onnx(folder: str | Path, output: str | Path | None = None, quantize: str | None = None,
                opset: int = DEFAULT_OPSET, check_texts: list[str] | None = None, trust_pickle: bool = False,
                console=None) -> list[Path]:
    """Export a trained folder to ONNX, check it against torch, and optionally quantize it to int8.

    Args:
        folder: a run folder from `tunecard train` (or any save_pretrained token/sequence classifier).
        output: the fp32 .onnx file to write. Defaults to DIR/onnx/model.onnx.
        quantize: None, or "int8" to also write <name>.int8.onnx (int8 weights, dynamic activations).
        opset: ONNX opset (>= 17). Defaults to 18.
        check_texts: texts the export is checked on. Defaults to CHECK_TEXTS.
        trust_pickle: allow pickle weights.
        console: a rich Console for a summary line, or None.

    Returns:
        The paths written: the fp32 model, the int8 model if asked, and export.json.

    Raises:
        ModelError: E320 no onnxruntime, E323 the exporter failed, E322 the fp32 graph's logits deviate from
            torch beyond atol 1e-4 / rtol 1e-3 (nothing is written), E324 unknown quantization.
    """
    from tunecard.inference.predictor import Predictor

    check_choice(quantize, QUANTIZATIONS, "quantization")
    if opset < 17:
        raise ModelError("E324", f"opset {opset} is too old for the exporter.", fix="use --opset 17 or later.")
    ort = _require_runtime(exporting=True)
    folder = Path(folder)
    target = Path(output) if output is not None else folder / ONNX_DIR / ONNX_FILE
    int8_target = target.with_name(target.name.removesuffix(".onnx") + ".int8.onnx")
    predictor = Predictor(folder, batch_size=8, precision="fp32", trust_pickle=trust_pickle)
    features = predictor.encode(check_texts or CHECK_TEXTS)
    # Two inputs of different lengths, padded: the traced graph sees a real batch with a padding mask.
    sample = predictor.collator([dict(f.inputs) for f in sorted(features, key=len)[:2]])
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as scratch:
        # Written in a scratch folder, moved into place only once checked: a failed export leaves nothing.
        fp32 = Path(scratch) / target.name
        _export_graph(predictor.model, sample, fp32, opset)
        fp32_check = _compare(predictor, predictor.model, OnnxModel(fp32, predictor.model.config), features)
        if not fp32_check["allclose"]:
            raise ModelError("E322", f"the exported graph's logits differ from torch's by up to "
                             f"{fp32_check['max_abs_diff']:.2e} (tolerance atol {ATOL}, rtol {RTOL}); nothing was "
                             "written.", path=folder, fix="try another --opset, or report it with `tunecard env`.")
        report = {"source": str(folder.resolve()), "weights_sha256": weights_sha256(folder), "opset": opset,
                  "torch": torch.__version__, "onnxruntime": ort.__version__, "check_texts": len(features),
                  "files": {target.name: {"precision": "fp32", **fp32_check}}}
        written = [fp32]
        if quantize == "int8":
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            int8 = Path(scratch) / int8_target.name
            graph = onnx.load(str(fp32))
            # The exporter's recorded intermediate shapes can contradict ONNX's own re-inference inside the
            # quantizer (seen on a 3-label head); they are hints only, so the quantizer infers them afresh.
            del graph.graph.value_info[:]
            # Per-channel weight scales: on MiniLM / CoNLL-2003 per-tensor scales lost 1.3 F1 points, per-channel
            # stays within 0.2 (docs/export.md).
            # Handed over as a file in the scratch folder: given a ModelProto, the quantizer saves temporary copies
            # into the current working directory (and leaves them there).
            stripped = Path(scratch) / "stripped.onnx"
            onnx.save(graph, str(stripped))
            with _quiet(None):
                # 7-bit weights (reduce_range): CPUs without VNNI multiply u8 x s8 pairs into saturating int16
                # sums; full-range weights lost 0.58 F1 points there (AMD EPYC, AVX2), 7-bit ones 0.01.
                quantize_dynamic(str(stripped), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                                 reduce_range=True)
            stripped.unlink()
            int8_check = _compare(predictor, predictor.model, OnnxModel(int8, predictor.model.config), features)
            report["files"][int8.name] = {"precision": "int8 (dynamic)", **int8_check}
            written.append(int8)
        if quantize is None and int8_target.exists():
            int8_target.unlink()  # an int8 file from an earlier export would no longer match the fp32 one
        paths = []
        for path in written:
            for part in (path, path.with_name(path.name + ".data")):
                if part.exists():
                    paths.append(Path(shutil.move(str(part), target.parent / part.name)))
    report_path = target.parent / REPORT_FILE
    report_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    paths.append(report_path)
    if console is not None:
        for name, check in report["files"].items():
            console.print(f"[bold green]wrote[/] {target.parent / name}: {check['precision']}, max |logit diff| "
                          f"{check['max_abs_diff']:.2e} vs torch, argmax agreement "
                          f"{check['argmax_agreement']:.2%} of {check['compared']} {check['compared_unit']}")
    return paths
