""".BTF.ext: func_info, line_info and CO-RE relocations of a clang-compiled object."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from corebpf.btf import Kind
from corebpf.btf.ext import BTFExt, CoreReloKind, parse_btf_ext
from corebpf.errors import BTFError

CLANG = shutil.which("clang")

CORE_C = r"""
#define SEC(n) __attribute__((section(n), used))
#define __ro __attribute__((preserve_access_index))
struct task_struct { int pid; int tgid; struct task_struct *real_parent; } __ro;
enum sched_state { RUNNING = 0, SLEEPING = 1 };
static long (*bpf_probe_read_kernel)(void *dst, unsigned int size, const void *src) = (void *)113;

SEC("kprobe/do_exit")
int first(struct task_struct *t)
{
	int tgid = 0;
	struct task_struct *p = t->real_parent;
	bpf_probe_read_kernel(&tgid, sizeof(tgid), &p->tgid);
	if (__builtin_preserve_field_info(t->pid, 2))
		tgid++;
	return tgid + __builtin_preserve_enum_value(*(typeof(enum sched_state) *)SLEEPING, 1);
}

SEC("tracepoint/sched/sched_switch")
int second(void *ctx)
{
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj(tmp_path_factory) -> Path:
    if CLANG is None:
        pytest.skip("clang is not installed")
    d = tmp_path_factory.mktemp("ext")
    (d / "core.c").write_text(CORE_C)
    out = d / "core.o"
    subprocess.run([CLANG, "-g", "-O2", "-target", "bpf", "-c", str(d / "core.c"), "-o", str(out)], check=True)
    return out


def test_func_and_line_info(obj: Path) -> None:
    btf, ext = BTFExt.from_elf(obj)
    assert set(ext.func_info) == {"kprobe/do_exit", "tracepoint/sched/sched_switch"}
    (fi,) = ext.func_info["kprobe/do_exit"]
    assert fi.insn_off == 0 and btf[fi.type_id].kind == Kind.FUNC and btf[fi.type_id].name == "first"
    lines = ext.line_info["kprobe/do_exit"]
    assert all(li.file_name.endswith("core.c") for li in lines)
    assert any("bpf_probe_read_kernel" in li.line_text for li in lines)
    assert [li.insn_off for li in lines] == sorted(li.insn_off for li in lines)
    assert all(li.line > 0 for li in lines if li.line_text)


def test_core_relocations(obj: Path) -> None:
    btf, ext = BTFExt.from_elf(obj)
    relos = ext.core_relos["kprobe/do_exit"]
    kinds = {r.kind for r in relos}
    assert CoreReloKind.FIELD_BYTE_OFFSET in kinds and CoreReloKind.FIELD_EXISTS in kinds
    assert CoreReloKind.ENUMVAL_VALUE in kinds
    by_access = {(btf[r.type_id].name, r.access, r.kind) for r in relos}
    assert ("task_struct", "0:2", CoreReloKind.FIELD_BYTE_OFFSET) in by_access  # t->real_parent
    assert ("task_struct", "0:1", CoreReloKind.FIELD_BYTE_OFFSET) in by_access  # p->tgid
    assert ("task_struct", "0:0", CoreReloKind.FIELD_EXISTS) in by_access
    assert ("sched_state", "1", CoreReloKind.ENUMVAL_VALUE) in by_access
    assert all(r.insn_off % 8 == 0 for r in relos)
    assert next(r for r in relos if r.access == "0:2").access_path == [0, 2]
    assert "tracepoint/sched/sched_switch" not in ext.core_relos


def test_bad_headers() -> None:
    with pytest.raises(BTFError, match="offset"):
        parse_btf_ext(b"\x9f\xeb")
    with pytest.raises(BTFError, match="bad magic"):
        parse_btf_ext(b"\0" * 32)
    hdr = struct.pack("<HBBIIIIIII", 0xEB9F, 1, 0, 32, 0, 12, 0, 0, 0, 0)
    with pytest.raises(BTFError, match="run past"):
        parse_btf_ext(hdr + struct.pack("<III", 8, 0, 10))  # 10 records claimed, none there
    with pytest.raises(BTFError, match="record size"):
        parse_btf_ext(hdr + struct.pack("<III", 4, 0, 1))  # func_info records are at least 8 bytes
    # a larger record size (a newer producer) is accepted; the extra bytes are skipped
    ext = parse_btf_ext(hdr[:12] + struct.pack("<I", 24) + hdr[16:] + struct.pack("<IIIIIIII", 12, 0, 1, 8, 3, 0, 0, 0)[:24])
    assert ext.func_info_rec_size == 12 and ext.func_info["#0"][0].type_id == 3
