"""A load that fails halfway leaves no fd and no kernel object behind.

Every map, program and BTF object the loader creates is recorded by wrapping the ``bpf()`` command
wrappers (the real kernel calls still happen); after the failure each recorded id must be gone from
the kernel and ``/proc/self/fd`` must be back to what it was.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

import corebpf
from corebpf._sys import ops
from corebpf.elf import ObjectSpec
from corebpf.errors import BPFNotFoundError, CoreBPFError, VerifierError
from corebpf.loader.maps import MapLoadError
from corebpf.maps.info import map_info
from corebpf.programs.info import program_info

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def created(monkeypatch):
    """Ids of every map/program/BTF created through corebpf while the test runs."""
    ids: dict[str, list[int]] = {"map": [], "prog": [], "btf": []}
    real_map_create, real_prog_load, real_btf_load = ops.map_create, ops.prog_load, ops.btf_load

    def map_create(*args, **kwargs):
        fd = real_map_create(*args, **kwargs)
        ids["map"].append(map_info(fd.fileno()).id)
        return fd

    def prog_load(attr, **kwargs):
        ret = real_prog_load(attr, **kwargs)
        if ret >= 0:
            ids["prog"].append(program_info(ret).id)
        return ret

    def btf_load(data, **kwargs):
        ret, log = real_btf_load(data, **kwargs)
        if ret >= 0:
            from corebpf._sys import _generated as g

            info = g.BtfInfo()
            ops.obj_get_info_by_fd(ret, info)
            ids["btf"].append(info.id)
        return ret, log

    monkeypatch.setattr(ops, "map_create", map_create)
    monkeypatch.setattr(ops, "prog_load", prog_load)
    monkeypatch.setattr(ops, "btf_load", btf_load)
    return ids


def _assert_gone(ids: dict[str, list[int]]) -> None:
    deadline = time.monotonic() + 5  # the kernel frees objects after an RCU grace period
    pending = [(kind, i) for kind, lst in ids.items() for i in lst]
    while pending:
        still = []
        for kind, obj_id in pending:
            try:
                ops.get_fd_by_id(kind, obj_id).close()
                still.append((kind, obj_id))
            except BPFNotFoundError:
                pass
        if not still:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"kernel objects left behind: {still}")
        pending = still
        time.sleep(0.05)


def test_verifier_failure_after_maps_and_a_program(created):
    before = _fds()
    with pytest.raises(VerifierError, match="vf_bad"):
        corebpf.load(CORPUS / "obj_verifier_fail.bpf.o")
    assert _fds() == before
    assert created["map"] and created["prog"] and created["btf"], created  # it really failed halfway
    _assert_gone(created)


def test_map_creation_failure_midway(created):
    spec = ObjectSpec.from_file(CORPUS / "obj_map_in_map.bpf.o")
    spec.maps["outer_hash"].max_entries = 0  # the last BTF map: refused after the others were created
    before = _fds()
    with pytest.raises(MapLoadError, match="outer_hash"):
        spec.load()
    assert _fds() == before
    assert len(created["map"]) >= 3, created
    _assert_gone(created)


def test_failure_at_the_last_step_pinning(created):
    with tempfile.TemporaryDirectory() as not_bpffs:
        before = _fds()
        with pytest.raises(CoreBPFError):
            corebpf.load(CORPUS / "obj_pinning.bpf.o", pin_root=not_bpffs)
        assert _fds() == before
        assert os.listdir(not_bpffs) == []
    assert created["prog"], created
    _assert_gone(created)


def test_successful_loads_release_everything_on_close(created):
    before = _fds()
    for _ in range(20):
        with corebpf.load(CORPUS / "obj_globals.bpf.o") as obj:
            obj.variables["counter"] = 1  # mmaps the data map too
    assert _fds() == before
    _assert_gone(created)
