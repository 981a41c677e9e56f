"""What the kernel says about a program (``BPF_OBJ_GET_INFO_BY_FD``), as a small record."""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

from .._sys import ops
from .._sys._generated import ProgInfo as _RawProgInfo
from .._sys._generated import ProgType


@dataclass(frozen=True)
class ProgramInfo:
    """A loaded program's identity, shape and run statistics as the kernel reports them."""

    id: int
    name: str
    type: "ProgType | int"
    """A :class:`ProgType`, or the raw number for a type newer than corebpf."""
    tag: str
    """The kernel's program tag: 16 hex digits (what ``bpftool prog`` prints)."""
    load_time_ns: int
    """Load time in nanoseconds since boot (CLOCK_BOOTTIME)."""
    created_by_uid: int
    map_ids: tuple[int, ...]
    btf_id: int
    xlated_prog_len: int
    jited_prog_len: int
    gpl_compatible: bool
    run_time_ns: int
    """Total run time while stats were enabled (see :func:`corebpf.programs.enable_stats`)."""
    run_cnt: int
    recursion_misses: int
    verified_insns: int
    attach_btf_obj_id: int
    attach_btf_id: int
    ifindex: int


def raw_prog_info(fd: int) -> _RawProgInfo:
    """The kernel's ``struct bpf_prog_info`` for ``fd`` (no arrays requested)."""
    raw = _RawProgInfo()
    ops.obj_get_info_by_fd(fd, raw)
    return raw


def program_info(fd: int) -> ProgramInfo:
    """Query the kernel for the program behind ``fd``, including its map ids."""
    raw = raw_prog_info(fd)
    map_ids: tuple[int, ...] = ()
    if raw.nr_map_ids:
        ids = (ctypes.c_uint32 * raw.nr_map_ids)()
        again = _RawProgInfo(nr_map_ids=raw.nr_map_ids, map_ids=ctypes.addressof(ids))
        ops.obj_get_info_by_fd(fd, again)
        map_ids = tuple(ids[: min(again.nr_map_ids, raw.nr_map_ids)])
        raw = again
    try:
        ptype: ProgType | int = ProgType(raw.type)
    except ValueError:
        ptype = raw.type
    return ProgramInfo(id=raw.id, name=raw.name.decode(errors="replace"), type=ptype, tag=bytes(raw.tag).hex(),
                       load_time_ns=raw.load_time, created_by_uid=raw.created_by_uid, map_ids=map_ids,
                       btf_id=raw.btf_id, xlated_prog_len=raw.xlated_prog_len, jited_prog_len=raw.jited_prog_len,
                       gpl_compatible=bool(raw.gpl_compatible), run_time_ns=raw.run_time_ns, run_cnt=raw.run_cnt,
                       recursion_misses=raw.recursion_misses, verified_insns=raw.verified_insns,
                       attach_btf_obj_id=raw.attach_btf_obj_id, attach_btf_id=raw.attach_btf_id,
                       ifindex=raw.ifindex)


__all__ = ["ProgramInfo", "program_info", "raw_prog_info"]
