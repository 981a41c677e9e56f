"""The two system calls corebpf needs, ``bpf()`` and ``perf_event_open()``, through ctypes."""

from __future__ import annotations

import ctypes
import errno as _errno
import platform
import resource

from ..errors import BPFError, error_class
from ._generated import Cmd, PerfEventAttr
from .hints import hint_for

_SYSCALL_NUMBERS = {
    # machine: (bpf, perf_event_open)
    "x86_64": (321, 298),
    "aarch64": (280, 241),
    "riscv64": (280, 241),
    "s390x": (351, 331),
    "ppc64le": (361, 319),
}

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long

try:
    NR_BPF, NR_PERF_EVENT_OPEN = _SYSCALL_NUMBERS[platform.machine()]
except KeyError:  # pragma: no cover - other architectures
    raise ImportError(f"corebpf does not know the bpf() syscall number on {platform.machine()}") from None

_memlock_raised = False


def raise_memlock_limit() -> bool:
    """Lift RLIMIT_MEMLOCK, as kernels before 5.11 charge BPF memory against it. True if raised."""
    global _memlock_raised
    if _memlock_raised:
        return False
    _memlock_raised = True
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
        if soft == resource.RLIM_INFINITY:
            return False
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        return True
    except (OSError, ValueError):
        return False


def bpf_raw(cmd: int, attr: ctypes.Structure) -> int:
    """``bpf(cmd, &attr, sizeof(attr))``; returns the result or ``-errno`` (never raises)."""
    ret = _syscall(ctypes.c_long(NR_BPF), ctypes.c_long(cmd), ctypes.byref(attr), ctypes.c_long(ctypes.sizeof(attr)))
    if ret < 0:
        return -ctypes.get_errno()
    return ret


def bpf(cmd: Cmd, attr: ctypes.Structure, *, detail: str = "", prog_type: str | None = None) -> int:
    """Run a bpf() command; retries EINTR, raises a :class:`BPFError` subclass on failure."""
    while True:
        ret = bpf_raw(cmd, attr)
        if ret >= 0:
            return ret
        err = -ret
        if err == _errno.EINTR:
            continue
        if err == _errno.EPERM and cmd in (Cmd.MAP_CREATE, Cmd.PROG_LOAD, Cmd.BTF_LOAD) and raise_memlock_limit():
            continue
        raise make_error(err, cmd, detail=detail, prog_type=prog_type)


def make_error(err: int, cmd: Cmd | str, *, detail: str = "", prog_type: str | None = None) -> BPFError:
    command = cmd if isinstance(cmd, str) else f"BPF_{Cmd(cmd).name}"
    return error_class(err)(err, command, hint_for(err, command, prog_type), detail)


def perf_event_open(attr: PerfEventAttr, pid: int, cpu: int, group_fd: int = -1, flags: int = 0) -> int:
    """``perf_event_open()``; returns the new fd number (the caller wraps it in :class:`FD`)."""
    attr.size = ctypes.sizeof(attr)
    flags |= 8  # PERF_FLAG_FD_CLOEXEC
    while True:
        ret = _syscall(ctypes.c_long(NR_PERF_EVENT_OPEN), ctypes.byref(attr), ctypes.c_long(pid),
                       ctypes.c_long(cpu), ctypes.c_long(group_fd), ctypes.c_long(flags))
        if ret >= 0:
            return ret
        err = ctypes.get_errno()
        if err != _errno.EINTR:
            hint = hint_for(err, "perf_event_open", "PERF_EVENT")
            if err in (_errno.EACCES, _errno.EPERM):
                hint = "needs CAP_PERFMON (or CAP_SYS_ADMIN), or a lower kernel.perf_event_paranoid"
            elif err == _errno.ENOENT:
                hint = "no such event on this kernel (the PMU or tracepoint does not exist)"
            raise error_class(err)(err, "perf_event_open", hint)


def bpf_syscall_works() -> bool:
    """True when this process can use bpf() at all (probes with an invalid command)."""
    attr = ctypes.create_string_buffer(8)
    ret = _syscall(ctypes.c_long(NR_BPF), ctypes.c_long(-1), attr, ctypes.c_long(8))
    err = ctypes.get_errno() if ret < 0 else 0
    return err not in (_errno.ENOSYS, _errno.EPERM)


__all__ = ["bpf", "bpf_raw", "make_error", "perf_event_open", "raise_memlock_limit", "bpf_syscall_works"]
