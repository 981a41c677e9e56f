"""Write a CO-RE result into an instruction, poison it, and explain poisoned instructions afterwards.

Patching follows libbpf's ``bpf_core_patch_insn``: ALU/ALU64 with an immediate operand get a new
``imm``; LDX/ST/STX a new ``off`` (and a new access size when the field's size changed and the change
is safe); a ld_imm64 its 64-bit constant. The instruction must carry the original value unless the
result says not to check. A poisoned instruction becomes ``call 0xbad2310`` (both slots of a
ld_imm64), which the verifier reports as "invalid func unknown#195896080" if the program can reach it.
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING, Optional, Sequence

from .core_calc import RelocResult
from .core_spec import SpecError

if TYPE_CHECKING:  # pragma: no cover
    from .core_relocate import Resolution

__all__ = ["POISON_IMM", "PatchError", "patch_insn", "poison_insn", "find_poisoned", "explain_verifier_log"]

#: The immediate of a poisoned call: 0xbad2310, "bad relo".
POISON_IMM = 195896080

_INSN = struct.Struct("<BBhi")
_CALL = 0x85  # BPF_JMP | BPF_CALL
_LD_IMM64 = 0x18
_SIZE_BYTES = {0x18: 8, 0x00: 4, 0x08: 2, 0x10: 1}  # BPF_DW, BPF_W, BPF_H, BPF_B
_BYTES_SIZE = {v: k for k, v in _SIZE_BYTES.items()}
_U64 = (1 << 64) - 1


class PatchError(SpecError):
    """The instruction at a relocation is not what the relocation expects (libbpf refuses the object)."""


def poison_insn(insns: bytearray, pos: int) -> None:
    """Turn the instruction at byte ``pos`` (both slots for a ld_imm64) into ``call 0xbad2310``."""
    if insns[pos] == _LD_IMM64 and pos + 16 <= len(insns):
        _INSN.pack_into(insns, pos + 8, _CALL, 0, 0, POISON_IMM)
    _INSN.pack_into(insns, pos, _CALL, 0, 0, POISON_IMM)


def _u32_to_s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def patch_insn(insns: bytearray, pos: int, res: RelocResult, where: str) -> tuple[bool, int]:
    """Apply ``res`` to the instruction at byte ``pos``; (poisoned?, the value found in the instruction).

    Raises :class:`PatchError` where libbpf fails the load.
    """
    if pos + 8 > len(insns):
        raise PatchError(f"{where}: instruction at byte {pos} is past the end of the program")
    code, regs, off, imm = _INSN.unpack_from(insns, pos)
    if res.poison:
        poison_insn(insns, pos)
        return True, imm
    cls = code & 0x07
    orig, new = res.orig_val, res.new_val
    if cls in (0x04, 0x07):  # ALU, ALU64
        if code & 0x08:
            raise PatchError(f"{where}: ALU instruction {code:#04x} takes a register operand, not an immediate")
        if res.validate and (imm & _U64) != orig:
            raise PatchError(f"{where}: unexpected ALU/ALU64 value: got {imm}, expected {orig} -> {new}")
        _INSN.pack_into(insns, pos, code, regs, off, _u32_to_s32(new))
        return False, imm
    if cls in (0x01, 0x02, 0x03):  # LDX, ST, STX
        if res.validate and (off & _U64) != orig:
            raise PatchError(f"{where}: unexpected LDX/ST/STX offset: got {off}, expected {orig} -> {new}")
        if new > 0x7FFF:
            raise PatchError(f"{where}: LDX/ST/STX offset {new} does not fit in 16 bits")
        if res.fail_memsz_adjust:
            # the field's type changed size in a way a different load width cannot fix
            poison_insn(insns, pos)
            res.poison = True
            res.reason = (f"field size changed from {res.orig_sz} to {res.new_sz} bytes and is not a pointer or "
                          "unsigned integer: access pointers, unsigned integers, or fields of matching type and size")
            return True, off
        if res.new_sz != res.orig_sz:
            have = _SIZE_BYTES[code & 0x18]
            if have != res.orig_sz:
                raise PatchError(f"{where}: unexpected memory access size: got {have}, expected {res.orig_sz}")
            size = _BYTES_SIZE.get(res.new_sz)
            if size is None:
                raise PatchError(f"{where}: invalid new memory access size {res.new_sz}")
            code = (code & 0xE7) | size
        _INSN.pack_into(insns, pos, code, regs, new, imm)
        return False, off
    if cls == 0x00:  # LD
        if pos + 16 > len(insns):
            raise PatchError(f"{where}: ld_imm64 at byte {pos} is truncated")
        code2, regs2, off2, imm2 = _INSN.unpack_from(insns, pos + 8)
        if code != _LD_IMM64 or (regs >> 4) != 0 or off != 0 or code2 != 0 or regs2 != 0 or off2 != 0:
            raise PatchError(f"{where}: LDIMM64 instruction has an unexpected form")
        value = (imm & 0xFFFFFFFF) | ((imm2 & 0xFFFFFFFF) << 32)
        if res.validate and value != orig:
            raise PatchError(f"{where}: unexpected LDIMM64 value: got {value}, expected {orig} -> {new}")
        new &= _U64
        _INSN.pack_into(insns, pos, code, regs, off, _u32_to_s32(new))
        _INSN.pack_into(insns, pos + 8, code2, regs2, off2, _u32_to_s32(new >> 32))
        return False, value
    raise PatchError(f"{where}: trying to relocate unrecognized instruction code {code:#04x} "
                     f"(src {regs >> 4}, dst {regs & 15}, off {off}, imm {imm})")


def find_poisoned(resolutions: Sequence["Resolution"], insn_index: int, *, offset: int = 0) -> Optional["Resolution"]:
    """The poisoned relocation at instruction ``insn_index`` of the loaded program (None if none).

    ``offset``: where the relocated program's first instruction sits in the loaded program (non-zero
    for a subprogram appended after the main program).
    """
    want = insn_index - offset
    for r in resolutions:
        if r.poisoned and r.insn_index == want:
            return r
    return None


_POISON_LINE = re.compile(r"^(\d+): \((?:85)\) call unknown#%d\s*$" % POISON_IMM, re.M)


def explain_verifier_log(log: str, resolutions: Sequence["Resolution"], *, offset: int = 0) -> Optional[str]:
    """libbpf's log fix-up: replace the verifier's ``N: (85) call unknown#195896080`` /
    ``invalid func unknown#195896080`` lines with ``N: <invalid CO-RE relocation>`` and
    ``failed to resolve CO-RE relocation <spec>``. None when the log has no such lines or the
    instruction is not a poisoned relocation."""
    for m in _POISON_LINE.finditer(log):
        res = find_poisoned(resolutions, int(m.group(1)), offset=offset)
        if res is None:
            continue
        end = m.end()
        nxt = log.find("\n", end + 1)
        second = log[end + 1:nxt if nxt >= 0 else len(log)]
        if second.startswith("invalid func unknown#"):
            end = nxt if nxt >= 0 else len(log)
        patch = f"{m.group(1)}: <invalid CO-RE relocation>\n{res.explanation}"
        return log[:m.start()] + patch + log[end:]
    return None
