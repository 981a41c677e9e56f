"""Inventory against the real kernel: objects we load (ourselves, via bpftool, in a child process) must
show up with the right info, owners and pins; every accessor works on every object of the host."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import typing
import uuid
from dataclasses import fields, is_dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from corebpf import inventory
from corebpf._sys import FD, MapType, ProgType, ops, uapi
from corebpf.errors import BPFNotFoundError, BPFNotSupportedError
from corebpf.inventory import attach as attach_mod
from corebpf.inventory.dump import dump_map

RET0 = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])  # r0 = 0; exit


def load_prog(prog_type: int = ProgType.RAW_TRACEPOINT, name: str = "inv_test", insns: bytes = RET0) -> FD:
    """A tiny program loaded straight through bpf()."""
    lic = b"GPL\0"
    attr = uapi.ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8, insns=ops.addr(insns),
                             license=ops.addr(lic))
    attr.prog_name = name.encode()[:15]
    fd = ops.prog_load(attr)
    assert fd >= 0, f"prog_load failed: {os.strerror(-fd)}"
    return FD(fd)


def ld_map_fd(map_fd: int) -> bytes:
    """``r1 = map[fd]`` (ld_imm64 with BPF_PSEUDO_MAP_FD)."""
    return bytes([0x18, 0x11, 0, 0]) + map_fd.to_bytes(4, "little") + bytes(8)


def obj_id(fd: FD) -> int:
    kind_and_id = inventory.pins.identify(fd)
    assert kind_and_id is not None
    return kind_and_id[1]


@pytest.fixture
def bpffs_dir() -> Iterator[Path]:
    """A fresh directory on bpffs (mounted at /sys/fs/bpf when nothing is)."""
    mounts = inventory.bpffs_mounts()
    if not mounts:
        os.makedirs("/sys/fs/bpf", exist_ok=True)
        rc = subprocess.run(["mount", "-t", "bpf", "bpf", "/sys/fs/bpf"]).returncode
        if rc != 0:
            pytest.skip("bpffs is not mounted and cannot be mounted here")
        mounts = inventory.bpffs_mounts()
    path = Path(mounts[0].mount_point) / f"corebpf-inv-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    try:
        yield path
    finally:
        for child in path.iterdir():
            child.unlink()
        path.rmdir()


# ---- programs ----------------------------------------------------------------------------------

def test_program_record_of_our_program() -> None:
    with ops.map_create(MapType.HASH, 4, 8, 4, name="inv_used") as m, \
            load_prog(ProgType.SOCKET_FILTER, "inv_maps", ld_map_fd(int(m)) + RET0) as p:
        before = datetime.now(timezone.utc)
        pid, map_id = obj_id(p), obj_id(m)
        rec = inventory.get_program(pid)
        info = uapi.ProgInfo()
        ops.obj_get_info_by_fd(int(p), info)
        assert rec.id == pid and rec.name == rec.full_name == "inv_maps" and rec.type == "SOCKET_FILTER"
        assert rec.type_id == ProgType.SOCKET_FILTER
        assert rec.tag == bytes(info.tag).hex() and len(rec.tag) == 16
        assert rec.map_ids == (map_id,)
        assert rec.gpl is True and rec.created_by_uid == os.geteuid()
        assert rec.xlated_size == info.xlated_prog_len > 0 and rec.xlated_insns == rec.xlated_size // 8
        assert rec.verified_insns > 0 and rec.memlock and rec.memlock > 0
        assert abs(rec.load_time - before) < timedelta(seconds=5)
        assert [o.pid for o in rec.owners or ()] == [os.getpid()]
        assert rec.owners[0].fds == (int(p),) and rec.owners[0].via == "fd"
        assert rec.pins == ()
        assert pid in {r.id for r in inventory.programs(owners=False, pins=False)}
        lite = inventory.get_program(pid, owners=False, pins=False)
        assert lite.owners is None and lite.pins is None
    with pytest.raises(BPFNotFoundError, match=f"no program with id {pid}"):
        inventory.get_program(pid)


def test_program_loaded_by_bpftool_with_pin(tmp_path: Path, bpffs_dir: Path) -> None:
    if not shutil.which("bpftool") or not shutil.which("clang"):
        pytest.skip("needs bpftool and clang")
    src = tmp_path / "inv.c"
    src.write_text(textwrap.dedent("""
        __attribute__((section("socket"), used)) int inv_bpftool_prog(void *ctx) { return 0; }
        char _license[] __attribute__((section("license"), used)) = "GPL";
    """))
    obj = tmp_path / "inv.o"
    subprocess.run(["clang", "-target", "bpf", "-O2", "-g", "-c", str(src), "-o", str(obj)], check=True)
    pin = bpffs_dir / "prog"
    subprocess.run(["bpftool", "prog", "load", str(obj), str(pin)], check=True)
    import json
    shown = json.loads(subprocess.run(["bpftool", "prog", "show", "pinned", str(pin), "-j"], check=True,
                                      capture_output=True, text=True).stdout)
    snap = inventory.snapshot()
    rec = snap.programs_by_id[shown["id"]]
    assert rec.pins == (str(pin),)
    assert rec.tag == shown["tag"] and rec.type == "SOCKET_FILTER"
    assert rec.name == "inv_bpftool_pro"  # the kernel keeps 15 bytes...
    assert rec.full_name == shown["name"] == "inv_bpftool_prog"  # ...BTF has the rest, as bpftool shows
    assert rec.owners == ()  # bpftool exited: only the pin keeps it loaded
    assert rec.btf_id == shown["btf_id"] and rec.btf_id in snap.btfs_by_id
    assert snap.btfs_by_id[rec.btf_id].kernel_btf is False
    assert int(rec.load_time.timestamp()) in range(shown["loaded_at"] - 2, shown["loaded_at"] + 3)
    assert inventory.pinned_object(str(pin)) == ("prog", rec.id)


CHILD = textwrap.dedent("""
    import sys, time
    from corebpf._sys import FD, ProgType, ops, uapi
    insns = bytes([0xB7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0]); lic = b"GPL\\0"
    attr = uapi.ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insn_cnt=2, insns=ops.addr(insns),
                             license=ops.addr(lic))
    attr.prog_name = b"inv_child"
    fd = ops.prog_load(attr)
    info = uapi.ProgInfo(); ops.obj_get_info_by_fd(fd, info)
    print(info.id, fd, flush=True)
    time.sleep(60)
""")


def test_program_held_by_a_running_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # type: ignore[union-attr]
        assert line, "child failed to load its program"
        prog_id, child_fd = map(int, line.split())
        comm = Path(f"/proc/{child.pid}/comm").read_text().strip()
        rec = inventory.get_program(prog_id)
        assert rec.name == "inv_child"
        owners = [o for o in rec.owners or () if o.pid == child.pid]
        assert len(owners) == 1, rec.owners
        assert owners[0].comm == comm and owners[0].fds == (child_fd,) and owners[0].uid == os.geteuid()
        snap = inventory.snapshot()
        assert child.pid in {o.pid for o in snap.programs_by_id[prog_id].owners or ()}
    finally:
        child.kill()
        child.wait()
    # the child's exit closed its only fd: the program is gone
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            inventory.get_program(prog_id, owners=False, pins=False)
        except BPFNotFoundError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("program of the killed child is still loaded")


# ---- maps ----------------------------------------------------------------------------------------

def test_map_record_frozen_and_pinned(bpffs_dir: Path) -> None:
    with ops.map_create(MapType.ARRAY, 4, 16, 8, name="inv_array", flags=uapi.BPF_F_RDONLY_PROG) as m:
        map_id = obj_id(m)
        rec = inventory.get_map(map_id)
        assert (rec.name, rec.type, rec.key_size, rec.value_size, rec.max_entries) == \
            ("inv_array", "ARRAY", 4, 16, 8)
        assert rec.flags == uapi.BPF_F_RDONLY_PROG and rec.frozen is False and rec.memlock
        ops.map_freeze(int(m))
        ops.obj_pin(int(m), str(bpffs_dir / "m"))
        rec = inventory.get_map(map_id)
        assert rec.frozen is True and rec.pins == (str(bpffs_dir / "m"),)
        assert [o.pid for o in rec.owners or ()] == [os.getpid()]


def test_map_dump_plain_and_percpu() -> None:
    with ops.map_create(MapType.HASH, 4, 8, 16, name="inv_hash") as h, \
            ops.map_create(MapType.PERCPU_ARRAY, 4, 4, 3, name="inv_pcpu") as pc:
        expected = {i.to_bytes(4, "little"): (i * 7).to_bytes(8, "little") for i in range(1, 6)}
        for k, v in expected.items():
            ops.map_update_elem(int(h), k, v)
        record, entries = dump_map(obj_id(h))
        assert record.name == "inv_hash"
        assert {e.key: e.value for e in entries} == expected and all(e.values is None for e in entries)
        assert len(dump_map(obj_id(h), limit=2)[1]) == 2

        ncpus = inventory.dump.possible_cpu_count()
        slot = 8
        value = bytearray(slot * ncpus)
        for cpu in range(ncpus):
            value[cpu * slot:cpu * slot + 4] = (100 + cpu).to_bytes(4, "little")
        ops.map_update_elem(int(pc), (1).to_bytes(4, "little"), value)
        _, entries = dump_map(obj_id(pc))
        assert [e.key for e in entries] == [i.to_bytes(4, "little") for i in range(3)]
        assert entries[1].value is None and entries[1].values is not None
        assert [int.from_bytes(v, "little") for v in entries[1].values] == [100 + c for c in range(ncpus)]
        assert all(len(v) == 4 for v in entries[0].values or ())


def test_map_dump_refuses_ringbuf_and_missing() -> None:
    with ops.map_create(MapType.RINGBUF, 0, 0, 4096, name="inv_rb") as rb:
        with pytest.raises(BPFNotSupportedError, match="RINGBUF"):
            dump_map(obj_id(rb))
    with pytest.raises(BPFNotFoundError):
        dump_map(0xFFFFFFF0)


# ---- links ---------------------------------------------------------------------------------------

def test_raw_tracepoint_link_record() -> None:
    with load_prog(ProgType.RAW_TRACEPOINT, "inv_rawtp") as p, ops.raw_tracepoint_open("sys_enter", int(p)) as lk:
        link_id, prog_id = obj_id(lk), obj_id(p)
        rec = inventory.get_link(link_id)
        assert rec.type == "RAW_TRACEPOINT" and rec.prog_id == prog_id
        assert isinstance(rec.attach, attach_mod.RawTracepointAttach)
        assert rec.attach.tp_name == "sys_enter" and rec.attach.target == "sys_enter"
        assert [(o.pid, o.fds) for o in rec.owners or ()] == [(os.getpid(), (int(lk),))]
        prog = inventory.get_program(prog_id)
        vias = {(o.via, o.link_id) for o in prog.owners or () if o.pid == os.getpid()}
        assert vias == {("fd", 0), ("link", link_id)}
        snap = inventory.snapshot()
        assert [x.id for x in snap.links_of(prog_id)] == [link_id]


def test_link_reopened_from_pin_is_recognised(bpffs_dir: Path) -> None:
    # a link reopened by path reads back as anon_inode:bpf-link, not bpf_link
    with load_prog(ProgType.RAW_TRACEPOINT, "inv_rawtp2") as p, ops.raw_tracepoint_open("sys_exit", int(p)) as lk:
        ops.obj_pin(int(lk), str(bpffs_dir / "link"))
        link_id = obj_id(lk)
        with ops.obj_get(str(bpffs_dir / "link")) as again:
            assert obj_id(again) == link_id
            rec = inventory.get_link(link_id)
            assert rec.pins == (str(bpffs_dir / "link"),) and rec.attach.target == "sys_exit"
            assert sorted(fd for o in rec.owners or () for fd in o.fds) == sorted([int(lk), int(again)])


# ---- every accessor on every object of the host -------------------------------------------------------

def _check(value: object, hint: object, where: str) -> None:
    origin = typing.get_origin(hint)
    if hint is typing.Any:
        return
    if origin is typing.Union:
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return
        for arg in args:
            if arg is type(None):
                continue
            try:
                _check(value, arg, where)
                return
            except AssertionError:
                continue
        raise AssertionError(f"{where}: {value!r} is not {hint}")
    if origin is tuple:
        assert isinstance(value, tuple), f"{where}: {value!r} is not a tuple"
        args = typing.get_args(hint)
        for i, item in enumerate(value):
            _check(item, args[0] if len(args) == 2 and args[1] is Ellipsis else args[i], f"{where}[{i}]")
        return
    if isinstance(hint, type):
        if hint is int:
            assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not int"
        else:
            assert isinstance(value, hint), f"{where}: {value!r} is not {hint.__name__}"
        if is_dataclass(hint):
            _check_record(value)
        return
    raise AssertionError(f"{where}: cannot check hint {hint!r}")


def _check_record(record: object) -> None:
    hints = typing.get_type_hints(type(record))
    for f in fields(record):  # type: ignore[arg-type]
        if f.init:
            _check(getattr(record, f.name), hints[f.name], f"{type(record).__name__}.{f.name}")


def test_every_accessor_on_every_object_of_the_host() -> None:
    # keep at least one object of each kind alive so the test always checks something real
    with ops.map_create(MapType.HASH, 4, 4, 4, name="inv_all") as m, load_prog(name="inv_all") as p, \
            ops.raw_tracepoint_open("sys_enter", int(p)) as lk:
        snap = inventory.snapshot()
        assert snap.taken_at.tzinfo is not None and snap.owners_collected and snap.pins_collected
        assert obj_id(m) in snap.maps_by_id and obj_id(p) in snap.programs_by_id and obj_id(lk) in snap.links_by_id
        assert snap.btfs and any(b.name == "vmlinux" and b.kernel_btf for b in snap.btfs)
        counts = snap.counts()
        assert counts == {"programs": len(snap.programs), "maps": len(snap.maps), "links": len(snap.links),
                          "btfs": len(snap.btfs)}
        for rec in (*snap.programs, *snap.maps, *snap.links, *snap.btfs):
            _check_record(rec)
            assert rec.owners is not None and rec.pins is not None
            for owner in rec.owners:
                assert isinstance(owner.fd, int) and owner.via in ("fd", "link", "perf_event")
        for prog in snap.programs:
            assert isinstance(prog.jited, bool) and isinstance(prog.xlated_insns, int)
            assert len(prog.tag) == 16 and not prog.type.startswith("UNKNOWN")
            assert isinstance(snap.links_of(prog.id), tuple)
        for link in snap.links:
            assert isinstance(link.attach, attach_mod.LinkAttach) and isinstance(link.attach.target, str)
            if is_dataclass(link.attach):
                _check_record(link.attach)
        for mp in snap.maps:
            assert isinstance(snap.programs_using(mp.id), tuple)
            try:
                _, entries = dump_map(mp.id, limit=64)
            except (BPFNotFoundError, BPFNotSupportedError):
                continue  # gone meanwhile, or a type without walkable keys
            for e in entries:
                assert len(e.key) == mp.key_size or mp.key_size == 0
        # single-object getters agree with the snapshot (objects may vanish meanwhile)
        getters = [(inventory.get_program, snap.programs), (inventory.get_map, snap.maps),
                   (inventory.get_link, snap.links), (inventory.get_btf, snap.btfs)]
        for getter, records in getters:
            for rec in records[:50]:
                try:
                    again = getter(rec.id, owners=False, pins=False)
                except BPFNotFoundError:
                    continue
                assert again.id == rec.id and type(again) is type(rec)
        for lister in (inventory.programs, inventory.maps, inventory.links, inventory.btfs):
            assert all(r.owners is not None for r in lister())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_snapshot_leaks_no_fds() -> None:
    with ops.map_create(MapType.HASH, 4, 4, 4, name="inv_leak") as m, load_prog(name="inv_leak") as p, \
            ops.raw_tracepoint_open("sys_enter", int(p)) as lk:
        ops.map_update_elem(int(m), bytes(4), bytes(4))
        ids = (obj_id(p), obj_id(m), obj_id(lk))
        calls = [
            lambda: inventory.programs(), lambda: inventory.maps(), lambda: inventory.links(),
            lambda: inventory.btfs(), lambda: inventory.processes(), lambda: inventory.get_program(ids[0]),
            lambda: inventory.get_map(ids[1]), lambda: inventory.get_link(ids[2]), lambda: dump_map(ids[1]),
        ]
        for call in calls:
            call()  # warm caches and imports
        inventory.snapshot()
        fds_before, rss_before = len(os.listdir("/proc/self/fd")), _rss_bytes()
        for _ in range(200):
            snap = inventory.snapshot()
        for _ in range(30):
            for call in calls:
                call()
        fds_after, rss_after = len(os.listdir("/proc/self/fd")), _rss_bytes()
        assert fds_after == fds_before, f"fd count went from {fds_before} to {fds_after}"
        # records are small: a real leak of one per object per call would add far more than this
        assert rss_after - rss_before < 8 << 20, f"RSS grew by {(rss_after - rss_before) >> 10} KiB"
        assert obj_id(m) in snap.maps_by_id


def test_listing_without_privileges_says_what_is_missing() -> None:
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv to drop privileges")
    code = "from corebpf import inventory; inventory.programs()"
    proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                           sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "BPFPermissionError" in proc.stderr and "listing loaded programs" in proc.stderr
    assert "CAP_SYS_ADMIN" in proc.stderr, proc.stderr


def test_processes_and_summary() -> None:
    with ops.map_create(MapType.HASH, 4, 4, 4, name="inv_sum") as m, load_prog(name="inv_sum") as p, \
            ops.raw_tracepoint_open("sys_enter", int(p)) as lk:
        snap = inventory.snapshot()
        me = [proc for proc in snap.processes() if proc.pid == os.getpid()]
        assert len(me) == 1
        assert obj_id(p) in me[0].prog_ids and obj_id(m) in me[0].map_ids and obj_id(lk) in me[0].link_ids
        assert me[0].total >= 3 and me[0].comm == Path("/proc/self/comm").read_text().strip()
        totals = [proc.total for proc in snap.processes()]
        assert totals == sorted(totals, reverse=True)
        summary = snap.summary()
        assert summary["programs"] == len(snap.programs) and summary["maps"] == len(snap.maps)
        assert summary["programs_by_type"]["RAW_TRACEPOINT"] >= 1  # type: ignore[index]
        assert summary["links_by_type"]["RAW_TRACEPOINT"] >= 1  # type: ignore[index]
        assert sum(summary["maps_by_type"].values()) == len(snap.maps)  # type: ignore[union-attr]
        assert summary["owner_processes"] == len(snap.processes()) >= 1
        import json
        json.dumps(summary)
        bare = inventory.snapshot(owners=False, pins=False).summary()
        assert bare["owner_processes"] is None and bare["pinned"] is None


def test_snapshot_limited_to_ids_taken_earlier() -> None:
    """``ids=`` (what doctor lists before its probes start) keeps later objects out and skips vanished ones."""
    with load_prog(name="inv_before") as before:
        earlier = {kind: ops.iter_ids(kind) for kind in ("prog", "map", "link", "btf")}
        closed_id = obj_id(before)
        with load_prog(name="inv_after") as after:
            snap = inventory.snapshot(owners=True, pins=False, ids=earlier)
            prog_ids = {p.id for p in snap.programs}
            assert obj_id(before) in prog_ids
            assert obj_id(after) not in prog_ids
            assert prog_ids <= set(earlier["prog"])
            mine = next(p for p in snap.programs if p.id == obj_id(before))
            assert mine.name == "inv_before" and any(o.pid == os.getpid() for o in mine.owners or ())
    assert inventory.snapshot(owners=False, pins=False, ids={"prog": [closed_id]}).programs == ()  # closed: skipped
    assert inventory.snapshot(owners=False, pins=False, ids={}).counts() == {"programs": 0, "maps": 0, "links": 0,
                                                                              "btfs": 0}
