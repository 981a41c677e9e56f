"""bpffs pins: every path under every mounted BPF filesystem, mapped to the object it pins.

Mount points come from ``/proc/self/mountinfo``. Each distinct (device, root) is walked once with
``BPF_OBJ_GET`` on every file; the same pins seen through other mount points of that filesystem
(bind mounts) are reported under those paths too without opening them again.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from typing import Iterator, Optional

from .._sys import _generated as g
from .._sys import ops
from .._sys.fd import FD
from ..errors import BPFError
from .fdinfo import ANON_INODES

_INFO = {"prog": g.ProgInfo, "map": g.MapInfo, "link": g.LinkInfo, "btf": g.BtfInfo}


@dataclass(frozen=True)
class Mount:
    """One mount of a BPF filesystem."""

    mount_point: str
    device: str
    root: str


def _unescape(field_: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal
    if "\\" not in field_:
        return field_
    out, i = [], 0
    while i < len(field_):
        if field_[i] == "\\" and i + 3 < len(field_) and field_[i + 1:i + 4].isdigit():
            out.append(chr(int(field_[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field_[i])
            i += 1
    return "".join(out)


def bpffs_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """Every mount of a filesystem of type ``bpf`` seen by this process."""
    try:
        with open(mountinfo) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    mounts = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or not tail or tail[0] != "bpf":
            continue
        mounts.append(Mount(mount_point=_unescape(fields[4]), device=fields[2], root=_unescape(fields[3])))
    return mounts


def _files(top: str) -> Iterator[str]:
    """Paths of the non-directory entries under ``top``, staying on ``top``'s filesystem."""
    try:
        dev = os.stat(top).st_dev
    except OSError:
        return
    stack = [top]
    while stack:
        path = stack.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != dev:
                continue  # another filesystem mounted inside: it is walked on its own
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(st.st_mode):
                yield entry.path


def _open_pin(path: str) -> Optional[FD]:
    for flags in (0, g.BPF_F_RDONLY):  # programs need O_RDWR; read-only pins (maps) may allow only RDONLY
        try:
            return ops.obj_get(path, flags)
        except BPFError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM):
                return None
    return None


def identify(fd: FD) -> Optional[tuple[str, int]]:
    """``(kind, id)`` of the BPF object open at ``fd``, or None if it is not one."""
    try:
        target = os.readlink(f"/proc/self/fd/{int(fd)}")
    except OSError:
        return None
    kind = ANON_INODES.get(target, (None, ""))[0]
    if kind is None:
        return None
    info = _INFO[kind]()
    try:
        ops.obj_get_info_by_fd(int(fd), info)
    except BPFError:
        return None
    return kind, info.id


def pinned_object(path: str) -> Optional[tuple[str, int]]:
    """``(kind, id)`` of the object pinned at ``path``, or None."""
    fd = _open_pin(path)
    if fd is None:
        return None
    with fd:
        return identify(fd)


@dataclass
class PinIndex:
    """Pins found in one walk: ``index.of("map", 7)`` -> paths."""

    by_kind: dict[str, dict[int, list[str]]] = field(
        default_factory=lambda: {k: {} for k in ("prog", "map", "link", "btf")})

    def of(self, kind: str, obj_id: int) -> tuple[str, ...]:
        """Paths that pin object ``obj_id`` of ``kind`` (empty when unpinned)."""
        return tuple(sorted(self.by_kind.get(kind, {}).get(obj_id, ())))

    def add(self, kind: str, obj_id: int, path: str) -> None:
        self.by_kind.setdefault(kind, {}).setdefault(obj_id, []).append(path)


def scan_pins(mounts: Optional[list[Mount]] = None) -> PinIndex:
    """Walk every bpffs mount (or ``mounts``) and index pinned objects by kind and id."""
    if mounts is None:
        mounts = bpffs_mounts()
    index = PinIndex()
    walked: dict[tuple[str, str], str] = {}  # (device, root) -> mount point walked
    found: dict[str, list[tuple[str, int, str]]] = {}  # mount point walked -> (kind, id, relative path)
    for mount in mounts:
        key = (mount.device, mount.root)
        first = walked.get(key)
        if first is None:
            walked[key] = mount.mount_point
            entries = []
            for path in _files(mount.mount_point):
                obj = pinned_object(path)
                if obj is not None:
                    entries.append((obj[0], obj[1], os.path.relpath(path, mount.mount_point)))
            found[mount.mount_point] = entries
            first = mount.mount_point
        for kind, obj_id, rel in found[first]:
            index.add(kind, obj_id, os.path.join(mount.mount_point, rel))
    return index


__all__ = ["Mount", "PinIndex", "bpffs_mounts", "scan_pins", "pinned_object", "identify"]
