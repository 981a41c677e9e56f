"""Read the translated (post-verifier) instructions of a loaded program, and list them like bpftool.

The kernel hands out a program's translated code and its records through
``BPF_OBJ_GET_INFO_BY_FD`` in two calls: the first reports lengths and counts, the second fills
buffers sized from them.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Iterator, Optional

from .._sys import ops, uapi
from .._sys.fd import FD
from ..errors import CoreBPFError
from .codec import decode
from .disasm import Dialect, FuncInfo, LineInfo, SourceBTF, disassemble
from .instruction import Instruction
from .kallsyms import KernelSymbols


@dataclass(frozen=True)
class XlatedProgram:
    """A loaded program's translated code and what bpftool needs to print it.

    Iterating gives ``(xlated, map_ids, func_info, line_info, btf_id)``, so it unpacks like a
    5-tuple; the other fields are extras.
    """

    xlated: bytes
    map_ids: tuple[int, ...]
    func_info: tuple[FuncInfo, ...]
    line_info: tuple[LineInfo, ...]
    btf_id: int
    prog_id: int = 0
    name: str = ""
    tag: str = ""
    prog_type: int = 0
    jited_ksyms: tuple[int, ...] = field(default=())

    def __iter__(self) -> Iterator[object]:
        return iter((self.xlated, self.map_ids, self.func_info, self.line_info, self.btf_id))

    @property
    def instructions(self) -> list[Instruction]:
        """The translated code decoded."""
        return decode(self.xlated)


def read_xlated(prog_fd: int | FD) -> XlatedProgram:
    """Translated code, map ids, func/line info and BTF id of the program behind ``prog_fd``.

    Raises a :class:`~corebpf.errors.BPFError` when the kernel refuses (the translated code needs
    CAP_SYS_ADMIN/CAP_BPF and is hidden under ``kernel.kptr_restrict`` or lockdown).
    """
    fd = int(prog_fd)
    probe = uapi.ProgInfo()
    ops.obj_get_info_by_fd(fd, probe)
    if probe.xlated_prog_len == 0:
        raise CoreBPFError(f"program {probe.id} returned no translated instructions "
                           "(needs CAP_SYS_ADMIN or CAP_BPF+CAP_PERFMON; kernel.kptr_restrict may hide them)")
    xlated = ctypes.create_string_buffer(probe.xlated_prog_len)
    map_ids = (ctypes.c_uint32 * max(probe.nr_map_ids, 1))()
    ksyms = (ctypes.c_uint64 * max(probe.nr_jited_ksyms, 1))()
    finfo = ctypes.create_string_buffer(max(probe.nr_func_info * probe.func_info_rec_size, 1))
    linfo = ctypes.create_string_buffer(max(probe.nr_line_info * probe.line_info_rec_size, 1))
    info = uapi.ProgInfo()
    info.xlated_prog_len = probe.xlated_prog_len
    info.xlated_prog_insns = ctypes.addressof(xlated)
    info.nr_map_ids = probe.nr_map_ids
    info.map_ids = ctypes.addressof(map_ids)
    info.nr_jited_ksyms = probe.nr_jited_ksyms
    info.jited_ksyms = ctypes.addressof(ksyms)
    info.nr_func_info = probe.nr_func_info
    info.func_info_rec_size = probe.func_info_rec_size
    info.func_info = ctypes.addressof(finfo)
    info.nr_line_info = probe.nr_line_info
    info.line_info_rec_size = probe.line_info_rec_size
    info.line_info = ctypes.addressof(linfo)
    ops.obj_get_info_by_fd(fd, info)

    funcs = tuple(FuncInfo(*_u32s(finfo.raw, i * info.func_info_rec_size, 2)) for i in range(info.nr_func_info))
    lines = tuple(LineInfo(*_u32s(linfo.raw, i * info.line_info_rec_size, 4)) for i in range(info.nr_line_info))
    return XlatedProgram(
        xlated=xlated.raw[: info.xlated_prog_len],
        map_ids=tuple(map_ids[: min(info.nr_map_ids, probe.nr_map_ids)]),
        func_info=funcs,
        line_info=lines,
        btf_id=info.btf_id,
        prog_id=info.id,
        name=info.name.decode(errors="replace"),
        tag=bytes(info.tag).hex(),
        prog_type=info.type,
        jited_ksyms=tuple(ksyms[: min(info.nr_jited_ksyms, probe.nr_jited_ksyms)]),
    )


def _u32s(raw: bytes, offset: int, count: int) -> tuple[int, ...]:
    return tuple(int.from_bytes(raw[offset + 4 * k: offset + 4 * k + 4], "little") for k in range(count))


def read_xlated_by_id(prog_id: int) -> XlatedProgram:
    """:func:`read_xlated` for a program id (opens and closes an fd for it)."""
    with ops.get_fd_by_id("prog", prog_id) as fd:
        return read_xlated(fd)


def read_btf(btf_id: int) -> bytes:
    """The raw BTF blob the kernel holds under ``btf_id`` (a program's or map's BTF)."""
    with ops.get_fd_by_id("btf", btf_id) as fd:
        probe = uapi.BtfInfo()
        ops.obj_get_info_by_fd(fd, probe)
        buf = ctypes.create_string_buffer(max(probe.btf_size, 1))
        info = uapi.BtfInfo(btf=ctypes.addressof(buf), btf_size=probe.btf_size)
        ops.obj_get_info_by_fd(fd, info)
        return buf.raw[: info.btf_size]


def dump_xlated(prog: XlatedProgram | int, *, by_id: bool = True, dialect: Dialect = Dialect.CURRENT,
                kallsyms: Optional[KernelSymbols] = None, btf: Optional[SourceBTF] = None,
                opcodes: bool = False, linum: bool = False) -> list[str]:
    """The lines ``bpftool prog dump xlated id ID`` prints for a loaded program.

    ``prog`` is an :class:`XlatedProgram`, a program id (``by_id=True``) or a program fd.
    Kernel symbols are read from ``/proc/kallsyms`` unless given; the program's BTF is fetched
    from the kernel when it has one and ``btf`` is not given.
    """
    if not isinstance(prog, XlatedProgram):
        prog = read_xlated_by_id(prog) if by_id else read_xlated(prog)
    if kallsyms is None:
        try:
            kallsyms = KernelSymbols.load()
        except CoreBPFError:
            kallsyms = KernelSymbols()
    if btf is None and prog.btf_id:
        try:
            from .btf_source import ProgramBTF  # corebpf.btf needs numpy: load it only here

            btf = ProgramBTF.from_bytes(read_btf(prog.btf_id))
        except CoreBPFError:  # freed meanwhile, refused or malformed: list without source info
            btf = None
    return disassemble(prog.xlated, kallsyms=kallsyms, jited_ksyms=prog.jited_ksyms, func_info=prog.func_info,
                       line_info=prog.line_info, btf=btf, dialect=dialect, opcodes=opcodes, linum=linum)


__all__ = ["XlatedProgram", "dump_xlated", "read_btf", "read_xlated", "read_xlated_by_id"]
