"""C dump of small hand-made BTF: order and forward declarations, anonymous nesting, bitfields and
padding, packed structs, function pointers, name conflicts, enums of every size, tags.

Each case checks the exact text (the rules are libbpf's btf_dump.c semantics); when clang is
installed the header is also compiled with ``_Static_assert``s of the BTF's sizes and offsets, and
when bpftool is installed our text is compared with ``bpftool btf dump file X format c``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from corebpf.btf import BTF
from corebpf.btf.builder import BTFBuilder
from corebpf.btf.c_dump import FOOTER, HEADER, CDumper, dump_c, iter_c
from corebpf.btf.c_dump_json import dependencies, iter_json, type_record
from corebpf.btf.c_dump_layout import format_layout, layout
from corebpf.btf.c_dump_table import RawTypes
from corebpf.errors import BTFError

CLANG = shutil.which("clang")
BPFTOOL = shutil.which("bpftool")


def body(blob, types: list | None = None) -> str:
    return dump_c(blob, types, header=False)


def compile_ok(c_text: str, tmp_path: Path, asserts: str = "") -> None:
    """Compile ``c_text`` (plus asserts) for the BPF target; skip when clang is not installed."""
    if CLANG is None:
        pytest.skip("clang is not installed")
    src = tmp_path / "t.c"
    src.write_text(c_text + "\n" + asserts + "\nint corebpf_test_anchor;\n")
    res = subprocess.run([CLANG, "-target", "bpf", "-c", str(src), "-o", str(tmp_path / "t.o")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]


def layout_asserts(blob: bytes) -> str:
    """_Static_asserts of sizeof and offsetof (non-bitfield, named members) of every named struct/union."""
    btf = BTF.from_bytes(blob)
    out = []
    tags = [t.name for t in btf if t.kind.name in ("STRUCT", "UNION", "ENUM", "ENUM64")]
    for t in btf:
        if t.kind.name in ("STRUCT", "UNION") and t.name and tags.count(t.name) == 1:
            word = t.kind.name.lower()
            out.append(f"_Static_assert(sizeof({word} {t.name}) == {t.size}, \"{t.name}\");")
            for m in t.members:
                if m.name and not m.bitfield_size:
                    out.append(f"_Static_assert(__builtin_offsetof({word} {t.name}, {m.name}) == {m.offset}, "
                               f"\"{t.name}.{m.name}\");")
    return "\n".join(out)


def bpftool_c(blob: bytes, tmp_path: Path) -> str:
    if BPFTOOL is None:
        pytest.skip("bpftool is not installed")
    path = tmp_path / "t.btf"
    path.write_bytes(blob)
    res = subprocess.run([BPFTOOL, "btf", "dump", "file", str(path), "format", "c"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


# -- fixtures -----------------------------------------------------------------------------------------
def cycle_btf() -> bytes:
    """struct a { struct b *b; int x; };  struct b { struct a a; struct b *self; };"""
    b = BTFBuilder()
    i = b.add_int("int", 4, signed=True)            # 1
    a = b.next_id                                   # 2
    b.add_struct("a", 16, [("b", a + 2, 0), ("x", i, 64)])
    sb = b.add_struct("b", 24, [("a", a, 0), ("self", a + 2, 128)])  # 3
    assert b.add_ptr(sb) == a + 2                   # 4
    return b.encode()


def anon_btf() -> bytes:
    """struct outer { union { int x; struct { short lo; short hi; }; }; long y; enum { A, B } e; };"""
    b = BTFBuilder()
    i = b.add_int("int", 4, signed=True)
    s = b.add_int("short", 2, signed=True)
    lng = b.add_int("long", 8, signed=True)
    inner = b.add_struct("", 4, [("lo", s, 0), ("hi", s, 16)])
    u = b.add_union("", 4, [("x", i, 0), ("", inner, 0)])
    e = b.add_enum("", [("A", 0), ("B", 1)])
    b.add_struct("outer", 24, [("", u, 0), ("y", lng, 64), ("e", e, 128)])
    b.add_enum("", [("LONELY", 7)])  # referenced by nothing: a top-level anonymous enum
    return b.encode()


def bitfield_btf() -> bytes:
    b = BTFBuilder()
    u32 = b.add_int("unsigned int", 4)
    u8 = b.add_int("unsigned char", 1, char=False)
    u64 = b.add_int("long long unsigned int", 8)
    b.add_int("long int", 8, signed=True)
    # struct bf { u32 a:3; u32 b:5; <gap> u32 c:4 at bit 16; u8 d at byte 4; <hole> u64 e at 8; u8 f; } size 24
    b.add_struct("bf", 24, [("a", u32, 0, 3), ("b", u32, 3, 5), ("c", u32, 16, 4), ("d", u8, 32, 0),
                            ("e", u64, 64, 0), ("f", u8, 128, 0)])
    # packed: a u32 at offset 1, size 5
    b.add_struct("pk", 5, [("tag", u8, 0), ("val", u32, 8)])
    # natural struct embedded at an odd place through an explicit gap
    b.add_struct("gap", 16, [("x", u8, 0), ("y", u8, 96)])
    # over-aligned: size 64 though members need 8 (``__aligned(64)``)
    b.add_struct("big", 64, [("v", u64, 0)])
    return b.encode()


def funcptr_btf() -> bytes:
    b = BTFBuilder()
    i = b.add_int("int", 4, signed=True)
    vp = b.add_ptr(0)                                        # void *
    proto = b.add_func_proto(i, [("ctx", vp), ("n", i)])     # int (void *ctx, int n)
    fp = b.add_ptr(proto)
    noarg = b.add_func_proto(0, [])                          # void (void)
    nfp = b.add_ptr(noarg)
    idx = b.add_int("unsigned int", 4)
    arr = b.add_array(nfp, idx, 4)                           # void (*[4])(void)
    varargs = b.add_func_proto(i, [("fmt", vp)], variadic=True)
    vfp = b.add_ptr(varargs)
    cb_t = b.add_typedef("cb_t", proto)                      # typedef int cb_t(void *, int);
    cbp = b.add_ptr(cb_t)
    ret_fp = b.add_func_proto(fp, [("which", i)])            # int (*(*)(int))(void *, int)
    rfp = b.add_ptr(ret_fp)
    b.add_struct("ops", 64, [("fn", fp, 0), ("hooks", arr, 64), ("log", vfp, 320), ("cb", cbp, 384),
                             ("pick", rfp, 448)])
    b.add_func("my_func", proto, 1)                          # FUNCs are not dumped
    return b.encode()


def misc_btf() -> bytes:
    b = BTFBuilder()
    i = b.add_int("int", 4, signed=True)
    c = b.add_int("char", 1, char=True, signed=True)
    b.add_struct("dup", 4, [("a", i, 0)])
    b.add_struct("dup", 8, [("a", i, 0), ("b", i, 32)])
    b.add_typedef("dup", i)                                   # typedefs live in another namespace
    b.add_enum("small", [("S0", 0), ("S1", 1)], size=1)
    b.add_enum("neg", [("NEG", -5), ("POS", 5)], signed=True)
    b.add_enum64("wide", [("W0", 0), ("WBIG", 1 << 40)])
    b.add_enum64("wide_small", [("WS0", 0), ("WS1", 2)])      # 8 bytes though values fit 32 bits
    b.add_enum("dupval", [("S0", 3)])                         # enumerator names clash too
    f = b.add_float("double", 8)
    tag = b.add_type_tag("user", c)
    tp = b.add_ptr(tag)
    cst = b.add_const(c)
    cp = b.add_ptr(cst)
    cpc = b.add_const(cp)                                     # const char *const
    vol = b.add_volatile(i)
    b.add_struct("misc", 40, [("d", f, 0), ("u", tp, 64), ("s", cpc, 128), ("v", vol, 192)])
    va = b.add_typedef("__builtin_va_list", b.add_ptr(c))
    b.add_typedef("va_list", va)
    b.add_decl_tag("tagged", i)
    b.add_fwd("opaque")
    b.add_fwd("opaque_u", union=True)
    foo = b.add_struct("foo", 4, [("x", i, 0)])
    foo_t = b.add_typedef("foo_t", foo)
    bar_t = b.add_typedef("bar_t", foo_t)
    b.add_struct("user_of_chain", 4, [("f", bar_t, 0)])
    return b.encode()


# -- order and forward declarations -------------------------------------------------------------------
def test_cycle_through_pointer_gets_a_forward_declaration(tmp_path: Path) -> None:
    blob = cycle_btf()
    text = body(blob)
    assert text == (
        "struct b;\n\n"
        "struct a {\n\tstruct b *b;\n\tint x;\n};\n\n"
        "struct b {\n\tstruct a a;\n\tstruct b *self;\n};\n\n"
    )
    compile_ok(text, tmp_path, layout_asserts(blob))


def test_full_dump_has_bpftools_header_and_footer() -> None:
    text = dump_c(cycle_btf())
    assert text.startswith(HEADER) and text.endswith(FOOTER)
    assert "#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)" in text
    assert text.rstrip().endswith("#endif /* __VMLINUX_H__ */")
    assert "".join(iter_c(cycle_btf())) == text


def test_selected_types_bring_their_dependencies(tmp_path: Path) -> None:
    blob = cycle_btf()
    assert body(blob, ["b"]) == body(blob)  # b embeds a, which points back to b
    only_a = body(blob, ["a"])
    assert only_a == "struct b;\n\nstruct a {\n\tstruct b *b;\n\tint x;\n};\n\n"
    compile_ok(only_a, tmp_path)
    with pytest.raises(KeyError, match="nope"):
        body(blob, ["nope"])
    with pytest.raises(BTFError, match="out of range"):
        body(blob, [999])


# -- anonymous types ----------------------------------------------------------------------------------
def test_anonymous_types_are_inlined_and_lonely_enums_are_top_level(tmp_path: Path) -> None:
    blob = anon_btf()
    text = body(blob)
    assert text == (
        "struct outer {\n"
        "\tunion {\n"
        "\t\tint x;\n"
        "\t\tstruct {\n"
        "\t\t\tshort lo;\n"
        "\t\t\tshort hi;\n"
        "\t\t};\n"
        "\t};\n"
        "\tlong y;\n"
        "\tenum {\n"
        "\t\tA = 0,\n"
        "\t\tB = 1,\n"
        "\t} e;\n"
        "};\n\n"
        "enum {\n"
        "\tLONELY = 7,\n"
        "};\n\n"
    )
    compile_ok(text, tmp_path, layout_asserts(blob) +
               "\n_Static_assert(__builtin_offsetof(struct outer, hi) == 2, \"hi\");")


# -- layout -------------------------------------------------------------------------------------------
def test_bitfields_padding_packed_and_over_aligned(tmp_path: Path) -> None:
    blob = bitfield_btf()
    text = body(blob)
    # bits 8..16 are skipped by an explicit-width pad inside the bitfield run, then `int: 0`
    # closes the run so d starts at byte 4
    assert ("struct bf {\n\tunsigned int a: 3;\n\tunsigned int b: 5;\n\tshort: 8;\n\tunsigned int c: 4;\n"
            "\tint: 0;\n\tunsigned char d;\n\tlong long unsigned int e;\n\tunsigned char f;\n};") in text
    assert "struct pk {\n\tunsigned char tag;\n\tunsigned int val;\n} __attribute__((packed));" in text
    # the gap before y is explicit; the 64-byte struct is padded to its size
    assert "struct gap {\n\tunsigned char x;\n\tlong: 0;\n\tint: 32;\n\tunsigned char y;\n\tlong: 0;\n};" in text
    big = text[text.index("struct big {"):]
    assert big.count("\tlong: 64;\n") == 7
    compile_ok(text, tmp_path, layout_asserts(blob) + "\n" + "\n".join([
        "struct bf b1 = { .a = 7, .b = 31, .c = 15 };",
        "_Static_assert(sizeof(struct pk) == 5, \"pk\");",
    ]))


def test_layout_holes_and_padding_like_pahole() -> None:
    btf = BTF.from_bytes(bitfield_btf())
    lay = layout(btf.find("bf"))
    assert [m.name for m in lay.members] == ["a", "b", "c", "d", "e", "f"]
    # whole unused bytes are holes, unused bits of a partly used byte are bit holes
    assert [(h.offset, h.size, h.after) for h in lay.holes] == [(1, 1, "b"), (3, 1, "c"), (5, 3, "d")]
    assert [(h.bit_offset, h.bits) for h in lay.bit_holes] == [(20, 4)]
    assert lay.padding == 7 and lay.size == 24 and lay.cachelines == 1
    text = format_layout(lay)
    assert "/* XXX 3 bytes hole, try to pack */" in text
    assert "/* size: 24, cachelines: 1, members: 6 */" in text
    assert "/* padding: 7 */" in text
    d = lay.to_dict()
    assert d["members"][2] == {"name": "c", "type": "unsigned int", "offset": 2, "size": 4, "bit_offset": 16,
                               "bitfield_size": 4}
    assert d["sum_holes"] == 5 and "/* XXX 4 bits hole, try to pack */" in text
    anon = layout(BTF.from_bytes(anon_btf()).find("outer"))
    inner = anon.members[0].inner
    assert inner is not None and inner.kind == "union" and inner.members[1].inner.members[1].offset == 2
    assert anon.members[1].offset == 8 and anon.padding == 4
    assert [(h.offset, h.size, h.after) for h in anon.holes] == [(4, 4, "")]


# -- declarators --------------------------------------------------------------------------------------
def test_function_pointers_and_arrays_of_them(tmp_path: Path) -> None:
    blob = funcptr_btf()
    text = body(blob)
    assert "typedef int cb_t(void *ctx, int n);\n\n" in text
    assert "\tint (*fn)(void *ctx, int n);\n" in text
    assert "\tvoid (*hooks[4])(void);\n" in text
    assert "\tint (*log)(void *fmt, ...);\n" in text
    assert "\tcb_t *cb;\n" in text
    assert "\tint (* (*pick)(int which))(void *ctx, int n);\n" in text
    assert "my_func" not in text
    compile_ok(text, tmp_path, layout_asserts(blob))


# -- names, enums, qualifiers, tags -------------------------------------------------------------------
def test_conflicts_enums_qualifiers_and_tags(tmp_path: Path) -> None:
    blob = misc_btf()
    text = body(blob)
    assert "struct dup {\n\tint a;\n};" in text and "struct dup___2 {\n\tint a;\n\tint b;\n};" in text
    assert "typedef int dup;" in text
    assert "enum small {\n\tS0 = 0,\n\tS1 = 1,\n} __attribute__((mode(byte)));" in text
    assert "\tNEG = -5,\n\tPOS = 5,\n};" in text
    assert "\tWBIG = 1099511627776ULL,\n};" in text
    assert "enum wide_small {\n\tWS0 = 0ULL,\n\tWS1 = 2ULL,\n} __attribute__((mode(word)));" in text
    assert "\tS0___2 = 3," in text
    assert "\tdouble d;\n" in text
    assert '\tchar __attribute__((btf_type_tag("user"))) *u;\n' in text
    assert "\tconst char * const s;\n" in text
    assert "\tvolatile int v;\n" in text
    assert "typedef char *__builtin_va_list" not in text  # the compiler's own
    assert "typedef __builtin_va_list va_list;" in text
    assert "tagged" not in text
    assert "struct opaque;\n\n" in text and "union opaque_u;\n\n" in text
    assert "typedef struct foo foo_t;\n\ntypedef foo_t bar_t;\n\nstruct user_of_chain {\n\tbar_t f;\n};" in text
    compile_ok(text, tmp_path, layout_asserts(blob) + "\n_Static_assert(sizeof(enum small) == 1, \"small\");"
               "\n_Static_assert(sizeof(enum wide_small) == 8, \"ws\");")


def test_va_list_members_keep_the_kernels_size(tmp_path: Path) -> None:
    """x86-64's va_list is 24 bytes (BTF says so); clang -target bpf's is a pointer: pad it."""
    b = BTFBuilder()
    c = b.add_int("char", 1, signed=True, char=True)
    cp = b.add_ptr(b.add_const(c))
    u = b.add_int("unsigned int", 4)
    tag = b.add_struct("__va_list_tag", 24, [("gp_offset", u, 0), ("fp_offset", u, 32),
                                             ("overflow_arg_area", b.add_ptr(0), 64), ("reg_save_area", b.add_ptr(0), 128)])
    arr = b.add_array(tag, u, 1)
    builtin = b.add_typedef("__builtin_va_list", arr)
    va = b.add_typedef("va_list", builtin)
    b.add_struct("warn_args", 32, [("fmt", cp, 0), ("args", va, 64)])
    blob = b.encode()
    text = body(blob)
    assert ("struct warn_args {\n\tconst char *fmt;\n\tunion {\n\t\tva_list args;\n\t\tstruct {\n"
            "\t\t\tlong: 64;\n\t\t\tlong: 64;\n\t\t\tlong: 64;\n\t\t};\n\t};\n};") in text
    compile_ok(text, tmp_path, layout_asserts(blob))


@pytest.mark.parametrize("make", [cycle_btf, anon_btf, bitfield_btf, funcptr_btf, misc_btf])
def test_same_text_as_bpftool(make, tmp_path: Path) -> None:
    blob = make()
    ours = dump_c(blob)
    theirs = bpftool_c(blob, tmp_path)
    # bpftool 7.1 (libbpf 1.1) does not force the size of 1- and 8-byte enums (a layout bug): we do
    theirs_fixed = theirs.replace("enum small {\n\tS0 = 0,\n\tS1 = 1,\n};",
                                  "enum small {\n\tS0 = 0,\n\tS1 = 1,\n} __attribute__((mode(byte)));")
    theirs_fixed = theirs_fixed.replace("\tWS1 = 2ULL,\n};", "\tWS1 = 2ULL,\n} __attribute__((mode(word)));")
    assert ours == theirs_fixed


def test_big_endian_blob_dumps_the_same() -> None:
    little = misc_btf()
    b = BTFBuilder(byteorder="big")
    src = BTF.from_bytes(little)
    for t in src:
        b.copy_type(t)
    big = b.encode()
    assert big[:2] == b"\xeb\x9f"
    assert dump_c(big) == dump_c(little)


# -- the table ----------------------------------------------------------------------------------------
def test_raw_table_matches_the_reader() -> None:
    blob = misc_btf()
    rt = RawTypes(blob)
    btf = BTF.from_bytes(blob)
    assert rt.last_id == btf.last_id and rt.start_id == 1 and len(rt) == len(btf)
    for t in btf:
        assert rt.kinds[t.id] == int(t.kind) and rt.name(t.id) == t.name
    assert rt.ptr_size == 8
    assert rt.ids_named("dup", "nothing") == {"dup": [3, 4, 5], "nothing": []}


@pytest.mark.parametrize("cut", [3, 10, 24, 30, 60])
def test_truncated_blobs_raise_btf_errors(cut: int) -> None:
    blob = misc_btf()
    with pytest.raises(BTFError):
        RawTypes(blob[:cut] if cut > 24 else blob[:cut])
    bad = bytearray(blob)
    bad[24 + 7] = 0x1F  # kind 31 in the first record's info word
    with pytest.raises(BTFError, match="unknown kind"):
        RawTypes(bytes(bad))


def test_split_btf_continues_the_base(tmp_path: Path) -> None:
    base_blob = cycle_btf()
    base = BTF.from_bytes(base_blob)
    b = BTFBuilder(base=base)
    a_id = base.find("a").id
    p = b.add_ptr(a_id)
    b.add_struct("child", 16, [("parent", p, 0), ("val", 1, 64)])
    split = b.to_btf()
    # a whole dump is the base's header followed by the split types (as bpftool does)
    text = dump_c(split, header=False)
    assert text == body(base_blob) + "struct child {\n\tstruct a *parent;\n\tint val;\n};\n\n"
    # selected split types come with what they need from the base (here a declaration)
    assert body(split, ["child"]) == "struct a;\n\nstruct child {\n\tstruct a *parent;\n\tint val;\n};\n\n"
    b.add_struct("embeds", 16, [("a", a_id, 0)])
    text = dump_c(b.to_btf(), ["embeds"], header=False)
    assert text == "struct b;\n\nstruct a {\n\tstruct b *b;\n\tint x;\n};\n\nstruct embeds {\n\tstruct a a;\n};\n\n"
    compile_ok(text, tmp_path)
    rt = RawTypes(split.raw, RawTypes(base_blob))
    assert rt.start_id == base.last_id + 1 and rt.name(rt.last_id) == "child"


# -- JSON ---------------------------------------------------------------------------------------------
def test_json_records_have_bpftools_shape() -> None:
    import json

    rt = RawTypes(misc_btf())
    doc = json.loads("".join(iter_json(rt)))
    types = {t["id"]: t for t in doc["types"]}
    assert len(types) == rt.last_id
    assert types[1] == {"id": 1, "kind": "INT", "name": "int", "size": 4, "bits_offset": 0, "nr_bits": 32,
                        "encoding": "SIGNED"}
    neg = next(t for t in doc["types"] if t["name"] == "neg")
    assert neg["encoding"] == "SIGNED" and neg["values"][0] == {"name": "NEG", "val": -5}
    fwd = next(t for t in doc["types"] if t["name"] == "opaque_u")
    assert fwd["fwd_kind"] == "union"
    assert json.loads("".join(iter_json(rt, indent=2))) == doc
    bf = RawTypes(bitfield_btf())
    rec = type_record(bf, next(i for i in range(1, bf.last_id + 1) if bf.name(i) == "bf"))
    assert rec["members"][0] == {"name": "a", "type_id": 1, "bits_offset": 0, "bitfield_size": 3}
    assert rec["members"][3] == {"name": "d", "type_id": 2, "bits_offset": 32}
    cyc = RawTypes(cycle_btf())
    assert dependencies(cyc, [2]) == [1, 2, 3, 4]


def test_dumper_one_type_at_a_time() -> None:
    d = CDumper(RawTypes(cycle_btf()))
    d.dump_type(2)
    first = d.take()
    d.dump_type(2)
    assert d.take() == ""  # nothing is written twice
    d.dump_type(3)
    assert first + d.take() == body(cycle_btf())
    with pytest.raises(BTFError):
        d.dump_type(99)
    assert sys.getrecursionlimit() >= 1000


def test_corrupted_blobs_raise_btf_errors_only() -> None:
    """Random corruption of the type section: a BTFError or some text, never another exception."""
    import random

    rng = random.Random(1234)
    good = misc_btf() + b""
    base = RawTypes(good)
    types_end = 24 + 4 * len(base.words)
    for _ in range(400):
        blob = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(24, types_end)
            blob[pos] = rng.randrange(256)
        try:
            text = dump_c(bytes(blob))
            assert isinstance(text, str)
            "".join(iter_json(RawTypes(bytes(blob))))
        except BTFError:
            pass
