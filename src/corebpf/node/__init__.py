"""Facts about this host that decide what eBPF can do here.

Every fact says where it came from; a fact that cannot be read is None with the reason, never an
exception. :func:`facts` gathers them all (the doctor's input); the modules can be used alone:

    >>> from corebpf import node
    >>> node.load_kconfig().enabled("BPF_SYSCALL")
    True
    >>> node.read_lockdown().mode
    'integrity'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from .._lazy import lazy_exports

if TYPE_CHECKING:  # pragma: no cover
    from ._fact import Fact
    from .btfinfo import BTFInfo
    from .caps import Capabilities
    from .kconfig import KConfig
    from .kernel import KernelInfo
    from .lockdown import Lockdown
    from .mounts import MountStatus
    from .sandbox import SandboxInfo
    from .sysctl import JITState
    from .tracing import TracingInfo

# public name -> submodule defining it, imported on first use: ``corebpf doctor`` reads the lockdown
# mode, mounts and capabilities before its probes start, and the other modules afterwards
_LAZY = {
    "Fact": "_fact", "BTFInfo": "btfinfo", "btf_info": "btfinfo",
    **dict.fromkeys(("BPF_CAPS", "CAP_NAMES", "Capabilities", "capabilities"), "caps"),
    **dict.fromkeys(("BPF_OPTIONS", "KConfig", "load_kconfig", "parse_kconfig"), "kconfig"),
    **dict.fromkeys(("KernelInfo", "kernel_info", "parse_release"), "kernel"),
    **dict.fromkeys(("LOCKDOWN_MEANING", "Lockdown", "parse_lockdown", "read_lockdown"), "lockdown"),
    **dict.fromkeys(("MOUNTED_BY_US", "STANDARD", "Mount", "MountStatus", "ensure_mounted", "find_mount",
                     "mount_status", "parse_mountinfo"), "mounts"),
    **dict.fromkeys(("Evidence", "SandboxInfo", "detect", "detect_from"), "sandbox"),
    **dict.fromkeys(("JITState", "jit_state", "read_sysctl"), "sysctl"),
    **dict.fromkeys(("TracingInfo", "tracing_info"), "tracing"),
}


__getattr__ = lazy_exports(__name__, globals(), _LAZY)


@dataclass(frozen=True)
class NodeFacts:
    """Everything :func:`facts` gathered about this host."""

    kernel: KernelInfo
    kconfig: KConfig
    btf: BTFInfo
    jit: JITState
    lockdown: Lockdown
    unprivileged_bpf_disabled: Fact[int]
    perf_event_paranoid: Fact[int]
    capabilities: Capabilities
    mounts: dict[str, MountStatus]
    sandbox: SandboxInfo
    tracing: TracingInfo

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view of every fact."""
        return {"kernel": self.kernel.to_dict(), "kconfig": self.kconfig.to_dict(), "btf": self.btf.to_dict(),
                "jit": self.jit.to_dict(), "lockdown": self.lockdown.to_dict(),
                "unprivileged_bpf_disabled": self.unprivileged_bpf_disabled.to_dict(),
                "perf_event_paranoid": self.perf_event_paranoid.to_dict(),
                "capabilities": self.capabilities.to_dict(),
                "mounts": {k: v.to_dict() for k, v in self.mounts.items()},
                "sandbox": self.sandbox.to_dict(), "tracing": self.tracing.to_dict()}


def facts(mount: bool = True, *, lockdown: Optional[Lockdown] = None) -> NodeFacts:
    """Gather every host fact. With ``mount`` (default), mounts securityfs (to read the lockdown
    mode) and tracefs when they are missing and this process may mount them; see
    :data:`MOUNTED_BY_US`. ``lockdown``: the mode already read (by the caller, with the same ``mount``).
    Never raises."""
    from .btfinfo import btf_info
    from .caps import capabilities
    from .kconfig import load_kconfig
    from .kernel import kernel_info
    from .lockdown import read_lockdown
    from .mounts import ensure_mounted, mount_status
    from .sandbox import detect
    from .sysctl import jit_state, read_sysctl
    from .tracing import tracing_info

    if lockdown is None:
        lockdown = read_lockdown(mount=mount)
    if mount:
        try:
            ensure_mounted("tracefs")
        except Exception:  # reported by mount_status() below
            pass
    return NodeFacts(kernel=kernel_info(), kconfig=load_kconfig(), btf=btf_info(), jit=jit_state(),
                     lockdown=lockdown, unprivileged_bpf_disabled=read_sysctl("kernel.unprivileged_bpf_disabled"),
                     perf_event_paranoid=read_sysctl("kernel.perf_event_paranoid"), capabilities=capabilities(),
                     mounts=mount_status(), sandbox=detect(), tracing=tracing_info())


__all__ = [
    "Fact", "NodeFacts", "facts",
    "KernelInfo", "kernel_info", "parse_release",
    "KConfig", "BPF_OPTIONS", "load_kconfig", "parse_kconfig",
    "BTFInfo", "btf_info",
    "JITState", "jit_state", "read_sysctl",
    "Lockdown", "LOCKDOWN_MEANING", "parse_lockdown", "read_lockdown",
    "Capabilities", "CAP_NAMES", "BPF_CAPS", "capabilities",
    "Mount", "MountStatus", "STANDARD", "MOUNTED_BY_US", "ensure_mounted", "find_mount", "mount_status",
    "parse_mountinfo",
    "Evidence", "SandboxInfo", "detect", "detect_from",
    "TracingInfo", "tracing_info",
]
