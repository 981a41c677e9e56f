"""Reading a VM's kernel console log: did it boot, did it panic, what went wrong.

Fatal patterns end the VM early (a kernel whose decompressor fails halts forever instead of exiting);
warnings (BUG, Oops, WARNING splats) are reported with the result but do not fail it by themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

__all__ = ["ConsoleVerdict", "scan_console", "tail", "MARKER_PREFIX"]

MARKER_PREFIX = "@@vmtest:"

_FATAL: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Kernel panic - not syncing: (.*)"), "kernel panic: {0}"),
    (re.compile(r"@@vmtest-fail: (.*)"), "init failed: {0}"),
    (re.compile(r"-- System halted"), "the kernel's decompressor halted (corrupt or truncated image)"),
    (re.compile(r"Initramfs unpacking failed: (.*)"), "the initramfs does not unpack: {0}"),
    (re.compile(r"No working init found|Failed to execute /init"), "the initramfs has no working /init"),
    (re.compile(r"Unable to mount root fs"), "no root file system"),
]
_WARNINGS = re.compile(r"^.*(?:\bBUG: |\bOops: |WARNING: CPU: |general protection fault|RCU stall).*$", re.M)
_MARKER = re.compile(r"^@@vmtest: (.*?)\r?$", re.M)


@dataclass
class ConsoleVerdict:
    """What a console log says: a fatal reason (None if none), kernel warnings, progress markers."""

    fatal: Optional[str] = None
    warnings: list[str] = field(default_factory=list)
    markers: list[str] = field(default_factory=list)

    @property
    def booted(self) -> bool:
        """The guest reached our init."""
        return any(m.startswith("init started") for m in self.markers)

    @property
    def command_started(self) -> bool:
        """Init got as far as starting the command."""
        return any(m.startswith("running command") for m in self.markers)


def scan_console(text: str) -> ConsoleVerdict:
    """Classify a console log (``\\r`` tolerated)."""
    verdict = ConsoleVerdict()
    verdict.markers = [m.strip() for m in _MARKER.findall(text)]
    first: Optional[tuple[int, str]] = None
    for pattern, template in _FATAL:
        m = pattern.search(text)
        if m and (first is None or m.start() < first[0]):
            groups = [g.strip() for g in m.groups()] or [m.group(0).strip()]
            first = (m.start(), template.format(*groups))
    verdict.fatal = first[1] if first else None
    verdict.warnings = [w.strip() for w in _WARNINGS.findall(text)]
    return verdict


def tail(text: str, lines: int = 25) -> str:
    """The last ``lines`` non-empty lines of a log, carriage returns dropped."""
    rows = [r for r in text.replace("\r", "").splitlines() if r.strip()]
    return "\n".join(rows[-lines:])
