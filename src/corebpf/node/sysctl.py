"""The sysctls that govern eBPF: JIT settings, unprivileged bpf(), perf_event_paranoid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ._fact import Fact, read_int

SYSCTLS: dict[str, str] = {
    "net.core.bpf_jit_enable": "/proc/sys/net/core/bpf_jit_enable",
    "net.core.bpf_jit_harden": "/proc/sys/net/core/bpf_jit_harden",
    "net.core.bpf_jit_kallsyms": "/proc/sys/net/core/bpf_jit_kallsyms",
    "net.core.bpf_jit_limit": "/proc/sys/net/core/bpf_jit_limit",
    "kernel.unprivileged_bpf_disabled": "/proc/sys/kernel/unprivileged_bpf_disabled",
    "kernel.perf_event_paranoid": "/proc/sys/kernel/perf_event_paranoid",
    "kernel.bpf_stats_enabled": "/proc/sys/kernel/bpf_stats_enabled",
    "kernel.kptr_restrict": "/proc/sys/kernel/kptr_restrict",
}


def read_sysctl(name: str) -> Fact[int]:
    """An integer sysctl by dotted name (``"net.core.bpf_jit_enable"``); never raises."""
    return read_int(SYSCTLS.get(name, "/proc/sys/" + name.replace(".", "/")))


def describe_jit_enable(value: Optional[int]) -> str:
    """What ``net.core.bpf_jit_enable`` means."""
    return {0: "JIT off: programs are interpreted (slow)", 1: "JIT on",
            2: "JIT on with debug output to the kernel log"}.get(value, "unknown") if value is not None else "unknown"


def describe_jit_harden(value: Optional[int]) -> str:
    """What ``net.core.bpf_jit_harden`` means."""
    return {0: "hardening off", 1: "constant blinding for unprivileged programs",
            2: "constant blinding for all programs (slower, and bpftool dumps differ from xlated)"}.get(
        value, "unknown") if value is not None else "unknown"


def describe_unprivileged(value: Optional[int]) -> str:
    """What ``kernel.unprivileged_bpf_disabled`` means."""
    return {0: "unprivileged users may call bpf() (socket filters, some maps)",
            1: "bpf() needs CAP_BPF/CAP_SYS_ADMIN; cannot be turned back on without a reboot",
            2: "bpf() needs CAP_BPF/CAP_SYS_ADMIN (an admin may set it back to 0)"}.get(
        value, "unknown") if value is not None else "unknown"


def describe_paranoid(value: Optional[int]) -> str:
    """What ``kernel.perf_event_paranoid`` means for unprivileged tracing."""
    if value is None:
        return "unknown"
    if value <= -1:
        return "no restrictions on perf events"
    if value <= 1:
        return "unprivileged users may open perf events on their own processes (and kernel with <= 0)"
    if value == 2:
        return "unprivileged users: user-space-only perf events; tracing needs CAP_PERFMON"
    return "perf events need CAP_PERFMON (distribution hardening)"


@dataclass(frozen=True)
class JITState:
    """The JIT sysctls (source: ``/proc/sys/net/core/bpf_jit_*``)."""

    enable: Fact[int]
    harden: Fact[int]
    kallsyms: Fact[int]
    limit: Fact[int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"enable": self.enable.to_dict(), "harden": self.harden.to_dict(),
                "kallsyms": self.kallsyms.to_dict(), "limit": self.limit.to_dict(),
                "summary": f"{describe_jit_enable(self.enable.value)}; {describe_jit_harden(self.harden.value)}"}


def jit_state() -> JITState:
    """The current JIT settings (never raises)."""
    return JITState(read_sysctl("net.core.bpf_jit_enable"), read_sysctl("net.core.bpf_jit_harden"),
                    read_sysctl("net.core.bpf_jit_kallsyms"), read_sysctl("net.core.bpf_jit_limit"))
