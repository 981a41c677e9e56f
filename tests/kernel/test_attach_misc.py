"""Smaller families: map-element iterators (parameterised iterator links), sockmap programs, flow dissector
and the struct_ops entry point's refusal paths."""

from __future__ import annotations

import os

import pytest

import corebpf
from corebpf import links
from corebpf._sys import ops
from corebpf.links.tracing import load as load_tracing
from test_links_util import count, counting_insns, counting_program, veth_pair


def _task_counter(m: corebpf.Map) -> list:
    from corebpf.asm.builder import R0, R1, R2, R6, assemble, atomic_add, exit_, jeq, label, ld_map_value, ldx, mov64
    from corebpf.asm.opcodes import Size

    return assemble([
        ldx(Size.DW, R6, R1, 8), jeq(R6, 0, "out"),  # ctx->task == NULL: the final call
        ld_map_value(R1, m.fileno(), 0), mov64(R2, 1), atomic_add(Size.DW, R1, 0, R2),
        label("out"), mov64(R0, 0), exit_(),
    ])


def test_parameterised_task_iterator_visits_one_process():
    import threading

    with corebpf.Map.create("array", 4, 8, 1) as m, load_tracing(_task_counter(m), "iter", "task", name="tasks") as p:
        with links.iterator(p) as everything:
            everything.read()
            all_tasks = count(m)
        stop = threading.Event()
        worker = threading.Thread(target=stop.wait)
        worker.start()
        try:
            threads = len(os.listdir("/proc/self/task"))
            m[(0).to_bytes(4, "little")] = bytes(8)
            try:
                link = links.iterator(p, pid=os.getpid())
            except corebpf.BPFError as exc:  # task iterator parameters need Linux >= 6.1
                pytest.skip(f"parameterised task iterators: {exc}")
            with link:
                link.read()
                assert count(m) == threads >= 2
        finally:
            stop.set()
            worker.join()
        assert all_tasks > threads


def test_sockmap_verdict_program_attach_and_detach():
    with corebpf.Map.create("sockmap", 4, 4, 2) as sm, \
            counting_program("sk_skb", 1, expected_attach_type="sk_skb_stream_verdict") as (p, _):
        with links.sockmap(p, sm, "sk_skb_stream_verdict") as link:
            assert link.method == "prog_attach"
            assert p.id in ops.prog_query(sm.fileno(), corebpf.AttachType.SK_SKB_STREAM_VERDICT)[0]
        assert p.id not in ops.prog_query(sm.fileno(), corebpf.AttachType.SK_SKB_STREAM_VERDICT)[0]


def test_flow_dissector_on_a_test_namespace():
    with veth_pair() as net, counting_program("flow_dissector", 0, expected_attach_type="flow_dissector") as (p, _):
        with links.flow_dissector(p, net["ns_b"]) as link:
            assert link.method == "bpf_link"
            assert link.attach_info.target  # netns link, as the kernel reports it
        with links.flow_dissector(p, net["ns_b"]):  # the hook is free again after close
            pass


def test_struct_ops_needs_a_struct_ops_map():
    with corebpf.Map.create("array", 4, 8, 1) as m:
        m_info_flags = m.info.flags
        assert not m_info_flags & links.struct_ops.__globals__["BPF_F_LINK"]
        link = links.struct_ops(m)  # no BPF_F_LINK: registered by the map update, unregistered by delete
        assert link.method == "map_update"
        with pytest.raises(corebpf.BPFError):
            link.close()  # an array's element cannot be deleted: the kernel says so
    with corebpf.Map.create("array", 4, 8, 1, flags=0) as m:
        with pytest.raises(corebpf.BPFError):
            links.struct_ops.__globals__["ops"].link_create(m.fileno(), 0, corebpf.AttachType.STRUCT_OPS)


def test_sk_reuseport_counts_and_stops():
    import socket

    with counting_program("sk_reuseport", 1, expected_attach_type="sk_reuseport_select") as (p, m):
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            for s in socks:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                s.bind(("127.0.0.1", socks[0].getsockname()[1] if s is not socks[0] else 0))
            with links.reuseport(p, socks[0]) as link:
                assert link.method == "setsockopt"
                for _ in range(4):
                    tx.sendto(b"x", socks[0].getsockname())
                assert count(m) == 4
            tx.sendto(b"x", socks[0].getsockname())
            assert count(m) == 4
        finally:
            for s in [*socks, tx]:
                s.close()
