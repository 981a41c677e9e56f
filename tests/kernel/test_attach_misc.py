"""Smaller families: map-element iterators (parameterised iterator links), sockmap programs, flow dissector
and the struct_ops entry point's refusal paths."""

from __future__ import annotations

import errno
import os

import pytest

import corebpf
from corebpf import links
from corebpf._sys import ops
from corebpf.analysis import kernel_versions
from corebpf.errors import BPFError
from corebpf.links.tracing import load as load_tracing
from kernel_rules import missing_is_expected, older_than
from test_links_util import count, counting_program, veth_pair


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
                missing_is_expected("features", "task_iter_params", f"parameterised task iterators: {exc}")
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
        at = corebpf.AttachType.SK_SKB_STREAM_VERDICT
        query = not older_than("features", "sockmap_prog_query")  # BPF_PROG_QUERY on sockmaps: 5.18
        with links.sockmap(p, sm, "sk_skb_stream_verdict") as link:
            assert link.method == "prog_attach"
            if query:
                assert p.id in ops.prog_query(sm.fileno(), at)[0]
            # Every kernel: detaching p works only while p is the attached program; then put it back.
            ops.prog_detach(p.fileno(), sm.fileno(), at)
            ops.prog_attach(p.fileno(), sm.fileno(), at)
        if query:
            assert p.id not in ops.prog_query(sm.fileno(), at)[0]
        with pytest.raises(BPFError) as exc:  # the link detached it: nothing left to detach
            ops.prog_detach(p.fileno(), sm.fileno(), at)
        assert exc.value.errno == errno.ENOENT


def test_flow_dissector_on_a_test_namespace():
    with veth_pair() as net, counting_program("flow_dissector", 0, expected_attach_type="flow_dissector") as (p, _):
        with links.flow_dissector(p, net["ns_b"]) as link:
            assert link.method == "bpf_link"
            assert link.attach_info.target  # netns link, as the kernel reports it
        with links.flow_dissector(p, net["ns_b"]):  # the hook is free again after close
            pass


def _tiny_btf() -> "corebpf._sys.fd.FD":
    """A BTF object with one int: struct_ops maps must name an object BTF even for a kernel value type."""
    import struct

    from corebpf._sys.fd import FD

    types = struct.pack("<IIII", 1, 1 << 24, 4, 32)  # "int": INT, 4 bytes, 32 bits
    strs = b"\0int\0"
    raw = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strs)) + types + strs
    fd, log = ops.btf_load(raw)
    assert fd >= 0, log
    return FD(fd)


def test_struct_ops_tcp_congestion_control_registered_while_linked():
    """A struct_ops map (a TCP congestion control made of three tiny programs) is registered only while its
    link lives: sockets can select it by name, and cannot after the link closes."""
    import socket
    import uuid

    from corebpf import features
    from corebpf.asm.builder import R0, assemble, exit_, mov64
    from corebpf.btf import BTF
    from corebpf.btf.types import Kind

    if not features.prog_type("struct_ops").supported:
        pytest.skip(f"struct_ops programs: {features.prog_type('struct_ops').reason}")
    link_probe = features.attach_method("struct_ops_link")
    need = kernel_versions.lookup("features", "struct_ops_link").version
    if not link_probe.supported and need is not None and kernel_versions.KernelVersion.parse(os.uname().release) < need:
        # the kernel's version may lack struct_ops links (BPF_F_LINK maps); a newer one must have them
        pytest.skip(f"struct_ops links need Linux {need}+: {link_probe.reason}")
    btf = BTF.vmlinux()
    try:
        value_t = btf.find("bpf_struct_ops_tcp_congestion_ops", Kind.STRUCT)
    except KeyError:
        pytest.skip("no TCP congestion control struct_ops in this kernel")
    ca = btf.find("tcp_congestion_ops", Kind.STRUCT)
    data_off = {m.name: m.offset for m in value_t.members}["data"]
    member = {m.name: (i, m.offset) for i, m in enumerate(ca.members)}
    name = f"cbpf_{uuid.uuid4().hex[:6]}"
    value = bytearray(value_t.size)
    name_off = data_off + member["name"][1]
    value[name_off:name_off + len(name)] = name.encode()
    progs = []
    try:
        for fn, ret in (("ssthresh", 2), ("cong_avoid", 0), ("undo_cwnd", 2)):
            p = corebpf.Program.load(assemble([mov64(R0, ret), exit_()]), "struct_ops",
                                     expected_attach_type=member[fn][0], attach_btf_id=ca.id)
            progs.append(p)
            off = data_off + member[fn][1]
            value[off:off + 8] = p.fileno().to_bytes(8, "little")
        with _tiny_btf() as bfd:
            mfd = ops.map_create(corebpf.MapType.STRUCT_OPS, 4, value_t.size, 1, flags=links.struct_ops.__globals__[
                "BPF_F_LINK"], name="cc", btf_fd=bfd.fileno(), btf_vmlinux_value_type_id=value_t.id)
        with corebpf.Map.from_fd(mfd) as m:
            ops.map_update_elem(m.fileno(), (0).to_bytes(4, "little"), bytes(value))

            def selectable() -> bool:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    try:
                        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, name.encode())
                        return True
                    except OSError:
                        return False

            assert not selectable()
            with links.struct_ops(m) as link:
                assert link.method == "bpf_link"
                assert selectable()
                assert name in open("/proc/sys/net/ipv4/tcp_available_congestion_control").read()
            assert not selectable()
    finally:
        for p in progs:
            p.close()


def test_struct_ops_without_link_flag_is_the_map_update_path():
    with corebpf.Map.create("array", 4, 8, 1) as m:
        link = links.struct_ops(m)  # no BPF_F_LINK: registered by the map update, unregistered by delete
        assert link.method == "map_update"
        with pytest.raises(corebpf.BPFError):
            link.close()  # an array's element cannot be deleted: the kernel's refusal surfaces


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
