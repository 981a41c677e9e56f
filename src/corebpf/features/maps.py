"""Map type probes: create the smallest valid map of each type, then close it.

Parameters follow each type's rules in the kernel (key/value sizes, max_entries, required
flags); local-storage maps need a BTF blob for their key/value types and struct_ops needs the
vmlinux type of a struct_ops value, so both are built here.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import mmap
import struct
from dataclasses import dataclass

from .._sys import _generated as g
from .._sys._generated import MapType
from .._sys.syscall import bpf_raw
from ._btfids import KIND_STRUCT, vmlinux_types
from .probes import ProbeResult, close, failed, ok

BPF_F_NO_PREALLOC = 1
BPF_F_MMAPABLE = 1 << 10

MAP_CONFIG = {
    "SOCKMAP": "BPF_STREAM_PARSER", "SOCKHASH": "BPF_STREAM_PARSER", "XSKMAP": "XDP_SOCKETS",
    "INODE_STORAGE": "BPF_LSM", "CGROUP_STORAGE": "CGROUP_BPF", "PERCPU_CGROUP_STORAGE": "CGROUP_BPF",
    "CGROUP_ARRAY": "CGROUP_BPF", "CGRP_STORAGE": "CGROUP_BPF", "STRUCT_OPS": "BPF_JIT",
    "ARENA": "MMU (and a 64-bit JIT)",
}


@dataclass(frozen=True)
class MapParams:
    """``BPF_MAP_CREATE`` arguments for a minimal map of one type."""

    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    needs_btf: bool = False
    needs_inner: bool = False


def _params(t: MapType) -> MapParams:
    page = mmap.PAGESIZE
    if t in (MapType.RINGBUF, MapType.USER_RINGBUF):
        return MapParams(0, 0, page)
    if t in (MapType.QUEUE, MapType.STACK):
        return MapParams(0, 4, 1)
    if t == MapType.BLOOM_FILTER:
        return MapParams(0, 4, 1)
    if t == MapType.LPM_TRIE:
        return MapParams(8, 8, 1, BPF_F_NO_PREALLOC)
    if t in (MapType.CGROUP_STORAGE, MapType.PERCPU_CGROUP_STORAGE):
        return MapParams(16, 8, 0)  # struct bpf_cgroup_storage_key (with padding)
    if t in (MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE, MapType.CGRP_STORAGE):
        return MapParams(4, 4, 0, BPF_F_NO_PREALLOC, needs_btf=True)
    if t in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
        return MapParams(4, 4, 1, needs_inner=True)
    if t in (MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.DEVMAP,
             MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP, MapType.SOCKMAP, MapType.SOCKHASH,
             MapType.REUSEPORT_SOCKARRAY):
        return MapParams(4, 4, 1)
    if t == MapType.ARENA:
        return MapParams(0, 0, 1, BPF_F_MMAPABLE)
    return MapParams(4, 8, 1)


def storage_btf() -> bytes:
    """Raw BTF with one type, ``int`` (id 1): what local-storage maps need for key and value."""
    strings = b"\0int\0"
    types = struct.pack("<IIII", 1, 1 << 24, 4, (1 << 24) | 32)  # INT "int", signed, 32 bits
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return hdr + types + strings


def _create(t: int, p: MapParams, **extra: int) -> int:
    attr = g.MapCreateAttr(map_type=t, key_size=p.key_size, value_size=p.value_size, max_entries=p.max_entries,
                           map_flags=p.flags, **extra)
    return bpf_raw(g.Cmd.MAP_CREATE, attr)


def _btf_fd() -> int:
    data = storage_btf()
    buf = ctypes.create_string_buffer(data, len(data))
    attr = g.BtfLoadAttr(btf=ctypes.addressof(buf), btf_size=len(data))
    return bpf_raw(g.Cmd.BTF_LOAD, attr)


def explain_map_failure(name: str, err: int) -> str:
    """A short reason for a failed map create."""
    if err in (_errno.EPERM, _errno.EACCES):
        from ..node.caps import capabilities

        missing = capabilities().missing_for_bpf(tracing=False, networking=False)
        return f"permission denied: missing {', '.join(missing)} (or CAP_SYS_ADMIN)" if missing else \
            "permission denied by kernel policy"
    if err == _errno.EINVAL:
        opt = MAP_CONFIG.get(name.upper())
        return "the kernel does not know this map type" + (f" (CONFIG_{opt} off?)" if opt else "") + \
            " or rejects its parameters"
    if err in (_errno.EOPNOTSUPP, 524):
        return "not supported by this kernel, its config or architecture"
    if err == _errno.ENOMEM:
        return "out of memory (or RLIMIT_MEMLOCK on kernels before 5.11)"
    return f"create failed with {_errno.errorcode.get(err, err)}"


def type_name(t: MapType) -> str:
    """The lower-case name bpftool uses (``CGROUP_STORAGE``, not its ``_DEPRECATED`` alias)."""
    return t.name.lower().removesuffix("_deprecated")


def probe_map_type(t: MapType) -> ProbeResult:
    """Create and close a minimal map of type ``t``."""
    name = type_name(t)
    p = _params(t)
    fds: list[int] = []
    try:
        extra: dict[str, int] = {}
        if p.needs_inner:
            inner = _create(MapType.ARRAY, MapParams(4, 4, 1))
            if inner < 0:
                return failed(name, -inner, "could not create the inner array map: " + explain_map_failure("array", -inner))
            fds.append(inner)
            extra["inner_map_fd"] = inner
        if p.needs_btf or t == MapType.STRUCT_OPS:
            btf = _btf_fd()
            if btf < 0:
                return failed(name, -btf, "BPF_BTF_LOAD failed: local-storage maps need BTF (kernel >= 5.2)")
            fds.append(btf)
            extra["btf_fd"] = btf  # struct_ops maps need a (any) BTF fd too
            if p.needs_btf:
                extra.update(btf_key_type_id=1, btf_value_type_id=1)
        if t == MapType.STRUCT_OPS:
            key = ("bpf_struct_ops_tcp_congestion_ops", KIND_STRUCT)
            vt = vmlinux_types([key])[key]
            if vt is None:
                return failed(name, _errno.ENOENT, "no struct_ops value type in vmlinux BTF", source="/sys/kernel/btf/vmlinux")
            p = MapParams(4, vt.size, 1)
            extra["btf_vmlinux_value_type_id"] = vt.type_id
        fd = _create(t, p, **extra)
        if fd >= 0:
            fds.append(fd)
            return ok(name, "creates")
        return failed(name, -fd, explain_map_failure(name, -fd))
    finally:
        for fd in fds:
            close(fd)


def all_map_types() -> list[MapType]:
    """Every map type corebpf knows (without UNSPEC; aliases appear once)."""
    return [t for t in MapType if t != MapType.UNSPEC]


def probe_map_types() -> dict[str, ProbeResult]:
    """Probe every map type; keys are lower-case names (``"hash"``)."""
    return {type_name(t): probe_map_type(t) for t in all_map_types()}
