"""The eBPF instruction set: decode/encode, the bpftool-compatible disassembler, a builder.

    >>> from corebpf.asm import decode, encode, disassemble
    >>> from corebpf.asm.builder import mov64, exit_, R0
    >>> code = encode([mov64(R0, 0), exit_()])
    >>> decode(code) == [mov64(R0, 0), exit_()]
    True
    >>> disassemble(code, xlated=False)
    ['   0: (b7) r0 = 0', '   1: (95) exit']

``from corebpf.asm import *`` also brings the builder's instruction functions and registers.
Loaded programs: :func:`read_xlated` / :func:`dump_xlated` (bpftool's text); object files:
:func:`disassemble_elf`.
"""

from __future__ import annotations

from . import builder
from .builder import *  # noqa: F401,F403  (the builder is part of the package's surface)
from .codec import decode, decode_indexed, encode, iter_decode, slot_count
from .disasm import (
    Dialect, FuncInfo, LineInfo, disassemble, disassemble_object, format_insn, helper_name, kernel_call_namer,
    xlated_imm_namer,
)
from .instruction import Instruction
from .kallsyms import KernelSymbols
from .opcodes import (
    INSN_SIZE, LD_IMM64, AluOp, AtomicOp, CallSrc, Endian, InsnClass, JumpOp, Mode, PseudoSrc, Reg, Size, Source,
)

_XLATED = {"XlatedProgram", "dump_xlated", "read_btf", "read_xlated", "read_xlated_by_id"}
_LAZY = {**{name: "xlated" for name in _XLATED}, "disassemble_elf": "objdump", "ProgramBTF": "btf_source"}


def __getattr__(name: str) -> object:
    # kernel access (xlated), pyelftools (objdump) and corebpf.btf (numpy) load only when asked for
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'corebpf.asm' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "AluOp", "AtomicOp", "CallSrc", "Dialect", "Endian", "FuncInfo", "INSN_SIZE", "InsnClass", "Instruction",
    "JumpOp", "KernelSymbols", "LD_IMM64", "LineInfo", "Mode", "PseudoSrc", "Reg", "Size", "Source", "builder",
    "decode", "decode_indexed", "disassemble", "disassemble_object", "encode", "format_insn", "helper_name",
    "iter_decode", "kernel_call_namer", "slot_count", "xlated_imm_namer", *sorted(_LAZY), *builder.__all__,
]
