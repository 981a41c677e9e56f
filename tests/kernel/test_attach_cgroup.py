"""cgroup_skb on a cgroup the test creates: a child process inside sends UDP on loopback; the program
counts its packets (BPF link and legacy BPF_PROG_ATTACH), and stops when the link closes."""

from __future__ import annotations

import os
import sys

import pytest

from corebpf import links
from corebpf._sys import ops
from test_links_util import child_cgroup, count, counting_program, run_in_cgroup

SENDER = ("import socket\n"
          "r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); r.bind(('127.0.0.1', 0))\n"
          "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
          "for _ in range(5): s.sendto(b'x', r.getsockname())\n")


@pytest.mark.parametrize("method", ["bpf_link", "prog_attach"])
def test_cgroup_skb_egress_counts_and_stops(method):
    with child_cgroup() as cg, counting_program("cgroup_skb", 1, expected_attach_type="cgroup_inet_egress") as (p, m):
        with links.cgroup(p, cg, "cgroup_inet_egress", method=method) as link:
            assert link.method == method
            fd = os.open(cg, os.O_RDONLY)
            try:
                assert p.id in ops.prog_query(fd, 1)[0]  # BPF_CGROUP_INET_EGRESS
            finally:
                os.close(fd)
            r = run_in_cgroup(cg, [sys.executable, "-c", SENDER])
            assert r.returncode == 0, r.stderr
            seen = count(m)
            assert seen >= 5
        r = run_in_cgroup(cg, [sys.executable, "-c", SENDER])
        assert r.returncode == 0, r.stderr
        assert count(m) == seen


def test_missing_cgroup_lists_close_names():
    with child_cgroup() as cg, counting_program("cgroup_skb", 1, expected_attach_type="cgroup_inet_egress") as (p, _):
        with pytest.raises(links.TargetNotFoundError) as ei:
            links.cgroup(p, cg + "x", "cgroup_inet_egress")
        assert cg in ei.value.matches
