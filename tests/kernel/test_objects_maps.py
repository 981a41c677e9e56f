"""Maps of loaded objects: static initialisers of map-in-map and prog arrays, pinning by name (reuse and
incompatibility), legacy maps, typed keys/values, several programs per section, bpf2bpf calls."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

import corebpf
from corebpf.elf import ObjectSpec
from corebpf.loader.maps import MapLoadError
from corebpf.maps import MapType

from corpus_util import BPFFS, ensure_bpffs, too_new_programs
from kernel_rules import skip_if_older

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
PKT = bytes(64)
XDP_ABORTED, XDP_DROP, XDP_PASS = 0, 1, 2


@pytest.fixture
def pin_root():
    ensure_bpffs()
    path = f"{BPFFS}/corebpf_objects_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    os.mkdir(path)
    yield path
    for name in os.listdir(path):
        os.unlink(os.path.join(path, name))
    os.rmdir(path)


def test_map_in_map_static_initialisers():
    with corebpf.load(CORPUS / "obj_map_in_map.bpf.o") as obj:
        outer, outer_hash = obj.maps["outer_array"], obj.maps["outer_hash"]
        a, b = obj.maps["inner_a"], obj.maps["inner_b"]
        assert outer.type == MapType.ARRAY_OF_MAPS and outer_hash.type == MapType.HASH_OF_MAPS
        assert outer[0] == a.id and outer[2] == b.id and outer.lookup(1) is None
        assert outer_hash[5] == b.id and len(outer_hash) == 1
        obj.programs["mim_lookup"].test_run(PKT)
        assert a[1] == 1 and b[1] == 10  # typed: __u64 values decode as ints


def test_prog_array_static_initialiser_and_tail_call():
    with corebpf.load(CORPUS / "obj_prog_array.bpf.o") as obj:
        table = obj.maps["pa_table"]
        assert table[0] == obj.programs["pa_first"].id and table[3] == obj.programs["pa_second"].id
        assert table.lookup(1) is None
        assert obj.programs["pa_entry"].test_run(PKT).return_value == XDP_PASS
        assert obj.variables["hits"][:2] == [1, 1]
    spec = ObjectSpec.from_file(CORPUS / "obj_prog_array.bpf.o")
    spec.variables["pa_slot"] = 3
    with spec.load() as obj:
        assert obj.programs["pa_entry"].test_run(PKT).return_value == XDP_DROP
    spec.variables["pa_slot"] = 2  # empty slot: the tail call falls through
    with spec.load() as obj:
        assert obj.programs["pa_entry"].test_run(PKT).return_value == XDP_ABORTED


def test_pinning_by_name_reuses_the_map(pin_root: str):
    path = os.path.join(pin_root, "corebpf_pinned_counts")
    with corebpf.load(CORPUS / "obj_pinning.bpf.o", pin_root=pin_root) as first:
        m = first.maps["corebpf_pinned_counts"]
        assert os.path.exists(path) and first.pinned_maps == [path]
        m[6] = 41
        first_id = m.id
    with corebpf.load(CORPUS / "obj_pinning.bpf.o", pin_root=pin_root) as second:
        again = second.maps["corebpf_pinned_counts"]
        assert again.id == first_id and again[6] == 41
    spec = ObjectSpec.from_file(CORPUS / "obj_pinning.bpf.o")
    spec.maps["corebpf_pinned_counts"].max_entries = 32
    with pytest.raises(MapLoadError, match="incompatible.*max_entries 16 != 32"):
        spec.load(pin_root=pin_root)


def test_failed_load_does_not_pin(pin_root: str):
    spec = ObjectSpec.from_file(CORPUS / "obj_pinning.bpf.o")
    prog = spec.programs["pin_count"]
    prog.instructions, prog.relocations = bytes(8), []  # one invalid instruction: the program load fails
    prog.func_info, prog.line_info = prog.func_info[:1], []
    with pytest.raises(corebpf.errors.BPFError):
        spec.load(pin_root=pin_root)
    assert os.listdir(pin_root) == []


def test_legacy_maps_section():
    with corebpf.load(CORPUS / "obj_legacy_maps.bpf.o") as obj:
        counts, flows = obj.maps["legacy_counts"], obj.maps["legacy_flows"]
        assert counts.type == MapType.ARRAY and (counts.key_size, counts.value_size, counts.max_entries) == (4, 8, 4)
        assert flows.type == MapType.HASH and flows.flags & 1
        obj.programs["legacy_count"].test_run(PKT)
        assert int.from_bytes(counts[1], "little") == 1  # no BTF: raw bytes


def test_typed_keys_and_values():
    with corebpf.load(CORPUS / "obj_verifier_fail.bpf.o", programs=["vf_good"]) as obj:
        values = obj.maps["vf_values"]
        assert values.key_type.name == "__u32" and values.value_type.name == "__u64"
        values[1] = 2**40
        assert values[1] == 2**40 and values.lookup(1) == 2**40
        values[0] = (7).to_bytes(8, "little")  # raw bytes still work
        assert list(values) == [0, 1] and dict(values.items()) == {0: 7, 1: 2**40}
        obj.programs["vf_good"].test_run(PKT)
        assert obj.variables["vf_seen"] == 7


def test_several_programs_per_section():
    with corebpf.load(CORPUS / "obj_multi.bpf.o") as obj:
        sections = {name: p.section for name, p in obj.programs.items()}
        assert sections == {"multi_xdp_pass": "xdp", "multi_xdp_drop": "xdp", "multi_tc_ok": "tc",
                            "multi_tc_shot": "tc", "multi_sock_all": "socket", "multi_sock_none": "socket"}
        assert obj.programs["multi_xdp_pass"].test_run(PKT).return_value == XDP_PASS
        assert obj.programs["multi_xdp_drop"].test_run(PKT).return_value == XDP_DROP
        assert obj.variables["counts"][:2] == [1, 1]


def _fold(a: int, b: int) -> int:
    return ((a * 31) ^ b) & 0xFFFFFFFF


def _weigh(n: int) -> int:
    return (_fold(n, 7) + _fold(n >> 1, 3)) & 0xFFFFFFFF


def test_bpf2bpf_calls_across_sections():
    obj_path = CORPUS / "obj_bpf2bpf.bpf.o"
    programs = ["b2b_xdp", "b2b_tc", "b2b_sock"]  # bpf2bpf calls (4.16); b2b_loop has its own test
    assert not set(programs) & set(too_new_programs(obj_path)), "the bpf2bpf programs must load here"
    with corebpf.load(obj_path, programs=programs) as obj:
        res = obj.programs["b2b_xdp"].test_run(PKT)
        assert obj.variables["results"][0] == _weigh(64)
        assert res.return_value == (XDP_DROP if 64 > 1000 else XDP_PASS)
        # the subprograms are appended after each program (libbpf's layout), so the loaded code is longer
        spec = obj.spec
        for name in programs:
            assert obj.programs[name].info.xlated_prog_len // 8 > spec.programs[name].insn_count


def test_bpf_loop_callback_calls_a_subprogram():
    skip_if_older("helpers", "bpf_loop")
    with corebpf.load(CORPUS / "obj_bpf2bpf.bpf.o", programs=["b2b_loop"]) as obj:
        assert obj.programs["b2b_loop"].test_run(PKT).return_value == XDP_PASS
        assert obj.variables["results"][3] == sum(_fold(i, 1) for i in range(4))


def test_program_subset_and_autoload():
    spec = ObjectSpec.from_file(CORPUS / "obj_multi.bpf.o")
    spec.programs["multi_tc_ok"].autoload = False
    spec.programs["multi_tc_shot"].autoload = False
    with spec.load() as obj:
        assert set(obj.programs) == {"multi_xdp_pass", "multi_xdp_drop", "multi_sock_all", "multi_sock_none"}


def test_map_edits_before_load():
    spec = ObjectSpec.from_file(CORPUS / "obj_pinning.bpf.o")
    m = spec.maps["corebpf_pinned_counts"]
    m.pinning = 0
    m.max_entries = 1024
    m.type = MapType.LRU_HASH
    m.flags = 0
    with spec.load() as obj:
        live = obj.maps["corebpf_pinned_counts"]
        assert live.max_entries == 1024 and live.type == MapType.LRU_HASH and obj.pinned_maps == []


def test_per_cpu_struct_values_through_btf():
    with corebpf.load(CORPUS / "core_bench.bpf.o") as obj:
        samples = obj.maps["samples"]
        assert samples.percpu and samples.value_type.name == "bench_sample"
        per_cpu = samples[0]
        assert isinstance(per_cpu, list) and all(v == {"a": 0, "b": 0, "c": 0, "d": 0, "e": 0} for v in per_cpu)
        samples[1] = {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}  # one value for every CPU
        assert all(v.e == 5 for v in samples[1])
        samples[2] = [{"a": cpu, "b": 0, "c": 0, "d": 0, "e": 0} for cpu in range(len(per_cpu))]
        assert [v.a for v in samples[2]] == list(range(len(per_cpu)))


def test_optional_programs_load_only_on_request():
    spec = ObjectSpec.from_file(CORPUS / "obj_optional.bpf.o")
    opt = spec.programs["opt_on_request"]
    assert opt.section == "xdp" and opt.elf_section == "?xdp" and not opt.autoload and opt.func_info
    with spec.load() as obj:
        assert set(obj.programs) == {"opt_always"}
    opt.autoload = True
    with spec.load() as obj:
        assert obj.programs["opt_on_request"].test_run(PKT).return_value == XDP_DROP
