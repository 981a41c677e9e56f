"""Nothing leaks: fds, tracefs probe entries, qdiscs, namespaces and cgroups are released after every
attach family, also when the attach fails halfway or the test body raises."""

from __future__ import annotations

import os
import socket

import pytest

import corebpf
from corebpf import links
from corebpf.links._tracefs import our_probe_events
from corebpf.links.tracing import load as load_tracing
from test_links_util import (c_binary, child_cgroup, counting_insns, counting_program, open_fds, sh, veth_pair)

LOOP = "int main(void) { return 0; }\nint corebpf_fn(int x) { return x; }\n"


def _mine(file: str) -> list[str]:
    return [ln for ln in our_probe_events(file) if f"_{os.getpid()}_" in ln]


def test_every_family_attach_close_loop_keeps_fds_flat():
    with veth_pair() as net, child_cgroup() as cg, c_binary(LOOP, "leakprog") as exe, \
            corebpf.Map.create("array", 4, 8, 1) as m, \
            counting_program("tracepoint") as (tp, _), counting_program("raw_tracepoint") as (raw, _r), \
            counting_program("perf_event") as (pe, _p), counting_program("kprobe") as (up, _u), \
            counting_program("xdp", 2) as (xp, _x), counting_program("sched_cls") as (tc, _t), \
            counting_program("cgroup_skb", 1, expected_attach_type="cgroup_inet_egress") as (cgp, _c), \
            counting_program("socket_filter", 0xFFFF) as (sf, _s), \
            load_tracing(counting_insns(m.fileno()), "tp_btf", "sys_enter") as btf, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        steps = [
            lambda: links.tracepoint(tp, "syscalls", "sys_enter_getpgid"),
            lambda: links.raw_tracepoint(raw, "sys_enter"),
            lambda: links.tp_btf(btf),
            lambda: links.perf_event(pe, "cpu-clock", sample_freq=100),
            lambda: links.uprobe(up, exe, "corebpf_fn"),
            lambda: links.uprobe(up, exe, "corebpf_fn", method="tracefs"),
            lambda: links.xdp(xp, "vb", netns=net["ns_b"]),
            lambda: links.xdp(xp, "vb", netns=net["ns_b"], method="netlink"),
            lambda: links.tc(tc, "vb", netns=net["ns_b"]),
            lambda: links.tc(tc, "vb", netns=net["ns_b"], method="netlink"),
            lambda: links.cgroup(cgp, cg, "cgroup_inet_egress"),
            lambda: links.cgroup(cgp, cg, "cgroup_inet_egress", method="prog_attach"),
            lambda: links.socket_filter(sf, sock),
        ]

        def one_round() -> None:
            for step in steps:
                try:
                    link = step()
                except links.AttachError as exc:  # e.g. no uprobe_events on this kernel: also must not leak
                    assert exc.attempts
                    continue
                with link:
                    pass

        one_round()  # warm caches (features, BTF, pyroute2 imports)
        before = open_fds()
        for _ in range(3):
            one_round()
        assert open_fds() == before
        assert not _mine("uprobe_events") and not _mine("kprobe_events")
        assert "clsact" not in sh("tc", "-n", net["ns_b"], "qdisc", "show", "dev", "vb").stdout
        assert "prog/xdp" not in sh("ip", "-n", net["ns_b"], "-d", "link", "show", "vb").stdout
    assert not [n for n in sh("ip", "netns", "list").stdout.split() if n in (net["ns_a"], net["ns_b"])]
    assert not os.path.exists(cg)


def test_exception_inside_with_block_still_detaches():
    with counting_program("tracepoint") as (p, m):
        with pytest.raises(RuntimeError):
            with links.tracepoint(p, "syscalls", "sys_enter_getpgid"):
                raise RuntimeError("test body failed")
        os.getpgid(0)
        assert int.from_bytes(bytes(m[(0).to_bytes(4, "little")]), "little") == 0


def test_failed_attaches_leak_nothing():
    with veth_pair() as net, counting_program("xdp", 2) as (xp, _), counting_program("tracepoint") as (tp, _t):
        before = open_fds()
        # wrong program type for each hook: the kernel refuses after we opened perf events / qdiscs
        for _ in range(3):
            with pytest.raises((links.AttachError, corebpf.BPFError)):
                links.perf_event(tp, "cpu-clock")
            with pytest.raises((links.AttachError, corebpf.BPFError, Exception)):
                links.tc(xp, "vb", netns=net["ns_b"], method="netlink")
            with pytest.raises(links.AttachError):
                links.tracepoint(xp, "syscalls", "sys_enter_getpgid")
        assert open_fds() == before
        assert "clsact" not in sh("tc", "-n", net["ns_b"], "qdisc", "show", "dev", "vb").stdout
        # netlink XDP refuses to replace a program it did not attach
        with links.xdp(xp, "vb", netns=net["ns_b"]):
            with pytest.raises(links.AttachError, match="already has an XDP program"):
                links.xdp(xp, "vb", netns=net["ns_b"], method="netlink")
        assert open_fds() == before
