"""Network attach acceptance on a veth pair between two network namespaces the tests create: XDP, tc,
sk_lookup and netfilter count the packets sent across, and stop counting when their link closes; the
netlink plan B paths (XDP, clsact + cls_bpf) are run for real and leave nothing behind."""

from __future__ import annotations

import os
import socket
import time

import pytest

from corebpf import features, links
from corebpf.node.kconfig import load_kconfig
from kernel_rules import missing_is_expected
from test_links_util import count, counting_program, send_udp, sh, veth_pair

XDP_PASS, SK_PASS, NF_ACCEPT, TC_ACT_OK = 2, 1, 1, 0


@pytest.fixture
def net():
    with veth_pair() as n:
        yield n


def _counts_then_stops(net, m, link) -> None:
    with link:
        send_udp(net, 5)
        # send_udp gives up waiting for a datagram after 0.2 s: on a slow (TCG) guest some are still in
        # flight when it returns, so wait for them while the program is attached
        deadline = time.monotonic() + 10
        while count(m) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert count(m) >= 5, f"{link}: the program ran {count(m)} times for 5 datagrams"
    # What the kernel guarantees is "no run after the detach returned" (netlink: after its ACK), so the
    # reference is read after close: packets still in flight before the detach were rightly counted.
    seen = count(m)
    send_udp(net, 5)
    assert count(m) == seen, f"{link}: still running after close"


def _xdp_prog_id(net) -> str:
    return sh("ip", "-n", net["ns_b"], "-d", "link", "show", "vb").stdout


@pytest.mark.parametrize("method", ["bpf_link", "netlink"])
def test_xdp_on_veth_counts_and_stops(net, method):
    if method == "bpf_link" and not features.attach_method("xdp_link").supported:
        pytest.fail("XDP links must exist on Linux 6.18")
    with counting_program("xdp", XDP_PASS) as (p, m):
        link = links.xdp(p, "vb", netns=net["ns_b"], method=method)
        assert link.method == method
        assert f"prog/xdp id {p.id}" in _xdp_prog_id(net)
        _counts_then_stops(net, m, link)
        assert "prog/xdp" not in _xdp_prog_id(net)


def test_xdp_default_chooses_bpf_link_and_records_plan(net):
    with counting_program("xdp", XDP_PASS) as (p, m):
        with links.xdp(p, "vb", netns=net["ns_b"], mode="skb") as link:
            assert link.method == "bpf_link"
            assert [a.method for a in link.attempts] == ["bpf_link"]
            send_udp(net, 3)
            assert count(m) >= 3


@pytest.mark.parametrize("method", ["tcx_link", "netlink"])
@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tc_on_veth_counts_and_stops(net, method, direction):
    ns, dev = (net["ns_b"], "vb") if direction == "ingress" else (net["ns_a"], "va")
    _need_tcx(method)
    with counting_program("sched_cls", TC_ACT_OK) as (p, m):
        link = links.tc(p, dev, direction, netns=ns, method=method)
        assert link.method == method
        if method == "netlink":
            assert "clsact" in sh("tc", "-n", ns, "qdisc", "show", "dev", dev).stdout
            assert "bpf" in sh("tc", "-n", ns, "filter", "show", "dev", dev, direction).stdout
        _counts_then_stops(net, m, link)
        assert "bpf" not in sh("tc", "-n", ns, "filter", "show", "dev", dev, direction).stdout
        if method == "netlink":  # the qdisc we created is gone again
            assert "clsact" not in sh("tc", "-n", ns, "qdisc", "show", "dev", dev).stdout


def _need_tcx(method: str = "tcx_link") -> None:
    """tcx exists from Linux 6.6: older kernels (VM matrix) skip, 6.6+ must have it."""
    if method != "tcx_link" or features.attach_method("tcx").supported:
        return
    release = tuple(int(x) for x in os.uname().release.split(".")[:2])
    if release >= (6, 6):
        pytest.fail(f"tcx must exist on Linux {os.uname().release}: {features.attach_method('tcx').reason}")
    pytest.skip(f"tcx links need Linux >= 6.6: {features.attach_method('tcx').reason}")


def test_sk_lookup_on_netns_counts_and_stops(net):
    with counting_program("sk_lookup", SK_PASS, expected_attach_type="sk_lookup") as (p, m):
        link = links.sk_lookup(p, net["ns_b"])
        assert link.method == "bpf_link"
        _counts_then_stops(net, m, link)


def test_netfilter_local_in_counts_and_stops(net):
    if not features.attach_method("netfilter_link").supported:
        why = f"netfilter links: {features.attach_method('netfilter_link').reason}"
        if load_kconfig().enabled("NETFILTER_BPF_LINK") is False:  # a build choice, not the version
            pytest.skip(f"{why} (CONFIG_NETFILTER_BPF_LINK is not set)")
        missing_is_expected("prog_types", "NETFILTER", why)
    with counting_program("netfilter", NF_ACCEPT, expected_attach_type="netfilter") as (p, m):
        link = links.netfilter(p, "ipv4", "local_in", 100, netns=net["ns_b"])
        _counts_then_stops(net, m, link)


def test_socket_filter_on_udp_loopback_counts_and_stops():
    with counting_program("socket_filter", 0xFFFF) as (p, m):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with rx, tx:
            rx.bind(("127.0.0.1", 0))
            rx.settimeout(1)
            with links.socket_filter(p, rx) as link:
                assert link.method == "setsockopt"
                for _ in range(5):
                    tx.sendto(b"x", rx.getsockname())
                    assert rx.recv(8) == b"x"  # kept: the filter returns 0xFFFF
                assert count(m) == 5
            tx.sendto(b"y", rx.getsockname())
            assert rx.recv(8) == b"y"
            assert count(m) == 5


def test_socket_filter_on_socketpair_drops():
    with counting_program("socket_filter", 0) as (p, m):  # 0: drop everything
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        with a, b:
            b.settimeout(0.2)
            with links.socket_filter(p, b):
                a.send(b"dropped")
                with pytest.raises(TimeoutError):
                    b.recv(16)
                assert count(m) == 1
            a.send(b"kept")
            assert b.recv(16) == b"kept"


def test_missing_interface_lists_close_names(net):
    with counting_program("xdp", XDP_PASS) as (p, _):
        with pytest.raises(links.TargetNotFoundError) as ei:
            links.xdp(p, "vbb", netns=net["ns_b"])
        assert "vb" in ei.value.matches
    with counting_program("sched_cls") as (p, _):
        with pytest.raises(links.TargetNotFoundError, match="va"):
            links.tc(p, "vaa", netns=net["ns_a"])
    with pytest.raises(links.TargetNotFoundError, match="network namespace"):
        links.xdp(p, "vb", netns=net["ns_b"] + "x")


def test_tcx_ordering_before_and_after(net):
    from corebpf import AttachType
    from corebpf._sys import ops
    from corebpf.links._netns import entered, ifindex

    _need_tcx()

    def order() -> list[int]:
        with entered(net["ns_b"]):
            return ops.prog_query(ifindex("vb"), AttachType.TCX_INGRESS)[0]

    with counting_program("sched_cls", -1) as (a, _), counting_program("sched_cls", -1) as (b, _b), \
            counting_program("sched_cls", -1) as (c, _c), counting_program("sched_cls", -1) as (d, _d):
        with links.tc(a, "vb", netns=net["ns_b"], method="tcx_link") as la, \
                links.tc(b, "vb", netns=net["ns_b"], method="tcx_link", before=la), \
                links.tc(c, "vb", netns=net["ns_b"], method="tcx_link", before=True), \
                links.tc(d, "vb", netns=net["ns_b"], method="tcx_link", after=b):
            assert order() == [c.id, b.id, d.id, a.id]
        assert order() == []
