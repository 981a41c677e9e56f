"""What an object needs, from the compiled corpus and hand-built instructions (no kernel needed):
helpers, kfuncs and map types found equal what the C sources use; ISA levels; minimum versions;
the kernel-versions dataset and its generator."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

from corebpf._sys._generated import HelperId
from corebpf.analysis import kernel_versions as kv
from corebpf.analysis.requirements import analyze, isa_features
from corebpf.asm import encode
from corebpf.asm.instruction import Instruction
from corebpf.elf.objectspec import ObjectSpec

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "corpus"
OBJECTS = sorted(CORPUS.glob("*.bpf.o"))
# helpers that libbpf's macros call on the program's behalf (BPF_CORE_READ, bpf_core_read_str,
# BPF_SEQ_PRINTF, bpf_printk)
MACRO_HELPERS = {"bpf_probe_read_kernel", "bpf_probe_read_kernel_str", "bpf_probe_read", "bpf_probe_read_str",
                 "bpf_probe_read_user", "bpf_probe_read_user_str", "bpf_seq_printf", "bpf_trace_printk"}
HELPERS = {"bpf_" + h.name for h in HelperId}


def _spec(path: Path) -> ObjectSpec:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ObjectSpec.from_file(path)


# libbpf headers that define BPF code (maps, functions) of their own
_CODE_HEADERS = {"bpf/usdt.bpf.h"}


def _source(obj: Path) -> str:
    """The object's C source, with the corpus headers and libbpf's code-carrying headers it includes."""
    text = obj.with_name(obj.name.replace(".bpf.o", ".bpf.c")).read_text()
    for inc in re.findall(r'#include\s+[<"]([^>"]+)[>"]', text):
        local = obj.parent / inc
        if local.exists():
            text += local.read_text()
        elif inc in _CODE_HEADERS and Path("/usr/include", inc).exists():
            text += Path("/usr/include", inc).read_text()
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)  # comments name helpers too


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda p: p.name)
def test_helpers_match_source(obj: Path) -> None:
    reqs = analyze(_spec(obj))
    found = set().union(*(set(p.helpers) for p in reqs.programs.values())) if reqs.programs else set()
    called = {m for m in re.findall(r"\b(bpf_\w+)\s*\(", _source(obj)) if m in HELPERS}
    assert called <= found, f"helpers called in the source but not found: {called - found}"
    assert found - called <= MACRO_HELPERS, f"helpers found that the source does not call: {found - called - MACRO_HELPERS}"
    assert all(not p.unknown_helpers for p in reqs.programs.values())


@pytest.mark.parametrize("obj", OBJECTS, ids=lambda p: p.name)
def test_kfuncs_and_map_types_match_source(obj: Path) -> None:
    spec = _spec(obj)
    reqs = analyze(spec)
    src = _source(obj)
    declared_kfuncs = set(re.findall(r"extern\s+[\w\s\*]+?\b(\w+)\s*\([^;]*\)\s*__ksym", src))
    found = set().union(*(set(p.kfuncs) for p in reqs.programs.values())) if reqs.programs else set()
    assert found <= declared_kfuncs
    called = {k for k in declared_kfuncs if re.search(rf"\b{k}\s*\(", src.split("__ksym", src.count("__ksym"))[-1])}
    assert called <= found, f"kfuncs called but not found: {called - found}"
    declared_maps = set(re.findall(r"__uint\(\s*type\s*,\s*BPF_MAP_TYPE_(\w+)\s*\)", src))
    for p in reqs.programs.values():
        for name, mtype in p.map_types.items():
            m = spec.maps[name]
            if m.is_data:
                assert mtype == "ARRAY"
            elif m.origin == "btf":
                assert mtype in declared_maps, f"{name}: {mtype} not declared in the source"


def _prog(reqs, name: str):
    return reqs.programs[name]


def test_min_versions_are_sane() -> None:
    by_obj = {o.name: analyze(_spec(o)) for o in OBJECTS}
    ringbuf = by_obj["tp_btf.bpf.o"].programs["switch_btf"]
    assert "RINGBUF" in ringbuf.map_types.values()
    assert ringbuf.min_version >= kv.KernelVersion(5, 8)
    assert by_obj["loops.bpf.o"].programs["loop_callback"].min_version >= kv.KernelVersion(5, 17)
    assert "bpf_loop" in by_obj["loops.bpf.o"].programs["loop_callback"].min_reason
    assert by_obj["kfunc.bpf.o"].programs["kfunc_switch"].min_version >= kv.KernelVersion(6, 2)
    assert by_obj["atomics.bpf.o"].programs["atomic_ops"].min_version >= kv.KernelVersion(5, 12)
    assert by_obj["iter.bpf.o"].min_version >= kv.KernelVersion(5, 8)
    for p in by_obj["obj_fentry.bpf.o"].programs.values():
        assert p.min_version >= kv.KernelVersion(5, 5)
    sock = by_obj["socket_filter.bpf.o"].programs["sock_tcp_only"]
    assert sock.min_version is not None and sock.min_version < kv.KernelVersion(5, 0)
    # every program of the corpus gets a version and a reason
    for name, reqs in by_obj.items():
        for p in reqs.programs.values():
            assert p.min_version is not None and p.min_reason, (name, p.name)


def test_optional_attach_type_does_not_raise_the_minimum() -> None:
    xdp = analyze(_spec(CORPUS / "xdp.bpf.o")).programs["xdp_count"]
    assert xdp.attach_type == "XDP"
    assert [r.name for r in xdp.optional] == ["XDP"]
    assert xdp.min_version < kv.KernelVersion(5, 9)


def test_weak_kfunc_does_not_raise_the_minimum() -> None:
    """A __weak kfunc behind bpf_ksym_exists() is optional: obj_ksyms_weak loads on Debian 5.10 (matrix),
    so it must not need kfunc calls (5.13); the strong kfuncs of obj_ksyms still need 6.2."""
    weak = analyze(_spec(CORPUS / "obj_ksyms_weak.bpf.o")).programs["ksyms_weak_read"]
    assert weak.kfuncs == ["corebpf_no_such_kfunc"]
    assert weak.min_version < kv.KernelVersion(5, 13), weak.min_reason
    strong = analyze(_spec(CORPUS / "obj_ksyms.bpf.o"))
    assert strong.min_version >= kv.KernelVersion(6, 2)


def test_kfunc_calls_are_not_bpf2bpf_calls() -> None:
    p = analyze(_spec(CORPUS / "kfunc.bpf.o")).programs["kfunc_switch"]
    assert p.kfuncs == ["bpf_rcu_read_lock", "bpf_rcu_read_unlock"]
    assert "bpf2bpf_calls" not in p.isa
    b2b = analyze(_spec(CORPUS / "obj_bpf2bpf.bpf.o")).programs["b2b_sock"]
    assert "bpf2bpf_calls" in b2b.isa and b2b.subprograms


def _code(*insns: Instruction) -> bytes:
    return encode(list(insns))


@pytest.mark.parametrize("insn,feature", [
    (Instruction(0x16, dst=1, off=1, imm=0), "jmp32"),          # if w1 == 0 goto +1
    (Instruction(0xA5, dst=1, off=1, imm=3), "cpu_v2"),         # if r1 < 3 goto +1
    (Instruction(0xBF, dst=1, src=2, off=8), "cpu_v4"),         # r1 = (s8)r2
    (Instruction(0x3F, dst=1, src=2, off=1), "cpu_v4"),         # r1 s/= r2
    (Instruction(0xD7, dst=1, imm=16), "cpu_v4"),               # r1 = bswap16 r1
    (Instruction(0x06, imm=1), "cpu_v4"),                       # gotol +1
    (Instruction(0x91, dst=1, src=2), "cpu_v4"),                # r1 = *(s8 *)(r2 + 0)
    (Instruction(0xDB, dst=1, src=2, imm=0x01), "atomic_fetch"),
    (Instruction(0xDB, dst=1, src=2, imm=0xF1), "atomic_fetch"),
    (Instruction(0xDB, dst=1, src=2, imm=0x40), "atomic_bitwise"),
    (Instruction(0xDB, dst=1, src=2, imm=0x00), "atomic_add"),
    (Instruction(0xE5, off=1), "may_goto"),
    (Instruction(0xBF, dst=1, src=1, off=1, imm=1), "addr_space_cast"),
])
def test_isa_features(insn: Instruction, feature: str) -> None:
    feats, _, _, _ = isa_features(_code(insn, Instruction(0x95)))
    assert feature in feats
    assert kv.lookup("isa", feature).version is not None


def test_isa_features_plain_code_and_calls() -> None:
    code = _code(Instruction(0xB7, dst=0, imm=0), Instruction(0x85, imm=1), Instruction(0x85, src=1, imm=1),
                 Instruction(0x18, dst=1, src=4, imm=2), Instruction(0x95), Instruction(0x95))
    feats, helpers, calls, callbacks = isa_features(code)
    assert feats == set() and helpers == [1] and calls and callbacks
    _, _, calls2, _ = isa_features(code, frozenset({2}))
    assert not calls2


def test_kernel_version_parsing() -> None:
    assert kv.KernelVersion.parse("5.10.0-28-amd64") == kv.KernelVersion(5, 10)
    assert kv.parse_version("ubuntu/20.04/x86_64/5.4.0-1012-aws") == kv.KernelVersion(5, 4)
    assert kv.parse_version("linux-image-6.1.0-18-amd64") == kv.KernelVersion(6, 1)
    assert kv.parse_version("no version") is None
    assert kv.KernelVersion(5, 10) > kv.KernelVersion(5, 9)
    with pytest.raises(ValueError):
        kv.KernelVersion.parse("x")


def test_dataset_lookups() -> None:
    assert kv.lookup("map_types", "RINGBUF").version == kv.KernelVersion(5, 8)
    assert kv.lookup("helpers", "bpf_loop").version == kv.KernelVersion(5, 17)
    assert kv.lookup("btf_kinds", "ENUM64").version == kv.KernelVersion(6, 0)
    assert kv.lookup("features", "bpf_token").version == kv.KernelVersion(6, 9)
    assert kv.lookup("features", "core_type_matches").version is None  # loader-side, no kernel need
    assert kv.lookup("helpers", "bpf_no_such_helper").version is None
    for name in kv.TABLES:
        for key, entry in kv.table(name).items():
            assert entry["source"], (name, key)
    with pytest.raises(KeyError):
        kv.table("nope")


def test_every_uapi_helper_and_type_has_a_version() -> None:
    from corebpf._sys._generated import AttachType, MapType, ProgType

    missing = [h.name for h in HelperId if h.value and kv.lookup("helpers", "bpf_" + h.name).version is None]
    assert missing == []
    assert [p.name for p in ProgType if p.value and kv.lookup("prog_types", p).version is None] == []
    assert [m.name for m in MapType if m.value and kv.lookup("map_types", m).version is None] == []
    assert [a.name for a in AttachType if kv.lookup("attach_types", a).version is None] == []


def test_generator_reproduces_the_committed_dataset() -> None:
    import importlib.util

    md = ROOT.parent / "shared" / "reference" / "kernel-versions.md"
    if not md.exists():
        pytest.skip(f"{md} is not here (the generator's input lives outside the repository)")
    spec = importlib.util.spec_from_file_location("gen_kernel_versions", ROOT / "tools" / "gen_kernel_versions.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    committed = json.loads((ROOT / "src" / "corebpf" / "analysis" / "kernel_versions.json").read_text())
    assert gen.generate(md.read_text()) == committed
