"""Training keeps freed memory for its next steps (glibc), and a finished run still hands it back."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import pytest
from conftest import quick_ner_values

from tunecard.config import build_config
from tunecard.pipeline import train


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL("libc.so.6"), "mallinfo2")
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _glibc(), reason="glibc (with mallinfo2) only")

# In a fresh process: 200 MB in blocks of 100 kB allocated and freed, then the bytes glibc holds free, before and
# after `release_memory`.
PROBE = textwrap.dedent("""
    import ctypes, sys
    from tunecard import environment
    from tunecard.speed import memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
    applied = memory.keep_freed_memory() if sys.argv[1] == "keep" else None
    blocks = [libc.malloc(100_000) for _ in range(2000)]
    for block in blocks:
        libc.free(block)
    held = libc.mallinfo2().fordblks
    environment.release_memory()
    print(applied, held >> 20, libc.mallinfo2().fordblks >> 20)
""")


def _probe(mode: str) -> tuple[str, int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    applied, held, after_release = out.split()
    return applied, int(held), int(after_release)


def test_freed_memory_is_kept_for_reuse_and_handed_back_at_the_end():
    applied, held, after_release = _probe("keep")
    assert applied == "True"
    assert held >= 150  # MB of the 200 freed, kept at the top of the heap for the next allocations
    assert after_release < 16  # release_memory, at the end of every run, hands them back
    _, held_by_default, _ = _probe("defaults")
    assert held_by_default < 16  # glibc's defaults hand the top of the heap back at once: faulted in again later


@pytest.mark.parametrize("keep", [True, False])
def test_training_records_whether_freed_memory_was_kept(tiny_bert_cased, tmp_path, keep):
    result = train(build_config(None, quick_ner_values(tiny_bert_cased, tmp_path, speed_options={"keep_freed_memory": keep})),
                   progress=False)
    assert result.metrics["speed"]["levers"]["keep_freed_memory"]["used"] is keep
