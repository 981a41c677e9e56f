"""Hand-encoded eBPF instructions shared by the map and program kernel tests (no tests here).

Deliberately independent of ``corebpf.asm`` so the map/program tests check the loader on its own:
each helper is one 8-byte instruction as the kernel's instruction-set document lays it out
(opcode, dst/src registers, signed 16-bit offset, signed 32-bit immediate).
"""

from __future__ import annotations

import struct

R0, R1, R2, R3, R4, R5, R6, R10 = 0, 1, 2, 3, 4, 5, 6, 10
PSEUDO_MAP_FD = 1
PSEUDO_FUNC = 4

HELPER_MAP_LOOKUP_ELEM = 1
HELPER_TAIL_CALL = 12
HELPER_GET_STACKID = 27
HELPER_GET_LOCAL_STORAGE = 81
HELPER_RINGBUF_OUTPUT = 130
HELPER_USER_RINGBUF_DRAIN = 209


def insn(op: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", op, dst | src << 4, off, imm)


def mov_imm(dst: int, imm: int) -> bytes:
    return insn(0xB7, dst, imm=imm)            # BPF_ALU64 | BPF_MOV | BPF_K


def mov_reg(dst: int, src: int) -> bytes:
    return insn(0xBF, dst, src)                # BPF_ALU64 | BPF_MOV | BPF_X


def add_imm(dst: int, imm: int) -> bytes:
    return insn(0x07, dst, imm=imm)            # BPF_ALU64 | BPF_ADD | BPF_K


def st_w(dst: int, off: int, imm: int) -> bytes:
    return insn(0x62, dst, off=off, imm=imm)   # BPF_ST | BPF_MEM | BPF_W


def st_dw(dst: int, off: int, imm: int) -> bytes:
    return insn(0x7A, dst, off=off, imm=imm)   # BPF_ST | BPF_MEM | BPF_DW


def ldx_w(dst: int, src: int, off: int) -> bytes:
    return insn(0x61, dst, src, off)           # BPF_LDX | BPF_MEM | BPF_W


def ldx_dw(dst: int, src: int, off: int) -> bytes:
    return insn(0x79, dst, src, off)           # BPF_LDX | BPF_MEM | BPF_DW


def jeq_imm(dst: int, imm: int, off: int) -> bytes:
    return insn(0x15, dst, off=off, imm=imm)   # BPF_JMP | BPF_JEQ | BPF_K


def call(helper: int) -> bytes:
    return insn(0x85, imm=helper)


def exit_() -> bytes:
    return insn(0x95)


def ld_map_fd(dst: int, fd: int) -> bytes:
    """Two slots: ``dst = map`` (ld_imm64 with the map-fd pseudo source)."""
    return insn(0x18, dst, PSEUDO_MAP_FD, imm=fd) + insn(0)


def ld_func(dst: int, rel: int) -> bytes:
    """Two slots: ``dst = &subprog``, the subprogram starting at (index of this ld_imm64) + 1 + ``rel``."""
    return insn(0x18, dst, PSEUDO_FUNC, imm=rel) + insn(0)


def ret(value: int) -> bytes:
    """``return value``."""
    return mov_imm(R0, value) + exit_()


def read_u32_from_map(map_fd: int, key: int = 0) -> bytes:
    """``v = map[key]; return v ? *(u32 *)v : 0xffff`` (a program that reads a map value)."""
    return b"".join([
        st_w(R10, -4, key),
        mov_reg(R2, R10),
        add_imm(R2, -4),
        ld_map_fd(R1, map_fd),
        call(HELPER_MAP_LOOKUP_ELEM),
        jeq_imm(R0, 0, 2),
        ldx_w(R0, R0, 0),
        exit_(),
        ret(0xFFFF),
    ])


def tail_call(prog_array_fd: int, index: int, fallthrough: int) -> bytes:
    """``bpf_tail_call(ctx, prog_array, index); return fallthrough``."""
    return b"".join([
        ld_map_fd(R2, prog_array_fd),
        mov_imm(R3, index),
        call(HELPER_TAIL_CALL),
        ret(fallthrough),
    ])


PACKET = bytes(range(64))  # >= 14 bytes, as skb/XDP test runs need an Ethernet header
