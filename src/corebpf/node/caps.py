"""Process capabilities from ``/proc/self/status``, decoded by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ._fact import read_text

# capability number -> name (include/uapi/linux/capability.h)
CAP_NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
CAP_NUMBERS: dict[str, int] = {name: i for i, name in enumerate(CAP_NAMES)}

# What each capability means for eBPF, for the doctor.
BPF_CAPS: dict[str, str] = {
    "CAP_BPF": "bpf(): create maps, load most programs (Linux >= 5.8; before that CAP_SYS_ADMIN)",
    "CAP_PERFMON": "tracing programs (kprobe, tracepoint, perf_event, fentry) and perf_event_open()",
    "CAP_NET_ADMIN": "networking programs (XDP, tc, cgroup_skb...) and attaching them",
    "CAP_SYS_ADMIN": "everything above on old kernels; mounting bpffs/tracefs; some program types and helpers",
    "CAP_SYS_RESOURCE": "raising RLIMIT_MEMLOCK (kernels before 5.11 charge BPF memory to it)",
}

_FIELDS = {"CapInh": "inheritable", "CapPrm": "permitted", "CapEff": "effective", "CapBnd": "bounding",
           "CapAmb": "ambient"}


def decode(mask: int) -> frozenset[str]:
    """Capability names set in ``mask`` (unknown bits become ``CAP_<n>``)."""
    names = set()
    bit = 0
    while mask >> bit:
        if mask >> bit & 1:
            names.add(CAP_NAMES[bit] if bit < len(CAP_NAMES) else f"CAP_{bit}")
        bit += 1
    return frozenset(names)


def parse_status(text: str) -> dict[str, int]:
    """The capability masks of a ``/proc/<pid>/status`` text: ``{"effective": 0x1ff..., ...}``."""
    masks: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in _FIELDS:
            try:
                masks[_FIELDS[key]] = int(value.strip(), 16)
            except ValueError:
                continue
    return masks


@dataclass(frozen=True)
class Capabilities:
    """The capability sets of this process (source: ``/proc/self/status``).

    ``effective`` etc. are frozensets of names; they are None with ``error`` set when unreadable.
    """

    effective: Optional[frozenset[str]]
    permitted: Optional[frozenset[str]]
    bounding: Optional[frozenset[str]]
    effective_mask: Optional[int]
    source: str = "/proc/self/status"
    error: Optional[str] = None

    def has(self, name: str) -> Optional[bool]:
        """Whether ``name`` (e.g. ``"CAP_BPF"``) is effective; None when unknown."""
        if self.effective is None:
            return None
        return name in self.effective

    def missing_for_bpf(self, tracing: bool = True, networking: bool = True) -> list[str]:
        """The capabilities eBPF needs here that are not effective (CAP_SYS_ADMIN covers them all)."""
        if self.effective is None:
            return []
        if "CAP_SYS_ADMIN" in self.effective:
            return []
        missing = []
        if "CAP_BPF" not in self.effective:
            missing.append("CAP_BPF")
        if tracing and "CAP_PERFMON" not in self.effective:
            missing.append("CAP_PERFMON")
        if networking and "CAP_NET_ADMIN" not in self.effective:
            missing.append("CAP_NET_ADMIN")
        return missing

    def bpf_view(self) -> dict[str, Optional[bool]]:
        """``{cap: effective?}`` for the capabilities in :data:`BPF_CAPS`."""
        return {name: self.has(name) for name in BPF_CAPS}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"source": self.source, "error": self.error,
                "effective_mask": None if self.effective_mask is None else f"{self.effective_mask:016x}",
                "effective": sorted(self.effective) if self.effective is not None else None,
                "permitted": sorted(self.permitted) if self.permitted is not None else None,
                "bpf": self.bpf_view(), "missing_for_bpf": self.missing_for_bpf()}


def from_status_text(text: str, source: str = "/proc/self/status") -> Capabilities:
    """Build :class:`Capabilities` from status text."""
    masks = parse_status(text)
    if "effective" not in masks:
        return Capabilities(None, None, None, None, source, f"{source}: no CapEff line")
    get = masks.get
    return Capabilities(decode(masks["effective"]), decode(get("permitted", 0)), decode(get("bounding", 0)),
                        masks["effective"], source)


def capabilities(pid: str = "self") -> Capabilities:
    """Capabilities of this process (or ``pid``); never raises."""
    text = read_text(f"/proc/{pid}/status")
    if text.value is None:
        return Capabilities(None, None, None, None, text.source, text.error)
    return from_status_text(text.value, text.source)
