"""Which processes hold BPF objects: one pass over ``/proc/<pid>/fd`` and the matching fdinfo files.

A BPF fd reads back as ``anon_inode:bpf-prog`` (``bpf-map``, ``bpf_link``, ``btf``) and its fdinfo
names the object id. A process holding a link also keeps the link's program running, so it is
recorded as an owner of that program too (``via="link"``); likewise a perf event fd with a program
attached by the legacy ioctl (``via="perf_event"``, found with ``BPF_TASK_FD_QUERY``).
Processes that exit or deny access during the scan are skipped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Optional

from .._sys import ops
from ..errors import BPFError
from .fdinfo import ANON_INODES, int_field, read_fdinfo

_PERF_EVENT = "anon_inode:[perf_event]"
_KINDS = ("prog", "map", "link", "btf")


@dataclass(frozen=True)
class Owner:
    """A process that holds file descriptors to an object (and so keeps it loaded).

    ``via`` says how: ``"fd"`` (an fd to the object itself), ``"link"`` (an fd to a BPF link that
    runs the program; ``link_id`` names it) or ``"perf_event"`` (a perf event fd the program is
    attached to with the legacy ioctl).
    """

    pid: int
    comm: str
    uid: int
    fds: tuple[int, ...]
    via: str = "fd"
    link_id: int = 0

    @property
    def fd(self) -> int:
        """The lowest of the process's fds to the object."""
        return self.fds[0]


@dataclass
class OwnerIndex:
    """Owners of every BPF object found in one scan: ``index.of("prog", 42)`` -> owners."""

    by_kind: dict[str, dict[int, list[Owner]]] = field(default_factory=lambda: {k: {} for k in _KINDS})

    def of(self, kind: str, obj_id: int) -> tuple[Owner, ...]:
        """Owners of object ``obj_id`` of ``kind`` (empty when no process holds it)."""
        return tuple(self.by_kind.get(kind, {}).get(obj_id, ()))

    def pids(self) -> set[int]:
        """Every pid that holds at least one BPF object."""
        return {o.pid for objs in self.by_kind.values() for owners in objs.values() for o in owners}


def _comm(proc: str, pid: str) -> str:
    try:
        with open(f"{proc}/{pid}/comm", "rb") as f:
            return f.read().rstrip(b"\n").decode(errors="replace")
    except OSError:
        return ""


def _uid(proc: str, pid: str) -> int:
    try:
        return os.stat(f"{proc}/{pid}").st_uid
    except OSError:
        return -1


def _bpf_fds(proc: str, pid: str, perf_events: bool) -> list[tuple[int, str]]:
    """``(fd, readlink target)`` of the BPF (and perf event) fds of one process."""
    try:
        dfd = os.open(f"{proc}/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return []
    found = []
    try:
        for name in os.listdir(dfd):
            try:
                target = os.readlink(name, dir_fd=dfd)
            except OSError:
                continue
            if target in ANON_INODES or (perf_events and target == _PERF_EVENT):
                found.append((int(name), target))
    except OSError:
        pass
    finally:
        os.close(dfd)
    return found


def _perf_event_prog(pid: int, fd: int) -> Optional[int]:
    try:
        return ops.task_fd_query(pid, fd).prog_id or None
    except BPFError:
        return None  # no program attached to this event, or the process went away


def scan_owners(kinds: Iterable[str] = _KINDS, *, perf_events: bool = True, proc: str = "/proc") -> OwnerIndex:
    """Scan every process once and index the BPF objects each one holds.

    ``kinds`` limits what is recorded; ``perf_events`` also resolves programs attached to perf event
    fds (one ``BPF_TASK_FD_QUERY`` per perf event fd on the host).
    """
    wanted = set(kinds)
    perf_events = perf_events and "prog" in wanted
    index = OwnerIndex()
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return index
    for pid in pids:
        fds = _bpf_fds(proc, pid, perf_events)
        if not fds:
            continue
        # (kind, id, via, link_id) -> fds
        held: dict[tuple[str, int, str, int], list[int]] = {}
        for fd, target in fds:
            if target == _PERF_EVENT:  # (only meaningful on the real /proc)
                prog_id = _perf_event_prog(int(pid), fd)
                if prog_id:
                    held.setdefault(("prog", prog_id, "perf_event", 0), []).append(fd)
                continue
            kind, key = ANON_INODES[target]
            fields = read_fdinfo(f"{proc}/{pid}/fdinfo/{fd}")
            obj_id = int_field(fields, key)
            if obj_id is None:
                continue
            if kind in wanted:
                held.setdefault((kind, obj_id, "fd", 0), []).append(fd)
            if kind == "link" and "prog" in wanted:
                prog_id = int_field(fields, "prog_id")
                if prog_id:
                    held.setdefault(("prog", prog_id, "link", obj_id), []).append(fd)
        if not held:
            continue
        comm, uid = _comm(proc, pid), _uid(proc, pid)
        for (kind, obj_id, via, link_id), owned in held.items():
            owner = Owner(pid=int(pid), comm=comm, uid=uid, fds=tuple(sorted(owned)), via=via, link_id=link_id)
            index.by_kind[kind].setdefault(obj_id, []).append(owner)
    return index


__all__ = ["Owner", "OwnerIndex", "scan_owners"]
