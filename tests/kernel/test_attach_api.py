"""The attach entry points on Program and Object (each link family is tested in test_attach_*)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corebpf import ObjectSpec, inventory

OBJECT = Path(__file__).resolve().parent.parent / "corpus" / "links_overhead.bpf.o"
# kprobe and fentry have plan-B tests of their own; this file is about the API, so it keeps to
# the hooks every kernel in the matrix has.
PORTABLE = ("tp_getpgid", "raw_sys_enter", "btf_sys_enter")


def _load():
    spec = ObjectSpec.from_file(OBJECT)
    for name, prog in spec.programs.items():
        prog.autoload = name in PORTABLE
    return spec.load()


def _getpgid(n: int = 20) -> None:
    for _ in range(n):
        os.getpgid(0)


def test_program_attach_by_kind_counts_and_stops():
    with _load() as obj:
        prog = obj.programs["raw_sys_enter"]
        with prog.attach("raw_tracepoint", "sys_enter") as link:
            _getpgid()
            assert obj.variables["raw_hits"] >= 20
            assert link.method
        seen = obj.variables["raw_hits"]
        _getpgid()
        assert obj.variables["raw_hits"] == seen


def test_program_attach_by_section_and_bad_kind():
    with _load() as obj:
        with obj.programs["tp_getpgid"].attach():
            _getpgid()
            assert obj.variables["tp_hits"] >= 20
        with pytest.raises(ValueError, match="unknown attach kind"):
            obj.programs["tp_getpgid"].attach("no_such_hook")


def test_object_attach_all_then_close_detaches_everything():
    obj = _load()
    ids = {p.id for p in obj.programs.values()}
    report = obj.attach_all()
    assert set(report.links) == set(PORTABLE)
    _getpgid()
    assert min(obj.variables[v] for v in ("tp_hits", "raw_hits", "btf_hits")) >= 20
    # raw_tp/tp_btf attach through BPF links on every kernel; tracepoints may be perf-ioctl attached
    attached = {link.prog_id for link in inventory.links(owners=False, pins=False)}
    assert {obj.programs["raw_sys_enter"].id, obj.programs["btf_sys_enter"].id} <= attached
    obj.close()
    assert not ids & {p.id for p in inventory.programs(owners=False, pins=False)}
