"""Instruction-set and verifier probes (what bpftool calls "miscellaneous features")."""

from __future__ import annotations

from typing import Callable

from .._sys._generated import ProgType
from ._insn import EXIT, insn, mov64_imm
from .probes import ProbeResult, ProgLoader, close, failed, last_log_line, ok

# name -> (program, what success means, what failure means)
_PROGRAMS: dict[str, tuple[Callable[[], bytes], str, str]] = {
    "large_insn_limit": (lambda: mov64_imm(0, 0) * 4097 + EXIT,
                         "programs over 4096 instructions load (1M limit, Linux >= 5.2)",
                         "4096-instruction limit: split programs (tail calls)"),
    "bounded_loops": (lambda: mov64_imm(0, 10) + insn(0x17, 0, 0, 0, 1) + insn(0x55, 0, 0, -2, 0) + EXIT,
                      "bounded loops verify (Linux >= 5.3)", "loops must be unrolled"),
    "isa_v2": (lambda: mov64_imm(0, 0) + insn(0xA5, 0, 0, 0, 1) + EXIT,
               "ISA v2 (jlt/jle/jslt/jsle, Linux >= 4.14)", "compile with -mcpu=v1"),
    "isa_v3": (lambda: mov64_imm(0, 0) + insn(0xA6, 0, 0, 0, 1) + EXIT,
               "ISA v3 (32-bit jumps, Linux >= 5.1)", "compile with -mcpu=v2"),
    "isa_v4": (lambda: mov64_imm(0, 0) + insn(0xBF, 0, 0, 8, 0) + insn(0x37, 0, 0, 1, 1) + EXIT,
               "ISA v4 (sign-extending moves, signed division, Linux >= 6.6)", "compile with -mcpu=v3"),
}


def probe_misc() -> dict[str, ProbeResult]:
    """Probe every item of the instruction-set/verifier list."""
    loader = ProgLoader()
    out = {}
    for name, (build, yes, no) in _PROGRAMS.items():
        fd, log = loader.load(ProgType.SOCKET_FILTER, build(), log=False)
        if fd >= 0:
            close(fd)
            out[name] = ok(name, yes)
        else:
            out[name] = failed(name, -fd, no, detail=last_log_line(log))
    return out
