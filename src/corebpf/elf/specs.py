"""Specs: what an ELF object asks for, as editable dataclasses (no kernel access).

``ObjectSpec`` holds programs, subprograms, maps, global variables and externs. Everything that
depends on the kernel (CO-RE, map fds, BTF ids of kfuncs) is resolved later by the loader, so a
spec can be inspected, edited (map sizes, program types, ``const volatile`` values) and loaded
several times.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

from .._sys._generated import AttachType, MapType, ProgType

if TYPE_CHECKING:  # pragma: no cover
    from ..btf import Type
    from ..btf.ext import CoreRelo, FuncInfo
    from .sections import SectionDef

__all__ = ["RelocKind", "Relocation", "ProgramSpec", "MapSpec", "VariableSpec", "ExternSpec", "ExternKind",
           "Variables", "PIN_NONE", "PIN_BY_NAME"]

PIN_NONE = 0
PIN_BY_NAME = 1


class RelocKind(enum.Enum):
    """What an instruction relocation points at (libbpf's ``enum reloc_type``)."""

    MAP = "map"                    # ld_imm64 of a map (fd)
    DATA = "data"                  # ld_imm64 of a global variable (map value + offset)
    CALL = "call"                  # bpf2bpf call into .text
    SUBPROG_ADDR = "subprog_addr"  # ld_imm64 of a function address (callbacks)
    EXTERN_LD64 = "extern_ld64"    # ld_imm64 of a __kconfig/__ksym extern
    EXTERN_CALL = "extern_call"    # kfunc call


@dataclass
class Relocation:
    """A relocation of instruction ``insn`` (index within its function).

    ``target`` names the map or extern; ``sym_off`` is the symbol's offset (bytes) in its section
    (the data offset of a variable, the byte offset of a called function in ``.text``).
    """

    insn: int
    kind: RelocKind
    target: str = ""
    sym_off: int = 0


@dataclass
class ProgramSpec:
    """One function of the object: an entry program (in a ``SEC()``) or a ``.text`` subprogram.

    Editable before load: ``type``, ``expected_attach_type``, ``attach_to``, ``flags``, ``autoload``.
    ``section`` is the section name as libbpf reports it: ``SEC("?xdp")`` gives section ``xdp`` with
    ``autoload`` off (``elf_section`` keeps the ELF name).
    ``instructions`` are the function's own raw bytes as compiled; ``section_offset`` its byte offset
    in ``section``. CO-RE relocations, func_info and line_info carry byte offsets relative to the
    function start; ``line_info`` holds the kernel's ``bpf_line_info`` records as an (n, 4) uint32
    array (instruction byte offset, file name offset, line text offset, ``line << 10 | column``).
    """

    name: str
    section: str
    type: Union[ProgType, int]
    instructions: bytes
    expected_attach_type: Optional[AttachType] = None
    attach_to: str = ""
    flags: int = 0
    section_offset: int = 0
    section_index: int = 0
    is_subprog: bool = False
    global_symbol: bool = False
    btf_static: bool = False
    autoload: bool = True
    relocations: list[Relocation] = field(default_factory=list)
    core_relos: list["CoreRelo"] = field(default_factory=list)
    func_info: list["FuncInfo"] = field(default_factory=list)
    line_info: Any = field(default_factory=list)
    section_def: Optional["SectionDef"] = None
    attach_btf: bool = False
    elf_section: str = ""

    @property
    def insn_count(self) -> int:
        return len(self.instructions) // 8

    def __repr__(self) -> str:
        tname = self.type.name.lower() if isinstance(self.type, ProgType) else str(self.type)
        return (f"<ProgramSpec {self.name!r} section={self.section!r} type={tname} insns={self.insn_count}"
                f"{' subprog' if self.is_subprog else ''}>")


@dataclass
class MapSpec:
    """A map the object defines: a BTF map in ``.maps``, a legacy ``maps`` entry, or a global data
    section (``.data``, ``.rodata``, ``.bss``, ``.data.*``, ``.rodata.*``, ``.kconfig``).

    ``contents`` are static initialisers of prog arrays and map-in-map: ``(index, name)`` of the
    program or inner map to store at that index. ``data`` is the initial value of a global data map.
    ``key_type_id``/``value_type_id`` are ids in the object's BTF (0: none).
    """

    name: str
    type: Union[MapType, int]
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    numa_node: int = 0
    pinning: int = PIN_NONE
    map_extra: int = 0
    key_type_id: int = 0
    value_type_id: int = 0
    inner: Optional["MapSpec"] = None
    contents: list[tuple[int, str]] = field(default_factory=list)
    data: Optional[bytearray] = None
    section: str = ""
    section_index: int = 0
    section_offset: int = 0
    origin: str = "btf"  # "btf", "legacy", "data", "kconfig"
    readonly: bool = False
    btf_static: bool = False

    @property
    def is_data(self) -> bool:
        """A global data map (one array element holding a whole section)."""
        return self.origin in ("data", "kconfig")

    def copy(self) -> "MapSpec":
        return copy.deepcopy(self)

    def __repr__(self) -> str:
        tname = self.type.name.lower() if isinstance(self.type, MapType) else str(self.type)
        return (f"<MapSpec {self.name!r} {tname} key={self.key_size} value={self.value_size} "
                f"max_entries={self.max_entries} flags={self.flags:#x} from {self.origin} {self.section!r}>")


@dataclass
class VariableSpec:
    """A global variable in a data section, backed by ``map`` at ``offset``."""

    name: str
    map: str
    section: str
    offset: int
    size: int
    type_id: int
    type: Optional["Type"] = None
    readonly: bool = False

    def __repr__(self) -> str:
        decl = self.type.format_c(self.name) if self.type is not None else self.name
        return f"<VariableSpec {decl} in {self.section} at {self.offset}+{self.size}>"


class ExternKind(enum.Enum):
    KCONFIG = "kconfig"
    KSYM = "ksym"


@dataclass
class ExternSpec:
    """A ``__kconfig`` or ``__ksym`` extern the loader resolves against this kernel.

    ``type_id`` is the object BTF VAR/FUNC id; for ksyms ``target_type_id`` is the referenced type
    (0 for a typeless ``extern const void x __ksym``). kconfig externs have an ``offset``/``size``
    in the ``.kconfig`` map (libbpf's layout: by alignment, size, name).
    """

    name: str
    kind: ExternKind
    weak: bool
    type_id: int
    is_func: bool = False
    target_type_id: int = 0
    offset: int = 0
    size: int = 0
    align: int = 1
    symbol_index: int = 0

    @property
    def essential_name(self) -> str:
        from ..btf.types import essential_name

        return essential_name(self.name)

    @property
    def typed(self) -> bool:
        return self.kind == ExternKind.KSYM and (self.is_func or self.target_type_id != 0)


class Variables(MutableMapping):  # type: ignore[type-arg]
    """Global variables by name, read and written as Python values through their BTF types.

    Backed by byte buffers (the initial data of an :class:`ObjectSpec`, or a live map's memory for a
    loaded object). ``info(name)`` gives the :class:`VariableSpec`.
    """

    def __init__(self, specs: dict[str, VariableSpec], buffer_of: Any, *, live: bool = False) -> None:
        self._specs = specs
        self._buffer_of = buffer_of  # map name -> (read() -> bytes-like, write(offset, bytes))
        self._live = live

    def info(self, name: str) -> VariableSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"no global variable {name!r}; known: {', '.join(sorted(self._specs)) or 'none'}") from None

    def __getitem__(self, name: str) -> Any:
        from ..btf.values import decode

        var = self.info(name)
        read, _ = self._buffer_of(var.map)
        raw = bytes(read(var.offset, var.size))
        if var.type is None:
            return raw
        return decode(var.type, raw)

    def __setitem__(self, name: str, value: Any) -> None:
        from ..btf.values import encode

        var = self.info(name)
        if self._live and var.readonly:
            raise TypeError(f"{name!r} is in {var.section}, which is frozen after load: set it on the ObjectSpec "
                            f"before loading (spec.variables[{name!r}] = ...)")
        if isinstance(value, (bytes, bytearray, memoryview)):
            raw = bytes(value)
        elif var.type is None:
            raise TypeError(f"{name!r} has no BTF type: give its value as {var.size} bytes")
        else:
            raw = encode(var.type, value)
        if len(raw) != var.size:
            raise ValueError(f"{name!r} is {var.size} bytes, got {len(raw)}")
        _, write = self._buffer_of(var.map)
        write(var.offset, raw)

    def __delitem__(self, name: str) -> None:
        raise TypeError("global variables cannot be deleted")

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"<Variables {', '.join(self._specs)}>"
