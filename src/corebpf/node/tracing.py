"""Kernel tracing facilities eBPF attaches through: kprobe/uprobe PMUs and tracefs files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ._fact import Fact, exists, read_int
from .mounts import find_mount

PMU_DIR = "/sys/bus/event_source/devices"


@dataclass(frozen=True)
class TracingInfo:
    """Where kprobes and uprobes could come from on this host.

    ``kprobe_pmu``/``uprobe_pmu`` are the perf PMU type numbers (None: no PMU, see the error);
    ``tracefs`` is the tracefs path in use (None: not mounted); ``kprobe_events`` /
    ``uprobe_events`` / ``available_filter_functions`` say whether those tracefs files exist.
    """

    kprobe_pmu: Fact[int]
    uprobe_pmu: Fact[int]
    tracefs: Optional[str]
    kprobe_events: Optional[bool]
    uprobe_events: Optional[bool]
    available_filter_functions: Optional[bool]

    @property
    def kprobes_possible(self) -> bool:
        """True when either the kprobe PMU or tracefs kprobe_events exists."""
        return self.kprobe_pmu.known or bool(self.kprobe_events)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"kprobe_pmu": self.kprobe_pmu.to_dict(), "uprobe_pmu": self.uprobe_pmu.to_dict(),
                "tracefs": self.tracefs, "kprobe_events": self.kprobe_events, "uprobe_events": self.uprobe_events,
                "available_filter_functions": self.available_filter_functions,
                "kprobes_possible": self.kprobes_possible}


def tracefs_path() -> Optional[str]:
    """Where tracefs is visible (mounted directly or via debugfs), or None."""
    m = find_mount("tracefs")
    if m is not None:
        return m.mount_point
    dbg = find_mount("debugfs")
    if dbg is not None and exists(f"{dbg.mount_point}/tracing/trace"):
        return f"{dbg.mount_point}/tracing"
    return None


def tracing_info() -> TracingInfo:
    """Probe the PMUs and tracefs files (never raises; does not mount anything)."""
    kprobe = read_int(f"{PMU_DIR}/kprobe/type")
    if not kprobe.known:
        kprobe = Fact(None, kprobe.source, f"{kprobe.error} (no kprobe PMU: CONFIG_KPROBE_EVENTS is off or kernel < 4.17)")
    uprobe = read_int(f"{PMU_DIR}/uprobe/type")
    if not uprobe.known:
        uprobe = Fact(None, uprobe.source, f"{uprobe.error} (no uprobe PMU: CONFIG_UPROBE_EVENTS is off)")
    tfs = tracefs_path()
    if tfs is None:
        return TracingInfo(kprobe, uprobe, None, None, None, None)
    return TracingInfo(kprobe, uprobe, tfs, exists(f"{tfs}/kprobe_events"), exists(f"{tfs}/uprobe_events"),
                       exists(f"{tfs}/available_filter_functions"))
