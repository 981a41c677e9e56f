"""Poisoned CO-RE relocations in the real verifier: dead poisoned code loads, reachable poisoned
code is refused at that instruction, and the log is explained the way libbpf explains it."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from corebpf.btf.builder import BTFBuilder
from corebpf.btf.core import CoreRelo, CoreReloKind as K, CoreRelocator, TargetSet, explain_verifier_log, find_poisoned
from corebpf.errors import VerifierError
from corebpf.programs import Program

_SLOT = struct.Struct("<BBhi")


@pytest.fixture(scope="module")
def targets() -> TargetSet:
    if not Path("/sys/kernel/btf/vmlinux").exists():
        pytest.skip("this kernel has no BTF (/sys/kernel/btf/vmlinux): CONFIG_DEBUG_INFO_BTF is off")
    return TargetSet.vmlinux()


def _program(guarded: bool, targets: TargetSet):
    """r0 = field_exists(task_struct___cbpf.no_such_field); [if r0 == 0 goto out;]
    r0 = *(u32 *)(r10 - 8 + off) (poisoned: the field does not exist); out: r0 = 0; exit"""
    b = BTFBuilder(byteorder="little")
    i = b.add_int("int", 4, signed=True)
    t = b.add_struct("task_struct___cbpf", 8, [("pid", i, 0), ("no_such_field", i, 32)])
    local = b.to_btf()
    insns = [_SLOT.pack(0x7A, 0x0A, -8, 0),         # *(u64 *)(r10 - 8) = 0
             _SLOT.pack(0xB7, 0, 0, 1)]             # r0 = 1 (field exists?)
    if guarded:
        insns.append(_SLOT.pack(0x15, 0, 2, 0))     # if r0 == 0 goto +2
    insns += [_SLOT.pack(0x61, 0xA0, 4, 0),         # r0 = *(u32 *)(r10 + 4) -- relocated, poisoned
              _SLOT.pack(0x07, 0, 0, 0),            # r0 += 0
              _SLOT.pack(0xB7, 0, 0, 0),            # r0 = 0
              _SLOT.pack(0x95, 0, 0, 0)]            # exit
    code = bytearray(b"".join(insns))
    load_at = 3 if guarded else 2
    relos = [CoreRelo(8, t, 0, K.FIELD_EXISTS, "0:1"), CoreRelo(8 * load_at, t, 0, K.FIELD_BYTE_OFFSET, "0:1")]
    res = CoreRelocator(local, targets).relocate(code, relos, prog_name="poison")
    return bytes(code), res, load_at


def test_guarded_poisoned_load_is_dead_code(targets: TargetSet):
    code, res, at = _program(True, targets)
    assert [r.new_val for r in res][0] == 0 and res[1].poisoned
    with Program.load(code, "socket_filter", name="core_guard") as prog:
        assert prog.id > 0


def test_reachable_poisoned_load_is_refused_and_explained(targets: TargetSet):
    code, res, at = _program(False, targets)
    assert res[1].poisoned and res[1].insn_index == at
    with pytest.raises(VerifierError) as info:
        Program.load(code, "socket_filter", name="core_poison")
    log = info.value.log
    assert f"{at}: (85) call unknown#195896080" in log and "invalid func unknown#195896080" in log
    assert find_poisoned(res, at) is res[1]
    fixed = explain_verifier_log(log, res)
    assert fixed is not None
    assert (f"{at}: <invalid CO-RE relocation>\nfailed to resolve CO-RE relocation <byte_off> [2] "
            "struct task_struct___cbpf.no_such_field (0:1 @ offset 4)") in fixed
