"""Program.load argument handling that needs no kernel."""

from __future__ import annotations

import struct

import pytest

from corebpf._sys import uapi
from corebpf.programs import AttachType, ProgType, TestRunResult
from corebpf.programs.program import _records, encode_instructions, parse_attach_type, parse_prog_type

EXIT = bytes([0x95, 0, 0, 0, 0, 0, 0, 0])


def test_parse_prog_type():
    for spec in ("xdp", "XDP", "BPF_PROG_TYPE_XDP", 6, ProgType.XDP):
        assert parse_prog_type(spec) is ProgType.XDP
    with pytest.raises(ValueError, match="unknown program type"):
        parse_prog_type("nope")
    with pytest.raises(ValueError, match="number"):
        parse_prog_type(4242)


def test_parse_attach_type():
    assert parse_attach_type("trace_fentry") is AttachType.TRACE_FENTRY
    assert parse_attach_type("BPF_CGROUP_INET_INGRESS") is AttachType.CGROUP_INET_INGRESS


def test_encode_bytes_and_objects():
    assert encode_instructions(EXIT) == EXIT
    assert encode_instructions(bytearray(EXIT * 2)) == EXIT * 2

    class Insn:
        def encode(self) -> bytes:
            return EXIT

    assert encode_instructions([Insn(), Insn()]) == EXIT * 2
    assert encode_instructions([EXIT, EXIT]) == EXIT * 2


def test_encode_with_corebpf_asm():
    asm = pytest.importorskip("corebpf.asm")
    b = asm.builder
    raw = encode_instructions([b.mov64(b.R0, 1), b.ja("end"), b.mov64(b.R0, 2), b.label("end"), b.exit_()])
    assert len(raw) == 32 and raw[-8:] == EXIT
    assert struct.unpack_from("<h", raw, 8 + 2)[0] == 1  # the jump skips one instruction


def test_encode_errors():
    with pytest.raises(ValueError, match="at least one"):
        encode_instructions(b"")
    with pytest.raises(ValueError, match="multiple of 8"):
        encode_instructions(b"\0" * 9)


def test_func_info_records():
    assert _records(None, uapi.FuncInfo) == (None, 0, 0)
    raw, size, count = _records(struct.pack("<II", 0, 3) * 2, uapi.FuncInfo)
    assert (size, count) == (8, 2)
    recs = (uapi.FuncInfo * 2)()
    assert _records(recs, uapi.FuncInfo)[1:] == (8, 2)
    with pytest.raises(ValueError, match="8 bytes each"):
        _records(b"\0" * 12, uapi.FuncInfo)


def test_test_run_result_is_not_a_pytest_class():
    assert TestRunResult.__test__ is False
    r = TestRunResult(return_value=1, data_out=b"x", duration_ns=5)
    assert r.ctx_out is None and r.return_value == 1
