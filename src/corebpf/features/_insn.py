"""Raw encodings of the few instructions probes need (kept independent of ``corebpf.asm``)."""

from __future__ import annotations

import struct


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One 8-byte instruction."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def mov64_imm(dst: int, imm: int) -> bytes:
    """``dst = imm`` (BPF_ALU64 | BPF_MOV | BPF_K)."""
    return insn(0xB7, dst, 0, 0, imm)


def call(helper_id: int) -> bytes:
    """``call helper_id``."""
    return insn(0x85, 0, 0, 0, helper_id)


def ld_map_fd(dst: int, fd: int) -> bytes:
    """``dst = map[fd]`` (BPF_LD | BPF_IMM | BPF_DW with BPF_PSEUDO_MAP_FD), two slots."""
    return insn(0x18, dst, 1, 0, fd) + insn(0, 0, 0, 0, 0)


EXIT = insn(0x95)


def ret(value: int = 0) -> bytes:
    """``r0 = value; exit``: the smallest valid program."""
    return mov64_imm(0, value) + EXIT
