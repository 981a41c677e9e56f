"""Which instructions of a (CO-RE relocated, linked) program the verifier can reach.

A poisoned CO-RE relocation only fails a load when the verifier reaches it: programs guard optional
fields with ``bpf_core_field_exists()`` / ``bpf_core_type_exists()``, whose relocated value (0 on a
kernel without the field) makes the guarded branch dead, and the verifier skips dead branches. To
say "will load" or "will not load" without loading, this module follows the program's control flow
with the registers' known constants (moves of immediates, ld_imm64 of plain values, and arithmetic
on them) and takes only the feasible side of a conditional jump whose outcome is known, as the
verifier does. Values kept on the stack or in maps are unknown, so the answer errs on the side of
"reachable" (a false alarm, never a missed failure).
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Optional

__all__ = ["reachable"]

_SLOT = struct.Struct("<BBhi")
_M64 = (1 << 64) - 1
_M32 = (1 << 32) - 1
State = tuple[Optional[int], ...]
_UNKNOWN: State = (None,) * 11


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _alu(op: int, a: int, b: int, bits: int) -> Optional[int]:
    mask = _M64 if bits == 64 else _M32
    a &= mask
    b &= mask
    if op == 0x00:
        return (a + b) & mask
    if op == 0x10:
        return (a - b) & mask
    if op == 0x20:
        return (a * b) & mask
    if op == 0x30:
        return (a // b) & mask if b else 0
    if op == 0x40:
        return a | b
    if op == 0x50:
        return a & b
    if op == 0x60:
        return (a << (b & (bits - 1))) & mask
    if op == 0x70:
        return a >> (b & (bits - 1))
    if op == 0x80:
        return (-a) & mask
    if op == 0x90:
        return a % b if b else a
    if op == 0xA0:
        return a ^ b
    if op == 0xC0:
        return (_signed(a, bits) >> (b & (bits - 1))) & mask
    return None


def _cond(op: int, a: int, b: int, bits: int) -> Optional[bool]:
    ua, ub = a & ((1 << bits) - 1), b & ((1 << bits) - 1)
    sa, sb = _signed(a, bits), _signed(b, bits)
    return {0x10: ua == ub, 0x20: ua > ub, 0x30: ua >= ub, 0x40: bool(ua & ub), 0x50: ua != ub,
            0x60: sa > sb, 0x70: sa >= sb, 0xA0: ua < ub, 0xB0: ua <= ub, 0xC0: sa < sb, 0xD0: sa <= sb}.get(op)


def _join(a: State, b: State) -> State:
    return tuple(x if x == y else None for x, y in zip(a, b))


def _set(state: State, reg: int, value: Optional[int]) -> State:
    if reg > 10:
        return state
    s = list(state)
    s[reg] = value
    return tuple(s)


def reachable(code: bytes, entries: tuple[int, ...] = (0,)) -> set[int]:
    """Slot indexes of ``code`` that some path from ``entries`` reaches, pruning conditional jumps
    whose outcome the known register constants decide."""
    n = len(code) // 8
    states: dict[int, State] = {}
    work: deque[tuple[int, State]] = deque((e, _UNKNOWN) for e in entries)
    while work:
        pc, st = work.popleft()
        if not 0 <= pc < n:
            continue
        old = states.get(pc)
        if old is not None:
            merged = _join(old, st)
            if merged == old:
                continue
            st = merged
        states[pc] = st
        for nxt, nst in _step(code, n, pc, st):
            work.append((nxt, nst))
    return set(states)


def _step(code: bytes, n: int, pc: int, st: State) -> list[tuple[int, State]]:
    op, regs, off, imm = _SLOT.unpack_from(code, pc * 8)
    dst, src = regs & 0xF, regs >> 4
    cls = op & 0x07
    if op == 0x18:  # ld_imm64
        out: list[tuple[int, State]] = []
        if pc + 1 < n:
            hi = _SLOT.unpack_from(code, (pc + 1) * 8)[3]
            value = ((hi & _M32) << 32 | (imm & _M32)) if src == 0 else None
            out.append((pc + 2, _set(st, dst, value)))
        if src == 4:  # address of a callback function
            out.append((pc + imm + 1, _UNKNOWN))
        return out
    if cls in (0x04, 0x07):  # ALU / ALU64
        bits = 64 if cls == 0x07 else 32
        aop = op & 0xF0
        if op & 0x08:
            b = st[src] if src <= 10 else None
        else:
            b = imm & _M64 if bits == 64 else imm & _M32
        if aop == 0xB0:
            value = b if off == 0 else None
            if value is not None and bits == 32:
                value &= _M32
        elif aop == 0xD0 or off != 0 or st[dst] is None or b is None:
            value = None
        else:
            value = _alu(aop, st[dst], b, bits)  # type: ignore[arg-type]
        return [(pc + 1, _set(st, dst, value))]
    if cls == 0x01:  # LDX
        return [(pc + 1, _set(st, dst, None))]
    if cls == 0x03 and op & 0xE0 == 0xC0:  # atomics may write src (fetch) and r0 (cmpxchg)
        return [(pc + 1, _set(_set(st, src, None), 0, None))]
    if cls in (0x00, 0x02, 0x03):
        return [(pc + 1, st)]
    # JMP / JMP32
    jop = op & 0xF0
    if jop == 0x90:  # exit
        return []
    if jop == 0x80:  # call
        after = tuple(None if r <= 5 else v for r, v in enumerate(st))
        out = [(pc + 1, after)]
        if src == 1:
            out.append((pc + imm + 1, _UNKNOWN))
        return out
    if jop == 0x00:  # ja / gotol
        return [(pc + (imm if cls == 0x06 else off) + 1, st)]
    if jop == 0xE0:  # may_goto
        return [(pc + 1, st), (pc + off + 1, st)]
    bits = 32 if cls == 0x06 else 64
    a = st[dst] if dst <= 10 else None
    b = (st[src] if src <= 10 else None) if op & 0x08 else imm & _M64
    taken: Optional[bool] = None
    if a is not None and b is not None:
        taken = _cond(jop, a, b, bits)
    out = []
    if taken is not False:
        out.append((pc + off + 1, st))
    if taken is not True:
        out.append((pc + 1, st))
    return out
