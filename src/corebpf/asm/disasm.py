"""Disassembler: the text ``bpftool prog dump xlated`` prints, line for line.

:func:`format_insn` renders one instruction in the kernel's verifier-log syntax
(``(b7) r1 = 0``); :func:`disassemble` renders a program listing with bpftool's numbering,
function headers and ``; source line`` comments, naming rewritten calls through kernel symbols.

The kernel's printer grew with the ISA, and bpftool ships a copy of it, so the text depends on
the bpftool release: :class:`Dialect` says which forms the printer knows. ``Dialect.CURRENT``
knows them all (sdiv/smod, movsx, sign-extending loads, bswap, gotol, may_goto, per-CPU moves,
load-acquire/store-release, gotox); ``Dialect.LEGACY`` prints what bpftool 7.1/7.2 print, where
newer instructions come out as their base operation or ``BUG_...``; ``Dialect.for_bpftool``
gives any release's set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Optional, Protocol, Sequence

from .._sys._generated import HelperId
from .codec import decode_indexed
from .instruction import Instruction
from .kallsyms import KernelSymbols
from .opcodes import (
    ADDR_PERCPU, ADDR_SPACE_CAST, CLASS_MASK, LD_IMM64, MODE_MASK, NOSPEC, OP_MASK, SIZE_MASK, SOURCE_MASK,
    AluOp, AtomicOp, CallSrc, InsnClass, JumpOp, Mode, PseudoSrc, Size, Source,
)


@dataclass(frozen=True)
class Dialect:
    """Which forms the imitated printer knows: each flag is a step in the kernel printer's history.

    ``Dialect.CURRENT`` knows everything; ``Dialect.LEGACY`` is bpftool 7.1/7.2 (kernel 6.1/6.2
    printer); :meth:`for_bpftool` picks the exact set of a bpftool release.
    """

    isa_v4: bool = True
    """sdiv/smod, movsx, sign-extending loads, ALU64 bswap, gotol (bpftool 7.3)."""
    arena_may_goto: bool = True
    """addr_space_cast and may_goto (bpftool 7.4)."""
    percpu_mov: bool = True
    """the kernel-internal per-CPU address move; unsigned ``%4u`` line numbers (bpftool 7.5)."""
    acquire_release: bool = True
    """load_acquire / store_release (bpftool 7.6)."""
    gotox: bool = True
    """indirect jumps (bpftool 7.7)."""

    CURRENT: ClassVar["Dialect"]
    LEGACY: ClassVar["Dialect"]

    @classmethod
    def for_bpftool(cls, version: str) -> "Dialect":
        """The dialect a given bpftool release prints (``"7.1.0"`` -> ``Dialect.LEGACY``)."""
        try:
            major, minor = (int(p) for p in version.lstrip("v").split(".")[:2])
        except ValueError:
            return cls.CURRENT
        v = (major, minor)
        return cls(isa_v4=v >= (7, 3), arena_may_goto=v >= (7, 4), percpu_mov=v >= (7, 5),
                   acquire_release=v >= (7, 6), gotox=v >= (7, 7))


Dialect.CURRENT = Dialect()
Dialect.LEGACY = Dialect(isa_v4=False, arena_may_goto=False, percpu_mov=False, acquire_release=False, gotox=False)


_ALU_STR = {AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.OR: "|=",
            AluOp.AND: "&=", AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.NEG: "neg", AluOp.MOD: "%=",
            AluOp.XOR: "^=", AluOp.MOV: "=", AluOp.ARSH: "s>>=", AluOp.END: "endian"}
_ALU_SIGNED_STR = {AluOp.DIV: "s/=", AluOp.MOD: "s%="}
_MOVSX_STR = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
_ATOMIC_STR = {AtomicOp.ADD: "add", AtomicOp.AND: "and", AtomicOp.OR: "or", AtomicOp.XOR: "xor"}
_SIZE_STR = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
_SIZE_SX_STR = {Size.W: "s32", Size.H: "s16", Size.B: "s8", Size.DW: "s64"}
_JMP_STR = {JumpOp.JA: "jmp", JumpOp.JEQ: "==", JumpOp.JGT: ">", JumpOp.JLT: "<", JumpOp.JGE: ">=",
            JumpOp.JLE: "<=", JumpOp.JSET: "&", JumpOp.JNE: "!=", JumpOp.JSGT: "s>", JumpOp.JSLT: "s<",
            JumpOp.JSGE: "s>=", JumpOp.JSLE: "s<=", JumpOp.CALL: "call", JumpOp.EXIT: "exit"}
_NULL = "(null)"  # what printf("%s", NULL) prints, for opcodes the kernel's tables lack

CallNamer = Callable[[Instruction], Optional[str]]
"""Names a call the helper table does not know (a rewritten helper, kfunc, subprogram)."""
ImmNamer = Callable[[Instruction], Optional[str]]
"""Renders a ld_imm64's operand (``map[id:5]``); None falls back to ``0x...``."""


def helper_name(helper_id: int) -> Optional[str]:
    """``bpf_<name>`` of a helper id (None when this kernel's table has no such id)."""
    try:
        return "bpf_" + HelperId(helper_id).name
    except ValueError:
        return None


def format_insn(insn: Instruction, *, call_namer: Optional[CallNamer] = None,
                imm_namer: Optional[ImmNamer] = None, dialect: Dialect = Dialect.CURRENT) -> str:
    """One instruction in the kernel's printer syntax, e.g. ``(07) r1 += -8`` (no line number)."""
    code = insn.opcode
    cls = code & CLASS_MASK
    if cls in (InsnClass.ALU, InsnClass.ALU64):
        return _format_alu(insn, cls, dialect)
    if cls == InsnClass.STX:
        return _format_stx(insn, dialect)
    size = _SIZE_STR[code & SIZE_MASK]
    mode = code & MODE_MASK
    if cls == InsnClass.ST:
        if mode == Mode.MEM:
            return f"({code:02x}) *({size} *)(r{insn.dst} {insn.off:+d}) = {insn.imm}"
        if mode == NOSPEC:
            return f"({code:02x}) nospec"
        return f"BUG_st_{code:02x}"
    if cls == InsnClass.LDX:
        if mode == Mode.MEM or (mode == Mode.MEMSX and dialect.isa_v4):
            width = size if mode == Mode.MEM else _SIZE_SX_STR[code & SIZE_MASK]
            return f"({code:02x}) r{insn.dst} = *({width} *)(r{insn.src} {insn.off:+d})"
        return f"BUG_ldx_{code:02x}"
    if cls == InsnClass.LD:
        if mode == Mode.ABS:
            return f"({code:02x}) r0 = *({size} *)skb[{insn.imm}]"
        if mode == Mode.IND:
            return f"({code:02x}) r0 = *({size} *)skb[r{insn.src} + {insn.imm}]"
        if code == LD_IMM64:
            text = imm_namer(insn) if imm_namer else None
            if text is None:
                text = f"0x{insn.imm:x}"
            return f"({code:02x}) r{insn.dst} = {text}"
        return f"BUG_ld_{code:02x}"
    return _format_jmp(insn, cls, dialect, call_namer)


def _format_alu(insn: Instruction, cls: int, dialect: Dialect) -> str:
    code = insn.opcode
    op = code & OP_MASK
    reg = "w" if cls == InsnClass.ALU else "r"
    if op == AluOp.END:
        if cls == InsnClass.ALU64:
            if not dialect.isa_v4:
                return f"BUG_alu64_{code:02x}"
            return f"({code:02x}) r{insn.dst} = bswap{insn.imm} r{insn.dst}"
        order = "be" if code & SOURCE_MASK else "le"
        return f"({code:02x}) r{insn.dst} = {order}{insn.imm} r{insn.dst}"
    if op == AluOp.NEG:
        return f"({code:02x}) {reg}{insn.dst} = -{reg}{insn.dst}"
    mov_x64 = code == InsnClass.ALU64 | AluOp.MOV | Source.X
    if dialect.arena_may_goto and mov_x64 and insn.off == ADDR_SPACE_CAST:
        imm = insn.imm & 0xFFFFFFFF
        return f"({code:02x}) r{insn.dst} = addr_space_cast(r{insn.src}, {imm >> 16}, {imm & 0xFFFF})"
    if dialect.percpu_mov and mov_x64 and insn.off == ADDR_PERCPU:
        return f"({code:02x}) r{insn.dst} = &(void __percpu *)(r{insn.src})"
    if dialect.isa_v4 and op in (AluOp.DIV, AluOp.MOD) and insn.off == 1:
        sym = _ALU_SIGNED_STR[AluOp(op)]
    else:
        sym = _ALU_STR.get(op, _NULL)  # type: ignore[call-overload]
    if code & SOURCE_MASK:
        cast = _MOVSX_STR.get(insn.off, "") if dialect.isa_v4 and op == AluOp.MOV else ""
        return f"({code:02x}) {reg}{insn.dst} {sym} {cast}{reg}{insn.src}"
    return f"({code:02x}) {reg}{insn.dst} {sym} {insn.imm}"


def _format_stx(insn: Instruction, dialect: Dialect) -> str:
    code = insn.opcode
    mode = code & MODE_MASK
    size = _SIZE_STR[code & SIZE_MASK]
    where = f"r{insn.dst} {insn.off:+d}"
    if mode == Mode.MEM:
        return f"({code:02x}) *({size} *)({where}) = r{insn.src}"
    if mode != Mode.ATOMIC:
        return f"BUG_{code:02x}"
    imm = insn.imm
    bits = "64" if code & SIZE_MASK == Size.DW else ""
    if imm in (AtomicOp.ADD, AtomicOp.AND, AtomicOp.OR, AtomicOp.XOR):
        return f"({code:02x}) lock *({size} *)({where}) {_ALU_STR[AluOp(imm)]} r{insn.src}"
    if imm in (AtomicOp.ADD_FETCH, AtomicOp.AND_FETCH, AtomicOp.OR_FETCH, AtomicOp.XOR_FETCH):
        name = _ATOMIC_STR[AtomicOp(imm & ~AtomicOp.FETCH)]
        return f"({code:02x}) r{insn.src} = atomic{bits}_fetch_{name}(({size} *)({where}), r{insn.src})"
    if imm == AtomicOp.CMPXCHG:
        return f"({code:02x}) r0 = atomic{bits}_cmpxchg(({size} *)({where}), r0, r{insn.src})"
    if imm == AtomicOp.XCHG:
        return f"({code:02x}) r{insn.src} = atomic{bits}_xchg(({size} *)({where}), r{insn.src})"
    if dialect.acquire_release and imm == AtomicOp.LOAD_ACQ:
        return f"({code:02x}) r{insn.dst} = load_acquire(({size} *)(r{insn.src} {insn.off:+d}))"
    if dialect.acquire_release and imm == AtomicOp.STORE_REL:
        return f"({code:02x}) store_release(({size} *)({where}), r{insn.src})"
    return f"BUG_{code:02x}"


def _format_jmp(insn: Instruction, cls: int, dialect: Dialect, call_namer: Optional[CallNamer]) -> str:
    code = insn.opcode
    op = code & OP_MASK
    if op == JumpOp.CALL:
        name = _call_name(insn, call_namer)
        if insn.src == CallSrc.PSEUDO_CALL:
            return f"({code:02x}) call pc{name}"
        return f"({code:02x}) call {name}#{insn.imm}"
    if code == InsnClass.JMP | JumpOp.JA:
        return f"({code:02x}) goto pc{insn.off:+d}"
    if dialect.gotox and code == InsnClass.JMP | JumpOp.JA | Source.X:
        return f"({code:02x}) gotox r{insn.dst}"
    if dialect.arena_may_goto and code == InsnClass.JMP | JumpOp.JCOND and insn.src == 0:
        return f"({code:02x}) may_goto pc{insn.off:+d}"
    if dialect.isa_v4 and code == InsnClass.JMP32 | JumpOp.JA:
        return f"({code:02x}) gotol pc{insn.imm:+d}"
    if code == InsnClass.JMP | JumpOp.EXIT:
        return f"({code:02x}) exit"
    reg = "w" if cls == InsnClass.JMP32 else "r"
    sym = _JMP_STR.get(op, _NULL)  # type: ignore[call-overload]
    if code & SOURCE_MASK:
        return f"({code:02x}) if {reg}{insn.dst} {sym} {reg}{insn.src} goto pc{insn.off:+d}"
    return f"({code:02x}) if {reg}{insn.dst} {sym} 0x{insn.imm & 0xFFFFFFFF:x} goto pc{insn.off:+d}"


def _call_name(insn: Instruction, call_namer: Optional[CallNamer]) -> str:
    if insn.src == CallSrc.HELPER and insn.imm >= 0:
        name = helper_name(insn.imm)
        if name is not None:
            return name
    if call_namer is not None:
        name = call_namer(insn)
        if name is not None:
            return name
    if insn.src == CallSrc.PSEUDO_CALL:
        return f"{insn.imm:+d}"
    if insn.src == CallSrc.KFUNC:
        return "kernel-function"
    return "unknown"


# ---- program listings ---------------------------------------------------------------------------

class SourceBTF(Protocol):
    """What the listing needs from a program's BTF (:class:`corebpf.asm.btf_source.ProgramBTF` has it)."""

    def string(self, offset: int) -> Optional[str]:
        """The string at ``offset`` of the BTF string section, None when out of range."""
        ...

    def func_signature(self, type_id: int) -> str:
        """bpftool's rendering of a FUNC type, "" when it prints none."""
        ...


@dataclass(frozen=True)
class FuncInfo:
    """A ``bpf_func_info`` record: the function starting at slot ``insn_off`` has BTF type ``type_id``."""

    insn_off: int
    type_id: int


@dataclass(frozen=True)
class LineInfo:
    """A ``bpf_line_info`` record: slot ``insn_off`` comes from this file/line (string offsets)."""

    insn_off: int
    file_name_off: int
    line_off: int
    line_col: int

    @property
    def line(self) -> int:
        """Source line number (``line_col >> 10``)."""
        return self.line_col >> 10

    @property
    def column(self) -> int:
        """Source column (low 10 bits of ``line_col``)."""
        return self.line_col & 0x3FF


def xlated_imm_namer(insn: Instruction) -> Optional[str]:
    """bpftool's rendering of ld_imm64 operands in translated code (map ids, subprograms)."""
    if insn.src == PseudoSrc.MAP_FD:
        return f"map[id:{insn.imm_lo & 0xFFFFFFFF}]"
    if insn.src == PseudoSrc.MAP_VALUE:
        return f"map[id:{insn.imm_lo & 0xFFFFFFFF}][0]+{insn.imm_hi & 0xFFFFFFFF}"
    if insn.src == PseudoSrc.MAP_IDX_VALUE:
        return f"map[idx:{insn.imm_lo & 0xFFFFFFFF}]+{insn.imm_hi & 0xFFFFFFFF}"
    if insn.src == PseudoSrc.FUNC:
        return f"subprog[{insn.imm_lo:+d}]"
    return None


def kernel_call_namer(kallsyms: Optional[KernelSymbols], jited_ksyms: Sequence[int] = ()) -> CallNamer:
    """bpftool's naming of calls in translated code.

    Helpers became ``__bpf_call_base``-relative addresses: name them from kallsyms (raw address
    when unknown). Subprogram calls carry their index into ``jited_ksyms``: print the relative
    offset, plus the JITed symbol when the program is JITed.
    """
    syms = kallsyms or KernelSymbols()

    def name(insn: Instruction) -> str:
        address = (syms.call_base + insn.imm) & ((1 << 64) - 1)
        if insn.src == CallSrc.PSEUDO_CALL and 0 <= insn.imm < len(jited_ksyms):
            address = jited_ksyms[insn.imm]
        sym = syms.lookup(address)
        if insn.src == CallSrc.PSEUDO_CALL:
            if not jited_ksyms:
                return f"{insn.off:+d}"
            return f"{insn.off:+d}#{sym}" if sym else f"{insn.off:+d}#0x{address:x}"
        return sym if sym else f"0x{address:x}"

    return name


def _find_line(lines: Sequence[LineInfo], slot: int, nr_skip: int) -> Optional[LineInfo]:
    # libbpf's bpf_prog_linfo__lfind: from record nr_skip on, the last record at or before slot
    if nr_skip >= len(lines) or slot < lines[nr_skip].insn_off:
        return None
    found = lines[nr_skip]
    for rec in lines[nr_skip:]:
        if slot < rec.insn_off:
            break
        found = rec
    return found


def disassemble(insns: Sequence[Instruction] | bytes | bytearray | memoryview, *,
                kallsyms: Optional[KernelSymbols] = None, jited_ksyms: Sequence[int] = (),
                func_info: Sequence[FuncInfo] = (), line_info: Sequence[LineInfo] = (),
                btf: Optional[SourceBTF] = None, xlated: bool = True, dialect: Dialect = Dialect.CURRENT,
                opcodes: bool = False, linum: bool = False,
                call_namer: Optional[CallNamer] = None, imm_namer: Optional[ImmNamer] = None) -> list[str]:
    """A program listing, one string per output line, as ``bpftool prog dump xlated`` prints it.

    Args:
        insns: instructions or raw bytes.
        kallsyms: kernel symbols to name rewritten helper calls and JITed subprograms
            (``KernelSymbols.load()``); without them those print as addresses.
        jited_ksyms: the program's ``jited_ksyms`` (addresses of its JITed functions).
        func_info, line_info, btf: the program's BTF records; with ``btf`` set (a
            :class:`corebpf.btf.BTF` or anything with ``string``/``func_signature``), function
            headers (``int f(struct xdp_md * ctx):``) and ``; source line`` comments are printed.
        xlated: True for translated code from the kernel (map ids, rewritten calls); False for
            code straight from an object file (helper ids, ``call pc+N``, raw immediates).
        dialect: which bpftool generation to match (:class:`Dialect`).
        opcodes: add a line with each instruction's bytes (``bpftool ... opcodes``).
        linum: add ``[file:... line_num:N line_col:M]`` to source lines (``bpftool ... linum``).
        call_namer, imm_namer: override how calls and ld_imm64 operands are named.
    """
    if isinstance(insns, (bytes, bytearray, memoryview)):
        indexed = decode_indexed(insns)
    else:
        indexed, slot = [], 0
        for insn in insns:
            indexed.append((slot, insn))
            slot += insn.slots
    if btf is not None and not hasattr(btf, "func_signature"):
        from .btf_source import ProgramBTF  # a corebpf.btf.BTF: render through the adapter

        btf = ProgramBTF(btf)  # type: ignore[arg-type]
    if xlated:
        call_namer = call_namer or kernel_call_namer(kallsyms, jited_ksyms)
        imm_namer = imm_namer or xlated_imm_namer
    width = "%4d: " if dialect.percpu_mov else "% 4d: "  # both changed in bpftool 7.5
    out: list[str] = []
    funcs = list(func_info) if btf is not None else []
    lines = list(line_info) if btf is not None else []
    next_func, nr_skip = 0, 0
    for slot, insn in indexed:
        if next_func < len(funcs) and funcs[next_func].insn_off == slot:
            assert btf is not None
            sig = btf.func_signature(funcs[next_func].type_id)
            if sig:
                out.append(f"{sig}:")
            next_func += 1
        if lines:
            rec = _find_line(lines, slot, nr_skip)
            if rec is not None:
                assert btf is not None
                text = _source_line(btf, rec, linum)
                if text is not None:
                    out.append(text)
                nr_skip += 1
        out.append(width % slot + format_insn(insn, call_namer=call_namer, imm_namer=imm_namer, dialect=dialect))
        if opcodes:
            raw = insn.to_bytes()
            hexed = " ".join(f"{b:02x}" for b in raw[:8])
            if len(raw) > 8:
                hexed += " " + " ".join(f"{b:02x}" for b in raw[8:])
            out.append("       " + hexed)
    return out


def _source_line(btf: SourceBTF, rec: LineInfo, linum: bool) -> Optional[str]:
    line = btf.string(rec.line_off)
    if line is None:
        return None
    line = line.lstrip(" \t\n\v\f\r")
    if linum:
        file = btf.string(rec.file_name_off) or ""
        return f"; {line} [file:{file} line_num:{rec.line} line_col:{rec.column}]"
    return f"; {line}"


def disassemble_object(insns: Sequence[Instruction] | bytes | bytearray | memoryview, *,
                       dialect: Dialect = Dialect.CURRENT, symbols: Optional[dict[int, str]] = None) -> list[str]:
    """A listing of code from an object file (no kernel info): helper names, ``call pc+N``.

    ``symbols`` maps slot indexes to a label printed on its own line before that slot (function
    names from the ELF symbol table, for instance), like ``llvm-objdump -d`` does.
    """
    body = disassemble(insns, xlated=False, dialect=dialect)
    if not symbols:
        return body
    out: list[str] = []
    for line in body:
        head = line.split(":", 1)[0].strip()
        if head.isdigit() and int(head) in symbols:
            out.append(f"{symbols[int(head)]}:")
        out.append(line)
    return out


__all__ = ["CallNamer", "Dialect", "FuncInfo", "ImmNamer", "LineInfo", "SourceBTF", "disassemble",
           "disassemble_object", "format_insn", "helper_name", "kernel_call_namer", "xlated_imm_namer"]
