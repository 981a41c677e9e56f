"""Accelerator choice: explicit choices are kept, bad ones refused, a broken KVM is not retried."""

from __future__ import annotations

import pytest

from corebpf.kernels import KernelError
from corebpf.kernels import accel


def test_explicit_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COREBPF_VMTEST_ACCEL", raising=False)
    assert accel.choose_accel("tcg") == "tcg"
    assert accel.choose_accel("kvm") == "kvm"
    with pytest.raises(KernelError, match="unknown accelerator"):
        accel.choose_accel("hvf")


def test_env_overrides_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COREBPF_VMTEST_ACCEL", "tcg")
    assert accel.choose_accel("auto") == "tcg"


def test_broken_kvm_means_tcg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COREBPF_VMTEST_ACCEL", raising=False)
    monkeypatch.setattr(accel, "kvm_works", lambda: True)
    monkeypatch.setattr(accel, "_kvm_broken", False)
    assert accel.choose_accel("auto") == "kvm"
    accel.mark_kvm_broken()
    assert accel.choose_accel("auto") == "tcg"


def test_probe_bios_reset_vector() -> None:
    bios = accel._probe_bios()
    assert len(bios) == 0x10000  # QEMU wants a multiple of 64 KiB
    assert bios[0xFFF0:0xFFF4] == bytes([0xB0, 0x01, 0xE6, 0xF4])  # mov al,1; out 0xf4,al
