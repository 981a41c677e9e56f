"""Helper probes, bpftool's method: per program type, load ``call <helper>; exit`` and read the
verifier log. The helper is missing when the log says so ("invalid func", "unknown func", or
since Linux 6.x "program of this type cannot use helper"); any other outcome — success, or a
complaint about the arguments — means the verifier accepted the call itself.
"""

from __future__ import annotations

import ctypes
import errno as _errno
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from .._sys import _generated as g
from .._sys._generated import HelperId
from .._sys.syscall import NR_BPF, _syscall
from ._insn import EXIT, call
from .probes import LICENSE, close
from .progs import ProgVariant, resolve_target

# Helpers bpftool also leaves out unless asked: loading them has side effects (a kernel log
# warning, or trace_printk's buffer set-up), so they are not probed by default.
SIDE_EFFECT_HELPERS = frozenset({"trace_printk", "trace_vprintk", "probe_write_user"})

# The kernel returns EINVAL with one of these lines when the helper does not exist or is not
# available to the program type; any other failure happened after the helper lookup.
MISSING_MARKERS = (b"invalid func ", b"unknown func ", b"program of this type cannot use helper")


@dataclass(frozen=True)
class HelperSupport:
    """Helpers of one program type: ``supported`` names, ``unsupported`` names (with the verifier's
    words), and ``skipped`` ones (not probed, see :data:`SIDE_EFFECT_HELPERS`)."""

    prog_type: str
    supported: tuple[str, ...]
    unsupported: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    probed: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view."""
        return {"prog_type": self.prog_type, "probed": self.probed, "reason": self.reason,
                "supported": list(self.supported), "unsupported": sorted(self.unsupported),
                "skipped": list(self.skipped), "counts": {"supported": len(self.supported),
                                                          "unsupported": len(self.unsupported)}}


# every known helper id but 0 and its name, computed once: Enum's .value/.name are descriptor calls,
# and a full probe would otherwise read them ~36,000 times (tens of ms of a cold `corebpf doctor`)
_NAMES: Optional[dict[HelperId, str]] = None


def _helper_ids() -> dict[HelperId, str]:
    global _NAMES
    names = _NAMES
    if names is None:  # built whole, then published in one assignment: threads never see it half-filled
        names = _NAMES = {h: h.name for h in HelperId if h.value}
    return names


def helper_names(include_side_effects: bool = False) -> list[HelperId]:
    """The helpers to probe (every known id but 0, without :data:`SIDE_EFFECT_HELPERS` by default)."""
    return [h for h, name in _helper_ids().items() if include_side_effects or name not in SIDE_EFFECT_HELPERS]


class _Prober:
    """Loads ``call id; exit`` programs with one reusable attr and buffers (one per thread).

    This is the hot loop of a full probe (thousands of loads), so it calls the syscall directly
    with pre-built arguments and only touches the instruction's immediate between loads (the
    kernel writes nothing back into the attr but ``log_true_size``).
    """

    def __init__(self, variant: ProgVariant) -> None:
        eat, btf_id, _ = resolve_target(variant)
        self.insns = ctypes.create_string_buffer(call(0) + EXIT, 16)
        self.imm = ctypes.c_int32.from_buffer(self.insns, 4)
        self.log = ctypes.create_string_buffer(4096)
        self.attr = g.ProgLoadAttr(prog_type=variant.prog_type, insn_cnt=2, insns=ctypes.addressof(self.insns),
                                   license=ctypes.addressof(LICENSE), expected_attach_type=eat,
                                   attach_btf_id=btf_id, prog_flags=variant.prog_flags,
                                   log_level=1, log_size=4096, log_buf=ctypes.addressof(self.log))
        self.args = (ctypes.c_long(NR_BPF), ctypes.c_long(g.Cmd.PROG_LOAD), ctypes.byref(self.attr),
                     ctypes.c_long(ctypes.sizeof(self.attr)))

    def probe(self, helper_id: int) -> tuple[bool, str]:
        """``(accepted, the verifier's words when not)`` for one helper id."""
        self.imm.value = helper_id
        self.log[0] = b"\0"
        for _ in range(5):
            ret = _syscall(*self.args)
            if ret >= 0:
                close(ret)
                return True, ""
            err = ctypes.get_errno()
            if err not in (_errno.EAGAIN, _errno.EINTR):
                break
        if err not in (_errno.EINVAL, _errno.EPERM):
            return True, ""  # the verifier got past the helper lookup (e.g. EACCES on an argument)
        log = self.log.value
        for marker in MISSING_MARKERS:
            pos = log.find(marker)
            if pos >= 0:
                end = log.find(b"\n", pos)
                return False, log[pos:end if end >= 0 else None].decode(errors="replace").strip()
        if err == _errno.EPERM and not log.strip():
            return False, "EPERM (no verifier log)"
        return True, ""


def probe_helpers(type_name: str, variant: ProgVariant, helpers: Optional[Iterable[HelperId]] = None,
                  *, include_side_effects: bool = False, threads: int = 1) -> HelperSupport:
    """Probe ``helpers`` (default: :func:`helper_names`) for the program type loaded as ``variant``."""
    todo = list(helpers) if helpers is not None else helper_names(include_side_effects)
    names = _helper_ids()
    wanted = set(todo)
    skipped = tuple(sorted(name for h, name in names.items() if h not in wanted))

    def run(chunk: list[HelperId]) -> list[tuple[HelperId, bool, str]]:
        p = _Prober(variant)
        probe = p.probe
        return [(h, *probe(h)) for h in chunk]  # HelperId is an int: no .value lookup per probe

    if threads > 1 and len(todo) > 16:
        from concurrent.futures import ThreadPoolExecutor

        chunks = [todo[i::threads] for i in range(threads)]
        with ThreadPoolExecutor(threads) as pool:
            results = [r for part in pool.map(run, chunks) for r in part]
    else:
        results = run(todo)
    results.sort(key=lambda r: int(r[0]))
    return HelperSupport(type_name, tuple(names.get(h) or HelperId(h).name for h, good, _ in results if good),
                         {names.get(h) or HelperId(h).name: why for h, good, why in results if not good}, skipped)


def not_probed(type_name: str, reason: str) -> HelperSupport:
    """The record for a program type whose helpers were not probed (the type does not load)."""
    return HelperSupport(type_name, (), {}, (), probed=False, reason=reason)
