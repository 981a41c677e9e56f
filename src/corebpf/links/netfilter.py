"""Netfilter hooks (``SEC("netfilter")``, Linux >= 6.4): a BPF link on a protocol family's hook in the
current (or given) network namespace."""

from __future__ import annotations

from typing import Any, Union

from .._sys import ops
from .._sys._generated import AttachType
from . import _netns
from .link import Link, _fileno

FAMILIES = {"ipv4": 2, "inet": 2, "ipv6": 10, "inet6": 10}
HOOKS = {"prerouting": 0, "local_in": 1, "input": 1, "forward": 2, "local_out": 3, "output": 3, "postrouting": 4}
BPF_F_NETFILTER_IP_DEFRAG = 1


def netfilter(program: Any, family: Union[str, int] = "ipv4", hook: Union[str, int] = "local_in", priority: int = 0, *,
              defrag: bool = False, netns: _netns.NetNS = None) -> Link:
    """Attach a ``netfilter`` program at ``family`` (``"ipv4"``/``"ipv6"``) ``hook`` (``"local_in"``...) with
    ``priority`` (not 0 and not INT_MIN/INT_MAX, which the kernel reserves)."""
    pf = FAMILIES[family] if isinstance(family, str) else family
    hk = HOOKS[hook] if isinstance(hook, str) else hook
    if priority == 0:
        priority = 100
    with _netns.entered(netns):
        fd = ops.link_create(_fileno(program), 0, AttachType.NETFILTER, netfilter__pf=pf, netfilter__hooknum=hk,
                             netfilter__priority=priority,
                             netfilter__flags=BPF_F_NETFILTER_IP_DEFRAG if defrag else 0)
    return Link(f"netfilter {family} {hook} prio {priority}", "bpf_link", fd)


__all__ = ["netfilter", "FAMILIES", "HOOKS"]
