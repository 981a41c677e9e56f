"""Find the line or two that matter in a verifier log.

A verifier log replays the program's paths: instruction lines (``12: (61) r0 = *(u32 *)(r1 +0)``),
register-state lines, branch markers, C source lines (``; return x; @ prog.c:10``) when BTF line info
was given, then the reason for the rejection and a few statistics lines. The reason is what follows
the last instruction line, minus the statistics; the failing instruction is that last instruction line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

# "12: (61) r0 = *(u32 *)(r1 +0)" -- an instruction as the verifier prints it.
_INSN = re.compile(r"^(\d+): \(([0-9a-f]{2})\) (.*)$")
# "12: R0=... R1=..." / "12: frame1: R1=..." -- the register state at an instruction.
_STATE = re.compile(r"^\d+: (?:frame\d+: )?R\d+|^\d+:\s*$")
_TRAILING_STATE = re.compile(r"\s+; .*$")
_SOURCE = re.compile(r"^; (.*)$")
_NOISE_PREFIXES = (
    "processed ", "verification time", "stack depth", "-- END PROG LOAD LOG --", "max_states_per_insn",
    "last_idx ", "regs=", "parent didn't have regs", "mark_precise", "propagating ", "Live regs",
    "func#", "from ", "Func#", "Validating ", "Global function ",
)


@dataclass(frozen=True)
class LogSummary:
    """The interesting part of a verifier log."""

    reason: str
    """The last one or two lines saying why the program was rejected."""
    insn_index: Optional[int] = None
    """Index of the failing instruction, when the log names one."""
    insn: str = ""
    """The failing instruction as the verifier printed it (``(61) r0 = *(u32 *)(r1 +0)``)."""
    source: str = ""
    """The C source line of that instruction, when the program came with BTF line info."""

    def __str__(self) -> str:
        text = self.reason or "the verifier gave no reason"
        if self.insn_index is not None:
            text += f" (at insn {self.insn_index}: {self.insn}"
            text += f"; source: {self.source})" if self.source else ")"
        return text


def _is_noise(line: str) -> bool:
    return line.startswith(_NOISE_PREFIXES) or bool(_STATE.match(line))


def summarize(log: str, max_reason_lines: int = 2) -> LogSummary:
    """Pick the reason and the failing instruction out of a verifier log."""
    lines = [ln.rstrip() for ln in log.replace("\x00", "").splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    # Drop the statistics the verifier prints after the verdict.
    while lines and lines[-1].startswith(_NOISE_PREFIXES):
        lines.pop()
    reason: list[str] = []
    insn_at = -1
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i]
        if _INSN.match(line):
            insn_at = i
            break
        if _SOURCE.match(line) or _is_noise(line):
            if reason:
                # A state or source line above the reason: the reason is complete.
                insn_at = _find_insn_above(lines, i)
                break
            continue
        reason.insert(0, line.strip())
    reason = reason[-max_reason_lines:]
    if insn_at < 0:
        return LogSummary(reason="; ".join(reason))
    m = _INSN.match(lines[insn_at])
    assert m is not None
    source = ""
    for j in range(insn_at - 1, max(insn_at - 4, -1), -1):
        sm = _SOURCE.match(lines[j])
        if sm:
            source = sm.group(1).strip()
            break
        if _INSN.match(lines[j]):
            break
    text = _TRAILING_STATE.sub("", m.group(3))  # instructions that passed carry "; R1=..." after them
    return LogSummary(reason="; ".join(reason), insn_index=int(m.group(1)), insn=f"({m.group(2)}) {text}",
                      source=source)


def _find_insn_above(lines: list[str], start: int) -> int:
    for j in range(start, -1, -1):
        if _INSN.match(lines[j]):
            return j
    return -1


__all__ = ["LogSummary", "summarize"]
