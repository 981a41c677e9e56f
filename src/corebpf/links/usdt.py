"""USDT probes (``DTRACE_PROBE``/``STAP_PROBE`` in user code): found in the ``.note.stapsdt`` ELF notes and
attached as uprobes at each location, with the probe's semaphore counted up while attached.

Discovery (:func:`probes`) fixes addresses and semaphores up for prelinked files (``.stapsdt.base``).
Programs written with libbpf's ``usdt.bpf.h`` (``BPF_USDT``, ``bpf_usdt_arg``) get their arguments: give
the object's ``__bpf_usdt_specs`` map (``attach_program``/``attach_all`` do) and each location's argument
spec (``"-4@%edi 8@-8(%rbp) 4@$5"``, x86-64) is written there, its spec id passed as the BPF cookie
(Linux >= 5.15) or, on older kernels, keyed by instruction address in ``__bpf_usdt_ip_to_spec_id``.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from typing import Any, Optional

from .._sys import ops
from ..errors import CoreBPFError
from ._elfsym import address_to_offset, resolve_binary
from ._matches import close_matches
from .link import Link, MultiLink, _fileno
from .planb import TargetNotFoundError

# struct pt_regs offsets on x86-64, by every name of each register
_X86_REGS = {
    **{n: 0 for n in ("r15", "r15d", "r15w", "r15b")}, **{n: 8 for n in ("r14", "r14d", "r14w", "r14b")},
    **{n: 16 for n in ("r13", "r13d", "r13w", "r13b")}, **{n: 24 for n in ("r12", "r12d", "r12w", "r12b")},
    **{n: 32 for n in ("rbp", "ebp", "bp", "bpl")}, **{n: 40 for n in ("rbx", "ebx", "bx", "bl")},
    **{n: 48 for n in ("r11", "r11d", "r11w", "r11b")}, **{n: 56 for n in ("r10", "r10d", "r10w", "r10b")},
    **{n: 64 for n in ("r9", "r9d", "r9w", "r9b")}, **{n: 72 for n in ("r8", "r8d", "r8w", "r8b")},
    **{n: 80 for n in ("rax", "eax", "ax", "al")}, **{n: 88 for n in ("rcx", "ecx", "cx", "cl")},
    **{n: 96 for n in ("rdx", "edx", "dx", "dl")}, **{n: 104 for n in ("rsi", "esi", "si", "sil")},
    **{n: 112 for n in ("rdi", "edi", "di", "dil")}, "rip": 128, **{n: 152 for n in ("rsp", "esp", "sp", "spl")},
}
ARG_CONST, ARG_REG, ARG_REG_DEREF = 0, 1, 2
MAX_ARGS = 12
SPEC_SIZE = 208  # struct __bpf_usdt_spec: 12 x 16-byte arg specs, u64 cookie, short count, padding


@dataclass(frozen=True)
class ArgSpec:
    """Where one USDT argument lives: a constant, a register, or memory at register + offset."""

    kind: int
    val_off: int
    reg_off: int
    signed: bool
    size: int

    def encode(self) -> bytes:
        """``struct __bpf_usdt_arg_spec`` (usdt.bpf.h)."""
        return struct.pack("<QIhBb", self.val_off & 0xFFFFFFFFFFFFFFFF, self.kind, self.reg_off, int(self.signed),
                           64 - self.size * 8)


_ARG_DEREF = re.compile(r"(-?\d+)@(-?(?:0x[0-9a-fA-F]+|\d+))?\(%(\w+)\)")
_ARG_REG = re.compile(r"(-?\d+)@%(\w+)")
_ARG_CONST = re.compile(r"(-?\d+)@\$(-?(?:0x[0-9a-fA-F]+|\d+))")


def parse_args(text: str) -> list[ArgSpec]:
    """The argument specs of one location (x86-64 assembler syntax), e.g. ``"-4@%edi 8@-8(%rbp) 4@$5"``."""
    out = []
    for item in text.split():
        for rx, kind in ((_ARG_DEREF, ARG_REG_DEREF), (_ARG_REG, ARG_REG), (_ARG_CONST, ARG_CONST)):
            m = rx.fullmatch(item)
            if m is None:
                continue
            size = int(m.group(1))
            if abs(size) not in (1, 2, 4, 8):
                raise CoreBPFError(f"USDT argument {item!r}: size {size} is not 1, 2, 4 or 8")
            if kind == ARG_CONST:
                out.append(ArgSpec(kind, int(m.group(2), 0), 0, size < 0, abs(size)))
                break
            reg = m.group(3) if kind == ARG_REG_DEREF else m.group(2)
            if reg not in _X86_REGS:
                raise CoreBPFError(f"USDT argument {item!r}: register %{reg} unknown (x86-64 only)")
            off = int(m.group(2), 0) if kind == ARG_REG_DEREF and m.group(2) else 0
            out.append(ArgSpec(kind, off, _X86_REGS[reg], size < 0, abs(size)))
            break
        else:
            raise CoreBPFError(f"USDT argument spec {item!r} not understood")
    if len(out) > MAX_ARGS:
        raise CoreBPFError(f"USDT location has {len(out)} arguments; usdt.bpf.h handles at most {MAX_ARGS}")
    return out


def encode_spec(args: list[ArgSpec], cookie: int) -> bytes:
    """``struct __bpf_usdt_spec`` for one location."""
    raw = b"".join(a.encode() for a in args).ljust(MAX_ARGS * 16, b"\0")
    return (raw + struct.pack("<Qh", cookie, len(args))).ljust(SPEC_SIZE, b"\0")


class _SpecIds:
    """Spec ids handed out per specs map (by map id), returned when their link closes."""

    def __init__(self) -> None:
        self._used: dict[int, set[int]] = {}

    def take(self, map_id: int, capacity: int) -> int:
        used = self._used.setdefault(map_id, set())
        for i in range(capacity):
            if i not in used:
                used.add(i)
                return i
        raise CoreBPFError(f"the USDT spec map is full ({capacity} specs): raise BPF_USDT_MAX_SPEC_CNT")

    def give_back(self, map_id: int, spec_id: int) -> None:
        self._used.get(map_id, set()).discard(spec_id)


_spec_ids = _SpecIds()


@dataclass(frozen=True)
class Probe:
    """One USDT location: ``provider:name`` at file ``offset`` with an optional semaphore file offset and
    the assembler argument spec (``"-4@%edi 8@%rsi"``)."""

    provider: str
    name: str
    address: int
    offset: int
    semaphore_offset: int
    args: str


def _align4(n: int) -> int:
    return (n + 3) & ~3


def probes(binary: str) -> list[Probe]:
    """Every USDT location in ``binary`` (path, program or library name)."""
    from elftools.common.exceptions import ELFError as PyELFError
    from elftools.elf.elffile import ELFFile

    path = resolve_binary(binary)
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            note = elf.get_section_by_name(".note.stapsdt")
            if note is None:
                return []
            base_sec = elf.get_section_by_name(".stapsdt.base")
            loads = [(s["p_vaddr"], s["p_memsz"], s["p_offset"]) for s in elf.iter_segments()
                     if s["p_type"] == "PT_LOAD"]
            sections = [(s["sh_addr"], s["sh_size"], s["sh_offset"]) for s in elf.iter_sections() if s["sh_addr"]]
            data = note.data()
            little = elf.little_endian
    except (OSError, PyELFError) as exc:
        raise CoreBPFError(f"cannot read USDT notes of {path}: {exc}") from None
    end = "<" if little else ">"
    out: list[Probe] = []
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(end + "III", data, pos)
        pos += 12
        name = data[pos:pos + namesz].rstrip(b"\0")
        pos += _align4(namesz)
        desc = data[pos:pos + descsz]
        pos += _align4(descsz)
        if name != b"stapsdt" or ntype != 3 or len(desc) < 24:
            continue
        pc, base, sem = struct.unpack_from(end + "QQQ", desc, 0)
        provider, pname, args = (desc[24:].split(b"\0") + [b"", b"", b""])[:3]
        if base_sec is not None and base:  # prelink moved the file: shift by how much .stapsdt.base moved
            delta = base_sec["sh_addr"] - base
            pc += delta
            if sem:
                sem += delta
        off = address_to_offset(loads, pc)
        sem_off = address_to_offset(sections, sem) if sem else 0
        if off is None:
            continue
        out.append(Probe(provider.decode(), pname.decode(), pc, off, sem_off or 0, args.decode()))
    return out


def usdt(program: Any, binary: str, provider: str, name: str, *, pid: Optional[int] = None, cookie: int = 0,
         specs_map: Any = None, ip_map: Any = None, use_cookie: Optional[bool] = None) -> Link:
    """Attach a program (loaded as a ``kprobe``-type program) at every location of USDT probe
    ``provider:name`` in ``binary``; the semaphore (if any) is raised while attached.

    With ``specs_map`` (the object's ``__bpf_usdt_specs``), each location's argument spec is written
    there so ``bpf_usdt_arg()`` and ``bpf_usdt_cookie()`` (which then returns ``cookie``) work. The
    program finds its spec by BPF cookie (Linux >= 5.15), or else by instruction address in ``ip_map``
    (``__bpf_usdt_ip_to_spec_id``; shared libraries and PIE programs then need ``pid`` to know where
    they are mapped). ``use_cookie`` overrides the probe of which one the kernel (and so the program,
    through ``LINUX_HAS_BPF_COOKIE``) uses. Without ``specs_map``, ``cookie`` is the BPF cookie as is.
    """
    from .uprobe import uprobe

    found = probes(binary)
    chosen = [p for p in found if p.provider == provider and p.name == name]
    if not chosen:
        raise TargetNotFoundError("USDT probe", f"{provider}:{name}",
                                  close_matches(f"{provider}:{name}", sorted({f"{p.provider}:{p.name}" for p in found})),
                                  resolve_binary(binary))
    path = resolve_binary(binary, pid)
    if specs_map is not None and use_cookie is None:
        from .. import features

        use_cookie = features.attach_method("bpf_cookie").supported
    if specs_map is not None and not use_cookie and ip_map is None:
        raise CoreBPFError("this kernel has no BPF cookies: USDT arguments then need the object's "
                           "__bpf_usdt_ip_to_spec_id map (ip_map=)")
    links: list[Link] = []
    try:
        for p in chosen:
            loc_cookie = cookie
            releases: list[Any] = []
            try:
                if specs_map is not None:
                    spec_id, release = _write_spec(specs_map, parse_args(p.args), cookie)
                    releases.append(release)
                    loc_cookie = spec_id if use_cookie else 0
                    if not use_cookie:
                        releases.append(_write_ip(ip_map, absolute_ip(path, p, pid), spec_id))
                link = uprobe(program, path, None, p.offset, pid=pid, ref_ctr_offset=p.semaphore_offset,
                              cookie=loc_cookie)
            except BaseException:
                for release in reversed(releases):
                    release()
                raise
            for release in releases:
                link.add_cleanup(release, last=True)
            links.append(link)
    except BaseException:
        for lk in links:
            lk.close()
        raise
    return MultiLink(f"usdt {path}:{provider}:{name} ({len(links)} locations)",
                     "/".join(sorted({lk.method for lk in links})), links)


def absolute_ip(path: str, probe: Probe, pid: Optional[int]) -> int:
    """The instruction address of ``probe`` as the CPU sees it: its link-time address in a fixed-address
    executable, else its file offset placed in process ``pid``'s mapping of ``path``."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        fixed = ELFFile(f).header["e_type"] == "ET_EXEC"
    if fixed:
        return probe.address
    if pid is None:
        raise CoreBPFError(f"{path} is position-independent: without BPF cookies (Linux < 5.15) USDT arguments "
                           "need pid= to find where it is mapped")
    st = os.stat(path)
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 6 or int(fields[4]) != st.st_ino:
                    continue
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                off = int(fields[2], 16)
                if off <= probe.offset < off + (hi - lo):
                    return lo + probe.offset - off
    except OSError as exc:
        raise CoreBPFError(f"cannot read /proc/{pid}/maps: {exc.strerror}") from None
    raise CoreBPFError(f"process {pid} does not map {path} where USDT {probe.provider}:{probe.name} lives")


def _write_ip(ip_map: Any, ip: int, spec_id: int) -> Any:
    key = ip.to_bytes(8, "little")
    ops.map_update_elem(_fileno(ip_map), key, spec_id.to_bytes(4, "little"))
    return lambda: ops.map_delete_elem(_fileno(ip_map), key)


def _write_spec(specs_map: Any, args: list[ArgSpec], cookie: int) -> tuple[int, Any]:
    from ..maps.info import map_info

    info = map_info(_fileno(specs_map))
    if info.value_size != SPEC_SIZE:
        raise CoreBPFError(f"map {info.name!r} has {info.value_size}-byte values, not struct __bpf_usdt_spec "
                           f"({SPEC_SIZE} bytes): is it usdt.bpf.h's __bpf_usdt_specs?")
    spec_id = _spec_ids.take(info.id, info.max_entries)
    ops.map_update_elem(_fileno(specs_map), spec_id.to_bytes(4, "little"), encode_spec(args, cookie))

    def release() -> None:
        _spec_ids.give_back(info.id, spec_id)

    return spec_id, release


__all__ = ["Probe", "ArgSpec", "probes", "usdt", "parse_args", "encode_spec", "absolute_ip"]
