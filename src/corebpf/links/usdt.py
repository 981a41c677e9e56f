"""USDT probes (``DTRACE_PROBE``/``STAP_PROBE`` in user code): found in the ``.note.stapsdt`` ELF notes and
attached as uprobes at each location, with the probe's semaphore counted up while attached.

What is implemented: discovery (:func:`probes`), address/semaphore fix-ups for prelinked files
(``.stapsdt.base``), attach with a cookie per location. Not implemented: libbpf's BPF-side argument
fetching (``usdt.bpf.h`` spec maps); programs read arguments from ``pt_regs`` themselves, the
argument spec of each location is exposed in :attr:`Probe.args`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import CoreBPFError
from ._elfsym import address_to_offset, resolve_binary
from ._matches import close_matches
from .link import Link, MultiLink
from .planb import TargetNotFoundError


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


def usdt(program: Any, binary: str, provider: str, name: str, *, pid: Optional[int] = None,
         cookie: int = 0) -> Link:
    """Attach a program (loaded as a ``kprobe``-type program) at every location of USDT probe
    ``provider:name`` in ``binary``; the semaphore (if any) is raised while attached."""
    from .uprobe import uprobe

    found = probes(binary)
    chosen = [p for p in found if p.provider == provider and p.name == name]
    if not chosen:
        raise TargetNotFoundError("USDT probe", f"{provider}:{name}",
                                  close_matches(f"{provider}:{name}", sorted({f"{p.provider}:{p.name}" for p in found})),
                                  resolve_binary(binary))
    path = resolve_binary(binary, pid)
    links: list[Link] = []
    try:
        for p in chosen:
            links.append(uprobe(program, path, None, p.offset, pid=pid, ref_ctr_offset=p.semaphore_offset,
                                cookie=cookie))
    except BaseException:
        for lk in links:
            lk.close()
        raise
    return MultiLink(f"usdt {path}:{provider}:{name} ({len(links)} locations)",
                     "/".join(sorted({lk.method for lk in links})), links)


__all__ = ["Probe", "probes", "usdt"]
