"""Attach from section names (what ``Object.attach_all`` calls), on real programs."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from corebpf import links
from test_links_util import count, counting_program, send_udp, veth_pair


def test_attach_program_by_section_names():
    with counting_program("tracepoint") as (tp, m1), counting_program("raw_tracepoint") as (raw, m2):
        with links.attach_program(tp, "tracepoint/syscalls/sys_enter_getpgid") as a, \
                links.attach_program(raw, "raw_tp/sys_enter") as b:
            os.getpgid(0)
            assert count(m1) == 1 and count(m2) >= 1
            assert a.target.startswith("tracepoint") and b.target.startswith("raw_tracepoint")
        os.getpgid(0)
        assert count(m1) == 1


def test_section_needing_target_says_which_keyword():
    with counting_program("xdp", 2) as (p, _):
        with pytest.raises(links.NeedsTarget, match="interface="):
            links.attach_program(p, "xdp")


def test_attach_all_attaches_what_it_can_and_reports_the_rest():
    with counting_program("tracepoint") as (tp, m1), counting_program("xdp", 2) as (xp, m2), veth_pair() as net:
        obj = SimpleNamespace(programs={"on_getpgid": tp, "on_packet": xp, "later": xp},
                              spec=SimpleNamespace(programs={
                                  "on_getpgid": SimpleNamespace(section="tp/syscalls/sys_enter_getpgid", autoload=True),
                                  "on_packet": SimpleNamespace(section="xdp", autoload=True),
                                  "later": SimpleNamespace(section="xdp", autoload=True)}))
        report = links.attach_all(obj, {"on_packet": {"interface": "vb", "netns": net["ns_b"]}})
        try:
            assert set(report.links) == {"on_getpgid", "on_packet"}
            assert "interface=" in report.skipped["later"]
            os.getpgid(0)
            send_udp(net, 2)
            assert count(m1) == 1 and count(m2) >= 2
        finally:
            report.close()
        assert not report.links
        with pytest.raises(links.NeedsTarget):
            links.attach_all(obj, strict=True)


def test_corpus_object_attach_all_with_plan_b():
    """The committed links_overhead object, loaded by corebpf.load's spec path: every tracing program the
    kernel takes is attached from its section name; the rest are reported with reasons."""
    from pathlib import Path

    import corebpf
    from corebpf import features

    spec = corebpf.ObjectSpec.from_file(Path(__file__).parents[1] / "corpus" / "links_overhead.bpf.o")
    if not features.attach_method("fentry").supported:
        spec.programs["fentry_getpgid"].autoload = False  # refused at load under lockdown
    with spec.load() as obj:
        report = links.attach_all(obj, skip_failures=True)
        try:
            assert {"tp_getpgid", "raw_sys_enter", "btf_sys_enter"} <= set(report.links)
            kprobes = features.attach_method("kprobe_pmu").supported or features.attach_method("kprobe_legacy").supported
            assert ("kprobe_getpgid" in report.links) == kprobes
            if not kprobes:
                assert "kprobe_pmu" in report.skipped["kprobe_getpgid"]
            before = obj.variables["tp_hits"]
            for _ in range(10):
                os.getpgid(0)
            assert obj.variables["tp_hits"] - before == 10
            assert obj.variables["raw_hits"] >= 10 and obj.variables["btf_hits"] >= 10
        finally:
            report.close()
        before = obj.variables["tp_hits"]
        os.getpgid(0)
        assert obj.variables["tp_hits"] == before
