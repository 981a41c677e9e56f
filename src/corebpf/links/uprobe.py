"""uprobes and uretprobes on functions of executables and shared libraries, and ``uprobe.multi``.

Targets are a function name (resolved through the ELF symbol tables, see :mod:`._elfsym`), a name plus
``offset``, or a raw file offset (``function=None``). ``pid`` limits the probe to one process.
Plan B: the uprobe PMU (perf link or ioctl) -> tracefs ``uprobe_events``; ``uprobe.multi`` (Linux >= 6.6)
-> one uprobe per location.
"""

from __future__ import annotations

import ctypes
from typing import Any, Optional, Sequence

from .._sys import _generated as g
from .._sys import ops
from .._sys._generated import AttachType
from ._elfsym import function_offset, resolve_binary
from . import _tracefs
from .kprobe import pmu_config_bit, pmu_type, tracefs_probe_link
from .link import Link, MultiLink, _fileno
from .perf_event import attach_perf_event, open_perf_event
from .planb import Method, first_working

UPROBE_MULTI_RETURN = 1


def _uprobe_pmu(program: Any, path: str, offset: int, retprobe: bool, pid: Optional[int], ref_ctr_offset: int,
                cookie: int, target: str) -> Link:
    pmu = pmu_type("uprobe")
    raw = ctypes.create_string_buffer(path.encode())
    attr = g.PerfEventAttr(type=pmu)
    config = 0
    if retprobe:
        config |= 1 << pmu_config_bit("uprobe", "retprobe")
    if ref_ctr_offset:
        config |= ref_ctr_offset << pmu_config_bit("uprobe", "ref_ctr_offset")
    attr.config = config
    attr.uprobe_path = ctypes.addressof(raw)  # config1
    attr.probe_offset = offset  # config2
    # a pid-filtered uprobe follows the task on any CPU; a global one is a per-file probe (cpu 0 by convention)
    pfd = open_perf_event(attr, pid if pid is not None else -1, -1 if pid is not None else 0)
    return attach_perf_event(program, pfd, target, cookie=cookie, prefix="uprobe_pmu")


def _uprobe_tracefs(program: Any, path: str, offset: int, retprobe: bool, pid: Optional[int], ref_ctr_offset: int,
                    cookie: int, target: str) -> Link:
    event = _tracefs.unique_event_name("uretprobe" if retprobe else "uprobe", f"{path.rsplit('/', 1)[-1]}_{offset:x}")
    return tracefs_probe_link(program, "uprobe_events", uprobe_definition(path, offset, retprobe, ref_ctr_offset),
                              event, target, cookie, "tracefs", pid)


def uprobe_definition(path: str, offset: int, retprobe: bool = False, ref_ctr_offset: int = 0) -> str:
    """The ``uprobe_events`` line for a probe (``{name}`` stands for the event's group/name)."""
    where = f"{path}:0x{offset:x}" + (f"(0x{ref_ctr_offset:x})" if ref_ctr_offset else "")
    return f"{'r' if retprobe else 'p'}:{{name}} {where}"


def resolve(binary: str, function: Optional[str], offset: int = 0, pid: Optional[int] = None) -> tuple[str, int]:
    """(absolute path, file offset) of ``function`` + ``offset`` in ``binary`` (``function`` None: ``offset``
    is a file offset)."""
    path = resolve_binary(binary, pid)
    if function is None:
        return path, offset
    if function.startswith("0x"):
        return path, int(function, 16) + offset
    return path, function_offset(path, function) + offset


def uprobe(program: Any, binary: str, function: Optional[str] = None, offset: int = 0, *, pid: Optional[int] = None,
           retprobe: bool = False, ref_ctr_offset: int = 0, cookie: int = 0, method: Optional[str] = None) -> Link:
    """Attach a ``uprobe`` (``retprobe``: uretprobe) program to ``function`` of ``binary`` (path, program
    name or library name such as ``"libc.so.6"``), in every process or only ``pid``.

    A missing function raises :class:`~corebpf.links.TargetNotFoundError` with the closest names in that
    file. ``ref_ctr_offset`` is a USDT semaphore's file offset. ``method``: ``"uprobe_pmu"`` or ``"tracefs"``.
    """
    path, off = resolve(binary, function, offset, pid)
    what = function or f"0x{offset:x}"
    target = f"{'uretprobe' if retprobe else 'uprobe'} {path}:{what}" + (f" pid {pid}" if pid is not None else "")
    return first_working(target, [
        Method("uprobe_pmu", lambda: _uprobe_pmu(program, path, off, retprobe, pid, ref_ctr_offset, cookie, target),
               "uprobe_pmu"),
        Method("tracefs", lambda: _uprobe_tracefs(program, path, off, retprobe, pid, ref_ctr_offset, cookie, target)),
    ], force=method)


def uretprobe(program: Any, binary: str, function: Optional[str] = None, offset: int = 0, **kwargs: Any) -> Link:
    """:func:`uprobe` on return."""
    return uprobe(program, binary, function, offset, retprobe=True, **kwargs)


def _multi_link(program: Any, path: str, offsets: list[int], ref_ctrs: Optional[Sequence[int]],
                cookies: Optional[Sequence[int]], pid: Optional[int], retprobe: bool, target: str) -> Link:
    n = len(offsets)
    raw = ctypes.create_string_buffer(path.encode())
    offs = (ctypes.c_uint64 * n)(*offsets)
    refs = (ctypes.c_uint64 * n)(*ref_ctrs) if ref_ctrs else None
    cks = (ctypes.c_uint64 * n)(*cookies) if cookies else None
    fd = ops.link_create(_fileno(program), 0, AttachType.TRACE_UPROBE_MULTI,
                         uprobe_multi__path=ctypes.addressof(raw), uprobe_multi__offsets=ctypes.addressof(offs),
                         uprobe_multi__ref_ctr_offsets=ctypes.addressof(refs) if refs is not None else 0,
                         uprobe_multi__cookies=ctypes.addressof(cks) if cks is not None else 0,
                         uprobe_multi__cnt=n, uprobe_multi__flags=UPROBE_MULTI_RETURN if retprobe else 0,
                         uprobe_multi__pid=pid or 0)
    return Link(target, "bpf_link", fd)


def _one_by_one(program: Any, path: str, offsets: list[int], ref_ctrs: Optional[Sequence[int]],
                cookies: Optional[Sequence[int]], pid: Optional[int], retprobe: bool, target: str) -> Link:
    links: list[Link] = []
    try:
        for i, off in enumerate(offsets):
            links.append(uprobe(program, path, None, off, pid=pid, retprobe=retprobe,
                                ref_ctr_offset=ref_ctrs[i] if ref_ctrs else 0, cookie=cookies[i] if cookies else 0))
    except BaseException:
        for lk in links:
            lk.close()
        raise
    return MultiLink(target, "uprobe_per_location(" + "/".join(sorted({lk.method for lk in links})) + ")", links)


def uprobe_multi(program: Any, binary: str, functions: Optional[Sequence[str]] = None,
                 offsets: Optional[Sequence[int]] = None, *, pid: Optional[int] = None, retprobe: bool = False,
                 ref_ctr_offsets: Optional[Sequence[int]] = None, cookies: Optional[Sequence[int]] = None,
                 method: Optional[str] = None) -> Link:
    """Attach one program at many places of ``binary``: ``functions`` (names; globs allowed) and/or raw
    file ``offsets``. Uses an ``uprobe.multi`` link (program loaded with ``TRACE_UPROBE_MULTI``) and falls
    back to one uprobe per location (``method``: ``"uprobe_multi"`` or ``"per_location"``)."""
    import fnmatch

    from ._elfsym import functions as elf_functions

    path = resolve_binary(binary, pid)
    offs = list(offsets or [])
    for fn in functions or ():
        if any(c in fn for c in "*?["):
            offs.extend(s.offset for n, s in sorted(elf_functions(path).items()) if fnmatch.fnmatchcase(n, fn))
        else:
            offs.append(function_offset(path, fn))
    if not offs:
        raise ValueError("uprobe_multi needs at least one function or offset")
    target = f"uprobe.multi {path} ({len(offs)} locations)"
    return first_working(target, [
        Method("uprobe_multi", lambda: _multi_link(program, path, offs, ref_ctr_offsets, cookies, pid, retprobe,
                                                   target), "uprobe_multi"),
        Method("per_location", lambda: _one_by_one(program, path, offs, ref_ctr_offsets, cookies, pid, retprobe,
                                                   target)),
    ], force=method)


__all__ = ["uprobe", "uretprobe", "uprobe_multi", "resolve", "uprobe_definition", "UPROBE_MULTI_RETURN"]
