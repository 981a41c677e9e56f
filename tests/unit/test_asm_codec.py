"""corebpf.asm instruction model and codec: exact round trips, validation, malformed input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corebpf.asm import (
    AluOp, AtomicOp, CallSrc, Dialect, InsnClass, Instruction, JumpOp, KernelSymbols, Mode, PseudoSrc, Size,
    Source, decode, decode_indexed, disassemble, encode, format_insn, slot_count,
)
from corebpf.asm import builder as b
from corebpf.errors import InstructionError

ALU_OPS = [op for op in AluOp if op not in (AluOp.NEG, AluOp.END)]
JMP_CONDS = [op for op in JumpOp if op not in (JumpOp.JA, JumpOp.CALL, JumpOp.EXIT, JumpOp.JCOND)]
SIZES = list(Size)


def every_family() -> list[Instruction]:
    """One or more instructions of every form the instruction-set document defines."""
    out: list[Instruction] = []
    for cls in (InsnClass.ALU, InsnClass.ALU64):
        for op in ALU_OPS:
            out.append(Instruction(cls | op | Source.K, dst=3, imm=-77))
            out.append(Instruction(cls | op | Source.X, dst=3, src=9))
        out.append(Instruction(cls | AluOp.NEG, dst=4))
        for op in (AluOp.DIV, AluOp.MOD):  # signed variants
            out.append(Instruction(cls | op | Source.K, dst=1, off=1, imm=-3))
            out.append(Instruction(cls | op | Source.X, dst=1, src=2, off=1))
    out += [b.movsx64(b.R1, b.R2, bits) for bits in (8, 16, 32)]
    out += [b.movsx32(b.R1, b.R2, bits) for bits in (8, 16)]
    out += [b.to_le(b.R5, w) for w in (16, 32, 64)] + [b.to_be(b.R5, w) for w in (16, 32, 64)]
    out += [b.bswap(b.R5, w) for w in (16, 32, 64)]
    for cls in (InsnClass.JMP, InsnClass.JMP32):
        for cond in JMP_CONDS:
            out.append(Instruction(cls | cond | Source.K, dst=2, off=-5, imm=0x7FFFFFFF))
            out.append(Instruction(cls | cond | Source.X, dst=2, src=3, off=7))
    out += [b.ja(-1), b.gotol(100000), b.may_goto(3), b.exit_()]
    out += [b.call(1), b.call_pseudo(-20), b.call_kfunc(12345, 2)]
    for size in SIZES:
        out += [b.ldx(size, b.R1, b.R2, -16), b.st(size, b.R10, -8, -1), b.stx(size, b.R10, -8, b.R3)]
        if size != Size.DW:
            out += [b.ldxsx(size, b.R1, b.R2, 4), b.ld_abs(size, 12), b.ld_ind(size, b.R6, -2)]
        out += [b.load_acquire(size, b.R1, b.R2, 8), b.store_release(size, b.R1, 8, b.R2)]
    for size in (Size.W, Size.DW):
        for op in (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR, AtomicOp.ADD_FETCH, AtomicOp.OR_FETCH,
                   AtomicOp.AND_FETCH, AtomicOp.XOR_FETCH, AtomicOp.XCHG, AtomicOp.CMPXCHG):
            out.append(b.atomic(op, size, b.R1, -8, b.R2))
    out += [b.ld_imm64(b.R1, 0x1122334455667788), b.ld_imm64(b.R1, -1), b.ld_map_fd(b.R1, 7),
            b.ld_map_value(b.R2, 7, 16), b.ld_btf_id(b.R3, 99, 4), b.ld_func(b.R4, 10), b.ld_map_idx(b.R5, 2),
            b.ld_map_idx_value(b.R6, 3, 24)]
    return out


FAMILY = every_family()


@pytest.mark.parametrize("insn", FAMILY, ids=lambda i: i.to_bytes().hex())
def test_every_family_round_trips_and_is_valid(insn: Instruction):
    raw = insn.to_bytes()
    assert len(raw) == 8 * insn.slots
    assert decode(raw) == [insn]
    assert encode(decode(raw)) == raw
    assert insn.problem() is None, insn.problem()
    assert decode(raw, strict=True) == [insn]


def test_program_round_trip_and_slot_indexes():
    raw = encode(FAMILY)
    assert decode(raw) == FAMILY
    assert slot_count(FAMILY) * 8 == len(raw)
    indexed = decode_indexed(raw)
    slots = [s for s, _ in indexed]
    assert slots == sorted(slots) and slots[0] == 0
    for (slot, insn), (nxt, _) in zip(indexed, indexed[1:]):
        assert nxt - slot == insn.slots


def test_every_opcode_byte_round_trips_with_odd_bits():
    """Unknown opcodes and reserved bits survive: only the width must be known."""
    for code in range(256):
        if code & 0x07 == InsnClass.LD and code & 0xE0 == Mode.IMM and code != 0x18:
            with pytest.raises(InstructionError, match="byte offset 0"):
                decode(bytes([code]) + b"\xff" * 7)
            continue
        raw = bytes([code, 0xAB]) + struct.pack("<hi", -2, -123456)
        if code == 0x18:
            raw += bytes([0x5A, 0, 1, 2]) + struct.pack("<i", -9)
        assert encode(decode(raw)) == raw, hex(code)


def test_ld_imm64_fields():
    insn = decode(bytes.fromhex("1821000078563412") + bytes.fromhex("00000000f0debc9a"))[0]
    assert insn.is_ld_imm64 and insn.slots == 2
    assert insn.dst == 1 and insn.src == 2 and insn.pseudo is PseudoSrc.MAP_VALUE
    assert insn.imm == 0x9ABCDEF012345678 and insn.imm_lo == 0x12345678 and insn.imm_hi == 0x9ABCDEF0 - (1 << 32)
    assert insn.imm64 == 0x9ABCDEF012345678 - (1 << 64)


def test_properties():
    jump = b.jsgt32(b.R1, b.R2, 5)
    assert jump.cls is InsnClass.JMP32 and jump.op is JumpOp.JSGT and jump.source is Source.X
    assert jump.is_conditional_jump and jump.branch_target(10) == 16
    load = b.ldxsx(Size.H, b.R0, b.R1, 2)
    assert load.cls is InsnClass.LDX and load.mode is Mode.MEMSX and load.size is Size.H and load.size.nbytes == 2
    assert b.gotol(-3).branch_target(10) == 8 and b.call_pseudo(4).branch_target(0) == 5
    assert b.call(1).is_helper_call and b.call_kfunc(5).is_kfunc_call and b.call_pseudo(1).is_pseudo_call
    assert b.call(5).branch_offset is None and b.exit_().is_exit
    with pytest.raises(InstructionError):
        _ = load.op  # a load has a mode, not an operation


def test_field_normalisation_and_limits():
    assert Instruction(0xB7, imm=0xFFFFFFFF) == Instruction(0xB7, imm=-1)
    assert Instruction(0x05, off=0xFFFF).off == -1
    assert Instruction(0x18, imm=-1).imm == (1 << 64) - 1
    for bad in (dict(opcode=256), dict(opcode=0xB7, dst=16), dict(opcode=0xB7, src=-1),
                dict(opcode=0xB7, off=1 << 16), dict(opcode=0xB7, imm=1 << 32), dict(opcode=0xB7, reserved=1),
                dict(opcode=0x18, imm=1 << 64)):
        with pytest.raises(InstructionError):
            Instruction(**bad)


@pytest.mark.parametrize("data, offset, what", [
    (bytes(9), 8, "truncated"),
    (bytes.fromhex("b700000000000000") * 2 + bytes.fromhex("1801000001000000"), 16, "second"),
    (bytes.fromhex("b700000000000000") + bytes.fromhex("0001000000000000"), 8, "width"),
    (bytes(3), 0, "truncated"),
])
def test_malformed_bytes_name_the_offset(data: bytes, offset: int, what: str):
    with pytest.raises(InstructionError, match=f"byte offset {offset}\\b") as exc:
        decode(data)
    assert what in str(exc.value)


@pytest.mark.parametrize("insn, why", [
    (Instruction(0xB7, src=1), "src"),                      # mov imm with a source register
    (Instruction(0xBF, dst=1, src=2, off=3), "offset"),     # mov with a reserved offset
    (Instruction(0xE7), "unknown ALU"),                      # ALU64 op 0xe0
    (Instruction(0xDF, imm=16), "big-endian"),               # ALU64 END with the TO_BE bit
    (Instruction(0xD4, imm=8), "width"),                     # le8
    (Instruction(0xDB, imm=0x07), "atomic"),                 # unknown atomic op
    (Instruction(0x0D), "gotox"),                            # JMP|JA|X
    (Instruction(0x9D), "exit"),                             # JMP|EXIT|X
    (Instruction(0x99), "register load"),                    # LDX | MEMSX | DW
    (Instruction(0x18, src=9), "pseudo"),
    (Instruction(0x18, reserved=1), "reserved"),
])
def test_strict_decoding_rejects_undefined_encodings(insn: Instruction, why: str):
    assert insn.problem() is not None and why in insn.problem()
    raw = b.exit_().to_bytes() + insn.to_bytes()
    assert encode(decode(raw)) == raw  # lenient: kept as is
    with pytest.raises(InstructionError, match="byte offset 8"):
        decode(raw, strict=True)


# ---- property-based -----------------------------------------------------------------------------

regs = st.integers(0, 10)
off16 = st.integers(-(1 << 15), (1 << 15) - 1)
imm32 = st.integers(-(1 << 31), (1 << 31) - 1)


@st.composite
def valid_instructions(draw) -> Instruction:
    kind = draw(st.sampled_from(["alu", "jmp", "mem", "imm64", "atomic", "call", "misc"]))
    if kind == "alu":
        cls = draw(st.sampled_from([InsnClass.ALU, InsnClass.ALU64]))
        op = draw(st.sampled_from(ALU_OPS))
        if draw(st.booleans()):
            return Instruction(cls | op | Source.X, dst=draw(regs), src=draw(regs))
        return Instruction(cls | op | Source.K, dst=draw(regs), imm=draw(imm32))
    if kind == "jmp":
        cls = draw(st.sampled_from([InsnClass.JMP, InsnClass.JMP32]))
        cond = draw(st.sampled_from(JMP_CONDS))
        if draw(st.booleans()):
            return Instruction(cls | cond | Source.X, dst=draw(regs), src=draw(regs), off=draw(off16))
        return Instruction(cls | cond | Source.K, dst=draw(regs), off=draw(off16), imm=draw(imm32))
    if kind == "mem":
        size = draw(st.sampled_from(SIZES))
        which = draw(st.sampled_from(["ldx", "st", "stx"]))
        if which == "ldx":
            return b.ldx(size, draw(regs), draw(regs), draw(off16))
        if which == "st":
            return b.st(size, draw(regs), draw(off16), draw(imm32))
        return b.stx(size, draw(regs), draw(off16), draw(regs))
    if kind == "imm64":
        return b.ld_imm64(draw(regs), draw(st.integers(0, (1 << 64) - 1)), draw(st.sampled_from(list(PseudoSrc))))
    if kind == "atomic":
        op = draw(st.sampled_from([a for a in AtomicOp if a not in (AtomicOp.LOAD_ACQ, AtomicOp.STORE_REL)]))
        return b.atomic(op, draw(st.sampled_from([Size.W, Size.DW])), draw(regs), draw(off16), draw(regs))
    if kind == "call":
        src = draw(st.sampled_from(list(CallSrc)))
        return Instruction(InsnClass.JMP | JumpOp.CALL, src=src, imm=draw(imm32))
    return draw(st.sampled_from([b.exit_(), b.ja(draw(off16)), b.gotol(draw(imm32)), b.neg64(draw(regs))]))


@given(st.lists(valid_instructions(), max_size=40))
@settings(max_examples=300, deadline=None)
def test_random_valid_programs_round_trip(insns: list[Instruction]):
    raw = encode(insns)
    assert decode(raw, strict=True) == insns
    assert encode(decode(raw)) == raw


@given(st.binary(max_size=200))
@settings(max_examples=500, deadline=None)
def test_random_bytes_round_trip_or_raise_instruction_error(data: bytes):
    try:
        insns = decode(data)
    except InstructionError as exc:
        assert "byte offset" in str(exc)
        return
    assert encode(insns) == data
    for insn in insns:  # every accessor works on whatever decoded
        insn.problem()
        str(insn)
        repr(insn)
        format_insn(insn, dialect=Dialect.LEGACY)
    syms = KernelSymbols.from_lines(["ffffffff81000000 T __bpf_call_base", "ffffffff81000010 T f"])
    for dialect in (Dialect.CURRENT, Dialect.LEGACY):
        listing = disassemble(insns, kallsyms=syms, jited_ksyms=[0xFFFFFFFF81000010], dialect=dialect,
                              opcodes=True)
        assert len(listing) == 2 * len(insns)
