"""What each map type needs: key/value sizes, flags, entries and special objects.

The kernel checks all of this at ``BPF_MAP_CREATE`` time, but answers only ``EINVAL``. Checking the
common rules here first turns that into a :class:`ValueError` that says which rule was broken. The
table is deliberately conservative: it encodes only rules the kernel has enforced since the type was
added, so it never refuses what the kernel would accept.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .._sys._generated import MapType

BPF_F_NO_PREALLOC = 1
BPF_F_NO_COMMON_LRU = 2
BPF_F_NUMA_NODE = 4
BPF_F_RDONLY = 8
BPF_F_WRONLY = 16
BPF_F_STACK_BUILD_ID = 32
BPF_F_ZERO_SEED = 64
BPF_F_RDONLY_PROG = 128
BPF_F_WRONLY_PROG = 256
BPF_F_CLONE = 512
BPF_F_MMAPABLE = 1024
BPF_F_PRESERVE_ELEMS = 2048
BPF_F_INNER_MAP = 4096
BPF_F_LINK = 8192
BPF_F_SEGV_ON_FAULT = 131072
BPF_F_NO_USER_CONV = 262144


class UpdateFlags(enum.IntFlag):
    """Flags of ``BPF_MAP_UPDATE_ELEM`` (and the batch ``elem_flags``)."""

    ANY = 0
    """Create the element or update it."""
    NOEXIST = 1
    """Create only: fail with EEXIST if the key exists."""
    EXIST = 2
    """Update only: fail with ENOENT if the key does not exist."""
    LOCK = 4
    """Take the value's ``bpf_spin_lock`` (maps with BTF only)."""


class Kind(enum.Enum):
    """How user space talks to a map type."""

    HASH = "hash"            # key -> value, keys come and go
    ARRAY = "array"          # u32 index -> value, every index exists
    FD_ARRAY = "fd_array"    # u32 index -> fd of another object (write fd, read id or nothing)
    FD_HASH = "fd_hash"      # key -> fd of another object (hash of maps, sockhash, devmap_hash)
    QUEUE = "queue"          # no key: push/pop/peek
    BLOOM = "bloom"          # no key: push/contains
    STORAGE = "storage"      # key is an fd of the owner object (socket, task, cgroup, inode)
    CGROUP_STORAGE = "cgroup_storage"  # entries appear when a program is attached to a cgroup
    STACK_TRACE = "stack_trace"        # written by bpf_get_stackid(), read/deleted from user space
    MMAP = "mmap"            # no element ops: ring buffers and arenas are mmapped
    STRUCT_OPS = "struct_ops"


@dataclass(frozen=True)
class TypeRules:
    """The creation constraints and user-space behaviour of one map type."""

    kind: Kind
    since: str
    """First kernel release with this map type (for hints only; never used to decide)."""
    key_size: tuple[int, ...] | None = None
    """Allowed key sizes, or None for any size > 0."""
    value_size: tuple[int, ...] | None = None
    """Allowed value sizes, or None for any size > 0."""
    percpu: bool = False
    max_entries_zero: bool = False
    """max_entries must be 0 (cgroup storage, local storage)."""
    required_flags: int = 0
    needs_inner_map: bool = False
    needs_btf: bool = False
    value_is_fd: bool = False
    """Updates take an fd (int or object with fileno()) as the value."""
    lookup_returns_id: bool = False
    """A user-space lookup answers the object's id (u32) instead of the stored value."""
    page_sized: bool = False
    """max_entries is a byte size: a power of two and a multiple of the page size."""
    note: str = ""


_FD4 = (4,)
_FD48 = (4, 8)

RULES: dict[MapType, TypeRules] = {
    MapType.HASH: TypeRules(Kind.HASH, "3.19"),
    MapType.ARRAY: TypeRules(Kind.ARRAY, "3.19", key_size=(4,)),
    MapType.PROG_ARRAY: TypeRules(Kind.FD_ARRAY, "4.2", key_size=(4,), value_size=_FD4, value_is_fd=True,
                                  lookup_returns_id=True),
    MapType.PERF_EVENT_ARRAY: TypeRules(Kind.FD_ARRAY, "4.3", key_size=(4,), value_size=_FD4, value_is_fd=True,
                                        note="values are perf event fds; user-space lookups are not supported"),
    MapType.PERCPU_HASH: TypeRules(Kind.HASH, "4.6", percpu=True),
    MapType.PERCPU_ARRAY: TypeRules(Kind.ARRAY, "4.6", key_size=(4,), percpu=True),
    MapType.STACK_TRACE: TypeRules(Kind.STACK_TRACE, "4.6", key_size=(4,),
                                   note="value_size is 8 * max stack depth (or 32 * depth with BPF_F_STACK_BUILD_ID)"),
    MapType.CGROUP_ARRAY: TypeRules(Kind.FD_ARRAY, "4.8", key_size=(4,), value_size=_FD4, value_is_fd=True,
                                    note="values are cgroup directory fds; user-space lookups are not supported"),
    MapType.LRU_HASH: TypeRules(Kind.HASH, "4.10"),
    MapType.LRU_PERCPU_HASH: TypeRules(Kind.HASH, "4.10", percpu=True),
    MapType.LPM_TRIE: TypeRules(Kind.HASH, "4.11", required_flags=BPF_F_NO_PREALLOC,
                                note="key is struct { u32 prefixlen; u8 data[N]; } with 1 <= N <= 256"),
    MapType.ARRAY_OF_MAPS: TypeRules(Kind.FD_ARRAY, "4.12", key_size=(4,), value_size=_FD4, needs_inner_map=True,
                                     value_is_fd=True, lookup_returns_id=True),
    MapType.HASH_OF_MAPS: TypeRules(Kind.FD_HASH, "4.12", value_size=_FD4, needs_inner_map=True, value_is_fd=True,
                                    lookup_returns_id=True),
    MapType.DEVMAP: TypeRules(Kind.ARRAY, "4.14", key_size=(4,), value_size=_FD48,
                              note="value is struct bpf_devmap_val: u32 ifindex [, u32 prog fd]"),
    MapType.SOCKMAP: TypeRules(Kind.FD_ARRAY, "4.14", key_size=(4,), value_size=_FD48, value_is_fd=True,
                               note="values are socket fds; a lookup answers the socket cookie when value_size is 8"),
    MapType.CPUMAP: TypeRules(Kind.ARRAY, "4.15", key_size=(4,), value_size=_FD48,
                              note="value is struct bpf_cpumap_val: u32 qsize [, u32 prog fd]; key is a CPU number"),
    MapType.XSKMAP: TypeRules(Kind.FD_ARRAY, "4.18", key_size=(4,), value_size=_FD4, value_is_fd=True,
                              note="values are AF_XDP socket fds bound to a device; user-space lookups are not supported"),
    MapType.SOCKHASH: TypeRules(Kind.FD_HASH, "4.18", value_size=_FD48, value_is_fd=True,
                                note="values are socket fds; a lookup answers the socket cookie when value_size is 8"),
    MapType.CGROUP_STORAGE: TypeRules(Kind.CGROUP_STORAGE, "4.19", key_size=(8, 16), max_entries_zero=True,
                                      note="entries exist only while a program using the map is attached to a cgroup"),
    MapType.REUSEPORT_SOCKARRAY: TypeRules(Kind.FD_ARRAY, "4.19", key_size=(4,), value_size=_FD48, value_is_fd=True,
                                           note="values are SO_REUSEPORT socket fds; lookups answer the cookie"),
    MapType.PERCPU_CGROUP_STORAGE: TypeRules(Kind.CGROUP_STORAGE, "4.20", key_size=(8, 16), percpu=True,
                                             max_entries_zero=True),
    MapType.QUEUE: TypeRules(Kind.QUEUE, "4.20", key_size=(0,)),
    MapType.STACK: TypeRules(Kind.QUEUE, "4.20", key_size=(0,)),
    MapType.SK_STORAGE: TypeRules(Kind.STORAGE, "5.2", key_size=(4,), max_entries_zero=True,
                                  required_flags=BPF_F_NO_PREALLOC, needs_btf=True, note="key is a socket fd"),
    MapType.DEVMAP_HASH: TypeRules(Kind.HASH, "5.4", key_size=(4,), value_size=_FD48,
                                   note="value is struct bpf_devmap_val: u32 ifindex [, u32 prog fd]"),
    MapType.STRUCT_OPS: TypeRules(Kind.STRUCT_OPS, "5.6", key_size=(4,), max_entries_zero=False, needs_btf=True,
                                  note="needs btf_vmlinux_value_type_id of a kernel struct_ops type; "
                                       "created by an object loader"),
    MapType.RINGBUF: TypeRules(Kind.MMAP, "5.8", key_size=(0,), value_size=(0,), page_sized=True,
                               note="read by mmap (a ring buffer reader), not by element ops"),
    MapType.INODE_STORAGE: TypeRules(Kind.STORAGE, "5.10", key_size=(4,), max_entries_zero=True,
                                     required_flags=BPF_F_NO_PREALLOC, needs_btf=True,
                                     note="key is an fd of any file; needs CONFIG_BPF_LSM"),
    MapType.TASK_STORAGE: TypeRules(Kind.STORAGE, "5.11", key_size=(4,), max_entries_zero=True,
                                    required_flags=BPF_F_NO_PREALLOC, needs_btf=True, note="key is a pidfd"),
    MapType.BLOOM_FILTER: TypeRules(Kind.BLOOM, "5.16", key_size=(0,),
                                    note="map_extra = number of hash functions (0 means 5, at most 15)"),
    MapType.USER_RINGBUF: TypeRules(Kind.MMAP, "6.1", key_size=(0,), value_size=(0,), page_sized=True,
                                    note="written by mmap from user space, drained by bpf_user_ringbuf_drain()"),
    MapType.CGRP_STORAGE: TypeRules(Kind.STORAGE, "6.2", key_size=(4,), max_entries_zero=True,
                                    required_flags=BPF_F_NO_PREALLOC, needs_btf=True,
                                    note="key is a cgroup directory fd"),
    MapType.ARENA: TypeRules(Kind.MMAP, "6.9", key_size=(0,), value_size=(0,), required_flags=BPF_F_MMAPABLE,
                             note="max_entries is a number of pages; map_extra is the user address (0: any)"),
}

PAGE_SIZE = 4096
try:
    import mmap as _mmap

    PAGE_SIZE = _mmap.PAGESIZE
except (ImportError, AttributeError):  # pragma: no cover
    pass


def parse_map_type(value: "MapType | int | str") -> MapType:
    """A :class:`MapType` from the enum, its value or its name (``"hash"``, ``"percpu_array"``, ``"LRU_HASH"``)."""
    if isinstance(value, MapType):
        return value
    if isinstance(value, str):
        key = value.strip().upper().replace("-", "_")
        if key.startswith("BPF_MAP_TYPE_"):
            key = key[len("BPF_MAP_TYPE_"):]
        try:
            return MapType[key]
        except KeyError:
            names = ", ".join(t.name.lower() for t in RULES)
            raise ValueError(f"unknown map type {value!r}; known: {names}") from None
    if isinstance(value, int):
        try:
            return MapType(value)
        except ValueError:
            raise ValueError(f"unknown map type number {value}") from None
    raise TypeError(f"map type must be a MapType, int or str, not {type(value).__name__}")


def rules_for(map_type: MapType) -> TypeRules:
    """The rules of ``map_type`` (hash-like defaults for a type newer than this table)."""
    return RULES.get(map_type, TypeRules(Kind.HASH, "?"))


def check_create(map_type: MapType, key_size: int, value_size: int, max_entries: int, flags: int,
                 has_inner_map: bool, has_btf: bool) -> None:
    """Raise :class:`ValueError` naming the broken rule when a creation request cannot succeed."""
    r = rules_for(map_type)
    name = map_type.name.lower()
    for what, size in (("key_size", key_size), ("value_size", value_size), ("max_entries", max_entries)):
        if not isinstance(size, int) or size < 0 or size > 0xFFFFFFFF:
            raise ValueError(f"{name} map: {what} must be an integer in 0..2**32-1, got {size!r}")
    if r.key_size is not None and key_size not in r.key_size:
        raise ValueError(f"{name} map: key_size must be {_either(r.key_size)}, got {key_size}")
    if r.key_size is None and key_size == 0:
        raise ValueError(f"{name} map: key_size must be > 0")
    if r.value_size is not None and value_size not in r.value_size:
        raise ValueError(f"{name} map: value_size must be {_either(r.value_size)}, got {value_size}"
                         + (f" ({r.note})" if r.note else ""))
    if r.value_size is None and value_size == 0:
        raise ValueError(f"{name} map: value_size must be > 0")
    if map_type == MapType.STACK_TRACE and value_size % 8:
        raise ValueError(f"stack_trace map: value_size must be a multiple of 8 (8 bytes per frame), got {value_size}")
    if map_type == MapType.LPM_TRIE and not 5 <= key_size <= 4 + 256:
        raise ValueError(f"lpm_trie map: key_size must be 4 (prefixlen) + 1..256 data bytes, got {key_size}")
    if r.max_entries_zero and max_entries != 0:
        raise ValueError(f"{name} map: max_entries must be 0 (storage grows with its owners), got {max_entries}")
    if not r.max_entries_zero and max_entries == 0 and map_type not in (MapType.PERF_EVENT_ARRAY,
                                                                          MapType.STRUCT_OPS):
        raise ValueError(f"{name} map: max_entries must be > 0")
    if r.page_sized and (max_entries % PAGE_SIZE or max_entries & (max_entries - 1)):
        raise ValueError(f"{name} map: max_entries is the buffer size in bytes and must be a power of two "
                         f"and a multiple of the page size ({PAGE_SIZE}), got {max_entries}")
    if r.required_flags and flags & r.required_flags != r.required_flags:
        raise ValueError(f"{name} map: flags must include {_flag_names(r.required_flags)}")
    if r.needs_inner_map and not has_inner_map:
        raise ValueError(f"{name} map: needs inner_map= (a Map to use as the template of its values)")
    if map_type == MapType.STRUCT_OPS and not has_btf:
        raise ValueError("struct_ops map: needs btf_vmlinux_value_type_id= (the vmlinux BTF id of "
                         "'struct bpf_struct_ops_<name>', e.g. bpf_struct_ops_tcp_congestion_ops) and its size "
                         "as value_size; object loaders do this for you")


def _either(sizes: tuple[int, ...]) -> str:
    return " or ".join(str(s) for s in sizes)


def _flag_names(flags: int) -> str:
    names = {v: k for k, v in globals().items() if k.startswith("BPF_F_") and isinstance(v, int)}
    return " | ".join(names.get(1 << i, hex(1 << i)) for i in range(32) if flags >> i & 1)


__all__ = ["MapType", "UpdateFlags", "Kind", "TypeRules", "RULES", "parse_map_type", "rules_for", "check_create",
           "PAGE_SIZE"] + [n for n in dir() if n.startswith("BPF_F_")]
