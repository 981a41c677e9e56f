"""XDP: a BPF link on the interface (Linux >= 5.9), else netlink (``IFLA_XDP``) as plan B.

``mode``: ``None`` (kernel's choice: driver if it can, else generic), ``"skb"`` (generic),
``"drv"`` (native) or ``"hw"`` (offload). A netlink attachment is not a BPF link: it cannot be pinned
and is removed on close only while it is still our program on the interface.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Union

from .._sys import ops
from .._sys._generated import AttachType
from ..errors import CoreBPFError
from . import _netns
from .link import Link, _fileno
from .planb import Method, first_working

XDP_FLAGS_UPDATE_IF_NOEXIST = 1
MODES = {None: 0, "skb": 2, "generic": 2, "drv": 4, "native": 4, "hw": 8, "offload": 8}


def _mode_flags(mode: Optional[str]) -> int:
    try:
        return MODES[mode.lower() if isinstance(mode, str) else mode]
    except KeyError:
        raise ValueError(f"unknown XDP mode {mode!r}; choose from skb, drv, hw (or None)") from None


def _link(program: Any, interface: Union[str, int], flags: int, netns: _netns.NetNS, target: str) -> Link:
    with _netns.entered(netns):
        idx = _netns.ifindex(interface)
        fd = ops.link_create(_fileno(program), idx, AttachType.XDP, flags=flags)
    return Link(target, "bpf_link", fd)


def _xdp_state(ipr: Any, idx: int) -> dict[str, Any]:
    links = ipr.get_links(idx)
    xdp = links[0].get_attr("IFLA_XDP") if links else None
    return dict(xdp.get("attrs", [])) if isinstance(xdp, dict) else {}


def _netlink(program: Any, interface: Union[str, int], flags: int, netns: _netns.NetNS, target: str) -> Link:
    try:
        from pyroute2 import IPRoute
    except ImportError:  # pragma: no cover - a declared dependency
        raise CoreBPFError("the netlink fallback needs pyroute2 (pip install pyroute2)") from None
    from ..programs.info import program_info

    prog_id = program_info(_fileno(program)).id
    with _netns.entered(netns):
        idx = _netns.ifindex(interface)
        with IPRoute() as ipr:
            if _xdp_state(ipr, idx).get("IFLA_XDP_PROG_ID"):
                raise CoreBPFError(f"{_netns.where(interface, netns)} already has an XDP program (netlink attach "
                                   "would replace it); detach it first")
            attrs = [("IFLA_XDP_FD", _fileno(program)), ("IFLA_XDP_FLAGS", flags | XDP_FLAGS_UPDATE_IF_NOEXIST)]
            ipr.link("set", index=idx, xdp={"attrs": attrs})
    keep = _netns.keep_netns(netns)

    def detach() -> None:
        try:
            with _netns.entered(keep), IPRoute() as ipr:
                if _xdp_state(ipr, idx).get("IFLA_XDP_PROG_ID") == prog_id:  # only remove our own program
                    ipr.link("set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", -1), ("IFLA_XDP_FLAGS", flags)]})
        except Exception as exc:
            if "No such device" not in str(exc):  # the interface (or its namespace) is gone: nothing to undo
                raise
        finally:
            if keep is not None:
                os.close(keep)

    return Link(target, "netlink", None, [detach])


def xdp(program: Any, interface: Union[str, int], *, mode: Optional[str] = None, netns: _netns.NetNS = None,
        method: Optional[str] = None) -> Link:
    """Attach an XDP program to ``interface`` (name or index; in network namespace ``netns`` if given).

    Methods: ``"bpf_link"`` then ``"netlink"`` (``method`` forces one). A missing interface raises
    :class:`~corebpf.links.TargetNotFoundError` listing the namespace's interfaces closest to the name.
    """
    flags = _mode_flags(mode)
    target = f"xdp {_netns.where(interface, netns)}" + (f" mode {mode}" if mode else "")
    with _netns.entered(netns):
        _netns.ifindex(interface)  # a wrong name is the caller's mistake, not a reason for plan B
    return first_working(target, [
        Method("bpf_link", lambda: _link(program, interface, flags, netns, target), "xdp_link"),
        Method("netlink", lambda: _netlink(program, interface, flags, netns, target)),
    ], force=method)


__all__ = ["xdp", "MODES"]
