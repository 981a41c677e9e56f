"""Socket-level attach points: socket filters (``SO_ATTACH_BPF``), ``sk_lookup`` and
``flow_dissector`` on a network namespace, and sockmap/sockhash programs (``sk_skb``, ``sk_msg``)."""

from __future__ import annotations

import os
import socket as _socket
from typing import Any

from .._sys import ops
from .._sys._generated import AttachType
from . import _netns
from .link import Link, _fileno

SO_ATTACH_BPF = 50
SO_DETACH_BPF = 27  # SO_DETACH_FILTER


def socket_filter(program: Any, sock: Any) -> Link:
    """Attach a ``socket_filter`` program to ``sock`` (a socket or fd); closing the link detaches it
    (if the socket is still open)."""
    fd = sock.fileno() if hasattr(sock, "fileno") else int(sock)
    s = _socket.socket(fileno=os.dup(fd))  # our own handle: independent of the caller's object
    try:
        s.setsockopt(_socket.SOL_SOCKET, SO_ATTACH_BPF, _fileno(program))
    except BaseException:
        s.close()
        raise

    def detach() -> None:
        try:
            s.setsockopt(_socket.SOL_SOCKET, SO_DETACH_BPF, 0)
        except OSError:
            pass  # ENOENT: already detached (e.g. replaced by another filter)
        finally:
            s.close()

    return Link(f"socket filter on fd {fd}", "setsockopt", None, [detach])


SO_ATTACH_REUSEPORT_EBPF = 52
SO_DETACH_REUSEPORT_BPF = 68


def reuseport(program: Any, sock: Any) -> Link:
    """Attach an ``sk_reuseport`` program to the SO_REUSEPORT group of ``sock`` (detached on close)."""
    fd = sock.fileno() if hasattr(sock, "fileno") else int(sock)
    s = _socket.socket(fileno=os.dup(fd))
    try:
        s.setsockopt(_socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_EBPF, _fileno(program))
    except BaseException:
        s.close()
        raise

    def detach() -> None:
        try:
            s.setsockopt(_socket.SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, 0)
        except OSError:
            pass  # ENOENT: already detached
        finally:
            s.close()

    return Link(f"sk_reuseport on fd {fd}", "setsockopt", None, [detach])


def netns(program: Any, attach_type: "AttachType | str", netns: _netns.NetNS = None) -> Link:
    """Attach an ``sk_lookup`` or ``flow_dissector`` program to network namespace ``netns`` (ours when None)."""
    from ..programs.program import parse_attach_type

    at = parse_attach_type(attach_type)
    ns_fd = _netns.open_netns(netns)
    try:
        fd = ops.link_create(_fileno(program), ns_fd, at)
    finally:
        os.close(ns_fd)
    return Link(f"{at.name.lower()} on netns {netns if netns is not None else 'current'}", "bpf_link", fd)


def sk_lookup(program: Any, netns_: _netns.NetNS = None) -> Link:
    """Attach an ``sk_lookup`` program to a network namespace."""
    return netns(program, AttachType.SK_LOOKUP, netns_)


def flow_dissector(program: Any, netns_: _netns.NetNS = None) -> Link:
    """Attach a ``flow_dissector`` program to a network namespace."""
    return netns(program, AttachType.FLOW_DISSECTOR, netns_)


def sockmap(program: Any, map_: Any, attach_type: "AttachType | str") -> Link:
    """Attach an ``sk_skb``/``sk_msg`` program to a sockmap/sockhash (``BPF_PROG_ATTACH``; detached on close)."""
    from ..programs.program import parse_attach_type

    at = parse_attach_type(attach_type)
    prog_fd, map_fd = os.dup(_fileno(program)), os.dup(_fileno(map_))
    try:
        ops.prog_attach(prog_fd, map_fd, at)
    except BaseException:
        os.close(prog_fd)
        os.close(map_fd)
        raise

    def detach() -> None:
        try:
            ops.prog_detach(prog_fd, map_fd, at)
        finally:
            os.close(prog_fd)
            os.close(map_fd)

    return Link(f"{at.name.lower()} on map fd {_fileno(map_)}", "prog_attach", None, [detach])


__all__ = ["socket_filter", "reuseport", "netns", "sk_lookup", "flow_dissector", "sockmap"]
