"""Where a BPF link attaches: ``struct bpf_link_info``'s per-type union, decoded into one record per type.

Every class has a ``target`` property: the attach point in one line (``"sys_enter"``, ``"eth0 (ifindex
2) TCX_INGRESS"``...). Names and paths (tracepoint, iterator target, uprobe file, kprobe function) are
fetched with a second ``BPF_OBJ_GET_INFO_BY_FD`` call that passes a buffer, only for the link types
that carry them.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Callable, Optional

from .._sys import _generated as g
from .._sys import ops
from ..errors import BPFError
from .names import attach_type_name, enum_name

_NAME_BUF = 4096  # PATH_MAX: enough for any tracepoint, function or file name the kernel returns


def ifname(ifindex: int) -> Optional[str]:
    """The interface name of ``ifindex`` in this network namespace, or None."""
    if not ifindex:
        return None
    try:
        import socket  # only for links with an ifindex: keeps its import off the doctor's cold path

        return socket.if_indextoname(ifindex)
    except OSError:
        return None


@dataclass(frozen=True)
class LinkAttach:
    """Attach information common to all link types (a link type corebpf does not decode yet)."""

    @property
    def target(self) -> str:
        """One-line description of the attach point."""
        return ""


@dataclass(frozen=True)
class RawTracepointAttach(LinkAttach):
    tp_name: str
    cookie: int = 0

    @property
    def target(self) -> str:
        return self.tp_name


@dataclass(frozen=True)
class TracingAttach(LinkAttach):
    """fentry/fexit/fmod_ret/LSM/tp_btf: the target is a BTF type id in BTF object ``target_obj_id``."""

    attach_type: str
    target_obj_id: int
    target_btf_id: int
    cookie: int = 0

    @property
    def target(self) -> str:
        return f"{self.attach_type} btf {self.target_obj_id} type {self.target_btf_id}"


@dataclass(frozen=True)
class CgroupAttach(LinkAttach):
    cgroup_id: int
    attach_type: str

    @property
    def target(self) -> str:
        return f"cgroup {self.cgroup_id} {self.attach_type}"


@dataclass(frozen=True)
class IterAttach(LinkAttach):
    """A BPF iterator; ``map_id`` is set for map-element iterators, cgroup/task fields for theirs."""

    target_name: str
    map_id: int = 0
    cgroup_id: int = 0
    order: int = 0
    tid: int = 0
    pid: int = 0

    @property
    def target(self) -> str:
        extra = f" map {self.map_id}" if self.map_id else ""
        if self.cgroup_id:
            extra = f" cgroup {self.cgroup_id}"
        elif self.pid or self.tid:
            extra = f" pid {self.pid} tid {self.tid}"
        return f"iter {self.target_name}{extra}"


@dataclass(frozen=True)
class NetnsAttach(LinkAttach):
    netns_ino: int
    attach_type: str

    @property
    def target(self) -> str:
        return f"netns {self.netns_ino} {self.attach_type}"


@dataclass(frozen=True)
class XDPAttach(LinkAttach):
    ifindex: int
    ifname: Optional[str]

    @property
    def target(self) -> str:
        return f"{self.ifname or '?'} (ifindex {self.ifindex}) XDP"


@dataclass(frozen=True)
class TCXAttach(LinkAttach):
    ifindex: int
    ifname: Optional[str]
    attach_type: str

    @property
    def target(self) -> str:
        return f"{self.ifname or '?'} (ifindex {self.ifindex}) {self.attach_type}"


@dataclass(frozen=True)
class NetkitAttach(TCXAttach):
    pass


@dataclass(frozen=True)
class StructOpsAttach(LinkAttach):
    map_id: int

    @property
    def target(self) -> str:
        return f"struct_ops map {self.map_id}"


@dataclass(frozen=True)
class SockmapAttach(LinkAttach):
    map_id: int
    attach_type: str

    @property
    def target(self) -> str:
        return f"sockmap {self.map_id} {self.attach_type}"


_NF_PROTO = {1: "inet", 2: "ipv4", 3: "arp", 5: "netdev", 7: "bridge", 10: "ipv6", 12: "decnet"}
_NF_HOOK = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}


@dataclass(frozen=True)
class NetfilterAttach(LinkAttach):
    pf: int
    hooknum: int
    priority: int
    flags: int

    @property
    def target(self) -> str:
        pf = _NF_PROTO.get(self.pf, str(self.pf))
        hook = _NF_HOOK.get(self.hooknum, str(self.hooknum))
        return f"netfilter {pf} {hook} prio {self.priority}"


@dataclass(frozen=True)
class KprobeMultiAttach(LinkAttach):
    count: int
    flags: int
    missed: int
    retprobe: bool

    @property
    def target(self) -> str:
        return f"{'kretprobe' if self.retprobe else 'kprobe'}.multi {self.count} functions"


@dataclass(frozen=True)
class UprobeMultiAttach(LinkAttach):
    path: str
    count: int
    flags: int
    pid: int
    retprobe: bool

    @property
    def target(self) -> str:
        kind = "uretprobe" if self.retprobe else "uprobe"
        return f"{kind}.multi {self.path} {self.count} offsets" + (f" pid {self.pid}" if self.pid else "")


@dataclass(frozen=True)
class PerfEventAttach(LinkAttach):
    """A program attached through a perf event: ``kind`` is the perf-event link subtype
    (``UPROBE``, ``URETPROBE``, ``KPROBE``, ``KRETPROBE``, ``TRACEPOINT``, ``EVENT``)."""

    kind: str
    name: str = ""
    offset: int = 0
    addr: int = 0
    missed: int = 0
    cookie: int = 0
    event_type: int = 0
    config: int = 0

    @property
    def target(self) -> str:
        if self.kind == "EVENT":
            return f"perf_event type {self.event_type} config {self.config}"
        where = self.name + (f"+{self.offset:#x}" if self.offset else "")
        return f"{self.kind.lower()} {where}".strip()


def _get_info(fd: int) -> g.LinkInfo:
    info = g.LinkInfo()
    ops.obj_get_info_by_fd(fd, info)
    return info


def _name_query(fd: int, setup: Callable[[g.LinkInfo, int, int], None]) -> tuple[g.LinkInfo, str]:
    """Second info call with a name buffer placed by ``setup(info, address, size)``."""
    buf = ctypes.create_string_buffer(_NAME_BUF)
    info = g.LinkInfo()
    setup(info, ctypes.addressof(buf), _NAME_BUF)
    try:
        ops.obj_get_info_by_fd(fd, info)
    except BPFError:
        # a kernel that cannot fill the name (older layout, name longer than PATH_MAX): keep the rest
        info = g.LinkInfo()
        ops.obj_get_info_by_fd(fd, info)
        return info, ""
    return info, buf.value.decode(errors="replace")


def decode_attach(fd: int, info: g.LinkInfo) -> LinkAttach:
    """The attach record for the link open at ``fd`` whose basic info is ``info``."""
    t = info.type
    LT = g.LinkType
    if t == LT.RAW_TRACEPOINT:
        def setup(i: g.LinkInfo, a: int, n: int) -> None:
            i.raw_tracepoint.tp_name, i.raw_tracepoint.tp_name_len = a, n
        full, name = _name_query(fd, setup)
        return RawTracepointAttach(name, full.raw_tracepoint.cookie)
    if t == LT.TRACING:
        tr = info.tracing
        return TracingAttach(attach_type_name(tr.attach_type), tr.target_obj_id, tr.target_btf_id, tr.cookie)
    if t == LT.CGROUP:
        return CgroupAttach(info.cgroup.cgroup_id, attach_type_name(info.cgroup.attach_type))
    if t == LT.ITER:
        def setup(i: g.LinkInfo, a: int, n: int) -> None:
            i.iter.target_name, i.iter.target_name_len = a, n
        full, name = _name_query(fd, setup)
        it = full.iter
        if name in ("cgroup",):
            return IterAttach(name, cgroup_id=it.cgroup.cgroup_id, order=it.cgroup.order)
        if name in ("task", "task_file", "task_vma"):
            return IterAttach(name, tid=it.task.tid, pid=it.task.pid)
        return IterAttach(name, map_id=it.map.map_id)
    if t == LT.NETNS:
        return NetnsAttach(info.netns.netns_ino, attach_type_name(info.netns.attach_type))
    if t == LT.XDP:
        return XDPAttach(info.xdp.ifindex, ifname(info.xdp.ifindex))
    if t == LT.STRUCT_OPS:
        return StructOpsAttach(info.struct_ops.map_id)
    if t == LT.NETFILTER:
        nf = info.netfilter
        return NetfilterAttach(nf.pf, nf.hooknum, nf.priority, nf.flags)
    if t == LT.KPROBE_MULTI:
        km = info.kprobe_multi
        return KprobeMultiAttach(km.count, km.flags, km.missed, bool(km.flags & g.BPF_F_KPROBE_MULTI_RETURN))
    if t == LT.UPROBE_MULTI:
        def setup(i: g.LinkInfo, a: int, n: int) -> None:
            i.uprobe_multi.path, i.uprobe_multi.path_size = a, n
        full, path = _name_query(fd, setup)
        um = full.uprobe_multi
        return UprobeMultiAttach(path, um.count, um.flags, um.pid, bool(um.flags & g.BPF_F_UPROBE_MULTI_RETURN))
    if t == LT.PERF_EVENT:
        return _perf_event(fd, info)
    if t == LT.TCX:
        return TCXAttach(info.tcx.ifindex, ifname(info.tcx.ifindex), attach_type_name(info.tcx.attach_type))
    if t == LT.NETKIT:
        nk = info.netkit
        return NetkitAttach(nk.ifindex, ifname(nk.ifindex), attach_type_name(nk.attach_type))
    if t == LT.SOCKMAP:
        return SockmapAttach(info.sockmap.map_id, attach_type_name(info.sockmap.attach_type))
    return LinkAttach()


def _perf_event(fd: int, info: g.LinkInfo) -> PerfEventAttach:
    PT = g.PerfEventLinkType
    kind_id = info.perf_event.type
    kind = enum_name(PT, kind_id)
    if kind_id == PT.EVENT:
        ev = info.perf_event.event
        return PerfEventAttach(kind, event_type=ev.type, config=ev.config, cookie=ev.cookie)
    if kind_id not in (PT.UPROBE, PT.URETPROBE, PT.KPROBE, PT.KRETPROBE, PT.TRACEPOINT):
        return PerfEventAttach(kind)

    # uprobe.file_name, kprobe.func_name and tracepoint.tp_name share offset 0 and name_len offset 8
    def setup(i: g.LinkInfo, a: int, n: int) -> None:
        i.perf_event.uprobe.file_name, i.perf_event.uprobe.name_len = a, n
    full, name = _name_query(fd, setup)
    pe = full.perf_event
    if kind_id in (PT.UPROBE, PT.URETPROBE):
        return PerfEventAttach(kind, name, offset=pe.uprobe.offset, cookie=pe.uprobe.cookie)
    if kind_id in (PT.KPROBE, PT.KRETPROBE):
        kp = pe.kprobe
        return PerfEventAttach(kind, name, offset=kp.offset, addr=kp.addr, missed=kp.missed, cookie=kp.cookie)
    return PerfEventAttach(kind, name, cookie=pe.tracepoint.cookie)


__all__ = ["LinkAttach", "RawTracepointAttach", "TracingAttach", "CgroupAttach", "IterAttach", "NetnsAttach",
           "XDPAttach", "TCXAttach", "NetkitAttach", "StructOpsAttach", "SockmapAttach", "NetfilterAttach",
           "KprobeMultiAttach", "UprobeMultiAttach", "PerfEventAttach", "decode_attach", "ifname"]
