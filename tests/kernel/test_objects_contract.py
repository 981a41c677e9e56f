"""Contract: every accessor on every loaded corpus object returns the documented types, and every
object releases all of its BPF fds on close (psutil-style "call everything on everything"). The strict
whole-fd-table checks are in test_loader_cleanup.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import corebpf
from corebpf._sys._generated import AttachType
from corebpf.errors import BPFPermissionError, VerifierError

from corpus_util import corpus_objects

# refused on this kernel on purpose (the tag test asserts why); trampoline users are found by type
REFUSED = {"obj_ksym_var.bpf.o": VerifierError, "obj_verifier_fail.bpf.o": VerifierError}
_TRAMPOLINE_ATTACH = (AttachType.TRACE_FENTRY, AttachType.TRACE_FEXIT, AttachType.MODIFY_RETURN,
                      AttachType.LSM_MAC, AttachType.LSM_CGROUP)


def _bpf_fds() -> set[str]:
    """This process's fds of BPF objects (maps, programs, BTF, links): what a leak would leave."""
    return {fd for fd in os.listdir("/proc/self/fd") if _describe(fd).startswith("anon_inode:bpf")}


def _describe(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


@pytest.fixture(scope="module", autouse=True)
def _shared_state():
    """The process-wide vmlinux BTF (kept open on purpose) and probe caches, before fds are counted."""
    from corebpf.btf import BTF
    from corebpf.loader.btf import btf_features

    BTF.vmlinux()
    btf_features()


@pytest.mark.parametrize("path", corpus_objects(), ids=lambda p: p.name)
def test_everything_on_every_object(path: Path, tmp_path: Path):
    before = _bpf_fds()
    spec = corebpf.ObjectSpec.from_file(path)
    if path.name == "obj_pinning.bpf.o":
        for m in spec.maps.values():
            m.pinning = 0  # no pins left behind by this test
    trampolines = any(p.expected_attach_type in _TRAMPOLINE_ATTACH for p in spec.programs.values())
    try:
        obj = spec.load()
    except (VerifierError, BPFPermissionError) as exc:
        expected = BPFPermissionError if trampolines and isinstance(exc, BPFPermissionError) else \
            REFUSED.get(path.name, ())
        assert isinstance(exc, expected), exc
        assert _bpf_fds() == before
        return
    with obj:
        assert isinstance(obj, corebpf.Object) and obj.name == path.name.split(".")[0]
        assert set(obj.programs) == {n for n, p in spec.programs.items() if p.autoload}
        for name, prog in obj.programs.items():
            assert isinstance(prog, corebpf.Program)
            assert prog.id > 0 and len(prog.tag) == 16 and prog.fd.fileno() >= 0
            assert prog.section == spec.programs[name].section and prog.name == name[:15]
            assert prog.info.id == prog.id and repr(prog)
        assert set(obj.maps) == set(spec.maps)
        for name, m in obj.maps.items():
            assert isinstance(m, corebpf.Map) and m.id > 0 and m.info.id == m.id and repr(m)
            ms = spec.maps[name]
            assert (m.key_size, m.value_size) == (ms.key_size, ms.value_size)
        for name in obj.variables:
            obj.variables[name]  # every variable decodes
        assert repr(obj)
    assert obj.closed and all(p.closed for p in obj.programs.values()) and all(m.closed for m in obj.maps.values())
    obj.close()  # idempotent
    extra = _bpf_fds() - before
    assert not extra, {fd: _describe(fd) for fd in extra}
