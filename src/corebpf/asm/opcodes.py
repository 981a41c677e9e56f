"""Named constants of the eBPF instruction set (the kernel's instruction-set document).

An opcode byte is split three ways, depending on its class (low three bits):

* ALU/ALU64/JMP/JMP32: ``op (4 bits) | source (1 bit) | class (3 bits)``
* LD/LDX/ST/STX:       ``mode (3 bits) | size (2 bits) | class (3 bits)``
"""

from __future__ import annotations

import enum

CLASS_MASK = 0x07
OP_MASK = 0xF0
SOURCE_MASK = 0x08
SIZE_MASK = 0x18
MODE_MASK = 0xE0

INSN_SIZE = 8
"""Bytes per instruction slot; ld_imm64 takes two slots."""


class Reg(enum.IntEnum):
    """Registers: r0 return value, r1-r5 arguments, r6-r9 callee saved, r10 frame pointer."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10


class InsnClass(enum.IntEnum):
    """Instruction class (opcode & 0x07)."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


class Source(enum.IntEnum):
    """Operand source for ALU and jumps (opcode & 0x08); also the byte order of BPF_END."""

    K = 0x00
    X = 0x08


class Endian(enum.IntEnum):
    """Byte-swap direction of ``ALU | END`` (shares the source bit)."""

    TO_LE = 0x00
    TO_BE = 0x08


class AluOp(enum.IntEnum):
    """Arithmetic operation (opcode & 0xf0) of ALU/ALU64."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0


class JumpOp(enum.IntEnum):
    """Jump condition or control transfer (opcode & 0xf0) of JMP/JMP32."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0


class Size(enum.IntEnum):
    """Access width of loads and stores (opcode & 0x18)."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def nbytes(self) -> int:
        """Width in bytes."""
        return {Size.W: 4, Size.H: 2, Size.B: 1, Size.DW: 8}[self]


class Mode(enum.IntEnum):
    """Addressing mode of loads and stores (opcode & 0xe0)."""

    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


class AtomicOp(enum.IntEnum):
    """The ``imm`` of an ``STX | ATOMIC`` instruction."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH = 0x01
    ADD_FETCH = 0x01
    OR_FETCH = 0x41
    AND_FETCH = 0x51
    XOR_FETCH = 0xA1
    XCHG = 0xE1
    CMPXCHG = 0xF1
    LOAD_ACQ = 0x100
    STORE_REL = 0x110


class PseudoSrc(enum.IntEnum):
    """``src`` of a ld_imm64: what its 64-bit immediate refers to."""

    NONE = 0
    MAP_FD = 1
    MAP_VALUE = 2
    BTF_ID = 3
    FUNC = 4
    MAP_IDX = 5
    MAP_IDX_VALUE = 6


class CallSrc(enum.IntEnum):
    """``src`` of a call: helper id, relative bpf-to-bpf call, or kernel function BTF id."""

    HELPER = 0
    PSEUDO_CALL = 1
    KFUNC = 2


JCOND_MAY_GOTO = 0
"""``src`` of ``JMP | JCOND``: the only condition defined is may_goto."""

ADDR_SPACE_CAST = 1
"""``off`` of ``ALU64 | MOV | X`` converting between address spaces (arena pointers)."""

ADDR_PERCPU = -1
"""``off`` of the kernel-internal ``ALU64 | MOV | X`` that turns a per-CPU offset into an address."""

NOSPEC = 0xC0
"""Mode of the kernel-internal ``ST | 0xc0`` speculation barrier found in translated code."""

LD_IMM64 = InsnClass.LD | Mode.IMM | Size.DW
"""Opcode 0x18, the only two-slot instruction."""

__all__ = [
    "ADDR_PERCPU", "ADDR_SPACE_CAST", "AluOp", "AtomicOp", "CallSrc", "CLASS_MASK", "Endian", "INSN_SIZE",
    "InsnClass", "JCOND_MAY_GOTO", "JumpOp", "LD_IMM64", "MODE_MASK", "Mode", "NOSPEC", "OP_MASK", "PseudoSrc",
    "Reg", "SIZE_MASK", "SOURCE_MASK", "Size",
]
