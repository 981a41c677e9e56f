"""Every map type of the UAPI round-trips data through corebpf.Map on the real kernel.

One test per :class:`MapType`. A type the kernel refuses is skipped with the errno and hint only when
the kernel cannot be expected to have it (older than the type, or its config option is off); a type
this kernel's version and config certainly have that fails is a failure.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import gzip
import mmap
import os
import platform
import re
import shutil
import socket
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Callable

import pytest

import corebpf
from corebpf import Map, MapType, Program
from corebpf._sys import FD, ops, perf_event_open, uapi
from corebpf.errors import BPFError, BPFExistsError, BPFNotFoundError
from corebpf.maps import possible_cpus
from corebpf.maps.types import RULES

from test_programs_insns import (
    HELPER_GET_LOCAL_STORAGE, HELPER_GET_STACKID, HELPER_RINGBUF_OUTPUT, HELPER_USER_RINGBUF_DRAIN, PACKET,
    R1, R2, R3, R4, R6, R10, add_imm, call, exit_, ld_func, ld_map_fd, mov_imm, mov_reg, ret, st_dw,
)

NCPU = possible_cpus()
XDP_PASS, XDP_REDIRECT = 2, 4
HELPER_REDIRECT_MAP = 51
CGROUP2 = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
# Map types that exist only with a config option; otherwise the map type is in every kernel >= "since".
CONFIG_OF = {
    MapType.XSKMAP: "CONFIG_XDP_SOCKETS",
    MapType.INODE_STORAGE: "CONFIG_BPF_LSM",
    MapType.CGROUP_STORAGE: "CONFIG_CGROUP_BPF",
    MapType.PERCPU_CGROUP_STORAGE: "CONFIG_CGROUP_BPF",
    MapType.CGRP_STORAGE: "CONFIG_CGROUPS",
    MapType.SOCKMAP: "CONFIG_BPF_STREAM_PARSER",
    MapType.SOCKHASH: "CONFIG_BPF_STREAM_PARSER",
    MapType.STRUCT_OPS: "CONFIG_BPF_JIT",
    MapType.ARENA: "CONFIG_BPF_SYSCALL",
}


def kernel_version() -> tuple[int, int]:
    major, minor = platform.release().split(".")[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def config_enabled(option: str) -> bool | None:
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith(option + "="):
                    return line.strip().split("=", 1)[1] in ("y", "m")
    except OSError:
        return None
    return False


def create_or_skip(mtype: MapType, *args: object, **kwargs: object) -> Map:
    """Create a map; skip only when this kernel cannot be expected to have the type."""
    try:
        return Map.create(mtype, *args, **kwargs)  # type: ignore[arg-type]
    except BPFError as exc:
        since = tuple(int(x) for x in RULES[mtype].since.split("."))
        option = CONFIG_OF.get(mtype)
        if kernel_version() < since:
            pytest.skip(f"{mtype.name.lower()} needs Linux {RULES[mtype].since}: {exc}")
        if option and config_enabled(option) is False:
            pytest.skip(f"{mtype.name.lower()} needs {option}, off in this kernel: {exc}")
        raise


def u32(v: int) -> bytes:
    return struct.pack("=I", v)


def u64(v: int) -> bytes:
    return struct.pack("=Q", v)


def so_cookie(sock: socket.socket) -> int:
    return struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, 57, 8))[0]  # SO_COOKIE


# ---- plain key/value maps --------------------------------------------------------------------

def _hash_like(mtype: MapType, flags: int = 0) -> None:
    with create_or_skip(mtype, 4, 8, 16, flags=flags, name="t_" + mtype.name.lower()[:10]) as m:
        assert m.type == mtype and m.info.type == mtype
        m[u32(1)] = u64(100)
        m[2] = u64(200)  # int keys in native order
        assert m[u32(1)] == u64(100) and m.get(u32(2)) == u64(200) and m.get(u32(3)) is None
        assert u32(1) in m and u32(3) not in m
        assert sorted(m.keys()) == sorted([u32(1), u32(2)])
        assert dict(m.items()) == {u32(1): u64(100), u32(2): u64(200)}
        assert len(m) == 2
        with pytest.raises(BPFExistsError):
            m.update(u32(1), u64(1), corebpf.maps.UpdateFlags.NOEXIST)
        with pytest.raises(BPFNotFoundError):
            m.update(u32(9), u64(1), corebpf.maps.UpdateFlags.EXIST)
        m.update(u32(1), u64(101), corebpf.maps.UpdateFlags.EXIST)
        assert m[u32(1)] == u64(101)
        assert m.pop(u32(1)) == u64(101) and u32(1) not in m
        del m[u32(2)]
        assert len(m) == 0
        with pytest.raises(KeyError):
            del m[u32(2)]
        with pytest.raises(ValueError, match="key must be 4 bytes"):
            m[b"\x01\x02"] = u64(0)
        with pytest.raises(ValueError, match="value must be 8 bytes"):
            m[u32(5)] = b"short"


def _percpu(mtype: MapType, array: bool) -> None:
    with create_or_skip(mtype, 4, 4, 8) as m:
        per_cpu = [u32(10 + cpu) for cpu in range(NCPU)]
        m[u32(0)] = per_cpu
        assert m[u32(0)] == per_cpu
        m[u32(1)] = u32(7)  # one value for every CPU
        assert m[u32(1)] == [u32(7)] * NCPU
        with pytest.raises(ValueError, match="one value per possible CPU"):
            m[u32(2)] = [u32(1)] * (NCPU + 1)
        if array:
            assert len(m) == 8 and m[u32(5)] == [u32(0)] * NCPU
        else:
            assert sorted(m) == [u32(0), u32(1)]


def _array() -> None:
    with create_or_skip(MapType.ARRAY, 4, 8, 4) as m:
        assert len(m) == 4 and list(m) == [u32(i) for i in range(4)]
        assert m[u32(3)] == bytes(8)
        m[u32(3)] = b"abcdefgh"
        assert m[3] == b"abcdefgh"
        with pytest.raises(BPFError):
            m.delete(u32(0))  # array elements cannot be deleted
        assert u32(4) not in m
    with create_or_skip(MapType.ARRAY, 4, 8, 4, flags=corebpf.maps.types.BPF_F_MMAPABLE) as m:
        with m.mmap() as mm:
            mm[8:16] = b"ABCDEFGH"
        assert m[1] == b"ABCDEFGH"


def _lpm_trie() -> None:
    with create_or_skip(MapType.LPM_TRIE, 8, 4, 16, flags=corebpf.maps.types.BPF_F_NO_PREALLOC) as m:
        m[u32(8) + bytes([10, 0, 0, 0])] = u32(8)
        m[u32(24) + bytes([10, 1, 2, 0])] = u32(24)
        assert m[u32(32) + bytes([10, 1, 2, 3])] == u32(24)   # longest prefix wins
        assert m[u32(32) + bytes([10, 9, 9, 9])] == u32(8)
        assert m.get(u32(32) + bytes([11, 0, 0, 0])) is None
        assert sorted(m) == sorted([u32(8) + bytes([10, 0, 0, 0]), u32(24) + bytes([10, 1, 2, 0])])


def _queue_stack(mtype: MapType) -> None:
    with create_or_skip(mtype, 0, 4, 3) as m:
        assert m.peek() is None and m.pop(None) is None
        for v in (1, 2, 3):
            m.push(u32(v))
        with pytest.raises(BPFError):
            m.push(u32(4))  # full
        m.push(u32(4), corebpf.maps.UpdateFlags.EXIST)  # overwrite the oldest
        expected = [2, 3, 4] if mtype == MapType.QUEUE else [4, 3, 2]
        assert m.peek() == u32(expected[0])
        assert [m.pop() for _ in range(3)] == [u32(v) for v in expected]
        with pytest.raises(KeyError):
            m.pop()
        with pytest.raises(TypeError, match="push"):
            m[u32(0)]


def _bloom() -> None:
    with create_or_skip(MapType.BLOOM_FILTER, 0, 8, 1000, map_extra=3) as m:
        assert m.info.map_extra == 3
        for v in range(10):
            m.push(u64(v))
        assert all(m.contains(u64(v)) for v in range(10)) and u64(3) in m
        assert not all(m.contains(u64(v)) for v in range(1000, 1100))


# ---- fd-valued maps --------------------------------------------------------------------------

def _prog_array() -> None:
    with create_or_skip(MapType.PROG_ARRAY, 4, 4, 4) as m, \
            Program.load(ret(7), "socket_filter") as p:
        m[0] = p
        assert m[u32(0)] == p.id  # the kernel answers the program's id
        assert m.get(u32(1)) is None
        del m[0]
        assert m.get(u32(0)) is None


def _perf_event_array() -> None:
    with create_or_skip(MapType.PERF_EVENT_ARRAY, 4, 4, 0) as m:
        assert m.max_entries == NCPU  # 0 means one slot per CPU
        attr = uapi.PerfEventAttr(type=uapi.PerfType.SOFTWARE, config=uapi.PerfSwId.BPF_OUTPUT)
        attr.sample_type = 1 << 10  # PERF_SAMPLE_RAW
        with FD(perf_event_open(attr, -1, 0)) as ev:
            m[0] = ev
            assert m.delete(u32(0)) and not m.delete(u32(0))


def _cgroup_array() -> None:
    with create_or_skip(MapType.CGROUP_ARRAY, 4, 4, 2) as m:
        fd = FD(os.open(CGROUP2, os.O_RDONLY | os.O_DIRECTORY))
        with fd:
            m[1] = fd
            assert m.delete(u32(1)) and not m.delete(u32(1))


def _map_in_map(mtype: MapType) -> None:
    with Map.create("array", 4, 4, 2) as template, Map.create("array", 4, 4, 2, name="inner") as inner:
        inner[1] = u32(99)
        key_size = 4 if mtype == MapType.ARRAY_OF_MAPS else 8
        with create_or_skip(mtype, key_size, 4, 4, inner_map=template) as outer:
            key = u32(2) if key_size == 4 else u64(2)
            outer[key] = inner
            assert outer[key] == inner.id
            with outer.inner_map(key) as got:
                assert got.id == inner.id and got[1] == u32(99)
            del outer[key]
            assert outer.get(key) is None
            with pytest.raises(BPFError):  # a different shape than the template is refused
                with Map.create("hash", 4, 4, 2) as wrong:
                    outer[key] = wrong


def _devmap(mtype: MapType) -> None:
    lo = socket.if_nametoindex("lo")
    with create_or_skip(mtype, 4, 4, 4) as m:
        m[u32(3)] = u32(lo)
        assert m[u32(3)] == u32(lo)
        assert m.delete(u32(3))
        if mtype == MapType.DEVMAP_HASH:
            assert u32(3) not in m


def _cpumap() -> None:
    with create_or_skip(MapType.CPUMAP, 4, 4, NCPU) as m:
        m[u32(0)] = u32(192)  # queue size
        assert m[u32(0)] == u32(192)
        assert m.delete(u32(0))


def _xskmap() -> None:
    with create_or_skip(MapType.XSKMAP, 4, 4, 4) as m:
        with pytest.raises(BPFError):
            m.delete(u32(9))  # beyond max_entries
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(BPFError):
            m[0] = s  # only bound AF_XDP sockets go in
        # bpf_redirect_map() answers XDP_REDIRECT when the slot holds a socket, else the fallback action.
        code = ld_map_fd(R1, m.fileno()) + mov_imm(R2, 0) + mov_imm(R3, XDP_PASS) + call(HELPER_REDIRECT_MAP) + exit_()
        with _af_xdp_socket_on_lo() as xsk, Program.load(code, "xdp") as redirect:
            assert redirect.test_run(PACKET).return_value == XDP_PASS
            m[0] = xsk
            assert redirect.test_run(PACKET).return_value == XDP_REDIRECT
            with pytest.raises(BPFError, match="cannot be read from user space"):
                m.lookup(u32(0))
            assert m.delete(u32(0))
            assert redirect.test_run(PACKET).return_value == XDP_PASS


@contextlib.contextmanager
def _af_xdp_socket_on_lo() -> Iterator[socket.socket]:
    """An AF_XDP socket with a small UMEM, bound in copy mode to queue 0 of the loopback device."""
    sol_xdp, af_xdp = 283, 44
    xdp_rx_ring, xdp_umem_reg, xdp_umem_fill_ring, xdp_umem_completion_ring, xdp_copy = 2, 4, 5, 6, 2
    size = 16 * mmap.PAGESIZE
    umem = mmap.mmap(-1, size)
    anchor = ctypes.c_char.from_buffer(umem)
    s = socket.socket(af_xdp, socket.SOCK_RAW, 0)
    try:
        s.setsockopt(sol_xdp, xdp_umem_reg, struct.pack("=QQIIII", ctypes.addressof(anchor), size,
                                                        mmap.PAGESIZE, 0, 0, 0))
        for opt in (xdp_umem_fill_ring, xdp_umem_completion_ring, xdp_rx_ring):
            s.setsockopt(sol_xdp, opt, struct.pack("=I", 64))
        addr = struct.pack("=HHIII", af_xdp, xdp_copy, socket.if_nametoindex("lo"), 0, 0)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.bind(s.fileno(), ctypes.c_char_p(addr), len(addr)) < 0:
            err = ctypes.get_errno()
            pytest.skip(f"cannot bind an AF_XDP socket to lo: {os.strerror(err)}")
        yield s
    finally:
        s.close()
        del anchor
        umem.close()


def _sock_maps(mtype: MapType) -> None:
    key_size = 4 if mtype == MapType.SOCKMAP else 8
    with create_or_skip(mtype, key_size, 8, 4) as m, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        key = u32(1) if key_size == 4 else u64(1)
        m[key] = s
        assert m[key] == u64(so_cookie(s))  # value_size 8: lookups answer the socket cookie
        del m[key]
        assert m.get(key) is None


def _reuseport() -> None:
    with create_or_skip(MapType.REUSEPORT_SOCKARRAY, 4, 8, 4) as m, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", 0))
        m[2] = s
        assert m[u32(2)] == u64(so_cookie(s))
        assert m.delete(u32(2))


# ---- local storage ---------------------------------------------------------------------------

def _storage(mtype: MapType, make_owner: Callable[[], FD]) -> None:
    with create_or_skip(mtype, 4, 16, 0) as m:
        assert m.info.btf_id  # corebpf described the opaque value with its own BTF
        with make_owner() as owner:
            assert m.get(owner.fileno()) is None
            m[owner] = b"0123456789abcdef"
            assert m[owner.fileno()] == b"0123456789abcdef"
            del m[owner]
            assert m.get(owner.fileno()) is None


def _socket_owner() -> FD:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return FD(s.detach())


def _cgroup_storage(mtype: MapType) -> None:
    key_size = 16
    with create_or_skip(mtype, key_size, 8, 0) as m:
        prog = Program.load(ld_map_fd(R1, m.fileno()) + mov_imm(R2, 0) + call(HELPER_GET_LOCAL_STORAGE)
                            + ret(1), "cgroup_skb", expected_attach_type="cgroup_inet_egress")
        path = tempfile.mkdtemp(prefix="corebpf-test-", dir=CGROUP2)
        cg = FD(os.open(path, os.O_RDONLY | os.O_DIRECTORY))
        try:
            with prog, cg:
                ops.prog_attach(prog.fileno(), cg.fileno(), uapi.AttachType.CGROUP_INET_EGRESS)
                try:
                    keys = list(m)
                    assert len(keys) == 1  # the entry appears with the attachment
                    assert struct.unpack_from("=Q", keys[0])[0] == os.stat(path).st_ino
                    m[keys[0]] = u64(0xABCDEF) if mtype == MapType.CGROUP_STORAGE else [u64(0xABCDEF)] * NCPU
                    expected = u64(0xABCDEF)
                    got = m[keys[0]]
                    assert (got == expected) if mtype == MapType.CGROUP_STORAGE else (got == [expected] * NCPU)
                finally:
                    ops.prog_detach(prog.fileno(), cg.fileno(), uapi.AttachType.CGROUP_INET_EGRESS)
        finally:
            os.rmdir(path)


# ---- traced, mmapped and special maps --------------------------------------------------------

def _stack_trace() -> None:
    depth = 127
    with create_or_skip(MapType.STACK_TRACE, 4, 8 * depth, 16) as m:
        code = mov_reg(R6, R1) + ld_map_fd(R2, m.fileno()) + mov_imm(R3, 0) + call(HELPER_GET_STACKID) + exit_()
        with Program.load(code, "raw_tracepoint") as p:
            res = p.test_run(ctx=bytes(8))
        stack_id = res.return_value
        assert stack_id < 2**31, f"bpf_get_stackid failed: {stack_id - 2**32}"
        frames = struct.unpack(f"={depth}Q", m[u32(stack_id)])
        assert frames[0] >= 0xFFFF800000000000 or frames[0] != 0  # a kernel address
        assert list(m) == [u32(stack_id)]
        del m[u32(stack_id)]
        assert u32(stack_id) not in m


def _ringbuf() -> None:
    size = 4 * mmap.PAGESIZE
    with create_or_skip(MapType.RINGBUF, 0, 0, size) as m:
        code = b"".join([st_dw(R10, -8, 0x11223344), ld_map_fd(R1, m.fileno()), mov_reg(R2, R10), add_imm(R2, -8),
                         mov_imm(R3, 8), mov_imm(R4, 0), call(HELPER_RINGBUF_OUTPUT), exit_()])
        with Program.load(code, "socket_filter") as p:
            assert p.test_run(PACKET).return_value == 0
        with m.mmap(mmap.PAGESIZE, 0, writable=True) as cons, \
                m.mmap(mmap.PAGESIZE + 2 * size, mmap.PAGESIZE, writable=False) as prod:
            cons_pos = struct.unpack_from("=Q", cons, 0)[0]
            prod_pos = struct.unpack_from("=Q", prod, 0)[0]
            assert prod_pos - cons_pos == 16  # one 8-byte header + 8 bytes of data
            hdr_len, _ = struct.unpack_from("=II", prod, mmap.PAGESIZE + cons_pos % size)
            assert hdr_len == 8
            assert struct.unpack_from("=Q", prod, mmap.PAGESIZE + cons_pos % size + 8)[0] == 0x11223344
            struct.pack_into("=Q", cons, 0, prod_pos)  # consume it
        with pytest.raises(TypeError, match="mmap"):
            m[u32(0)]


def _user_ringbuf() -> None:
    size = 4 * mmap.PAGESIZE
    with create_or_skip(MapType.USER_RINGBUF, 0, 0, size) as m:
        with m.mmap(mmap.PAGESIZE, 0, writable=False) as cons, \
                m.mmap(mmap.PAGESIZE + 2 * size, mmap.PAGESIZE, writable=True) as prod:
            # Producer side is user space: write a record header + 8 bytes, then publish.
            pos = struct.unpack_from("=Q", prod, 0)[0]
            struct.pack_into("=IIQ", prod, mmap.PAGESIZE + pos % size, 8, 0, 0x5566)
            struct.pack_into("=Q", prod, 0, pos + 16)
            assert struct.unpack_from("=Q", cons, 0)[0] == pos
            drained = _drain_user_ringbuf(m)
            assert drained == 1
            assert struct.unpack_from("=Q", cons, 0)[0] == pos + 16  # the kernel consumed it


def _drain_user_ringbuf(m: Map) -> int:
    """Run a program calling bpf_user_ringbuf_drain() with an empty callback; returns samples drained."""
    code = b"".join([ld_map_fd(R1, m.fileno()), ld_func(R2, 5), mov_imm(R3, 0), mov_imm(R4, 0),
                     call(HELPER_USER_RINGBUF_DRAIN), exit_(),   # main: 0..7
                     ret(0)])                                      # callback at 8
    btf, func_info = _two_func_btf()
    with btf, Program.load(code, "socket_filter", btf=btf, func_info=func_info) as p:
        return p.test_run(PACKET).return_value


def _two_func_btf() -> tuple[FD, bytes]:
    """BTF with ``int main(void)`` and ``static int cb(void)``, and func_info for insns 0 and 8."""
    strings = b"\0int\0main\0cb\0"
    types = b"".join([
        struct.pack("<IIII", 1, 1 << 24, 4, 1 << 24 | 32),           # 1: int
        struct.pack("<III", 0, 13 << 24, 1),                          # 2: int (void)
        struct.pack("<III", 5, 12 << 24 | 1, 2),                      # 3: global func main
        struct.pack("<III", 10, 12 << 24 | 0, 2),                     # 4: static func cb
    ])
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    ret_, log = ops.btf_load(header + types + strings, log_level=1, log_size=4096)
    assert ret_ >= 0, log
    return FD(ret_), struct.pack("<II", 0, 3) + struct.pack("<II", 8, 4)


def _arena() -> None:
    with create_or_skip(MapType.ARENA, 0, 0, 4, flags=corebpf.maps.types.BPF_F_MMAPABLE) as m:
        with m.mmap() as mm:
            mm[100:105] = b"arena"
            assert mm[100:105] == b"arena" and mm[mmap.PAGESIZE * 3:mmap.PAGESIZE * 3 + 4] == bytes(4)


def _struct_ops() -> None:
    with pytest.raises(ValueError, match="btf_vmlinux_value_type_id"):
        Map.create("struct_ops", 4, 64, 1)
    type_id, size = _vmlinux_struct("bpf_struct_ops_tcp_congestion_ops")
    with create_or_skip(MapType.STRUCT_OPS, 4, size, 1, btf_vmlinux_value_type_id=type_id, name="tcp_ca") as m:
        assert m.info.btf_vmlinux_value_type_id == type_id and m.info.btf_id
        value = m[0]
        assert len(value) == size and struct.unpack_from("=I", value, 4)[0] == 0  # state: BPF_STRUCT_OPS_STATE_INIT
        with pytest.raises(BPFError):
            m[0] = value  # registering needs struct_ops programs for the function pointers


def _vmlinux_struct(name: str) -> tuple[int, int]:
    """(BTF id, size) of a vmlinux struct, with bpftool as the oracle."""
    if shutil.which("bpftool") is None or not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("finding the struct_ops value type needs bpftool and /sys/kernel/btf/vmlinux")
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"],
                         capture_output=True, text=True, check=True).stdout
    match = re.search(rf"^\[(\d+)\] STRUCT '{name}' size=(\d+)", out, re.M)
    if match is None:
        pytest.skip(f"this kernel's BTF has no struct {name} (CONFIG_BPF_JIT and TCP congestion ops)")
    return int(match.group(1)), int(match.group(2))


CASES: dict[MapType, Callable[[], None]] = {
    MapType.HASH: lambda: _hash_like(MapType.HASH),
    MapType.ARRAY: _array,
    MapType.PROG_ARRAY: _prog_array,
    MapType.PERF_EVENT_ARRAY: _perf_event_array,
    MapType.PERCPU_HASH: lambda: _percpu(MapType.PERCPU_HASH, False),
    MapType.PERCPU_ARRAY: lambda: _percpu(MapType.PERCPU_ARRAY, True),
    MapType.STACK_TRACE: _stack_trace,
    MapType.CGROUP_ARRAY: _cgroup_array,
    MapType.LRU_HASH: lambda: _hash_like(MapType.LRU_HASH),
    MapType.LRU_PERCPU_HASH: lambda: _percpu(MapType.LRU_PERCPU_HASH, False),
    MapType.LPM_TRIE: _lpm_trie,
    MapType.ARRAY_OF_MAPS: lambda: _map_in_map(MapType.ARRAY_OF_MAPS),
    MapType.HASH_OF_MAPS: lambda: _map_in_map(MapType.HASH_OF_MAPS),
    MapType.DEVMAP: lambda: _devmap(MapType.DEVMAP),
    MapType.SOCKMAP: lambda: _sock_maps(MapType.SOCKMAP),
    MapType.CPUMAP: _cpumap,
    MapType.XSKMAP: _xskmap,
    MapType.SOCKHASH: lambda: _sock_maps(MapType.SOCKHASH),
    MapType.CGROUP_STORAGE: lambda: _cgroup_storage(MapType.CGROUP_STORAGE),
    MapType.REUSEPORT_SOCKARRAY: _reuseport,
    MapType.PERCPU_CGROUP_STORAGE: lambda: _cgroup_storage(MapType.PERCPU_CGROUP_STORAGE),
    MapType.QUEUE: lambda: _queue_stack(MapType.QUEUE),
    MapType.STACK: lambda: _queue_stack(MapType.STACK),
    MapType.SK_STORAGE: lambda: _storage(MapType.SK_STORAGE, _socket_owner),
    MapType.DEVMAP_HASH: lambda: _devmap(MapType.DEVMAP_HASH),
    MapType.STRUCT_OPS: _struct_ops,
    MapType.RINGBUF: _ringbuf,
    MapType.INODE_STORAGE: lambda: _storage(MapType.INODE_STORAGE, lambda: FD(os.open(__file__, os.O_RDONLY))),
    MapType.TASK_STORAGE: lambda: _storage(MapType.TASK_STORAGE, lambda: FD(os.pidfd_open(os.getpid()))),
    MapType.BLOOM_FILTER: _bloom,
    MapType.USER_RINGBUF: _user_ringbuf,
    MapType.CGRP_STORAGE: lambda: _storage(MapType.CGRP_STORAGE,
                                           lambda: FD(os.open(CGROUP2, os.O_RDONLY | os.O_DIRECTORY))),
    MapType.ARENA: _arena,
}


def test_every_uapi_map_type_has_a_case():
    assert set(CASES) == {t for t in MapType if t != MapType.UNSPEC}
    assert set(RULES) == set(CASES)


@pytest.mark.parametrize("mtype", sorted(CASES), ids=lambda t: t.name.lower())
def test_map_type_round_trip(mtype: MapType) -> None:
    before = _open_fds()
    CASES[mtype]()
    assert _open_fds() == before, "the round trip leaked fds"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_unknown_map_type_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown map type 'hashh'"):
        Map.create("hashh", 4, 4, 1)
    with pytest.raises(ValueError, match="unknown map type number"):
        Map.create(max(MapType) + 50, 4, 4, 1)


def test_kernel_refusal_carries_a_map_type_hint():
    from corebpf.errors import BPFInvalidArgumentError

    with pytest.raises(BPFInvalidArgumentError) as exc:
        Map.create("bloom_filter", 0, 8, 16, map_extra=99)  # more hash functions than the kernel allows
    assert exc.value.errno == errno.EINVAL and exc.value.command == "BPF_MAP_CREATE"
    assert "bloom_filter maps need Linux 5.16" in exc.value.hint and "map_extra" in exc.value.hint


def test_value_and_key_sizes_checked_before_the_kernel():
    with pytest.raises(ValueError, match="key_size must be 4"):
        Map.create("array", 8, 4, 1)
    with pytest.raises(ValueError, match="needs inner_map"):
        Map.create("array_of_maps", 4, 4, 1)
    with pytest.raises(ValueError, match="power of two"):
        Map.create("ringbuf", 0, 0, 5000)
    with pytest.raises(ValueError, match="BPF_F_NO_PREALLOC"):
        Map.create("lpm_trie", 8, 4, 1)
    with pytest.raises(ValueError, match="max_entries must be 0"):
        Map.create("sk_storage", 4, 4, 10)

