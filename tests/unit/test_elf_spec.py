"""ObjectSpec from the corpus (no kernel): programs and subprograms against pyelftools as an independent
reader, maps of every kind, global variables and their editing, externs, relocations, linking."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from corebpf._sys._generated import AttachType, MapType, ProgType
from corebpf.elf import ExternKind, ObjectSpec, RelocKind
from corebpf.elf.linker import link_program
from corebpf.elf.maps import BPF_F_MMAPABLE, BPF_F_RDONLY_PROG
from corebpf.elf.sections import BPF_F_SLEEPABLE

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
OBJECTS = sorted(CORPUS.glob("*.bpf.o"))


def spec_of(name: str) -> ObjectSpec:
    return ObjectSpec.from_file(CORPUS / name)


def _functions(path: Path) -> dict[str, tuple[str, bytes]]:
    """name -> (section, code) of every STT_FUNC in an executable section, read with pyelftools."""
    out = {}
    with open(path, "rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        for sym in symtab.iter_symbols():
            if sym["st_info"]["type"] != "STT_FUNC" or not isinstance(sym["st_shndx"], int):
                continue
            sec = elf.get_section(sym["st_shndx"])
            if not sec["sh_flags"] & 0x4:
                continue
            data = sec.data()[sym["st_value"]:sym["st_value"] + sym["st_size"]]
            out[sym.name] = (sec.name, data)
    return out


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda p: p.name)
def test_functions_match_pyelftools(obj: Path):
    spec = ObjectSpec.from_file(obj)
    ours = {n: (p.elf_section, p.instructions) for n, p in {**spec.programs, **spec.subprograms}.items()}
    assert ours == _functions(obj)
    for p in spec.programs.values():
        assert not p.is_subprog and p.section != ".text"
        assert p.type != ProgType.UNSPEC, p
        assert p.func_info and p.func_info[0].insn_off == 0
    for p in spec.subprograms.values():
        assert p.is_subprog and p.section == ".text"
    assert spec.license == "GPL"


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda p: p.name)
def test_every_program_links(obj: Path):
    """Calls land on the first instruction of an appended function; func_info is sorted and starts at 0."""
    spec = ObjectSpec.from_file(obj)
    for prog in spec.programs.values():
        linked = link_program(spec, prog)
        starts = set(linked.layout.values())
        kfuncs = {r.insn for r in linked.relocations if r.kind == RelocKind.EXTERN_CALL}
        n = len(linked.insns) // 8
        for i in range(n):
            code, regs = linked.insns[8 * i], linked.insns[8 * i + 1]
            if code == 0x85 and regs >> 4 == 1 and i not in kfuncs:
                imm = struct.unpack_from("<i", linked.insns, 8 * i + 4)[0]
                assert i + imm + 1 in starts, (prog.name, i, imm)
        offs = [f[0] for f in linked.func_info]
        assert offs == sorted(offs) and offs[0] == 0 and set(offs) == starts
        assert sum(f.insn_count for f in (*spec.programs.values(), *spec.subprograms.values())
                   if f.name in linked.layout) == n


def test_subprograms_are_appended_depth_first():
    spec = spec_of("obj_bpf2bpf.bpf.o")
    assert set(spec.subprograms) == {"fold", "weigh", "global_bucket", "loop_step"}
    xdp = link_program(spec, spec.programs["b2b_xdp"])
    order = sorted(xdp.layout, key=xdp.layout.get)
    assert order[0] == "b2b_xdp" and set(order) == {"b2b_xdp", "fold", "weigh", "global_bucket"}
    tc = link_program(spec, spec.programs["b2b_tc"])
    assert sorted(tc.layout, key=tc.layout.get) == ["b2b_tc", "fold"]
    loop = link_program(spec, spec.programs["b2b_loop"])
    assert sorted(loop.layout, key=loop.layout.get) == ["b2b_loop", "loop_step", "fold"]
    # the callback address load became BPF_PSEUDO_FUNC
    relo = next(r for r in loop.relocations if r.kind == RelocKind.SUBPROG_ADDR)
    assert loop.insns[relo.insn * 8 + 1] >> 4 == 4


def test_sections_give_types_attach_types_and_flags():
    spec = spec_of("obj_probes.bpf.o")
    p = spec.programs
    assert p["probe_kprobe"].type == ProgType.KPROBE and p["probe_kprobe"].attach_to == "do_unlinkat"
    assert p["probe_uprobe_sleepable"].flags & BPF_F_SLEEPABLE and not p["probe_uprobe"].flags
    cg = spec_of("obj_cgroup.bpf.o").programs
    assert cg["cg_ingress"].expected_attach_type == AttachType.CGROUP_INET_INGRESS
    assert cg["cg_connect4"].type == ProgType.CGROUP_SOCK_ADDR
    assert cg["cg_connect4"].expected_attach_type == AttachType.CGROUP_INET4_CONNECT
    fe = spec_of("obj_fentry.bpf.o").programs
    assert fe["unlink_enter"].attach_btf and fe["unlink_enter"].attach_to == "do_unlinkat"
    assert fe["unlink_exit"].expected_attach_type == AttachType.TRACE_FEXIT


def test_btf_maps_and_initialisers():
    spec = spec_of("obj_map_in_map.bpf.o")
    outer = spec.maps["outer_array"]
    assert outer.type == MapType.ARRAY_OF_MAPS and outer.value_size == 4 and outer.max_entries == 3
    assert outer.inner is not None and outer.inner.type == MapType.ARRAY and outer.inner.max_entries == 4
    assert sorted(outer.contents) == [(0, "inner_a"), (2, "inner_b")]
    assert spec.maps["outer_hash"].contents == [(5, "inner_b")]
    inner = spec.maps["inner_a"]
    assert (inner.key_size, inner.value_size) == (4, 8) and inner.key_type_id and inner.value_type_id
    pa = spec_of("obj_prog_array.bpf.o").maps["pa_table"]
    assert pa.type == MapType.PROG_ARRAY and sorted(pa.contents) == [(0, "pa_first"), (3, "pa_second")]
    assert spec_of("obj_pinning.bpf.o").maps["corebpf_pinned_counts"].pinning == 1


def test_legacy_maps():
    spec = spec_of("obj_legacy_maps.bpf.o")
    flows = spec.maps["legacy_flows"]
    assert flows.origin == "legacy" and flows.type == MapType.HASH and flows.max_entries == 128 and flows.flags == 1
    relos = spec.programs["legacy_count"].relocations
    assert {r.target for r in relos if r.kind == RelocKind.MAP} == {"legacy_counts", "legacy_flows"}


def test_global_data_maps_and_variables():
    spec = spec_of("obj_globals.bpf.o")
    assert set(spec.maps) == {".rodata", ".rodata.settings", ".data", ".data.stats", ".bss"}
    ro = spec.maps[".rodata"]
    assert ro.readonly and ro.flags & BPF_F_RDONLY_PROG and ro.flags & BPF_F_MMAPABLE and ro.max_entries == 1
    assert spec.maps[".bss"].data == bytearray(spec.maps[".bss"].value_size)
    v = spec.variables
    assert v["target_port"] == 80 and v["cookie"] == 0xDEADBEEFCAFEF00D and v["label"] == "default"
    assert v["bounds"] == {"lo": 10, "hi": 20} and int(v["run_mode"]) == 1 and v["counter"] == 5
    assert v.info("custom_ro").section == ".rodata.settings" and v.info("calls").section == ".bss"
    v["target_port"] = 443
    v["bounds"] = {"lo": 1, "hi": 2}
    v["label"] = "abc"
    assert v["target_port"] == 443 and v["bounds"] == {"lo": 1, "hi": 2} and v["label"] == "abc"
    off = v.info("target_port").offset
    assert ro.data[off:off + 4] == (443).to_bytes(4, "little")
    with pytest.raises(KeyError, match="no global variable"):
        v["nope"] = 1
    with pytest.raises(ValueError):
        v["target_port"] = b"\x01"  # wrong size
    copy = spec.copy()
    copy.variables["target_port"] = 1
    assert spec.variables["target_port"] == 443


def test_data_relocations_carry_offsets():
    spec = spec_of("obj_globals.bpf.o")
    data = [r for r in spec.programs["globals_xdp"].relocations if r.kind == RelocKind.DATA]
    assert {r.target for r in data} >= {".rodata", ".bss", ".data", ".data.stats", ".rodata.settings"}


def test_kconfig_externs_layout():
    spec = spec_of("obj_kconfig.bpf.o")
    kc = {e.name: e for e in spec.externs.values()}
    assert all(e.kind == ExternKind.KCONFIG for e in kc.values())
    assert kc["CONFIG_NR_CPUS"].offset == 0  # 8-byte alignment first, as libbpf sorts
    assert kc["CONFIG_COREBPF_DOES_NOT_EXIST"].weak and not kc["LINUX_KERNEL_VERSION"].weak
    offsets = sorted((e.offset, e.offset + e.size) for e in kc.values())
    assert all(a[1] <= b[0] for a, b in zip(offsets, offsets[1:]))
    kmap = spec.maps[".kconfig"]
    assert kmap.origin == "kconfig" and kmap.value_size == max(e for _, e in offsets) and kmap.readonly
    with pytest.raises(TypeError, match="kconfig"):
        spec.variables["CONFIG_HZ"] = 1


def test_ksym_externs():
    spec = spec_of("obj_ksyms.bpf.o")
    e = spec.externs
    assert e["bpf_rcu_read_lock"].is_func and e["bpf_rcu_read_lock"].typed
    assert not e["schedule"].typed and not e["schedule"].weak
    assert e["corebpf_no_such_kfunc"].weak and e["corebpf_no_such_symbol"].weak
    kinds = {(r.target, r.kind) for r in spec.programs["ksyms_read"].relocations}
    assert ("bpf_rcu_read_lock", RelocKind.EXTERN_CALL) in kinds and ("schedule", RelocKind.EXTERN_LD64) in kinds
    var = spec_of("obj_ksym_var.bpf.o").externs["runqueues"]
    assert var.typed and not var.is_func and var.target_type_id


def test_spec_repr_and_edit_program():
    spec = spec_of("obj_multi.bpf.o")
    prog = spec.programs["multi_tc_ok"]
    prog.type = ProgType.SCHED_ACT
    assert "multi_tc_ok" in repr(spec) and "sched_act" in repr(prog)
