"""cgroup programs (skb, sock, sock_addr, sysctl, sockopt, device...): a BPF link (Linux >= 5.7), else
``BPF_PROG_ATTACH`` with ``BPF_F_ALLOW_MULTI`` undone by ``BPF_PROG_DETACH`` on close."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from .._sys import ops
from .._sys._generated import AttachType
from ..errors import CoreBPFError
from ._matches import close_matches
from .link import Link, _fileno
from .planb import Method, TargetNotFoundError, first_working

BPF_F_ALLOW_OVERRIDE = 1
BPF_F_ALLOW_MULTI = 2


def _attach_type(value: "AttachType | int | str") -> AttachType:
    from ..programs.program import parse_attach_type

    return parse_attach_type(value)


def open_cgroup(cgroup: Union[str, int]) -> int:
    """An fd on cgroup directory ``cgroup`` (a path, or an fd that is duplicated); the caller closes it.

    A relative path is taken under the cgroup v2 mount. Missing: :class:`TargetNotFoundError` with close
    names from the parent directory."""
    if isinstance(cgroup, int):
        return os.dup(cgroup)
    path = cgroup
    if not os.path.isabs(path):
        from ..node.mounts import ensure_mounted

        path = os.path.join(ensure_mounted("cgroup2"), path)
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        parent = os.path.dirname(path.rstrip("/"))
        pool = [e for e in os.listdir(parent) if os.path.isdir(os.path.join(parent, e))] if os.path.isdir(parent) else []
        raise TargetNotFoundError("cgroup", path, [os.path.join(parent, m) for m in
                                                   close_matches(os.path.basename(path.rstrip("/")), pool)],
                                  parent) from None
    except NotADirectoryError:
        raise CoreBPFError(f"{path} is not a cgroup directory") from None


def _link(program: Any, cg_fd: int, at: AttachType, target: str) -> Link:
    return Link(target, "bpf_link", ops.link_create(_fileno(program), cg_fd, at))


def _legacy(program: Any, cg_fd: int, at: AttachType, flags: int, target: str) -> Link:
    prog_fd = _fileno(program)
    ops.prog_attach(prog_fd, cg_fd, at, flags)
    keep_cg = os.dup(cg_fd)
    keep_prog = os.dup(prog_fd)  # detaching needs the program's fd even if the caller closed it

    def detach() -> None:
        try:
            ops.prog_detach(keep_prog, keep_cg, at)
        finally:
            os.close(keep_prog)
            os.close(keep_cg)

    return Link(target, "prog_attach", None, [detach])


def cgroup(program: Any, cgroup: Union[str, int], attach_type: "AttachType | int | str", *,
           flags: int = BPF_F_ALLOW_MULTI, method: Optional[str] = None) -> Link:
    """Attach a cgroup program to ``cgroup`` (path or fd) at ``attach_type`` (``"cgroup_inet_ingress"``...).

    Methods: ``"bpf_link"`` then ``"prog_attach"`` (with ``flags``, default ``BPF_F_ALLOW_MULTI``).
    """
    at = _attach_type(attach_type)
    cg_fd = open_cgroup(cgroup)
    target = f"cgroup {cgroup if isinstance(cgroup, str) else f'fd {cgroup}'} {at.name.lower()}"
    try:
        return first_working(target, [
            Method("bpf_link", lambda: _link(program, cg_fd, at, target), "cgroup_link"),
            Method("prog_attach", lambda: _legacy(program, cg_fd, at, flags, target)),
        ], force=method)
    finally:
        os.close(cg_fd)


__all__ = ["cgroup", "open_cgroup", "BPF_F_ALLOW_MULTI", "BPF_F_ALLOW_OVERRIDE"]
