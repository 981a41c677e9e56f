"""Walking the kernel's id spaces: every loaded program, map, link and BTF object, one record each.

For each id: ``BPF_*_GET_FD_BY_ID``, ``BPF_OBJ_GET_INFO_BY_FD``, close. Objects that disappear between
the id walk and the open (ENOENT), or links caught mid-setup/teardown (EAGAIN), are skipped, since
other processes load and unload all the time. A permission error stops the walk with a hint that says
what the kernel checks (CAP_SYS_ADMIN).
"""

from __future__ import annotations

import ctypes
from typing import Callable, Iterable, Iterator, Optional, TypeVar

from .._sys import _generated as g
from .._sys import ops
from .._sys.fd import FD
from ..errors import BPFNotFoundError
from .attach import decode_attach
from .clock import boot_ns_to_datetime, boot_offset_ns
from .fdinfo import int_field, read_fdinfo
from .fullname import full_program_name
from .listing import ids, open_by_id
from .names import enum_name
from .records import BTFRecord, LinkRecord, MapRecord, ProgramRecord

T = TypeVar("T")

_MAP_IDS_GUESS = 64
_BTF_NAME_LEN = 128


def _self_fdinfo(fd: FD) -> dict[str, str]:
    return read_fdinfo(f"/proc/self/fdinfo/{int(fd)}")


def _c_str(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def read_program(fd: FD, offset_ns: Optional[int] = None,
                 btf_cache: Optional[dict[int, Optional[bytes]]] = None) -> ProgramRecord:
    """The record of the program open at ``fd`` (owners and pins not collected); ``btf_cache`` shares
    BTF blobs fetched to complete truncated names across one walk."""
    nr = _MAP_IDS_GUESS
    while True:
        ids = (ctypes.c_uint32 * nr)()
        info = g.ProgInfo(nr_map_ids=nr, map_ids=ctypes.addressof(ids))
        ops.obj_get_info_by_fd(int(fd), info)
        if info.nr_map_ids <= nr:
            break
        nr = info.nr_map_ids  # more maps than guessed: ask again with room for all
    memlock = int_field(_self_fdinfo(fd), "memlock")
    name = _c_str(info.name)
    return ProgramRecord(
        id=info.id, name=name, full_name=full_program_name(fd, info, name, btf_cache),
        type=enum_name(g.ProgType, info.type), type_id=info.type,
        tag=bytes(info.tag).hex(), gpl=bool(info.gpl_compatible), map_ids=tuple(ids[: info.nr_map_ids]),
        load_time=boot_ns_to_datetime(info.load_time, offset_ns), load_time_ns=info.load_time,
        created_by_uid=info.created_by_uid, btf_id=info.btf_id, xlated_size=info.xlated_prog_len,
        jited_size=info.jited_prog_len, verified_insns=info.verified_insns, run_time_ns=info.run_time_ns,
        run_cnt=info.run_cnt, recursion_misses=info.recursion_misses, attach_btf_id=info.attach_btf_id,
        attach_btf_obj_id=info.attach_btf_obj_id, ifindex=info.ifindex, nr_func_info=info.nr_func_info,
        memlock=memlock)


def read_map(fd: FD) -> MapRecord:
    """The record of the map open at ``fd``; ``frozen`` and ``memlock`` come from its fdinfo."""
    info = g.MapInfo()
    ops.obj_get_info_by_fd(int(fd), info)
    fields = _self_fdinfo(fd)
    frozen = int_field(fields, "frozen")
    return MapRecord(
        id=info.id, name=_c_str(info.name), type=enum_name(g.MapType, info.type), type_id=info.type,
        key_size=info.key_size, value_size=info.value_size, max_entries=info.max_entries, flags=info.map_flags,
        map_extra=info.map_extra, btf_id=info.btf_id, btf_key_type_id=info.btf_key_type_id,
        btf_value_type_id=info.btf_value_type_id, btf_vmlinux_value_type_id=info.btf_vmlinux_value_type_id,
        btf_vmlinux_id=info.btf_vmlinux_id, ifindex=info.ifindex,
        frozen=None if frozen is None else bool(frozen), memlock=int_field(fields, "memlock"))


def read_link(fd: FD) -> LinkRecord:
    """The record of the link open at ``fd``, with its attach point decoded."""
    info = g.LinkInfo()
    ops.obj_get_info_by_fd(int(fd), info)
    return LinkRecord(id=info.id, type=enum_name(g.LinkType, info.type), type_id=info.type,
                      prog_id=info.prog_id, attach=decode_attach(int(fd), info))


def read_btf(fd: FD) -> BTFRecord:
    """The record of the BTF object open at ``fd`` (its name is the module name for kernel BTF)."""
    name = ctypes.create_string_buffer(_BTF_NAME_LEN)
    info = g.BtfInfo(name=ctypes.addressof(name), name_len=_BTF_NAME_LEN)
    ops.obj_get_info_by_fd(int(fd), info)
    return BTFRecord(id=info.id, name=name.value.decode(errors="replace"), size=info.btf_size,
                     kernel_btf=bool(info.kernel_btf))


def read_one(kind: str, obj_id: int, reader: Callable[[FD], T]) -> Optional[T]:
    """``reader`` applied to object ``obj_id``; None when it does not exist."""
    fd = open_by_id(kind, obj_id)
    if fd is None:
        return None
    with fd:
        try:
            return reader(fd)
        except BPFNotFoundError:
            return None


def walk(kind: str, reader: Callable[[FD], T], only: Optional[Iterable[int]] = None) -> Iterator[T]:
    """``reader`` applied to every loaded object of ``kind`` (or to the ids in ``only``: a set taken
    earlier), skipping those that vanish mid-walk."""
    for obj_id in ids(kind) if only is None else only:
        record = read_one(kind, obj_id, reader)
        if record is not None:
            yield record


def all_programs(offset_ns: Optional[int] = None, only: Optional[Iterable[int]] = None) -> list[ProgramRecord]:
    """Records of every loaded program (no owners/pins); ``only``: of these ids (see :func:`walk`)."""
    if offset_ns is None:
        offset_ns = boot_offset_ns()
    btf_cache: dict[int, Optional[bytes]] = {}
    return list(walk("prog", lambda fd: read_program(fd, offset_ns, btf_cache), only))


def all_maps(only: Optional[Iterable[int]] = None) -> list[MapRecord]:
    """Records of every loaded map (no owners/pins); ``only``: of these ids (see :func:`walk`)."""
    return list(walk("map", read_map, only))


def all_links(only: Optional[Iterable[int]] = None) -> list[LinkRecord]:
    """Records of every BPF link (no owners/pins); ``only``: of these ids (see :func:`walk`)."""
    return list(walk("link", read_link, only))


def all_btfs(only: Optional[Iterable[int]] = None) -> list[BTFRecord]:
    """Records of every loaded BTF object (no owners/pins); ``only``: of these ids (see :func:`walk`)."""
    return list(walk("btf", read_btf, only))


READERS: dict[str, Callable[[FD], object]] = {"prog": read_program, "map": read_map, "link": read_link,
                                               "btf": read_btf}

__all__ = ["read_program", "read_map", "read_link", "read_btf", "open_by_id", "ids", "read_one", "walk",
           "all_programs", "all_maps", "all_links", "all_btfs", "READERS"]
