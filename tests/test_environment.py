"""The machine facts that choose a run's precision."""

import torch

from tunecard import environment


def _cpu(monkeypatch, *, avx512_bf16: bool, amx: bool, onednn: bool, cap: str | None = None,
         machine: str = "x86_64") -> bool:
    monkeypatch.setattr(environment.platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: onednn)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    return environment.cpu_supports_bf16()


def test_bf16_is_native_only_with_avx512_bf16_or_amx(monkeypatch):
    assert _cpu(monkeypatch, avx512_bf16=True, amx=True, onednn=True)  # Sapphire Rapids and later
    assert _cpu(monkeypatch, avx512_bf16=True, amx=False, onednn=True)  # AMD Zen 4 and 5
    # AVX-512 without bf16 (Skylake to Ice Lake Xeons): oneDNN says yes, but it would emulate bf16, slower than fp32.
    assert not _cpu(monkeypatch, avx512_bf16=False, amx=False, onednn=True)
    assert not _cpu(monkeypatch, avx512_bf16=False, amx=False, onednn=False)  # AVX2 only


def test_a_cap_on_onednns_instructions_is_honoured(monkeypatch):
    assert not _cpu(monkeypatch, avx512_bf16=True, amx=True, onednn=True, cap="AVX2")
    assert not _cpu(monkeypatch, avx512_bf16=True, amx=True, onednn=True, cap="avx512_core")
    assert _cpu(monkeypatch, avx512_bf16=True, amx=True, onednn=True, cap="AVX512_CORE_BF16")
    monkeypatch.setenv("DNNL_MAX_CPU_ISA", "AVX2")  # the older name of the same setting
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    assert not environment.cpu_supports_bf16()


def test_auto_precision_follows_the_cpu(monkeypatch):
    _cpu(monkeypatch, avx512_bf16=False, amx=False, onednn=True)
    assert not environment.use_bf16("auto", torch.device("cpu"))
    assert environment.use_bf16("bf16", torch.device("cpu"))  # asked for: given, emulated or not
    _cpu(monkeypatch, avx512_bf16=True, amx=False, onednn=True)
    assert environment.use_bf16("auto", torch.device("cpu"))
    assert not environment.use_bf16("fp32", torch.device("cpu"))


def test_the_card_and_env_say_which_bf16_the_cpu_has(monkeypatch):
    _cpu(monkeypatch, avx512_bf16=True, amx=True, onednn=True)
    assert environment.describe(bf16=True, device="cpu")["cpu_bf16"] == "native (AMX)"
    _cpu(monkeypatch, avx512_bf16=True, amx=False, onednn=True)
    assert environment.cpu_bf16_kind() == "native (AVX512-BF16)"
    _cpu(monkeypatch, avx512_bf16=True, amx=False, onednn=True, cap="AVX2")
    assert "capped" in environment.cpu_bf16_kind()
    _cpu(monkeypatch, avx512_bf16=False, amx=False, onednn=True)
    assert environment.cpu_bf16_kind().startswith("emulated")
    _cpu(monkeypatch, avx512_bf16=False, amx=False, onednn=False)
    assert environment.cpu_bf16_kind() == "none"


def test_on_arm_onednns_answer_is_the_cpus_own_flag(monkeypatch):
    # torch reads the Arm CPU's bf16 flag itself there (Graviton 3, Apple M2 and later); the x86 flags are absent.
    assert _cpu(monkeypatch, avx512_bf16=False, amx=False, onednn=True, machine="aarch64")
    assert environment.cpu_bf16_kind() == "native (Arm BF16)"
    assert not _cpu(monkeypatch, avx512_bf16=False, amx=False, onednn=False, machine="aarch64")
    assert environment.cpu_bf16_kind() == "none"
