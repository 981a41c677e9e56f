"""Kernel-free parts of the loader: libbpf's map names, ring buffer sizes, kconfig value encoding, BTF
finalisation, and data relocations written into linked instructions (with stand-in fds)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from corebpf.btf import BTF, Kind
from corebpf.elf import ObjectSpec, RelocKind
from corebpf.elf.linker import link_program
from corebpf.loader.btf import finalize_btf
from corebpf.loader.externs import ExternError, KsymResolution, ResolvedExterns, _encode_kconfig, kernel_version_code
from corebpf.loader.maps import _ringbuf_size, kernel_map_name
from corebpf.loader.relocate import apply_data_relocations

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def spec_of(name: str) -> ObjectSpec:
    return ObjectSpec.from_file(CORPUS / name)


@pytest.mark.parametrize("obj, section, expected", [
    ("my_object_name", ".rodata", "my_objec.rodata"),  # libbpf's own examples
    ("my_object_name", ".bss", "my_objec.bss"),
    ("my_object_name", ".kconfig", "my_obje.kconfig"),
    ("globals", ".data", "globals.data"),
    ("x", ".rodata.abracadabra", ".rodata.abracad"),
    ("obj", ".data.stats", ".data.stats"),
])
def test_internal_map_names_follow_libbpf(obj: str, section: str, expected: str):
    spec = spec_of("obj_globals.bpf.o").maps[".data"].copy()
    spec.name = section
    assert kernel_map_name(obj, spec) == expected


def test_user_map_names_are_cut_to_15():
    spec = spec_of("obj_pinning.bpf.o").maps["corebpf_pinned_counts"]
    assert kernel_map_name("obj", spec) == "corebpf_pinned_"


@pytest.mark.parametrize("size, expected", [(1, 4096), (4096, 4096), (4097, 8192), (3 * 4096, 4 * 4096)])
def test_ringbuf_sizes_round_to_power_of_two_pages(size: int, expected: int):
    assert _ringbuf_size(size) == expected


def test_kernel_version_code():
    assert kernel_version_code("6.18.0-1-amd64") == (6 << 16) + (18 << 8)
    assert kernel_version_code("5.10.300") == (5 << 16) + (10 << 8) + 255
    assert kernel_version_code("weird") == 0


def test_kconfig_encoding():
    spec = spec_of("obj_kconfig.bpf.o")
    ext = spec.externs
    t = lambda name: spec.btf[ext[name].type_id].type  # noqa: E731
    assert _encode_kconfig(ext["CONFIG_BPF_SYSCALL"], t("CONFIG_BPF_SYSCALL"), "y") == b"\x01"
    assert _encode_kconfig(ext["CONFIG_BPF_JIT"], t("CONFIG_BPF_JIT"), "m") == (2).to_bytes(4, "little")
    assert _encode_kconfig(ext["CONFIG_BPF_EVENTS"], t("CONFIG_BPF_EVENTS"), "y") == b"y"
    assert _encode_kconfig(ext["CONFIG_HZ"], t("CONFIG_HZ"), "250") == (250).to_bytes(4, "little")
    assert _encode_kconfig(ext["CONFIG_NR_CPUS"], t("CONFIG_NR_CPUS"), "0x40") == (64).to_bytes(8, "little")
    with pytest.raises(ExternError, match="bool"):
        _encode_kconfig(ext["CONFIG_BPF_SYSCALL"], t("CONFIG_BPF_SYSCALL"), "m")
    with pytest.raises(ExternError, match="not a number"):
        _encode_kconfig(ext["CONFIG_HZ"], t("CONFIG_HZ"), "fast")
    with pytest.raises(ExternError, match="does not fit"):
        _encode_kconfig(ext["CONFIG_HZ"], t("CONFIG_HZ"), str(1 << 40))


def test_finalized_btf_has_sizes_offsets_and_allocated_externs():
    spec = spec_of("obj_ksyms.bpf.o")
    btf = BTF.from_bytes(finalize_btf(spec))
    ksyms = btf.find(".ksyms", Kind.DATASEC)
    assert ksyms.size == 4 * len(ksyms.vars) and [v.offset for v in ksyms.vars] == [4 * i for i in range(len(ksyms.vars))]
    for v in ksyms.vars:
        var = btf[v.type_id]
        assert var.kind == Kind.VAR and int(var.linkage) == 1
    dummy = btf.find("dummy_ksym", Kind.VAR)
    assert dummy.type.kind == Kind.INT
    bss = btf.find(".bss", Kind.DATASEC)
    assert bss.size == spec.maps[".bss"].value_size
    assert sorted(v.offset for v in bss.vars) == sorted(spec.variables.info(btf[v.type_id].name).offset
                                                        for v in bss.vars)
    kc = BTF.from_bytes(finalize_btf(spec_of("obj_kconfig.bpf.o"))).find(".kconfig", Kind.DATASEC)
    kspec = spec_of("obj_kconfig.bpf.o")
    assert kc.size == kspec.maps[".kconfig"].value_size
    assert {kc.btf[v.type_id].name: v.offset for v in kc.vars} == {e.name: e.offset for e in kspec.externs.values()}


def _insn(buf: bytearray, i: int) -> tuple[int, int, int, int, int]:
    code, regs, off, imm = struct.unpack_from("<BBhi", buf, 8 * i)
    return code, regs & 0xF, regs >> 4, off, imm


def test_data_relocations_write_libbpf_forms():
    spec = spec_of("obj_ksyms.bpf.o")
    linked = link_program(spec, spec.programs["ksyms_read"])
    fds = {".bss": 77}
    ext = ResolvedExterns(ksyms={
        "schedule": KsymResolution(address=0xFFFFFFFF82266810, resolved=True),
        "corebpf_no_such_symbol": KsymResolution(),
        "bpf_rcu_read_lock": KsymResolution(btf_id=1234, resolved=True),
        "bpf_rcu_read_unlock": KsymResolution(btf_id=1235, fd_array_index=1, resolved=True),
        "corebpf_no_such_kfunc": KsymResolution(),
    })
    apply_data_relocations(spec, linked, fds, ext)
    by = {}
    for r in linked.relocations:
        by.setdefault((r.kind, r.target), []).append(r.insn)
    for i in by[(RelocKind.DATA, ".bss")]:
        assert _insn(linked.insns, i)[2] == 2 and _insn(linked.insns, i)[4] == 77  # PSEUDO_MAP_VALUE, fd
    i = by[(RelocKind.EXTERN_LD64, "schedule")][0]
    assert _insn(linked.insns, i)[2] == 0 and _insn(linked.insns, i)[4] == 0x82266810 - (1 << 32)
    assert _insn(linked.insns, i + 1)[4] == -1  # 0xffffffff
    i = by[(RelocKind.EXTERN_CALL, "bpf_rcu_read_lock")][0]
    assert _insn(linked.insns, i)[2:] == (2, 0, 1234)
    i = by[(RelocKind.EXTERN_CALL, "bpf_rcu_read_unlock")][0]
    assert _insn(linked.insns, i)[2:] == (2, 1, 1235)
    for i in by.get((RelocKind.EXTERN_CALL, "corebpf_no_such_kfunc"), []):
        assert _insn(linked.insns, i)[2:] == (2, 0, 0)  # libbpf 1.1's unresolved weak kfunc form


def test_kconfig_loads_point_into_the_kconfig_map():
    spec = spec_of("obj_kconfig.bpf.o")
    linked = link_program(spec, spec.programs["kconfig_read"])
    apply_data_relocations(spec, linked, {".bss": 5, ".kconfig": 9}, ResolvedExterns())
    for r in linked.relocations:
        if r.kind == RelocKind.EXTERN_LD64:
            code, _, src, _, imm = _insn(linked.insns, r.insn)
            assert (code, src, imm) == (0x18, 2, 9)
            assert _insn(linked.insns, r.insn + 1)[4] == spec.externs[r.target].offset
