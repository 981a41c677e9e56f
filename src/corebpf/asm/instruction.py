"""The :class:`Instruction` record: one eBPF instruction, immutable, exact to the bit.

Fields keep whatever the bytes said, including bits the ISA reserves, so decoding and encoding
are an exact round trip. A ld_imm64 (opcode 0x18) is one :class:`Instruction` that occupies two
8-byte slots: ``imm`` holds the full 64-bit constant and ``reserved`` the 32 bits of the second
slot that precede its immediate (opcode, registers and offset, all zero in valid code).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from ..errors import InstructionError
from .opcodes import (
    ADDR_PERCPU, ADDR_SPACE_CAST, CLASS_MASK, LD_IMM64, MODE_MASK, NOSPEC, OP_MASK, SIZE_MASK,
    SOURCE_MASK, AluOp, AtomicOp, CallSrc, InsnClass, JumpOp, Mode, PseudoSrc, Size, Source,
)

_SLOT = struct.Struct("<BBhi")
_SLOT_U = struct.Struct("<BBhI")

_ALU_CLASSES = (InsnClass.ALU, InsnClass.ALU64)
_JMP_CLASSES = (InsnClass.JMP, InsnClass.JMP32)
_VALID_ATOMIC = {int(a) for a in AtomicOp}


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@dataclass(frozen=True, slots=True)
class Instruction:
    """One eBPF instruction.

    Attributes:
        opcode: the opcode byte (class, operation/mode, source/size).
        dst: destination register, 0-15 (4 bits; 11-15 are not registers but are kept).
        src: source register, 0-15; for ld_imm64 and calls the pseudo kind.
        off: signed 16-bit offset (jump distance, memory offset, or a variant selector).
        imm: signed 32-bit immediate; for ld_imm64 the unsigned 64-bit constant.
        reserved: ld_imm64 only: bytes 0-3 of the second slot as a little-endian integer.

    Out-of-range values are accepted in their unsigned spelling (``imm=0xffffffff`` means -1)
    and normalised, so equal encodings compare equal.
    """

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    reserved: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.opcode <= 0xFF:
            raise InstructionError(f"opcode {self.opcode!r} does not fit in a byte")
        for name in ("dst", "src"):
            value = getattr(self, name)
            if not 0 <= value <= 0xF:
                raise InstructionError(f"{name} register {value!r} does not fit in 4 bits (0-15)")
        if not -0x8000 <= self.off <= 0xFFFF:
            raise InstructionError(f"offset {self.off!r} does not fit in 16 bits")
        object.__setattr__(self, "off", _signed(self.off, 16))
        if self.opcode == LD_IMM64:
            if not -(1 << 63) <= self.imm < (1 << 64):
                raise InstructionError(f"ld_imm64 immediate {self.imm!r} does not fit in 64 bits")
            object.__setattr__(self, "imm", self.imm & ((1 << 64) - 1))
            if not 0 <= self.reserved <= 0xFFFFFFFF:
                raise InstructionError(f"reserved bits {self.reserved!r} do not fit in 32 bits")
        else:
            if not -(1 << 31) <= self.imm < (1 << 32):
                raise InstructionError(f"immediate {self.imm!r} does not fit in 32 bits")
            object.__setattr__(self, "imm", _signed(self.imm, 32))
            if self.reserved:
                raise InstructionError("only ld_imm64 has a second slot for reserved bits")

    @classmethod
    def _trusted(cls, opcode: int, dst: int, src: int, off: int, imm: int, reserved: int = 0) -> "Instruction":
        # the decoder's fast path: fields straight from struct.unpack are already in range and
        # in canonical form (off and one-slot imm signed, ld_imm64 imm unsigned)
        insn = _new(cls)
        _set(insn, "opcode", opcode)
        _set(insn, "dst", dst)
        _set(insn, "src", src)
        _set(insn, "off", off)
        _set(insn, "imm", imm)
        _set(insn, "reserved", reserved)
        return insn

    # ---- opcode fields ---------------------------------------------------------------------

    @property
    def cls(self) -> InsnClass:
        """Instruction class."""
        return InsnClass(self.opcode & CLASS_MASK)

    @property
    def op(self) -> int:
        """Operation bits (opcode & 0xf0) of ALU/JMP classes, as :class:`AluOp`/:class:`JumpOp` when known."""
        bits = self.opcode & OP_MASK
        if self.cls in _ALU_CLASSES:
            return AluOp(bits) if bits in AluOp._value2member_map_ else bits
        if self.cls in _JMP_CLASSES:
            return JumpOp(bits) if bits in JumpOp._value2member_map_ else bits
        raise InstructionError(f"opcode 0x{self.opcode:02x} is a load/store: it has a mode, not an operation")

    @property
    def source(self) -> Source:
        """Operand source of ALU/JMP classes (K: immediate, X: register)."""
        return Source(self.opcode & SOURCE_MASK)

    @property
    def size(self) -> Size:
        """Access width of load/store classes."""
        return Size(self.opcode & SIZE_MASK)

    @property
    def mode(self) -> int:
        """Addressing mode of load/store classes, as :class:`Mode` when known."""
        bits = self.opcode & MODE_MASK
        return Mode(bits) if bits in Mode._value2member_map_ else bits

    @property
    def is_alu(self) -> bool:
        """ALU or ALU64 class."""
        return self.cls in _ALU_CLASSES

    @property
    def is_jump(self) -> bool:
        """Any JMP/JMP32 instruction (conditional, unconditional, call or exit)."""
        return self.cls in _JMP_CLASSES

    @property
    def is_load_store(self) -> bool:
        """LD, LDX, ST or STX class."""
        return self.cls not in _ALU_CLASSES and self.cls not in _JMP_CLASSES

    # ---- recognisers ------------------------------------------------------------------------

    @property
    def is_ld_imm64(self) -> bool:
        """The two-slot 64-bit immediate load (opcode 0x18)."""
        return self.opcode == LD_IMM64

    @property
    def slots(self) -> int:
        """How many 8-byte slots the instruction occupies (2 for ld_imm64, else 1)."""
        return 2 if self.opcode == LD_IMM64 else 1

    @property
    def imm64(self) -> int:
        """The 64-bit immediate of a ld_imm64 as a signed number."""
        return _signed(self.imm, 64)

    @property
    def imm_lo(self) -> int:
        """The signed 32-bit immediate of the first slot (the whole imm for one-slot instructions)."""
        return _signed(self.imm, 32)

    @property
    def imm_hi(self) -> int:
        """The signed 32-bit immediate of a ld_imm64's second slot (0 otherwise)."""
        return _signed(self.imm >> 32, 32) if self.opcode == LD_IMM64 else 0

    @property
    def pseudo(self) -> Optional[PseudoSrc]:
        """What a ld_imm64's immediate means (map fd, map value, BTF id, function...); None otherwise."""
        if self.opcode != LD_IMM64:
            return None
        return PseudoSrc(self.src) if self.src in PseudoSrc._value2member_map_ else None

    @property
    def is_call(self) -> bool:
        """``JMP | CALL``: a helper, bpf-to-bpf or kfunc call."""
        return self.opcode == InsnClass.JMP | JumpOp.CALL

    @property
    def is_helper_call(self) -> bool:
        """A call to a helper by id (``src=0``)."""
        return self.is_call and self.src == CallSrc.HELPER

    @property
    def is_pseudo_call(self) -> bool:
        """A call into a subprogram of the same program (``src=1``, ``imm`` relative to the next insn)."""
        return self.is_call and self.src == CallSrc.PSEUDO_CALL

    @property
    def is_kfunc_call(self) -> bool:
        """A call to a kernel function named by BTF id (``src=2``)."""
        return self.is_call and self.src == CallSrc.KFUNC

    @property
    def is_exit(self) -> bool:
        """``JMP | EXIT``: return r0."""
        return self.opcode == InsnClass.JMP | JumpOp.EXIT

    @property
    def is_unconditional_jump(self) -> bool:
        """``goto`` (JMP|JA, offset in ``off``) or ``gotol`` (JMP32|JA, offset in ``imm``)."""
        return self.opcode in (InsnClass.JMP | JumpOp.JA, InsnClass.JMP32 | JumpOp.JA)

    @property
    def is_conditional_jump(self) -> bool:
        """A compare-and-branch, or may_goto (a branch the kernel decides)."""
        if not self.is_jump:
            return False
        return (self.opcode & OP_MASK) not in (JumpOp.JA, JumpOp.CALL, JumpOp.EXIT)

    @property
    def branch_offset(self) -> Optional[int]:
        """Jump distance in slots, relative to the next instruction; None when not a branch.

        ``gotol`` keeps its distance in ``imm``; pseudo calls in ``imm`` too.
        """
        if self.opcode == InsnClass.JMP32 | JumpOp.JA or self.is_pseudo_call:
            return self.imm
        if self.is_unconditional_jump or self.is_conditional_jump:
            return self.off
        return None

    def branch_target(self, index: int) -> Optional[int]:
        """Slot index a branch at slot ``index`` goes to (None when not a branch)."""
        delta = self.branch_offset
        return None if delta is None else index + 1 + delta

    # ---- validity and bytes -----------------------------------------------------------------

    def problem(self) -> Optional[str]:
        """Why this is not an instruction the ISA defines (None if it is).

        Reserved fields must be zero except where a variant uses them (sdiv/smod ``off=1``,
        movsx ``off`` 8/16/32). Kernel-internal forms seen in translated code (nospec, per-CPU
        address moves) are accepted.
        """
        return _problem(self)

    @property
    def is_valid(self) -> bool:
        """True when the ISA defines this exact encoding (see :meth:`problem`)."""
        return _problem(self) is None

    def to_bytes(self) -> bytes:
        """The 8 or 16 little-endian bytes of this instruction."""
        regs = (self.src << 4) | self.dst
        if self.opcode == LD_IMM64:
            lo = self.imm & 0xFFFFFFFF
            hi = self.imm >> 32
            return _SLOT_U.pack(self.opcode, regs, self.off, lo) + struct.pack("<II", self.reserved, hi)
        return _SLOT.pack(self.opcode, regs, self.off, self.imm)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def with_(self, **changes: int) -> "Instruction":
        """A copy with some fields changed (e.g. a resolved jump offset)."""
        fields = {"opcode": self.opcode, "dst": self.dst, "src": self.src, "off": self.off, "imm": self.imm,
                  "reserved": self.reserved}
        fields.update(changes)
        return Instruction(**fields)

    def __str__(self) -> str:
        """The kernel printer's text for this instruction, e.g. ``(b7) r0 = 0``."""
        from .disasm import format_insn  # local: disasm imports this module

        return format_insn(self)

    def __repr__(self) -> str:
        parts = [f"opcode=0x{self.opcode:02x}"]
        if self.dst:
            parts.append(f"dst={self.dst}")
        if self.src:
            parts.append(f"src={self.src}")
        if self.off:
            parts.append(f"off={self.off}")
        if self.imm:
            parts.append(f"imm={self.imm:#x}" if self.opcode == LD_IMM64 else f"imm={self.imm}")
        if self.reserved:
            parts.append(f"reserved={self.reserved:#x}")
        return f"Instruction({', '.join(parts)})"


_new = object.__new__
_set = object.__setattr__


def _problem(insn: Instruction) -> Optional[str]:
    cls = insn.opcode & CLASS_MASK
    code = insn.opcode
    if cls in _ALU_CLASSES:
        return _alu_problem(insn, cls)
    if cls in _JMP_CLASSES:
        return _jmp_problem(insn, cls)
    mode = code & MODE_MASK
    size = code & SIZE_MASK
    if cls == InsnClass.LD:
        if code == LD_IMM64:
            if insn.src not in PseudoSrc._value2member_map_:
                return f"ld_imm64 with unknown pseudo source {insn.src}"
            if insn.off or insn.reserved:
                return "ld_imm64 with non-zero reserved fields"
            return None
        if mode in (Mode.ABS, Mode.IND):
            if size == Size.DW:
                return "legacy packet loads have no 64-bit form"
            if insn.dst or insn.off or (mode == Mode.ABS and insn.src):
                return "legacy packet load with non-zero reserved fields"
            return None
        return f"unknown load opcode 0x{code:02x}"
    if cls == InsnClass.LDX:
        if mode == Mode.MEM or (mode == Mode.MEMSX and size != Size.DW):
            return None if insn.imm == 0 else "register load with non-zero imm"
        return f"unknown register load opcode 0x{code:02x}"
    if cls == InsnClass.ST:
        if mode == Mode.MEM:
            return None if insn.src == 0 else "store of immediate with non-zero src"
        if mode == NOSPEC and code == InsnClass.ST | NOSPEC:
            return None
        return f"unknown store opcode 0x{code:02x}"
    # STX
    if mode == Mode.MEM:
        return None if insn.imm == 0 else "register store with non-zero imm"
    if mode == Mode.ATOMIC:
        if size not in (Size.W, Size.DW) and insn.imm not in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL):
            return "atomic read-modify-write needs a 32 or 64-bit size"
        if insn.imm not in _VALID_ATOMIC:
            return f"unknown atomic operation 0x{insn.imm:x}"
        return None
    return f"unknown register store opcode 0x{code:02x}"


def _alu_problem(insn: Instruction, cls: int) -> Optional[str]:
    op = insn.opcode & OP_MASK
    src_x = insn.opcode & SOURCE_MASK
    if op not in AluOp._value2member_map_:
        return f"unknown ALU operation 0x{op:02x}"
    if op == AluOp.END:
        if cls == InsnClass.ALU64 and src_x:
            return "64-bit byte swap has no to-big-endian form"
        return None if insn.imm in (16, 32, 64) and not insn.off and not insn.src else "bad byte swap width"
    if op == AluOp.NEG:
        return None if not src_x and not insn.src and not insn.off and not insn.imm else "neg with operands"
    allowed_off = {0}
    if op in (AluOp.DIV, AluOp.MOD):
        allowed_off.add(1)
    if op == AluOp.MOV and src_x:
        allowed_off |= {8, 16} | ({32, ADDR_SPACE_CAST, ADDR_PERCPU} if cls == InsnClass.ALU64 else set())
    if insn.off not in allowed_off:
        return f"offset {insn.off} is reserved for this ALU operation"
    if src_x:
        if insn.imm and not (insn.off == ADDR_SPACE_CAST and cls == InsnClass.ALU64 and op == AluOp.MOV):
            return "register ALU operation with non-zero imm"
    elif insn.src:
        return "immediate ALU operation with non-zero src"
    return None


def _jmp_problem(insn: Instruction, cls: int) -> Optional[str]:
    op = insn.opcode & OP_MASK
    src_x = insn.opcode & SOURCE_MASK
    if op == JumpOp.CALL:
        if cls != InsnClass.JMP or src_x:
            return "call is only JMP|CALL|K"
        return None if insn.src in CallSrc._value2member_map_ and not insn.dst else "call with unknown source"
    if op == JumpOp.EXIT:
        if cls != InsnClass.JMP or src_x:
            return "exit is only JMP|EXIT|K"
        return None if not (insn.dst or insn.src or insn.off or insn.imm) else "exit with operands"
    if op == JumpOp.JA:
        if src_x:
            return "indirect jump (gotox) is not in the instruction-set document"
        if cls == InsnClass.JMP:
            return None if not (insn.dst or insn.src or insn.imm) else "goto with non-zero reserved fields"
        return None if not (insn.dst or insn.src or insn.off) else "gotol with non-zero reserved fields"
    if op == JumpOp.JCOND:
        if cls != InsnClass.JMP or src_x or insn.src != 0 or insn.dst or insn.imm:
            return "may_goto is only JMP|JCOND with zero registers and imm"
        return None
    if op not in JumpOp._value2member_map_:
        return f"unknown jump operation 0x{op:02x}"
    if not src_x and insn.src:
        return "compare with immediate has non-zero src"
    if src_x and insn.imm:
        return "compare of registers has non-zero imm"
    return None


__all__ = ["Instruction"]
