"""Reading every entry of a loaded map as raw bytes (keys and values; per-CPU values split by CPU).

Walks keys with ``BPF_MAP_GET_NEXT_KEY`` and reads each with ``BPF_MAP_LOOKUP_ELEM``. Entries deleted
while walking are skipped. Map types without walkable keys (ring buffers, queues, local storage,
bloom filters...) raise :class:`~corebpf.errors.BPFNotSupportedError` naming the type.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Iterator, Optional

from .._sys import _generated as g
from .._sys import ops
from .._sys.fd import FD
from ..errors import BPFError, BPFNotFoundError, BPFNotSupportedError
from .walk import open_by_id, read_map
from .records import MapRecord

PERCPU_TYPES = frozenset({g.MapType.PERCPU_HASH, g.MapType.PERCPU_ARRAY, g.MapType.LRU_PERCPU_HASH,
                          g.MapType.PERCPU_CGROUP_STORAGE})
# No keys to walk from user space, or walking would consume the data.
NOT_DUMPABLE = frozenset({g.MapType.RINGBUF, g.MapType.USER_RINGBUF, g.MapType.QUEUE, g.MapType.STACK,
                          g.MapType.BLOOM_FILTER, g.MapType.SK_STORAGE, g.MapType.INODE_STORAGE,
                          g.MapType.TASK_STORAGE, g.MapType.CGRP_STORAGE, g.MapType.ARENA})


def _parse_cpu_list(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def possible_cpu_count() -> int:
    """Number of possible CPUs: per-CPU map values have one slot for each."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            return max(_parse_cpu_list(f.read())) + 1
    except (OSError, ValueError):
        import os
        return os.cpu_count() or 1


@dataclass(frozen=True)
class MapEntry:
    """One map element. ``values`` holds one value per possible CPU for per-CPU maps (``value`` is None
    then); for other maps ``value`` holds the bytes and ``values`` is None."""

    key: bytes
    value: Optional[bytes] = None
    values: Optional[tuple[bytes, ...]] = None


def is_percpu(record: MapRecord) -> bool:
    """True when the map keeps one value per CPU."""
    return record.type_id in PERCPU_TYPES


def iter_entries(fd: FD, record: MapRecord, limit: Optional[int] = None) -> Iterator[MapEntry]:
    """Every element of the map open at ``fd`` (described by ``record``), at most ``limit``."""
    if record.type_id in NOT_DUMPABLE:
        raise BPFNotSupportedError(errno.EOPNOTSUPP, "BPF_MAP_GET_NEXT_KEY",
                                   "this map type has no keys to walk from user space",
                                   detail=f"map {record.id} is a {record.type} map")
    percpu = is_percpu(record)
    ncpus = possible_cpu_count() if percpu else 1
    slot = (record.value_size + 7) // 8 * 8 if percpu else record.value_size
    value = bytearray(max(slot * ncpus, 1))
    key: Optional[bytearray] = None
    next_key = bytearray(max(record.key_size, 1))
    count = 0
    # When the current key is deleted under us, hash maps restart the walk from the first key: stop at a
    # key already seen rather than loop (or repeat entries) while another process churns the map.
    seen: set[bytes] = set()
    while limit is None or count < limit:
        if not ops.map_get_next_key(int(fd), key, next_key):
            return
        if bytes(next_key) in seen:
            return
        seen.add(bytes(next_key))
        key = bytearray(next_key)
        try:
            found = ops.map_lookup_elem(int(fd), bytes(key), value)
        except BPFError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM, errno.EACCES) and count == 0:
                raise BPFNotSupportedError(exc.errno or errno.EOPNOTSUPP, "BPF_MAP_LOOKUP_ELEM",
                                           "the kernel does not allow reading this map type's values",
                                           detail=f"map {record.id} ({record.type})") from None
            continue
        if not found:
            continue  # deleted while we walk, or an empty slot of a prog/fd array
        count += 1
        if percpu:
            yield MapEntry(bytes(key), values=tuple(bytes(value[i * slot:i * slot + record.value_size])
                                                    for i in range(ncpus)))
        else:
            yield MapEntry(bytes(key), value=bytes(value[:record.value_size]))


def dump_map(map_id: int, limit: Optional[int] = None) -> tuple[MapRecord, list[MapEntry]]:
    """The record and every entry of map ``map_id``; raises BPFNotFoundError when there is no such map."""
    fd = open_by_id("map", map_id)
    if fd is None:
        raise BPFNotFoundError(errno.ENOENT, "BPF_MAP_GET_FD_BY_ID", "list them with `corebpf map list`",
                               detail=f"no map with id {map_id}")
    with fd:
        record = read_map(fd)
        return record, list(iter_entries(fd, record, limit))


__all__ = ["MapEntry", "iter_entries", "dump_map", "is_percpu", "possible_cpu_count", "PERCPU_TYPES",
           "NOT_DUMPABLE"]
