"""CO-RE type-based relocations (exists, size, local/target id, TYPE_MATCHES) and enum value
relocations against hand-built target BTFs, with libbpf's compatibility and matching rules."""

from __future__ import annotations

import pytest

from corebpf.btf import BTF
from corebpf.btf.core import CoreRelocationError
from test_core_support import K, builder, ld64, local_value, mov, relocate


def _local() -> tuple[BTF, dict[str, int]]:
    b = builder()
    ids = {}
    ids["int"] = i = b.add_int("int", 4, signed=True)
    ids["uint"] = u = b.add_int("unsigned int", 4)
    ids["s"] = s = b.add_struct("s", 8, [("a", i, 0), ("b", u, 32)])
    ids["u"] = b.add_union("u", 4, [("a", i, 0)])
    ids["e"] = b.add_enum("e", [("ONE", 1), ("TWO", 2), ("THREE", 3)])
    ids["s_t"] = b.add_typedef("s_t", s)
    ids["sp_t"] = b.add_typedef("sp_t", b.add_ptr(s))
    ids["arr_t"] = b.add_typedef("arr_t", b.add_array(i, i, 4))
    proto = b.add_func_proto(i, [("x", i), ("p", b.add_ptr(s))])
    ids["fn_t"] = b.add_typedef("fn_t", b.add_ptr(proto))
    ids["missing"] = b.add_struct("not_in_target", 4, [("a", i, 0)])
    ids["fwd"] = b.add_fwd("opaque")
    return b.to_btf(), ids


LOCAL, L = _local()


def _target() -> BTF:
    b = builder()
    i = b.add_int("int", 4, signed=True)
    lng = b.add_int("long", 8, signed=True)
    s = b.add_struct("s", 24, [("x", lng, 0), ("b", i, 64), ("a", i, 96)])   # id 3
    b.add_union("u", 8, [("a", i, 0), ("l", lng, 0)])                          # id 4
    b.add_enum("e", [("THREE", 30), ("ONE", 10)], size=8)                       # id 5 (ENUM64)
    b.add_typedef("s_t", s)                                                    # id 6
    b.add_typedef("sp_t", b.add_ptr(s))                                        # id 8
    b.add_typedef("arr_t", b.add_array(lng, i, 2))                             # id 10
    proto = b.add_func_proto(lng, [("y", lng), ("q", b.add_ptr(s))])
    b.add_typedef("fn_t", b.add_ptr(proto))                                    # id 14
    b.add_struct("opaque", 16, [])                                             # id 15
    return b.to_btf()


TARGET = _target()


# -- TYPE_EXISTS / TYPE_SIZE / TYPE_ID_* ---------------------------------------------------------------
@pytest.mark.parametrize("name, exists, size", [
    ("s", 1, 24), ("u", 1, 8), ("e", 1, 8), ("s_t", 1, 24), ("sp_t", 1, 8), ("arr_t", 1, 16), ("fn_t", 1, 8),
    ("missing", 0, 0),
])
def test_type_exists_and_size(name: str, exists: int, size: int):
    assert relocate(LOCAL, TARGET, L[name], "0", K.TYPE_EXISTS).value == exists
    assert relocate(LOCAL, TARGET, L[name], "0", K.TYPE_SIZE).value == size


def test_local_type_values():
    assert local_value(LOCAL, L["s"], "0", K.TYPE_SIZE) == 8
    assert local_value(LOCAL, L["arr_t"], "0", K.TYPE_SIZE) == 16
    assert local_value(LOCAL, L["missing"], "0", K.TYPE_EXISTS) == 1


def test_fwd_is_not_a_struct_candidate():
    # candidates must have the same kind: a local fwd 'opaque' does not see the target struct
    assert relocate(LOCAL, TARGET, L["fwd"], "0", K.TYPE_EXISTS).value == 0


def test_type_ids():
    r = relocate(LOCAL, TARGET, L["s"], "0", K.TYPE_ID_TARGET, mov(12345))  # target ids are never checked
    assert r.value == 3 and r.insn.imm == 3
    r = relocate(LOCAL, TARGET, L["s"], "0", K.TYPE_ID_LOCAL, mov(777))
    assert r.value == L["s"] and r.insn.imm == L["s"] and r.res.target is None
    assert relocate(LOCAL, TARGET, L["missing"], "0", K.TYPE_ID_TARGET).value == 0
    assert relocate(LOCAL, TARGET, L["s"], "0", K.TYPE_ID_TARGET, ld64(0)).insn.imm == 3


def test_type_ids_of_several_candidates_are_ambiguous():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    b.add_struct("s", 4, [("a", i, 0)])
    b.add_struct("s___2", 4, [("a", i, 0)])
    target = b.to_btf()
    assert relocate(LOCAL, target, L["s"], "0", K.TYPE_EXISTS).value == 1
    with pytest.raises(CoreRelocationError, match="relocation decision ambiguity"):
        relocate(LOCAL, target, L["s"], "0", K.TYPE_ID_TARGET)


def test_type_size_of_disagreeing_candidates_is_ambiguous():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    b.add_struct("s", 4, [("a", i, 0)])
    b.add_struct("s___2", 8, [("a", i, 0)])
    with pytest.raises(CoreRelocationError, match="ambiguity"):
        relocate(LOCAL, b.to_btf(), L["s"], "0", K.TYPE_SIZE)


@pytest.mark.parametrize("local_kind", ["ptr_to_union", "proto_arity", "int_bits"])
def test_type_compat_negative(local_kind: str):
    b = builder()
    i = b.add_int("int", 4, signed=True)
    if local_kind == "ptr_to_union":
        b.add_typedef("sp_t", b.add_ptr(b.add_union("s", 4, [("a", i, 0)])))
        name = "sp_t"
    elif local_kind == "proto_arity":
        b.add_typedef("fn_t", b.add_ptr(b.add_func_proto(i, [("x", i)])))
        name = "fn_t"
    else:
        b.add_typedef("arr_t", b.add_array(b.add_int("int", 4, signed=True, bits=4, offset=4), i, 4))
        name = "arr_t"
    assert relocate(LOCAL, b.to_btf(), L[name], "0", K.TYPE_EXISTS).value == 0


def test_type_relocation_needs_access_zero():
    with pytest.raises(CoreRelocationError, match="must be \"0\""):
        relocate(LOCAL, TARGET, L["s"], "0:1", K.TYPE_EXISTS, mov(1))


# -- enum values -------------------------------------------------------------------------------------
def test_enum_value_changed_and_reordered():
    assert local_value(LOCAL, L["e"], "2", K.ENUMVAL_VALUE) == 3
    r = relocate(LOCAL, TARGET, L["e"], "2", K.ENUMVAL_VALUE)
    assert r.value == 30 and r.insn.imm == 30
    assert r.res.spec == "enum e::THREE" and r.res.local == "<enumval_value> [5] enum e::THREE = 3"
    assert r.res.target_spec == "<enumval_value> [5] enum64 e::THREE = 30"
    assert relocate(LOCAL, TARGET, L["e"], "0", K.ENUMVAL_VALUE).value == 10


def test_enum_value_missing():
    assert relocate(LOCAL, TARGET, L["e"], "1", K.ENUMVAL_EXISTS).value == 0
    r = relocate(LOCAL, TARGET, L["e"], "1", K.ENUMVAL_VALUE, ld64(2))
    assert r.poisoned
    raw = r.raw
    assert raw[0] == 0x85 and raw[8] == 0x85  # both slots of the ld_imm64
    assert int.from_bytes(raw[4:8], "little") == 0xBAD2310 == int.from_bytes(raw[12:16], "little")


def test_enumerator_matched_by_essential_name():
    lb = builder()
    e = lb.add_enum("e___mine", [("TWO___mine", 200), ("FOUR", 4)])
    local = lb.to_btf()
    tb = builder()
    tb.add_enum("e", [("ONE", 1), ("TWO", 2)])
    target = tb.to_btf()
    r = relocate(local, target, e, "0", K.ENUMVAL_VALUE)
    assert (r.res.orig_val, r.value) == (200, 2)
    assert relocate(local, target, e, "1", K.ENUMVAL_EXISTS).value == 0


def test_enum64_and_negative_values():
    lb = builder()
    e = lb.add_enum("big", [("NEG", -5), ("HUGE", 0xFFFFFFF0)])
    local = lb.to_btf()
    tb = builder()
    tb.add_enum64("big", [("HUGE", 0x1_0000_0000_0042), ("NEG", -7)], signed=True)
    target = tb.to_btf()
    # a 32-bit enumerator is an s32: libbpf sign-extends it to 64 bits
    assert local_value(local, e, "0", K.ENUMVAL_VALUE) == (1 << 64) - 5
    assert local_value(local, e, "1", K.ENUMVAL_VALUE) == (1 << 64) - 16
    r = relocate(local, target, e, "1", K.ENUMVAL_VALUE)
    assert r.value == 0x1_0000_0000_0042 and r.insn.imm == 0x1_0000_0000_0042
    r = relocate(local, target, e, "0", K.ENUMVAL_VALUE, mov(-5))
    assert r.value == (1 << 64) - 7 and r.insn.imm == -7


def test_enum_relocation_on_a_non_enum_target():
    b = builder()
    i = b.add_int("int", 4, signed=True)
    b.add_typedef("e", i)
    # the candidate search wants an enum kind: an int typedef named e is no candidate
    r = relocate(LOCAL, b.to_btf(), L["e"], "0", K.ENUMVAL_VALUE)
    assert r.poisoned and r.res.candidates == 0


@pytest.mark.parametrize("access", ["3", "0:1", "x"])
def test_bad_enum_access(access: str):
    with pytest.raises(CoreRelocationError, match="parsing"):
        relocate(LOCAL, TARGET, L["e"], access, K.ENUMVAL_VALUE, mov(0))


# -- TYPE_MATCHES ------------------------------------------------------------------------------------
def _match(local_build, target_build, name: str) -> int:
    lb, tb = builder(), builder()
    ids = local_build(lb)
    target_build(tb)
    return relocate(lb.to_btf(), tb.to_btf(), ids[name], "0", K.TYPE_MATCHES).value


def _pair(members_local, members_target, *, kind: str = "struct"):
    def build(members):
        def f(b):
            i = b.add_int("int", 4, signed=True)
            u = b.add_int("unsigned int", 4)
            lng = b.add_int("long", 8, signed=True)
            types = {"int": i, "uint": u, "long": lng}
            mem, off = [], 0
            for name, t in members:
                mem.append((name, types[t], off))
                off += 32 if t != "long" else 64
            add = b.add_struct if kind == "struct" else b.add_union
            return {"t": add("t", max(off // 8, 4), mem)}
        return f
    return _match(build(members_local), build(members_target), "t")


def test_matches_subset_of_members_in_any_order():
    assert _pair([("a", "int"), ("b", "long")], [("b", "long"), ("c", "int"), ("a", "int")]) == 1


@pytest.mark.parametrize("local, target", [
    ([("a", "int"), ("z", "int")], [("a", "int"), ("b", "int")]),   # member missing
    ([("a", "int")], [("a", "uint")]),                              # signedness differs
    ([("a", "int")], [("a", "long")]),                              # size differs
    ([("a", "int"), ("b", "int")], [("a", "int")]),                 # more local members than target ones
])
def test_matches_negative_members(local, target):
    assert _pair(local, target) == 0


def test_matches_needs_the_same_composite_kind():
    def local(b):
        return {"t": b.add_struct("t", 4, [("a", b.add_int("int", 4, signed=True), 0)])}

    def target(b):
        b.add_union("t", 4, [("a", b.add_int("int", 4, signed=True), 0)])
    assert _match(local, target, "t") == 0


def test_matches_arrays_by_length_and_element():
    def local(n):
        def f(b):
            i = b.add_int("int", 4, signed=True)
            return {"t": b.add_struct("t", 4 * n, [("a", b.add_array(i, i, n), 0)])}
        return f
    target = local(4)
    assert _match(local(4), target, "t") == 1
    assert _match(local(3), target, "t") == 0


def test_matches_behind_pointer_only_names_and_kinds():
    def local(b):
        i = b.add_int("int", 4, signed=True)
        inner = b.add_struct("inner", 4, [("different", i, 0)])
        return {"t": b.add_struct("t", 8, [("p", b.add_ptr(inner), 0)])}

    def target_fwd(b):
        b.add_struct("t", 8, [("p", b.add_ptr(b.add_fwd("inner")), 0)])

    def target_union_fwd(b):
        b.add_struct("t", 8, [("p", b.add_ptr(b.add_fwd("inner", union=True)), 0)])

    def target_struct(b):
        i = b.add_int("int", 4, signed=True)
        b.add_struct("t", 8, [("p", b.add_ptr(b.add_struct("inner", 8, [("x", i, 0)])), 0)])

    def target_renamed(b):
        i = b.add_int("int", 4, signed=True)
        b.add_struct("t", 8, [("p", b.add_ptr(b.add_struct("other", 4, [("different", i, 0)])), 0)])

    assert _match(local, target_fwd, "t") == 1
    assert _match(local, target_union_fwd, "t") == 0
    assert _match(local, target_struct, "t") == 1     # not compared member by member behind a pointer
    assert _match(local, target_renamed, "t") == 0    # but names still are


def test_matches_enums_by_variant_names_and_size():
    def local(b):
        return {"e": b.add_enum("e", [("A", 1), ("B", 2)])}

    def target_ok(b):
        b.add_enum("e", [("B", 20), ("A", 10), ("C", 3)])

    def target_missing(b):
        b.add_enum("e", [("A", 1), ("C", 2)])

    def target_enum64(b):
        b.add_enum64("e", [("A", 1), ("B", 2)], size=8)

    def target_enum64_4(b):
        b.add_enum64("e", [("A", 1), ("B", 2)], size=4)

    assert _match(local, target_ok, "e") == 1
    assert _match(local, target_missing, "e") == 0
    assert _match(local, target_enum64, "e") == 0   # size differs
    assert _match(local, target_enum64_4, "e") == 1  # enum and enum64 mix when sizes agree


def test_matches_function_pointers_position_by_position():
    def build(params, ret="int"):
        def f(b):
            i = b.add_int("int", 4, signed=True)
            lng = b.add_int("long", 8, signed=True)
            t = {"int": i, "long": lng}
            proto = b.add_func_proto(t[ret], [(f"p{n}", t[p]) for n, p in enumerate(params)])
            return {"cb_t": b.add_typedef("cb_t", b.add_ptr(proto))}
        return f
    target = build(["int", "long"])
    assert _match(build(["int", "long"]), target, "cb_t") == 1
    assert _match(build(["long", "int"]), target, "cb_t") == 0
    assert _match(build(["int"]), target, "cb_t") == 0
    assert _match(build(["int", "long"], ret="long"), target, "cb_t") == 0


def test_matches_compares_integer_names():
    # names are compared after typedefs are skipped: "unsigned long long" is not "long long unsigned int"
    def build(name):
        def f(b):
            return {"t": b.add_struct("t", 8, [("a", b.add_int(name, 8), 0)])}
        return f
    assert _match(build("long long unsigned int"), build("long long unsigned int"), "t") == 1
    assert _match(build("unsigned long long"), build("long long unsigned int"), "t") == 0


def test_matches_and_exists_differ():
    def local(b):
        return {"t": b.add_struct("t", 4, [("a", b.add_int("int", 4, signed=True), 0)])}

    def target(b):
        b.add_struct("t", 4, [("b", b.add_int("int", 4, signed=True), 0)])
    lb, tb = builder(), builder()
    ids = local(lb)
    target(tb)
    assert relocate(lb.to_btf(), tb.to_btf(), ids["t"], "0", K.TYPE_EXISTS).value == 1
    assert relocate(lb.to_btf(), tb.to_btf(), ids["t"], "0", K.TYPE_MATCHES).value == 0


def test_core_relo_kinds_match_the_kernel_uapi():
    """The CO-RE engine's kind enum (with libbpf's short names) has exactly the UAPI's values."""
    from corebpf._sys._generated import CoreReloKind as UAPIKind
    from corebpf.btf.core_spec import CoreReloKind

    assert {k.name: int(k) for k in CoreReloKind} == {k.name: int(k) for k in UAPIKind}
