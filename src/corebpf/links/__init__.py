"""Attach programs: one function per attach family, each returning a :class:`Link` that detaches on close.

    >>> from corebpf import links
    >>> with links.tracepoint(prog, "syscalls", "sys_enter_getpgid") as link:
    ...     print(link.method)                     # 'perf_event+bpf_link'
    >>> links.kprobe(kprog, "do_sys_openat2")      # plan B: kprobe PMU -> tracefs kprobe_events
    >>> links.xdp(xprog, "veth0", netns="blue")    # BPF link -> netlink
    >>> links.iterator(iprog).read()               # what the iterator printed

Every attach that can be done more than one way tries the ways in order (skipping those a cached
:mod:`corebpf.features` probe knows to be missing), records each attempt in ``link.attempts`` and the
one used in ``link.method``; when none works, :class:`AttachError` says why for each. An attach point
that does not exist raises :class:`TargetNotFoundError` with the closest existing names. BPF links can
be pinned (``link.pin(path)``) and reopened (``Link.from_pin(path)``).

Submodules share names with their attach functions: reach a module's other names with
``from corebpf.links.tracing import ...``. Loaders call :func:`attach_program` (one program, by its section name) and :func:`attach_all`.
"""

from __future__ import annotations

from ._tracefs import remove_probe_events
from .auto import AttachReport, NeedsTarget, attach_all, attach_program
from .cgroup import cgroup
from .iter import IterLink, iterator
from .kprobe import kprobe, kretprobe, ksyscall
from .kprobe_multi import kprobe_multi
from .link import Link, LinkError, MultiLink
from .netfilter import netfilter
from .perf_event import perf_event
from .planb import AttachError, Attempt, TargetNotFoundError, fallback
from .raw_tp import raw_tracepoint
from .socket import flow_dissector, netns, reuseport, sk_lookup, socket_filter, sockmap
from .struct_ops import struct_ops
from .tc import netkit, tc
from .tracepoint import tracepoint
from .tracing import btf_target, fentry, fexit, fmod_ret, freplace, lsm, tp_btf, tracing
from .tracing import load as load_tracing
from .uprobe import uprobe, uprobe_multi, uretprobe
from .usdt import usdt
from .xdp import xdp

attach = attach_program
"""Alias of :func:`attach_program`: ``corebpf.attach(prog, "tracepoint/syscalls/sys_enter_getpgid")``."""

__all__ = [
    "Link", "MultiLink", "IterLink", "LinkError", "AttachError", "Attempt", "TargetNotFoundError", "NeedsTarget",
    "AttachReport", "attach", "attach_program", "attach_all", "fallback", "remove_probe_events",
    "tracepoint", "raw_tracepoint", "tracing", "load_tracing", "btf_target", "tp_btf", "fentry", "fexit", "fmod_ret", "lsm", "freplace",
    "kprobe", "kretprobe", "ksyscall", "kprobe_multi", "uprobe", "uretprobe", "uprobe_multi", "usdt",
    "perf_event", "xdp", "tc", "netkit", "cgroup", "socket_filter", "reuseport", "sk_lookup", "flow_dissector", "netns", "sockmap",
    "netfilter", "iterator", "struct_ops",
]
