"""A program's full name when the kernel's 15-byte name is truncated, from its BTF (as bpftool shows it).

The kernel keeps ``BPF_OBJ_NAME_LEN - 1`` = 15 bytes of a program's name. When the program was loaded
with BTF, its first ``func_info`` record names the BTF FUNC of the entry point, whose name is complete.
Only the type headers up to that id are walked: no full BTF reader (and its imports) is needed here.
"""

from __future__ import annotations

import ctypes
import struct
from typing import Optional

from .._sys import _generated as g
from .._sys import ops
from .._sys.fd import FD
from ..errors import BPFError

KERNEL_NAME_MAX = 15
_BTF_MAGIC = 0xEB9F
_HEADER = struct.Struct("<HBBIIIII")
_TYPE = struct.Struct("<III")
# bytes after the 12-byte type header, per kind: (fixed, per vlen entry) -- include/uapi/linux/btf.h
_TRAILER = {1: (4, 0), 2: (0, 0), 3: (12, 0), 4: (0, 12), 5: (0, 12), 6: (0, 8), 7: (0, 0), 8: (0, 0),
            9: (0, 0), 10: (0, 0), 11: (0, 0), 12: (0, 0), 13: (0, 8), 14: (4, 0), 15: (0, 12), 16: (0, 0),
            17: (4, 0), 18: (0, 0), 19: (0, 12)}


def btf_type_name(data: bytes, type_id: int) -> Optional[str]:
    """The name of type ``type_id`` in a standalone raw BTF blob; None if malformed or out of range."""
    if len(data) < _HEADER.size or type_id <= 0:
        return None
    magic, _v, _f, hdr_len, type_off, type_len, str_off, str_len = _HEADER.unpack_from(data)
    if magic != _BTF_MAGIC:
        return None
    pos, end = hdr_len + type_off, min(hdr_len + type_off + type_len, len(data))
    strings = hdr_len + str_off
    current = 1
    while pos + 12 <= end:
        name_off, info, _size = _TYPE.unpack_from(data, pos)
        if current == type_id:
            if name_off >= str_len:
                return None
            start = strings + name_off
            stop = data.find(b"\0", start, strings + str_len)
            return data[start:stop if stop >= 0 else strings + str_len].decode(errors="replace")
        trailer = _TRAILER.get((info >> 24) & 0x1F)
        if trailer is None:
            return None
        pos += 12 + trailer[0] + trailer[1] * (info & 0xFFFF)
        current += 1
    return None


def _first_func_type_id(prog_fd: FD, rec_size: int) -> Optional[int]:
    if rec_size < 8:
        return None
    buf = ctypes.create_string_buffer(rec_size)
    info = g.ProgInfo(nr_func_info=1, func_info_rec_size=rec_size, func_info=ctypes.addressof(buf))
    try:
        ops.obj_get_info_by_fd(int(prog_fd), info)
    except BPFError:
        return None
    if info.nr_func_info == 0:
        return None
    return int.from_bytes(buf.raw[4:8], "little")  # struct bpf_func_info { insn_off; type_id; }


def read_btf_blob(btf_id: int) -> Optional[bytes]:
    """The raw BTF the kernel holds under ``btf_id``; None when it is gone or unreadable."""
    try:
        with ops.get_fd_by_id("btf", btf_id) as fd:
            probe = g.BtfInfo()
            ops.obj_get_info_by_fd(int(fd), probe)
            buf = ctypes.create_string_buffer(max(probe.btf_size, 1))
            info = g.BtfInfo(btf=ctypes.addressof(buf), btf_size=probe.btf_size)
            ops.obj_get_info_by_fd(int(fd), info)
            return buf.raw[: info.btf_size]
    except BPFError:
        return None


def full_program_name(prog_fd: FD, info: g.ProgInfo, kernel_name: str,
                      btf_cache: Optional[dict[int, Optional[bytes]]] = None) -> str:
    """The untruncated name of the program at ``prog_fd`` (``kernel_name`` when it is complete or no
    BTF says otherwise). ``btf_cache`` shares fetched BTF blobs between programs of one walk."""
    if len(kernel_name) < KERNEL_NAME_MAX or not info.btf_id or not info.nr_func_info:
        return kernel_name
    type_id = _first_func_type_id(prog_fd, info.func_info_rec_size)
    if type_id is None:
        return kernel_name
    cache = btf_cache if btf_cache is not None else {}
    if info.btf_id not in cache:
        cache[info.btf_id] = read_btf_blob(info.btf_id)
    blob = cache[info.btf_id]
    name = btf_type_name(blob, type_id) if blob else None
    # trust the BTF name only if it extends what the kernel kept (it is the same function)
    return name if name and name.startswith(kernel_name) else kernel_name


__all__ = ["full_program_name", "btf_type_name", "read_btf_blob", "KERNEL_NAME_MAX"]
