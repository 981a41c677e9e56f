"""Which QEMU accelerator to use: KVM only when a quick probe proves it runs a guest, else TCG.

Nested KVM on some hosts opens ``/dev/kvm`` fine and then never runs a vCPU. The probe boots a 64 KiB
"BIOS" whose reset vector writes to QEMU's isa-debug-exit port, with the CPU model the VMs use
(``-cpu host``): exit status 3 within a few seconds means KVM really executes guest code. A kernel can
still hang later (seen here with nested KVM and ``-cpu qemu64``), so :mod:`corebpf.kernels.vm` also
gives a KVM boot a short grace period and falls back to TCG, calling :func:`mark_kvm_broken`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

from .errors import KernelError

__all__ = ["qemu_binary", "kvm_works", "choose_accel", "mark_kvm_broken", "die_with_parent", "KVM_CPU",
           "PROBE_TIMEOUT"]

PROBE_TIMEOUT = 8.0
#: The CPU model of KVM guests (all host features: BPF JIT paths as on the host).
KVM_CPU = "host"
_kvm_broken = False
# mov al, 1; out 0xf4, al; hlt; jmp $-1  (at F000:FFF0, the reset vector)
_RESET_CODE = bytes([0xB0, 0x01, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD])


def qemu_binary() -> str:
    """Path of qemu-system-x86_64 (``$COREBPF_QEMU`` overrides)."""
    exe = os.environ.get("COREBPF_QEMU") or shutil.which("qemu-system-x86_64")
    if not exe:
        raise KernelError("qemu-system-x86_64 is missing: install it (apt-get install qemu-system-x86)")
    return exe


def die_with_parent() -> None:
    """``preexec_fn`` for QEMU: the child gets SIGKILL when its supervisor dies, however it dies."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _probe_bios() -> bytes:
    bios = bytearray(b"\xF4" * 0x10000)
    bios[0xFFF0:0xFFF0 + len(_RESET_CODE)] = _RESET_CODE
    return bytes(bios)


@lru_cache(maxsize=1)
def kvm_works() -> bool:
    """Whether /dev/kvm runs a guest (probed once per process, never hangs)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with tempfile.TemporaryDirectory(prefix="corebpf-kvmprobe-") as tmp:
        bios = Path(tmp) / "probe.bin"
        bios.write_bytes(_probe_bios())
        cmd = [qemu_binary(), "-accel", "kvm", "-machine", "pc", "-nodefaults", "-no-user-config",
               "-display", "none", "-m", "16", "-bios", str(bios),
               "-cpu", KVM_CPU, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
        try:
            return proc.wait(timeout=PROBE_TIMEOUT) == 3
        except subprocess.TimeoutExpired:
            return False
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def mark_kvm_broken() -> None:
    """A KVM guest hung or failed after the probe passed: use TCG for the rest of this process."""
    global _kvm_broken
    _kvm_broken = True


def choose_accel(requested: str = "auto") -> str:
    """``kvm`` or ``tcg``: ``auto`` (or ``$COREBPF_VMTEST_ACCEL``) picks KVM when the probe passes."""
    requested = os.environ.get("COREBPF_VMTEST_ACCEL", requested) if requested == "auto" else requested
    if requested not in ("auto", "kvm", "tcg"):
        raise KernelError(f"unknown accelerator {requested!r}: use auto, kvm or tcg")
    if requested == "auto":
        return "kvm" if not _kvm_broken and kvm_works() else "tcg"
    return requested
