"""Programs written with corebpf.asm's builder, loaded with the raw bpf() layer and run with
BPF_PROG_TEST_RUN: the kernel must compute what the ISA says; bpftool must print what we print."""

from __future__ import annotations

import ctypes

import pytest

from corebpf._sys import MapType, ProgType, ops, uapi
from corebpf._sys.fd import FD
from corebpf.asm import (
    Dialect, Instruction, JumpOp, Size, decode, dump_xlated, encode, read_xlated,
)
from corebpf.asm.builder import *  # noqa: F403

from corpus_util import bpftool, bpftool_dump_xlated, bpftool_version, kernel_version

PACKET = bytes(range(64))


def load(insns: list[Instruction], prog_type: int = ProgType.SOCKET_FILTER) -> FD:
    code = encode(insns)
    license = b"GPL\0"
    log = ctypes.create_string_buffer(1 << 20)
    attr = uapi.ProgLoadAttr(prog_type=prog_type, insn_cnt=len(code) // 8, insns=ops.addr(code),
                             license=ops.addr(license), log_level=1, log_size=len(log), log_buf=ops.addr(log))
    fd = ops.prog_load(attr)
    if fd < 0:
        pytest.fail(f"the verifier rejected the builder program ({-fd}):\n{log.value.decode()[-3000:]}")
    return FD(fd)


def run(fd: FD) -> int:
    out = ctypes.create_string_buffer(len(PACKET) + 256)
    attr = ops.prog_test_run(int(fd), data_in=PACKET, data_size_in=len(PACKET), data_out=out,
                             data_size_out=len(out), repeat=1)
    return attr.retval


def _s32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def test_minimal_program_returns_constant():
    with load(assemble([mov64(R0, 42), exit_()])) as fd:
        assert run(fd) == 42


needs_v4 = pytest.mark.skipif(kernel_version() < (6, 6), reason="ISA v4 (sdiv/smod, movsx, ldsx, bswap, gotol) "
                              "needs Linux 6.6+")


@needs_v4
def test_alu_jumps_and_isa_v4_forms():
    prog = assemble([
        mov64(R1, -100), mov64(R2, 7), sdiv64(R1, R2),          # -14 (truncates toward zero)
        mov64(R3, -100), smod64(R3, 7),                         # -2 (sign of the dividend)
        mov64(R4, 0x1234), bswap(R4, 16),                       # 0x3412
        mov64(R5, 0xFF80), movsx64(R5, R5, 8),                  # -128
        stx(Size.DW, R10, -8, R5), ldxsx(Size.B, R6, R10, -8),  # -128 through the stack
        mov64(R0, R1), add64(R0, R3), add64(R0, R4), add64(R0, R6),
        gotol("skip"),
        label("fail"),
        mov64(R0, 0xDEAD),
        exit_(),
        label("skip"),
        jset(R0, 0x80000000, "fail"),                           # positive: bit 31 clear
        jsgt(R0, 20000, "fail"),
        jslt32(R0, 0, "fail"),
        mov64(R7, 3), lsh64(R7, 60), arsh64(R7, 60),            # 3 (sign bit clear)
        add64(R0, R7),
        exit_(),
    ])
    expected = -14 + -2 + 0x3412 + -128 + 3
    with load(prog) as fd:
        assert _s32(run(fd)) == expected


@pytest.mark.skipif(kernel_version() < (5, 12), reason="atomic fetch/xchg/cmpxchg need Linux 5.12+")
def test_atomics_on_the_stack():
    prog = assemble([
        st(Size.DW, R10, -8, 5),
        mov64(R1, 3), atomic_fetch_add(Size.DW, R10, -8, R1),    # r1 = 5, mem = 8
        mov64(R2, 0x10), atomic_or(Size.DW, R10, -8, R2),         # mem = 0x18
        mov64(R0, 0x18), mov64(R3, 100),
        atomic_cmpxchg(Size.DW, R10, -8, R3),                     # r0 = 0x18 (old), mem = 100
        mov64(R4, 7), atomic_xchg(Size.DW, R10, -8, R4),          # r4 = 100, mem = 7
        ldx(Size.DW, R5, R10, -8),                                # 7
        # r0 = r1 * 1000000 + r0 * 1000 + r4 * 10 + r5 = 5_024_000 + 1000 + 7
        mul64(R1, 1000000), mul64(R0, 1000), add64(R0, R1), mul64(R4, 10), add64(R0, R4), add64(R0, R5),
        exit_(),
    ])
    with load(prog) as fd:
        assert run(fd) == 5 * 1000000 + 0x18 * 1000 + 100 * 10 + 7


def test_bpf_to_bpf_call_and_map_access():
    with ops.map_create(MapType.ARRAY, 4, 8, 1, name="asm_builder") as map_fd:
        prog = assemble([
            mov64(R1, 21),
            call_pseudo("double"),
            mov64(R6, R0),
            st(Size.W, R10, -4, 0),
            ld_map_fd(R1, int(map_fd)),
            mov64(R2, R10), add64(R2, -4),
            call("map_lookup_elem"),
            jeq(R0, 0, "out"),
            stx(Size.DW, R0, 0, R6),
            label("out"),
            mov64(R0, R6),
            exit_(),
            label("double"),
            mov64(R0, R1), lsh64(R0, 1),
            exit_(),
        ])
        with load(prog) as fd:
            assert run(fd) == 42
            value = bytearray(8)
            assert ops.map_lookup_elem(map_fd, bytes(4), value)
            assert int.from_bytes(value, "little") == 42
            xlated = read_xlated(fd)
            insns = decode(xlated.xlated)
            assert encode(insns) == xlated.xlated
            assert xlated.map_ids and any(i.is_ld_imm64 and i.imm_lo == xlated.map_ids[0] for i in insns)
            assert any(i.is_pseudo_call for i in insns)


@needs_v4
@pytest.mark.skipif(bpftool() is None, reason="bpftool is not installed")
def test_builder_program_dump_matches_bpftool():
    """Newer instruction forms through bpftool's printer (7.1 prints them in the legacy dialect)."""
    prog = assemble([
        mov64(R1, -9), mov64(R2, 2), sdiv64(R1, R2), smod64(R2, 3), movsx64(R3, R1, 16),
        mov64(R4, 0x1122), bswap(R4, 32), to_le(R4, 16), to_be(R4, 64),
        stx(Size.W, R10, -4, R3), ldxsx(Size.H, R5, R10, -4), ldx(Size.W, R6, R10, -4),
        mov32(R7, R6), sdiv32(R7, 3), movsx32(R7, R7, 8),
        jeq(R1, 12345, "nine"),
        gotol("end"),
        label("nine"),
        mov64(R0, 9),
        label("end"),
        mov64(R0, 0),
        jmp(JumpOp.JGE, R5, R6, "really_end", wide=False),
        label("really_end"),
        exit_(),
    ])
    with load(prog) as fd:
        info = read_xlated(fd)
        ours = dump_xlated(info, dialect=Dialect.for_bpftool(bpftool_version()))
        assert ours == bpftool_dump_xlated(info.prog_id)
        current = dump_xlated(info, dialect=Dialect.CURRENT)
        assert any("s/=" in line for line in current) and any("bswap32" in line for line in current)
        assert any("(s16)" in line for line in current) and any("gotol" in line for line in current)
