"""BTF reader and type model on synthetic BTF (every kind, both byte orders) and clang objects."""

from __future__ import annotations

import io
import lzma
import shutil
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from corebpf.btf import BTF, Kind, Linkage, essential_name
from corebpf.btf import types as T
from corebpf.btf.builder import BTFBuilder
from corebpf.errors import BTFError


def all_kinds(byteorder: str = "little") -> tuple[BTF, dict[str, int]]:
    b = BTFBuilder(byteorder=byteorder)
    ids: dict[str, int] = {}
    ids["int"] = i = b.add_int("int", 4, signed=True)
    ids["uint"] = u = b.add_int("unsigned int", 4)
    ids["char"] = ch = b.add_int("char", 1, signed=True)
    ids["bool"] = b.add_int("_Bool", 1, bool_=True)
    ids["long"] = b.add_int("long int", 8, signed=True)
    ids["ptr_void"] = pv = b.add_ptr(0)
    ids["arr"] = arr = b.add_array(ch, i, 16)
    ids["enum"] = b.add_enum("color", [("RED", 0), ("BLACK", -2)])
    ids["enum64"] = b.add_enum64("wide", [("BIG", 1 << 40), ("NEG", -5)], signed=True)
    ids["fwd"] = b.add_fwd("opaque", union=True)
    ids["float"] = fl = b.add_float("double", 8)
    ids["inner"] = inner = b.add_struct("", 8, [("a", i, 0), ("b", i, 32)])
    ids["union"] = un = b.add_union("u", 8, [("f", fl, 0), ("n", u, 0)])
    ids["struct"] = s = b.add_struct("ev", 48, [
        ("pid", i, 0), ("flags", u, 32, 3), ("prio", i, 35, 5), ("comm", arr, 64), ("", inner, 192),
        ("un", un, 256), ("next", b.add_ptr(0), 320)])
    ids["typedef"] = td = b.add_typedef("ev_t", s)
    ids["const"] = c = b.add_const(td)
    ids["volatile"] = v = b.add_volatile(c)
    ids["restrict"] = b.add_restrict(pv)
    ids["type_tag"] = tt = b.add_type_tag("user", ch)
    ids["ptr_tagged"] = b.add_ptr(tt)
    ids["proto"] = proto = b.add_func_proto(i, [("ctx", pv), ("n", u)], variadic=True)
    ids["fnptr"] = b.add_ptr(proto)
    ids["func"] = fn = b.add_func("handler", proto, Linkage.GLOBAL)
    ids["var"] = var = b.add_var("counter", v, Linkage.GLOBAL)
    ids["datasec"] = b.add_datasec(".data", 48, [(var, 0, 48)])
    ids["decl_tag"] = b.add_decl_tag("kfunc", fn, -1)
    ids["flavour"] = b.add_struct("ev___v2", 4, [("pid", i, 0)])
    return b.to_btf(), ids


@pytest.fixture(params=["little", "big"])
def kinds(request) -> tuple[BTF, dict[str, int]]:
    return all_kinds(request.param)


def test_every_kind_decodes(kinds) -> None:
    btf, ids = kinds
    assert {t.kind for t in btf} == set(Kind) - {Kind.UNKN}
    assert len(btf) == len(ids) + 1  # plus the anonymous ptr inside "ev"
    s = btf[ids["struct"]]
    assert isinstance(s, T.Struct) and s.size == 48 and s.kind_flag
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in s.members] == [
        ("pid", 0, 0), ("flags", 32, 3), ("prio", 35, 5), ("comm", 64, 0), ("", 192, 0), ("un", 256, 0),
        ("next", 320, 0)]
    assert s.member("flags").is_bitfield and not s.member("pid").is_bitfield
    assert s.field("b") == (224, s.members[4].type.member("b"))  # through the anonymous struct
    e = btf[ids["enum"]]
    assert e.kind == Kind.ENUM and e.signed and e.value_of("BLACK") == -2 and e.name_of(0) == "RED"
    e64 = btf[ids["enum64"]]
    assert e64.kind == Kind.ENUM64 and [v.value for v in e64.values] == [1 << 40, -5]
    assert btf[ids["fwd"]].is_union
    assert btf[ids["func"]].linkage == Linkage.GLOBAL and btf[ids["func"]].proto.variadic
    assert btf[ids["var"]].linkage == Linkage.GLOBAL
    ds = btf[ids["datasec"]]
    assert ds.vars[0].type is btf[ids["var"]] and ds.vars[0].size == 48
    assert btf[ids["decl_tag"]].component_idx == -1
    i = btf[ids["int"]]
    assert i.signed and i.bits == 32 and i.size == 4
    assert btf[ids["bool"]].is_bool


def test_sizes_alignment_and_resolve(kinds) -> None:
    btf, ids = kinds
    assert btf[ids["volatile"]].resolve() is btf[ids["struct"]]
    assert btf[ids["volatile"]].size == 48
    assert btf[ids["arr"]].size == 16 and btf[ids["arr"]].alignment == 1
    assert btf[ids["struct"]].alignment == 8
    assert btf[ids["union"]].size == 8
    assert btf[ids["var"]].size == 48
    assert btf.pointer_size == 8 and btf[ids["ptr_void"]].size == 8
    with pytest.raises(BTFError):
        btf[ids["proto"]].size
    with pytest.raises(BTFError):
        btf[0].size


@pytest.mark.parametrize("key,expected", [
    ("ptr_void", "void *"),
    ("fnptr", "int (*)(void *ctx, unsigned int n, ...)"),
    ("func", "int handler(void *ctx, unsigned int n, ...)"),
    ("arr", "char [16]"),
    ("volatile", "volatile const ev_t"),
    ("restrict", "void *restrict"),
    ("ptr_tagged", 'char __attribute__((btf_type_tag("user"))) *'),
    ("var", "volatile const ev_t counter"),
    ("struct", "struct ev"),
    ("union", "union u"),
    ("inner", "struct {...}"),
    ("enum", "enum color"),
    ("fwd", "union opaque"),
])
def test_format_c(key: str, expected: str) -> None:
    btf, ids = all_kinds()
    assert btf[ids[key]].format_c() == expected


def test_format_c_declarators() -> None:
    b = BTFBuilder()
    i = b.add_int("int", 4, signed=True)
    ch = b.add_int("char", 1, signed=True)
    cch = b.add_const(ch)
    pcc = b.add_ptr(cch)
    cp = b.add_const(pcc)
    arr = b.add_array(i, i, 4)
    parr = b.add_ptr(arr)
    arr_of_fp = b.add_array(b.add_ptr(b.add_func_proto(i, [])), i, 2)
    pp = b.add_ptr(b.add_ptr(ch))
    btf = b.to_btf()
    assert btf[cp].format_c("p") == "const char *const p"
    assert btf[parr].format_c("p") == "int (*p)[4]"
    assert btf[arr_of_fp].format_c("tbl") == "int (*tbl[2])(void)"
    assert btf[pp].format_c("argv") == "char **argv"
    assert btf[arr].c_declaration == "int [4]"


def test_find_by_essential_name(kinds) -> None:
    btf, ids = kinds
    assert btf.find("ev").id == ids["struct"]  # the exact name wins over the flavour
    assert [t.id for t in btf.find_all("ev")] == [ids["struct"], ids["flavour"]]
    assert btf.find("ev", Kind.STRUCT).id == ids["struct"]
    assert btf.find("ev_t").id == ids["typedef"]
    assert btf.find_all("ev", Kind.TYPEDEF) == []
    with pytest.raises(KeyError):
        btf.find("nope")
    assert btf.find_id("nope") == -1
    assert btf.find_all("") == []
    assert btf.find("int").id == ids["int"]  # "int" does not match "unsigned int" or "long int"


@pytest.mark.parametrize("name,essential", [
    ("task_struct___v1", "task_struct"), ("a___b___c", "a___b"), ("__u32", "__u32"), ("a____b", "a____b"),
    ("x___", "x___"), ("___x", "___x"), ("plain", "plain"),
])
def test_essential_name(name: str, essential: str) -> None:
    assert essential_name(name) == essential


def test_split_btf() -> None:
    base, ids = all_kinds()
    b = BTFBuilder(base=base)
    p = b.add_ptr(ids["struct"])
    s = b.add_struct("mod_state", 8, [("ev", p, 0)])
    b.add_typedef("int", ids["int"])  # the same name again, in the split's own strings
    base_str = base._name_offsets(b"ev_t")[0]  # a name pointing into the base's string section
    shared = b.add_raw([base_str, int(Kind.TYPEDEF) << 24, ids["int"]])
    split = b.to_btf()
    assert split.start_id == base.last_id + 1 and len(split) == 4
    assert split[shared].name == "ev_t"
    assert [t.id for t in split.find_all("ev_t")] == [ids["typedef"], shared]
    assert split[s].member("ev").type.target is base[ids["struct"]]
    assert split[ids["int"]] is base[ids["int"]]
    assert [t.id for t in split.find_all("int")] == [ids["int"], shared - 1]
    assert split.string_at(0) == ""
    assert list(split.all_types())[0] is base[1]


def test_strings_and_repr() -> None:
    btf, ids = all_kinds()
    assert btf.string_at(0) == ""
    with pytest.raises(BTFError, match="offset"):
        btf.string_at(10**6)
    assert "types [1.." in repr(btf)
    assert repr(btf[ids["struct"]]) == "<Struct [%d] 'struct ev'>" % ids["struct"]


def test_header_errors() -> None:
    good, _ = all_kinds()
    raw = good.raw
    with pytest.raises(BTFError, match="offset 0"):
        BTF.from_bytes(b"\0" * 32)
    with pytest.raises(BTFError, match="offset"):
        BTF.from_bytes(raw[:10])
    with pytest.raises(BTFError, match="offset"):
        BTF.from_bytes(raw[:-5])
    bad_version = bytearray(raw)
    bad_version[2] = 2
    with pytest.raises(BTFError, match="version"):
        BTF.from_bytes(bytes(bad_version))
    bad_kind = bytearray(raw)
    struct.pack_into("<I", bad_kind, 24 + 4, 25 << 24)  # first type: kind 25
    with pytest.raises(BTFError, match=r"offset 28: unknown kind 25"):
        BTF.from_bytes(bytes(bad_kind))


def test_raw_file_archives_and_elf(tmp_path: Path) -> None:
    btf, ids = all_kinds()
    raw = tmp_path / "x.btf"
    raw.write_bytes(btf.raw)
    assert BTF.from_file(raw, cache=False).find("ev").id == ids["struct"]
    # BTFHub layout: <release>.btf.tar.xz holding <release>.btf
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("5.10.0-test.btf")
        info.size = len(btf.raw)
        tar.addfile(info, io.BytesIO(btf.raw))
    archive = tmp_path / "5.10.0-test.btf.tar.xz"
    archive.write_bytes(lzma.compress(buf.getvalue()))
    assert BTF.from_file(archive).find("ev").size == 48
    (tmp_path / "bad.xz").write_bytes(b"\xfd7zXZ\x00garbage")
    with pytest.raises(BTFError, match="xz"):
        BTF.from_file(tmp_path / "bad.xz")
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(BTFError, match="not BTF"):
        BTF.from_file(tmp_path / "junk")
    with pytest.raises(BTFError, match="cannot read"):
        BTF.from_file(tmp_path / "missing")
    (tmp_path / "trunc.elf").write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 20)
    with pytest.raises(BTFError):
        BTF.from_file(tmp_path / "trunc.elf")


CLANG = shutil.which("clang")
BPF_C = r"""
typedef unsigned int u32;
enum state { RUN = 1, STOP = 2 };
struct event { u32 pid; u32 flags:4, kind:4; enum state st; char comm[16]; };
struct event ev_out = {};
float ratio = 1.5;
int __attribute__((btf_decl_tag("tagged"))) tagged_var;
int handler(void *ctx) { ev_out.pid += 1; return 0; }
"""


@pytest.mark.skipif(CLANG is None, reason="clang is not installed")
def test_clang_object_btf(tmp_path: Path) -> None:
    src = tmp_path / "p.bpf.c"
    src.write_text(BPF_C)
    obj = tmp_path / "p.bpf.o"
    subprocess.run([CLANG, "-g", "-O2", "-target", "bpf", "-c", str(src), "-o", str(obj)], check=True)
    btf = BTF.from_file(obj)
    ev = btf.find("event", Kind.STRUCT)
    assert ev.size == 28
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in ev.members] == [
        ("pid", 0, 0), ("flags", 32, 4), ("kind", 36, 4), ("st", 64, 0), ("comm", 96, 0)]
    assert btf.find("handler", Kind.FUNC).format_c() == "int handler(void *ctx)"
    assert btf.find("ratio", Kind.VAR).type.kind == Kind.FLOAT
    assert any(t.kind == Kind.DECL_TAG and t.name == "tagged" for t in btf)
    assert {d.name for d in btf if d.kind == Kind.DATASEC} >= {".bss", ".data"}


def test_large_vlen_records_are_scanned_exactly() -> None:
    """vlen * words-per-entry exceeds 16 bits: the scan must not wrap around."""
    b = BTFBuilder()
    b.add_enum("big", [(f"V{i}", i) for i in range(40000)])
    i = b.add_int("int", 4, signed=True)
    b.add_struct("wide", 4 * 30000, [(f"m{k}", i, 32 * k) for k in range(30000)])
    b.add_typedef("after", i)
    for order in ("little", "big"):
        b.byteorder = order
        btf = b.to_btf()
        assert len(btf[1].values) == 40000 and len(btf[3].members) == 30000
        assert btf.find("after").type is btf[2]


def test_vmlinux_and_module_sharing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """BTF.vmlinux()/BTF.module() against a fake /sys/kernel/btf: split on top of vmlinux, shared."""
    base, ids = all_kinds()
    sysfs = tmp_path / "sys"
    sysfs.mkdir()
    (sysfs / "vmlinux").write_bytes(base.raw)
    b = BTFBuilder(base=base)
    b.add_struct("nf_conn", 8, [("ev", b.add_ptr(ids["struct"]), 0)])
    (sysfs / "nf_conntrack").write_bytes(b.encode())
    monkeypatch.setattr(BTF, "sysfs_dir", sysfs)
    monkeypatch.setattr(BTF, "_vmlinux", None)
    monkeypatch.setattr(BTF, "_modules", {})
    monkeypatch.setenv("COREBPF_CACHE_DIR", str(tmp_path / "cache"))
    vm = BTF.vmlinux()
    assert vm is BTF.vmlinux() and vm.find("ev").id == ids["struct"]
    mod = BTF.module("nf_conntrack")
    assert mod is BTF.module("nf_conntrack") and mod.base is vm
    assert mod.find("nf_conn").member("ev").type.target is vm[ids["struct"]]
    assert BTF.module_names() == ["nf_conntrack"]
    assert BTF.module("vmlinux") is vm
    with pytest.raises(BTFError, match="no BTF for module"):
        BTF.module("absent")
    with pytest.raises(BTFError, match="invalid module name"):
        BTF.module("../etc")
