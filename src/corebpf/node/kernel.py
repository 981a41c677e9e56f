"""The running kernel: release, version string, machine, boot id."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from ._fact import Fact, read_text


@dataclass(frozen=True)
class KernelInfo:
    """``uname(2)`` of the running kernel plus its boot id (source: ``uname(2)`` and procfs)."""

    release: str
    version: str
    machine: str
    numeric: tuple[int, int, int]
    boot_id: Fact[str]
    source: str = "uname(2)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"release": self.release, "version": self.version, "machine": self.machine,
                "numeric": list(self.numeric), "boot_id": self.boot_id.to_dict(), "source": self.source}


def parse_release(release: str) -> tuple[int, int, int]:
    """``"6.18.44-fc-v782"`` -> ``(6, 18, 44)``; missing parts are 0."""
    m = re.match(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", release)
    if not m:
        return (0, 0, 0)
    return (int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0))


def kernel_info() -> KernelInfo:
    """Facts of the running kernel (never raises)."""
    u = os.uname()
    raw = read_text("/proc/sys/kernel/random/boot_id", 128)
    boot = Fact(raw.value.strip(), raw.source) if raw.value is not None else raw
    return KernelInfo(release=u.release, version=u.version, machine=u.machine,
                      numeric=parse_release(u.release), boot_id=boot)
