"""What the kernel says about a map (``BPF_OBJ_GET_INFO_BY_FD``), as a small record."""

from __future__ import annotations

from .._sys.handle import fd_kind  # re-exported: maps was its first home

import os
from dataclasses import dataclass

from .._sys import ops
from .._sys._generated import MapInfo as _RawMapInfo
from .._sys._generated import MapType


@dataclass(frozen=True)
class MapInfo:
    """A map's identity and shape as the kernel reports it."""

    id: int
    name: str
    type: "MapType | int"
    """A :class:`MapType`, or the raw number for a type newer than corebpf."""
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    btf_vmlinux_value_type_id: int
    map_extra: int
    ifindex: int


def map_info(fd: int) -> MapInfo:
    """Query the kernel for the map behind ``fd``."""
    raw = _RawMapInfo()
    ops.obj_get_info_by_fd(fd, raw)
    try:
        mtype: MapType | int = MapType(raw.type)
    except ValueError:
        mtype = raw.type
    return MapInfo(id=raw.id, name=raw.name.decode(errors="replace"), type=mtype, key_size=raw.key_size,
                   value_size=raw.value_size, max_entries=raw.max_entries, flags=raw.map_flags,
                   btf_id=raw.btf_id, btf_key_type_id=raw.btf_key_type_id,
                   btf_value_type_id=raw.btf_value_type_id,
                   btf_vmlinux_value_type_id=raw.btf_vmlinux_value_type_id, map_extra=raw.map_extra,
                   ifindex=raw.ifindex)


__all__ = ["MapInfo", "map_info", "fd_kind"]
