"""Helpers for the CO-RE unit tests (no tests here): instructions to relocate, and one-call
relocation of a single record against hand-built local and target BTFs."""

from __future__ import annotations

import struct
from typing import Optional, Union

from corebpf.asm import Instruction, decode
from corebpf.btf import BTF
from corebpf.btf.builder import BTFBuilder
from corebpf.btf.core_calc import calc_relo
from corebpf.btf.core_spec import parse_spec
from corebpf.btf.core import CoreRelo, CoreReloKind, CoreRelocator, Resolution, TargetSet

K = CoreReloKind
_SLOT = struct.Struct("<BBhi")

__all__ = ["K", "mov", "ldx", "stx", "ld64", "relocate", "builder", "Result", "local_value"]


def mov(imm: int) -> bytes:
    """``r0 = imm`` (ALU64 MOV K)."""
    return _SLOT.pack(0xB7, 0, 0, imm)


def ldx(off: int, size: int = 4) -> bytes:
    """``r0 = *(uN *)(r1 + off)``."""
    code = {1: 0x71, 2: 0x69, 4: 0x61, 8: 0x79}[size]
    return _SLOT.pack(code, 0x10, off, 0)


def stx(off: int, size: int = 4) -> bytes:
    """``*(uN *)(r1 + off) = r2``."""
    code = {1: 0x73, 2: 0x6B, 4: 0x63, 8: 0x7B}[size]
    return _SLOT.pack(code, 0x21, off, 0)


def ld64(value: int) -> bytes:
    """``r0 = value ll`` (two slots)."""
    value &= (1 << 64) - 1
    lo, hi = value & 0xFFFFFFFF, value >> 32
    return _SLOT.pack(0x18, 0, 0, lo - (1 << 32) if lo >> 31 else lo) + _SLOT.pack(0, 0, 0, hi - (1 << 32) if hi >> 31 else hi)


def local_value(local: BTF, type_id: int, access: str, kind: CoreReloKind) -> int:
    """The value a relocation has against its own (local) BTF: what clang puts in the instruction."""
    if kind == K.TYPE_ID_LOCAL:
        return type_id
    spec = parse_spec(local, type_id, access, kind)
    return calc_relo(kind, spec, None).orig_val


def builder() -> BTFBuilder:
    return BTFBuilder(byteorder="little")


class Result:
    """One relocation's :class:`Resolution` and the instruction after patching."""

    def __init__(self, res: Resolution, insns: bytearray) -> None:
        self.res = res
        self.raw = bytes(insns)
        self.insn: Instruction = decode(insns)[0]

    @property
    def value(self) -> int:
        return self.res.new_val

    @property
    def poisoned(self) -> bool:
        return self.res.poisoned


def relocate(local: BTF, target: Union[BTF, TargetSet], type_id: int, access: str, kind: CoreReloKind,
             insn: Optional[bytes] = None, *, relocator: Optional[CoreRelocator] = None) -> Result:
    """Relocate one record of ``kind`` at instruction 0.

    Without ``insn``, the instruction is ``r0 = <local value>`` (a ld_imm64 for values over 31 bits),
    the value the compiler would have written.
    """
    targets = target if isinstance(target, TargetSet) else TargetSet.from_btf(target)
    rec = CoreRelo(0, type_id, 0, kind, access)
    if insn is None:
        orig = local_value(local, type_id, access, kind)
        insn = ld64(orig) if orig > 0x7FFFFFFF else mov(orig)
    buf = bytearray(insn)
    core = relocator or CoreRelocator(local, targets)
    res = core.relocate(buf, [rec])
    assert len(res) == 1
    return Result(res[0], buf)
