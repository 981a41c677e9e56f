"""Bytes <-> :class:`Instruction` lists, an exact round trip.

The decoder needs to know one thing about an opcode: how many slots it takes. Only ld_imm64
(0x18) takes two; the other ``LD | IMM`` sizes have no defined width and are rejected. Anything
else decodes as one slot, odd bits included, unless ``strict=True`` asks for ISA validation.
"""

from __future__ import annotations

import struct
from typing import Iterable, Iterator

from ..errors import InstructionError
from .instruction import Instruction
from .opcodes import CLASS_MASK, INSN_SIZE, LD_IMM64, MODE_MASK, InsnClass, Mode

_SLOT = struct.Struct("<BBhi")


def iter_decode(data: bytes | bytearray | memoryview, *, strict: bool = False,
                base_offset: int = 0) -> Iterator[tuple[int, Instruction]]:
    """Yield ``(slot index, instruction)`` for each instruction in ``data``.

    Raises :class:`InstructionError` naming the byte offset (plus ``base_offset``) of the first
    malformed instruction: a truncated slot, a ld_imm64 without its second half, an opcode of
    unknown width, or (``strict``) any encoding the ISA does not define.
    """
    view = memoryview(data).cast("B")
    size = len(view)
    if size % INSN_SIZE:
        whole = size - size % INSN_SIZE
        raise InstructionError(f"truncated instruction at byte offset {base_offset + whole}: "
                               f"{size % INSN_SIZE} trailing byte(s), instructions are {INSN_SIZE} bytes")
    make = Instruction._trusted
    slots = _SLOT.iter_unpack(view)
    slot = 0
    for code, regs, off, imm in slots:
        if code == LD_IMM64:
            try:
                _, _, _, hi = next(slots)
            except StopIteration:
                raise InstructionError(f"ld_imm64 at byte offset {base_offset + slot * INSN_SIZE} is missing "
                                       "its second 8-byte slot") from None
            pos = (slot + 1) * INSN_SIZE
            reserved = int.from_bytes(view[pos:pos + 4], "little")
            insn = make(code, regs & 0xF, regs >> 4, off, (hi & 0xFFFFFFFF) << 32 | (imm & 0xFFFFFFFF), reserved)
        else:
            if code & CLASS_MASK == InsnClass.LD and code & MODE_MASK == Mode.IMM:
                raise InstructionError(f"opcode 0x{code:02x} at byte offset {base_offset + slot * INSN_SIZE}: "
                                       "a 64-bit immediate load must have size DW (0x18); this width is undefined")
            insn = make(code, regs & 0xF, regs >> 4, off, imm)
        if strict:
            problem = insn.problem()
            if problem:
                raise InstructionError(f"invalid instruction at byte offset {base_offset + slot * INSN_SIZE} "
                                       f"({insn.to_bytes().hex()}): {problem}")
        yield slot, insn
        slot += insn.slots


def decode(data: bytes | bytearray | memoryview, *, strict: bool = False) -> list[Instruction]:
    """Decode a program's bytes into instructions (a ld_imm64 is one entry for two slots).

    See :func:`iter_decode` for the errors raised.
    """
    return [insn for _, insn in iter_decode(data, strict=strict)]


def decode_indexed(data: bytes | bytearray | memoryview, *, strict: bool = False) -> list[tuple[int, Instruction]]:
    """Like :func:`decode`, with each instruction's slot index (what jump offsets count)."""
    return list(iter_decode(data, strict=strict))


def encode(insns: Iterable[Instruction]) -> bytes:
    """The bytes of ``insns``; ``encode(decode(b)) == b`` for any ``b`` that decodes."""
    return b"".join(insn.to_bytes() for insn in insns)


def slot_count(insns: Iterable[Instruction]) -> int:
    """Total 8-byte slots (what the kernel calls the instruction count)."""
    return sum(insn.slots for insn in insns)


__all__ = ["decode", "decode_indexed", "encode", "iter_decode", "slot_count"]
