"""Static linking of one entry program: append the ``.text`` subprograms it calls and fix call offsets.

This follows libbpf's ``bpf_object__reloc_code``: walk the program's instructions; at the first call
(or function-address load) into a subprogram not yet appended, append that subprogram's code at the
end and process it recursively (depth first), then point the call's ``imm`` at the subprogram's new
position. Each subprogram's relocations, func_info and line_info move along with its code, so the
result has the same instruction layout libbpf gives the kernel (hence the same program tag).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Optional

import numpy as np

from ..errors import ELFError
from .specs import ProgramSpec, RelocKind, Relocation

if TYPE_CHECKING:  # pragma: no cover
    from .objectspec import ObjectSpec

__all__ = ["LinkedProgram", "link_program"]

_CALL = 0x85
_LD_IMM64 = 0x18
_PSEUDO_CALL = 1
_PSEUDO_FUNC = 4
_IMM = struct.Struct("<i")


@dataclass
class LinkedProgram:
    """An entry program with its subprograms appended: raw code, relocations at absolute instruction
    indexes, kernel-style func_info ``(insn, type_id)`` and line_info ``(insn, file, line, line_col)``."""

    name: str
    insns: bytearray
    relocations: list[Relocation] = field(default_factory=list)
    func_info: list[tuple[int, int]] = field(default_factory=list)
    line_info: Any = None  # (n, 4) uint32 array of bpf_line_info, instruction indexes absolute
    layout: dict[str, int] = field(default_factory=dict)  # function name -> first instruction index


def link_program(spec: "ObjectSpec", prog: ProgramSpec, code: Optional[Mapping[str, bytearray]] = None) -> LinkedProgram:
    """Link ``prog`` with the subprograms it reaches. ``code`` gives (CO-RE-relocated) bytes per function
    name; functions missing from it use their spec's instructions."""
    subs = sorted(spec.subprograms.values(), key=lambda s: s.section_offset)
    starts = [s.section_offset // 8 for s in subs]
    out = LinkedProgram(prog.name, bytearray())

    def body(fn: ProgramSpec) -> bytearray:
        b = code.get(fn.name) if code is not None else None
        out_b = bytearray(b if b is not None else fn.instructions)
        for r in fn.relocations:  # mark function-address loads so they are recognised below
            if r.kind == RelocKind.SUBPROG_ADDR:
                out_b[r.insn * 8 + 1] = (out_b[r.insn * 8 + 1] & 0x0F) | (_PSEUDO_FUNC << 4)
        return out_b

    def append(fn: ProgramSpec) -> int:
        at = len(out.insns) // 8
        out.layout[fn.name] = at
        code_b = body(fn)
        n = len(code_b) // 8
        if len(code_b) % 8 or n == 0:
            raise ELFError(f"{spec.source}: function {fn.name!r}: {len(code_b)} bytes of code is not a whole, "
                           f"non-empty number of instructions")
        for r in fn.relocations:
            if r.insn >= n or (r.kind not in (RelocKind.CALL, RelocKind.EXTERN_CALL) and r.insn + 1 >= n):
                raise ELFError(f"{spec.source}: function {fn.name!r}: {r.kind.value} relocation of instruction "
                               f"{r.insn} is beyond its {n} instructions (code edited without its relocations?)")
        out.insns += code_b
        out.relocations.extend(Relocation(r.insn + at, r.kind, r.target, r.sym_off) for r in fn.relocations)
        for rec in fn.func_info:
            out.func_info.append((rec.insn_off // 8 + at, rec.type_id))
        if len(fn.line_info):
            li = np.array(fn.line_info, dtype=np.uint32).reshape(-1, 4)
            li[:, 0] = li[:, 0] // 8 + at
            lines.append(li)
        return at

    def find_sub(text_idx: int, where: str) -> ProgramSpec:
        import bisect

        i = bisect.bisect_right(starts, text_idx) - 1
        if i >= 0:
            s = subs[i]
            if text_idx < starts[i] + s.insn_count:
                return s
        raise ELFError(f"{spec.source}: {where}: no .text function at instruction {text_idx}")

    def reloc_code(fn: ProgramSpec) -> None:
        base = out.layout[fn.name]
        relos = {r.insn: r for r in fn.relocations}
        for idx in range(fn.insn_count):
            pos = (base + idx) * 8
            code_b, regs = out.insns[pos], out.insns[pos + 1]
            is_call = code_b == _CALL and regs >> 4 == _PSEUDO_CALL and regs & 0xF == 0
            is_func = code_b == _LD_IMM64 and regs >> 4 == _PSEUDO_FUNC
            if not is_call and not is_func:
                continue
            relo = relos.get(idx)
            where = f"program {prog.name!r}, function {fn.name!r} instruction {idx}"
            if relo is not None and relo.kind == RelocKind.EXTERN_CALL:
                continue
            if relo is not None and relo.kind not in (RelocKind.CALL, RelocKind.SUBPROG_ADDR):
                raise ELFError(f"{spec.source}: {where}: unexpected {relo.kind.value} relocation on a call")
            imm = _IMM.unpack_from(out.insns, pos + 4)[0]
            if relo is not None:
                target = (relo.sym_off // 8 + imm + 1) if relo.kind == RelocKind.CALL else (relo.sym_off + imm) // 8
            elif is_func:
                raise ELFError(f"{spec.source}: {where}: function address load without a relocation")
            else:
                if not fn.is_subprog:
                    raise ELFError(f"{spec.source}: {where}: call without relocation outside .text "
                                   f"(subprograms must be in .text)")
                target = fn.section_offset // 8 + idx + imm + 1
            sub = find_sub(target, where)
            if sub.name not in out.layout:
                append(sub)
                reloc_code(sub)
            _IMM.pack_into(out.insns, pos + 4, out.layout[sub.name] - (base + idx) - 1)

    lines: list[np.ndarray] = []
    append(prog)
    reloc_code(prog)
    out.relocations.sort(key=lambda r: r.insn)
    out.line_info = np.concatenate(lines) if lines else np.zeros((0, 4), dtype=np.uint32)
    return out
