"""Contract and leak tests: every public call returns the documented types; repeated full probes
leave the fd count flat and no program, map or link behind."""

from __future__ import annotations

import os
from dataclasses import fields

from corebpf import features, node
from corebpf.features import ATTACH_METHODS, FeatureReport, HelperSupport, ProbeResult
from corebpf.node import Fact, NodeFacts


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _own_bpf_fds() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("anon_inode:bpf") or target.startswith("anon_inode:[perf_event]"):
            out.append(target)
    return out


def test_node_contract() -> None:
    f = node.facts(mount=False)
    assert isinstance(f, NodeFacts)
    for fl in fields(NodeFacts):
        assert getattr(f, fl.name) is not None, fl.name
    for fact in (f.unprivileged_bpf_disabled, f.perf_event_paranoid, f.jit.enable, f.jit.limit, f.kernel.boot_id):
        assert isinstance(fact, Fact) and fact.source
        assert (fact.value is None) == (fact.error is not None) or fact.value is not None
    assert all(isinstance(v, node.MountStatus) for v in f.mounts.values())
    d = f.to_dict()
    assert set(d) == {fl.name for fl in fields(NodeFacts)}


def test_features_contract() -> None:
    rep = features.probe_all()
    assert isinstance(rep, FeatureReport)
    for section in (rep.prog_types, rep.map_types, rep.attach, rep.misc):
        for name, r in section.items():
            assert isinstance(r, ProbeResult) and r.name == name
            assert isinstance(r.supported, bool) and isinstance(r.reason, str) and r.reason
            assert r.errno is None or isinstance(r.errno, int)
    assert set(rep.attach) == set(ATTACH_METHODS)
    for name, h in rep.helpers.items():
        assert isinstance(h, HelperSupport) and h.prog_type == name
        assert not set(h.supported) & set(h.unsupported)
        if h.probed:
            assert len(h.supported) + len(h.unsupported) + len(h.skipped) == len(features.helper_names(True))
    for name in ATTACH_METHODS:
        assert isinstance(features.attach_method(name), ProbeResult)


def test_repeated_probes_leak_nothing() -> None:
    features.probe_all()  # warm imports and BTF lookups
    before = _fds()
    held = sorted(_own_bpf_fds())  # other tests of the session may hold objects: compare, not assert empty
    for _ in range(3):
        features.clear_cache()
        features.probe_all()
    assert _fds() == before
    assert sorted(_own_bpf_fds()) == held
    features.clear_cache()


def test_serial_and_threaded_probing_agree() -> None:
    def summary(rep: FeatureReport) -> dict:
        return {"progs": {k: v.supported for k, v in rep.prog_types.items()},
                "maps": {k: v.supported for k, v in rep.map_types.items()},
                "attach": {k: (v.supported, v.errno) for k, v in rep.attach.items()},
                "helpers": {k: v.supported for k, v in rep.helpers.items()}}

    features.clear_cache()
    serial = summary(features.probe_all(threads=1))
    features.clear_cache()
    threaded = summary(features.probe_all(threads=3))
    features.clear_cache()
    assert serial == threaded
