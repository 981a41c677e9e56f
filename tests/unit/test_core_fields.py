"""CO-RE field relocations against hand-built target BTFs: moved, renamed, removed, resized and
retyped fields, nesting, anonymous members, arrays, bitfields, flavours and ambiguity -- with the
values libbpf's rules give (relo_core.c), worked out by hand in each test."""

from __future__ import annotations

import pytest

from corebpf.btf import BTF
from corebpf.btf.core import CoreRelo, CoreRelocationError, CoreRelocator, TargetSet
from test_core_support import K, builder, ldx, local_value, mov, relocate, stx


# -- local types: what a BPF program was compiled against --------------------------------------------
def _local() -> tuple[BTF, dict[str, int]]:
    b = builder()
    ids: dict[str, int] = {}
    ids["int"] = i = b.add_int("int", 4, signed=True)
    ids["uint"] = u = b.add_int("unsigned int", 4)
    ids["long"] = b.add_int("long", 8, signed=True)
    ids["inner"] = inner = b.add_struct("inner", 8, [("x", i, 0), ("y", i, 32)])
    arr4 = b.add_array(i, i, 4)
    ptr = b.add_ptr(inner)
    m23 = b.add_array(b.add_array(i, i, 3), i, 2)  # int m[2][3]
    # struct s { int a; int b; struct inner in; int arr[4]; unsigned int u; struct inner *p; int m[2][3]; }
    ids["s"] = b.add_struct("s", 64, [("a", i, 0), ("b", i, 32), ("in", inner, 64), ("arr", arr4, 128),
                                      ("u", u, 256), ("p", ptr, 320), ("m", m23, 384)])
    return b.to_btf(), ids


LOCAL, L = _local()


def _target_moved() -> BTF:
    """Every field moved: struct s { long pad; int b; int a; int arr[8]; struct inner in;
    unsigned long u; struct inner *p; int m[2][3]; } with inner { int pad; int y; int x; }."""
    b = builder()
    i = b.add_int("int", 4, signed=True)
    lng = b.add_int("long", 8, signed=True)
    ulong = b.add_int("unsigned long", 8)
    inner = b.add_struct("inner", 12, [("pad", i, 0), ("y", i, 32), ("x", i, 64)])
    arr8 = b.add_array(i, i, 8)
    ptr = b.add_ptr(inner)
    m23 = b.add_array(b.add_array(i, i, 3), i, 2)
    b.add_struct("s", 112, [("pad", lng, 0), ("b", i, 64), ("a", i, 96), ("arr", arr8, 128), ("in", inner, 384),
                            ("u", ulong, 512), ("p", ptr, 576), ("m", m23, 640)])
    return b.to_btf()


MOVED = _target_moved()


@pytest.mark.parametrize("access, local_off, target_off", [
    ("0:0", 0, 12),          # s.a
    ("0:1", 4, 8),           # s.b
    ("0:2", 8, 48),          # s.in
    ("0:2:0", 8, 56),        # s.in.x: nested struct, member moved inside it too
    ("0:2:1", 12, 52),       # s.in.y
    ("0:3", 16, 16),         # s.arr (the array itself)
    ("0:3:2", 24, 24),       # s.arr[2]
    ("0:6:1:2", 68, 100),    # s.m[1][2]: 2-D array, (1*3+2)*4 from the array start
    ("1:1", 68, 120),        # s[1].b: root indexed like an array, by the root's size
])
def test_field_offsets_follow_moved_fields(access: str, local_off: int, target_off: int):
    assert local_value(LOCAL, L["s"], access, K.FIELD_BYTE_OFFSET) == local_off
    r = relocate(LOCAL, MOVED, L["s"], access, K.FIELD_BYTE_OFFSET)
    assert not r.poisoned and r.value == target_off
    assert r.insn.imm == target_off
    assert r.res.target == "vmlinux [9] struct s"


@pytest.mark.parametrize("access, local_size, target_size", [
    ("0:0", 4, 4), ("0:2", 8, 12), ("0:3", 16, 32), ("0:3:1", 4, 4), ("0:4", 4, 8), ("0:6", 24, 24), ("0:6:1", 12, 12),
])
def test_field_sizes(access: str, local_size: int, target_size: int):
    assert local_value(LOCAL, L["s"], access, K.FIELD_BYTE_SIZE) == local_size
    assert relocate(LOCAL, MOVED, L["s"], access, K.FIELD_BYTE_SIZE).value == target_size


def test_ldx_offset_patched_in_place():
    r = relocate(LOCAL, MOVED, L["s"], "0:1", K.FIELD_BYTE_OFFSET, ldx(4, 4))
    assert (r.insn.opcode, r.insn.off, r.insn.dst, r.insn.src) == (0x61, 8, 0, 1)
    r = relocate(LOCAL, MOVED, L["s"], "0:1", K.FIELD_BYTE_OFFSET, stx(4, 4))
    assert (r.insn.opcode, r.insn.off) == (0x63, 8)


def test_unsigned_field_widened_changes_load_size():
    # unsigned int -> unsigned long: zero extension keeps the value, libbpf widens the load to DW
    r = relocate(LOCAL, MOVED, L["s"], "0:4", K.FIELD_BYTE_OFFSET, ldx(32, 4))
    assert not r.poisoned and (r.insn.opcode, r.insn.off) == (0x79, 64)


def test_signed_field_resized_poisons_the_load():
    b = builder()
    lng = b.add_int("long", 8, signed=True)
    b.add_struct("s", 16, [("a", lng, 0), ("b", lng, 64)])
    target = b.to_btf()
    r = relocate(LOCAL, target, L["s"], "0:1", K.FIELD_BYTE_OFFSET, ldx(4, 4))
    assert r.poisoned and r.insn.opcode == 0x85 and r.insn.imm == 0xBAD2310
    assert "field size changed from 4 to 8 bytes" in r.res.reason
    # the same relocation on an ALU instruction (e.g. computing an address) is fine
    r = relocate(LOCAL, target, L["s"], "0:1", K.FIELD_BYTE_OFFSET, mov(4))
    assert not r.poisoned and r.insn.imm == 8


def test_load_of_unexpected_width_is_refused():
    b = builder()
    ulong = b.add_int("unsigned long", 8)
    b.add_struct("s", 64, [("u", ulong, 0)])
    with pytest.raises(CoreRelocationError, match="unexpected memory access size: got 2, expected 4"):
        relocate(LOCAL, b.to_btf(), L["s"], "0:4", K.FIELD_BYTE_OFFSET, ldx(32, 2))


def test_offset_that_does_not_fit_ldx_is_an_error():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    b.add_struct("s", 40000, [("b", i, 8 * 36000)])
    with pytest.raises(CoreRelocationError, match="does not fit in 16 bits"):
        relocate(LOCAL, b.to_btf(), L["s"], "0:1", K.FIELD_BYTE_OFFSET, ldx(4, 4))
    # an ALU immediate takes it
    assert relocate(LOCAL, b.to_btf(), L["s"], "0:1", K.FIELD_BYTE_OFFSET).value == 36000


# -- missing fields: poisoned, and field-exists gives 0 ------------------------------------------------
def _target_without_b() -> BTF:
    b = builder()
    i = b.add_int("int", 4, signed=True)
    arr2 = b.add_array(i, i, 2)
    b.add_struct("s", 16, [("a", i, 0), ("bb", i, 32), ("arr", arr2, 64)])
    return b.to_btf()


def test_removed_field_is_poisoned_and_exists_is_zero():
    target = _target_without_b()
    r = relocate(LOCAL, target, L["s"], "0:1", K.FIELD_BYTE_OFFSET, ldx(4, 4))
    assert r.poisoned and r.insn.opcode == 0x85 and r.insn.imm == 195896080 and r.insn.src == 0
    assert r.res.target is None and "none of the 1 candidate struct s types" in r.res.reason
    assert r.res.explanation == "failed to resolve CO-RE relocation <byte_off> [9] struct s.b (0:1 @ offset 4)"
    r = relocate(LOCAL, target, L["s"], "0:1", K.FIELD_EXISTS)
    assert not r.poisoned and r.value == 0 and r.insn.imm == 0
    assert relocate(LOCAL, target, L["s"], "0:0", K.FIELD_EXISTS).value == 1


@pytest.mark.parametrize("kind", [K.FIELD_BYTE_SIZE, K.FIELD_SIGNED, K.FIELD_LSHIFT_U64, K.FIELD_RSHIFT_U64])
def test_every_field_kind_poisons_when_missing(kind: K):
    access = "0:1"
    r = relocate(LOCAL, _target_without_b(), L["s"], access, kind)
    assert r.poisoned


def test_array_index_out_of_target_bounds_does_not_match():
    target = _target_without_b()  # int arr[2]
    assert relocate(LOCAL, target, L["s"], "0:3:1", K.FIELD_EXISTS).value == 1
    assert relocate(LOCAL, target, L["s"], "0:3:3", K.FIELD_EXISTS).value == 0
    assert relocate(LOCAL, target, L["s"], "0:3:3", K.FIELD_BYTE_OFFSET).poisoned


def test_flexible_array_has_no_bound():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    flex = b.add_array(i, i, 0)
    b.add_struct("s", 4, [("a", i, 0), ("arr", flex, 32)])
    r = relocate(LOCAL, b.to_btf(), L["s"], "0:3:3", K.FIELD_BYTE_OFFSET)
    assert r.value == 4 + 12


def test_zero_length_array_not_last_is_bounded():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    zero = b.add_array(i, i, 0)
    b.add_struct("s", 8, [("arr", zero, 0), ("a", i, 0)])
    assert relocate(LOCAL, b.to_btf(), L["s"], "0:3:1", K.FIELD_EXISTS).value == 0


def test_missing_type_is_poisoned_with_reason():
    b = builder()
    b.add_int("int", 4, signed=True)
    r = relocate(LOCAL, b.to_btf(), L["s"], "0:1", K.FIELD_BYTE_OFFSET)
    assert r.poisoned and r.res.reason == "no struct s in the target BTF" and r.res.candidates == 0


# -- anonymous members ------------------------------------------------------------------------------
def test_field_found_through_anonymous_struct_and_union():
    # local: struct t { int a; int b; }; target: struct t { long z; union { int a; long w; }; struct { int q; int b; }; }
    lb = builder()
    i = lb.add_int("int", 4, signed=True)
    t = lb.add_struct("t", 8, [("a", i, 0), ("b", i, 32)])
    local = lb.to_btf()
    b = builder()
    i2 = b.add_int("int", 4, signed=True)
    lng = b.add_int("long", 8, signed=True)
    un = b.add_union("", 8, [("a", i2, 0), ("w", lng, 0)])
    st = b.add_struct("", 8, [("q", i2, 0), ("b", i2, 32)])
    b.add_struct("t", 24, [("z", lng, 0), ("", un, 64), ("", st, 128)])
    target = b.to_btf()
    ra = relocate(local, target, t, "0:0", K.FIELD_BYTE_OFFSET)
    rb = relocate(local, target, t, "0:1", K.FIELD_BYTE_OFFSET)
    assert (ra.value, rb.value) == (8, 20)
    assert rb.res.target_spec == "<byte_off> [5] struct t.b (0:2:1 @ offset 20)"


def test_local_anonymous_member_is_walked_through():
    # local: struct t { struct { int pad; int a; }; }  access 0:0:1 names only 'a'
    lb = builder()
    i = lb.add_int("int", 4, signed=True)
    anon = lb.add_struct("", 8, [("pad", i, 0), ("a", i, 32)])
    t = lb.add_struct("t", 8, [("", anon, 0)])
    local = lb.to_btf()
    b = builder()
    i2 = b.add_int("int", 4, signed=True)
    b.add_struct("t", 8, [("a", i2, 0), ("pad", i2, 32)])
    r = relocate(local, b.to_btf(), t, "0:0:1", K.FIELD_BYTE_OFFSET)
    assert (r.res.orig_val, r.value) == (4, 0)
    assert r.res.spec == "struct t.a" and r.res.local == "<byte_off> [3] struct t.a (0:0:1 @ offset 4)"


# -- retyped fields ---------------------------------------------------------------------------------
def test_incompatible_field_type_does_not_match():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    inner = b.add_struct("inner", 8, [("x", i, 0), ("y", i, 32)])
    b.add_struct("s", 16, [("a", inner, 0)])  # int a -> struct inner a
    target = b.to_btf()
    assert relocate(LOCAL, target, L["s"], "0:0", K.FIELD_EXISTS).value == 0
    # a struct may stand for any struct or union, though
    b2 = builder()
    i2 = b2.add_int("int", 4, signed=True)
    un = b2.add_union("other", 4, [("x", i2, 0)])
    b2.add_struct("s", 16, [("in", un, 32)])
    assert relocate(LOCAL, b2.to_btf(), L["s"], "0:2", K.FIELD_BYTE_OFFSET).value == 4


def test_pointer_fields_match_any_pointer_and_ints_any_int():
    b = builder()
    ch = b.add_int("char", 1, char=True)
    vp = b.add_ptr(0)
    b.add_struct("s", 16, [("p", vp, 0), ("a", ch, 64)])
    target = b.to_btf()
    assert relocate(LOCAL, target, L["s"], "0:5", K.FIELD_BYTE_OFFSET).value == 0
    assert relocate(LOCAL, target, L["s"], "0:0", K.FIELD_BYTE_SIZE).value == 1


def test_typedefs_and_modifiers_are_skipped():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    td = b.add_typedef("s32", b.add_const(b.add_volatile(i)))
    st = b.add_struct("s", 8, [("b", td, 32), ("a", i, 0)])
    b.add_typedef("s_t", st)
    target = b.to_btf()
    assert relocate(LOCAL, target, L["s"], "0:1", K.FIELD_BYTE_OFFSET).value == 4
    assert relocate(LOCAL, target, L["s"], "0:1", K.FIELD_SIGNED).value == 1
    # a typedef'd local root is relocated through its typedef name
    lb = builder()
    li = lb.add_int("int", 4, signed=True)
    ls = lb.add_struct("s", 8, [("a", li, 0), ("b", li, 32)])
    ltd = lb.add_typedef("s_t", ls)
    r = relocate(lb.to_btf(), target, ltd, "0:1", K.FIELD_BYTE_OFFSET)
    assert r.value == 4 and r.res.target.endswith("typedef s_t")


def test_enum_fields_need_the_same_name_unless_anonymous():
    lb = builder()
    e = lb.add_enum("color", [("RED", 0)])
    anon = lb.add_enum("", [("X", 0)])
    st = lb.add_struct("h", 8, [("c", e, 0), ("d", anon, 32)])
    local = lb.to_btf()
    b = builder()
    shade = b.add_enum("shade", [("RED", 0)])
    color = b.add_enum("color___v2", [("RED", 0)], size=8)
    b.add_struct("h", 16, [("c", shade, 0), ("d", color, 64)])
    target = b.to_btf()
    assert relocate(local, target, st, "0:0", K.FIELD_EXISTS).value == 0   # enum color vs enum shade
    assert relocate(local, target, st, "0:1", K.FIELD_BYTE_OFFSET).value == 8  # anonymous matches any enum
    assert relocate(local, target, st, "0:1", K.FIELD_BYTE_SIZE).value == 8


def test_legacy_int_bitfield_types_are_incompatible():
    b = builder()
    odd = b.add_int("int", 4, signed=True, bits=8, offset=8)
    b.add_struct("s", 8, [("a", odd, 0)])
    assert relocate(LOCAL, b.to_btf(), L["s"], "0:0", K.FIELD_EXISTS).value == 0


# -- signedness ----------------------------------------------------------------------------------------
def test_field_signed_follows_the_target_type():
    b = builder()
    u = b.add_int("unsigned int", 4)
    b.add_struct("s", 8, [("a", u, 0)])
    assert local_value(LOCAL, L["s"], "0:0", K.FIELD_SIGNED) == 1
    assert relocate(LOCAL, b.to_btf(), L["s"], "0:0", K.FIELD_SIGNED).value == 0
    # enums: signed when the kind_flag says so
    lb = builder()
    e = lb.add_enum("e", [("A", 1)])
    h = lb.add_struct("h", 4, [("e", e, 0)])
    local = lb.to_btf()
    tb = builder()
    se = tb.add_enum("e", [("NEG", -1), ("A", 1)], signed=True)
    tb.add_struct("h", 4, [("e", se, 0)])
    assert local_value(local, h, "0:0", K.FIELD_SIGNED) == 0
    assert relocate(local, tb.to_btf(), h, "0:0", K.FIELD_SIGNED).value == 1


def test_signed_and_shifts_refused_on_array_elements():
    with pytest.raises(CoreRelocationError, match="can't be applied to an array access"):
        relocate(LOCAL, MOVED, L["s"], "0:3:1", K.FIELD_SIGNED, mov(1))


# -- bitfields -----------------------------------------------------------------------------------------
def _bf_local() -> tuple[BTF, int]:
    b = builder()
    i = b.add_int("int", 4, signed=True)
    u = b.add_int("unsigned int", 4)
    # struct bf { unsigned a:3; int b:5; unsigned c:10; };
    bf = b.add_struct("bf", 4, [("a", u, 0, 3), ("b", i, 3, 5), ("c", u, 8, 10)])
    return b.to_btf(), bf


BF_LOCAL, BF = _bf_local()


def test_local_bitfield_values():
    # b: bits 3..7 of the first u32: offset 0, size 4, lshift 64-8=56, rshift 64-5=59, signed
    assert [local_value(BF_LOCAL, BF, "0:1", k) for k in (K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE,
            K.FIELD_LSHIFT_U64, K.FIELD_RSHIFT_U64, K.FIELD_SIGNED)] == [0, 4, 56, 59, 1]


def test_bitfields_moved():
    # target: struct bf { long x; ... b:5 at bit 70; a:3 at 96; c:10 at bit 28 (straddles a u32) }
    b = builder()
    i = b.add_int("int", 4, signed=True)
    u = b.add_int("unsigned int", 4)
    lng = b.add_int("long", 8, signed=True)
    b.add_struct("bf", 16, [("x", lng, 0, 0), ("b", i, 70, 5), ("a", u, 96, 3), ("c", u, 28, 10)])
    target = b.to_btf()

    def vals(access: str) -> list[int]:
        return [relocate(BF_LOCAL, target, BF, access, k).value for k in (
            K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_LSHIFT_U64, K.FIELD_RSHIFT_U64, K.FIELD_SIGNED)]

    # b at bit 70: u32 at byte 8 holds bits 64..95: 70+5-64 = 11 -> lshift 53
    assert vals("0:1") == [8, 4, 53, 59, 1]
    # a at bit 96: byte 12, 96+3-96 = 3 -> lshift 61, rshift 61, unsigned
    assert vals("0:0") == [12, 4, 61, 61, 0]
    # c at bits 28..37 crosses the first u32: a u64 at byte 0 holds it: lshift 64-38 = 26
    assert vals("0:2") == [0, 8, 26, 54, 0]


def test_bitfield_no_64bit_load_can_read_is_an_error():
    b = builder()
    u = b.add_int("unsigned int", 4)
    b.add_struct("bf", 16, [("c", u, 60, 10)])  # bits 60..69 straddle two u64s
    with pytest.raises(CoreRelocationError, match="can't be satisfied for bitfield"):
        relocate(BF_LOCAL, b.to_btf(), BF, "0:2", K.FIELD_BYTE_OFFSET)


def test_bitfield_offset_is_not_checked_against_the_instruction():
    # compilers may pick another load for a bitfield: libbpf does not validate its offset/size/lshift
    b = builder()
    u = b.add_int("unsigned int", 4)
    b.add_struct("bf", 8, [("c", u, 40, 10)])
    r = relocate(BF_LOCAL, b.to_btf(), BF, "0:2", K.FIELD_BYTE_OFFSET, mov(99))
    assert r.value == 4
    # but the right shift and signedness are
    with pytest.raises(CoreRelocationError, match="unexpected ALU/ALU64 value: got 99"):
        relocate(BF_LOCAL, b.to_btf(), BF, "0:2", K.FIELD_RSHIFT_U64, mov(99))


def test_bitfield_becoming_a_plain_field():
    # a u16 at byte 2: lshift 64 - (16 + 16 - 16) = 48, rshift 64 - 16 = 48
    b = builder()
    u = b.add_int("unsigned short", 2)
    b.add_struct("bf", 8, [("c", u, 16)])
    target = b.to_btf()
    assert [relocate(BF_LOCAL, target, BF, "0:2", k).value for k in (
        K.FIELD_BYTE_OFFSET, K.FIELD_BYTE_SIZE, K.FIELD_LSHIFT_U64, K.FIELD_RSHIFT_U64)] == [2, 2, 48, 48]


# -- flavours, several candidates, ambiguity ---------------------------------------------------------
def _flavoured(*structs: tuple[str, list[tuple[str, int]]]) -> BTF:
    b = builder()
    i = b.add_int("int", 4, signed=True)
    lng = b.add_int("long", 8, signed=True)
    types = {"int": i, "long": lng}
    for name, fields in structs:
        off, members = 0, []
        for fname, tname in fields:
            members.append((fname, types[tname], off * 8))
            off += 4 if tname == "int" else 8
        b.add_struct(name, max(off, 4), members)
    return b.to_btf()


def test_local_flavour_matches_plain_target_name():
    lb = builder()
    i = lb.add_int("int", 4, signed=True)
    v1 = lb.add_struct("s___v1", 8, [("a", i, 0), ("b", i, 32)])
    target = _flavoured(("s", [("b", "int"), ("a", "int")]))
    r = relocate(lb.to_btf(), target, v1, "0:1", K.FIELD_BYTE_OFFSET)
    assert r.value == 0 and r.res.spec == "struct s___v1.b" and r.res.target == "vmlinux [3] struct s"


def test_target_flavours_are_candidates_too():
    target = _flavoured(("s___2", [("pad", "long"), ("b", "int")]))
    assert relocate(LOCAL, target, L["s"], "0:1", K.FIELD_BYTE_OFFSET).value == 8


def test_identical_candidates_are_not_ambiguous():
    target = _flavoured(("s", [("a", "int"), ("b", "int")]), ("s___2", [("a", "int"), ("b", "int")]))
    r = relocate(LOCAL, target, L["s"], "0:1", K.FIELD_BYTE_OFFSET)
    assert r.value == 4 and r.res.candidates == 2 and r.res.target == "vmlinux [3] struct s"


def test_candidates_disagreeing_on_offset_are_an_error():
    target = _flavoured(("s", [("a", "int"), ("b", "int")]), ("s___2", [("b", "int"), ("a", "int")]))
    with pytest.raises(CoreRelocationError, match="field offset ambiguity") as info:
        relocate(LOCAL, target, L["s"], "0:1", K.FIELD_BYTE_OFFSET)
    assert (info.value.relo_index, info.value.insn_index) == (0, 0)
    assert info.value.spec == "<byte_off> [9] struct s.b (0:1 @ offset 4)"


def test_candidates_disagreeing_on_value_are_an_error():
    target = _flavoured(("s", [("a", "int"), ("b", "int")]), ("s___2", [("a", "int"), ("b", "long")]))
    assert relocate(LOCAL, target, L["s"], "0:1", K.FIELD_BYTE_OFFSET).value == 4
    with pytest.raises(CoreRelocationError, match="relocation decision ambiguity"):
        relocate(LOCAL, target, L["s"], "0:1", K.FIELD_BYTE_SIZE)


def test_a_candidate_lacking_the_field_is_just_skipped():
    target = _flavoured(("s___old", [("a", "int")]), ("s", [("a", "int"), ("pad", "int"), ("b", "int")]))
    r = relocate(LOCAL, target, L["s"], "0:1", K.FIELD_BYTE_OFFSET)
    assert r.value == 8 and r.res.target == "vmlinux [4] struct s"


def test_candidates_pruned_for_later_relocations_of_the_same_type():
    # libbpf keeps, per local type, only the candidates that matched: after s.b matched only 's',
    # a field that only 's___old' has is not found any more
    target = _flavoured(("s___old", [("a", "int"), ("u", "int")]), ("s", [("a", "int"), ("pad", "int"), ("b", "int")]))
    core = CoreRelocator(LOCAL, TargetSet.from_btf(target))
    assert relocate(LOCAL, target, L["s"], "0:1", K.FIELD_EXISTS, relocator=core).value == 1
    assert relocate(LOCAL, target, L["s"], "0:4", K.FIELD_EXISTS, relocator=core).value == 0
    # a fresh relocator (another object) starts again from every candidate
    assert relocate(LOCAL, target, L["s"], "0:4", K.FIELD_EXISTS).value == 1


def test_union_and_struct_candidates_are_different_kinds():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    b.add_union("s", 4, [("a", i, 0), ("b", i, 0)])
    r = relocate(LOCAL, b.to_btf(), L["s"], "0:1", K.FIELD_BYTE_OFFSET)
    assert r.poisoned and r.res.candidates == 0


# -- program-level behaviour ---------------------------------------------------------------------------
def test_program_relocation_with_section_offset_and_foreign_records():
    prog = bytearray(mov(0) + ldx(4, 4) + mov(1))
    relos = [CoreRelo(100 + 8, L["s"], 0, K.FIELD_BYTE_OFFSET, "0:1"),
             CoreRelo(100 + 24, L["s"], 0, K.FIELD_BYTE_OFFSET, "0:0"),   # another program's instruction
             CoreRelo(100 + 16, L["s"], 0, K.FIELD_EXISTS, "0:0")]
    res = CoreRelocator(LOCAL, TargetSet.from_btf(MOVED)).relocate(prog, relos, prog_name="p", section_offset=100)
    assert [(r.index, r.insn_index, r.new_val) for r in res] == [(0, 1, 8), (2, 2, 1)]
    assert prog[8:16] == ldx(8, 4) and prog[16:24] == mov(1)


def test_instruction_offset_not_multiple_of_8():
    with pytest.raises(CoreRelocationError, match="not a multiple of 8"):
        CoreRelocator(LOCAL, TargetSet.from_btf(MOVED)).relocate(bytearray(mov(0)), [
            CoreRelo(4, L["s"], 0, K.FIELD_BYTE_OFFSET, "0:1")])


def test_access_string_from_local_btf_strings():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    s = b.add_struct("s", 8, [("a", i, 0), ("b", i, 32)])
    off = b.add_string("0:1")
    local = b.to_btf()
    prog = bytearray(mov(4))
    res = CoreRelocator(local, TargetSet.from_btf(MOVED)).relocate(prog, [CoreRelo(0, s, off, K.FIELD_BYTE_OFFSET)])
    assert res[0].access == "0:1" and res[0].new_val == 8


@pytest.mark.parametrize("access", ["", ":0", "0:", "0::1", "a", "0:-1", "0:x", "0:9", "0:3:4", "0:0:0"])
def test_malformed_access_strings(access: str):
    with pytest.raises(CoreRelocationError, match="parsing \\[9\\] struct s \\+"):
        relocate(LOCAL, MOVED, L["s"], access, K.FIELD_BYTE_OFFSET, mov(0))


def test_anonymous_local_type_is_refused():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    anon = b.add_struct("", 4, [("a", i, 0)])
    with pytest.raises(CoreRelocationError, match="doesn't support anonymous types"):
        relocate(b.to_btf(), MOVED, anon, "0:0", K.FIELD_BYTE_OFFSET, mov(0))


def test_unknown_relocation_kind():
    with pytest.raises(CoreRelocationError, match="unrecognized CO-RE relocation kind 13"):
        CoreRelocator(LOCAL, TargetSet.from_btf(MOVED)).relocate(bytearray(mov(0)), [
            CoreRelo(0, L["s"], 0, 13, "0:1")])  # type: ignore[arg-type]
