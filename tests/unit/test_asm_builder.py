"""corebpf.asm builder: operand forms, labels, errors."""

from __future__ import annotations

import pytest

from corebpf.asm import AluOp
from corebpf.asm import InsnClass, JumpOp, PseudoSrc, Size, Source, decode, encode
from corebpf.asm import builder as b
from corebpf._sys import HelperId
from corebpf.errors import InstructionError


def test_register_or_immediate_operand():
    assert b.add64(b.R1, b.R2).source is Source.X and b.add64(b.R1, 2).source is Source.K
    assert b.add64(b.R1, b.R2).src == 2 and b.add64(b.R1, 2).imm == 2
    assert b.alu32(AluOp.XOR, b.R3, 7).opcode == InsnClass.ALU | AluOp.XOR
    assert b.sdiv64(b.R1, 3).off == 1 and b.div64(b.R1, 3).off == 0


def test_labels_resolve_forward_and_backward_over_wide_instructions():
    prog = b.assemble([
        b.label("top"),
        b.ld_imm64(b.R1, 1),                 # slots 0-1
        b.jeq(b.R1, 0, "end"),               # slot 2 -> 6
        b.gotol("end"),                      # slot 3 -> 6 (imm)
        b.call_pseudo("end"),                # slot 4 -> 6 (imm)
        b.ja("top"),                         # slot 5 -> 0
        b.label("end"),
        b.exit_(),
    ])
    assert [i.branch_target(s) for s, i in zip([0, 2, 3, 4, 5, 6], prog)] == [None, 6, 6, 6, 0, None]
    assert decode(encode(prog)) == prog


def test_label_errors():
    with pytest.raises(InstructionError, match="undefined label 'nowhere'"):
        b.assemble([b.ja("nowhere")])
    with pytest.raises(InstructionError, match="defined twice"):
        b.assemble([b.label("x"), b.label("x"), b.exit_()])
    far = [b.ja("end")] + [b.mov64(b.R0, 0)] * 40000 + [b.label("end"), b.exit_()]
    with pytest.raises(InstructionError, match="gotol"):
        b.assemble(far)
    assert b.assemble([b.gotol("end")] + far[1:])[0].imm == 40000
    with pytest.raises(InstructionError):
        b.assemble(["not an instruction"])  # type: ignore[list-item]


def test_calls_and_special_loads():
    assert b.call("map_lookup_elem") == b.call("bpf_map_lookup_elem") == b.call(HelperId.map_lookup_elem)
    with pytest.raises(InstructionError, match="unknown helper"):
        b.call("no_such_helper")
    assert b.ld_map_value(b.R1, 5, 16).imm == (16 << 32) | 5 and b.ld_map_value(b.R1, 5).pseudo is PseudoSrc.MAP_VALUE
    assert b.ld_func(b.R2, 4).imm == 4 and b.ld_func(b.R2, "cb").label == "cb"
    assert b.call_kfunc(77, 1).off == 1 and b.call_kfunc(77).is_kfunc_call
    assert b.jmp(JumpOp.JSET, b.R1, 1, 2, wide=False).cls is InsnClass.JMP32


def test_invalid_variants_are_refused():
    with pytest.raises(InstructionError):
        b.movsx64(b.R1, b.R2, 64)
    with pytest.raises(InstructionError):
        b.movsx32(b.R1, b.R2, 32)
    with pytest.raises(InstructionError):
        b.ldxsx(Size.DW, b.R1, b.R2)
    with pytest.raises(InstructionError):
        b.mov64(b.R1, 1 << 40)


def test_every_builder_output_is_valid():
    made = [b.mov32(b.R1, -1), b.neg32(b.R2), b.to_le(b.R1, 32), b.bswap(b.R1, 16), b.ld_abs(Size.B, 3),
            b.ld_ind(Size.W, b.R2, 0), b.load_acquire(Size.W, b.R0, b.R1), b.store_release(Size.DW, b.R1, 0, b.R2),
            b.may_goto(0), b.ld_btf_id(b.R1, 10), b.ld_map_idx(b.R1, 0), b.ld_map_idx_value(b.R1, 0, 4)]
    made += [f(b.R1, b.R2, 1) for f in (b.jeq, b.jne, b.jgt, b.jge, b.jlt, b.jle, b.jsgt, b.jsge, b.jslt, b.jsle,
                                         b.jset, b.jeq32, b.jne32, b.jgt32, b.jge32, b.jlt32, b.jle32, b.jsgt32,
                                         b.jsge32, b.jslt32, b.jsle32, b.jset32)]
    for insn in made:
        assert insn.problem() is None, (insn, insn.problem())
