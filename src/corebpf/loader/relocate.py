"""Data relocations: write map fds, global data offsets and extern values into linked instructions.

libbpf's ``bpf_object__relocate_data``: a map reference becomes ``ld_imm64 BPF_PSEUDO_MAP_FD``, a global
variable ``BPF_PSEUDO_MAP_VALUE`` with the variable's offset in the second slot, a kconfig extern a
value load from the ``.kconfig`` map, a typed ksym ``BPF_PSEUDO_BTF_ID``, a typeless ksym its address,
and a kfunc call ``BPF_PSEUDO_KFUNC_CALL`` (the BTF id, and the module BTF's fd_array index in
``off``). A call to an unresolved ``__weak`` kfunc keeps ``BPF_PSEUDO_KFUNC_CALL`` with id 0 and
offset 0, which the kernel accepts as "unresolved weak kfunc" and rejects only if the call is
reachable -- the form libbpf 1.1 (Debian's bpftool) uses, so program tags match it. (Newer libbpf
rewrites such calls into an invalid helper call for a nicer message; the verifier outcome is the same.)
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Mapping

from ..elf.specs import ExternKind, RelocKind
from ..errors import ELFError

if TYPE_CHECKING:  # pragma: no cover
    from ..elf.linker import LinkedProgram
    from ..elf.objectspec import ObjectSpec
    from .externs import ResolvedExterns

__all__ = ["apply_data_relocations"]

PSEUDO_MAP_FD, PSEUDO_MAP_VALUE, PSEUDO_BTF_ID, PSEUDO_KFUNC_CALL = 1, 2, 3, 2
_IMM = struct.Struct("<i")
_OFF = struct.Struct("<h")


def _set_src(insns: bytearray, pos: int, src: int) -> None:
    insns[pos + 1] = (insns[pos + 1] & 0x0F) | (src << 4)


def _set_imm(insns: bytearray, pos: int, value: int) -> None:
    value &= 0xFFFFFFFF
    _IMM.pack_into(insns, pos + 4, value - (1 << 32) if value & 0x80000000 else value)


def apply_data_relocations(spec: "ObjectSpec", linked: "LinkedProgram", map_fds: Mapping[str, int],
                           externs: "ResolvedExterns") -> None:
    """Patch ``linked.insns`` in place (``map_fds``: spec map name -> fd)."""
    insns = linked.insns
    for r in linked.relocations:
        pos = r.insn * 8
        if r.kind in (RelocKind.CALL, RelocKind.SUBPROG_ADDR):
            continue  # done by the linker
        if r.kind == RelocKind.MAP:
            _set_src(insns, pos, PSEUDO_MAP_FD)
            _set_imm(insns, pos, map_fds[r.target])
        elif r.kind == RelocKind.DATA:
            if r.target not in map_fds:
                raise ELFError(f"program {linked.name!r}: instruction {r.insn} uses {r.target}, which has no map")
            imm0 = _IMM.unpack_from(insns, pos + 4)[0]
            _set_imm(insns, pos + 8, imm0 + r.sym_off)
            _set_src(insns, pos, PSEUDO_MAP_VALUE)
            _set_imm(insns, pos, map_fds[r.target])
        elif r.kind == RelocKind.EXTERN_LD64:
            ext = spec.externs[r.target]
            if ext.kind == ExternKind.KCONFIG:
                _set_src(insns, pos, PSEUDO_MAP_VALUE)
                _set_imm(insns, pos, map_fds[".kconfig"])
                _set_imm(insns, pos + 8, ext.offset)
                continue
            res = externs.ksyms.get(ext.name)
            if ext.typed and res is not None and res.resolved:
                _set_src(insns, pos, PSEUDO_BTF_ID)
                _set_imm(insns, pos, res.btf_id)
                _set_imm(insns, pos + 8, res.btf_obj_fd)
            else:
                addr = res.address if res is not None else 0
                _set_imm(insns, pos, addr & 0xFFFFFFFF)
                _set_imm(insns, pos + 8, addr >> 32)
        elif r.kind == RelocKind.EXTERN_CALL:
            ext = spec.externs[r.target]
            res = externs.ksyms.get(ext.name)
            _set_src(insns, pos, PSEUDO_KFUNC_CALL)
            if res is not None and res.resolved:
                _set_imm(insns, pos, res.btf_id)
                _OFF.pack_into(insns, pos + 2, res.fd_array_index)
            else:
                _set_imm(insns, pos, 0)
                _OFF.pack_into(insns, pos + 2, 0)
