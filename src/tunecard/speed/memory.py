"""Memory levers of CPU training: freed memory kept for the next steps, long-lived objects out of the collector's way.

Neither changes what is computed. `keep_freed_memory` is a lever of the plan (`speed_options.keep_freed_memory`);
`long_lived_objects_frozen` runs around every `speed: auto` training.
"""

from __future__ import annotations

import contextlib
import gc

from tunecard.environment import glibc_function

# glibc's mallopt parameters (malloc.h), what training sets them to, and their documented defaults (mallopt(3)),
# which `restore_freed_memory` sets back.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
KEPT_FREED_MEMORY = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 1 << 30, _M_TOP_PAD: 64 << 20}
GLIBC_DEFAULTS = {_M_MMAP_THRESHOLD: 128 << 10, _M_TRIM_THRESHOLD: 128 << 10, _M_TOP_PAD: 128 << 10}


def keep_freed_memory() -> bool:
    """Let glibc keep freed memory for reuse instead of handing it back to the system: True where it applied.

    A CPU training step allocates and frees hundreds of megabytes of tensors. With glibc's defaults the top of the
    heap is handed back whenever 64 MB lie free there, and the next step faults the same pages in again, zeroed by
    the kernel: about 2,000-4,000 page faults a step here. With freed memory kept (allocations up to 32 MB from
    the heap, handed back only past 1 GB free) the 3000-sentence SST-2 run trained 2-4% faster at the same peak
    memory (AMX Xeon, docs/performance.md). Process-wide until `restore_freed_memory`. Nothing happens where the
    C library is not glibc.
    """
    return _mallopt(KEPT_FREED_MEMORY)


def restore_freed_memory() -> None:
    """glibc's documented default thresholds again (its dynamic mmap threshold, once set, stays off)."""
    _mallopt(GLIBC_DEFAULTS)


def _mallopt(values: dict[int, int]) -> bool:
    mallopt = glibc_function("mallopt")
    return mallopt is not None and all(mallopt(parameter, value) == 1 for parameter, value in values.items())


@contextlib.contextmanager
def long_lived_objects_frozen():
    """The block runs with every object that exists now out of the garbage collector's sight (`gc.freeze`).

    The process holds about 470,000 tracked objects before training (mostly the imported libraries' functions,
    types and dicts, then the data), none of which training frees. The Trainer starts with a full collection
    (accelerate's `free_memory`), which walked them all: 0.19 s of a 20 s MiniLM run on the AMX Xeon. Frozen,
    they are skipped by it and by the collections during training; refcounting still frees what they drop, and
    they are handed back to the collector afterwards."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
