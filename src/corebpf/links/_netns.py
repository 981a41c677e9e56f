"""Network namespaces and interfaces: run a step inside a namespace (this thread only), find interfaces."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
from typing import Iterator, Optional, Union

from ..errors import CoreBPFError
from ._matches import close_matches
from .planb import TargetNotFoundError

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
NetNS = Union[str, int, None]
"""A network namespace: None (ours), a name under /run/netns, a path (/proc/PID/ns/net) or an open fd."""


def netns_path(netns: str) -> str:
    """The file of a named (``ip netns add``) namespace, or ``netns`` itself when it is a path."""
    return netns if "/" in netns else f"/run/netns/{netns}"


def open_netns(netns: NetNS) -> int:
    """An fd on ``netns`` (the current thread's namespace when None); the caller closes it."""
    if isinstance(netns, int):
        return os.dup(netns)
    path = "/proc/thread-self/ns/net" if netns is None else netns_path(netns)
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
        raise TargetNotFoundError("network namespace", str(netns), close_matches(str(netns), names), "/run/netns") \
            from None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise CoreBPFError(f"setns into a network namespace failed: {os.strerror(err)} (needs CAP_SYS_ADMIN)")


@contextlib.contextmanager
def entered(netns: NetNS) -> Iterator[None]:
    """Run the block with this thread inside ``netns`` (nothing happens when it is None)."""
    if netns is None:
        yield
        return
    target = open_netns(netns)
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(orig)
    finally:
        os.close(orig)
        os.close(target)


def ifindex(interface: Union[str, int]) -> int:
    """The index of ``interface`` in the current namespace; :class:`TargetNotFoundError` with close names."""
    if isinstance(interface, int):
        return interface
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        names = [n for _, n in socket.if_nameindex()]
        raise TargetNotFoundError("network interface", interface, close_matches(interface, names) or names[:10],
                                  "this network namespace") from None


def where(interface: Union[str, int], netns: NetNS) -> str:
    """``"veth0"`` or ``"veth0 in netns x"`` for messages."""
    return f"{interface}" + (f" in netns {netns}" if netns is not None and not isinstance(netns, int) else "")


def keep_netns(netns: NetNS) -> Optional[int]:
    """An fd that keeps ``netns`` reachable for later cleanup (None for the current namespace)."""
    return None if netns is None else open_netns(netns)


__all__ = ["NetNS", "entered", "ifindex", "open_netns", "netns_path", "where", "keep_netns"]
