"""Facts about the machine and libraries (device and precision choice, hardware and versions for the card and
`tunecard env`), and handing memory back to the machine after a run."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import sys
from importlib import metadata

import torch


# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA, DNNL_MAX_CPU_ISA) under which it has no bf16 instructions.
_ONEDNN_ISAS_WITHOUT_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 arithmetic (AVX512-BF16 or AMX) and oneDNN may use it: autocast then
    runs faster, not slower.

    oneDNN's own answer (`torch.ops.mkldnn._is_mkldnn_bf16_supported`) is also yes on any AVX-512 CPU, where it
    emulates bf16 (Skylake to Ice Lake Xeons, common cloud machines): slower than fp32 there, so the CPU's flags
    must say so too. A cap on oneDNN's instruction set (ONEDNN_MAX_CPU_ISA, e.g. AVX2 to act as an older CPU)
    is honoured: bf16 is native only if the cap leaves its instructions. Elsewhere than x86 (Arm: Graviton 3 and
    later, Apple M2 and later) oneDNN's answer is already the CPU's own bf16 flag."""
    return _cpu_bf16()[0]


def cpu_bf16_kind() -> str:
    """The CPU's bf16, in words, for the card and `tunecard env`: why `precision: auto` chose what it did."""
    return _cpu_bf16()[1]


def _cpu_bf16() -> tuple[bool, str]:
    """Whether `precision: auto` may use the CPU's bf16, and the CPU's bf16 in words: the flags read once."""
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        x86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
        amx = x86 and torch.cpu._is_amx_tile_supported()
        avx512_bf16 = x86 and torch.cpu._is_avx512_bf16_supported()
    except (AttributeError, RuntimeError):
        return False, "unknown"
    if not x86:
        return (True, "native (Arm BF16)") if onednn else (False, "none")
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if amx or avx512_bf16:
        if onednn and cap not in _ONEDNN_ISAS_WITHOUT_BF16:
            return True, "native (AMX)" if amx else "native (AVX512-BF16)"
        return False, "native, but oneDNN is capped below it (ONEDNN_MAX_CPU_ISA)"
    return False, "emulated by oneDNN (AVX-512 without bf16): slower than fp32" if onednn else "none"


def training_device() -> torch.device:
    """The device the Trainer (accelerate) trains on in a plain run: CUDA, then Apple MPS, then Intel XPU, else
    the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return torch.device("xpu")
    return torch.device("cpu")


def use_bf16(precision: str, device: torch.device | None = None) -> bool:
    """Resolve `precision: auto|bf16|fp32` for `device` (default: where the Trainer trains)."""
    if precision == "fp32":
        return False
    if precision == "bf16":
        return True
    kind = (device or training_device()).type
    if kind == "cuda":
        return torch.cuda.is_bf16_supported()
    if kind == "cpu":
        return cpu_supports_bf16()
    return False  # MPS, XPU: fp32 unless bf16 is asked for


def release_memory() -> None:
    """Free what a finished run left behind, for whatever the process does next (a search's next trial, a
    benchmark's prediction). The Trainer, the model and their tensors sit in reference cycles that only the
    garbage collector frees, and glibc then keeps the freed pages in its heaps: after a 3000-sentence CoNLL-2003
    run here the process held 1265 MB, 1045 MB after collecting and 721 MB after trimming the heaps."""
    gc.collect()
    trim = glibc_function("malloc_trim")
    if trim is not None:
        trim(0)


def glibc_function(name: str):
    """A function of glibc, or None where the C library is something else (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def position_offset(model) -> int:
    """Where the model's position ids start. RoBERTa-style encoders (XLM-R, CamemBERT, MPNet, Longformer, ...)
    count positions from just after the padding index, which is their position embedding's padding row; others
    start at 0. Read from the model's own embedding module, not from a list of model types."""
    embeddings = getattr(getattr(model, "base_model", model), "embeddings", None)
    positions = getattr(embeddings, "position_embeddings", None)
    padding = getattr(positions, "padding_idx", None)
    return padding + 1 if isinstance(positions, torch.nn.Embedding) and padding is not None else 0


def model_max_length(tokenizer, model) -> int:
    """The longest input the model accepts: its position embeddings (less the positions a RoBERTa-style model
    reserves below its first, `position_offset`), else the tokenizer's limit, else 512."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit:
        limit -= position_offset(model)
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < 100_000:  # tokenizers without a limit report a huge sentinel
        limit = min(limit, tok_limit) if limit else tok_limit
    return int(limit or 512)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    found = {}
    for label, package in (("Transformers", "transformers"), ("Pytorch", "torch"), ("Datasets", "datasets"),
                           ("Tokenizers", "tokenizers"), ("Accelerate", "accelerate"), ("tunecard", "tunecard")):
        try:
            found[label] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[label] = "not installed"
    found["Python"] = platform.python_version()
    return found


def describe(bf16: bool, device: str | None = None) -> dict:
    """Where a run happened, for the card."""
    device = device or training_device().type
    if device.startswith("cuda") and torch.cuda.is_available():
        device = f"{device} ({torch.cuda.get_device_name(0)})"
    return {
        "device": device,
        "precision": "bf16 (autocast)" if bf16 else "fp32",
        "cpu": cpu_name(),
        "cpu_bf16": cpu_bf16_kind(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "versions": versions(),
    }
