"""What to tell the user when a kernel call fails: the hint part of :class:`BPFError`.

Hints are computed when an error happens (never on the fast path) from facts of this host:
effective capabilities, ``kernel.unprivileged_bpf_disabled`` and the lockdown mode.
"""

from __future__ import annotations

import errno
import os

from ..errors import ENOTSUPP

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39

_TRACING_TYPES = {"KPROBE", "TRACEPOINT", "PERF_EVENT", "RAW_TRACEPOINT", "RAW_TRACEPOINT_WRITABLE", "TRACING", "LSM"}


def effective_capabilities() -> int:
    """The CapEff bitmask of this process (read by :mod:`corebpf.node.caps`)."""
    from ..node.caps import capabilities

    return capabilities().effective_mask or 0


def has_capability(cap: int, mask: int | None = None) -> bool:
    return bool((effective_capabilities() if mask is None else mask) >> cap & 1)


def lockdown_mode() -> str | None:
    """``none``/``integrity``/``confidentiality``, or None when securityfs is not readable.

    Read by :func:`corebpf.node.read_lockdown` without mounting anything (hints run on error paths).
    """
    from ..node.lockdown import read_lockdown

    return read_lockdown(mount=False).mode


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _kernel_before(major: int, minor: int) -> bool:
    """True when the running kernel is older than major.minor (memlock accounting changed in 5.11)."""
    try:
        parts = os.uname().release.split(".")
        return (int(parts[0]), int(parts[1].split("-")[0])) < (major, minor)
    except (ValueError, IndexError):
        return False


def permission_hint(command: str, prog_type: str | None = None) -> str:
    caps = effective_capabilities()
    missing = []
    if not (has_capability(CAP_BPF, caps) or has_capability(CAP_SYS_ADMIN, caps)):
        missing.append("CAP_BPF")
    if prog_type in _TRACING_TYPES and not (has_capability(CAP_PERFMON, caps) or has_capability(CAP_SYS_ADMIN, caps)):
        missing.append("CAP_PERFMON")
    if missing:
        text = f"missing capability {' and '.join(missing)} (or CAP_SYS_ADMIN): run as root or grant it, e.g. setcap cap_bpf,cap_perfmon+ep"
        if _read_int("/proc/sys/kernel/unprivileged_bpf_disabled") in (1, 2):
            text += "; kernel.unprivileged_bpf_disabled forbids unprivileged bpf()"
        return text
    lockdown = lockdown_mode()
    text = "the capabilities are there, so kernel policy refused it"
    if lockdown and lockdown != "none":
        text += f" (lockdown is '{lockdown}'"
        text += ": bpf_probe_write_user and similar are refused)" if lockdown == "integrity" else \
            ": reading kernel memory from BPF is refused)"
    else:
        text += " (an LSM such as SELinux/AppArmor, a seccomp filter, or a restricted attach point)"
    if command in ("BPF_MAP_CREATE", "BPF_PROG_LOAD", "BPF_BTF_LOAD") and _kernel_before(5, 11):
        text += "; before Linux 5.11 this can also be RLIMIT_MEMLOCK (corebpf raises it automatically)"
    return text


def hint_for(err: int, command: str, prog_type: str | None = None) -> str:
    """A one-sentence hint for ``err`` returned by ``command``."""
    if err in (errno.EPERM, errno.EACCES):
        return permission_hint(command, prog_type)
    if err == errno.E2BIG:
        return "the kernel is older than this request (unknown attr fields set), or a size/entry count is over its limit"
    if err == errno.EINVAL:
        if command == "BPF_MAP_CREATE":
            return "check key/value sizes, max_entries and flags for this map type; older kernels reject newer flags"
        if command == "BPF_PROG_LOAD":
            return "check program type, expected attach type and flags; the kernel may not know this program type"
        return "an argument is not valid for this kernel (often: a flag or field newer than the kernel)"
    if err in (errno.EOPNOTSUPP, ENOTSUPP):
        return "this kernel does not support it; run 'corebpf doctor' to see what does"
    if err == errno.ENOENT and command.endswith("_GET_FD_BY_ID"):
        return "no object with that id (it may have been unloaded)"
    if err == errno.ENOSYS:
        return "this kernel has no bpf() system call (CONFIG_BPF_SYSCALL is off)"
    if err == errno.EBADF:
        return "a file descriptor passed in is closed or of the wrong kind"
    return ""
