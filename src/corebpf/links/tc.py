"""tc programs (``SCHED_CLS``): a TCX BPF link (Linux >= 6.6), else the classic ``clsact`` qdisc plus a
direct-action ``cls_bpf`` filter over netlink (plan B).

The netlink path creates the ``clsact`` qdisc when missing and removes it on close when it made it
and no other filter is left, so nothing stays on the interface.
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

PARENTS = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}
ATTACH = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}
ETH_P_ALL = 3


BPF_F_BEFORE, BPF_F_AFTER, BPF_F_LINK = 1 << 3, 1 << 4, 1 << 13
Anchor = Union[None, bool, Link, Any]
"""Where a tcx program goes: None (appended), True (first with ``before``, last with ``after``), or a
:class:`Link`/program already attached there to go just before/after."""


def _placement(before: Anchor, after: Anchor) -> tuple[int, int]:
    """(flags, relative fd) of the mprog API for ``before``/``after``."""
    if before is not None and after is not None:
        raise ValueError("give before= or after=, not both")
    anchor, flag = (before, BPF_F_BEFORE) if before is not None else (after, BPF_F_AFTER)
    if anchor is None or anchor is False:
        return 0, 0
    if anchor is True:
        return flag, 0
    if isinstance(anchor, Link):
        return flag | BPF_F_LINK, anchor.fileno()
    return flag, _fileno(anchor)


def _tcx(program: Any, interface: Union[str, int], direction: str, netns: _netns.NetNS, target: str,
         before: Anchor = None, after: Anchor = None) -> Link:
    flags, rel = _placement(before, after)
    with _netns.entered(netns):
        idx = _netns.ifindex(interface)
        fd = ops.link_create(_fileno(program), idx, ATTACH[direction], flags=flags, tcx__relative_fd=rel)
    return Link(target, "tcx_link", fd)


def _filters(ipr: Any, idx: int, parent: str) -> list[Any]:
    return [f for f in ipr.get_filters(index=idx, parent=parent) if f.get_attr("TCA_KIND") == "bpf"]


def _has_clsact(ipr: Any, idx: int) -> bool:
    return any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=idx))


def _netlink(program: Any, interface: Union[str, int], direction: str, netns: _netns.NetNS, target: str,
             priority: Optional[int]) -> Link:
    try:
        from pyroute2 import IPRoute
    except ImportError:  # pragma: no cover - a declared dependency
        raise CoreBPFError("the netlink fallback needs pyroute2 (pip install pyroute2)") from None
    parent = PARENTS[direction]
    name = (getattr(program, "name", "") or "corebpf")[:15]
    with _netns.entered(netns):
        idx = _netns.ifindex(interface)
        with IPRoute() as ipr:
            created = False
            if not _has_clsact(ipr, idx):
                ipr.tc("add", "clsact", idx)
                created = True
            try:
                used = {(f["info"] >> 16) & 0xFFFF for f in _filters(ipr, idx, parent)}
                prio = priority or next(p for p in range(1, 0xFFFF) if p not in used)
                ipr.tc("add-filter", "bpf", idx, ":1", fd=_fileno(program), name=name, parent=parent, classid=1,
                       direct_action=True, prio=prio, protocol=ETH_P_ALL)
            except BaseException:
                if created:
                    ipr.tc("del", "clsact", idx)
                raise
    keep = _netns.keep_netns(netns)

    def detach() -> None:
        try:
            with _netns.entered(keep), IPRoute() as ipr:
                try:
                    ipr.tc("del-filter", "bpf", idx, ":1", parent=parent, prio=prio, protocol=ETH_P_ALL)
                finally:
                    if created and _has_clsact(ipr, idx) and not any(_filters(ipr, idx, p) for p in PARENTS.values()):
                        ipr.tc("del", "clsact", idx)
        except Exception as exc:
            if "No such device" not in str(exc) and "No such file" not in str(exc):
                raise
        finally:
            if keep is not None:
                os.close(keep)

    link = Link(target, "netlink", None, [detach])
    link.priority = prio  # type: ignore[attr-defined]
    link.created_clsact = created  # type: ignore[attr-defined]
    return link


def tc(program: Any, interface: Union[str, int], direction: str = "ingress", *, netns: _netns.NetNS = None,
       priority: Optional[int] = None, before: Anchor = None, after: Anchor = None,
       method: Optional[str] = None) -> Link:
    """Attach a ``sched_cls`` program on ``interface`` ``direction`` (``"ingress"``/``"egress"``).

    Methods: ``"tcx_link"`` (order among tcx programs with ``before``/``after``: True for first/last,
    or the link or program to go next to) then ``"netlink"`` (clsact + cls_bpf direct-action;
    ``priority`` chooses the filter priority, default: the first free one). ``method`` forces one.
    """
    if direction not in PARENTS:
        raise ValueError(f"direction must be 'ingress' or 'egress', not {direction!r}")
    target = f"tc {direction} {_netns.where(interface, netns)}"
    with _netns.entered(netns):
        _netns.ifindex(interface)
    return first_working(target, [
        Method("tcx_link", lambda: _tcx(program, interface, direction, netns, target, before, after), "tcx"),
        Method("netlink", lambda: _netlink(program, interface, direction, netns, target, priority)),
    ], force=method)


def netkit(program: Any, interface: Union[str, int], *, peer: bool = False, netns: _netns.NetNS = None,
           before: Anchor = None, after: Anchor = None) -> Link:
    """Attach a ``sched_cls`` program to a netkit device (Linux >= 6.7): its primary side, or with ``peer``
    the peer's (container) side, ordered like tcx with ``before``/``after``."""
    at = AttachType.NETKIT_PEER if peer else AttachType.NETKIT_PRIMARY
    flags, rel = _placement(before, after)
    with _netns.entered(netns):
        idx = _netns.ifindex(interface)
        fd = ops.link_create(_fileno(program), idx, at, flags=flags, netkit__relative_fd=rel)
    return Link(f"netkit {'peer' if peer else 'primary'} {_netns.where(interface, netns)}", "bpf_link", fd)


__all__ = ["tc", "netkit", "PARENTS"]
