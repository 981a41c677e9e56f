"""BTF objects already loaded in the kernel (``bpftool btf dump id N``): fetch one by id.

``BPF_BTF_GET_FD_BY_ID`` gives an fd; ``BPF_OBJ_GET_INFO_BY_FD`` with a buffer as large as the
reported ``btf_size`` copies the raw blob out. Kernel BTF of modules is split BTF on top of
vmlinux, so those are parsed with :meth:`BTF.vmlinux` as their base.
"""

from __future__ import annotations

import ctypes

from .._sys import _generated as g
from .._sys import ops
from ..errors import BTFError
from .reader import BTF

__all__ = ["btf_from_id", "loaded_btf_info"]


def loaded_btf_info(btf_id: int) -> tuple[str, bool, bytes]:
    """(name, is kernel BTF, raw blob) of the loaded BTF object ``btf_id`` (needs CAP_SYS_ADMIN)."""
    with ops.get_fd_by_id("btf", btf_id) as fd:
        info = g.BtfInfo()
        ops.obj_get_info_by_fd(fd.fileno(), info)
        size = info.btf_size
        for _ in range(3):  # the size cannot change for a BTF object; retry only if it did anyway
            blob = ctypes.create_string_buffer(max(size, 1))
            name = ctypes.create_string_buffer(256)
            info = g.BtfInfo(btf=ctypes.addressof(blob), btf_size=size, name=ctypes.addressof(name),
                             name_len=len(name))
            ops.obj_get_info_by_fd(fd.fileno(), info)
            if info.btf_size <= size:
                return name.value.decode(errors="replace"), bool(info.kernel_btf), blob.raw[:info.btf_size]
            size = info.btf_size
    raise BTFError(f"BTF id {btf_id}: the kernel kept reporting a larger size")


def btf_from_id(btf_id: int) -> BTF:
    """Parse a loaded BTF object; kernel module BTF is read on top of the running kernel's vmlinux."""
    name, kernel, raw = loaded_btf_info(btf_id)
    base = BTF.vmlinux() if kernel and name != "vmlinux" else None
    btf = BTF.from_bytes(raw, base=base, name=name)
    btf.source = f"btf id {btf_id}"
    return btf
