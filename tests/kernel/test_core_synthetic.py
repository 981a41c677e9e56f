"""CO-RE differential test against libbpf with hand-built target BTFs.

``core_synthetic.bpf.o`` relocates local types (``struct syn``, ``enum syn_e``...) that a series of
synthetic target BTFs move, remove, resize, retype, flavour and make ambiguous. A tiny C program
linked with the system's libbpf opens the object with ``btf_custom_path`` set to each target and
loads it with libbpf's debug log on; corebpf relocates the same program against the same BTF file.
Every relocation must give the same spec texts, the same decision and the same instruction bytes,
and where libbpf refuses the object (ambiguity, an unreadable bitfield) corebpf must refuse the
same relocation.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pytest

from corebpf.btf.builder import BTFBuilder
from corebpf.btf.core import CoreRelocationError, CoreRelocator, TargetSet
from corebpf.btf.ext import BTFExt
from test_core_differential import LibbpfRelo, _expected_bytes, _programs, _rewrite_kind

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
OBJ = CORPUS / "core_synthetic.bpf.o"

ORACLE_C = r"""
#include <stdarg.h>
#include <stdio.h>
#include <bpf/libbpf.h>

static int print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return vfprintf(stderr, fmt, args);
}

int main(int argc, char **argv)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = argv[2]);
	struct bpf_object *obj;
	int err;

	libbpf_set_print(print);
	obj = bpf_object__open_file(argv[1], &opts);
	if (!obj)
		return 2;
	err = bpf_object__load(obj);
	bpf_object__close(obj);
	printf("%d\n", err);
	return 0;
}
"""

_LINE = re.compile(r"^libbpf: prog '([^']+)': relo #(\d+): (.*)$")
_PATCH = re.compile(r"patched insn #(\d+) \((ALU/ALU64|LDX/ST/STX|LDIMM64)\) (imm64|imm|off|mem_sz) (\d+) -> (\d+)")
_POISON = re.compile(r"substituting insn #(\d+) w/ invalid insn")
_FAILED = re.compile(r"^failed to (relocate|patch insn)")


@pytest.fixture(scope="module")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None or not Path("/usr/include/bpf/libbpf.h").exists():
        pytest.skip("no C compiler or libbpf-dev headers (apt-get install gcc libbpf-dev): no libbpf oracle")
    d = tmp_path_factory.mktemp("oracle")
    (d / "oracle.c").write_text(ORACLE_C)
    res = subprocess.run([cc, "-O1", "-o", str(d / "oracle"), str(d / "oracle.c"), "-lbpf"], capture_output=True,
                         text=True)
    if res.returncode:
        pytest.skip(f"cannot build the libbpf oracle: {res.stderr.strip()[-300:]}")
    return d / "oracle"


def _libbpf(oracle: Path, obj: Path, btf: Path) -> tuple[dict[int, LibbpfRelo], int]:
    """libbpf's decisions per relocation index, and the relocation it failed on (-1 if none)."""
    res = subprocess.run([str(oracle), str(obj), str(btf)], capture_output=True, text=True, timeout=120)
    out: dict[int, LibbpfRelo] = {}
    failed = -1
    for line in res.stderr.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        idx, text = int(m.group(2)), m.group(3)
        rec = out.setdefault(idx, LibbpfRelo())
        if _FAILED.match(text):
            failed = idx
        elif text.startswith("<"):
            rec.local = text
        elif text.startswith("matching candidate #") and not rec.target:
            rec.target = text.split(" ", 3)[3]
        elif (p := _PATCH.search(text)) is not None:
            rec.insn = int(p.group(1))
            rec.patches.append((p.group(3), int(p.group(4)), int(p.group(5))))
        elif (p := _POISON.search(text)) is not None:
            rec.poisoned.append(int(p.group(1)))
    return out, failed


# -- synthetic targets --------------------------------------------------------------------------------
class _Types:
    def __init__(self) -> None:
        self.b = BTFBuilder(byteorder="little")
        b = self.b
        self.int = b.add_int("int", 4, signed=True)
        self.uint = b.add_int("unsigned int", 4)
        self.long = b.add_int("long", 8, signed=True)
        self.ulong = b.add_int("unsigned long", 8)

    def arr(self, elem: int, n: int) -> int:
        return self.b.add_array(elem, self.int, n)


def _same_as_local(t: _Types, name: str = "syn") -> int:
    b = t.b
    inner = b.add_struct("syn_inner", 8, [("x", t.int, 0), ("y", t.int, 32)])
    e = b.add_enum("syn_e", [("SYN_ONE", 1), ("SYN_TWO", 2), ("SYN_THREE", 3)])
    return b.add_struct(name, 80, [
        ("a", t.int, 0), ("b", t.int, 32), ("in", inner, 64), ("arr", t.arr(t.int, 4), 128), ("u", t.uint, 256),
        ("p", b.add_ptr(inner), 320), ("m", t.arr(t.arr(t.int, 3), 2), 384), ("bf1", t.uint, 576, 3),
        ("bf2", t.int, 579, 5), ("bf3", t.uint, 584, 10), ("sgn", t.int, 608), ("e", e, 640)])


def target_moved(t: _Types) -> None:
    """Every member moved, arrays resized, u widened (unsigned: load size changes), sgn widened (signed:
    the direct load is poisoned), enum values changed, bitfields moved."""
    b = t.b
    inner = b.add_struct("syn_inner", 12, [("pad", t.int, 0), ("y", t.int, 32), ("x", t.int, 64)])
    e = b.add_enum("syn_e", [("SYN_THREE", 30), ("SYN_TWO", 20), ("SYN_ONE", 10)])
    b.add_struct("syn", 120, [
        ("pad", t.long, 0), ("b", t.int, 64), ("a", t.int, 96), ("arr", t.arr(t.int, 8), 128), ("in", inner, 384),
        ("bf2", t.int, 486, 5), ("bf1", t.uint, 491, 3), ("bf3", t.uint, 500, 10), ("u", t.ulong, 512),
        ("p", b.add_ptr(inner), 576), ("m", t.arr(t.arr(t.int, 3), 2), 640), ("sgn", t.long, 832), ("e", e, 896)])


def target_removed(t: _Types) -> None:
    """Most members gone, arr shorter, SYN_THREE gone, syn_inner gone."""
    b = t.b
    b.add_enum("syn_e", [("SYN_ONE", 1), ("SYN_TWO", 2)])
    b.add_struct("syn", 16, [("a", t.int, 0), ("arr", t.arr(t.int, 2), 32), ("sgn", t.int, 96)])


def target_anonymous(t: _Types) -> None:
    """Members inside anonymous unions/structs, a flexible array, bitfields straddling a u32."""
    b = t.b
    inner = b.add_struct("syn_inner", 8, [("y", t.int, 0), ("x", t.int, 32)])
    e = b.add_enum64("syn_e", [("SYN_ONE", 1 << 40), ("SYN_TWO", -2), ("SYN_THREE", 3)], signed=True)
    un = b.add_union("", 8, [("a", t.int, 0), ("both", t.long, 0)])
    st = b.add_struct("", 16, [("b", t.int, 0), ("in", inner, 32), ("sgn", t.int, 96)])
    bits = b.add_struct("", 8, [("bf1", t.uint, 28, 3), ("bf2", t.int, 31, 5), ("bf3", t.uint, 36, 10)])
    b.add_struct("syn", 64, [
        ("", un, 0), ("", st, 64), ("", bits, 192), ("u", t.uint, 256), ("p", b.add_ptr(inner), 320),
        ("m", t.arr(t.arr(t.int, 3), 2), 384), ("e", e, 576), ("arr", t.arr(t.int, 0), 640)])


def target_flavours(t: _Types) -> None:
    """Two identical flavours of syn: not ambiguous."""
    _same_as_local(t, "syn")
    t2 = t
    inner2 = t2.b.add_struct("syn_inner___x", 8, [("x", t.int, 0), ("y", t.int, 32)])
    t2.b.add_struct("syn___2", 80, [
        ("a", t.int, 0), ("b", t.int, 32), ("in", inner2, 64), ("arr", t.arr(t.int, 4), 128), ("u", t.uint, 256),
        ("p", t.b.add_ptr(inner2), 320), ("m", t.arr(t.arr(t.int, 3), 2), 384), ("bf1", t.uint, 576, 3),
        ("bf2", t.int, 579, 5), ("bf3", t.uint, 584, 10), ("sgn", t.int, 608),
        ("e", t.b.add_enum("syn_e___2", [("SYN_ONE", 1)]), 640)])


def target_ambiguous(t: _Types) -> None:
    """Two flavours of syn that disagree on where 'a' is."""
    _same_as_local(t, "syn")
    t.b.add_struct("syn___2", 8, [("b", t.int, 0), ("a", t.int, 32)])


def target_bad_bitfield(t: _Types) -> None:
    """bf1 straddles two u64 words: no load can read it."""
    t.b.add_struct("syn", 24, [("a", t.int, 0), ("b", t.int, 32), ("bf1", t.uint, 62, 3)])


TARGETS: dict[str, Callable[[_Types], None]] = {
    "moved": target_moved, "removed": target_removed, "anonymous": target_anonymous, "flavours": target_flavours,
    "ambiguous": target_ambiguous, "bad_bitfield": target_bad_bitfield,
}


def _compare(oracle: Path, obj: Path, btf_path: Path) -> tuple[int, int]:
    lib, failed = _libbpf(oracle, obj, btf_path)
    btf, ext = BTFExt.from_elf(obj)
    [(sec, name, off, data)] = _programs(obj)
    relos = ext.core_relos[sec]
    insns = bytearray(data)
    core = CoreRelocator(btf, TargetSet.from_file(btf_path))
    if failed >= 0:
        with pytest.raises(CoreRelocationError) as info:
            core.relocate(insns, relos, prog_name=name, section_offset=off)
        assert info.value.relo_index == failed
        relos = relos[:failed]
        insns = bytearray(data)
        core = CoreRelocator(btf, TargetSet.from_file(btf_path))
    ours = core.relocate(insns, relos, prog_name=name, section_offset=off)
    assert len(ours) == len(relos)
    for r in ours:
        want = lib[r.index]
        assert r.local == want.local, r.index
        assert (r.target_spec or "") == want.target, r.index
        assert r.poisoned == bool(want.poisoned), (r, want)
        if not r.poisoned:
            assert r.new_val == want.patches[0][2], (r, want)
        pos = r.insn_index * 8
        end = pos + (16 if data[pos] == 0x18 else 8)
        assert bytes(insns[pos:end]) == _expected_bytes(data, want)[pos:end], (r, want)
    return len(ours), sum(r.poisoned for r in ours)


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_synthetic_target_same_as_libbpf(target: str, oracle: Path, tmp_path: Path):
    t = _Types()
    TARGETS[target](t)
    path = tmp_path / f"{target}.btf"
    path.write_bytes(t.b.encode())
    n, poisoned = _compare(oracle, OBJ, path)
    if target in ("ambiguous", "bad_bitfield"):
        return
    assert n >= 40
    if target == "removed":
        assert poisoned >= 10
    if target == "moved":
        assert poisoned >= 1  # the widened signed field's direct load


@pytest.mark.parametrize("target", ["moved", "flavours", "removed"])
def test_synthetic_type_matches_same_as_libbpf(target: str, oracle: Path, tmp_path: Path):
    obj = tmp_path / "core_synthetic_matches.bpf.o"
    assert _rewrite_kind(OBJ, obj, 8, 12) >= 4
    t = _Types()
    TARGETS[target](t)
    path = tmp_path / f"{target}.btf"
    path.write_bytes(t.b.encode())
    _compare(oracle, obj, path)
