"""kprobes and kretprobes: the perf kprobe PMU (with a BPF link or the ioctl), else the legacy tracefs
``kprobe_events`` interface; ``ksyscall`` for syscall entry points.

Plan B order (as libbpf): kprobe PMU (Linux >= 4.17) -> ``kprobe_events`` entry + tracepoint perf
event. Legacy entries are named ``corebpf/kprobe_<fn>_<pid>_<n>`` and removed when the link closes
(also on garbage collection and at interpreter exit).
"""

from __future__ import annotations

import ctypes
from typing import Any, Optional

from .._sys import _generated as g
from .._sys._generated import PerfType
from ..errors import CoreBPFError
from . import _tracefs
from ._ksyms import check_kernel_function, syscall_function
from .link import Link
from .perf_event import attach_perf_event, open_perf_event
from .planb import Method, first_working

PMU_DIR = "/sys/bus/event_source/devices"


def pmu_type(kind: str) -> int:
    """The perf type number of the ``kprobe``/``uprobe`` PMU (raises when the PMU is missing)."""
    path = f"{PMU_DIR}/{kind}/type"
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        raise CoreBPFError(f"no {kind} PMU ({path} missing): kernel without CONFIG_{kind.upper()}_EVENTS "
                           f"or older than 4.17") from None


def pmu_config_bit(kind: str, field: str) -> int:
    """The ``config`` bit of a PMU format field (``retprobe`` -> 0), from ``format/<field>``."""
    try:
        with open(f"{PMU_DIR}/{kind}/format/{field}") as f:
            spec = f.read().strip()  # "config:0" or "config:32-63"
        return int(spec.split(":", 1)[1].split("-")[0])
    except (OSError, ValueError, IndexError):
        return 0 if field == "retprobe" else 32


def _kprobe_pmu(program: Any, func: str, offset: int, retprobe: bool, cookie: int, target: str) -> Link:
    pmu = pmu_type("kprobe")
    name = ctypes.create_string_buffer(func.encode())
    attr = g.PerfEventAttr(type=pmu)
    if retprobe:
        attr.config = 1 << pmu_config_bit("kprobe", "retprobe")
    attr.kprobe_func = ctypes.addressof(name)  # config1
    attr.probe_offset = offset  # config2
    pfd = open_perf_event(attr, -1, 0)
    return attach_perf_event(program, pfd, target, cookie=cookie, prefix="kprobe_pmu")


def tracefs_probe_link(program: Any, file: str, definition_fmt: str, event: str, target: str, cookie: int,
                       prefix: str, pid: Optional[int] = None) -> Link:
    """Create a ``corebpf/<event>`` probe in ``file`` (kprobe_events/uprobe_events) from ``definition_fmt``
    (``{name}`` is replaced by ``corebpf/<event>``), open its tracepoint (for process ``pid`` only, if
    given) and attach ``program``."""
    _tracefs.add_probe_event(file, definition_fmt.format(name=f"{_tracefs.GROUP}/{event}"))
    try:
        tp_id = _tracefs.event_id(_tracefs.GROUP, event)
        attr = g.PerfEventAttr(type=PerfType.TRACEPOINT, config=tp_id)  # counting: no per-hit overflow
        pfd = open_perf_event(attr, pid, -1) if pid is not None else open_perf_event(attr, -1, 0)
        link = attach_perf_event(program, pfd, target, cookie=cookie, prefix=prefix)
    except BaseException:
        _tracefs.remove_probe_event(file, event)
        raise
    pins = link.pinned_at  # a pinned link keeps using the event: then the entry stays (and is reported)

    def remove() -> None:
        if not pins:
            _tracefs.remove_probe_event(file, event)

    link.add_cleanup(remove, last=True)  # after the perf event is closed
    return link  # the link's finalizer also runs at interpreter exit: no entry outlives us


def kprobe_definition(func: str, offset: int = 0, retprobe: bool = False, maxactive: int = 0) -> str:
    """The ``kprobe_events`` line for a probe (``{name}`` stands for the event's group/name)."""
    kind = (f"r{maxactive}" if maxactive else "r") if retprobe else "p"
    return f"{kind}:{{name}} {func}+{offset}" if offset else f"{kind}:{{name}} {func}"


def _kprobe_tracefs(program: Any, func: str, offset: int, retprobe: bool, cookie: int, target: str,
                    maxactive: int) -> Link:
    event = _tracefs.unique_event_name("kretprobe" if retprobe else "kprobe", func)
    return tracefs_probe_link(program, "kprobe_events", kprobe_definition(func, offset, retprobe, maxactive), event,
                              target, cookie, "tracefs")


def kprobe(program: Any, function: str, offset: int = 0, *, retprobe: bool = False, cookie: int = 0,
           maxactive: int = 0, method: Optional[str] = None) -> Link:
    """Attach a ``kprobe`` program to kernel function ``function`` (+ ``offset``), or on its return.

    Methods, in order: ``"kprobe_pmu"`` then ``"tracefs"`` (``method`` forces one). A function
    missing from ``/proc/kallsyms`` raises :class:`~corebpf.links.TargetNotFoundError` with close
    matches; when no method works, :class:`~corebpf.links.AttachError` says why for each.
    ``maxactive`` (kretprobes through tracefs only) bounds concurrent instances.
    """
    if retprobe and offset:
        raise ValueError("a kretprobe cannot have an offset")
    check_kernel_function(function)
    target = f"{'kretprobe' if retprobe else 'kprobe'} {function}" + (f"+{offset}" if offset else "")
    return first_working(target, [
        Method("kprobe_pmu", lambda: _kprobe_pmu(program, function, offset, retprobe, cookie, target), "kprobe_pmu"),
        Method("tracefs", lambda: _kprobe_tracefs(program, function, offset, retprobe, cookie, target, maxactive),
               "kprobe_legacy"),
    ], force=method, hint="this kernel has no usable kprobes: use a tracepoint or raw_tp program instead")


def kretprobe(program: Any, function: str, **kwargs: Any) -> Link:
    """:func:`kprobe` on return."""
    return kprobe(program, function, retprobe=True, **kwargs)


def ksyscall(program: Any, syscall: str, *, retprobe: bool = False, **kwargs: Any) -> Link:
    """kprobe on the entry function of system call ``syscall`` (``"getpgid"``), whatever its arch prefix."""
    return kprobe(program, syscall_function(syscall), retprobe=retprobe, **kwargs)


__all__ = ["kprobe", "kretprobe", "ksyscall", "kprobe_definition", "pmu_type", "pmu_config_bit", "tracefs_probe_link"]
