"""Perf events: attaching a program to an open perf event (shared by tracepoints, kprobes, uprobes),
and ``perf_event()``, sampling programs on software/hardware events on every CPU.

A program goes onto a perf event with a BPF link (Linux >= 5.15, pinnable, carries a cookie) or, as
plan B, the ``PERF_EVENT_IOC_SET_BPF`` ioctl; either way closing the perf event detaches it.
"""

from __future__ import annotations

import errno
import fcntl
from typing import Any, Optional, Union

from .._sys import _generated as g
from .._sys import ops
from .._sys._generated import AttachType, PerfHwId, PerfSwId, PerfType
from .._sys.fd import FD
from .._sys.syscall import perf_event_open
from ..errors import BPFError, CoreBPFError
from .link import Link, MultiLink, _fileno
from .planb import Attempt, AttachError

PERF_EVENT_IOC_ENABLE = 0x2400
PERF_EVENT_IOC_DISABLE = 0x2401
PERF_EVENT_IOC_SET_BPF = 0x40042408


def attach_perf_event(program: Any, pfd: FD, target: str, *, cookie: int = 0, prefix: str = "perf_event",
                      force_ioctl: bool = False) -> Link:
    """Attach ``program`` to the open perf event ``pfd`` (taken over: closed with the link, or on failure).

    Tries a BPF link first, then the legacy ioctl (no cookie possible there). ``link.method`` is
    ``"<prefix>+bpf_link"`` or ``"<prefix>+ioctl"``.
    """
    attempts: list[Attempt] = []
    try:
        if not force_ioctl:
            try:
                lfd = ops.link_create(_fileno(program), pfd.fileno(), AttachType.PERF_EVENT,
                                      perf_event__bpf_cookie=cookie)
                return Link(target, f"{prefix}+bpf_link", lfd, [pfd.close])
            except BPFError as exc:
                attempts.append(Attempt(f"{prefix}+bpf_link", False, str(exc)))
                if exc.errno not in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP, 524):
                    raise AttachError(target, attempts) from None
        if cookie:
            raise AttachError(target, attempts + [Attempt(f"{prefix}+ioctl", False, "a BPF cookie needs a BPF link "
                                                          "(Linux >= 5.15)")])
        try:
            fcntl.ioctl(pfd.fileno(), PERF_EVENT_IOC_SET_BPF, _fileno(program))
            fcntl.ioctl(pfd.fileno(), PERF_EVENT_IOC_ENABLE, 0)
        except OSError as exc:
            attempts.append(Attempt(f"{prefix}+ioctl", False, f"PERF_EVENT_IOC_SET_BPF: {exc.strerror}"))
            raise AttachError(target, attempts) from None
        return Link(target, f"{prefix}+ioctl", None, [pfd.close], attempts)
    except BaseException:
        pfd.close()
        raise


def open_perf_event(attr: g.PerfEventAttr, pid: int = -1, cpu: int = 0) -> FD:
    """``perf_event_open`` returning an owned :class:`FD`."""
    return FD(perf_event_open(attr, pid, cpu))


def online_cpus() -> list[int]:
    """The online CPU numbers (``/sys/devices/system/cpu/online``)."""
    try:
        with open("/sys/devices/system/cpu/online") as f:
            text = f.read().strip()
    except OSError:
        import os

        return list(range(os.cpu_count() or 1))
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


_SOFTWARE = {e.name.lower().replace("_", "-"): e for e in PerfSwId}
_HARDWARE = {e.name.lower().replace("_", "-"): e for e in PerfHwId}
EventSpec = Union[str, tuple[int, int]]


def _event(event: EventSpec) -> tuple[int, int]:
    if isinstance(event, tuple):
        return int(event[0]), int(event[1])
    key = event.lower().replace("_", "-")
    if key in _SOFTWARE:
        return PerfType.SOFTWARE, _SOFTWARE[key]
    if key in _HARDWARE:
        return PerfType.HARDWARE, _HARDWARE[key]
    from ._matches import close_matches
    from .planb import TargetNotFoundError

    raise TargetNotFoundError("perf event", event, close_matches(key, [*_SOFTWARE, *_HARDWARE]),
                              "software/hardware events")


def perf_event(program: Any, event: EventSpec = "cpu-clock", *, sample_period: Optional[int] = None,
               sample_freq: Optional[int] = None, cpus: Optional[list[int]] = None, pid: int = -1,
               cookie: int = 0) -> MultiLink:
    """Run a ``perf_event`` program on every sample of ``event`` on each CPU (``cpus`` default: all online).

    ``event`` is a name (``"cpu-clock"``, ``"page-faults"``, ``"cpu-cycles"``...) or ``(type, config)``.
    Give ``sample_period`` (events between samples) or ``sample_freq`` (Hz); the default is 1000 Hz.
    With ``pid`` >= 0 only that process is sampled (and ``cpus`` defaults to ``[-1]``: any CPU).
    """
    etype, config = _event(event)
    if sample_period is None and sample_freq is None:
        sample_freq = 1000
    if cpus is None:
        cpus = [-1] if pid >= 0 else online_cpus()
    name = event if isinstance(event, str) else f"type={etype},config={config}"
    links: list[Link] = []
    try:
        for cpu in cpus:
            attr = g.PerfEventAttr(type=etype, config=config)
            if sample_freq is not None:
                attr.freq = 1
                attr.sample_freq = sample_freq
            else:
                attr.sample_period = int(sample_period or 1)
            try:
                pfd = open_perf_event(attr, pid, cpu)
            except BPFError as exc:
                if exc.errno == errno.ENOENT and etype == PerfType.HARDWARE:
                    raise CoreBPFError(f"hardware event {name!r} does not exist here (no hardware PMU, "
                                       f"as in most VMs): use a software event such as 'cpu-clock'") from None
                raise
            links.append(attach_perf_event(program, pfd, f"perf_event {name} cpu {cpu}", cookie=cookie))
    except BaseException:
        for lk in links:
            lk.close()
        raise
    methods = sorted({lk.method for lk in links})
    return MultiLink(f"perf_event {name} on {len(links)} cpu(s)", "/".join(methods), links)


__all__ = ["attach_perf_event", "open_perf_event", "online_cpus", "perf_event", "PERF_EVENT_IOC_SET_BPF"]
