"""Every program of every corpus object, loaded by bpftool: our disassembly of its translated
code must equal ``bpftool prog dump xlated`` line for line, and its bytes must round-trip."""

from __future__ import annotations

import pytest

from corebpf.asm import Dialect, KernelSymbols, decode, disassemble, dump_xlated, encode, read_btf, read_xlated_by_id
from corebpf.asm.btf_source import ProgramBTF

from corpus_util import (
    MUST_LOAD, bpftool, bpftool_dump_xlated, bpftool_version, corpus_objects, loaded_or_skip,
    skip_if_kernel_too_old,
)

pytestmark = pytest.mark.skipif(bpftool() is None, reason="bpftool is not installed (apt-get install bpftool)")

OBJECTS = corpus_objects()


@pytest.fixture(scope="module")
def dialect() -> Dialect:
    return Dialect.for_bpftool(bpftool_version())


@pytest.fixture(scope="module", params=OBJECTS, ids=lambda p: p.name)
def loaded(request) -> tuple:
    """One bpftool load per object for all the checks below: (object, {name: id}, kallsyms)."""
    obj = request.param
    skip_if_kernel_too_old(obj)
    with loaded_or_skip(obj) as progs:
        assert progs, f"bpftool loaded no program from {obj.name}"
        # read after the load, so the JITed subprograms' symbols are there
        yield obj, progs, KernelSymbols.load()


def test_corpus_is_not_empty():
    assert len(OBJECTS) >= 12
    assert MUST_LOAD <= {p.name for p in OBJECTS}


def test_xlated_matches_bpftool(loaded, dialect):
    obj, progs, kallsyms = loaded
    for name, prog_id in progs.items():
        ours = dump_xlated(prog_id, dialect=dialect, kallsyms=kallsyms)
        theirs = bpftool_dump_xlated(prog_id)
        assert ours == theirs, f"{obj.name}:{name} differs from bpftool"
        assert any(line.endswith("exit") for line in ours)


def test_xlated_opcodes_and_linum_match_bpftool(loaded, dialect):
    obj, progs, kallsyms = loaded
    for name, prog_id in progs.items():
        # bpftool 7.1 takes one of the two options per call
        ours = dump_xlated(prog_id, dialect=dialect, kallsyms=kallsyms, opcodes=True)
        assert ours == bpftool_dump_xlated(prog_id, "opcodes"), f"{obj.name}:{name} (opcodes)"
        ours = dump_xlated(prog_id, dialect=dialect, kallsyms=kallsyms, linum=True)
        assert ours == bpftool_dump_xlated(prog_id, "linum"), f"{obj.name}:{name} (linum)"


def test_xlated_round_trip_and_records(loaded):
    obj, progs, _ = loaded
    for name, prog_id in progs.items():
        prog = read_xlated_by_id(prog_id)
        xlated, map_ids, func_info, line_info, btf_id = prog
        assert prog.prog_id == prog_id and prog.name == name[:15]
        insns = decode(xlated, strict=True)  # kernel-internal forms included
        assert encode(insns) == xlated
        assert sum(i.slots for i in insns) * 8 == len(xlated)
        # every map the code references by id is one of the program's maps
        referenced = {i.imm_lo for i in insns if i.is_ld_imm64 and i.src in (1, 2)}
        assert referenced <= set(map_ids)
        # func/line info point at instruction starts, and name real BTF functions
        starts = set()
        slot = 0
        for insn in insns:
            starts.add(slot)
            slot += insn.slots
        assert func_info and func_info[0].insn_off == 0
        assert all(f.insn_off in starts for f in func_info)
        assert all(li.insn_off in starts for li in line_info)
        btf = ProgramBTF.from_bytes(read_btf(btf_id))
        assert all(btf.func_signature(f.type_id) for f in func_info)


NEW_FORMS = ("&(void __percpu *)", "bswap", "s/=", "s%=", "(s8)", "(s16)", "(s32)", "*(s8 *)", "*(s16 *)",
             "*(s32 *)", "gotol", "may_goto", "addr_space_cast", "load_acquire", "store_release", "gotox")


def test_current_dialect_differs_only_on_new_forms(loaded):
    """CURRENT may differ from LEGACY only in the text of a newer instruction form."""
    obj, progs, _ = loaded
    differing = []
    for prog_id in progs.values():
        prog = read_xlated_by_id(prog_id)
        legacy = disassemble(prog.xlated, dialect=Dialect.LEGACY)
        current = disassemble(prog.xlated, dialect=Dialect.CURRENT)
        differing += [(old, new) for old, new in zip(legacy, current, strict=True) if old != new]
    for old, new in differing:
        old_num, _, old_text = old.partition(": ")
        new_num, _, new_text = new.partition(": ")
        assert old_num.strip() == new_num.strip()  # padding differs from slot 1000 on, never the number
        assert old_text == new_text or any(form in new_text for form in NEW_FORMS), (old, new)
    if obj.name == "raw_tp.bpf.o":  # this kernel inlines bpf_get_smp_processor_id with a per-CPU move
        assert any("&(void __percpu *)" in new for _, new in differing)
