"""No fd leaks: 10,000 maps and 10,000 programs created and closed leave /proc/self/fd as it was,
also when exceptions hit halfway (in user code, in corebpf's checks, in the kernel)."""

from __future__ import annotations

import gc
import os

import pytest

from corebpf import Map, Program, VerifierError
from corebpf.errors import BPFError

from test_programs_insns import PACKET, R0, R2, exit_, mov_reg, ret

N = 10_000


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


class Boom(Exception):
    pass


def test_10k_maps():
    before = fd_count()
    for i in range(N):
        with Map.create("hash", 4, 8, 4) as m:
            m[i] = bytes(8)
    assert fd_count() == before


def test_10k_programs():
    before = fd_count()
    code = ret(1)
    for _ in range(N):
        with Program.load(code, "socket_filter") as p:
            pass
    assert p.closed
    assert fd_count() == before


def test_maps_with_exceptions_midway():
    before = fd_count()
    for i in range(N):
        kind = i % 5
        try:
            if kind == 0:
                with Map.create("array", 4, 4, 2) as m:
                    m[0] = b"abcd"
                    raise Boom
            elif kind == 1:
                Map.create("array", 8, 4, 2)  # refused by corebpf's checks
            elif kind == 2:
                Map.create("hash", 4, 4, 2, flags=1 << 30)  # refused by the kernel
            elif kind == 3:
                Map.create("task_storage", 4, 8, 0, flags=1 << 30)  # our BTF loads, then the kernel refuses
            else:
                with Map.create("hash", 4, 4, 2) as m, Map.from_id(m.id) as again:
                    again[b"\0" * 3] = b"abcd"  # wrong key size
        except (Boom, ValueError, BPFError):
            pass
        else:
            pytest.fail(f"iteration {i} did not raise")
    assert fd_count() == before


def test_programs_with_exceptions_midway():
    before = fd_count()
    bad = mov_reg(R0, R2) + exit_()
    for i in range(N):
        try:
            if i % 3 == 0:
                Program.load(bad, "socket_filter")  # the verifier refuses (two loads: log off, log on)
            elif i % 3 == 1:
                with Program.load(ret(2), "xdp") as p:
                    p.test_run(PACKET)
                    raise Boom
            else:
                with Program.load(ret(2), "xdp") as p:
                    p.test_run(b"")  # the kernel refuses the input
        except (Boom, VerifierError, BPFError):
            pass
        else:
            pytest.fail(f"iteration {i} did not raise")
    assert fd_count() == before


def test_unclosed_objects_are_closed_by_gc():
    gc.collect()  # garbage left by earlier tests would be collected below and skew the count
    before = fd_count()
    for _ in range(1000):
        Map.create("hash", 4, 4, 1)
        Program.load(ret(0), "socket_filter")
    gc.collect()
    assert fd_count() == before
