"""The smallest BTF that lets the kernel create a local-storage map with opaque values.

Socket/task/inode/cgroup local storage refuses to exist without BTF for its key (``int``) and value.
When the caller brings no BTF, corebpf describes the value as ``unsigned char[value_size]``: enough for
the kernel's checks (an ``int`` key, a value type of the right size, no special fields), and honest
about the value being opaque bytes.
"""

from __future__ import annotations

import struct

from .._sys import ops
from .._sys.fd import FD
from .._sys.syscall import make_error
from .._sys._generated import Cmd

_BTF_MAGIC = 0xEB9F
_KIND_INT = 1
_KIND_ARRAY = 3
_INT_SIGNED = 1

KEY_TYPE_ID = 1      # int
BYTE_TYPE_ID = 2     # unsigned char
VALUE_TYPE_ID = 3    # unsigned char[value_size]


def opaque_value_btf(value_size: int) -> bytes:
    """Raw BTF with ``int`` (id 1), ``unsigned char`` (id 2) and ``unsigned char[value_size]`` (id 3)."""
    strings = b"\0int\0unsigned char\0"
    int_name, uchar_name = 1, 5
    types = b"".join([
        struct.pack("<IIII", int_name, _KIND_INT << 24, 4, _INT_SIGNED << 24 | 32),
        struct.pack("<IIII", uchar_name, _KIND_INT << 24, 1, 8),
        struct.pack("<III", 0, _KIND_ARRAY << 24, 0) + struct.pack("<III", BYTE_TYPE_ID, KEY_TYPE_ID, value_size),
    ])
    header = struct.pack("<HBBIIIII", _BTF_MAGIC, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def load_opaque_value_btf(value_size: int) -> FD:
    """Load :func:`opaque_value_btf` into the kernel and return the BTF object's fd."""
    data = opaque_value_btf(value_size)
    ret, log = ops.btf_load(data)
    if ret < 0:
        ret2, log = ops.btf_load(data, log_level=1, log_size=1 << 16)
        if ret2 >= 0:  # pragma: no cover - a transient failure
            return FD(ret2)
        raise make_error(-ret, Cmd.BTF_LOAD, detail=f"key/value BTF for a local-storage map: {log.strip()}")
    return FD(ret)


__all__ = ["opaque_value_btf", "load_opaque_value_btf", "KEY_TYPE_ID", "VALUE_TYPE_ID"]
