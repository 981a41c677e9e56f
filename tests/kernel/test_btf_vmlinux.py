"""The running kernel's BTF, all of it, against bpftool's reading of the same file.

Every type of vmlinux (and of every module with BTF) is decoded and compared field by field with
``bpftool btf dump file ... -j``: names, kinds, sizes, every struct/union member's bit offset and
bitfield size, enum values, array dimensions, function linkage, datasec entries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from corebpf.btf import BTF, Kind
from corebpf.btf import types as T
from corebpf.btf.builder import BTFBuilder

VMLINUX = Path("/sys/kernel/btf/vmlinux")

pytestmark = [
    pytest.mark.skipif(not VMLINUX.exists(), reason="kernel has no BTF (CONFIG_DEBUG_INFO_BTF=n)"),
    pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool is not installed"),
]


def bpftool_types(path: Path, base: Path | None = None) -> list[dict]:
    cmd = ["bpftool", "btf", "dump", "file", str(path), "-j"]
    if base is not None:
        cmd[5:5] = ["-B", str(base)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["types"]


_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def as_bpftool(t: T.Type) -> dict:
    """Our type in the shape of bpftool's JSON."""
    d: dict = {"id": t.id, "kind": t.kind.name, "name": t.name or "(anon)"}
    if isinstance(t, T.Int):
        enc = t.encoding
        names = [n for n, bit in (("SIGNED", 1), ("CHAR", 2), ("BOOL", 4)) if enc & bit]
        d.update(size=t.size, bits_offset=t.offset, nr_bits=t.bits, encoding=names[0] if len(names) == 1 else
                 ("(none)" if not names else "(invalid)"))
    elif isinstance(t, (T.Pointer, T.Typedef, T.Qualifier)):
        d["type_id"] = t.type_id
    elif isinstance(t, T.Array):
        d.update(type_id=t.elem_type_id, index_type_id=t.index_type_id, nr_elems=t.nelems)
    elif isinstance(t, T.Composite):
        members = []
        for m in t.members:
            md = {"name": m.name or "(anon)", "type_id": m.type_id, "bits_offset": m.bit_offset}
            if t.kind_flag and m.bitfield_size:
                md["bitfield_size"] = m.bitfield_size
            members.append(md)
        d.update(size=t.size, vlen=len(t.members), members=members)
    elif isinstance(t, T.Enum):
        d.update(encoding="SIGNED" if t.signed else "UNSIGNED", size=t.size, vlen=len(t.values),
                 values=[{"name": v.name, "val": v.value} for v in t.values])
    elif isinstance(t, T.Fwd):
        d["fwd_kind"] = "union" if t.is_union else "struct"
    elif isinstance(t, T.Func):
        d.update(type_id=t.type_id, linkage=_LINKAGE.get(int(t.linkage), "(unknown)"))
    elif isinstance(t, T.FuncProto):
        d.update(ret_type_id=t.return_type_id, vlen=len(t.params),
                 params=[{"name": p.name or "(anon)", "type_id": p.type_id} for p in t.params])
    elif isinstance(t, T.Var):
        d.update(type_id=t.type_id, linkage=_LINKAGE.get(int(t.linkage), "(unknown)"))
    elif isinstance(t, T.Datasec):
        d.update(size=t.size, vlen=len(t.vars), vars=[{"type_id": v.type_id, "offset": v.offset, "size": v.size}
                                                      for v in t.vars])
    elif isinstance(t, T.Float):
        d["size"] = t.size
    elif isinstance(t, T.DeclTag):
        d.update(type_id=t.type_id, component_idx=t.component_idx)
    return d


def _normalise(ref: dict) -> dict:
    # bpftool 7.1 prints unsigned 32-bit ENUM values above INT_MAX sign-extended to 64 bits
    # (0xefffffff as 18446744073441116159); the BTF holds the 32-bit value
    if ref["kind"] == "ENUM" and ref.get("encoding") == "UNSIGNED":
        ref = dict(ref, values=[dict(v, val=v["val"] & 0xFFFFFFFF) for v in ref["values"]])
    return ref


def compare_all(ours: BTF, theirs: list[dict]) -> None:
    assert len(ours) == len(theirs), "type counts differ"
    mismatches = []
    for ref in map(_normalise, theirs):
        mine = as_bpftool(ours[ref["id"]])
        if mine != ref:
            mismatches.append((ref, mine))
    assert not mismatches, f"{len(mismatches)} types differ, first: {mismatches[0]}"


@pytest.fixture(scope="module")
def vmlinux_json() -> list[dict]:
    return bpftool_types(VMLINUX)


@pytest.mark.parametrize("cache", [False, True], ids=["parsed", "via-cache"])
def test_every_vmlinux_type_equals_bpftool(vmlinux_json, cache, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("COREBPF_CACHE_DIR", str(tmp_path))
    btf = BTF.from_file(VMLINUX, cache=cache)
    if cache:  # the second open comes from the index cache; check that one
        btf = BTF.from_file(VMLINUX, cache=True)
        assert btf.from_cache
    compare_all(btf, vmlinux_json)


def test_every_struct_and_union_layout(vmlinux_json) -> None:
    """The acceptance criterion on its own: sizes and member bit offsets/bitfield sizes of all structs/unions."""
    btf = BTF.vmlinux()
    n = 0
    for ref in vmlinux_json:
        if ref["kind"] not in ("STRUCT", "UNION"):
            continue
        t = btf[ref["id"]]
        assert t.kind == Kind[ref["kind"]] and t.size == ref["size"], ref["id"]
        got = [(m.name or "(anon)", m.bit_offset, m.bitfield_size) for m in t.members]
        want = [(m["name"], m["bits_offset"], m.get("bitfield_size", 0)) for m in ref["members"]]
        assert got == want, f"[{ref['id']}] {ref['name']}"
        n += 1
    assert n > 1000


def test_names_and_kinds_without_decoding(vmlinux_json) -> None:
    btf = BTF.vmlinux()
    for ref in vmlinux_json:
        assert btf.kind_of(ref["id"]).name == ref["kind"]
        assert (btf.name_of(ref["id"]) or "(anon)") == ref["name"]


def test_find_matches_a_linear_search(vmlinux_json) -> None:
    btf = BTF.vmlinux()
    by_name: dict[str, list[int]] = {}
    for ref in vmlinux_json:
        if ref["name"] != "(anon)":
            by_name.setdefault(ref["name"], []).append(ref["id"])
    for name in ["task_struct", "sk_buff", "bpf_prog", "pid_t", "__u32", "file_operations", "list_head"]:
        assert [t.id for t in btf.find_all(name)] == by_name[name]
    # every 97th name (a spread over the whole table), exact ids
    names = sorted(by_name)
    for name in names[::97]:
        want = [i for i in by_name[name]]
        got = [t.id for t in btf.find_all(name) if t.name == name]
        assert got == want, name


def test_known_layouts() -> None:
    btf = BTF.vmlinux()
    ts = btf.find("task_struct", Kind.STRUCT)
    pid = ts.member("pid")
    assert pid.type.resolve().size == 4 and pid.offset > 0
    assert btf.find("__u64").size == 8
    assert btf.pointer_size == 8
    assert ts.alignment >= 8


def test_vmlinux_is_shared() -> None:
    assert BTF.vmlinux() is BTF.vmlinux()


def test_split_btf_on_top_of_vmlinux_equals_bpftool(tmp_path) -> None:
    """Module-style split BTF (ids and strings continue vmlinux): built here, read by us and bpftool -B."""
    base = BTF.vmlinux()
    b = BTFBuilder(base=base)
    ts = base.find("task_struct", Kind.STRUCT)
    u32 = base.find("__u32")
    p = b.add_ptr(ts.id)
    s = b.add_struct("my_mod_state", 16, [("task", p, 0), ("pid", u32.id, 64), ("flag", u32.id, 96, 1)])
    b.add_typedef("task_struct___mine", s)
    path = tmp_path / "split.btf"
    path.write_bytes(b.encode())
    split = BTF.from_file(path, base=base, cache=False)
    assert split.start_id == base.last_id + 1
    compare_all(split, bpftool_types(path, VMLINUX))
    assert split[s].member("task").type.target is ts
    # lookups through a split BTF see both
    assert [t.id for t in split.find_all("task_struct")][:1] == [ts.id]
    assert split.find_all("task_struct")[-1].name == "task_struct___mine"


def test_every_module_btf_equals_bpftool() -> None:
    modules = BTF.module_names()
    if not modules:
        pytest.skip("no kernel module BTF under /sys/kernel/btf (no modules loaded with BTF)")
    for name in modules:
        mod = BTF.module(name)
        assert mod.base is BTF.vmlinux()
        compare_all(mod, bpftool_types(Path("/sys/kernel/btf") / name, VMLINUX))


@pytest.mark.skipif(shutil.which("objcopy") is None or shutil.which("gcc") is None, reason="needs objcopy and gcc")
def test_elf_image_with_btf_section(tmp_path) -> None:
    """A vmlinux-style ELF image carrying the kernel's BTF in .BTF reads the same as the raw file."""
    (tmp_path / "e.c").write_text("int x;\n")
    obj = tmp_path / "e.o"
    subprocess.run(["gcc", "-c", str(tmp_path / "e.c"), "-o", str(obj)], check=True)
    raw = tmp_path / "vmlinux.btf"
    raw.write_bytes(VMLINUX.read_bytes())
    image = tmp_path / "vmlinux"
    subprocess.run(["objcopy", "--add-section", f".BTF={raw}", str(obj), str(image)], check=True)
    from_elf = BTF.from_file(image)
    vm = BTF.vmlinux()
    assert from_elf.raw == vm.raw and len(from_elf) == len(vm)
    assert from_elf.find("task_struct", Kind.STRUCT).member("pid").offset == \
        vm.find("task_struct", Kind.STRUCT).member("pid").offset


def _not_portable(t: T.Type, depth: int = 0) -> bool:
    """Whether a struct/union holds (by value, at any depth) something clang -target bpf lays out
    differently from the kernel's build: an enum narrower than int (bpftool 7.1 prints those as
    plain int-sized enums) or a ``va_list`` (a pointer on the bpf target, 24 bytes on x86-64)."""
    if isinstance(t, T.Typedef) and t.name in ("va_list", "__gnuc_va_list", "__builtin_va_list"):
        return True
    r = t.skip_qualifiers()
    if isinstance(r, T.Typedef):
        return _not_portable(r.type, depth + 1)
    if isinstance(r, T.Enum):
        return r.size < 4
    if isinstance(r, T.Array):
        return _not_portable(r.elem_type, depth + 1)
    if isinstance(r, T.Composite) and depth < 16:
        return any(_not_portable(m.type, depth + 1) for m in r.members)
    return False


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang is not installed")
def test_alignment_equals_clang_on_bpftool_vmlinux_h(tmp_path) -> None:
    """``_Alignof`` of every uniquely named struct/union, as clang computes it from bpftool's vmlinux.h."""
    btf = BTF.vmlinux()
    header = tmp_path / "vmlinux.h"
    header.write_text(subprocess.run(["bpftool", "btf", "dump", "file", str(VMLINUX), "format", "c"],
                                     check=True, capture_output=True, text=True).stdout)
    names: dict[str, int] = {}  # C tag names (struct, union, enum share one namespace)
    for t in btf:
        if t.kind in (Kind.STRUCT, Kind.UNION, Kind.ENUM, Kind.ENUM64, Kind.FWD) and t.name:
            names[t.name] = names.get(t.name, 0) + 1
    lines = ['#include "vmlinux.h"']
    checked = 0
    for t in btf:
        if t.kind not in (Kind.STRUCT, Kind.UNION) or not t.name or names[t.name] != 1:
            continue
        if _not_portable(t):
            continue
        kw = "struct" if t.kind == Kind.STRUCT else "union"
        lines.append(f'_Static_assert(_Alignof({kw} {t.name}) == {t.alignment}, "{t.name}");')
        lines.append(f'_Static_assert(sizeof({kw} {t.name}) == {t.size}, "{t.name}");')
        checked += 1
    src = tmp_path / "align.c"
    src.write_text("\n".join(lines) + "\n")
    res = subprocess.run(["clang", "-target", "bpf", "-fsyntax-only", "-ferror-limit=0", str(src)],
                         capture_output=True, text=True)
    failures = [line for line in res.stderr.splitlines() if "error" in line]
    assert checked > 5000
    assert not failures, f"{len(failures)} differ, first: {failures[:5]}"


def test_values_and_dtypes_for_kernel_structs() -> None:
    """Every 8th struct/union of vmlinux: numpy dtype with the exact itemsize, and decode/encode of
    a zeroed value round-trips (all of them pass too; the sample keeps the run short)."""
    from corebpf.btf.values import decode, encode, numpy_dtype

    btf = BTF.vmlinux()
    composites = [t for t in btf if t.kind in (Kind.STRUCT, Kind.UNION)]
    for t in composites[::8]:
        assert numpy_dtype(t).itemsize == t.size, t
        zero = bytes(t.size)
        assert encode(t, decode(t, zero)) == zero, t
