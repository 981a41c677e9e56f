"""Kernel function names from ``/proc/kallsyms`` (for checking kprobe targets and suggesting matches)."""

from __future__ import annotations

import functools
import platform
from typing import Optional

from ._matches import close_matches
from .planb import TargetNotFoundError


@functools.lru_cache(maxsize=1)
def _text_symbols() -> frozenset[str]:
    names = set()
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] in "tTwW" and not parts[2].startswith("__pfx_"):
                    names.add(parts[2])
    except OSError:
        return frozenset()
    return frozenset(names)


def kernel_functions(refresh: bool = False) -> frozenset[str]:
    """Names of kernel text symbols (vmlinux and loaded modules); cached, ``refresh`` rereads."""
    if refresh:
        _text_symbols.cache_clear()
    return _text_symbols()


def check_kernel_function(name: str) -> None:
    """Raise :class:`TargetNotFoundError` with close matches when ``name`` is not a kernel function.

    Unknown (kallsyms unreadable) passes: the attach itself will then say what is wrong.
    """
    syms = kernel_functions()
    if not syms or name in syms:
        return
    syms = kernel_functions(refresh=True)  # a module may have loaded since
    if name in syms:
        return
    raise TargetNotFoundError("kernel function", name, close_matches(name, syms), "/proc/kallsyms")


_SYSCALL_PREFIXES = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_", "s390x": "__s390x_sys_",
                     "riscv64": "__riscv_sys_", "ppc64le": "sys_"}


def syscall_prefix() -> str:
    """The prefix of syscall entry functions on this kernel (``__x64_sys_`` with syscall wrappers, else ``sys_``)."""
    pre = _SYSCALL_PREFIXES.get(platform.machine(), "sys_")
    syms = kernel_functions()
    if syms and f"{pre}bpf" not in syms:
        return "sys_"
    return pre


def syscall_function(name: str) -> str:
    """The kernel function of syscall ``name`` (``"getpgid"`` -> ``"__x64_sys_getpgid"``)."""
    pre = syscall_prefix()
    fn = pre + name
    syms = kernel_functions()
    if syms and fn not in syms:
        pool = [s[len(pre):] for s in syms if s.startswith(pre)]
        raise TargetNotFoundError("syscall", name, close_matches(name, pool), "/proc/kallsyms")
    return fn


def resolve_address(name: str) -> Optional[int]:
    """The address of kernel symbol ``name`` (None when hidden by kptr_restrict or absent)."""
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == name:
                    addr = int(parts[0], 16)
                    return addr or None
    except OSError:
        return None
    return None


__all__ = ["kernel_functions", "check_kernel_function", "syscall_prefix", "syscall_function", "resolve_address"]
