"""Each link type this kernel can create here must come back from the inventory with its attach point
decoded: XDP and TCX (interface), cgroup (cgroup id), netns (namespace inode), perf event, BPF iterator,
tp_btf. Types that cannot be made on this machine skip with the reason."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

from corebpf import inventory
from corebpf._sys import FD, AttachType, ProgType, ops, perf_event_open, uapi
from corebpf.errors import BPFError
from corebpf.inventory import attach as A
from corebpf.inventory.pins import identify

RET = {0: bytes([0xB7, 0, 0, 0, 0, 0, 0, 0]), 1: bytes([0xB7, 0, 0, 0, 1, 0, 0, 0]),
       2: bytes([0xB7, 0, 0, 0, 2, 0, 0, 0])}
EXIT = bytes([0x95, 0, 0, 0, 0, 0, 0, 0])


def load(prog_type: int, ret: int = 0, expected_attach_type: int = 0, attach_btf_id: int = 0) -> FD:
    insns = RET[ret] + EXIT
    lic = b"GPL\0"
    attr = uapi.ProgLoadAttr(prog_type=prog_type, insn_cnt=2, insns=ops.addr(insns), license=ops.addr(lic),
                             expected_attach_type=expected_attach_type, attach_btf_id=attach_btf_id)
    attr.prog_name = b"inv_link"
    fd = ops.prog_load(attr)
    if fd < 0:
        pytest.skip(f"{ProgType(prog_type).name} program does not load here: {os.strerror(-fd)}")
    return FD(fd)


def link_record(link: FD, prog: FD) -> inventory.LinkRecord:
    found = identify(link)
    assert found is not None and found[0] == "link"
    rec = inventory.get_link(found[1])
    assert rec.prog_id == identify(prog)[1]  # type: ignore[index]
    assert [o.pid for o in rec.owners or ()] == [os.getpid()]
    assert rec.attach.target
    return rec


def create(prog: FD, target: int, attach_type: int, **extra: int) -> FD:
    try:
        return ops.link_create(int(prog), target, attach_type, **extra)
    except BPFError as exc:
        pytest.skip(f"cannot create a {AttachType(attach_type).name} link here: {exc}")


def test_xdp_link() -> None:
    ifindex = socket.if_nametoindex("lo")
    with load(ProgType.XDP, ret=2) as prog, create(prog, ifindex, AttachType.XDP) as lk:
        rec = link_record(lk, prog)
        assert rec.type == "XDP" and rec.attach == A.XDPAttach(ifindex, "lo")
        assert rec.attach.target == f"lo (ifindex {ifindex}) XDP"


def test_tcx_link() -> None:
    ifindex = socket.if_nametoindex("lo")
    with load(ProgType.SCHED_CLS, ret=0) as prog, create(prog, ifindex, AttachType.TCX_EGRESS) as lk:
        rec = link_record(lk, prog)
        assert rec.type == "TCX" and rec.attach == A.TCXAttach(ifindex, "lo", "TCX_EGRESS")


def _cgroup2_root() -> Optional[str]:
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[:1] == ["cgroup2"]:
                return left.split()[4]
    return None


@pytest.fixture
def cgroup_dir() -> Iterator[Path]:
    root = _cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy mounted")
    path = Path(root) / f"corebpf-inv-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        path.rmdir()


def test_cgroup_link(cgroup_dir: Path) -> None:
    with load(ProgType.CGROUP_SKB, ret=1, expected_attach_type=AttachType.CGROUP_INET_INGRESS) as prog, \
            FD(os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)) as cg, \
            create(prog, int(cg), AttachType.CGROUP_INET_INGRESS) as lk:
        rec = link_record(lk, prog)
        assert rec.type == "CGROUP"
        assert rec.attach == A.CgroupAttach(os.stat(cgroup_dir).st_ino, "CGROUP_INET_INGRESS")


def test_netns_link() -> None:
    with load(ProgType.SK_LOOKUP, ret=1, expected_attach_type=AttachType.SK_LOOKUP) as prog, \
            FD(os.open("/proc/self/ns/net", os.O_RDONLY)) as ns, create(prog, int(ns), AttachType.SK_LOOKUP) as lk:
        rec = link_record(lk, prog)
        assert rec.type == "NETNS"
        assert rec.attach == A.NetnsAttach(os.stat("/proc/self/ns/net").st_ino, "SK_LOOKUP")


def test_perf_event_link() -> None:
    # PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS (cpu-clock moved to its own PMU type in recent kernels)
    attr = uapi.PerfEventAttr(type=1, config=2)
    attr.sample_period = 1_000_000
    try:
        event = FD(perf_event_open(attr, -1, 0))
    except BPFError as exc:
        pytest.skip(f"perf_event_open refused: {exc}")
    with event, load(ProgType.PERF_EVENT) as prog, create(prog, int(event), AttachType.PERF_EVENT) as lk:
        rec = link_record(lk, prog)
        assert rec.type == "PERF_EVENT"
        assert isinstance(rec.attach, A.PerfEventAttach) and rec.attach.kind == "EVENT"
        assert (rec.attach.event_type, rec.attach.config) == (1, 2)
        assert rec.attach.target == "perf_event type 1 config 2"


def _vmlinux_id(name: str, kind: str) -> int:
    from corebpf.btf import BTF, Kind
    try:
        return BTF.vmlinux().find_id(name, Kind[kind])
    except Exception as exc:  # no vmlinux BTF, or a reader failure: nothing to attach by BTF id
        pytest.skip(f"vmlinux BTF lookup of {name} failed: {exc}")


def test_iter_link() -> None:
    btf_id = _vmlinux_id("bpf_iter_bpf_map", "FUNC")
    if btf_id <= 0:
        pytest.skip("kernel BTF has no bpf_iter_bpf_map")
    with load(ProgType.TRACING, expected_attach_type=AttachType.TRACE_ITER, attach_btf_id=btf_id) as prog, \
            create(prog, 0, AttachType.TRACE_ITER) as lk:
        rec = link_record(lk, prog)
        assert rec.type == "ITER" and rec.attach == A.IterAttach("bpf_map")
        assert rec.attach.target == "iter bpf_map"
        prog_rec = inventory.get_program(identify(prog)[1])  # type: ignore[index]
        assert prog_rec.attach_btf_id == btf_id and prog_rec.attach_btf_obj_id > 0


def test_tp_btf_link() -> None:
    btf_id = _vmlinux_id("btf_trace_sys_enter", "TYPEDEF")
    if btf_id <= 0:
        pytest.skip("kernel BTF has no btf_trace_sys_enter")
    with load(ProgType.TRACING, expected_attach_type=AttachType.TRACE_RAW_TP, attach_btf_id=btf_id) as prog:
        try:
            lk = ops.raw_tracepoint_open(None, int(prog))
        except BPFError as exc:
            pytest.skip(f"tp_btf attach refused: {exc}")
        with lk:
            rec = link_record(lk, prog)
            # the kernel reports tp_btf links either as raw tracepoints (by name) or as tracing links
            if isinstance(rec.attach, A.RawTracepointAttach):
                assert rec.attach.tp_name == "sys_enter"
            else:
                assert isinstance(rec.attach, A.TracingAttach) and rec.attach.attach_type == "TRACE_RAW_TP"


def _tracefs() -> Optional[Path]:
    for candidate in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if (Path(candidate) / "events").is_dir():
            return Path(candidate)
    if os.system("mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null") == 0:
        return Path("/sys/kernel/tracing")
    return None


def test_legacy_perf_event_attach_owner() -> None:
    """A tracepoint program attached with PERF_EVENT_IOC_SET_BPF and then closed stays loaded through the
    perf event fd: the inventory must name this process as its owner (via perf_event)."""
    import fcntl
    tracefs = _tracefs()
    if tracefs is None:
        pytest.skip("tracefs is not mounted and cannot be mounted")
    tp_id = int((tracefs / "events/syscalls/sys_enter_getpid/id").read_text())
    attr = uapi.PerfEventAttr(type=2, config=tp_id)  # PERF_TYPE_TRACEPOINT
    attr.sample_period = 1
    with FD(perf_event_open(attr, -1, 0)) as event:
        prog = load(ProgType.TRACEPOINT)
        prog_id = identify(prog)[1]  # type: ignore[index]
        fcntl.ioctl(int(event), 0x40042408, int(prog))  # PERF_EVENT_IOC_SET_BPF
        prog.close()
        rec = inventory.get_program(prog_id)
        mine = [o for o in rec.owners or () if o.pid == os.getpid()]
        assert [(o.via, o.fds) for o in mine] == [("perf_event", (int(event),))]


def _entry_file_offset(path: str) -> int:
    """File offset of an ELF executable's entry point (a safe place for a uprobe)."""
    import struct
    raw = Path(path).read_bytes()
    entry, phoff = struct.unpack_from("<Q", raw, 24)[0], struct.unpack_from("<Q", raw, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", raw, 54)
    for i in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", raw, phoff + i * phentsize)
        if p_type == 1 and p_vaddr <= entry < p_vaddr + p_filesz:
            return entry - p_vaddr + p_offset
    pytest.skip(f"cannot find the entry point of {path}")


TARGET = os.path.realpath("/usr/bin/true")


def test_uprobe_multi_link() -> None:
    import ctypes
    offsets = (ctypes.c_uint64 * 1)(_entry_file_offset(TARGET))
    path = TARGET.encode() + b"\0"
    with load(ProgType.KPROBE, expected_attach_type=AttachType.TRACE_UPROBE_MULTI) as prog, \
            create(prog, 0, AttachType.TRACE_UPROBE_MULTI, uprobe_multi__path=ops.addr(path),
                   uprobe_multi__offsets=ctypes.addressof(offsets), uprobe_multi__cnt=1) as lk:
        rec = link_record(lk, prog)
        assert rec.type == "UPROBE_MULTI"
        assert rec.attach == A.UprobeMultiAttach(TARGET, 1, 0, 0, False)
        assert rec.attach.target == f"uprobe.multi {TARGET} 1 offsets"


def test_perf_event_uprobe_link() -> None:
    pmu_type = Path("/sys/bus/event_source/devices/uprobe/type")
    if not pmu_type.exists():
        pytest.skip("no uprobe PMU")
    offset = _entry_file_offset(TARGET)
    path = TARGET.encode() + b"\0"
    attr = uapi.PerfEventAttr(type=int(pmu_type.read_text()))
    attr.uprobe_path = ops.addr(path)
    attr.probe_offset = offset
    try:
        event = FD(perf_event_open(attr, -1, 0))
    except BPFError as exc:
        pytest.skip(f"uprobe perf event refused: {exc}")
    with event, load(ProgType.KPROBE) as prog, create(prog, int(event), AttachType.PERF_EVENT) as lk:
        rec = link_record(lk, prog)
        assert rec.type == "PERF_EVENT"
        assert isinstance(rec.attach, A.PerfEventAttach)
        assert (rec.attach.kind, rec.attach.name, rec.attach.offset) == ("UPROBE", TARGET, offset)
        assert rec.attach.target == f"uprobe {TARGET}+{offset:#x}"


def test_netfilter_link() -> None:
    with load(ProgType.NETFILTER, ret=1, expected_attach_type=AttachType.NETFILTER) as prog, \
            create(prog, 0, AttachType.NETFILTER, netfilter__pf=2, netfilter__hooknum=1,
                   netfilter__priority=-128) as lk:  # NFPROTO_IPV4, NF_INET_LOCAL_IN
        rec = link_record(lk, prog)
        assert rec.type == "NETFILTER" and rec.attach == A.NetfilterAttach(2, 1, -128, 0)
        assert rec.attach.target == "netfilter ipv4 input prio -128"


def test_sockmap_link() -> None:
    from corebpf._sys import MapType
    with ops.map_create(MapType.SOCKMAP, 4, 4, 2, name="inv_sockmap") as sm, \
            load(ProgType.SK_SKB, ret=1, expected_attach_type=AttachType.SK_SKB_VERDICT) as prog, \
            create(prog, int(sm), AttachType.SK_SKB_VERDICT) as lk:
        rec = link_record(lk, prog)
        assert rec.type == "SOCKMAP"
        assert rec.attach == A.SockmapAttach(identify(sm)[1], "SK_SKB_VERDICT")  # type: ignore[index]


def test_perf_event_tracepoint_link() -> None:
    tracefs = _tracefs()
    if tracefs is None:
        pytest.skip("tracefs is not mounted and cannot be mounted")
    tp_id = int((tracefs / "events/syscalls/sys_enter_getppid/id").read_text())
    attr = uapi.PerfEventAttr(type=2, config=tp_id)  # PERF_TYPE_TRACEPOINT
    attr.sample_period = 1
    with FD(perf_event_open(attr, -1, 0)) as event, load(ProgType.TRACEPOINT) as prog, \
            create(prog, int(event), AttachType.PERF_EVENT) as lk:
        rec = link_record(lk, prog)
        assert isinstance(rec.attach, A.PerfEventAttach) and rec.attach.kind == "TRACEPOINT"
        assert rec.attach.name.endswith("sys_enter_getppid")
        assert rec.attach.target == f"tracepoint {rec.attach.name}"
