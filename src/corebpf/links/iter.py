"""BPF iterators (``SEC("iter/...")``): a link per iterator target; each :meth:`IterLink.read` runs the
program over the kernel objects once and returns what it printed (``bpf_seq_printf``/``seq_write``)."""

from __future__ import annotations

import ctypes
import os
from typing import Any, Iterator, Optional

from .._sys import ops
from .._sys._generated import AttachType
from .._sys.fd import FD
from .link import Link, _fileno


class IterLinkInfo(ctypes.Structure):
    """``union bpf_iter_link_info`` as the largest member (cgroup: order, fd, id; task: tid, pid, pid_fd)."""

    _fields_ = [("a", ctypes.c_uint32), ("b", ctypes.c_uint32), ("c", ctypes.c_uint64)]


class IterLink(Link):
    """An iterator link: :meth:`read` (all output), :meth:`open` (a file to stream), :meth:`lines`."""

    def open(self) -> FD:
        """A new iterator instance: read it like a file until EOF (``os.read``); close it after."""
        return ops.iter_create(self.fileno())

    def read(self, chunk: int = 1 << 16) -> bytes:
        """Run the iterator once and return everything it wrote."""
        with self.open() as fd:
            parts = []
            while True:
                data = os.read(fd.fileno(), chunk)
                if not data:
                    return b"".join(parts)
                parts.append(data)

    def lines(self) -> Iterator[str]:
        """The output of one run, line by line (decoded as UTF-8, errors replaced)."""
        yield from self.read().decode(errors="replace").splitlines()


def iterator(program: Any, *, map: Any = None, cgroup: Any = None, cgroup_order: int = 0, tid: int = 0,
             pid: int = 0, pid_fd: Optional[int] = None) -> IterLink:
    """Create an iterator link for a ``iter/...`` program (its target was fixed at load).

    Parameterised targets: ``map`` (for ``bpf_map_elem``/``sk_storage_map`` iterators), ``cgroup`` (a fd or
    path) with ``cgroup_order``, or one task by ``tid``, ``pid`` or ``pid_fd``.
    """
    info: Optional[IterLinkInfo] = None
    cg_fd = -1
    try:
        if map is not None:
            info = IterLinkInfo(a=_fileno(map))
        elif cgroup is not None:
            from .cgroup import open_cgroup

            cg_fd = open_cgroup(cgroup)
            info = IterLinkInfo(a=cgroup_order, b=cg_fd)
        elif tid or pid or pid_fd is not None:
            info = IterLinkInfo(a=tid, b=pid)
            info.c = pid_fd or 0
        extra = {"iter_info": ctypes.addressof(info), "iter_info_len": ctypes.sizeof(info)} if info is not None else {}
        fd = ops.link_create(_fileno(program), 0, AttachType.TRACE_ITER, **extra)
    finally:
        if cg_fd >= 0:
            os.close(cg_fd)
    name = getattr(program, "name", "") or f"fd {_fileno(program)}"
    return IterLink(f"iterator {name}", "bpf_link", fd)


__all__ = ["iterator", "IterLink"]
