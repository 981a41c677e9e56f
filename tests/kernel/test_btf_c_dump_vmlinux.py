"""vmlinux.h from this kernel's BTF: it compiles for the BPF target, it is bpftool's text, and it
describes the layouts bpftool reports (``_Static_assert``s of sizeof/offsetof with bpftool's numbers).

These read the running kernel's BTF (``/sys/kernel/btf``), hence kernel tests; bpftool and clang
are the oracles (skipped with the reason when one is not installed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from corebpf.btf import BTF
from corebpf.btf.builder import BTFBuilder
from corebpf.btf.c_dump import dump_c, iter_c
from corebpf.btf.c_dump_json import iter_json
from corebpf.btf.c_dump_table import RawTypes

VMLINUX = "/sys/kernel/btf/vmlinux"
CLANG = shutil.which("clang")
BPFTOOL = shutil.which("bpftool")

pytestmark = pytest.mark.skipif(not os.path.exists(VMLINUX), reason="no /sys/kernel/btf/vmlinux (CONFIG_DEBUG_INFO_BTF)")


def need(tool: str | None, name: str) -> str:
    if tool is None:
        pytest.skip(f"{name} is not installed")
    return tool


@pytest.fixture(scope="module")
def vmlinux_raw() -> bytes:
    with open(VMLINUX, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def vmlinux_h(vmlinux_raw: bytes) -> str:
    return dump_c(vmlinux_raw)


@pytest.fixture(scope="module")
def bpftool_json() -> dict:
    res = subprocess.run([need(BPFTOOL, "bpftool"), "btf", "dump", "file", VMLINUX, "-j"], capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout)


def compile_bpf(tmp_path: Path, header: str, extra: str = "") -> None:
    clang = need(CLANG, "clang")
    (tmp_path / "vmlinux.h").write_text(header)
    src = tmp_path / "prog.c"
    src.write_text('#include "vmlinux.h"\n' + extra + "\nint corebpf_anchor;\n")
    res = subprocess.run([clang, "-target", "bpf", "-O2", "-g", "-c", str(src), "-o", str(tmp_path / "prog.o")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-4000:]


# -- (a) the whole header -----------------------------------------------------------------------------
def test_full_vmlinux_h_compiles_for_bpf(tmp_path: Path, vmlinux_h: str) -> None:
    program = """
int read_pid(struct task_struct *t) { return t->pid; }
long skb_len(struct __sk_buff *skb) { return skb->len; }
"""
    compile_bpf(tmp_path, vmlinux_h, program)


# where we deliberately differ from bpftool 7.1, both for layouts the compiler would get wrong
_MODE_BYTE = "} __attribute__((mode(byte)));"
_VA_MEMBER = re.compile(r"\n(\t+)union \{\n\1\t(.*va_list.*);\n\1\tstruct \{\n(?:\1\t\t\w+: \d+;\n)+\1\t\};\n\1\};")


def as_bpftool(text: str) -> tuple[str, int]:
    """Our header with our two layout fixes undone (and how many there were): 1-byte enums get
    ``mode(byte)``, va_list members (24 bytes in BTF, a pointer for clang -target bpf) are padded."""
    text, n_va = _VA_MEMBER.subn(lambda m: f"\n{m.group(1)}{m.group(2)};", text)
    n_enum = text.count(_MODE_BYTE)
    return text.replace(_MODE_BYTE, "};"), n_va + n_enum


def test_full_dump_is_bpftools_text(vmlinux_raw: bytes, vmlinux_h: str) -> None:
    """Same text, line for line, except where bpftool 7.1 gets a layout wrong: enums of 1 byte
    (plain enums are 4 bytes in C) and va_list members (see :func:`as_bpftool`)."""
    res = subprocess.run([need(BPFTOOL, "bpftool"), "btf", "dump", "file", VMLINUX, "format", "c"],
                         capture_output=True, text=True, check=True)
    undone, fixes = as_bpftool(vmlinux_h)
    assert undone == res.stdout
    rt = RawTypes(vmlinux_raw)
    one_byte_enums = [t for t in rt.ids_of_kind(6) + rt.ids_of_kind(19) if rt.size_or_type(t) == 1]
    assert fixes >= len(one_byte_enums)


def test_streamed_and_cached_dumps_are_identical(vmlinux_raw: bytes, vmlinux_h: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from corebpf.btf import c_dump_cache

    monkeypatch.setenv("COREBPF_CACHE_DIR", str(tmp_path))
    before = dict(c_dump_cache.stats)
    assert "".join(iter_c(vmlinux_raw, cache=True)) == vmlinux_h
    assert c_dump_cache.stats["stores"] == before["stores"] + 1
    assert "".join(iter_c(vmlinux_raw, cache=True)) == vmlinux_h
    assert c_dump_cache.stats["hits"] == before["hits"] + 1
    key = c_dump_cache.file_key([VMLINUX], "header=1")
    assert key == c_dump_cache.cache_key([vmlinux_raw], "header=1")
    assert c_dump_cache.cached_path(key).exists()
    assert dump_c(BTF.vmlinux()) == vmlinux_h  # the reader's BTF gives the same text


# -- (b) layouts, with bpftool's numbers --------------------------------------------------------------
def _asserts_for(t: dict, by_id: dict[int, dict], tag: str) -> list[str]:
    """sizeof and offsetof asserts of one struct/union, looking into anonymous members."""
    out = [f'_Static_assert(sizeof({tag}) == {t["size"]}, "size of {tag}");']

    def members(ty: dict, base_bits: int, seen: set[str]) -> None:
        for m in ty["members"]:
            bits = base_bits + m["bits_offset"]
            if m["name"] == "(anon)":
                inner = by_id[m["type_id"]]
                if inner["kind"] in ("STRUCT", "UNION") and inner["name"] == "(anon)":
                    members(inner, bits, seen)
                continue
            if m.get("bitfield_size") or m["name"] in seen:
                continue  # no offsetof for bitfields
            seen.add(m["name"])
            assert bits % 8 == 0
            out.append(f'_Static_assert(__builtin_offsetof({tag}, {m["name"]}) == {bits // 8}, '
                       f'"{tag}.{m["name"]}");')

    members(t, 0, set())
    return out


def select_composites(doc: dict, want: int) -> list[dict]:
    """Every k-th named struct/union (by id) whose tag is unique in the BTF, plus some famous ones."""
    types = doc["types"]
    tags: dict[str, int] = {}
    for t in types:
        if t["kind"] in ("STRUCT", "UNION", "ENUM", "ENUM64") and t["name"] != "(anon)":
            tags[t["name"]] = tags.get(t["name"], 0) + 1
    pool = [t for t in types if t["kind"] in ("STRUCT", "UNION") and t["name"] != "(anon)" and tags[t["name"]] == 1]
    step = max(1, len(pool) // want)
    picked = pool[::step]
    famous = {"task_struct", "sk_buff", "file", "inode", "bpf_map", "bpf_prog", "page", "xdp_buff", "sock"}
    picked += [t for t in pool if t["name"] in famous and t not in picked]
    return picked


def test_static_asserts_of_bpftool_layouts_against_our_header(tmp_path: Path, vmlinux_h: str,
                                                             bpftool_json: dict) -> None:
    by_id = {t["id"]: t for t in bpftool_json["types"]}
    picked = select_composites(bpftool_json, 400)
    assert len(picked) >= 300
    with_bitfields = [t for t in picked if any(m.get("bitfield_size") for m in t["members"])]
    with_anon = [t for t in picked if any(m["name"] == "(anon)" for m in t["members"])]
    assert with_bitfields and with_anon  # the selection covers both
    lines: list[str] = []
    for t in picked:
        lines += _asserts_for(t, by_id, f'{t["kind"].lower()} {t["name"]}')
    assert len(lines) > 2000
    compile_bpf(tmp_path, vmlinux_h, "\n".join(lines))


def test_static_asserts_for_every_uniquely_named_composite(tmp_path: Path, vmlinux_h: str,
                                                         bpftool_json: dict) -> None:
    """Not a sample: every struct/union whose tag is unique (duplicated tags get ___N names)."""
    by_id = {t["id"]: t for t in bpftool_json["types"]}
    picked = select_composites(bpftool_json, 10**9)
    named = [t for t in bpftool_json["types"] if t["kind"] in ("STRUCT", "UNION") and t["name"] != "(anon)"]
    assert len(picked) >= 0.9 * len(named)
    lines: list[str] = []
    for t in picked:
        lines += _asserts_for(t, by_id, f'{t["kind"].lower()} {t["name"]}')
    compile_bpf(tmp_path, vmlinux_h, "\n".join(lines))


def test_static_asserts_catch_a_wrong_layout(tmp_path: Path, vmlinux_h: str, bpftool_json: dict) -> None:
    """The check can fail: a wrong size must not compile."""
    clang = need(CLANG, "clang")
    t = next(t for t in bpftool_json["types"] if t["kind"] == "STRUCT" and t["name"] == "task_struct")
    (tmp_path / "vmlinux.h").write_text(vmlinux_h)
    src = tmp_path / "bad.c"
    src.write_text(f'#include "vmlinux.h"\n_Static_assert(sizeof(struct task_struct) == {t["size"] + 8}, "x");\n')
    res = subprocess.run([clang, "-target", "bpf", "-c", str(src), "-o", str(tmp_path / "bad.o")],
                         capture_output=True, text=True)
    assert res.returncode != 0 and "static_assert failed" in res.stderr.replace("static assertion failed",
                                                                                   "static_assert failed")


# -- (c) a few types with their dependencies ----------------------------------------------------------
def test_selected_types_compile_on_their_own(tmp_path: Path, vmlinux_raw: bytes, bpftool_json: dict) -> None:
    names = ["task_struct", "sk_buff", "file_operations", "bpf_map", "xdp_md", "bpf_sock_ops", "trace_event_raw_sys_enter"]
    btf = BTF.vmlinux()
    names = [n for n in names if btf.find_id(n) > 0]
    header = dump_c(vmlinux_raw, names)
    assert len(header) < len(dump_c(vmlinux_raw, header=False)) // 2  # a subset, not everything
    for n in names:
        assert f"struct {n} {{\n" in header
    by_id = {t["id"]: t for t in bpftool_json["types"]}
    lines = []
    for t in bpftool_json["types"]:
        if t["kind"] == "STRUCT" and t["name"] in names:
            lines += _asserts_for(t, by_id, f"struct {t['name']}")
    compile_bpf(tmp_path, header, "\n".join(lines))


# -- (d) split BTF: kernel modules, and a split BTF of our own on top of vmlinux ---------------------
def test_module_btf_dump_compiles(tmp_path: Path) -> None:
    mods = BTF.module_names()
    if not mods:
        pytest.skip("no module BTF under /sys/kernel/btf (no modules loaded or no CONFIG_DEBUG_INFO_BTF_MODULES)")
    mod = BTF.module(mods[0])
    header = dump_c(mod)
    compile_bpf(tmp_path, header)
    if BPFTOOL:
        res = subprocess.run([BPFTOOL, "btf", "dump", "file", f"/sys/kernel/btf/{mods[0]}", "-B", VMLINUX,
                              "format", "c"], capture_output=True, text=True, check=True)
        assert as_bpftool(header)[0] == res.stdout


def test_split_btf_on_vmlinux_matches_bpftool(tmp_path: Path) -> None:
    vml = BTF.vmlinux()
    b = BTFBuilder(base=vml)
    task = vml.find("task_struct").id
    skb_ptr = b.add_ptr(vml.find("sk_buff").id)
    u32 = vml.find("u32").id
    b.add_struct("corebpf_split_demo", vml[task].size + 16,
                 [("task", task, 0), ("skb", skb_ptr, vml[task].size * 8), ("n", u32, vml[task].size * 8 + 64)])
    split = b.to_btf()
    path = tmp_path / "split.btf"
    path.write_bytes(split.raw)
    header = dump_c(split)
    assert header.rstrip().endswith("#endif /* __VMLINUX_H__ */")
    assert "struct corebpf_split_demo {\n\tstruct task_struct task;\n\tstruct sk_buff *skb;\n\tu32 n;\n" in header
    compile_bpf(tmp_path, header, f'_Static_assert(sizeof(struct corebpf_split_demo) == {vml[task].size + 16}, "s");')
    res = subprocess.run([need(BPFTOOL, "bpftool"), "btf", "dump", "file", str(path), "-B", VMLINUX, "format", "c"],
                         capture_output=True, text=True, check=True)
    assert as_bpftool(header)[0] == res.stdout


# -- JSON ---------------------------------------------------------------------------------------------
def test_json_dump_equals_bpftool_json(vmlinux_raw: bytes, bpftool_json: dict) -> None:
    ours = json.loads("".join(iter_json(RawTypes(vmlinux_raw))))
    assert len(ours["types"]) == len(bpftool_json["types"])
    for a, b in zip(ours["types"], bpftool_json["types"]):
        if a["kind"] == "ENUM" and a["encoding"] == "UNSIGNED":
            # bpftool 7.1 sign-extends unsigned 32-bit values >= 2**31 (0xefffffff -> 0xffffffffefffffff)
            for v in b["values"]:
                if v["val"] >= 1 << 32:
                    v["val"] -= 0xFFFFFFFF00000000
        assert a == b, (a, b)
