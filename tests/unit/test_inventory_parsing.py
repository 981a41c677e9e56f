"""Inventory pieces that need no kernel: fdinfo and mountinfo parsing, the /proc owner scan on a fake
/proc tree, boot-time conversion, enum names, and the CLI's JSON conversion."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from corebpf._sys._generated import AttachType, MapType
from corebpf.cli._output import cell, to_jsonable
from corebpf.cli.map import hex_bytes, json_bytes
from corebpf.cli.prog import owners_text
from corebpf.inventory.attach import (IterAttach, KprobeMultiAttach, NetfilterAttach, PerfEventAttach,
                                      RawTracepointAttach, TCXAttach)
from corebpf.inventory.clock import boot_ns_to_datetime, boot_offset_ns
from corebpf.inventory.dump import _parse_cpu_list
from corebpf.inventory.fdinfo import int_field, read_fdinfo
from corebpf.inventory.names import attach_type_name, enum_name
from corebpf.inventory.owners import scan_owners
from corebpf.inventory.pins import bpffs_mounts
from corebpf.inventory.records import Owner

PROG_FDINFO = "pos:\t0\nflags:\t02000002\nmnt_id:\t17\nino:\t1038\nprog_type:\t17\nprog_jited:\t1\n" \
              "prog_tag:\t59f4a931744dcdc6\nmemlock:\t4096\nprog_id:\t772\nrun_time_ns:\t0\n"
LINK_FDINFO = "pos:\t0\nflags:\t02000000\nlink_type:\traw_tracepoint\nlink_id:\t3\nprog_tag:\t59f4a931744dcdc6\n" \
              "prog_id:\t772\ntp_name:\tsys_enter\n"
MAP_FDINFO = "pos:\t0\nflags:\t02000002\nmap_type:\t1\nmap_flags:\t0x10\nmemlock:\t2320\nmap_id:\t69\nfrozen:\t1\n"


def test_fdinfo_fields_and_ints(tmp_path: Path) -> None:
    path = tmp_path / "fdinfo"
    path.write_text(MAP_FDINFO)
    fields = read_fdinfo(str(path))
    assert fields["map_id"] == "69" and fields["frozen"] == "1"
    assert int_field(fields, "map_flags") == 0x10
    assert int_field(fields, "flags") == 2000002  # octal-looking but printed as-is: never guessed as octal
    assert int_field(fields, "missing") is None
    assert read_fdinfo(str(tmp_path / "gone")) == {}


def test_int_field_rejects_garbage() -> None:
    assert int_field({"x": "12abc"}, "x") is None


def _fake_process(proc: Path, pid: int, comm: str, fds: dict[int, tuple[str, str]]) -> None:
    (proc / str(pid) / "fd").mkdir(parents=True)
    (proc / str(pid) / "fdinfo").mkdir()
    (proc / str(pid) / "comm").write_text(comm + "\n")
    for fd, (target, info) in fds.items():
        os.symlink(target, proc / str(pid) / "fd" / str(fd))
        (proc / str(pid) / "fdinfo" / str(fd)).write_text(info)


def test_scan_owners_on_fake_proc(tmp_path: Path) -> None:
    _fake_process(tmp_path, 100, "loader", {
        3: ("anon_inode:bpf-prog", PROG_FDINFO),
        4: ("anon_inode:bpf-map", MAP_FDINFO),
        5: ("anon_inode:bpf_link", LINK_FDINFO),
        6: ("/dev/null", ""),
        7: ("anon_inode:bpf-prog", PROG_FDINFO),
    })
    _fake_process(tmp_path, 200, "holder", {9: ("anon_inode:bpf-link", LINK_FDINFO)})
    _fake_process(tmp_path, 300, "plain", {0: ("/dev/tty", "")})
    (tmp_path / "self").mkdir()  # non-numeric entries are not processes
    index = scan_owners(proc=str(tmp_path), perf_events=False)
    prog_owners = sorted(index.of("prog", 772), key=lambda o: (o.pid, o.via))
    assert [(o.pid, o.comm, o.fds, o.via, o.link_id) for o in prog_owners] == [
        (100, "loader", (3, 7), "fd", 0), (100, "loader", (5,), "link", 3), (200, "holder", (9,), "link", 3)]
    assert prog_owners[0].fd == 3
    assert [(o.pid, o.fds) for o in index.of("map", 69)] == [(100, (4,))]
    assert sorted(o.pid for o in index.of("link", 3)) == [100, 200]
    assert index.of("btf", 1) == ()
    assert index.pids() == {100, 200}
    only_maps = scan_owners(["map"], proc=str(tmp_path), perf_events=False)
    assert only_maps.of("prog", 772) == () and only_maps.of("map", 69)


def test_scan_owners_missing_proc(tmp_path: Path) -> None:
    assert scan_owners(proc=str(tmp_path / "nope")).pids() == set()


def test_bpffs_mounts_from_mountinfo(tmp_path: Path) -> None:
    mi = tmp_path / "mountinfo"
    mi.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
        "42 23 0:39 / /sys/fs/bpf rw,relatime - bpf bpf rw\n"
        "43 22 0:39 /sub /run/my\\040bpf rw shared:9 master:2 - bpf bpf rw,mode=700\n"
        "44 22 0:40 / /sys/kernel/tracing rw - tracefs tracefs rw\n"
        "garbage line\n")
    mounts = bpffs_mounts(str(mi))
    assert [(m.mount_point, m.device, m.root) for m in mounts] == [
        ("/sys/fs/bpf", "0:39", "/"), ("/run/my bpf", "0:39", "/sub")]
    assert bpffs_mounts(str(tmp_path / "missing")) == []


def test_boot_time_conversion() -> None:
    offset = boot_offset_ns()
    now = datetime.now(timezone.utc)
    import time
    boot_now = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    converted = boot_ns_to_datetime(boot_now - 5_000_000_000, offset)
    assert converted.tzinfo is not None
    assert abs((now - converted) - timedelta(seconds=5)) < timedelta(seconds=1)
    # btime from /proc/stat agrees to the second (it is the same instant, rounded)
    with open("/proc/stat") as f:
        btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    assert abs(boot_ns_to_datetime(0).timestamp() - btime) <= 2


def test_enum_names_prefer_current_spelling_and_tolerate_unknown() -> None:
    assert enum_name(MapType, 19) == "CGROUP_STORAGE"
    assert enum_name(MapType, 1) == "HASH"
    assert enum_name(MapType, 9999) == "UNKNOWN_9999"
    assert attach_type_name(AttachType.TCX_INGRESS) == "TCX_INGRESS"


def test_attach_targets_are_one_line() -> None:
    cases = [
        (RawTracepointAttach("sys_enter"), "sys_enter"),
        (TCXAttach(2, "eth0", "TCX_INGRESS"), "eth0 (ifindex 2) TCX_INGRESS"),
        (TCXAttach(9, None, "TCX_EGRESS"), "? (ifindex 9) TCX_EGRESS"),
        (IterAttach("bpf_map_elem", map_id=7), "iter bpf_map_elem map 7"),
        (KprobeMultiAttach(3, 1, 0, True), "kretprobe.multi 3 functions"),
        (NetfilterAttach(2, 1, -100, 0), "netfilter ipv4 input prio -100"),
        (PerfEventAttach("KPROBE", "do_sys_open", offset=4), "kprobe do_sys_open+0x4"),
        (PerfEventAttach("EVENT", event_type=1, config=0), "perf_event type 1 config 0"),
    ]
    for attach, text in cases:
        assert attach.target == text
        assert "\n" not in attach.target


def test_cpu_list_parsing() -> None:
    assert _parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert _parse_cpu_list("0") == [0]


def test_to_jsonable_records() -> None:
    owner = Owner(pid=1, comm="init", uid=0, fds=(3, 4))
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    data = to_jsonable({"owner": owner, "when": when, "raw": b"\x01\xff", "kind": MapType.HASH, "ids": (1, 2)})
    assert data == {"owner": {"pid": 1, "comm": "init", "uid": 0, "fds": [3, 4], "via": "fd", "link_id": 0},
                    "when": "2024-01-02T03:04:05+00:00", "raw": "01ff", "kind": "HASH", "ids": [1, 2]}
    json.dumps(data)
    assert dataclasses.is_dataclass(owner)


def test_cells_and_owner_text() -> None:
    assert cell(None) == "" and cell(True) == "yes" and cell((1, 2)) == "1, 2"
    owners = [Owner(10, "a", 0, (3,)), Owner(10, "a", 0, (4,), via="link", link_id=5),
              Owner(11, "b", 0, (4,), via="link", link_id=5)]
    assert owners_text(owners) == "a(10), b(11) [link 5]"
    assert owners_text(None) == "" and owners_text(()) == ""


def test_hex_helpers() -> None:
    assert hex_bytes(b"\x01\x00\xff") == "01 00 ff"
    assert json_bytes(b"\x0a") == ["0x0a"]


def test_records_are_frozen() -> None:
    owner = Owner(1, "x", 0, (3,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        owner.pid = 2  # type: ignore[misc]


def _btf_blob(names: list[str]) -> bytes:
    """A raw BTF blob: an INT, then one FUNC_PROTO (1 param) and FUNC per name."""
    import struct
    strings = b"\0int\0" + b"".join(n.encode() + b"\0" for n in names)
    types = struct.pack("<IIII", 1, 1 << 24, 4, 32)  # [1] int: kind INT + 4-byte trailer
    offset = 5
    for i, n in enumerate(names):
        types += struct.pack("<III", 0, (13 << 24) | 1, 1) + struct.pack("<II", 0, 1)  # [2+2i] FUNC_PROTO
        types += struct.pack("<III", offset, 12 << 24, 2 + 2 * i)  # [3+2i] FUNC of that proto
        offset += len(n) + 1
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_btf_type_name_walks_to_the_id() -> None:
    from corebpf.inventory.fullname import btf_type_name
    blob = _btf_blob(["first_function_name", "second_long_function"])
    assert btf_type_name(blob, 1) == "int"
    assert btf_type_name(blob, 3) == "first_function_name"
    assert btf_type_name(blob, 5) == "second_long_function"
    assert btf_type_name(blob, 2) == ""  # anonymous FUNC_PROTO
    assert btf_type_name(blob, 99) is None and btf_type_name(blob, 0) is None
    assert btf_type_name(b"\0" * 30, 1) is None and btf_type_name(b"", 1) is None
    assert btf_type_name(blob[:40], 5) is None  # truncated: never raises


def _prog(pid: int, owners: tuple = (), pins: tuple = (), map_ids: tuple = ()) -> "object":
    from corebpf.inventory.records import ProgramRecord
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return ProgramRecord(id=pid, name=f"p{pid}", full_name=f"p{pid}", type="XDP", type_id=6, tag="00" * 8,
                         gpl=True, map_ids=map_ids, load_time=when, load_time_ns=1, created_by_uid=0, btf_id=0,
                         xlated_size=16, jited_size=0, verified_insns=2, run_time_ns=0, run_cnt=0,
                         recursion_misses=0, attach_btf_id=0, attach_btf_obj_id=0, ifindex=0, nr_func_info=0,
                         owners=owners, pins=pins)


def test_snapshot_indexes_processes_and_summary_without_a_kernel() -> None:
    from corebpf.inventory import LinkRecord, MapRecord, Snapshot
    a, b = Owner(10, "agent", 0, (3,)), Owner(20, "other", 1000, (5,))
    via_link = Owner(10, "agent", 0, (4,), via="link", link_id=7)
    progs = (_prog(1, owners=(a, via_link), map_ids=(100,)), _prog(2, pins=("/sys/fs/bpf/x",)), _prog(3))
    maps = (MapRecord(id=100, name="m", type="HASH", type_id=1, key_size=4, value_size=4, max_entries=1, flags=0,
                      map_extra=0, btf_id=0, btf_key_type_id=0, btf_value_type_id=0, btf_vmlinux_value_type_id=0,
                      btf_vmlinux_id=0, ifindex=0, frozen=False, memlock=1, owners=(a, b), pins=()),)
    links = (LinkRecord(id=7, type="RAW_TRACEPOINT", type_id=1, prog_id=1, attach=RawTracepointAttach("x"),
                        owners=(Owner(10, "agent", 0, (4,)),), pins=()),)
    snap = Snapshot(programs=progs, maps=maps, links=links, btfs=(), taken_at=datetime.now(timezone.utc))
    assert snap.programs_by_id[2].pins == ("/sys/fs/bpf/x",) and snap.maps_by_id[100].name == "m"
    assert [lk.id for lk in snap.links_of(1)] == [7] and snap.links_of(2) == ()
    assert [p.id for p in snap.programs_using(100)] == [1]
    procs = snap.processes()
    assert [(p.pid, p.prog_ids, p.map_ids, p.link_ids, p.total) for p in procs] == [
        (10, (1,), (100,), (7,), 3), (20, (), (100,), (), 1)]
    summary = snap.summary()
    assert summary["programs"] == 3 and summary["programs_by_type"] == {"XDP": 3}
    assert summary["pinned"] == 1 and summary["owner_processes"] == 2
    assert summary["programs_held_only_by_kernel"] == 1  # program 3: no owner, pin or link
    json.dumps(summary)
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.programs = ()  # type: ignore[misc]


def test_decode_attach_from_info_without_a_kernel() -> None:
    """Link types whose info carries no name decode from the info struct alone."""
    from corebpf._sys import _generated as g
    from corebpf.inventory import attach as A

    def info(link_type: int) -> "g.LinkInfo":
        i = g.LinkInfo()
        i.type = link_type
        return i

    i = info(g.LinkType.TRACING)
    i.tracing.attach_type, i.tracing.target_obj_id, i.tracing.target_btf_id = AttachType.TRACE_FENTRY, 1, 4242
    assert A.decode_attach(-1, i) == A.TracingAttach("TRACE_FENTRY", 1, 4242, 0)
    i = info(g.LinkType.KPROBE_MULTI)
    i.kprobe_multi.count, i.kprobe_multi.flags, i.kprobe_multi.missed = 12, g.BPF_F_KPROBE_MULTI_RETURN, 3
    assert A.decode_attach(-1, i) == A.KprobeMultiAttach(12, 1, 3, True)
    i = info(g.LinkType.STRUCT_OPS)
    i.struct_ops.map_id = 77
    assert A.decode_attach(-1, i).target == "struct_ops map 77"
    i = info(g.LinkType.NETKIT)
    i.netkit.ifindex, i.netkit.attach_type = 0, AttachType.NETKIT_PEER
    assert A.decode_attach(-1, i) == A.NetkitAttach(0, None, "NETKIT_PEER")
    i = info(g.LinkType.CGROUP)
    i.cgroup.cgroup_id, i.cgroup.attach_type = 99, AttachType.CGROUP_INET_EGRESS
    assert A.decode_attach(-1, i).target == "cgroup 99 CGROUP_INET_EGRESS"
    i = info(g.LinkType.PERF_EVENT)
    i.perf_event.type = g.PerfEventLinkType.EVENT
    i.perf_event.event.type, i.perf_event.event.config = 0, 1
    assert A.decode_attach(-1, i) == A.PerfEventAttach("EVENT", event_type=0, config=1)
    unknown = A.decode_attach(-1, info(200))
    assert type(unknown) is A.LinkAttach and unknown.target == ""
