"""Typed wrappers over each bpf() command.

One function per command, taking Python values and returning Python values or :class:`FD`. Buffers
passed to the kernel are kept alive by the caller's references for the duration of the call.
Batch and lookup functions take writable buffers so hot loops can reuse them.
"""

from __future__ import annotations

import ctypes
import errno
from typing import Optional

from ..errors import BPFError, BPFNotFoundError
from . import _generated as g
from ._generated import Cmd
from .fd import FD
from .syscall import bpf, bpf_raw, make_error

Buffer = "bytes | bytearray | memoryview | ctypes.Array"


def addr(buf: object) -> int:
    """Address of a bytes-like object's memory (0 for None)."""
    if buf is None:
        return 0
    if isinstance(buf, ctypes.Array) or isinstance(buf, ctypes.Structure):
        return ctypes.addressof(buf)
    if isinstance(buf, bytes):
        return ctypes.cast(ctypes.c_char_p(buf), ctypes.c_void_p).value or 0
    mv = memoryview(buf)
    if mv.readonly:
        raise TypeError("buffer must be writable or bytes")
    return ctypes.addressof(ctypes.c_char.from_buffer(mv))


def name_bytes(name: str) -> bytes:
    """Object names are at most 15 bytes plus NUL, of [A-Za-z0-9_.]."""
    return name.encode()[:15]


# ---- maps -------------------------------------------------------------------------------------

def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, *, flags: int = 0,
               name: str = "", inner_map_fd: int = 0, numa_node: int = 0, ifindex: int = 0,
               btf_fd: int = 0, btf_key_type_id: int = 0, btf_value_type_id: int = 0,
               btf_vmlinux_value_type_id: int = 0, map_extra: int = 0) -> FD:
    attr = g.MapCreateAttr(map_type=map_type, key_size=key_size, value_size=value_size,
                           max_entries=max_entries, map_flags=flags, inner_map_fd=inner_map_fd,
                           numa_node=numa_node, map_ifindex=ifindex, btf_fd=btf_fd,
                           btf_key_type_id=btf_key_type_id, btf_value_type_id=btf_value_type_id,
                           btf_vmlinux_value_type_id=btf_vmlinux_value_type_id, map_extra=map_extra)
    attr.map_name = name_bytes(name)
    return FD(bpf(Cmd.MAP_CREATE, attr, detail=f"map {name!r}" if name else ""))


def _elem(cmd: Cmd, map_fd: int, key: object, value: object, flags: int) -> int:
    attr = g.MapElemAttr(map_fd=map_fd, key=addr(key), flags=flags)
    attr.value = addr(value)
    return bpf_raw(cmd, attr)


def map_lookup_elem(map_fd: int, key: object, value: object, flags: int = 0) -> bool:
    """Fill ``value`` with the element at ``key``; False if the key is absent."""
    ret = _elem(Cmd.MAP_LOOKUP_ELEM, map_fd, key, value, flags)
    if ret == -errno.ENOENT:
        return False
    if ret < 0:
        raise make_error(-ret, Cmd.MAP_LOOKUP_ELEM)
    return True


def map_update_elem(map_fd: int, key: object, value: object, flags: int = 0) -> None:
    ret = _elem(Cmd.MAP_UPDATE_ELEM, map_fd, key, value, flags)
    if ret < 0:
        raise make_error(-ret, Cmd.MAP_UPDATE_ELEM)


def map_delete_elem(map_fd: int, key: object, flags: int = 0) -> bool:
    """Delete ``key``; False if it was absent."""
    ret = _elem(Cmd.MAP_DELETE_ELEM, map_fd, key, None, flags)
    if ret == -errno.ENOENT:
        return False
    if ret < 0:
        raise make_error(-ret, Cmd.MAP_DELETE_ELEM)
    return True


def map_lookup_and_delete_elem(map_fd: int, key: object, value: object, flags: int = 0) -> bool:
    """Pop: fill ``value`` and delete (queue/stack take ``key=None``); False when empty/absent."""
    ret = _elem(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, map_fd, key, value, flags)
    if ret == -errno.ENOENT:
        return False
    if ret < 0:
        raise make_error(-ret, Cmd.MAP_LOOKUP_AND_DELETE_ELEM)
    return True


def map_get_next_key(map_fd: int, key: object, next_key: object) -> bool:
    """Fill ``next_key`` with the key after ``key`` (first key when ``key`` is None); False at the end."""
    attr = g.MapElemAttr(map_fd=map_fd, key=addr(key))
    attr.next_key = addr(next_key)
    ret = bpf_raw(Cmd.MAP_GET_NEXT_KEY, attr)
    if ret == -errno.ENOENT:
        return False
    if ret < 0:
        raise make_error(-ret, Cmd.MAP_GET_NEXT_KEY)
    return True


def map_freeze(map_fd: int) -> None:
    attr = g.MapElemAttr(map_fd=map_fd)
    bpf(Cmd.MAP_FREEZE, attr)


def map_batch(cmd: Cmd, map_fd: int, in_batch: object, out_batch: object, keys: object, values: object,
              count: int, elem_flags: int = 0, flags: int = 0) -> tuple[int, bool]:
    """One batch command; returns (elements processed, reached the end).

    The kernel reports the end of a lookup with ENOENT while still filling ``count`` entries.
    """
    attr = g.MapBatchAttr(in_batch=addr(in_batch), out_batch=addr(out_batch), keys=addr(keys),
                          values=addr(values), count=count, map_fd=map_fd, elem_flags=elem_flags, flags=flags)
    ret = bpf_raw(cmd, attr)
    if ret == -errno.ENOENT:
        return attr.count, True
    if ret < 0:
        raise make_error(-ret, cmd)
    return attr.count, False


# ---- programs ---------------------------------------------------------------------------------

def prog_load(attr: g.ProgLoadAttr, *, detail: str = "") -> int:
    """BPF_PROG_LOAD with a prepared attr; returns the raw fd or ``-errno`` (the caller handles logs)."""
    for _ in range(5):  # the kernel may return EAGAIN under memory pressure (libbpf retries too)
        ret = bpf_raw(Cmd.PROG_LOAD, attr)
        if ret not in (-errno.EAGAIN, -errno.EINTR):
            break
    return ret


def prog_test_run(prog_fd: int, *, data_in: object = None, data_size_in: int = 0, data_out: object = None,
                  data_size_out: int = 0, ctx_in: object = None, ctx_size_in: int = 0, ctx_out: object = None,
                  ctx_size_out: int = 0, repeat: int = 0, flags: int = 0, cpu: int = 0,
                  batch_size: int = 0) -> g.ProgTestRunAttr:
    attr = g.ProgTestRunAttr(prog_fd=prog_fd, data_size_in=data_size_in, data_size_out=data_size_out,
                             data_in=addr(data_in), data_out=addr(data_out), repeat=repeat,
                             ctx_size_in=ctx_size_in, ctx_size_out=ctx_size_out, ctx_in=addr(ctx_in),
                             ctx_out=addr(ctx_out), flags=flags, cpu=cpu, batch_size=batch_size)
    bpf(Cmd.PROG_TEST_RUN, attr)
    return attr


def prog_attach(prog_fd: int, target_fd: int, attach_type: int, flags: int = 0, replace_fd: int = 0) -> None:
    attr = g.ProgAttachAttr(attach_bpf_fd=prog_fd, attach_type=attach_type, attach_flags=flags,
                            replace_bpf_fd=replace_fd)
    attr.target_fd = target_fd
    bpf(Cmd.PROG_ATTACH, attr)


def prog_detach(prog_fd: int, target_fd: int, attach_type: int) -> None:
    attr = g.ProgAttachAttr(attach_bpf_fd=prog_fd, attach_type=attach_type)
    attr.target_fd = target_fd
    bpf(Cmd.PROG_DETACH, attr)


def prog_query(target_fd: int, attach_type: int, query_flags: int = 0, max_progs: int = 64) -> tuple[list[int], int]:
    """Program ids attached at ``target_fd`` for ``attach_type``, and the attach flags."""
    while True:
        ids = (ctypes.c_uint32 * max_progs)()
        attr = g.ProgQueryAttr(attach_type=attach_type, query_flags=query_flags, prog_ids=addr(ids))
        attr.target_fd = target_fd
        attr.prog_cnt = max_progs
        ret = bpf_raw(Cmd.PROG_QUERY, attr)
        if ret == -errno.ENOSPC:
            max_progs = attr.prog_cnt
            continue
        if ret < 0:
            raise make_error(-ret, Cmd.PROG_QUERY)
        return list(ids[: attr.prog_cnt]), attr.attach_flags


def prog_bind_map(prog_fd: int, map_fd: int) -> None:
    bpf(Cmd.PROG_BIND_MAP, g.ProgBindMapAttr(prog_fd=prog_fd, map_fd=map_fd))


# ---- objects: pinning, ids, info --------------------------------------------------------------

def obj_pin(fd: int, path: str) -> None:
    raw = path.encode()
    attr = g.ObjPinAttr(pathname=addr(raw), bpf_fd=fd)
    bpf(Cmd.OBJ_PIN, attr, detail=path)


def obj_get(path: str, file_flags: int = 0) -> FD:
    raw = path.encode()
    attr = g.ObjPinAttr(pathname=addr(raw), file_flags=file_flags)
    return FD(bpf(Cmd.OBJ_GET, attr, detail=path))


_NEXT_ID = {"prog": Cmd.PROG_GET_NEXT_ID, "map": Cmd.MAP_GET_NEXT_ID, "link": Cmd.LINK_GET_NEXT_ID,
            "btf": Cmd.BTF_GET_NEXT_ID}
_FD_BY_ID = {"prog": Cmd.PROG_GET_FD_BY_ID, "map": Cmd.MAP_GET_FD_BY_ID, "link": Cmd.LINK_GET_FD_BY_ID,
             "btf": Cmd.BTF_GET_FD_BY_ID}


def get_next_id(kind: str, start_id: int) -> Optional[int]:
    """The next id of ``kind`` (prog/map/link/btf) after ``start_id``, or None at the end."""
    attr = g.GetIdAttr()
    attr.start_id = start_id
    ret = bpf_raw(_NEXT_ID[kind], attr)
    if ret == -errno.ENOENT:
        return None
    if ret < 0:
        raise make_error(-ret, _NEXT_ID[kind])
    return attr.next_id


def iter_ids(kind: str) -> list[int]:
    """Every id of ``kind`` currently loaded, ascending."""
    ids, cur = [], 0
    while (cur := get_next_id(kind, cur)) is not None:  # type: ignore[assignment]
        ids.append(cur)
    return ids


def get_fd_by_id(kind: str, obj_id: int, open_flags: int = 0) -> FD:
    attr = g.GetIdAttr(open_flags=open_flags)
    attr.start_id = obj_id
    return FD(bpf(_FD_BY_ID[kind], attr, detail=f"{kind} id {obj_id}"))


def obj_get_info_by_fd(fd: int, info: ctypes.Structure) -> int:
    """Fill ``info`` (ProgInfo/MapInfo/LinkInfo/BtfInfo, with any pointers set); returns info_len."""
    attr = g.ObjInfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return attr.info_len


# ---- BTF ------------------------------------------------------------------------------------

def btf_load(data: bytes, *, log_level: int = 0, log_size: int = 0) -> tuple[int, str]:
    """Load raw BTF; returns (fd or -errno, log text)."""
    log = ctypes.create_string_buffer(log_size) if log_size else None
    attr = g.BtfLoadAttr(btf=addr(data), btf_size=len(data), btf_log_buf=addr(log), btf_log_size=log_size,
                         btf_log_level=log_level if log_size else 0)
    ret = bpf_raw(Cmd.BTF_LOAD, attr)
    return ret, (log.value.decode(errors="replace") if log is not None else "")


# ---- links and attach -----------------------------------------------------------------------

def link_create(prog_fd: int, target_fd: int, attach_type: int, flags: int = 0, **extra: int) -> FD:
    """BPF_LINK_CREATE; ``extra`` sets fields of the per-type union (e.g. ``target_btf_id``,
    ``iter_info``/``iter_info_len``, or ``perf_event__bpf_cookie``: '__' separates nesting)."""
    attr = g.LinkCreateAttr(attach_type=attach_type, flags=flags)
    attr.prog_fd = prog_fd
    attr.target_fd = target_fd
    for key, value in extra.items():
        obj: object = attr
        *path, last = key.split("__")
        for part in path:
            obj = getattr(obj, part)
        setattr(obj, last, value)
    return FD(bpf(Cmd.LINK_CREATE, attr))


def link_update(link_fd: int, new_prog_fd: int, old_prog_fd: int = 0, flags: int = 0) -> None:
    attr = g.LinkUpdateAttr(link_fd=link_fd, flags=flags)
    attr.new_prog_fd = new_prog_fd
    attr.old_prog_fd = old_prog_fd
    bpf(Cmd.LINK_UPDATE, attr)


def link_detach(link_fd: int) -> None:
    bpf(Cmd.LINK_DETACH, g.LinkDetachAttr(link_fd=link_fd))


def raw_tracepoint_open(name: Optional[str], prog_fd: int, cookie: int = 0) -> FD:
    raw = name.encode() if name else None
    attr = g.RawTracepointOpenAttr(name=addr(raw), prog_fd=prog_fd, cookie=cookie)
    return FD(bpf(Cmd.RAW_TRACEPOINT_OPEN, attr, detail=name or ""))


def iter_create(link_fd: int) -> FD:
    return FD(bpf(Cmd.ITER_CREATE, g.IterCreateAttr(link_fd=link_fd)))


def enable_stats(stats_type: int = g.StatsType.RUN_TIME) -> FD:
    """Turn on run-time stats for all programs while the returned fd stays open."""
    return FD(bpf(Cmd.ENABLE_STATS, g.EnableStatsAttr(type=stats_type)))


def task_fd_query(pid: int, fd: int, buf_len: int = 256) -> g.TaskFdQueryAttr:
    buf = ctypes.create_string_buffer(buf_len)
    attr = g.TaskFdQueryAttr(pid=pid, fd=fd, buf_len=buf_len, buf=addr(buf))
    bpf(Cmd.TASK_FD_QUERY, attr)
    attr._buf = buf  # type: ignore[attr-defined]  # keep alive for the caller to read
    return attr


__all__ = [n for n in dir() if not n.startswith("_") and n not in ("annotations", "ctypes", "errno", "Optional")]
