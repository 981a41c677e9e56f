"""Write small programs in Python: one function per instruction form, labels for jumps.

    >>> from corebpf.asm.builder import *
    >>> prog = assemble([
    ...     mov64(R0, 0),
    ...     jeq(R1, 0, "out"),      # a label instead of an offset
    ...     mov64(R0, 1),
    ...     label("out"),
    ...     exit_(),
    ... ])

A source operand that is a :class:`Reg` (``R0``..``R10``) selects the register form; a plain int
selects the immediate form. Jump offsets may be ints (slots relative to the next instruction)
or label names that :func:`assemble` resolves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Union

from .._sys._generated import HelperId
from ..errors import InstructionError
from .instruction import Instruction
from .opcodes import (
    ADDR_SPACE_CAST, LD_IMM64, AluOp, AtomicOp, CallSrc, Endian, InsnClass, JumpOp, Mode, PseudoSrc, Reg, Size,
    Source,
)

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = tuple(Reg)
FP = Reg.R10
"""The read-only frame pointer."""

Operand = Union[Reg, int]
Target = Union[int, str]


@dataclass(frozen=True)
class Label:
    """A position in an :func:`assemble` list that jumps can name."""

    name: str


@dataclass(frozen=True)
class PendingJump:
    """A jump or call whose distance is a label, resolved by :func:`assemble`."""

    insn: Instruction
    label: str
    field: str = "off"  # "imm" for gotol and bpf-to-bpf calls


Item = Union[Instruction, Label, PendingJump]


def label(name: str) -> Label:
    """Mark the next instruction's position as ``name``."""
    return Label(name)


def _target(insn: Instruction, target: Target, field: str = "off") -> Instruction | PendingJump:
    if isinstance(target, str):
        return PendingJump(insn, target, field)
    return insn.with_(**{field: target})


def assemble(items: Iterable[Item]) -> list[Instruction]:
    """Resolve labels into jump offsets and return the plain instruction list."""
    items = list(items)
    positions: dict[str, int] = {}
    slot = 0
    for item in items:
        if isinstance(item, Label):
            if item.name in positions:
                raise InstructionError(f"label {item.name!r} is defined twice")
            positions[item.name] = slot
        elif isinstance(item, PendingJump):
            slot += item.insn.slots
        elif isinstance(item, Instruction):
            slot += item.slots
        else:
            raise InstructionError(f"cannot assemble {item!r}: expected an Instruction, Label or PendingJump")
    out: list[Instruction] = []
    slot = 0
    for item in items:
        if isinstance(item, Label):
            continue
        if isinstance(item, PendingJump):
            if item.label not in positions:
                raise InstructionError(f"jump to undefined label {item.label!r} at slot {slot}")
            distance = positions[item.label] - (slot + 1)
            if item.field == "off" and not -0x8000 <= distance <= 0x7FFF:
                raise InstructionError(f"jump to {item.label!r} at slot {slot} is {distance} slots away; "
                                       "use gotol for jumps beyond 16 bits")
            insn = item.insn.with_(**{item.field: distance})
        else:
            insn = item
        out.append(insn)
        slot += insn.slots
    return out


# ---- ALU --------------------------------------------------------------------------------------

def _alu(cls: InsnClass, op: AluOp, dst: Reg, src: Operand, off: int = 0) -> Instruction:
    if isinstance(src, Reg):
        return Instruction(cls | op | Source.X, dst=dst, src=src, off=off)
    return Instruction(cls | op | Source.K, dst=dst, off=off, imm=src)


def alu64(op: AluOp, dst: Reg, src: Operand) -> Instruction:
    """64-bit ``dst op= src``."""
    return _alu(InsnClass.ALU64, op, dst, src)


def alu32(op: AluOp, dst: Reg, src: Operand) -> Instruction:
    """32-bit ``dst op= src`` (the result is zero-extended)."""
    return _alu(InsnClass.ALU, op, dst, src)


def _make_alu(op: AluOp, width: int, signed: bool = False):
    cls = InsnClass.ALU64 if width == 64 else InsnClass.ALU

    def build(dst: Reg, src: Operand) -> Instruction:
        return _alu(cls, op, dst, src, 1 if signed else 0)

    sign = "signed " if signed else ""
    build.__doc__ = f"{width}-bit {sign}{op.name.lower()}: dst {op.name.lower()}= src (register or immediate)."
    return build


mov64, mov32 = _make_alu(AluOp.MOV, 64), _make_alu(AluOp.MOV, 32)
add64, add32 = _make_alu(AluOp.ADD, 64), _make_alu(AluOp.ADD, 32)
sub64, sub32 = _make_alu(AluOp.SUB, 64), _make_alu(AluOp.SUB, 32)
mul64, mul32 = _make_alu(AluOp.MUL, 64), _make_alu(AluOp.MUL, 32)
div64, div32 = _make_alu(AluOp.DIV, 64), _make_alu(AluOp.DIV, 32)
sdiv64, sdiv32 = _make_alu(AluOp.DIV, 64, True), _make_alu(AluOp.DIV, 32, True)
mod64, mod32 = _make_alu(AluOp.MOD, 64), _make_alu(AluOp.MOD, 32)
smod64, smod32 = _make_alu(AluOp.MOD, 64, True), _make_alu(AluOp.MOD, 32, True)
or64, or32 = _make_alu(AluOp.OR, 64), _make_alu(AluOp.OR, 32)
and64, and32 = _make_alu(AluOp.AND, 64), _make_alu(AluOp.AND, 32)
xor64, xor32 = _make_alu(AluOp.XOR, 64), _make_alu(AluOp.XOR, 32)
lsh64, lsh32 = _make_alu(AluOp.LSH, 64), _make_alu(AluOp.LSH, 32)
rsh64, rsh32 = _make_alu(AluOp.RSH, 64), _make_alu(AluOp.RSH, 32)
arsh64, arsh32 = _make_alu(AluOp.ARSH, 64), _make_alu(AluOp.ARSH, 32)


def neg64(dst: Reg) -> Instruction:
    """``dst = -dst`` (64-bit)."""
    return Instruction(InsnClass.ALU64 | AluOp.NEG, dst=dst)


def neg32(dst: Reg) -> Instruction:
    """``dst = -dst`` (32-bit)."""
    return Instruction(InsnClass.ALU | AluOp.NEG, dst=dst)


def movsx64(dst: Reg, src: Reg, bits: int) -> Instruction:
    """``dst = (s<bits>)src`` sign-extended to 64 bits (bits 8, 16 or 32)."""
    if bits not in (8, 16, 32):
        raise InstructionError(f"movsx takes 8, 16 or 32 bits, not {bits}")
    return Instruction(InsnClass.ALU64 | AluOp.MOV | Source.X, dst=dst, src=src, off=bits)


def movsx32(dst: Reg, src: Reg, bits: int) -> Instruction:
    """``w_dst = (s<bits>)w_src`` (bits 8 or 16)."""
    if bits not in (8, 16):
        raise InstructionError(f"32-bit movsx takes 8 or 16 bits, not {bits}")
    return Instruction(InsnClass.ALU | AluOp.MOV | Source.X, dst=dst, src=src, off=bits)


def addr_space_cast(dst: Reg, src: Reg, dst_as: int, src_as: int) -> Instruction:
    """Convert an arena pointer between address spaces."""
    return Instruction(InsnClass.ALU64 | AluOp.MOV | Source.X, dst=dst, src=src, off=ADDR_SPACE_CAST,
                       imm=(dst_as << 16) | src_as)


def to_le(dst: Reg, bits: int) -> Instruction:
    """Convert ``dst`` from host order to little endian, keeping ``bits`` (16/32/64) bits."""
    return Instruction(InsnClass.ALU | AluOp.END | Endian.TO_LE, dst=dst, imm=bits)


def to_be(dst: Reg, bits: int) -> Instruction:
    """Convert ``dst`` from host order to big endian, keeping ``bits`` (16/32/64) bits."""
    return Instruction(InsnClass.ALU | AluOp.END | Endian.TO_BE, dst=dst, imm=bits)


def bswap(dst: Reg, bits: int) -> Instruction:
    """Unconditionally swap the low ``bits`` (16/32/64) bits of ``dst`` (ALU64 | END)."""
    return Instruction(InsnClass.ALU64 | AluOp.END, dst=dst, imm=bits)


# ---- loads and stores ---------------------------------------------------------------------------

def ld_imm64(dst: Reg, value: int, pseudo: PseudoSrc = PseudoSrc.NONE) -> Instruction:
    """``dst = value`` as a 64-bit constant (two slots); ``pseudo`` says what the value names."""
    return Instruction(LD_IMM64, dst=dst, src=pseudo, imm=value)


def ld_map_fd(dst: Reg, map_fd: int) -> Instruction:
    """``dst = &map`` for the map behind ``map_fd``."""
    return ld_imm64(dst, int(map_fd), PseudoSrc.MAP_FD)


def ld_map_value(dst: Reg, map_fd: int, offset: int = 0) -> Instruction:
    """``dst = &map_value[0] + offset`` of an array map (global data)."""
    return ld_imm64(dst, (offset << 32) | (int(map_fd) & 0xFFFFFFFF), PseudoSrc.MAP_VALUE)


def ld_map_idx(dst: Reg, index: int) -> Instruction:
    """``dst = &map`` where the map is ``fd_array[index]``."""
    return ld_imm64(dst, index, PseudoSrc.MAP_IDX)


def ld_map_idx_value(dst: Reg, index: int, offset: int = 0) -> Instruction:
    """``dst = &value + offset`` of map ``fd_array[index]``."""
    return ld_imm64(dst, (offset << 32) | (index & 0xFFFFFFFF), PseudoSrc.MAP_IDX_VALUE)


def ld_btf_id(dst: Reg, btf_id: int, btf_obj_fd: int = 0) -> Instruction:
    """``dst = &kernel variable`` named by BTF id (ksym)."""
    return ld_imm64(dst, (btf_obj_fd << 32) | btf_id, PseudoSrc.BTF_ID)


def ld_func(dst: Reg, target: Target) -> Instruction | PendingJump:
    """``dst = &subprogram`` (callback), the target relative to the next instruction."""
    return _target(Instruction(LD_IMM64, dst=dst, src=PseudoSrc.FUNC), target, "imm")


def ldx(size: Size, dst: Reg, src: Reg, off: int = 0) -> Instruction:
    """``dst = *(size *)(src + off)``."""
    return Instruction(InsnClass.LDX | Mode.MEM | size, dst=dst, src=src, off=off)


def ldxsx(size: Size, dst: Reg, src: Reg, off: int = 0) -> Instruction:
    """``dst = *(s<size> *)(src + off)``, sign-extended (size B, H or W)."""
    if size == Size.DW:
        raise InstructionError("sign-extending loads exist for B, H and W only")
    return Instruction(InsnClass.LDX | Mode.MEMSX | size, dst=dst, src=src, off=off)


def st(size: Size, dst: Reg, off: int, imm: int) -> Instruction:
    """``*(size *)(dst + off) = imm``."""
    return Instruction(InsnClass.ST | Mode.MEM | size, dst=dst, off=off, imm=imm)


def stx(size: Size, dst: Reg, off: int, src: Reg) -> Instruction:
    """``*(size *)(dst + off) = src``."""
    return Instruction(InsnClass.STX | Mode.MEM | size, dst=dst, src=src, off=off)


def atomic(op: AtomicOp, size: Size, dst: Reg, off: int, src: Reg) -> Instruction:
    """An atomic operation on ``*(size *)(dst + off)`` with ``src`` (see :class:`AtomicOp`)."""
    return Instruction(InsnClass.STX | Mode.ATOMIC | size, dst=dst, src=src, off=off, imm=op)


def load_acquire(size: Size, dst: Reg, src: Reg, off: int = 0) -> Instruction:
    """``dst = load_acquire((size *)(src + off))``."""
    return Instruction(InsnClass.STX | Mode.ATOMIC | size, dst=dst, src=src, off=off, imm=AtomicOp.LOAD_ACQ)


def store_release(size: Size, dst: Reg, off: int, src: Reg) -> Instruction:
    """``store_release((size *)(dst + off), src)``."""
    return Instruction(InsnClass.STX | Mode.ATOMIC | size, dst=dst, src=src, off=off, imm=AtomicOp.STORE_REL)


def ld_abs(size: Size, imm: int) -> Instruction:
    """Legacy packet load: ``r0 = ntoh(*(size *)(skb->data + imm))`` (socket filters)."""
    return Instruction(InsnClass.LD | Mode.ABS | size, imm=imm)


def ld_ind(size: Size, src: Reg, imm: int) -> Instruction:
    """Legacy packet load: ``r0 = ntoh(*(size *)(skb->data + src + imm))``."""
    return Instruction(InsnClass.LD | Mode.IND | size, src=src, imm=imm)


# ---- jumps and calls ----------------------------------------------------------------------------

def ja(target: Target) -> Instruction | PendingJump:
    """``goto target`` (16-bit distance)."""
    return _target(Instruction(InsnClass.JMP | JumpOp.JA), target)


def gotol(target: Target) -> Instruction | PendingJump:
    """``gotol target`` (32-bit distance in imm)."""
    return _target(Instruction(InsnClass.JMP32 | JumpOp.JA), target, "imm")


def may_goto(target: Target) -> Instruction | PendingJump:
    """``may_goto target``: the kernel takes the branch once a loop budget is spent."""
    return _target(Instruction(InsnClass.JMP | JumpOp.JCOND), target)


def jmp(cond: JumpOp, dst: Reg, src: Operand, target: Target, *, wide: bool = True) -> Instruction | PendingJump:
    """``if dst <cond> src goto target``; ``wide=False`` compares the low 32 bits (JMP32)."""
    cls = InsnClass.JMP if wide else InsnClass.JMP32
    if isinstance(src, Reg):
        insn = Instruction(cls | cond | Source.X, dst=dst, src=src)
    else:
        insn = Instruction(cls | cond | Source.K, dst=dst, imm=src)
    return _target(insn, target)


def _make_jmp(cond: JumpOp, wide: bool):
    def build(dst: Reg, src: Operand, target: Target) -> Instruction | PendingJump:
        return jmp(cond, dst, src, target, wide=wide)

    build.__doc__ = f"``if dst {cond.name.lower()[1:]} src goto target`` ({'64' if wide else '32'}-bit compare)."
    return build


jeq, jeq32 = _make_jmp(JumpOp.JEQ, True), _make_jmp(JumpOp.JEQ, False)
jne, jne32 = _make_jmp(JumpOp.JNE, True), _make_jmp(JumpOp.JNE, False)
jgt, jgt32 = _make_jmp(JumpOp.JGT, True), _make_jmp(JumpOp.JGT, False)
jge, jge32 = _make_jmp(JumpOp.JGE, True), _make_jmp(JumpOp.JGE, False)
jlt, jlt32 = _make_jmp(JumpOp.JLT, True), _make_jmp(JumpOp.JLT, False)
jle, jle32 = _make_jmp(JumpOp.JLE, True), _make_jmp(JumpOp.JLE, False)
jsgt, jsgt32 = _make_jmp(JumpOp.JSGT, True), _make_jmp(JumpOp.JSGT, False)
jsge, jsge32 = _make_jmp(JumpOp.JSGE, True), _make_jmp(JumpOp.JSGE, False)
jslt, jslt32 = _make_jmp(JumpOp.JSLT, True), _make_jmp(JumpOp.JSLT, False)
jsle, jsle32 = _make_jmp(JumpOp.JSLE, True), _make_jmp(JumpOp.JSLE, False)
jset, jset32 = _make_jmp(JumpOp.JSET, True), _make_jmp(JumpOp.JSET, False)


def call(helper: int | str | HelperId) -> Instruction:
    """Call a helper by id, ``HelperId`` or name (``"map_lookup_elem"`` or ``"bpf_map_lookup_elem"``)."""
    if isinstance(helper, str):
        name = helper[4:] if helper.startswith("bpf_") else helper
        try:
            helper = HelperId[name]
        except KeyError:
            raise InstructionError(f"unknown helper {helper!r}") from None
    return Instruction(InsnClass.JMP | JumpOp.CALL, src=CallSrc.HELPER, imm=int(helper))


def call_pseudo(target: Target) -> Instruction | PendingJump:
    """Call a subprogram of this program (``imm`` relative to the next instruction)."""
    return _target(Instruction(InsnClass.JMP | JumpOp.CALL, src=CallSrc.PSEUDO_CALL), target, "imm")


def call_kfunc(btf_id: int, btf_fd_index: int = 0) -> Instruction:
    """Call a kernel function by BTF id (``off`` selects a module BTF in fd_array)."""
    return Instruction(InsnClass.JMP | JumpOp.CALL, src=CallSrc.KFUNC, off=btf_fd_index, imm=btf_id)


def exit_() -> Instruction:
    """Return r0 to the caller."""
    return Instruction(InsnClass.JMP | JumpOp.EXIT)


def _atomic_short(op: AtomicOp):
    def build(size: Size, dst: Reg, off: int, src: Reg) -> Instruction:
        return atomic(op, size, dst, off, src)

    build.__doc__ = f"Atomic {op.name.lower()} on ``*(size *)(dst + off)`` with ``src``."
    return build


atomic_add = _atomic_short(AtomicOp.ADD)
atomic_or = _atomic_short(AtomicOp.OR)
atomic_and = _atomic_short(AtomicOp.AND)
atomic_xor = _atomic_short(AtomicOp.XOR)
atomic_fetch_add = _atomic_short(AtomicOp.ADD_FETCH)
atomic_fetch_or = _atomic_short(AtomicOp.OR_FETCH)
atomic_fetch_and = _atomic_short(AtomicOp.AND_FETCH)
atomic_fetch_xor = _atomic_short(AtomicOp.XOR_FETCH)
atomic_xchg = _atomic_short(AtomicOp.XCHG)
atomic_cmpxchg = _atomic_short(AtomicOp.CMPXCHG)

__all__ = [
    "FP", "Item", "Label", "Operand", "PendingJump", "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9",
    "R10", "Target", "add32", "add64", "addr_space_cast", "alu32", "alu64", "and32", "and64", "arsh32", "arsh64",
    "assemble", "atomic", "atomic_add", "atomic_and", "atomic_cmpxchg", "atomic_fetch_add", "atomic_fetch_and",
    "atomic_fetch_or", "atomic_fetch_xor", "atomic_or", "atomic_xchg", "atomic_xor", "bswap", "call",
    "call_kfunc", "call_pseudo", "div32", "div64", "exit_", "gotol", "ja", "jeq", "jeq32", "jge", "jge32", "jgt",
    "jgt32", "jle", "jle32", "jlt", "jlt32", "jmp", "jne", "jne32", "jset", "jset32", "jsge", "jsge32", "jsgt",
    "jsgt32", "jsle", "jsle32", "jslt", "jslt32", "label", "ld_abs", "ld_btf_id", "ld_func", "ld_imm64",
    "ld_ind", "ld_map_fd", "ld_map_idx", "ld_map_idx_value", "ld_map_value", "ldx", "ldxsx", "load_acquire",
    "may_goto", "mod32", "mod64", "mov32", "mov64", "movsx32", "movsx64", "mul32", "mul64", "neg32", "neg64",
    "or32", "or64", "rsh32", "rsh64", "lsh32", "lsh64", "sdiv32", "sdiv64", "smod32", "smod64", "st",
    "store_release", "stx", "sub32", "sub64", "to_be", "to_le", "xor32", "xor64",
]
