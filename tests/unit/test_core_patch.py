"""CO-RE instruction patching and poisoning rules, the verifier-log explanation of poisoned
relocations, spec texts, and the target set (vmlinux then modules, user BTF files)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from corebpf.btf import BTF
from corebpf.btf.builder import BTFBuilder
from corebpf.btf.core import (
    POISON_IMM, CoreRelo, CoreRelocationError, CoreRelocator, TargetSet, explain_verifier_log, find_poisoned,
    parse_spec, format_spec,
)
from corebpf.btf.core_targets import CoreTargetWarning
from corebpf.errors import BTFError
from test_core_support import K, builder, ld64, ldx, mov, relocate

_SLOT = struct.Struct("<BBhi")


def _pair() -> tuple[BTF, int, BTF]:
    lb = builder()
    i = lb.add_int("int", 4, signed=True)
    s = lb.add_struct("s", 8, [("a", i, 0), ("b", i, 32)])
    tb = builder()
    ti = tb.add_int("int", 4, signed=True)
    tb.add_struct("s", 16, [("x", ti, 0), ("b", ti, 64), ("a", ti, 96)])
    return lb.to_btf(), s, tb.to_btf()


LOCAL, S, TARGET = _pair()


# -- patching ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("code", [0x07, 0xB7, 0x04, 0xB4])  # add64/mov64/add32/mov32 with an immediate
def test_alu_immediates_are_patched(code: int):
    r = relocate(LOCAL, TARGET, S, "0:1", K.FIELD_BYTE_OFFSET, _SLOT.pack(code, 0x3, 0, 4))
    assert (r.insn.opcode, r.insn.dst, r.insn.imm) == (code, 3, 8)


def test_alu_with_register_operand_is_refused():
    with pytest.raises(CoreRelocationError, match="register operand"):
        relocate(LOCAL, TARGET, S, "0:1", K.FIELD_BYTE_OFFSET, _SLOT.pack(0x0F, 0x21, 0, 4))


def test_instruction_without_the_local_value_is_refused():
    with pytest.raises(CoreRelocationError, match=r"unexpected ALU/ALU64 value: got 5, expected 4 -> 8"):
        relocate(LOCAL, TARGET, S, "0:1", K.FIELD_BYTE_OFFSET, mov(5))
    with pytest.raises(CoreRelocationError, match=r"unexpected LDX/ST/STX offset: got 0, expected 4 -> 8"):
        relocate(LOCAL, TARGET, S, "0:1", K.FIELD_BYTE_OFFSET, ldx(0))
    with pytest.raises(CoreRelocationError, match=r"unexpected LDIMM64 value: got 7, expected 4 -> 8"):
        relocate(LOCAL, TARGET, S, "0:1", K.FIELD_BYTE_OFFSET, ld64(7))


def test_st_immediate_store_offset():
    st = _SLOT.pack(0x62, 0x1, 4, 77)  # *(u32 *)(r1 + 4) = 77
    r = relocate(LOCAL, TARGET, S, "0:1", K.FIELD_BYTE_OFFSET, st)
    assert (r.insn.opcode, r.insn.off, r.insn.imm) == (0x62, 8, 77)


def test_ld_imm64_patched_in_both_halves():
    lb = builder()
    e = lb.add_enum("e", [("V", 1)])
    tb = builder()
    tb.add_enum64("e", [("V", 0xAABBCCDD_11223344)])
    r = relocate(lb.to_btf(), tb.to_btf(), e, "0", K.ENUMVAL_VALUE, ld64(1))
    assert r.insn.opcode == 0x18 and r.insn.imm == 0xAABBCCDD_11223344


@pytest.mark.parametrize("second", [_SLOT.pack(0x18, 0, 0, 0), _SLOT.pack(0, 1, 0, 0), _SLOT.pack(0, 0, 1, 0)])
def test_ld_imm64_of_unexpected_form(second: bytes):
    with pytest.raises(CoreRelocationError, match="LDIMM64 instruction has an unexpected form"):
        relocate(LOCAL, TARGET, S, "0:1", K.FIELD_BYTE_OFFSET, _SLOT.pack(0x18, 0, 0, 4) + second)


def test_ld_imm64_with_pseudo_source_is_refused():
    with pytest.raises(CoreRelocationError, match="unexpected form"):
        relocate(LOCAL, TARGET, S, "0:1", K.FIELD_BYTE_OFFSET, _SLOT.pack(0x18, 0x10, 0, 4) + _SLOT.pack(0, 0, 0, 0))


def test_jump_instruction_cannot_be_relocated():
    with pytest.raises(CoreRelocationError, match="unrecognized instruction code 0x15"):
        relocate(LOCAL, TARGET, S, "0:1", K.FIELD_BYTE_OFFSET, _SLOT.pack(0x15, 0, 0, 4))


def test_poison_replaces_any_instruction_with_the_sentinel_call():
    tb = builder()
    tb.add_int("int", 4, signed=True)
    for insn in (mov(4), ldx(4), _SLOT.pack(0x15, 1, 2, 4)):  # poisoning does not look at the instruction
        r = relocate(LOCAL, tb.to_btf(), S, "0:1", K.FIELD_BYTE_OFFSET, insn)
        assert r.raw == _SLOT.pack(0x85, 0, 0, POISON_IMM)
        assert r.res.insn_value == struct.unpack("<i", insn[4:8])[0]


# -- explaining poisoned instructions ------------------------------------------------------------------
def _poisoned_program():
    tb = builder()
    ti = tb.add_int("int", 4, signed=True)
    tb.add_struct("s", 4, [("a", ti, 0)])
    prog = bytearray(mov(0) + ldx(4) + mov(0) + _SLOT.pack(0x95, 0, 0, 0))
    res = CoreRelocator(LOCAL, TargetSet.from_btf(tb.to_btf())).relocate(
        prog, [CoreRelo(8, S, 0, K.FIELD_BYTE_OFFSET, "0:1"), CoreRelo(16, S, 0, K.FIELD_BYTE_OFFSET, "0:0")],
        prog_name="p")
    return prog, res


def test_find_poisoned():
    prog, res = _poisoned_program()
    assert [r.poisoned for r in res] == [True, False]
    assert find_poisoned(res, 1) is res[0]
    assert find_poisoned(res, 2) is None and find_poisoned(res, 0) is None
    assert find_poisoned(res, 11, offset=10) is res[0]  # a subprogram appended at instruction 10
    moved = [r.shifted(10) for r in res]
    assert find_poisoned(moved, 11) is moved[0] and moved[0].local == res[0].local and res[0].insn_index == 1


def test_explain_verifier_log_rewrites_the_two_lines():
    _, res = _poisoned_program()
    log = ("func#0 @0\n0: R1=ctx() R10=fp0\n0: (b7) r0 = 0                        ; R0_w=0\n"
           "1: (85) call unknown#195896080\ninvalid func unknown#195896080\n"
           "processed 2 insns (limit 1000000) max_states_per_insn 0\n")
    fixed = explain_verifier_log(log, res)
    assert fixed is not None
    assert "1: <invalid CO-RE relocation>\nfailed to resolve CO-RE relocation <byte_off> [2] struct s.b " \
           "(0:1 @ offset 4)\nprocessed 2 insns" in fixed
    assert "unknown#195896080" not in fixed and fixed.startswith("func#0 @0\n")
    assert explain_verifier_log("0: (85) call unknown#195896080\n", res) is None  # not a poisoned relocation
    assert explain_verifier_log("R1 invalid mem access 'scalar'\n", res) is None


def test_spec_texts_match_libbpf_format():
    assert format_spec(parse_spec(LOCAL, S, "0:1", K.FIELD_BYTE_OFFSET)) == "<byte_off> [2] struct s.b (0:1 @ offset 4)"
    assert format_spec(parse_spec(LOCAL, S, "1", K.FIELD_EXISTS)) == "<field_exists> [2] struct s[1] (1 @ offset 8)"
    assert format_spec(parse_spec(LOCAL, S, "0", K.TYPE_SIZE)) == "<type_size> [2] struct s"
    lb = builder()
    u = lb.add_int("unsigned int", 4)
    bf = lb.add_struct("bf", 4, [("a", u, 0, 3), ("b", u, 3, 5)])
    assert format_spec(parse_spec(lb.to_btf(), bf, "0:1", K.FIELD_LSHIFT_U64)) == \
        "<lshift_u64> [2] struct bf.b (0:1 @ offset 0.3)"


# -- target set --------------------------------------------------------------------------------------
def _module(base: BTF, name: str) -> BTF:
    """A module's split BTF on ``base`` with ``struct mod_s { int pad; int a; }``."""
    mb = BTFBuilder(byteorder="little", base=base)
    i = mb.add_int("int", 4, signed=True)
    mb.add_struct("mod_s", 8, [("pad", i, 0), ("a", i, 32)])
    return BTF.from_bytes(mb.encode(), base, name=name)


def test_modules_searched_only_when_vmlinux_has_no_candidate():
    vb = builder()
    vi = vb.add_int("int", 4, signed=True)
    vb.add_struct("s", 8, [("a", vi, 0), ("b", vi, 32)])
    vmlinux = vb.to_btf()
    calls = []

    def modules():
        calls.append(1)
        return [_module(vmlinux, "mymod")]

    targets = TargetSet(vmlinux, modules)
    assert relocate(LOCAL, targets, S, "0:1", K.FIELD_BYTE_OFFSET).value == 4
    assert calls == []  # vmlinux had 's': modules never opened
    lb = builder()
    li = lb.add_int("int", 4, signed=True)
    ms = lb.add_struct("mod_s", 4, [("a", li, 0)])
    r = relocate(lb.to_btf(), targets, ms, "0:0", K.FIELD_BYTE_OFFSET)
    assert r.value == 4 and r.res.target == "mymod [4] struct mod_s" and calls == [1]
    relocate(lb.to_btf(), targets, ms, "0:0", K.FIELD_EXISTS)
    assert calls == [1]  # opened once


def test_unreadable_module_is_skipped_with_a_warning(monkeypatch: pytest.MonkeyPatch):
    vb = builder()
    vb.add_int("int", 4, signed=True)
    vmlinux = vb.to_btf()
    good = _module(vmlinux, "good")

    def fake_module(name: str, **kw):
        if name == "broken":
            raise BTFError("BTF type [5] at offset 40: unknown kind 31")
        return good

    monkeypatch.setattr(BTF, "vmlinux", classmethod(lambda cls, **kw: vmlinux))
    monkeypatch.setattr(BTF, "module_names", staticmethod(lambda: ["broken", "good"]))
    monkeypatch.setattr(BTF, "module", classmethod(lambda cls, name, **kw: fake_module(name)))
    lb = builder()
    li = lb.add_int("int", 4, signed=True)
    ms = lb.add_struct("mod_s", 4, [("a", li, 0)])
    with pytest.warns(CoreTargetWarning, match="skipping BTF of kernel module 'broken'"):
        r = relocate(lb.to_btf(), TargetSet.vmlinux(), ms, "0:0", K.FIELD_BYTE_OFFSET)
    assert r.value == 4


def test_module_failing_while_searched_is_skipped(monkeypatch: pytest.MonkeyPatch):
    vb = builder()
    vb.add_int("int", 4, signed=True)
    vmlinux = vb.to_btf()
    bad = _module(vmlinux, "bad")
    monkeypatch.setattr(bad, "find_all", lambda *a, **k: (_ for _ in ()).throw(BTFError("corrupt record")))
    good = _module(vmlinux, "good")
    lb = builder()
    li = lb.add_int("int", 4, signed=True)
    ms = lb.add_struct("mod_s", 4, [("a", li, 0)])
    with pytest.warns(CoreTargetWarning, match="'bad'"):
        r = relocate(lb.to_btf(), TargetSet(vmlinux, [bad, good]), ms, "0:0", K.FIELD_BYTE_OFFSET)
    assert r.value == 4 and r.res.target.startswith("good ")


def test_target_from_file(tmp_path: Path):
    path = tmp_path / "kernel.btf"
    path.write_bytes(TARGET.raw)
    targets = TargetSet.from_file(path)
    assert targets.modules == []
    r = relocate(LOCAL, targets, S, "0:0", K.FIELD_BYTE_OFFSET)
    assert r.value == 12 and r.res.target == f"{path} [2] struct s"


def test_resolution_str_and_dict():
    r = relocate(LOCAL, TARGET, S, "0:1", K.FIELD_BYTE_OFFSET)
    assert str(r.res) == "insn #0: byte_off struct s.b in vmlinux [2] struct s: 4 -> 8"
    d = r.res.as_dict()
    assert d["kind"] == "byte_off" and d["target_spec"] == "<byte_off> [2] struct s.b (0:1 @ offset 8)"
    assert (d["orig_val"], d["new_val"], d["poisoned"], d["insn"]) == (4, 8, False, 0)
    tb = builder()
    tb.add_int("int", 4, signed=True)
    r = relocate(LOCAL, tb.to_btf(), S, "0:1", K.FIELD_BYTE_OFFSET)
    assert str(r.res) == "insn #0: byte_off struct s.b: poisoned (no struct s in the target BTF)"
