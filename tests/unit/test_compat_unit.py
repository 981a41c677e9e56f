"""``compat`` and minimal BTF without a kernel: corpus objects checked against their *own* BTF (which
describes every kernel type they use) and against hand-edited copies of it (fields removed, renamed),
BTFHub-style archive trees, corrupt archives, and the reachability of poisoned relocations."""

from __future__ import annotations

import copy
import io
import lzma
import tarfile
import warnings
from pathlib import Path
from typing import Iterable, Optional

import pytest

from corebpf.analysis.compat import check_compat
from corebpf.analysis.kernel_versions import KernelVersion
from corebpf.analysis.minimize import TypeMarks, build_btf, compare_relocations, mark_object, minimize
from corebpf.analysis.reach import reachable
from corebpf.analysis.targets import KernelTarget, TargetError, find_targets
from corebpf.asm import encode
from corebpf.asm.instruction import Instruction as I
from corebpf.btf import BTF, Kind
from corebpf.btf.builder import BTFBuilder
from corebpf.btf.core import TargetSet
from corebpf.elf.objectspec import ObjectSpec

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _spec(name: str) -> ObjectSpec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ObjectSpec.from_file(CORPUS / name)


def own_btf(spec: ObjectSpec) -> BTF:
    """The object's BTF as a kernel's: every type it uses, without its CO-RE flavours (``___v2``) and
    own data (VAR/DATASEC), plus the ``btf_trace_*`` typedefs its tp_btf programs attach to."""
    local = spec.btf
    b = BTFBuilder(byteorder=local.byteorder)
    for t in local.all_types():
        if "___" not in t.name and t.kind not in (Kind.VAR, Kind.DATASEC):
            b.copy_type(t)
    void_p = b.add_ptr(0)
    proto = b.add_func_proto(0, [("", void_p)])
    for p in spec.programs.values():
        if p.section.startswith("tp_btf/"):
            b.add_typedef(f"btf_trace_{p.attach_to}", b.add_ptr(proto))
    return BTF.from_bytes(b.encode())


def edited(btf: BTF, struct: str, drop: Iterable[str] = (), rename: Optional[dict[str, str]] = None) -> BTF:
    """A copy of ``btf`` whose ``struct`` lost members ``drop`` and had members renamed."""
    rename = rename or {}
    t = btf.find(struct, Kind.STRUCT)
    changed = copy.copy(t)
    changed.members = [m._replace(name=rename.get(m.name, m.name)) for m in t.members if m.name not in set(drop)]
    b = BTFBuilder(byteorder=btf.byteorder)
    b.copy_type(changed)  # first, so every reference to the struct gets the edited copy
    for ty in btf.all_types():
        b.copy_type(ty)
    return BTF.from_bytes(b.encode())


def target(btf: BTF, version: Optional[str] = "6.1", name: str = "edited") -> KernelTarget:
    return KernelTarget(name, "<memory>", KernelVersion.parse(version) if version else None, _btf=btf)


# -- reachability ----------------------------------------------------------------------------------------
POISON = I(0x85, imm=0xBAD2310)


def test_guarded_poison_is_unreachable() -> None:
    # r1 = 0 (a field_exists that resolved to 0); if r1 == 0 goto exit; poisoned; exit
    code = encode([I(0xB7, dst=1, imm=0), I(0x15, dst=1, off=1, imm=0), POISON, I(0x95)])
    assert reachable(code) == {0, 1, 3}


def test_unguarded_poison_is_reachable() -> None:
    code = encode([I(0xB7, dst=1, imm=1), I(0x15, dst=1, off=1, imm=0), POISON, I(0x95)])
    assert 2 in reachable(code)
    unknown = encode([I(0x79, dst=1, src=10, off=-8), I(0x15, dst=1, off=1, imm=0), POISON, I(0x95)])
    assert 2 in reachable(unknown)  # a value from the stack is not known: both branches


def test_reachability_through_arithmetic_calls_and_subprograms() -> None:
    code = encode([
        I(0xB7, dst=6, imm=3), I(0x57, dst=6, imm=4),       # r6 = 3 & 4 = 0 (callee-saved)
        I(0x85, src=1, imm=3),                              # call subprog at 6
        I(0x55, dst=6, off=1, imm=0), I(0x95),              # r6 != 0 never: fall through to exit
        POISON,
        I(0xB7, dst=0, imm=0), I(0x95),                     # subprog
    ])
    live = reachable(code)
    assert {0, 1, 2, 3, 4, 6, 7} <= live and 5 not in live


# -- compat against the object's own (edited) BTF ----------------------------------------------------
def test_own_btf_is_compatible() -> None:
    spec = _spec("core_fields.bpf.o")
    report = check_compat(spec, [target(own_btf(spec))])
    k = report.kernels[0]
    assert k.error is None and report.ok, {n: v.problems for n, v in k.verdicts.items()}


def test_removed_field_is_reported() -> None:
    spec = _spec("core_fields.bpf.o")
    btf = edited(own_btf(spec), "task_struct", drop=["start_time"])
    report = check_compat(spec, [target(btf)])
    assert not report.ok
    for v in report.kernels[0].verdicts.values():
        assert any("struct task_struct.start_time" in p and p.startswith("missing") for p in v.problems), v.problems
        assert not any("real_parent" in p for p in v.problems)


def test_renamed_field_is_reported() -> None:
    spec = _spec("core_fields.bpf.o")
    btf = edited(own_btf(spec), "task_struct", rename={"real_parent": "parent_real"})
    verdicts = check_compat(spec, [target(btf)]).kernels[0].verdicts
    for v in verdicts.values():
        assert any("struct task_struct.real_parent" in p for p in v.problems), v.problems


def test_guarded_missing_field_is_ok() -> None:
    # core_exists reads i_atime through field-exists fallbacks: with only one layout present the
    # others are poisoned but dead code, so the program still loads
    spec = _spec("core_exists.bpf.o")
    verdicts = check_compat(spec, [target(own_btf(spec))]).kernels[0].verdicts
    v = verdicts["read_entry"]
    assert v.ok, v.problems


def test_old_kernel_version_is_reported_without_btf_enums() -> None:
    spec = _spec("core_fields.bpf.o")
    verdicts = check_compat(spec, [target(own_btf(spec), "5.4")]).kernels[0].verdicts
    assert "program type TRACING needs >= 5.5" in verdicts["exec_btf"].problems
    assert "helper bpf_probe_read_kernel needs >= 5.5" in verdicts["exec_raw"].problems
    unknown = check_compat(spec, [target(own_btf(spec), None)]).kernels[0].verdicts
    assert unknown["exec_btf"].ok and any("kernel version unknown" in n for n in unknown["exec_btf"].notes)


def test_missing_kfunc_fails_the_object() -> None:
    spec = _spec("kfunc.bpf.o")
    btf = own_btf(spec)
    ok = check_compat(spec, [target(btf, "6.6")]).kernels[0].verdicts["kfunc_switch"]
    assert ok.ok, ok.problems  # the object's BTF declares the kfuncs it calls as FUNCs
    b = BTFBuilder()
    b.add_int("int", 4, signed=True)
    bare = check_compat(spec, [target(BTF.from_bytes(b.encode()), "6.6")]).kernels[0].verdicts["kfunc_switch"]
    assert "kfunc bpf_rcu_read_lock missing" in bare.problems


def test_btf_enums_decide_helpers_over_versions() -> None:
    spec = _spec("loops.bpf.o")
    b = BTFBuilder()
    b.add_enum("bpf_func_id", [("BPF_FUNC_unspec", 0), ("BPF_FUNC_map_lookup_elem", 1)])
    v = check_compat(spec, [target(BTF.from_bytes(b.encode()), "6.6")]).kernels[0].verdicts["loop_callback"]
    assert "helper bpf_loop missing (mainline since 5.17)" in v.problems  # a kernel's own enum wins over its version
    b2 = BTFBuilder()
    b2.add_enum("bpf_func_id", [("BPF_FUNC_unspec", 0), ("BPF_FUNC_loop", 181)])
    v2 = check_compat(spec, [target(BTF.from_bytes(b2.encode()), "5.10")]).kernels[0].verdicts["loop_callback"]
    assert not any("bpf_loop" in p for p in v2.problems)  # a backport: present despite 5.10


# -- minimal BTF against the object's own BTF --------------------------------------------------------
@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("core_*.bpf.o")))
def test_minimal_btf_relocates_identically(name: str) -> None:
    spec = _spec(name)
    full = own_btf(spec)
    data = minimize([spec], full)
    small = BTF.from_bytes(data)
    assert compare_relocations(spec, TargetSet.from_btf(full), TargetSet.from_btf(small)) == []
    assert len(data) < len(full.raw)


def test_minimal_btf_keeps_only_touched_members() -> None:
    spec = _spec("core_fields.bpf.o")
    small = BTF.from_bytes(minimize([spec], own_btf(spec)))
    task = small.find("task_struct", Kind.STRUCT)
    assert {m.name for m in task.members} == {"pid", "real_parent", "tgid", "start_time", "comm", "flags"}
    parent = task.member("real_parent")
    assert small[parent.type_id].kind == Kind.PTR and small[parent.type_id].type == task  # kept: it is marked
    assert {m.name for m in small.find("linux_binprm", Kind.STRUCT).members} == {"buf"}


def test_marks_type_relocations_follow_pointers() -> None:
    b = BTFBuilder()
    i = b.add_int("int", 4, signed=True)
    s = b.add_struct("inner", 4, [("x", i, 0)])
    p = b.add_ptr(s)
    b.add_typedef("inner_p", p)
    btf = BTF.from_bytes(b.encode())
    marks = TypeMarks(btf)
    marks.mark_type(4, True)
    assert marks.types == {4, 3, 2} and marks.members[2] == set()  # struct kept without members
    marks2 = TypeMarks(btf)
    marks2.mark_type_match(2)
    assert marks2.types == {2, 1} and marks2.members[2] is None  # TYPE_MATCHES: every member
    out = BTF.from_bytes(build_btf(marks))
    assert out.find("inner", Kind.STRUCT).members == []
    marks3 = TypeMarks(btf)
    marks3.mark_type(4, False)  # a field's type: the pointer is kept, its target is not
    out3 = BTF.from_bytes(build_btf(marks3))
    assert [t.kind for t in out3] == [Kind.PTR, Kind.TYPEDEF] and out3[1].type_id == 0


def test_mark_object_counts_resolved_relocations() -> None:
    spec = _spec("core_types.bpf.o")
    marks = TypeMarks(own_btf(spec))
    assert mark_object(marks, spec) > 0 and marks.types


# -- targets: BTFHub trees, bad input ------------------------------------------------------------
def _tar_xz(member: str, data: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return lzma.compress(raw.getvalue())


def test_btfhub_tree(tmp_path: Path) -> None:
    spec = _spec("core_fields.bpf.o")
    d = tmp_path / "ubuntu" / "20.04" / "x86_64"
    d.mkdir(parents=True)
    raw = own_btf(spec).raw
    (d / "5.4.0-1012-aws.btf.tar.xz").write_bytes(_tar_xz("5.4.0-1012-aws.btf", raw))
    (d / "5.15.0-1.btf.tar.xz").write_bytes(_tar_xz("5.15.0-1.btf", raw))
    targets = find_targets([str(tmp_path)])
    assert [(t.name, str(t.version)) for t in targets] == [
        ("ubuntu/20.04/x86_64/5.15.0-1", "5.15"), ("ubuntu/20.04/x86_64/5.4.0-1012-aws", "5.4")]
    report = check_compat(spec, targets)
    by = {k.name: k for k in report.kernels}
    assert by["ubuntu/20.04/x86_64/5.15.0-1"].ok
    assert "program type TRACING needs >= 5.5" in by["ubuntu/20.04/x86_64/5.4.0-1012-aws"].verdicts["exec_btf"].problems
    assert find_targets([str(tmp_path)], {"*": "6.1"})[0].version == KernelVersion(6, 1)


def test_corrupt_archive_and_missing_paths(tmp_path: Path) -> None:
    bad = tmp_path / "5.10.0-bad.btf.tar.xz"
    bad.write_bytes(lzma.compress(b"not a tar archive at all")[:-7])
    spec = _spec("core_fields.bpf.o")
    k = check_compat(spec, find_targets([str(bad)])).kernels[0]
    assert k.error and not k.ok and "5.10.0-bad" in k.name
    with pytest.raises(TargetError, match="no such file"):
        find_targets([str(tmp_path / "missing.btf")])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TargetError, match="no BTF files"):
        find_targets([str(empty)])
    with pytest.raises(TargetError, match="not a kernel version"):
        find_targets([str(bad)], {"*": "banana"})


def test_kernel_specs_resolve_lazily() -> None:
    targets = find_targets(["debian:6.1", "linux-image-5.10.0-32-amd64"])
    assert [(t.name, str(t.version)) for t in targets] == [("debian:6.1", "6.1"),
                                                          ("linux-image-5.10.0-32-amd64", "5.10")]
    assert all(t._btf is None for t in targets)  # nothing fetched until a BTF is needed


def test_vmload_report_parsing() -> None:
    from corebpf.analysis.vmload import MARKER, parse_output

    text = "boot noise\n" + MARKER + '{"release": "6.1.0", "objects": {"a.o": {"p": {"ok": true, "error": ""}}}}\n'
    assert parse_output(text)["objects"]["a.o"]["p"]["ok"] is True
    assert parse_output("kernel panic") is None
    assert parse_output(MARKER + "{truncated") is None
