"""Facts about the machine and libraries (precision choice, hardware and versions for the card and `tunecard env`),
and handing memory back to the machine after a run."""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import sys
from importlib import metadata

import torch


def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 (AVX512-BF16 or AMX): autocast then runs faster, not slower."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def use_bf16(precision: str) -> bool:
    """Resolve `precision: auto|bf16|fp32` for this machine."""
    if precision == "fp32":
        return False
    if torch.cuda.is_available():
        supported = torch.cuda.is_bf16_supported()
    else:
        supported = cpu_supports_bf16()
    if precision == "bf16":
        return True
    return supported


def release_memory() -> None:
    """Free what a finished run left behind, for whatever the process does next (a search's next trial, a
    benchmark's prediction). The Trainer, the model and their tensors sit in reference cycles that only the
    garbage collector frees, and glibc then keeps the freed pages in its heaps: after a 3000-sentence CoNLL-2003
    run here the process held 1265 MB, 1045 MB after collecting and 721 MB after trimming the heaps."""
    gc.collect()
    trim = _glibc_function("malloc_trim")
    if trim is not None:
        trim(0)


def _glibc_function(name: str):
    """A function of glibc, or None where the C library is something else (musl, macOS, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None


# glibc's mallopt parameters (malloc.h), and what training sets them to.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
KEPT_FREED_MEMORY = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 1 << 30, _M_TOP_PAD: 64 << 20}


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back to the system: True where it applied.

    A CPU training step allocates and frees hundreds of megabytes of tensors. With glibc's defaults the top of the
    heap is handed back whenever 64 MB lie free there, and the next step faults the same pages in again, zeroed by
    the kernel: about 2,000-4,000 page faults a step here. With freed memory kept (allocations up to 32 MB from
    the heap, handed back only past 1 GB free) the 3000-sentence SST-2 run trained 2-4% faster at the same peak
    memory (docs/performance.md). Process-wide and lasting: `release_memory` still hands everything back at the
    end of a run. Nothing happens where the C library is not glibc.
    """
    mallopt = _glibc_function("mallopt")
    return mallopt is not None and all(mallopt(parameter, value) == 1
                                       for parameter, value in KEPT_FREED_MEMORY.items())


def model_max_length(tokenizer, model) -> int:
    """The longest input the model accepts: position embeddings, else the tokenizer's limit, else 512."""
    limit = getattr(model.config, "max_position_embeddings", None)
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < 100_000:  # tokenizers without a limit report a huge sentinel
        limit = min(limit, tok_limit) if limit else tok_limit
    # RoBERTa-style models reserve padding_idx + 1 positions.
    if getattr(model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "longformer") and limit:
        limit = min(limit, getattr(model.config, "max_position_embeddings", limit) - 2)
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


def describe(bf16: bool) -> dict:
    """Where a run happened, for the card."""
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    else:
        device = "cpu"
    return {
        "device": device,
        "precision": "bf16 (autocast)" if bf16 else "fp32",
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "versions": versions(),
    }
