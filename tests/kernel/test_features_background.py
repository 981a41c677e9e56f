"""The forked prober (``corebpf.features.background``): same results as probing in-process, a clean
stop when cancelled, the child's failure reported, no fork where threads already run."""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest

from corebpf import features
from corebpf.features.background import ProbeFailed, ProbeProcess


def _summary(rep: features.FeatureReport) -> dict[str, Any]:
    return {"prog_types": {k: v.supported for k, v in rep.prog_types.items()},
            "variants": {k: {n: r.supported for n, r in v.items()} for k, v in rep.prog_variants.items()},
            "map_types": {k: v.supported for k, v in rep.map_types.items()},
            "attach": {k: (v.supported, v.errno) for k, v in rep.attach.items()},
            "misc": {k: v.supported for k, v in rep.misc.items()},
            "helpers": {k: (h.probed, set(h.supported), set(h.unsupported)) for k, h in rep.helpers.items()}}


def _start() -> ProbeProcess:
    if threading.active_count() > 1:
        pytest.skip("threads run in this test process: the prober would not fork")
    prober = ProbeProcess.start()
    assert prober is not None
    return prober


def test_child_report_matches_in_process() -> None:
    prober = _start()
    prober.go()
    child = prober.result()
    assert prober.result() is child  # collected once
    assert child.from_cache is None and child.duration > 0
    features.clear_cache()
    try:
        here = features.probe_all()
    finally:
        features.clear_cache()
    assert _summary(child) == _summary(here)
    # the child's verifier words come along too (marshal carries everything)
    assert any(h.unsupported and all(h.unsupported.values()) for h in child.helpers.values() if h.probed)


def test_cancel_reaps_the_child_without_probing() -> None:
    prober = _start()
    pid = prober.pid
    prober.cancel()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # already reaped
    assert not [d for d in os.listdir("/sys/fs/cgroup") if d == f"corebpf-probe-{pid}"]


def test_child_failure_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**_: object) -> None:
        raise RuntimeError("synthetic child failure")

    monkeypatch.setattr(features, "probe_all", boom)  # the forked child inherits it
    prober = _start()
    prober.go()
    with pytest.raises(ProbeFailed, match="RuntimeError: synthetic child failure"):
        prober.result()


def test_no_fork_while_threads_run() -> None:
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        assert ProbeProcess.start() is None
    finally:
        stop.set()
        t.join()


def test_build_report_with_fork_matches_without() -> None:
    from corebpf.node.readiness import build_report

    if threading.active_count() > 1:
        pytest.skip("threads run in this test process: the prober would not fork")
    forked = build_report(fork=True, inventory=True)
    features.clear_cache()
    try:
        plain = build_report(fork=False, inventory=False)
    finally:
        features.clear_cache()
    assert forked["features_error"] is None and forked["inventory"]["available"]
    assert forked["verdict"]["status"] == plain["verdict"]["status"]
    assert {f["id"] for f in forked["verdict"]["findings"]} == {f["id"] for f in plain["verdict"]["findings"]}
    for section in ("prog_types", "map_types", "attach", "misc"):
        assert {k: v["supported"] for k, v in forked["features"][section].items()} == \
            {k: v["supported"] for k, v in plain["features"][section].items()}


def test_split_probers_match_in_process() -> None:
    from corebpf.features.background import collect, start_split

    if threading.active_count() > 1:
        pytest.skip("threads run in this test process: the probers would not fork")
    probers = start_split(2)
    assert len(probers) == 2
    for prober in probers:
        prober.go()
    merged = collect(probers)
    features.clear_cache()
    try:
        here = features.probe_all()
    finally:
        features.clear_cache()
    assert _summary(merged) == _summary(here)
    for section in ("prog_types", "prog_variants", "map_types", "helpers", "attach", "misc"):
        assert list(getattr(merged, section)) == list(getattr(here, section)), section  # same order
