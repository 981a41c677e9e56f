"""Pinning, reopening, updating and force-detaching links; non-link attachments refuse to pin."""

from __future__ import annotations

import os
import uuid

import pytest

from corebpf import links
from corebpf.node.mounts import ensure_mounted
from test_links_util import count, counting_program


@pytest.fixture
def pin_path():
    path = os.path.join(ensure_mounted("bpffs"), f"corebpf-link-{uuid.uuid4().hex[:8]}")
    try:
        yield path
    finally:
        if os.path.exists(path):
            os.unlink(path)


def _detached(m, timeout: float = 2.0) -> bool:
    """True once getpgid stops counting: the last reference to a link may go away asynchronously
    (a pin is released after an RCU grace period)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = count(m)
        os.getpgid(0)
        if count(m) == before:
            return True
        time.sleep(0.01)
    return False


def test_pinned_link_outlives_close_and_reopens(pin_path):
    with counting_program("raw_tracepoint") as (p, m):
        link = links.raw_tracepoint(p, "sys_enter")
        link.pin(pin_path)
        link_id = link.id
        link.close()
        before = count(m)
        os.getpgid(0)
        assert count(m) > before  # still attached through the pin
        with links.Link.from_pin(pin_path) as again:
            assert again.id == link_id and again.method == "pinned"
        links.Link.unpin(pin_path)
    with counting_program("tracepoint") as (p, m):  # counts only getpgid: quiet once detached
        link = links.tracepoint(p, "syscalls", "sys_enter_getpgid")
        if link.fd is None:
            link.close()
            pytest.skip("perf links need Linux >= 5.15")
        link.pin(pin_path)
        link.close()
        os.getpgid(0)
        assert count(m) == 1
        links.Link.unpin(pin_path)
        assert _detached(m)  # last reference gone: detached


def test_pinned_perf_link_keeps_tracepoint(pin_path):
    with counting_program("tracepoint") as (p, m):
        with links.tracepoint(p, "syscalls", "sys_enter_getpgid") as link:
            if link.fd is None:
                pytest.skip("perf links need Linux >= 5.15")
            link.pin(pin_path)
        os.getpgid(0)
        assert count(m) == 1
        links.Link.unpin(pin_path)


def test_update_swaps_program_and_detach_forces_off():
    from test_links_util import send_udp, veth_pair

    with counting_program("xdp", 2) as (p1, m1), counting_program("xdp", 2) as (p2, m2), veth_pair() as net:
        with links.xdp(p1, "vb", netns=net["ns_b"], method="bpf_link") as link:
            send_udp(net, 2)
            assert count(m1) >= 2
            link.update(p2, old_program=p1)
            c1 = count(m1)
            send_udp(net, 2)
            assert count(m2) >= 2 and count(m1) == c1
            with pytest.raises(Exception):
                link.update(p1, old_program=p1)  # p1 no longer runs there
            link.detach()
            c2 = count(m2)
            send_udp(net, 2)
            assert count(m2) == c2


def test_non_link_attachment_refuses_pin(pin_path):
    import socket

    with counting_program("socket_filter", 0xFFFF) as (p, _):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, links.socket_filter(p, s) as link:
            with pytest.raises(links.LinkError, match="setsockopt"):
                link.pin(pin_path)


def test_from_pin_rejects_non_links(pin_path):
    with counting_program("raw_tracepoint") as (p, _):
        p.pin(pin_path)
        with pytest.raises(links.LinkError, match="not a BPF link"):
            links.Link.from_pin(pin_path)


def test_garbage_collected_link_detaches():
    import gc

    with counting_program("tracepoint") as (p, m):
        links.tracepoint(p, "syscalls", "sys_enter_getpgid")  # dropped at once
        gc.collect()
        assert _detached(m)
        assert count(m) == 0


def test_attach_info_is_the_kernels_view():
    with counting_program("tracepoint") as (p, _), links.tracepoint(p, "syscalls", "sys_enter_getpgid") as link:
        if link.fd is None:
            pytest.skip("perf links need Linux >= 5.15")
        assert "sys_enter_getpgid" in link.attach_info.target
        assert link.info.prog_id == p.id
    with counting_program("raw_tracepoint") as (p, _), links.raw_tracepoint(p, "sys_enter") as link:
        assert link.attach_info.target == "sys_enter"
