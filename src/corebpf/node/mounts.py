"""Mounted filesystems (``/proc/self/mountinfo``) and mounting the ones eBPF needs."""

from __future__ import annotations

import ctypes
import os
import re
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import NodeError
from ._fact import read_text

# kind -> (filesystem type, standard mount point, what it is for)
STANDARD: dict[str, tuple[str, str, str]] = {
    "bpffs": ("bpf", "/sys/fs/bpf", "pinning maps, programs and links"),
    "tracefs": ("tracefs", "/sys/kernel/tracing", "tracepoint ids, kprobe_events, available_filter_functions"),
    "debugfs": ("debugfs", "/sys/kernel/debug", "older tools find tracefs at /sys/kernel/debug/tracing"),
    "securityfs": ("securityfs", "/sys/kernel/security", "reading the lockdown mode"),
    "cgroup2": ("cgroup2", "/sys/fs/cgroup", "attaching cgroup programs"),
}

# Mounts made by this process (kind -> path), so callers can report (and undo) them.
MOUNTED_BY_US: dict[str, str] = {}


@dataclass(frozen=True)
class Mount:
    """One line of ``/proc/self/mountinfo``."""

    mount_id: int
    parent_id: int
    device: str
    root: str
    mount_point: str
    options: str
    fs_type: str
    source: str
    super_options: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse mountinfo text; malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        parts = line.split()
        try:
            sep = parts.index("-", 6)
            mounts.append(Mount(int(parts[0]), int(parts[1]), parts[2], _unescape(parts[3]), _unescape(parts[4]),
                                parts[5], parts[sep + 1], _unescape(parts[sep + 2]) if len(parts) > sep + 2 else "",
                                parts[sep + 3] if len(parts) > sep + 3 else ""))
        except (ValueError, IndexError):
            continue
    return mounts


def mounts() -> list[Mount]:
    """The mounts this process sees (empty when mountinfo is unreadable)."""
    text = read_text("/proc/self/mountinfo", 1 << 24)
    return parse_mountinfo(text.value) if text.value is not None else []


def find_mounts(kind: str, table: Optional[list[Mount]] = None) -> list[Mount]:
    """Every mount of ``kind`` (a key of :data:`STANDARD`, or a raw filesystem type)."""
    fs_type = STANDARD[kind][0] if kind in STANDARD else kind
    return [m for m in (table if table is not None else mounts()) if m.fs_type == fs_type]


def find_mount(kind: str, table: Optional[list[Mount]] = None) -> Optional[Mount]:
    """The preferred mount of ``kind``: the one at the standard place, else the first."""
    found = find_mounts(kind, table)
    if not found:
        return None
    std = STANDARD.get(kind, ("", "", ""))[1]
    for m in found:
        if m.mount_point == std:
            return m
    return found[0]


def _filesystems() -> set[str]:
    text = read_text("/proc/filesystems")
    if text.value is None:
        return set()
    return {line.split()[-1] for line in text.value.splitlines() if line.strip()}


def _target_for(kind: str) -> str:
    fs_type, path, _ = STANDARD[kind]
    if kind == "cgroup2":
        # on hybrid cgroup v1 hosts /sys/fs/cgroup is a tmpfs of v1 controllers: v2 goes under unified/
        top = find_mount("tmpfs", [m for m in mounts() if m.mount_point == path])
        if top is not None:
            return f"{path}/unified"
    return path


def can_mount(kind: str) -> tuple[bool, str]:
    """Whether :func:`ensure_mounted` could mount ``kind`` here, and why not."""
    if kind not in STANDARD:
        return False, f"unknown filesystem kind {kind!r} (known: {', '.join(STANDARD)})"
    fs_type = STANDARD[kind][0]
    known = _filesystems()
    if known and fs_type not in known:
        return False, f"the kernel does not know filesystem type {fs_type!r} (not in /proc/filesystems)"
    from .caps import capabilities

    if capabilities().has("CAP_SYS_ADMIN") is False:
        return False, "mounting needs CAP_SYS_ADMIN (run as root)"
    target = _target_for(kind)
    if not os.path.isdir(target):
        return False, f"mount point {target} does not exist"
    return True, f"can be mounted at {target}"


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]


def ensure_mounted(kind: str) -> str:
    """Return where ``kind`` (bpffs, tracefs, debugfs, securityfs, cgroup2) is mounted, mounting it at
    the standard place first when it is not.

    Raises :class:`NodeError` saying what failed and what to do. Mounts made here are recorded in
    :data:`MOUNTED_BY_US`.
    """
    if kind not in STANDARD:
        raise NodeError(f"unknown filesystem kind {kind!r}; known: {', '.join(STANDARD)}")
    found = find_mount(kind)
    if found is not None:
        return found.mount_point
    if kind == "tracefs":  # debugfs exposes tracefs at debug/tracing (automounted)
        dbg = find_mount("debugfs")
        if dbg is not None and os.path.isdir(f"{dbg.mount_point}/tracing/events"):
            return f"{dbg.mount_point}/tracing"
    fs_type, _, purpose = STANDARD[kind]
    ok, why = can_mount(kind)
    target = _target_for(kind)
    if not ok:
        raise NodeError(f"{kind} is not mounted and cannot be mounted: {why}; it is needed for {purpose}. "
                        f"Ask an administrator to run: mount -t {fs_type} {fs_type} {target}")
    ret = _libc.mount(fs_type.encode(), target.encode(), fs_type.encode(), 0, None)
    if ret != 0:
        err = ctypes.get_errno()
        raise NodeError(f"mount -t {fs_type} {fs_type} {target} failed: {os.strerror(err)}; it is needed for "
                        f"{purpose}. In a container, mount it on the host and bind it in (or run privileged)")
    MOUNTED_BY_US[kind] = target
    return target


@dataclass(frozen=True)
class MountStatus:
    """Whether a filesystem eBPF needs is mounted (where) and whether it could be mounted."""

    kind: str
    fs_type: str
    mounted: bool
    paths: tuple[str, ...]
    mountable: Optional[bool]
    reason: str
    mounted_by_corebpf: bool = False
    source: str = "/proc/self/mountinfo"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"kind": self.kind, "fs_type": self.fs_type, "mounted": self.mounted, "paths": list(self.paths),
                "mountable": self.mountable, "reason": self.reason, "mounted_by_corebpf": self.mounted_by_corebpf,
                "source": self.source}


def mount_status() -> dict[str, MountStatus]:
    """The state of every filesystem in :data:`STANDARD` (never raises)."""
    table = mounts()
    out = {}
    for kind, (fs_type, _, purpose) in STANDARD.items():
        found = find_mounts(kind, table)
        if found:
            out[kind] = MountStatus(kind, fs_type, True, tuple(m.mount_point for m in found), None,
                                    f"mounted (for {purpose})", kind in MOUNTED_BY_US)
        else:
            ok, why = can_mount(kind)
            out[kind] = MountStatus(kind, fs_type, False, (), ok, f"not mounted; {why} (needed for {purpose})")
    return out
