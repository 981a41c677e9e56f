"""Helpers for the attach tests (no tests here): counting programs, a counter read, C test binaries,
network namespaces with a veth pair, and a child cgroup -- each cleaned up even when a test fails."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
from typing import Any, Iterator

import corebpf
from corebpf.asm.builder import R0, R1, R2, assemble, atomic_add, exit_, ld_map_value, mov64
from corebpf.asm.opcodes import Size

ZERO = (0).to_bytes(4, "little")


def counting_insns(map_fd: int, retval: int = 0) -> list[Any]:
    """``counter[0] += 1; return retval`` (works in every program type: direct map value access)."""
    return assemble([ld_map_value(R1, map_fd, 0), mov64(R2, 1), atomic_add(Size.DW, R1, 0, R2), mov64(R0, retval),
                     exit_()])


@contextlib.contextmanager
def counting_program(prog_type: str, retval: int = 0, **load: Any) -> Iterator[tuple[corebpf.Program, corebpf.Map]]:
    """A loaded program of ``prog_type`` that counts its runs in an array map; both closed after."""
    with corebpf.Map.create("array", 4, 8, 1, name="cnt") as m:
        with corebpf.Program.load(counting_insns(m.fileno(), retval), prog_type, name="cnt", **load) as p:
            yield p, m


def count(m: corebpf.Map) -> int:
    """The counter of :func:`counting_program`."""
    return int.from_bytes(bytes(m[ZERO]), "little")


def reset(m: corebpf.Map) -> None:
    """Zero the counter of :func:`counting_program`."""
    m[ZERO] = bytes(8)


@contextlib.contextmanager
def c_binary(source: str, name: str = "prog", flags: tuple[str, ...] = ("-O0", "-g")) -> Iterator[str]:
    """Compile ``source`` with gcc into a temp dir; yields the executable's path."""
    if shutil.which("gcc") is None:
        import pytest

        pytest.skip("gcc is not installed")
    d = tempfile.mkdtemp(prefix="corebpf-links-")
    try:
        src = os.path.join(d, f"{name}.c")
        with open(src, "w") as f:
            f.write(source)
        exe = os.path.join(d, name)
        subprocess.run(["gcc", *flags, "-o", exe, src], check=True, capture_output=True)
        yield exe
    finally:
        shutil.rmtree(d, ignore_errors=True)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, capturing its text output."""
    return subprocess.run(list(args), check=check, capture_output=True, text=True)


@contextlib.contextmanager
def veth_pair() -> Iterator[dict[str, str]]:
    """Two fresh network namespaces joined by a veth pair: ns_a/va 10.77.0.1 <-> ns_b/vb 10.77.0.2.

    Traffic never leaves this machine; both namespaces (and so the devices) are deleted after.
    """
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b = f"cbl-a-{tag}", f"cbl-b-{tag}"
    sh("ip", "netns", "add", ns_a)
    try:
        sh("ip", "netns", "add", ns_b)
        try:
            sh("ip", "-n", ns_a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", ns_b)
            sh("ip", "-n", ns_a, "addr", "add", "10.77.0.1/24", "dev", "va")
            sh("ip", "-n", ns_b, "addr", "add", "10.77.0.2/24", "dev", "vb")
            for ns, dev in ((ns_a, "va"), (ns_b, "vb")):
                sh("ip", "-n", ns, "link", "set", dev, "up")
                sh("ip", "-n", ns, "link", "set", "lo", "up")
            yield {"ns_a": ns_a, "ns_b": ns_b, "ip_a": "10.77.0.1", "ip_b": "10.77.0.2", "dev_a": "va", "dev_b": "vb"}
        finally:
            sh("ip", "netns", "del", ns_b, check=False)
    finally:
        sh("ip", "netns", "del", ns_a, check=False)


def send_udp(net: dict[str, str], count: int = 5, port: int = 9999) -> None:
    """Send ``count`` UDP datagrams from ns_a to ns_b (sockets created inside the namespaces)."""
    from corebpf.links._netns import entered

    import socket

    with entered(net["ns_b"]):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("0.0.0.0", port))  # a socket stays in the namespace it was created in
        rx.settimeout(0.2)
        with entered(net["ns_a"]):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with tx:
            for _ in range(count):
                tx.sendto(b"corebpf", (net["ip_b"], port))
                try:
                    rx.recv(64)
                except OSError:
                    pass  # dropped on purpose by some tests
    finally:
        rx.close()


@contextlib.contextmanager
def child_cgroup() -> Iterator[str]:
    """A fresh cgroup v2 directory (removed after; any process moved in is moved back first)."""
    from corebpf.node.mounts import ensure_mounted

    root = ensure_mounted("cgroup2")
    path = os.path.join(root, f"corebpf-links-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        try:
            with open(os.path.join(path, "cgroup.procs")) as f:
                pids = f.read().split()
            for pid in pids:
                with contextlib.suppress(OSError), open(os.path.join(root, "cgroup.procs"), "w") as f:
                    f.write(pid)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            os.rmdir(path)


def open_fds() -> set[int]:
    """This process's open fd numbers."""
    return {int(x) for x in os.listdir("/proc/self/fd")}


def run_in_cgroup(cgroup: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Run ``argv`` as a child process placed into ``cgroup`` before it execs."""
    def enter() -> None:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    return subprocess.run(argv, preexec_fn=enter, capture_output=True, text=True, timeout=30)

